//! Batches: one node's work over many items, and one flow run over many params, all made with
//! one builder, [`Batch`].
//!
//! | to run | call | what it is |
//! |---|---|---|
//! | a [`BatchNode`]'s `exec` once per item, one after another | [`Batch::items(node)`](Batch::items) | a node |
//! | ... up to `n` items at a time | `.concurrent(n)` | the same node |
//! | ... keeping each item's output as it finishes, in a durable run | `.kept()` | the same node |
//! | a sub-flow once per params item of a [`BatchPlan`], in place | [`Batch::flow(sub_flow, plan)`](Batch::flow) | a node |
//! | ... up to `n` runs at a time, each on its own copy of the state | `.concurrent(n)` | the same node |
//!
//! - Items: `prep` returns the items; `exec` runs once per item, with the node's [`Retry`] and
//!   `exec_fallback` applied to each item on its own; `post` receives the outputs in input order.
//!   Concurrent items keep that order, whatever order they finish in (model endpoints have rate
//!   limits: hence the limit). In a durable run, a kept batch saves each item's output as it
//!   finishes, so a resume after a crash makes only the calls that had not answered.
//! - Batch flows: the plan's `prep` returns one [`Params`] per run, merged over the run's params
//!   (the item wins, as in PocketFlow); each run of the sub-flow sees them. Runs in place see the
//!   updates of the runs before them. Concurrent runs each work on their own copy of the state
//!   and merge back in item order (`add` fields sum, `append` fields concatenate in item order, a
//!   last-write-wins field keeps the last item's write, as a sequential batch would): the state
//!   must be `Clone`. Unlike PocketFlow's concurrent runs, which race on one shared store, ours
//!   are deterministic: aggregate after the batch, not inside it. The plan's `post` receives
//!   every run's params and last action ([`BatchRun`]); PocketFlow drops them.
//!
//! The first item (or run) that fails fails the batch: those still in flight are cancelled
//! (dropped) and nothing of the batch's step is applied.
//!
//! This module owns the batch node kinds (`items`: batches of items; `runs`: batch flows, a
//! composite node kind written against the run's composite steps) and running futures in order
//! (`ordered`). It knows the run only through [`Runner`](crate::node::dispatch::Runner).
//!
//! [`Retry`]: crate::Retry
//! [`Params`]: crate::Params

mod items;
mod ordered;
mod runs;

pub use items::{BatchNode, ItemFailed};
pub use runs::{BatchPlan, BatchRun, FnPlan, from_fn};

use crate::node::actions::{DeclaresAction, StaticActions};

/// The one builder of batches: see the [module documentation](self) for what each call makes.
/// A batch is a node: put it in a flow.
///
/// ```
/// use serde::{Deserialize, Serialize};
/// use slateflow::batch::{self, Batch, BatchNode};
/// use slateflow::{Command, Context, NodeError, Params, SharedState, flow, node};
///
/// #[derive(SharedState, Clone, Debug, Default, Serialize, Deserialize)]
/// struct Docs {
///     names: Vec<String>,
///     #[reducer(append)]
///     lengths: Vec<usize>,
///     #[reducer(add)]
///     words: usize,
/// }
///
/// /// One model call per document in real life.
/// struct Measure;
///
/// impl BatchNode<Docs> for Measure {
///     type Item = String;
///     type Output = usize;
///
///     async fn prep(&self, docs: &Docs, _: &Context<'_>) -> Result<Vec<String>, NodeError> {
///         Ok(docs.names.clone())
///     }
///
///     async fn exec(&self, name: &String) -> Result<usize, NodeError> {
///         Ok(name.len())
///     }
///
///     async fn post(
///         &self,
///         _: &Docs,
///         _: Vec<String>,
///         lengths: Vec<usize>,
///         _: &Context<'_>,
///     ) -> Result<Command<Docs>, NodeError> {
///         Ok(Command::new(Docs::update().extend_lengths(lengths)))
///     }
/// }
///
/// #[node]
/// fn count(_: &Docs, context: &Context<'_>) -> Command<Docs> {
///     let name = context.params().get_str("name").unwrap_or_default();
///     Command::new(Docs::update().add_words(name.split('.').count()))
/// }
///
/// // Per item, four at a time; then the `count` flow once per name, two at a time.
/// let measure = Batch::items(Measure).concurrent(4);
/// let plan = batch::from_fn(|docs: &Docs| {
///     docs.names.iter().map(|name| Params::new().with("name", name.as_str())).collect()
/// });
/// let per_name = Batch::flow(flow! { count; }, plan).concurrent(2);
/// let flow = flow! { measure >> per_name; };
///
/// let mut docs = Docs { names: vec!["a.md".into(), "notes.txt".into()], ..Docs::default() };
/// flow.run_blocking(&mut docs)?;
/// assert_eq!(docs.lengths, [4, 9]);
/// assert_eq!(docs.words, 4);
/// # Ok::<(), slateflow::Error>(())
/// ```
#[derive(Debug, Clone, Copy)]
pub struct Batch<W> {
    work: W,
    /// How many items (or runs) go at a time.
    limit: usize,
}

/// What [`Batch::items`] makes: a [`BatchNode`]'s items, as a node.
///
/// ```
/// # use serde::{Deserialize, Serialize};
/// # use slateflow::batch::{self, Batch, BatchNode};
/// # use slateflow::{Command, Context, NodeError, Params, SharedState, flow, node};
/// # #[derive(SharedState, Clone, Debug, Default, Serialize, Deserialize)]
/// # struct Words { texts: Vec<String>, #[reducer(add)] count: usize }
/// # struct Count;
/// # impl BatchNode<Words> for Count {
/// #     type Item = String;
/// #     type Output = usize;
/// #     async fn prep(&self, words: &Words, _: &Context<'_>) -> Result<Vec<String>, NodeError> { Ok(words.texts.clone()) }
/// #     async fn exec(&self, text: &String) -> Result<usize, NodeError> { Ok(text.split_whitespace().count()) }
/// #     async fn post(&self, _: &Words, _: Vec<String>, counts: Vec<usize>, _: &Context<'_>) -> Result<Command<Words>, NodeError> {
/// #         Ok(Command::new(Words::update().add_count(counts.iter().sum())))
/// #     }
/// # }
/// # #[node]
/// # fn count_one(words: &Words, context: &Context<'_>) -> Command<Words> {
/// #     let index: usize = context.params().get("index").and_then(|v| v.as_u64()).unwrap_or(0) as usize;
/// #     let text = words.texts.get(index).cloned().unwrap_or_default();
/// #     Command::new(Words::update().add_count(text.split_whitespace().count()))
/// # }
/// # let texts = vec!["one two".to_string(), "three".to_string()];
/// use slateflow::batch::Items;
///
/// // `Batch::items` makes an `Items`: the batch node's items one after another.
/// let count: Batch<Items<Count>> = Batch::items(Count);
/// let mut words = Words { texts, ..Words::default() };
/// flow! { count; }.run_blocking(&mut words)?;
/// assert_eq!(words.count, 3);
/// # Ok::<(), slateflow::Error>(())
/// ```
#[derive(Debug, Clone, Copy)]
pub struct Items<B>(B);

/// What [`Batch::kept`] makes: a [`BatchNode`]'s items, each output kept as it finishes in a
/// durable run.
///
/// ```
/// # use serde::{Deserialize, Serialize};
/// # use slateflow::batch::{self, Batch, BatchNode};
/// # use slateflow::{Command, Context, NodeError, Params, SharedState, flow, node};
/// # #[derive(SharedState, Clone, Debug, Default, Serialize, Deserialize)]
/// # struct Words { texts: Vec<String>, #[reducer(add)] count: usize }
/// # struct Count;
/// # impl BatchNode<Words> for Count {
/// #     type Item = String;
/// #     type Output = usize;
/// #     async fn prep(&self, words: &Words, _: &Context<'_>) -> Result<Vec<String>, NodeError> { Ok(words.texts.clone()) }
/// #     async fn exec(&self, text: &String) -> Result<usize, NodeError> { Ok(text.split_whitespace().count()) }
/// #     async fn post(&self, _: &Words, _: Vec<String>, counts: Vec<usize>, _: &Context<'_>) -> Result<Command<Words>, NodeError> {
/// #         Ok(Command::new(Words::update().add_count(counts.iter().sum())))
/// #     }
/// # }
/// # #[node]
/// # fn count_one(words: &Words, context: &Context<'_>) -> Command<Words> {
/// #     let index: usize = context.params().get("index").and_then(|v| v.as_u64()).unwrap_or(0) as usize;
/// #     let text = words.texts.get(index).cloned().unwrap_or_default();
/// #     Command::new(Words::update().add_count(text.split_whitespace().count()))
/// # }
/// # let texts = vec!["one two".to_string(), "three".to_string()];
/// use slateflow::batch::KeptItems;
/// use slateflow::checkpoint::MemoryStore;
///
/// // In a durable run, each item's output is kept as it finishes: a resume after a crash or a
/// // failure calls only the items that did not finish.
/// let count: Batch<KeptItems<Count>> = Batch::items(Count).kept();
/// let flow = flow! { count; };
/// let durable = flow.durable(MemoryStore::new());
/// let mut words = Words { texts, ..Words::default() };
/// durable.blocking()?.start("t-1", &mut words)?;
/// assert_eq!(words.count, 3);
/// # Ok::<(), slateflow::Error>(())
/// ```
#[derive(Debug, Clone, Copy)]
pub struct KeptItems<B>(B);

/// What [`Batch::flow`] makes: a sub-flow run once per params item of a plan, in place.
///
/// ```
/// # use serde::{Deserialize, Serialize};
/// # use slateflow::batch::{self, Batch, BatchNode};
/// # use slateflow::{Command, Context, NodeError, Params, SharedState, flow, node};
/// # #[derive(SharedState, Clone, Debug, Default, Serialize, Deserialize)]
/// # struct Words { texts: Vec<String>, #[reducer(add)] count: usize }
/// # struct Count;
/// # impl BatchNode<Words> for Count {
/// #     type Item = String;
/// #     type Output = usize;
/// #     async fn prep(&self, words: &Words, _: &Context<'_>) -> Result<Vec<String>, NodeError> { Ok(words.texts.clone()) }
/// #     async fn exec(&self, text: &String) -> Result<usize, NodeError> { Ok(text.split_whitespace().count()) }
/// #     async fn post(&self, _: &Words, _: Vec<String>, counts: Vec<usize>, _: &Context<'_>) -> Result<Command<Words>, NodeError> {
/// #         Ok(Command::new(Words::update().add_count(counts.iter().sum())))
/// #     }
/// # }
/// # #[node]
/// # fn count_one(words: &Words, context: &Context<'_>) -> Command<Words> {
/// #     let index: usize = context.params().get("index").and_then(|v| v.as_u64()).unwrap_or(0) as usize;
/// #     let text = words.texts.get(index).cloned().unwrap_or_default();
/// #     Command::new(Words::update().add_count(text.split_whitespace().count()))
/// # }
/// # let texts = vec!["one two".to_string(), "three".to_string()];
/// use slateflow::batch::Runs;
///
/// // A sub-flow run once per params item, one after another, on the state in place.
/// let per_text = batch::from_fn(|words: &Words| {
///     (0..words.texts.len()).map(|index| Params::new().with("index", index)).collect()
/// });
/// let runs: Batch<Runs<_, _>> = Batch::flow(flow! { count_one; }, per_text);
/// let mut words = Words { texts, ..Words::default() };
/// flow! { runs; }.run_blocking(&mut words)?;
/// assert_eq!(words.count, 3);
/// # Ok::<(), slateflow::Error>(())
/// ```
#[derive(Debug, Clone, Copy)]
pub struct Runs<F, P> {
    flow: F,
    plan: P,
}

/// What `concurrent` makes of a batch flow ([`Batch::flow`]): its runs concurrent, each on its own copy
/// of the state.
///
/// ```
/// # use serde::{Deserialize, Serialize};
/// # use slateflow::batch::{self, Batch, BatchNode};
/// # use slateflow::{Command, Context, NodeError, Params, SharedState, flow, node};
/// # #[derive(SharedState, Clone, Debug, Default, Serialize, Deserialize)]
/// # struct Words { texts: Vec<String>, #[reducer(add)] count: usize }
/// # struct Count;
/// # impl BatchNode<Words> for Count {
/// #     type Item = String;
/// #     type Output = usize;
/// #     async fn prep(&self, words: &Words, _: &Context<'_>) -> Result<Vec<String>, NodeError> { Ok(words.texts.clone()) }
/// #     async fn exec(&self, text: &String) -> Result<usize, NodeError> { Ok(text.split_whitespace().count()) }
/// #     async fn post(&self, _: &Words, _: Vec<String>, counts: Vec<usize>, _: &Context<'_>) -> Result<Command<Words>, NodeError> {
/// #         Ok(Command::new(Words::update().add_count(counts.iter().sum())))
/// #     }
/// # }
/// # #[node]
/// # fn count_one(words: &Words, context: &Context<'_>) -> Command<Words> {
/// #     let index: usize = context.params().get("index").and_then(|v| v.as_u64()).unwrap_or(0) as usize;
/// #     let text = words.texts.get(index).cloned().unwrap_or_default();
/// #     Command::new(Words::update().add_count(text.split_whitespace().count()))
/// # }
/// # let texts = vec!["one two".to_string(), "three".to_string()];
/// use slateflow::batch::ConcurrentRuns;
///
/// // The runs concurrently, up to 4 at a time, each on its own copy of the state; their updates
/// // merge in the plan's order.
/// let per_text = batch::from_fn(|words: &Words| {
///     (0..words.texts.len()).map(|index| Params::new().with("index", index)).collect()
/// });
/// let runs: Batch<ConcurrentRuns<_, _>> = Batch::flow(flow! { count_one; }, per_text).concurrent(4);
/// let mut words = Words { texts, ..Words::default() };
/// flow! { runs; }.run_blocking(&mut words)?;
/// assert_eq!(words.count, 3);
/// # Ok::<(), slateflow::Error>(())
/// ```
#[derive(Debug, Clone, Copy)]
pub struct ConcurrentRuns<F, P> {
    flow: F,
    plan: P,
}

impl<B> Batch<Items<B>> {
    /// Runs `node`'s `exec` once per item, one after another, in input order.
    pub fn items(node: B) -> Self {
        Self {
            work: Items(node),
            limit: 1,
        }
    }

    /// Runs up to `limit` items at a time (at least one); outputs stay in input order.
    #[must_use]
    pub fn concurrent(mut self, limit: usize) -> Self {
        self.limit = limit.max(1);
        self
    }

    /// Keeps each item's output as it finishes, in a durable run: a resume after a failure or a
    /// crash in the middle of the batch runs only the items that had not finished.
    ///
    /// A map-reduce of 200 model calls killed after 94 had answered resumes with those 94 answers
    /// and makes the other 106 calls. Each finished item's output is saved (as a
    /// [`RecordKind::Kept`](crate::checkpoint::RecordKind::Kept) record, with a checksum of its
    /// item) before the step is; on resume, `prep` runs again, and an item whose output was
    /// kept, and which is the same item (same JSON), is not run again. The step itself is saved
    /// once, as for any node. Outside a durable run, or where a step is not saved on its own
    /// (inside a batch flow's runs, or as a fork branch), it runs as the plain batch. The items
    /// and outputs must serialize.
    ///
    /// An input at the paused step ([`Durable::update`](crate::durable::Durable::update))
    /// discards what was kept; so does a kept output that no longer reads back as `Output` (the
    /// item runs again).
    ///
    /// ```
    /// use serde::{Deserialize, Serialize};
    /// use slateflow::batch::{Batch, BatchNode};
    /// use slateflow::checkpoint::MemoryStore;
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
    /// let summarise = Batch::items(Summarise).concurrent(8).kept();
    /// let flow = flow! { summarise; };
    /// let durable = flow.durable(MemoryStore::new()).blocking()?;
    /// let mut docs = Docs { names: vec!["a.md".into(), "b.md".into()], ..Docs::default() };
    /// durable.start("docs", &mut docs)?;
    /// assert_eq!(docs.summaries, ["summary of a.md", "summary of b.md"]);
    /// # Ok::<(), slateflow::Error>(())
    /// ```
    pub fn kept(self) -> Batch<KeptItems<B>> {
        Batch {
            work: KeptItems(self.work.0),
            limit: self.limit,
        }
    }

    /// The batch node.
    pub fn node(&self) -> &B {
        &self.work.0
    }
}

impl<B> Batch<KeptItems<B>> {
    /// Runs up to `limit` items at a time (at least one); outputs stay in input order.
    #[must_use]
    pub fn concurrent(mut self, limit: usize) -> Self {
        self.limit = limit.max(1);
        self
    }

    /// The batch node.
    pub fn node(&self) -> &B {
        &self.work.0
    }
}

impl<F, P> Batch<Runs<F, P>> {
    /// Runs `flow` (any [`Node`](crate::Node), usually a [`Flow`](crate::Flow)) once per item of
    /// `plan`, one after another, in place on the state: each run sees the updates of the runs
    /// before it.
    ///
    /// The batch flow takes one step of its own for its plan's `prep`, and its runs' node steps
    /// follow; its plan's `post` and update end that step's work, which is applied (and, in a
    /// durable run, saved) as one step. A batch flow nested in a batch flow merges its items
    /// over params that already hold the outer item's (they accumulate, level by level). See
    /// [`BatchPlan`] for an example.
    pub fn flow(flow: F, plan: P) -> Self {
        Self {
            work: Runs { flow, plan },
            limit: 1,
        }
    }

    /// Runs up to `limit` runs at a time (at least one), each on its own copy of the state; they
    /// cannot see each other's updates, which are composed in item order when all have finished
    /// and applied once, through the reducers. The state must be `Clone`.
    pub fn concurrent(self, limit: usize) -> Batch<ConcurrentRuns<F, P>> {
        let Runs { flow, plan } = self.work;
        Batch {
            work: ConcurrentRuns { flow, plan },
            limit: limit.max(1),
        }
    }
}

impl<W> Batch<W> {
    /// How many items (or runs) go at a time: 1 unless `concurrent`.
    pub fn limit(&self) -> usize {
        self.limit
    }
}

// A batch declares what its batch node (or its plan) declares, for `flow!`'s checks of the edges
// leaving it in `cargo check`.
impl<S, B: StaticActions<S>> StaticActions<S> for Batch<Items<B>> {}
#[diagnostic::do_not_recommend]
impl<S, B: DeclaresAction<S, KEY>, const KEY: u64> DeclaresAction<S, KEY> for Batch<Items<B>> {}
impl<S, B: StaticActions<S>> StaticActions<S> for Batch<KeptItems<B>> {}
#[diagnostic::do_not_recommend]
impl<S, B: DeclaresAction<S, KEY>, const KEY: u64> DeclaresAction<S, KEY> for Batch<KeptItems<B>> {}
impl<S, F, P: StaticActions<S>> StaticActions<S> for Batch<Runs<F, P>> {}
#[diagnostic::do_not_recommend]
impl<S, F, P: DeclaresAction<S, KEY>, const KEY: u64> DeclaresAction<S, KEY> for Batch<Runs<F, P>> {}
impl<S, F, P: StaticActions<S>> StaticActions<S> for Batch<ConcurrentRuns<F, P>> {}
#[diagnostic::do_not_recommend]
impl<S, F, P: DeclaresAction<S, KEY>, const KEY: u64> DeclaresAction<S, KEY>
    for Batch<ConcurrentRuns<F, P>>
{
}
