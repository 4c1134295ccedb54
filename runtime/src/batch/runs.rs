//! Batch flows: a sub-flow run once per params item of a [`BatchPlan`], one after another in place
//! ([`Runs`]) or concurrently on copies of the state ([`ConcurrentRuns`]). Each is a composite
//! node kind, written here against the run's composite steps alone.

use std::future::Future;

use super::ordered::run_ordered;
use super::{Batch, ConcurrentRuns, Runs};
use crate::error::{Error, NodeError, Phase};
use crate::graph::Graph;
use crate::node::dispatch::{Branch, BranchRunner, Composite, Runner, Stepped};
use crate::node::{Command, Context, DEFAULT_ACTION, Node, Params, self_running_node};
use crate::parallel::{Conflicts, merge_in_order};
use crate::state::SharedState;

/// What a batch flow ([`Batch::flow`]) runs over: `prep` returns one [`Params`] per run of the
/// sub-flow, and `post` sees every run.
///
/// ```
/// use serde::{Deserialize, Serialize};
/// use slateflow::batch::{Batch, BatchPlan, BatchRun};
/// use slateflow::{Command, Context, NodeError, Params, SharedState, flow, node};
///
/// #[derive(SharedState, Debug, Default, Serialize, Deserialize)]
/// struct Docs {
///     files: Vec<String>,
///     #[reducer(append)]
///     summaries: Vec<String>,
///     runs: usize,
/// }
///
/// /// One run per file, with the file's name as the param `file`.
/// struct EachFile;
///
/// impl BatchPlan<Docs> for EachFile {
///     async fn prep(&self, docs: &Docs, _: &Context<'_>) -> Result<Vec<Params>, NodeError> {
///         Ok(docs.files.iter().map(|file| Params::new().with("file", file.as_str())).collect())
///     }
///
///     async fn post(
///         &self,
///         _: &Docs,
///         runs: Vec<BatchRun>,
///         _: &Context<'_>,
///     ) -> Result<Command<Docs>, NodeError> {
///         Ok(Command::new(Docs::update().set_runs(runs.len())))
///     }
/// }
///
/// #[node]
/// fn summarise(_: &Docs, context: &Context<'_>) -> Command<Docs> {
///     let file = context.params().get_str("file").unwrap_or_default();
///     Command::new(Docs::update().push_summaries(format!("summary of {file}")))
/// }
///
/// let per_file = Batch::flow(flow! { summarise; }, EachFile);
/// let mut docs = Docs { files: vec!["a.md".into(), "b.md".into()], ..Docs::default() };
/// flow! { per_file; }.run_blocking(&mut docs)?;
/// assert_eq!(docs.summaries, ["summary of a.md", "summary of b.md"]);
/// assert_eq!(docs.runs, 2);
/// # Ok::<(), slateflow::Error>(())
/// ```
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

/// One run of a batch flow's sub-flow, as its plan's [`post`](BatchPlan::post) sees it: PocketFlow
/// drops them, here `post` gets every run's params and last action.
///
/// ```
/// use slateflow::Params;
/// use slateflow::batch::BatchRun;
///
/// let run = BatchRun { params: Params::new().with("file", "a.md"), action: "default" };
/// assert_eq!(run.params.get_str("file"), Some("a.md"));
/// ```
#[derive(Debug, Clone, PartialEq)]
pub struct BatchRun {
    /// The params the run had: the batch flow's, merged with the item's.
    pub params: Params,
    /// The run's last action.
    pub action: &'static str,
}

/// A [`BatchPlan`] from a closure that maps the state to the list of params; its `post` does
/// nothing. Made by [`from_fn`].
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
/// use slateflow::batch::{BatchPlan, FnPlan};
///
/// // `batch::from_fn` makes a plan from a closure: one params item per run.
/// let plan: FnPlan<_> = batch::from_fn(|words: &Words| {
///     (0..words.texts.len()).map(|index| Params::new().with("index", index)).collect()
/// });
/// let runs = Batch::flow(flow! { count_one; }, plan);
/// let mut words = Words { texts, ..Words::default() };
/// flow! { runs; }.run_blocking(&mut words)?;
/// assert_eq!(words.count, 3);
/// # Ok::<(), slateflow::Error>(())
/// ```
#[derive(Clone, Copy)]
pub struct FnPlan<F> {
    function: F,
}

impl<F> std::fmt::Debug for FnPlan<F> {
    fn fmt(&self, formatter: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        formatter.write_str("FnPlan")
    }
}

/// A [`BatchPlan`] from a closure: one params item per run of the batch flow.
///
/// ```
/// use serde::{Deserialize, Serialize};
/// use slateflow::batch::{self, Batch};
/// use slateflow::{Command, Context, Params, SharedState, flow, node};
///
/// #[derive(SharedState, Debug, Default, Serialize, Deserialize)]
/// struct Docs {
///     files: Vec<String>,
///     #[reducer(append)]
///     seen: Vec<String>,
/// }
///
/// #[node]
/// fn read(_: &Docs, context: &Context<'_>) -> Command<Docs> {
///     let file = context.params().get_str("file").unwrap_or_default().to_string();
///     Command::new(Docs::update().push_seen(file))
/// }
///
/// let plan = batch::from_fn(|docs: &Docs| {
///     docs.files.iter().map(|file| Params::new().with("file", file.as_str())).collect()
/// });
/// let each_file = Batch::flow(flow! { read; }, plan);
/// let mut docs = Docs { files: vec!["a.md".into(), "b.md".into()], ..Docs::default() };
/// flow! { each_file; }.run_blocking(&mut docs)?;
/// assert_eq!(docs.seen, ["a.md", "b.md"]);
/// # Ok::<(), slateflow::Error>(())
/// ```
pub fn from_fn<S, F>(function: F) -> FnPlan<F>
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

/// The batch flow's own step: its plan's `prep`, at a new composite step. Returns the items
/// (merged over the run's params) and the step.
async fn plan_prep<S: SharedState, P: BatchPlan<S>, R: Runner<S>>(
    plan: &P,
    state: &S,
    runner: &mut R,
    name: &'static str,
) -> Result<(Vec<Params>, Composite), Error> {
    let composite = runner.composite_start(name);
    let context = runner.composite_context(&composite, Phase::Prep);
    let items = plan
        .prep(state, &context)
        .await
        .map_err(|source| failed(name, composite.step(), Phase::Prep, source))?;
    let base = context.params();
    let items = items.iter().map(|item| base.merged(item)).collect();
    Ok((items, composite))
}

/// The plan's `post` with every run; its update is applied and the whole batch committed as one
/// step.
async fn plan_post<S: SharedState, P: BatchPlan<S>, R: Runner<S>>(
    plan: &P,
    state: &mut S,
    runner: &mut R,
    composite: Composite,
    runs: Vec<BatchRun>,
) -> Stepped {
    let name = composite.name;
    let context = runner.composite_context(&composite, Phase::Post);
    let command = plan
        .post(state, runs, &context)
        .await
        .map_err(|source| failed(name, composite.step(), Phase::Post, source))?;
    runner
        .composite_finish(state, composite, command, P::ACTIONS)
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

/// Not a three-step node: a batch flow runs its plan and its sub-flow nested in a flow. Its
/// `prep`, `exec` and `post` are not used.
impl<S, F, P> Node<S> for Batch<Runs<F, P>>
where
    S: SharedState,
    F: Node<S>,
    P: BatchPlan<S>,
{
    const ACTIONS: &'static [&'static str] = P::ACTIONS;

    self_running_node!("a batch flow runs its own sub-flow: nest it in a flow");

    async fn __run<R: Runner<S>>(
        &self,
        runner: &mut R,
        state: &mut S,
        name: &'static str,
    ) -> Stepped {
        let Runs { flow, plan } = &self.work;
        let (items, composite) = plan_prep(plan, state, runner, name).await?;
        let total = items.len();
        let mut runs = Vec::with_capacity(total);
        for (index, params) in items.into_iter().enumerate() {
            let action = runner
                .run_in_place(&composite, index, params.clone(), flow, state)
                .await?;
            runs.push(BatchRun { params, action });
            runner
                .composite_context(&composite, Phase::Apply)
                .item_finished(index, index + 1, total);
        }
        plan_post(plan, state, runner, composite, runs).await
    }

    fn __graph(&self) -> Option<Graph> {
        self.work.flow.__graph().map(|graph| Graph {
            batch: true,
            ..graph
        })
    }
}

/// As for [`Batch<Runs<F, P>>`], the runs each on their own copy of the state.
impl<S, F, P> Node<S> for Batch<ConcurrentRuns<F, P>>
where
    S: SharedState + Clone,
    F: Node<S>,
    P: BatchPlan<S>,
{
    const ACTIONS: &'static [&'static str] = P::ACTIONS;

    self_running_node!("a batch flow runs its own sub-flow: nest it in a flow");

    async fn __run<R: Runner<S>>(
        &self,
        runner: &mut R,
        state: &mut S,
        name: &'static str,
    ) -> Stepped {
        let ConcurrentRuns { flow, plan } = &self.work;
        let (params, composite) = plan_prep(plan, state, runner, name).await?;
        let outcomes = {
            let branches = runner.runs_on_copies(&composite);
            run_on_copies(&branches, &composite, flow, state, &params, self.limit).await?
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
        runner.runs_applied(state, &composite, merged);
        plan_post(plan, state, runner, composite, runs).await
    }

    fn __graph(&self) -> Option<Graph> {
        self.work.flow.__graph().map(|graph| Graph {
            batch: true,
            concurrent: true,
            ..graph
        })
    }
}

/// Runs `flow` once per item of `params`, at most `limit` at a time, each on its own copy of
/// `state`, numbering its steps on from the composite step's. A run an earlier attempt of the
/// step finished (a durable run resumed after a failure or a crash) is not run again: its kept
/// outcome takes its place. A run that pauses (in a durable run) does not stop the others: they
/// finish and are kept, and the batch pauses once all are done.
async fn run_on_copies<S, F, B>(
    branches: &B,
    composite: &Composite,
    flow: &F,
    state: &S,
    params: &[Params],
    limit: usize,
) -> Result<Vec<Branch<S>>, Box<Error>>
where
    S: SharedState + Clone,
    F: Node<S>,
    B: BranchRunner<S>,
{
    let (name, step) = (composite.name, composite.step());
    let total = params.len();
    let mut kept = Vec::with_capacity(total);
    for index in 0..total {
        kept.push(branches.kept(index, Some(F::ACTIONS))?);
    }
    let paused = std::sync::Mutex::new(None);
    let paused_ref = &paused;
    let mut finished = 0;
    let outcomes = run_ordered(
        total,
        limit,
        |index| {
            let kept = kept[index].take();
            let params = &params[index];
            async move {
                if let Some(kept) = kept {
                    return Ok(Some(kept));
                }
                let run = async {
                    let outcome = branches
                        .on_copy(flow, state, Some(params), name, step + 1, Some(index))
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
            branches.progress(index, finished, total);
        },
    )
    .await?;
    if let Some(error) = paused
        .into_inner()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
    {
        return Err(Box::new(error));
    }
    Ok(outcomes.into_iter().flatten().collect())
}
