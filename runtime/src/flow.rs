//! Flows: graphs of nodes wired by [`flow!`](crate::flow!), and the executor that runs them.
//!
//! A run walks from the start node. After each node its update is applied through the reducers, and
//! the action it returned picks the next node; an action with no edge ends the run, which returns
//! that action (PocketFlow). A flow is itself a [`Node`]: nested in another flow it runs its own
//! graph in place on the same state, applies each of its nodes' updates once, and returns its last
//! action for the parent to route on.
//!
//! This module owns the run loop's pieces: one node step (prep, exec with retries and timeout, post,
//! apply), the same step as a branch (handing its update back instead of applying it), runs on a
//! copy of the state that record what they apply, the step limit, params and panics. Joining and
//! merging branches is [`parallel`](crate::parallel)'s; batches are [`batch`](crate::batch)'s. It
//! knows nothing about storage.

use std::any::Any;
use std::future::{Future, poll_fn};
use std::marker::PhantomData;
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::pin::pin;
use std::task::Poll;
use std::time::Duration;

use crate::durable::Journal;
use crate::error::{Error, Phase};
use crate::graph::Graph;
use crate::node::{Command, Context, Node, NodeError, Params, Retry};
use crate::state::{SharedState, StateUpdate};

/// The default step limit of a flow: it stops runaway cycles.
pub const DEFAULT_MAX_STEPS: u64 = 10_000;

/// The [`Node`] items of a node that runs itself through `__run` (a flow, a batch flow): `prep`,
/// `exec` and `post`, which no run calls (`prep` fails with `$unused`, should anyone call it), and
/// `__branch`, which runs it on its own copy of the state, since its steps must see each other's
/// updates.
macro_rules! self_running_node {
    ($unused:literal) => {
        type Prep = ();
        type Exec = ();

        async fn prep(&self, _: &S, _: &Context<'_>) -> Result<(), NodeError> {
            Err($unused.into())
        }

        async fn exec(&self, (): &()) -> Result<(), NodeError> {
            Ok(())
        }

        async fn post(
            &self,
            _: &S,
            (): (),
            (): (),
            _: &Context<'_>,
        ) -> Result<Command<S>, NodeError> {
            Ok(Command::default())
        }

        fn __branch<'a>(
            &'a self,
            state: &'a S,
            params: &'a Params,
            name: &'static str,
            step: u64,
        ) -> impl Future<Output = Result<Branch<S>, Error>> + Send + 'a
        where
            S: Clone,
        {
            $crate::flow::branch_on_copy(self, state, params, name, step)
        }
    };
}
pub(crate) use self_running_node;

/// A flow built by [`flow!`](crate::flow!): its nodes, their wiring, a step limit and params.
///
/// `G` is the graph type the macro generates; `S` the state every node works on.
pub struct Flow<S, G> {
    graph: G,
    max_steps: u64,
    params: Params,
    state: PhantomData<fn(&mut S)>,
}

impl<S: SharedState, G: FlowGraph<S>> Flow<S, G> {
    /// Called by `flow!`.
    #[doc(hidden)]
    pub fn __new(graph: G, _state: StateType<S>) -> Self {
        // Forces the compile-time checks of the wiring (declared actions, exhaustiveness).
        let () = G::CHECKS;
        Self {
            graph,
            max_steps: DEFAULT_MAX_STEPS,
            params: Params::new(),
            state: PhantomData,
        }
    }

    /// Lets at most `max_steps` node steps run (nodes of nested flows count), then fails with
    /// [`Error::StepLimit`] naming the node it stopped before. A limit of N lets exactly N steps run.
    #[must_use]
    pub fn with_max_steps(mut self, max_steps: u64) -> Self {
        self.max_steps = max_steps;
        self
    }

    /// Sets the params every node of a run reads. They replace those of the flows nested in it.
    #[must_use]
    pub fn with_params(mut self, params: Params) -> Self {
        self.params = params;
        self
    }

    /// The flow's step limit.
    pub fn max_steps(&self) -> u64 {
        self.max_steps
    }

    /// The flow's own params.
    pub fn params(&self) -> &Params {
        &self.params
    }

    /// Runs the flow on `state` from its start node and returns the last action.
    ///
    /// # Errors
    /// The first [`Error`] of a node step, or [`Error::StepLimit`]. The state keeps every update
    /// applied before the failing step; nothing of that step is applied. A panic in a node is caught
    /// and returned as [`Error::Panic`], naming the node, the step and the phase.
    pub async fn run(&self, state: &mut S) -> Result<&'static str, Error> {
        self.run_with_params(state, self.params.clone()).await
    }

    /// Runs the flow with `params` instead of its own.
    ///
    /// # Errors
    /// As [`run`](Self::run).
    pub async fn run_with_params(
        &self,
        state: &mut S,
        params: Params,
    ) -> Result<&'static str, Error> {
        let mut run = RunContext::new(params);
        // Panics are caught once per run; each step records where it is (see `run_step`).
        let outcome = catch_panic(self.graph.run(state, &mut run, self.max_steps)).await;
        outcome.unwrap_or_else(|payload| Err(run.panic_error(payload)))
    }

    /// Runs the flow's graph with a run context made elsewhere (a durable run's).
    pub(crate) fn run_in<'a>(
        &'a self,
        state: &'a mut S,
        run: &'a mut RunContext<S>,
    ) -> impl Future<Output = Result<&'static str, Error>> + Send + 'a {
        self.graph.run(state, run, self.max_steps)
    }

    /// Runs the flow to the end on a new single-threaded tokio runtime, for synchronous callers.
    /// Call it outside any tokio runtime (tokio refuses to start one inside another).
    ///
    /// # Errors
    /// As [`run`](Self::run), and [`Error::Runtime`] when the runtime cannot start.
    pub fn run_blocking(&self, state: &mut S) -> Result<&'static str, Error> {
        block_on(self.run(state))
    }

    /// The flow's graph: nodes with their declared actions, edges, start, nested flows. Serializes to
    /// JSON for UIs.
    pub fn graph(&self) -> Graph {
        self.graph.describe()
    }

    /// The graph as a Mermaid flowchart, nested flows as subgraphs.
    pub fn mermaid(&self) -> String {
        self.graph().mermaid()
    }
}

impl<S, G> std::fmt::Debug for Flow<S, G> {
    fn fmt(&self, formatter: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        formatter
            .debug_struct("Flow")
            .field("max_steps", &self.max_steps)
            .field("params", &self.params)
            .finish_non_exhaustive()
    }
}

/// A flow is a node: nested in another flow, it runs its graph in place on the parent's state and
/// returns its last action. Its [`ACTIONS`](Node::ACTIONS) are the actions its nodes declare but do
/// not wire, i.e. the actions it can end with. Its `prep`, `exec` and `post` are not used: a flow
/// runs through [`Flow::run`] or as a node of another flow.
impl<S: SharedState, G: FlowGraph<S>> Node<S> for Flow<S, G> {
    const ACTIONS: &'static [&'static str] = G::ACTIONS;

    self_running_node!("a flow runs its own nodes: call `Flow::run`, or nest it in another flow");

    fn __run<'a>(
        &'a self,
        state: &'a mut S,
        run: &'a mut RunContext<S>,
        _name: &'static str,
    ) -> impl Future<Output = Result<&'static str, Error>> + Send + 'a {
        // The run's params, set by the outermost flow, replace this flow's own (PocketFlow).
        self.graph.run(state, run, self.max_steps)
    }

    fn __graph(&self) -> Option<Graph> {
        Some(self.graph())
    }
}

/// The graph type `flow!` generates. Not implemented by hand.
#[doc(hidden)]
pub trait FlowGraph<S: SharedState>: Send + Sync {
    /// The actions the flow can end with, computed at compile time.
    const TERMINAL: crate::__private::ActionSet;
    /// The actions the flow can end with: declared by its nodes, not wired.
    const ACTIONS: &'static [&'static str] = Self::TERMINAL.list.split_at(Self::TERMINAL.len).0;
    /// Compile-time checks of the wiring; evaluating it fails the build when one fails.
    const CHECKS: ();

    /// Runs from the start node; at most `max_steps` node steps.
    fn run<'a>(
        &'a self,
        state: &'a mut S,
        run: &'a mut RunContext<S>,
        max_steps: u64,
    ) -> impl Future<Output = Result<&'static str, Error>> + Send + 'a;

    /// The graph, for export.
    fn describe(&self) -> Graph;
}

/// Names the state type of a flow while `flow!` builds it, so that a node over another state is an
/// error at that node.
#[doc(hidden)]
pub struct StateType<S>(PhantomData<fn(&mut S)>);

impl<S> StateType<S> {
    #[doc(hidden)]
    pub const fn new() -> Self {
        Self(PhantomData)
    }
}

impl<S> Default for StateType<S> {
    fn default() -> Self {
        Self::new()
    }
}

/// What one run carries from step to step: the step count, the params, where it is (for panics)
/// and, for a run on a copy of the state, the record of what it applied. Created by [`Flow::run`];
/// nodes see part of it through [`Context`].
#[doc(hidden)]
pub struct RunContext<S: SharedState> {
    steps: u64,
    params: Params,
    /// The node running now and its phase: what a caught panic is attributed to.
    node: &'static str,
    phase: Phase,
    /// When set, every update applied is also composed into it: a nested flow running on a copy of
    /// the state (in a parallel branch, in a concurrent batch) hands this back to be merged.
    record: Option<S::Update>,
    /// For a durable run: where it is, what to save, where to resume and pause.
    journal: Option<Box<Journal<S>>>,
}

impl<S: SharedState> RunContext<S> {
    pub(crate) fn new(params: Params) -> Self {
        Self {
            steps: 0,
            params,
            node: "",
            phase: Phase::Prep,
            record: None,
            journal: None,
        }
    }

    /// A durable run, continuing after `steps` saved steps.
    pub(crate) fn durable(params: Params, steps: u64, journal: Journal<S>) -> Self {
        Self {
            steps,
            journal: Some(Box::new(journal)),
            ..Self::new(params)
        }
    }

    /// The names of the nodes a durable run is at, outermost first.
    pub(crate) fn journal_names(&self) -> Option<&[&'static str]> {
        self.journal.as_deref().map(Journal::names)
    }

    /// Entering a flow's graph (durable runs track the position in each).
    #[doc(hidden)]
    #[inline]
    pub fn enter_flow(&mut self) {
        if let Some(journal) = &mut self.journal {
            journal.enter_flow();
        }
    }

    /// Leaving a flow's graph normally.
    #[doc(hidden)]
    #[inline]
    pub fn leave_flow(&mut self) {
        if let Some(journal) = &mut self.journal {
            journal.leave_flow();
        }
    }

    /// The flow is at `position`, the node or fork called `name`.
    #[doc(hidden)]
    #[inline]
    pub fn at(&mut self, position: usize, name: &'static str) {
        if let Some(journal) = &mut self.journal {
            journal.at(position, name);
        }
    }

    /// On a resumed run, for the flow being entered: where to go and, at the innermost level, the
    /// saved action to route on instead of running that step again.
    #[doc(hidden)]
    #[inline]
    pub fn resume_entry(&mut self) -> Option<(usize, Option<String>)> {
        self.journal.as_mut()?.resume_entry()
    }

    /// Applies and, in a durable run, saves a step's update.
    async fn apply_and_save(
        &mut self,
        state: &mut S,
        update: S::Update,
        action: &'static str,
    ) -> Result<(), Error> {
        // Inside a batch flow (`quiet`) the update is only recorded: no JSON to make.
        let json = match self.journal.as_deref() {
            Some(journal) if journal.quiet == 0 => Some(journal.update_json(&update, self.steps)?),
            _ => None,
        };
        self.apply(state, update);
        if let (Some(json), Some(journal)) = (json, self.journal.as_deref_mut()) {
            journal.save_step(state, self.steps, action, json).await?;
        }
        Ok(())
    }

    /// In a durable run, starts a part that is saved as one step (a batch flow): its updates are
    /// recorded, not saved one by one. Returns whether it did.
    pub(crate) fn begin_atomic(&mut self) -> bool {
        let Some(journal) = self.journal.as_deref_mut() else {
            return false;
        };
        journal.quiet += 1;
        if journal.quiet == 1 {
            self.record = Some(S::Update::default());
        }
        true
    }

    /// Ends what [`begin_atomic`](Self::begin_atomic) started, saving the part as one step.
    pub(crate) async fn end_atomic(
        &mut self,
        started: bool,
        state: &S,
        action: &'static str,
    ) -> Result<(), Error> {
        let Some(journal) = self.journal.as_deref_mut().filter(|_| started) else {
            return Ok(());
        };
        journal.quiet -= 1;
        if journal.quiet > 0 {
            return Ok(());
        }
        let update = self.record.take().unwrap_or_default();
        let json = journal.update_json(&update, self.steps)?;
        journal.save_step(state, self.steps, action, json).await
    }

    /// A run on a copy of the state, continuing a parent run after `steps` steps, that records
    /// the updates it applies.
    pub(crate) fn recording(params: Params, steps: u64) -> Self {
        Self {
            steps,
            record: Some(S::Update::default()),
            ..Self::new(params)
        }
    }

    /// The error for a panic caught while this run was going: the node, step and phase recorded
    /// when it panicked.
    pub(crate) fn panic_error(&self, payload: Box<dyn Any + Send>) -> Error {
        Error::Panic {
            node: self.node,
            step: self.steps,
            phase: self.phase,
            message: panic_message(payload),
        }
    }

    /// Node steps started so far in this run.
    #[doc(hidden)]
    pub fn steps(&self) -> u64 {
        self.steps
    }

    /// The params the run's nodes read.
    #[doc(hidden)]
    pub fn params(&self) -> &Params {
        &self.params
    }

    pub(crate) fn params_mut(&mut self) -> &mut Params {
        &mut self.params
    }

    /// Starts a step of `node` that is not a plain node step (a batch flow's own): returns its
    /// number.
    pub(crate) fn begin_step(&mut self, node: &'static str) -> u64 {
        self.steps += 1;
        self.node = node;
        self.phase = Phase::Prep;
        self.steps
    }

    /// Back in `node`'s own work after its sub-runs, for panic attribution.
    pub(crate) fn resume_step(&mut self, node: &'static str, phase: Phase) {
        self.node = node;
        self.phase = phase;
    }

    /// Counts steps that ran elsewhere (on copies of the state).
    pub(crate) fn add_steps(&mut self, steps: u64) {
        self.steps += steps;
    }

    /// Applies `update` to `state`, recording it when this run records.
    #[inline]
    pub(crate) fn apply(&mut self, state: &mut S, update: S::Update) {
        self.phase = Phase::Apply;
        if self.record.is_some() {
            self.record(&update);
        }
        state.apply(update);
    }

    /// Composes `update` into the record: only runs on copies of the state record.
    #[cold]
    fn record(&mut self, update: &S::Update) {
        if let Some(record) = &mut self.record {
            *record = std::mem::take(record).then(update.clone());
        }
    }

    /// Starts a fork called `name` after the steps so far; returns that count. A panic while the
    /// branches' updates are merged and applied is reported against the fork's first step.
    #[doc(hidden)]
    pub fn enter_fork(&mut self, name: &'static str) -> u64 {
        let before = self.steps;
        self.node = name;
        self.phase = Phase::Apply;
        self.steps += 1;
        before
    }

    /// Ends a fork that started after `before` steps: its branches took `steps` steps, and their
    /// merged `update` is applied once.
    #[doc(hidden)]
    ///
    /// # Errors
    /// In a durable run, when the fork's step cannot be saved.
    pub async fn finish_fork(
        &mut self,
        state: &mut S,
        before: u64,
        merged: crate::parallel::Merged<S>,
    ) -> Result<(), Error> {
        self.steps = before + merged.steps;
        self.apply_and_save(state, merged.update, crate::node::DEFAULT_ACTION)
            .await
    }

    /// The record of a recording run.
    pub(crate) fn take_record(&mut self) -> S::Update {
        self.record.take().unwrap_or_default()
    }
}

impl<S: SharedState> std::fmt::Debug for RunContext<S> {
    fn fmt(&self, formatter: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        formatter
            .debug_struct("RunContext")
            .field("steps", &self.steps)
            .field("params", &self.params)
            .field("node", &self.node)
            .field("phase", &self.phase)
            .field("record", &self.record)
            .field("durable", &self.journal.is_some())
            .finish()
    }
}

/// Runs `node` alone on `state`, with no params, and returns its action (PocketFlow's `node.run`).
///
/// # Errors
/// As [`Flow::run`].
pub async fn run_node<S: SharedState, N: Node<S>>(
    node: &N,
    state: &mut S,
) -> Result<&'static str, Error> {
    let mut run = RunContext::new(Params::new());
    let outcome = catch_panic(node.__run(state, &mut run, short_type_name::<N>())).await;
    outcome.unwrap_or_else(|payload| Err(run.panic_error(payload)))
}

/// [`run_node`] on a new single-threaded tokio runtime, for synchronous callers.
///
/// # Errors
/// As [`Flow::run_blocking`].
pub fn run_node_blocking<S: SharedState, N: Node<S>>(
    node: &N,
    state: &mut S,
) -> Result<&'static str, Error> {
    block_on(run_node(node, state))
}

fn block_on<F: Future<Output = Result<&'static str, Error>>>(
    future: F,
) -> Result<&'static str, Error> {
    tokio::runtime::Builder::new_current_thread()
        .enable_time()
        .build()
        .map_err(Error::Runtime)?
        .block_on(future)
}

/// `Summarise` for `my_crate::nodes::Summarise`.
fn short_type_name<T>() -> &'static str {
    let full = std::any::type_name::<T>();
    let generic_start = full.find('<').unwrap_or(full.len());
    let start = full[..generic_start].rfind("::").map_or(0, |at| at + 2);
    &full[start..]
}

/// One node step: prep, exec (retried, timed out), post, then the update applied.
///
/// The step records its node and phase in `run` as it goes, so that a panic, caught once around the
/// whole run, is reported against the right node, step and phase; nothing of the step has been
/// applied by then unless it panicked in a reducer, in `Phase::Apply`.
pub(crate) async fn run_step<S: SharedState, N: Node<S>>(
    node: &N,
    state: &mut S,
    run: &mut RunContext<S>,
    name: &'static str,
) -> Result<&'static str, Error> {
    if let Some(journal) = run.journal.as_deref_mut()
        && journal.quiet == 0
        && journal.pauses_before(name)
    {
        return Err(Error::Paused {
            node: name,
            step: run.steps,
            before: true,
        });
    }
    run.steps += 1;
    run.node = name;
    let step = run.steps;
    let command = node_command(node, state, &run.params, name, step, &mut run.phase).await?;
    if run.journal.is_none() {
        run.apply(state, command.update);
        return Ok(command.action);
    }
    run.apply_and_save(state, command.update, command.action)
        .await?;
    if let Some(journal) = run.journal.as_deref()
        && journal.quiet == 0
        && journal.pauses_after(name)
    {
        return Err(Error::Paused {
            node: name,
            step,
            before: false,
        });
    }
    Ok(command.action)
}

/// One node step as a branch of a fork: the same steps on a shared borrow of the state, whose
/// update is handed back instead of applied. A panic is caught here, so that it names this branch.
pub(crate) async fn branch_step<S: SharedState, N: Node<S>>(
    node: &N,
    state: &S,
    params: &Params,
    name: &'static str,
    step: u64,
) -> Result<Branch<S>, Error> {
    let mut phase = Phase::Prep;
    let outcome = catch_panic(node_command(node, state, params, name, step, &mut phase)).await;
    match outcome {
        Ok(command) => command.map(|command| Branch {
            action: command.action,
            update: command.update,
            steps: 1,
        }),
        Err(payload) => Err(Error::Panic {
            node: name,
            step,
            phase,
            message: panic_message(payload),
        }),
    }
}

/// Runs `node` (a flow, usually) as a branch on its own copy of the state, recording what it
/// applies: the composition of its updates is the branch's update.
pub(crate) async fn branch_on_copy<S: SharedState + Clone, N: Node<S>>(
    node: &N,
    state: &S,
    params: &Params,
    name: &'static str,
    step: u64,
) -> Result<Branch<S>, Error> {
    let mut copy = state.clone();
    let before = step - 1;
    let mut run = RunContext::recording(params.clone(), before);
    let outcome = catch_panic(node.__run(&mut copy, &mut run, name)).await;
    match outcome {
        Ok(Ok(action)) => Ok(Branch {
            action,
            steps: run.steps - before,
            update: run.take_record(),
        }),
        Ok(Err(error)) => Err(error),
        Err(payload) => Err(run.panic_error(payload)),
    }
}

/// What a branch of a fork (or a run of a concurrent batch) hands back: its action, its update,
/// not applied yet, and how many node steps it took (one for a node; a nested flow's steps).
#[doc(hidden)]
pub struct Branch<S: SharedState> {
    pub(crate) action: &'static str,
    pub(crate) update: S::Update,
    pub(crate) steps: u64,
}

/// Prep, exec (retried, timed out, with its fallback) and post of one node over a shared borrow of
/// the state; `phase` follows along. The command's action is checked against the node's.
async fn node_command<S: SharedState, N: Node<S>>(
    node: &N,
    state: &S,
    params: &Params,
    name: &'static str,
    step: u64,
    phase: &mut Phase,
) -> Result<Command<S>, Error> {
    *phase = Phase::Prep;
    let context = Context {
        params,
        node: name,
        step,
    };
    let failed = |phase, attempts, source| Error::NodeFailed {
        node: name,
        step,
        phase,
        attempts,
        source,
    };
    let prep = node
        .prep(state, &context)
        .await
        .map_err(|source| failed(Phase::Prep, 1, source))?;
    *phase = Phase::Exec;
    let retry = node.retry();
    let exec = if retry == Retry::default() {
        // The common case, without the retry loop's timers: ~5 ns/step faster in the benchmark.
        match node.exec(&prep).await {
            Ok(exec) => exec,
            Err(error) => fallback(node, &prep, error, phase, name, step, 1).await?,
        }
    } else {
        exec_with_retries(node, &prep, retry, phase, name, step).await?
    };
    *phase = Phase::Post;
    let command = node
        .post(state, prep, exec, &context)
        .await
        .map_err(|source| failed(Phase::Post, 1, source))?;
    if !is_declared(N::ACTIONS, command.action) {
        return Err(Error::UndeclaredAction {
            node: name,
            step,
            action: command.action,
            declared: N::ACTIONS,
        });
    }
    Ok(command)
}

/// Whether `action` is one of `declared`. Usually the very same `&'static str`, so the addresses
/// are compared first; the `const fn` version in `__private` is for compile time only.
#[inline]
fn is_declared(declared: &[&str], action: &str) -> bool {
    declared
        .iter()
        .any(|candidate| std::ptr::eq(*candidate, action) || *candidate == action)
}

/// An attempt of `exec` that ran out of time; becomes [`Error::Timeout`] if nothing recovers it.
#[derive(Debug, thiserror::Error)]
#[error("`exec` took longer than {0:?}")]
pub(crate) struct TimedOut(Duration);

/// Runs `exec_fallback` after the last failed attempt; its error fails the step.
async fn fallback<S: SharedState, N: Node<S>>(
    node: &N,
    prep: &N::Prep,
    error: NodeError,
    phase: &mut Phase,
    name: &'static str,
    step: u64,
    attempts: u32,
) -> Result<N::Exec, Error> {
    *phase = Phase::Fallback;
    node.exec_fallback(prep, error)
        .await
        .map_err(|source| match source.downcast::<TimedOut>() {
            Ok(timed_out) => Error::Timeout {
                node: name,
                step,
                attempts,
                after: timed_out.0,
            },
            Err(source) => Error::NodeFailed {
                node: name,
                step,
                phase: Phase::Exec,
                attempts,
                source,
            },
        })
}

/// `exec` under a retry policy, then the fallback after the last failed attempt.
async fn exec_with_retries<S: SharedState, N: Node<S>>(
    node: &N,
    prep: &N::Prep,
    retry: Retry,
    phase: &mut Phase,
    name: &'static str,
    step: u64,
) -> Result<N::Exec, Error> {
    match with_retries(retry, || node.exec(prep)).await {
        Ok(exec) => Ok(exec),
        Err((error, attempts)) => fallback(node, prep, error, phase, name, step, attempts).await,
    }
}

/// Runs `exec` under a retry policy: attempts, waits between them (never after the last), a
/// timeout on each. Returns the last error and the number of attempts when every attempt failed.
pub(crate) async fn with_retries<T, F, Fut>(
    retry: Retry,
    mut exec: F,
) -> Result<T, (NodeError, u32)>
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Result<T, NodeError>>,
{
    let mut attempt = 0;
    loop {
        attempt += 1;
        let outcome = match retry.attempt_timeout() {
            None => exec().await,
            Some(limit) => tokio::time::timeout(limit, exec())
                .await
                .unwrap_or_else(|_| Err(Box::new(TimedOut(limit)))),
        };
        let error = match outcome {
            Ok(exec) => return Ok(exec),
            Err(error) => error,
        };
        if attempt >= retry.max_attempts() {
            return Err((error, attempt));
        }
        let wait = retry.wait_after(attempt);
        if !wait.is_zero() {
            tokio::time::sleep(wait).await;
        }
    }
}

/// Runs `future`, turning a panic while it is polled into an error value.
pub(crate) async fn catch_panic<F: Future>(future: F) -> Result<F::Output, Box<dyn Any + Send>> {
    let mut future = pin!(future);
    poll_fn(
        move |context| match catch_unwind(AssertUnwindSafe(|| future.as_mut().poll(context))) {
            Ok(Poll::Pending) => Poll::Pending,
            Ok(Poll::Ready(output)) => Poll::Ready(Ok(output)),
            Err(payload) => Poll::Ready(Err(payload)),
        },
    )
    .await
}

pub(crate) fn panic_message(payload: Box<dyn Any + Send>) -> String {
    match payload.downcast::<String>() {
        Ok(message) => *message,
        Err(payload) => payload.downcast_ref::<&str>().map_or_else(
            || "a panic with a non-text payload".into(),
            |text| (*text).into(),
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn short_type_names_drop_the_path() {
        struct Summarise;
        assert_eq!(short_type_name::<Summarise>(), "Summarise");
        assert_eq!(short_type_name::<Vec<u8>>(), "Vec<u8>");
    }
}
