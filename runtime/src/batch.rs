//! Batches: one node's work over many items, and one flow run over many params.
//!
//! - A [`BatchNode`] returns items from `prep`; `exec` runs once per item, with the node's
//!   [`Retry`] and `exec_fallback` applied to each item on its own; `post` receives the outputs in
//!   input order. Wrap it in [`Batch::sequential`] or [`Batch::concurrent`] (with a limit on the
//!   items in flight: model endpoints have rate limits) to use it as a [`Node`]. In a durable
//!   run, [`Batch::kept`] saves each item's output as it finishes, so a resume after a crash
//!   makes only the calls that had not answered.
//! - A [`BatchFlow`] runs a sub-flow once per params item that its [`BatchPlan`] returns, with the
//!   run's params merged with the item's (the item wins, as in PocketFlow). Its `post` receives
//!   every run's params and last action ([`BatchRun`]); PocketFlow drops them.
//!   [`BatchFlow::concurrent`] runs the items concurrently, each on its own copy of the state, and
//!   composes their updates back in item order.
//!
//! The first item that fails fails the batch: the items still in flight are cancelled (dropped)
//! and nothing of the batch's own step is applied.

use std::future::Future;

use futures_util::{FutureExt, StreamExt, stream};
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};

use crate::error::{Error, Phase};
use crate::graph::Graph;
use crate::node::dispatch::{Branch, BranchRunner, Composite, Runner, Stepped};
use crate::node::{
    Between, Command, Context, DEFAULT_ACTION, Emitter, Node, NodeError, Params, Retry,
    self_running_node, with_retries,
};
use crate::parallel::{Conflicts, merge_in_order};
use crate::state::SharedState;

/// A node whose `exec` runs once per item. Use it in a flow through [`Batch`].
///
/// # Example
/// ```
/// use serde::{Deserialize, Serialize};
/// use slateflow::batch::{Batch, BatchNode};
/// use slateflow::{Command, Context, NodeError, SharedState};
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
/// let mut files = Files { names: vec!["a.txt".into(), "notes.md".into()], ..Files::default() };
/// slateflow::run_node_blocking(&Batch::concurrent(Measure, 4), &mut files)?;
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
/// step's [`Error::NodeFailed`].
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

/// A [`BatchNode`] as a [`Node`]: its items run one after another, or concurrently up to a limit.
#[derive(Debug, Clone, Copy)]
pub struct Batch<B> {
    node: B,
    concurrency: usize,
}

impl<B> Batch<B> {
    /// Runs the items one after another, in input order.
    pub fn sequential(node: B) -> Self {
        Self {
            node,
            concurrency: 1,
        }
    }

    /// Runs up to `limit` items at a time (at least one); outputs stay in input order.
    pub fn concurrent(node: B, limit: usize) -> Self {
        Self {
            node,
            concurrency: limit.max(1),
        }
    }

    /// How many items run at a time.
    pub fn concurrency(&self) -> usize {
        self.concurrency
    }

    /// The batch node.
    pub fn inner(&self) -> &B {
        &self.node
    }
}

/// One item: `exec` under the retry policy, then the fallback.
async fn run_item<S: SharedState, B: BatchNode<S>>(
    node: &B,
    index: usize,
    item: &B::Item,
    emitter: Option<Emitter<'_>>,
) -> Result<B::Output, NodeError> {
    // The policy is read again where it is used, so that it is not kept in every item's future.
    let outcome = if node.retry().is_single_attempt() {
        // The common case, without the retry loop's timer (a much smaller future per item).
        node.exec(item).await.map_err(|error| (error, 1))
    } else {
        // Boxed: the timers would make every item's future several times larger.
        // A retried item is not a new attempt of the node: no `NodeStarted` for it.
        let between = |between: Between<'_>| {
            if let Some(emitter) = &emitter {
                emitter.between(between, false);
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

impl<B> Batch<B> {
    /// Every item, in order or at most `concurrency` at a time; each finished item is reported
    /// to `emitter` (for progress bars). An item whose output `keeper` gives back is not run; the
    /// output of each item that runs is handed to `keeper` before it counts as finished.
    async fn run_items<S: SharedState, K: Keeper<B::Output>>(
        &self,
        items: &[B::Item],
        emitter: Option<Emitter<'_>>,
        keeper: &K,
    ) -> Result<Vec<B::Output>, NodeError>
    where
        B: BatchNode<S>,
    {
        let total = items.len();
        // Asked once: nobody watching, no event built, no call made per item.
        let emitter = emitter.filter(Emitter::is_observed);
        let mut finished = 0;
        let done = |index: usize| {
            finished += 1;
            if let Some(emitter) = &emitter {
                emitter.item_finished(index, finished, total);
            }
        };
        if !K::KEEPS {
            // Each item's future is its own `run_item`'s, with nothing around it: a concurrent
            // batch moves every item's future into a task of its own.
            let item = |index: usize| run_item(&self.node, index, &items[index], emitter);
            return run_ordered(total, self.concurrency, item, done).await;
        }
        let item = |index: usize| async move {
            if let Some(output) = keeper.kept(index) {
                return Ok(output);
            }
            let output = run_item(&self.node, index, &items[index], emitter).await?;
            keeper.keep(index, &output).await?;
            Ok(output)
        };
        run_ordered(total, self.concurrency, item, done).await
    }

    /// Keeps each item's output as it finishes, in a durable run: a resume after a failure or a
    /// crash in the middle of the batch runs only the items that had not finished. Needs the
    /// items and outputs to serialize; see [`KeptBatch`].
    pub fn kept(self) -> KeptBatch<B> {
        KeptBatch { batch: self }
    }
}

/// The batch's `exec` runs once (items retry on their own), and its error is the first item's
/// error, as [`ItemFailed`].
impl<S: SharedState, B: BatchNode<S>> Node<S> for Batch<B> {
    type Prep = Vec<B::Item>;
    type Exec = Vec<B::Output>;
    const ACTIONS: &'static [&'static str] = B::ACTIONS;

    fn prep(
        &self,
        state: &S,
        context: &Context<'_>,
    ) -> impl Future<Output = Result<Self::Prep, NodeError>> + Send {
        self.node.prep(state, context)
    }

    fn exec(
        &self,
        items: &Vec<B::Item>,
    ) -> impl Future<Output = Result<Vec<B::Output>, NodeError>> + Send {
        self.run_items(items, None, &KeepNothing)
    }

    fn exec_with(
        &self,
        items: &Vec<B::Item>,
        emitter: &Emitter<'_>,
    ) -> impl Future<Output = Result<Vec<B::Output>, NodeError>> + Send {
        self.run_items(items, Some(*emitter), &KeepNothing)
    }

    fn post(
        &self,
        state: &S,
        items: Vec<B::Item>,
        outputs: Vec<B::Output>,
        context: &Context<'_>,
    ) -> impl Future<Output = Result<Command<S>, NodeError>> + Send {
        self.node.post(state, items, outputs, context)
    }
}

/// A [`Batch`] whose items' outputs are kept as they finish, in a durable run: made by
/// [`Batch::kept`].
///
/// A map-reduce of 200 model calls killed after 94 had answered resumes with those 94 answers and
/// makes the other 106 calls. Each finished item's output is saved (as a
/// [`RecordKind::Kept`](crate::checkpoint::RecordKind::Kept) record, with a checksum of its item)
/// before the step is; on resume, `prep` runs again, and an item whose output was kept, and which
/// is the same item (same JSON), is not run again. The step itself is saved once, as for any
/// node. Outside a durable run, or where a step is not saved on its own (inside a batch flow's
/// runs, or as a fork branch), it runs as the plain [`Batch`].
///
/// An input at the paused step ([`Durable::update`](crate::durable::Durable::update)) discards
/// what was kept; so does a kept output that no longer reads back as `Output` (the item runs
/// again).
///
/// ```
/// use serde::{Deserialize, Serialize};
/// use slateflow::batch::{Batch, BatchNode};
/// use slateflow::{Command, Context, NodeError, SharedState, flow};
///
/// #[derive(SharedState, Clone, Debug, Default, Serialize, Deserialize)]
/// struct Docs {
///     names: Vec<String>,
///     #[reducer(append)]
///     summaries: Vec<String>,
/// }
///
/// struct Summarise;
///
/// impl BatchNode<Docs> for Summarise {
///     type Item = String;
///     type Output = String;
///
///     async fn prep(&self, docs: &Docs, _: &Context<'_>) -> Result<Vec<String>, NodeError> {
///         Ok(docs.names.clone())
///     }
///
///     async fn exec(&self, name: &String) -> Result<String, NodeError> {
///         Ok(format!("summary of {name}")) // a model call in real life
///     }
///
///     async fn post(
///         &self,
///         _: &Docs,
///         _: Vec<String>,
///         summaries: Vec<String>,
///         _: &Context<'_>,
///     ) -> Result<Command<Docs>, NodeError> {
///         Ok(Command::new(Docs::update().extend_summaries(summaries)))
///     }
/// }
///
/// let summarise = Batch::concurrent(Summarise, 8).kept();
/// let flow = flow! { summarise; };
/// let mut docs = Docs { names: vec!["a.md".into(), "b.md".into()], ..Docs::default() };
/// # tokio::runtime::Builder::new_current_thread().build().unwrap().block_on(async {
/// let durable = flow.durable(slateflow::checkpoint::MemoryStore::new());
/// durable.start("docs", &mut docs).await?;
/// assert_eq!(docs.summaries, ["summary of a.md", "summary of b.md"]);
/// # Ok::<(), slateflow::Error>(())
/// # }).unwrap();
/// ```
#[derive(Debug, Clone, Copy)]
pub struct KeptBatch<B> {
    batch: Batch<B>,
}

impl<B> KeptBatch<B> {
    /// The batch, as it runs where nothing is kept.
    pub fn batch(&self) -> &Batch<B> {
        &self.batch
    }
}

/// The fingerprint a kept output carries of its item: the CRC-32 of the item's JSON.
fn fingerprint<T: Serialize>(index: usize, item: &T) -> Result<u32, NodeError> {
    let json = serde_json::to_vec(item).map_err(|error| {
        format!("item {index} of the batch does not serialize, so it cannot be kept: {error}")
    })?;
    Ok(crate::checkpoint::crc32(&json))
}

impl<S, B> Node<S> for KeptBatch<B>
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
        self.batch.node.prep(state, context)
    }

    fn exec(
        &self,
        items: &Vec<B::Item>,
    ) -> impl Future<Output = Result<Vec<B::Output>, NodeError>> + Send {
        self.batch.run_items(items, None, &KeepNothing)
    }

    async fn exec_with(
        &self,
        items: &Vec<B::Item>,
        emitter: &Emitter<'_>,
    ) -> Result<Vec<B::Output>, NodeError> {
        if !emitter.keeps_items() {
            return self
                .batch
                .run_items(items, Some(*emitter), &KeepNothing)
                .await;
        }
        let keeper = KeepThrough {
            emitter: *emitter,
            fingerprints: items
                .iter()
                .enumerate()
                .map(|(index, item)| fingerprint(index, item))
                .collect::<Result<_, _>>()?,
        };
        self.batch.run_items(items, Some(*emitter), &keeper).await
    }

    fn post(
        &self,
        state: &S,
        items: Vec<B::Item>,
        outputs: Vec<B::Output>,
        context: &Context<'_>,
    ) -> impl Future<Output = Result<Command<S>, NodeError>> + Send {
        self.batch.node.post(state, items, outputs, context)
    }
}

/// How a batch keeps its items' outputs: not at all ([`KeepNothing`]), or through the run's hook
/// ([`KeepThrough`]).
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

/// A kept batch in a durable step: outputs kept through the emitter, each with its item's
/// fingerprint.
struct KeepThrough<'a> {
    emitter: Emitter<'a>,
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
        let kept: KeptItem<T> = serde_json::from_value(self.emitter.kept_item(index)?).ok()?;
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
            self.emitter.keep_item(index, kept?).await?;
            Ok(())
        }
    }
}

/// What a [`BatchFlow`] runs over: `prep` returns one [`Params`] per run of the sub-flow, and
/// `post` sees every run.
pub trait BatchPlan<S: SharedState>: Send + Sync {
    /// Every action [`post`](BatchPlan::post) may return, as for [`Node::ACTIONS`].
    const ACTIONS: &'static [&'static str] = &[DEFAULT_ACTION];

    /// The params of each run, merged over the run's own (an item's keys win). An empty list runs
    /// nothing.
    fn prep(
        &self,
        state: &S,
        context: &Context<'_>,
    ) -> impl Future<Output = Result<Vec<Params>, NodeError>> + Send;

    /// Receives every run, in item order, once all have finished; returns the batch flow's update
    /// and action. By default: no update, `"default"`.
    fn post(
        &self,
        state: &S,
        runs: Vec<BatchRun>,
        context: &Context<'_>,
    ) -> impl Future<Output = Result<Command<S>, NodeError>> + Send {
        let _ = (state, runs, context);
        async { Ok(Command::default()) }
    }
}

/// One run of a batch flow's sub-flow, as its plan's [`post`](BatchPlan::post) sees it.
#[derive(Debug, Clone, PartialEq)]
pub struct BatchRun {
    /// The params the run had: the batch flow's, merged with the item's.
    pub params: Params,
    /// The run's last action.
    pub action: &'static str,
}

/// A plan from a closure that maps the state to the list of params; its `post` does nothing.
/// See [`plan`].
#[derive(Clone, Copy)]
pub struct FnPlan<F> {
    function: F,
}

impl<F> std::fmt::Debug for FnPlan<F> {
    fn fmt(&self, formatter: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        formatter.write_str("FnPlan")
    }
}

/// A [`BatchPlan`] from a closure: `plan(|state: &Docs| state.files.iter().map(...).collect())`.
pub fn plan<S, F>(function: F) -> FnPlan<F>
where
    S: SharedState,
    F: Fn(&S) -> Vec<Params> + Send + Sync,
{
    FnPlan { function }
}

impl<S, F> BatchPlan<S> for FnPlan<F>
where
    S: SharedState,
    F: Fn(&S) -> Vec<Params> + Send + Sync,
{
    async fn prep(&self, state: &S, _: &Context<'_>) -> Result<Vec<Params>, NodeError> {
        Ok((self.function)(state))
    }
}

/// Runs a sub-flow (any [`Node`], usually a [`Flow`](crate::Flow)) once per item of its plan,
/// one after another, in place on the state: each run sees the updates of the runs before it.
///
/// The batch flow takes one step of its own for its plan's `prep`, and its sub-runs' node steps
/// follow; its plan's `post` and update end that step's work. A batch flow nested in a batch flow
/// merges its items over params that already hold the outer item's (they accumulate, level by
/// level).
#[derive(Debug, Clone, Copy)]
pub struct BatchFlow<F, P> {
    flow: F,
    plan: P,
}

/// A [`BatchFlow`] whose runs go concurrently, up to a limit, each on its own copy of the state.
///
/// The runs cannot see each other's updates. When all have finished, their updates (each the
/// composition of one run's steps) are composed in item order and applied once, through the
/// reducers: `add` fields sum, `append` fields concatenate in item order, and a last-write-wins
/// field keeps the last item's write, as in a sequential batch. The state must be `Clone`.
#[derive(Debug, Clone, Copy)]
pub struct ConcurrentBatchFlow<F, P> {
    flow: F,
    plan: P,
    limit: usize,
}

impl<F, P> BatchFlow<F, P> {
    /// Runs `flow` once per item of `plan`, one after another.
    pub fn new(flow: F, plan: P) -> Self {
        Self { flow, plan }
    }

    /// Runs up to `limit` items at a time (at least one), each on its own copy of the state.
    pub fn concurrent(self, limit: usize) -> ConcurrentBatchFlow<F, P> {
        ConcurrentBatchFlow {
            flow: self.flow,
            plan: self.plan,
            limit: limit.max(1),
        }
    }
}

impl<F, P> ConcurrentBatchFlow<F, P> {
    /// How many runs go at a time.
    pub fn limit(&self) -> usize {
        self.limit
    }
}

/// The batch flow's own step: its plan's `prep`, at a new composite step. Returns the items and
/// the step.
async fn plan_prep<S: SharedState, P: BatchPlan<S>, R: Runner<S>>(
    plan: &P,
    state: &S,
    runner: &mut R,
    name: &'static str,
) -> Result<(Vec<Params>, Composite), Error> {
    let composite = runner.composite_start(name);
    let step = composite.step;
    let items = plan
        .prep(state, &runner.context(name, step))
        .await
        .map_err(|source| failed(name, step, Phase::Prep, source))?;
    Ok((items, composite))
}

/// The plan's `post` with every run; its update is applied and the whole batch committed as one
/// step.
async fn plan_post<S: SharedState, P: BatchPlan<S>, R: Runner<S>>(
    plan: &P,
    state: &mut S,
    runner: &mut R,
    name: &'static str,
    composite: Composite,
    runs: Vec<BatchRun>,
) -> Stepped {
    runner.resume_composite(name, Phase::Post);
    let step = composite.step;
    let command = plan
        .post(state, runs, &runner.context(name, step))
        .await
        .map_err(|source| failed(name, step, Phase::Post, source))?;
    runner
        .composite_finish(state, name, composite, command, P::ACTIONS)
        .await
}

fn failed(node: &'static str, step: u64, phase: Phase, source: NodeError) -> Error {
    Error::NodeFailed {
        node,
        step,
        phase,
        attempts: 1,
        source,
    }
}

/// Not a three-step node: a batch flow runs its plan and its sub-flow through [`Flow::run`]
/// (nested in a flow, or with [`run_node`](crate::run_node)). Its `prep`, `exec` and `post` are
/// not used.
///
/// [`Flow::run`]: crate::Flow::run
impl<S, F, P> Node<S> for BatchFlow<F, P>
where
    S: SharedState,
    F: Node<S>,
    P: BatchPlan<S>,
{
    const ACTIONS: &'static [&'static str] = P::ACTIONS;

    self_running_node!("a batch flow runs its own sub-flow: nest it in a flow, or call `run_node`");

    async fn __run<R: Runner<S>>(
        &self,
        runner: &mut R,
        state: &mut S,
        name: &'static str,
    ) -> Stepped {
        let (items, composite) = plan_prep(&self.plan, state, runner, name).await?;
        let step = composite.step;
        let base = runner.params().clone();
        let total = items.len();
        let mut runs = Vec::with_capacity(total);
        for (index, item) in items.into_iter().enumerate() {
            let params = base.merged(&item);
            // A run an earlier attempt of this step finished (a durable run resumed after a
            // failure or a crash): its kept update is applied instead of running it again.
            if let Some(kept) = runner.kept(name, step, index, F::ACTIONS)? {
                runner.resume_composite(name, Phase::Apply);
                runner.apply_from_copies(state, kept.update, kept.steps);
                runs.push(BatchRun {
                    params,
                    action: kept.action,
                });
                continue;
            }
            let outer = runner.replace_params(params.clone());
            runner.item_start(state, name, step, index)?;
            let outcome = self.flow.__run(runner, state, name).await;
            runner.replace_params(outer);
            let action = runner.item_finish(name, step, index, outcome).await?;
            runs.push(BatchRun { params, action });
            runner
                .context(name, step)
                .emitter()
                .item_finished(index, index + 1, total);
        }
        plan_post(&self.plan, state, runner, name, composite, runs).await
    }

    fn __graph(&self) -> Option<Graph> {
        self.flow.__graph().map(|graph| Graph {
            batch: true,
            ..graph
        })
    }
}

/// As for [`BatchFlow`]: run it nested in a flow, or with [`run_node`](crate::run_node).
impl<S, F, P> Node<S> for ConcurrentBatchFlow<F, P>
where
    S: SharedState + Clone,
    F: Node<S>,
    P: BatchPlan<S>,
{
    const ACTIONS: &'static [&'static str] = P::ACTIONS;

    self_running_node!("a batch flow runs its own sub-flow: nest it in a flow, or call `run_node`");

    async fn __run<R: Runner<S>>(
        &self,
        runner: &mut R,
        state: &mut S,
        name: &'static str,
    ) -> Stepped {
        let (items, composite) = plan_prep(&self.plan, state, runner, name).await?;
        let step = composite.step;
        let base = runner.params().clone();
        let params: Vec<Params> = items.iter().map(|item| base.merged(item)).collect();
        let total = params.len();
        let outcomes: Vec<Branch<S>> = {
            let shared: &S = state;
            let branches = runner.batch_branches(name, step);
            let context = runner.context(name, step);
            let emitter = context.emitter();
            let mut finished = 0;
            // Each run continues the numbering after the batch's own step, on its own copy. A run
            // an earlier attempt of this step finished (a durable run resumed after a failure or
            // a crash) is not run again: its kept outcome takes its place.
            let mut kept = Vec::with_capacity(total);
            for index in 0..total {
                kept.push(branches.kept(index, Some(F::ACTIONS))?);
            }
            let branches = &branches;
            // A run that pauses (in a durable run) does not stop the others: they finish and are
            // kept, and the batch pauses once all are done.
            let paused = std::sync::Mutex::new(None);
            let paused_ref = &paused;
            let outcomes = run_ordered(
                total,
                self.limit,
                |index| {
                    let kept = kept[index].take();
                    let params = &params[index];
                    let flow = &self.flow;
                    async move {
                        if let Some(kept) = kept {
                            return Ok(Some(kept));
                        }
                        let run = async {
                            let outcome = branches
                                .on_copy(flow, shared, Some(params), name, step + 1, Some(index))
                                .await?;
                            // Kept as soon as it finishes, while the other runs go on.
                            branches.keep(index, outcome).await
                        };
                        match run.await {
                            Ok(outcome) => Ok(Some(outcome)),
                            Err(error @ Error::Paused { .. }) => {
                                paused_ref
                                    .lock()
                                    .unwrap_or_else(std::sync::PoisonError::into_inner)
                                    .get_or_insert(error);
                                Ok(None)
                            }
                            Err(error) => Err(error),
                        }
                    }
                },
                |index| {
                    finished += 1;
                    emitter.item_finished(index, finished, total);
                },
            )
            .await?;
            if let Some(error) = paused
                .into_inner()
                .unwrap_or_else(std::sync::PoisonError::into_inner)
            {
                return Err(Box::new(error));
            }
            outcomes.into_iter().flatten().collect()
        };
        let runs: Vec<BatchRun> = outcomes
            .iter()
            .zip(params)
            .map(|(outcome, params)| BatchRun {
                params,
                action: outcome.action,
            })
            .collect();
        let mut outcomes: Vec<Option<Branch<S>>> = outcomes.into_iter().map(Some).collect();
        // In item order, the later write winning: as a sequential batch would have left it.
        let merged = merge_in_order(&mut outcomes, Conflicts::LaterWins)?;
        runner.resume_composite(name, Phase::Apply);
        runner.apply_from_copies(state, merged.update, merged.steps);
        plan_post(&self.plan, state, runner, name, composite, runs).await
    }

    fn __graph(&self) -> Option<Graph> {
        self.flow.__graph().map(|graph| Graph {
            batch: true,
            concurrent: true,
            ..graph
        })
    }
}

/// Runs `task(index)` for every index below `count`, at most `limit` at a time, starting them in
/// index order; the outputs come back in index order whatever order they finish in, and
/// `done(index)` is called as each finishes. The first error returns at once, dropping
/// (cancelling) the tasks still in flight. With a `limit` of 1 the tasks run one after another
/// in this future, with no task of their own.
async fn run_ordered<T, E, F, Fut>(
    count: usize,
    limit: usize,
    mut task: F,
    mut done: impl FnMut(usize),
) -> Result<Vec<T>, E>
where
    F: FnMut(usize) -> Fut,
    Fut: Future<Output = Result<T, E>>,
{
    if limit == 1 {
        let mut outputs = Vec::with_capacity(count);
        for index in 0..count {
            outputs.push(task(index).await?);
            done(index);
        }
        return Ok(outputs);
    }
    let mut outputs: Vec<Option<T>> = std::iter::repeat_with(|| None).take(count).collect();
    let mut running = stream::iter(0..count)
        .map(|index| tagged(index, task(index)))
        .buffer_unordered(limit);
    while let Some((index, output)) = running.next().await {
        outputs[index] = Some(output?);
        done(index);
    }
    Ok(outputs.into_iter().flatten().collect())
}

/// `future`, its output tagged with `index`. Through `map`, not an `async` block: a block keeps
/// the future twice (as its capture and as the future it awaits), and every item in flight
/// would carry both.
fn tagged<Fut: Future>(index: usize, future: Fut) -> impl Future<Output = (usize, Fut::Output)> {
    future.map(move |output| (index, output))
}

#[cfg(test)]
mod tests {
    use super::tagged;

    #[test]
    fn a_tagged_item_future_holds_its_future_once() {
        let buffer = [7_u8; 512];
        let item = async move {
            std::future::ready(()).await;
            buffer.len()
        };
        let size = std::mem::size_of_val(&item);
        assert!(size >= 512);
        let tagged = tagged(3, item);
        assert!(
            std::mem::size_of_val(&tagged) <= size + 16,
            "{} bytes for a {size}-byte future",
            std::mem::size_of_val(&tagged)
        );
        assert_eq!(
            crate::run::block_on(async { Ok(tagged.await) }).unwrap(),
            (3, 512)
        );
    }
}
