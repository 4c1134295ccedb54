//! Batches of items: a [`BatchNode`]'s `exec` once per item, one after another or concurrently,
//! and kept item by item in a durable run.

use std::future::Future;

use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};

use super::ordered::run_ordered;
use super::{Batch, Items, KeptItems};
use crate::error::NodeError;
use crate::node::{
    Between, Command, Context, DEFAULT_ACTION, ItemJournal, Node, Retry, with_retries,
};
use crate::state::SharedState;

/// A node whose `exec` runs once per item. Use it in a flow through [`Batch::items`].
///
/// # Example
/// ```
/// use serde::{Deserialize, Serialize};
/// use slateflow::batch::{Batch, BatchNode};
/// use slateflow::{Command, Context, NodeError, SharedState, flow};
///
/// #[derive(SharedState, Debug, Default, Serialize, Deserialize)]
/// struct Files {
///     names: Vec<String>,
///     #[reducer(append)]
///     sizes: Vec<usize>,
/// }
///
/// /// "Summarises" each file; a model call per item in real life.
/// struct Measure;
///
/// impl BatchNode<Files> for Measure {
///     type Item = String;
///     type Output = usize;
///
///     async fn prep(&self, state: &Files, _: &Context<'_>) -> Result<Vec<String>, NodeError> {
///         Ok(state.names.clone())
///     }
///
///     async fn exec(&self, name: &String) -> Result<usize, NodeError> {
///         Ok(name.len())
///     }
///
///     async fn post(
///         &self,
///         _: &Files,
///         _: Vec<String>,
///         sizes: Vec<usize>,
///         _: &Context<'_>,
///     ) -> Result<Command<Files>, NodeError> {
///         Ok(Command::new(Files::update().extend_sizes(sizes)))
///     }
/// }
///
/// let measure = Batch::items(Measure).concurrent(4);
/// let mut files = Files { names: vec!["a.txt".into(), "notes.md".into()], ..Files::default() };
/// flow! { measure; }.run_blocking(&mut files)?;
/// assert_eq!(files.sizes, [5, 8]); // input order, whatever order the items finished in
/// # Ok::<(), slateflow::Error>(())
/// ```
pub trait BatchNode<S: SharedState>: Send + Sync {
    /// One unit of work.
    type Item: Send + Sync;
    /// What `exec` makes of an item.
    type Output: Send;

    /// Every action [`post`](BatchNode::post) may return, as for [`Node::ACTIONS`].
    const ACTIONS: &'static [&'static str] = &[DEFAULT_ACTION];

    /// How `exec` is retried and timed out, for each item on its own.
    fn retry(&self) -> Retry {
        Retry::default()
    }

    /// Reads the items from the state and params. An empty list is fine: `post` gets no outputs.
    fn prep(
        &self,
        state: &S,
        context: &Context<'_>,
    ) -> impl Future<Output = Result<Vec<Self::Item>, NodeError>> + Send;

    /// Does the work for one item.
    fn exec(
        &self,
        item: &Self::Item,
    ) -> impl Future<Output = Result<Self::Output, NodeError>> + Send;

    /// Runs after an item's last failed attempt; its result takes the item's place. By default
    /// it returns the error, which fails the batch.
    fn exec_fallback(
        &self,
        item: &Self::Item,
        error: NodeError,
    ) -> impl Future<Output = Result<Self::Output, NodeError>> + Send {
        let _ = item;
        async move { Err(error) }
    }

    /// Turns the outputs, in input order, into a [`Command`].
    fn post(
        &self,
        state: &S,
        items: Vec<Self::Item>,
        outputs: Vec<Self::Output>,
        context: &Context<'_>,
    ) -> impl Future<Output = Result<Command<S>, NodeError>> + Send;
}

/// An item of a batch that failed after its last attempt and its fallback. The source of the
/// step's [`Error::NodeFailed`](crate::Error::NodeFailed).
///
/// ```
/// use slateflow::batch::ItemFailed;
///
/// let failed = ItemFailed { index: 3, attempts: 2, source: "refused".into() };
/// assert_eq!(failed.to_string(), "item 3 of the batch failed after 2 attempts: refused");
/// ```
#[derive(Debug, thiserror::Error)]
#[error("item {index} of the batch failed{}: {source}", attempts_text(*.attempts))]
pub struct ItemFailed {
    /// The item's position in the list `prep` returned, from 0.
    pub index: usize,
    /// How many attempts ran.
    pub attempts: u32,
    /// The error of the fallback (by default, of the last attempt).
    #[source]
    pub source: NodeError,
}

fn attempts_text(attempts: u32) -> String {
    if attempts > 1 {
        format!(" after {attempts} attempts")
    } else {
        String::new()
    }
}

/// One item: `exec` under the retry policy, then the fallback.
async fn run_item<S: SharedState, B: BatchNode<S>>(
    node: &B,
    index: usize,
    item: &B::Item,
    context: Option<&Context<'_>>,
) -> Result<B::Output, NodeError> {
    // The policy is read again where it is used, so that it is not kept in every item's future.
    let outcome = if node.retry().is_single_attempt() {
        // The common case, without the retry loop's timer (a much smaller future per item).
        node.exec(item).await.map_err(|error| (error, 1))
    } else {
        // Boxed: the timers would make every item's future several times larger.
        // A retried item is not a new attempt of the node: no `NodeStarted` for it.
        let between = |between: Between<'_>| {
            if let Some(context) = context {
                context.between(between, false);
            }
        };
        Box::pin(with_retries(node.retry(), || node.exec(item), between))
            .await
            .map(|(output, _)| output)
    };
    match outcome {
        Ok(output) => Ok(output),
        Err((error, attempts)) => node.exec_fallback(item, error).await.map_err(|source| {
            Box::new(ItemFailed {
                index,
                attempts,
                source,
            }) as NodeError
        }),
    }
}

/// Every item of `node`, in order or at most `limit` at a time; each finished item is reported
/// to `context` (for progress bars). An item whose output `keeper` gives back is not run; the
/// output of each item that runs is handed to `keeper` before it counts as finished.
async fn run_items<S: SharedState, B: BatchNode<S>, K: Keeper<B::Output>>(
    node: &B,
    limit: usize,
    items: &[B::Item],
    context: Option<&Context<'_>>,
    keeper: &K,
) -> Result<Vec<B::Output>, NodeError> {
    let total = items.len();
    // Asked once: nobody watching, no event built, no call made per item.
    let context = context.filter(|context| context.is_observed());
    let mut finished = 0;
    let done = |index: usize| {
        finished += 1;
        if let Some(context) = context {
            context.item_finished(index, finished, total);
        }
    };
    if !K::KEEPS {
        // Each item's future is its own `run_item`'s, with nothing around it: a concurrent
        // batch moves every item's future into a task of its own.
        let item = |index: usize| run_item(node, index, &items[index], context);
        return run_ordered(total, limit, item, done).await;
    }
    let item = |index: usize| async move {
        if let Some(output) = keeper.kept(index) {
            return Ok(output);
        }
        let output = run_item(node, index, &items[index], context).await?;
        keeper.keep(index, &output).await?;
        Ok(output)
    };
    run_ordered(total, limit, item, done).await
}

/// The batch's `exec` runs once (items retry on their own), and its error is the first item's
/// error, as [`ItemFailed`].
impl<S: SharedState, B: BatchNode<S>> Node<S> for Batch<Items<B>> {
    type Prep = Vec<B::Item>;
    type Exec = Vec<B::Output>;
    const ACTIONS: &'static [&'static str] = B::ACTIONS;

    fn prep(
        &self,
        state: &S,
        context: &Context<'_>,
    ) -> impl Future<Output = Result<Self::Prep, NodeError>> + Send {
        self.work.0.prep(state, context)
    }

    fn exec(
        &self,
        items: &Vec<B::Item>,
    ) -> impl Future<Output = Result<Vec<B::Output>, NodeError>> + Send {
        run_items(&self.work.0, self.limit, items, None, &KeepNothing)
    }

    fn exec_with(
        &self,
        items: &Vec<B::Item>,
        context: &Context<'_>,
    ) -> impl Future<Output = Result<Vec<B::Output>, NodeError>> + Send {
        run_items(&self.work.0, self.limit, items, Some(context), &KeepNothing)
    }

    fn post(
        &self,
        state: &S,
        items: Vec<B::Item>,
        outputs: Vec<B::Output>,
        context: &Context<'_>,
    ) -> impl Future<Output = Result<Command<S>, NodeError>> + Send {
        self.work.0.post(state, items, outputs, context)
    }
}

/// The fingerprint a kept output carries of its item: the CRC-32 of the item's JSON.
fn fingerprint<T: Serialize>(index: usize, item: &T) -> Result<u32, NodeError> {
    let json = serde_json::to_vec(item).map_err(|error| {
        format!("item {index} of the batch does not serialize, so it cannot be kept: {error}")
    })?;
    Ok(crate::checkpoint::crc32(&json))
}

/// As [`Batch<Items<B>>`], keeping each item's output as it finishes where its step keeps them.
impl<S, B> Node<S> for Batch<KeptItems<B>>
where
    S: SharedState,
    B: BatchNode<S>,
    B::Item: Serialize,
    B::Output: Serialize + DeserializeOwned,
{
    type Prep = Vec<B::Item>;
    type Exec = Vec<B::Output>;
    const ACTIONS: &'static [&'static str] = B::ACTIONS;

    fn prep(
        &self,
        state: &S,
        context: &Context<'_>,
    ) -> impl Future<Output = Result<Self::Prep, NodeError>> + Send {
        self.work.0.prep(state, context)
    }

    fn exec(
        &self,
        items: &Vec<B::Item>,
    ) -> impl Future<Output = Result<Vec<B::Output>, NodeError>> + Send {
        run_items(&self.work.0, self.limit, items, None, &KeepNothing)
    }

    async fn exec_with(
        &self,
        items: &Vec<B::Item>,
        context: &Context<'_>,
    ) -> Result<Vec<B::Output>, NodeError> {
        let Some(journal) = context.item_journal() else {
            return run_items(&self.work.0, self.limit, items, Some(context), &KeepNothing).await;
        };
        let keeper = KeepThrough {
            journal,
            context,
            fingerprints: items
                .iter()
                .enumerate()
                .map(|(index, item)| fingerprint(index, item))
                .collect::<Result<_, _>>()?,
        };
        run_items(&self.work.0, self.limit, items, Some(context), &keeper).await
    }

    fn post(
        &self,
        state: &S,
        items: Vec<B::Item>,
        outputs: Vec<B::Output>,
        context: &Context<'_>,
    ) -> impl Future<Output = Result<Command<S>, NodeError>> + Send {
        self.work.0.post(state, items, outputs, context)
    }
}

/// How a batch keeps its items' outputs: not at all ([`KeepNothing`]), or through the run's
/// journal ([`KeepThrough`]).
trait Keeper<T>: Sync {
    /// Whether it keeps anything: a batch that keeps nothing runs each item's own future.
    const KEEPS: bool = true;

    /// The output of item `index`, kept by an earlier attempt of the step.
    fn kept(&self, index: usize) -> Option<T>;

    /// Keeps the output of item `index`.
    fn keep(&self, index: usize, output: &T) -> impl Future<Output = Result<(), NodeError>> + Send;
}

/// A plain batch: nothing kept, and nothing in its items' futures for it.
struct KeepNothing;

impl<T> Keeper<T> for KeepNothing {
    const KEEPS: bool = false;

    fn kept(&self, _: usize) -> Option<T> {
        None
    }

    fn keep(&self, _: usize, _: &T) -> impl Future<Output = Result<(), NodeError>> + Send {
        std::future::ready(Ok(()))
    }
}

/// A kept batch in a durable step: outputs kept through the step's journal, each with its
/// item's fingerprint.
struct KeepThrough<'a> {
    journal: &'a dyn ItemJournal,
    context: &'a Context<'a>,
    fingerprints: Vec<u32>,
}

/// A kept item's output, with its item's fingerprint.
#[derive(Serialize, Deserialize)]
struct KeptItem<T> {
    item: u32,
    output: T,
}

impl<T: Serialize + DeserializeOwned> Keeper<T> for KeepThrough<'_> {
    /// The kept output, when it was kept for the same item and still reads back as `T`;
    /// otherwise the item runs again.
    fn kept(&self, index: usize) -> Option<T> {
        let kept = self
            .journal
            .kept_item(&self.context.at(), &index.to_string())?;
        let kept: KeptItem<T> = serde_json::from_value(kept).ok()?;
        (kept.item == self.fingerprints[index]).then_some(kept.output)
    }

    fn keep(&self, index: usize, output: &T) -> impl Future<Output = Result<(), NodeError>> + Send {
        let kept = serde_json::to_value(KeptItem {
            item: self.fingerprints[index],
            output,
        })
        .map_err(|error| {
            format!("the output of item {index} does not serialize, so it cannot be kept: {error}")
        });
        async move {
            self.journal
                .keep_item(self.context.at(), index.to_string(), kept?)
                .await?;
            Ok(())
        }
    }
}
