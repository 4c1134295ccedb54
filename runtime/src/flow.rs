//! Flows: graphs of nodes wired by [`flow!`](crate::flow!), and how to run one.
//!
//! A run walks from the start node. After each node its update is applied through the reducers, and
//! the action it returned picks the next node; an action with no edge ends the run, which returns
//! that action (PocketFlow; the run's observer gets [`Event::NoEdge`](crate::event::Event::NoEdge)
//! when the node has other edges). A flow is itself a [`Node`]: nested in another flow it walks its
//! own graph in place on the same state, applies each of its nodes' updates once, and returns its
//! last action for the parent to route on.
//!
//! This module owns the [`Flow`] value (its graph, step limit and params) and the ways to start a
//! run: plainly, with an [`Observer`], or one node alone ([`run_node`]). The loop itself is the run
//! module's; forks are [`parallel`](crate::parallel)'s; saving is [`durable`](crate::durable)'s,
//! which this module does not know.

use std::future::Future;
use std::marker::PhantomData;

use crate::error::Error;
use crate::event::Observer;
use crate::graph::Graph;
use crate::node::dispatch::{Runner, StateType, Stepped};
use crate::node::{Node, Params, self_running_node};
use crate::run::{Hook, NoHook, Observe, Run, block_on, short_type_name};
use crate::state::SharedState;

pub use crate::node::dispatch::FlowGraph;

/// The default step limit of a flow: it stops runaway cycles.
pub const DEFAULT_MAX_STEPS: u64 = 10_000;

/// A flow built by [`flow!`](crate::flow!): its nodes, their wiring, a step limit and params.
///
/// `S` is the state every node works on; `G` the graph type the macro generates, which has no
/// name: write `Flow<S, impl FlowGraph<S>>` to return a flow, or keep `G` generic to hold one.
///
/// ```
/// use serde::{Deserialize, Serialize};
/// use slateflow::flow::FlowGraph;
/// use slateflow::{Command, Flow, SharedState, flow, node};
///
/// #[derive(SharedState, Debug, Default, Serialize, Deserialize)]
/// struct Count {
///     #[reducer(add)]
///     n: u32,
/// }
///
/// #[node]
/// fn bump(_: &Count) -> Command<Count> {
///     Command::new(Count::update().add_n(1))
/// }
///
/// fn counting() -> Flow<Count, impl FlowGraph<Count>> {
///     flow! { bump; }
/// }
///
/// /// An application that keeps its flow.
/// struct App<G: FlowGraph<Count>> {
///     flow: Flow<Count, G>,
/// }
///
/// let app = App { flow: counting() };
/// let mut count = Count::default();
/// app.flow.run_blocking(&mut count)?;
/// assert_eq!(count.n, 1);
/// # Ok::<(), slateflow::Error>(())
/// ```
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
    /// A nested flow's limit bounds the steps taken inside it, within the limit of its parent.
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
        self.run_hooked(NoHook, state, params).await
    }

    /// Runs the flow to the end on a new single-threaded tokio runtime, for synchronous callers.
    /// Call it outside any tokio runtime (tokio refuses to start one inside another).
    ///
    /// # Errors
    /// As [`run`](Self::run), and [`Error::Runtime`] when the runtime cannot start.
    pub fn run_blocking(&self, state: &mut S) -> Result<&'static str, Error> {
        block_on(self.run(state))
    }

    /// Runs of this flow whose events go to `observer`: see [`event`](crate::event).
    ///
    /// ```
    /// use std::sync::Mutex;
    /// use serde::{Deserialize, Serialize};
    /// use slateflow::event::{self, Event};
    /// use slateflow::{Command, SharedState, flow, node};
    ///
    /// #[derive(SharedState, Debug, Default, Serialize, Deserialize)]
    /// struct Count {
    ///     #[reducer(add)]
    ///     n: u32,
    /// }
    ///
    /// #[node]
    /// fn bump(_: &Count) -> Command<Count> {
    ///     Command::new(Count::update().add_n(1))
    /// }
    ///
    /// let flow = flow! { bump; };
    /// let seen = Mutex::new(Vec::new());
    /// let observer = event::from_fn(|event: &Event<'_>| seen.lock().unwrap().push(event.kind()));
    /// flow.observe(&observer).run_blocking(&mut Count::default())?;
    /// assert_eq!(
    ///     *seen.lock().unwrap(),
    ///     ["run_started", "node_started", "node_finished", "run_finished"]
    /// );
    /// # Ok::<(), slateflow::Error>(())
    /// ```
    pub fn observe<O: Observer>(&self, observer: O) -> Observed<'_, S, G, O> {
        Observed {
            flow: self,
            observer,
        }
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

    /// Runs the whole flow with `hook`: what plain and observed runs share.
    pub(crate) async fn run_hooked<H: Hook<S>>(
        &self,
        hook: H,
        state: &mut S,
        params: Params,
    ) -> Result<&'static str, Error> {
        let mut run = Run::new(hook, params, 0);
        run.run(self, state, "").await
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

/// A flow whose runs send their events to an [`Observer`]. Made by [`Flow::observe`].
pub struct Observed<'f, S, G, O> {
    flow: &'f Flow<S, G>,
    observer: O,
}

impl<S: SharedState, G: FlowGraph<S>, O: Observer> Observed<'_, S, G, O> {
    /// As [`Flow::run`], with events.
    ///
    /// # Errors
    /// As [`Flow::run`].
    pub async fn run(&self, state: &mut S) -> Result<&'static str, Error> {
        self.run_with_params(state, self.flow.params.clone()).await
    }

    /// As [`Flow::run_with_params`], with events.
    ///
    /// # Errors
    /// As [`Flow::run`].
    pub async fn run_with_params(
        &self,
        state: &mut S,
        params: Params,
    ) -> Result<&'static str, Error> {
        self.flow
            .run_hooked(Observe(&self.observer), state, params)
            .await
    }

    /// As [`Flow::run_blocking`], with events.
    ///
    /// # Errors
    /// As [`Flow::run_blocking`].
    pub fn run_blocking(&self, state: &mut S) -> Result<&'static str, Error> {
        block_on(self.run(state))
    }
}

impl<S, G, O> std::fmt::Debug for Observed<'_, S, G, O> {
    fn fmt(&self, formatter: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        formatter
            .debug_struct("Observed")
            .field("flow", &self.flow)
            .finish_non_exhaustive()
    }
}

/// A flow is a node: nested in another flow, it walks its graph in place on the parent's state
/// and returns its last action. Its [`ACTIONS`](Node::ACTIONS) are the actions its nodes declare
/// but do not wire, i.e. the actions it can end with. Its `prep`, `exec` and `post` are not used: a
/// flow runs through [`Flow::run`] or as a node of another flow.
impl<S: SharedState, G: FlowGraph<S>> Node<S> for Flow<S, G> {
    const ACTIONS: &'static [&'static str] = G::ACTIONS;

    self_running_node!("a flow runs its own nodes: call `Flow::run`, or nest it in another flow");

    fn __run<'a, R: Runner<S>>(
        &'a self,
        runner: &'a mut R,
        state: &'a mut S,
        _name: &'static str,
    ) -> impl Future<Output = Stepped> + Send + 'a {
        // The run's params, set by the outermost flow, replace this flow's own (PocketFlow).
        runner.flow(&self.graph, state, self.max_steps)
    }

    fn __graph(&self) -> Option<Graph> {
        Some(self.graph())
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
    let mut run = Run::new(NoHook, Params::new(), 0);
    run.run(node, state, short_type_name::<N>()).await
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
