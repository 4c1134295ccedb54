//! Flows: graphs of nodes wired by [`flow!`](crate::flow!), and how to run one.
//!
//! A run walks from the start node. After each node its update is applied through the reducers, and
//! the action it returned picks the next node; an action with no edge ends the run, which returns
//! that action (PocketFlow; the run's observer gets [`Event::NoEdge`](crate::event::Event::NoEdge)
//! when the node has other edges). A flow is itself a [`Node`]: nested in another flow it walks its
//! own graph in place on the same state, applies each of its nodes' updates once, and returns its
//! last action for the parent to route on.
//!
//! This module owns the [`Flow`] value (its graph, step limit and params) and the one way to run it:
//! [`Flow::run`] (or [`Flow::run_blocking`]), on a flow watched by an [`Observer`] when it is
//! [`observe`](Flow::observe)d. A node on its own runs as a flow of one node: `flow! { node; }`.
//! The loop itself is the run module's; forks are [`parallel`](crate::parallel)'s; saving is
//! [`durable`](crate::durable)'s, which this module does not know.

use std::future::Future;
use std::marker::PhantomData;

use crate::error::Error;
use crate::event::Observer;
use crate::graph::Graph;
use crate::node::dispatch::{Runner, StateType, Stepped};
use crate::node::{Node, Params, self_running_node};
use crate::run::{Journal, NoJournal, NoWatch, Observe, Run, Watch, block_on};
use crate::state::SharedState;

pub use crate::node::dispatch::FlowGraph;

/// The default step limit of a flow: it stops runaway cycles.
///
/// ```
/// # use serde::{Deserialize, Serialize};
/// # use slateflow::{Command, SharedState, flow, node};
/// # #[derive(SharedState, Clone, Debug, Default, Serialize, Deserialize)]
/// # struct Counter { #[reducer(add)] count: u32, label: String }
/// # #[node]
/// # fn count(_: &Counter) -> Command<Counter> { Command::new(Counter::update().add_count(1)) }
/// use slateflow::flow::DEFAULT_MAX_STEPS;
///
/// let flow = flow! { count; };
/// assert_eq!(flow.max_steps(), DEFAULT_MAX_STEPS);
/// assert_eq!(flow.with_max_steps(50).max_steps(), 50);
/// ```
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
    /// The flow `flow!` built over `graph` (through `__private`, which forces the compile-time
    /// checks of its wiring first).
    pub(crate) fn from_graph(graph: G, _state: StateType<S>) -> Self {
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

    /// Sets the params every node of its runs reads ([`Context::params`](crate::Context::params)).
    /// They replace those of the flows nested in it. A flow is cheap to build: to run one with
    /// other params, build it with them.
    ///
    /// ```
    /// use serde::{Deserialize, Serialize};
    /// use slateflow::{Command, Context, NodeError, Params, SharedState, flow, node};
    ///
    /// #[derive(SharedState, Debug, Default, Serialize, Deserialize)]
    /// struct Reply {
    ///     model: Option<String>,
    /// }
    ///
    /// #[node]
    /// fn answer(_: &Reply, context: &Context<'_>) -> Command<Reply> {
    ///     let model = context.params().get_str("model").map(str::to_string);
    ///     Command::new(Reply::update().set_model(model))
    /// }
    ///
    /// let flow = flow! { answer; }.with_params(Params::new().with("model", "small"));
    /// let mut reply = Reply::default();
    /// flow.run_blocking(&mut reply)?;
    /// assert_eq!(reply.model.as_deref(), Some("small"));
    /// # Ok::<(), slateflow::Error>(())
    /// ```
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
    /// ```
    /// use serde::{Deserialize, Serialize};
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
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), slateflow::Error> {
    /// let flow = flow! { bump; };
    /// let mut count = Count::default();
    /// assert_eq!(flow.run(&mut count).await?, "default");
    /// assert_eq!(count.n, 1);
    /// # Ok(())
    /// # }
    /// ```
    ///
    /// # Errors
    /// The first [`Error`] of a node step, or [`Error::StepLimit`]. The state keeps every update
    /// applied before the failing step; nothing of that step is applied. A panic in a node is caught
    /// and returned as [`Error::Panic`], naming the node, the step and the phase.
    pub async fn run(&self, state: &mut S) -> Result<&'static str, Error> {
        self.run_in(NoWatch, NoJournal::default(), state).await
    }

    /// [`run`](Self::run) for synchronous callers: runs the flow to the end on a new
    /// single-threaded tokio runtime with IO and timers (any client works inside a node).
    ///
    /// ```
    /// use serde::{Deserialize, Serialize};
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
    /// let mut count = Count::default();
    /// flow! { bump; }.run_blocking(&mut count)?;
    /// assert_eq!(count.n, 1);
    /// # Ok::<(), slateflow::Error>(())
    /// ```
    ///
    /// # Errors
    /// As [`run`](Self::run); [`Error::BlockingInRuntime`] when called inside a tokio runtime
    /// (`.await` [`run`](Self::run) there), and [`Error::Runtime`] when the runtime cannot start.
    pub fn run_blocking(&self, state: &mut S) -> Result<&'static str, Error> {
        block_on(
            "Flow::run_blocking",
            "flow.run(&mut state).await",
            self.run(state),
        )
    }

    /// This flow, its runs watched by `observer`: its [`run`](Observed::run),
    /// [`run_blocking`](Observed::run_blocking) and [`durable`](Observed::durable) runs send
    /// their events there; see [`event`](crate::event). With no observer, a run builds no events
    /// at all.
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

    /// Runs the whole flow watched by `watch`, with `journal`: what every run of it shares.
    pub(crate) async fn run_in<W: Watch, J: Journal<S>>(
        &self,
        watch: W,
        journal: J,
        state: &mut S,
    ) -> Result<&'static str, Error> {
        let mut run = Run::new(watch, journal, self.params.clone(), 0);
        run.run(self, state, "", self.max_steps).await
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

/// A flow whose runs send their events to an [`Observer`]: made by [`Flow::observe`]; its
/// durable runs are [`durable`](Observed::durable)'s.
///
/// ```
/// # use serde::{Deserialize, Serialize};
/// # use slateflow::{Command, SharedState, flow, node};
/// # #[derive(SharedState, Clone, Debug, Default, Serialize, Deserialize)]
/// # struct Counter { #[reducer(add)] count: u32, label: String }
/// # #[node]
/// # fn count(_: &Counter) -> Command<Counter> { Command::new(Counter::update().add_count(1)) }
/// use std::sync::atomic::{AtomicUsize, Ordering};
/// use slateflow::{Event, event};
///
/// let finished = AtomicUsize::new(0);
/// let counting = event::from_fn(|event: &Event<'_>| {
///     if let Event::NodeFinished { .. } = event {
///         finished.fetch_add(1, Ordering::Relaxed);
///     }
/// });
/// let flow = flow! { count; };
/// let observed = flow.observe(counting); // an `Observed`: runs like the flow, with events
/// observed.run_blocking(&mut Counter::default())?;
/// assert_eq!(finished.load(Ordering::Relaxed), 1);
/// # Ok::<(), slateflow::Error>(())
/// ```
pub struct Observed<'f, S, G, O> {
    flow: &'f Flow<S, G>,
    observer: O,
}

impl<'f, S: SharedState, G: FlowGraph<S>, O: Observer> Observed<'f, S, G, O> {
    /// As [`Flow::run`], with events.
    ///
    /// # Errors
    /// As [`Flow::run`].
    pub async fn run(&self, state: &mut S) -> Result<&'static str, Error> {
        self.flow
            .run_in(Observe(&self.observer), NoJournal::default(), state)
            .await
    }

    /// As [`Flow::run_blocking`], with events.
    ///
    /// # Errors
    /// As [`Flow::run_blocking`].
    pub fn run_blocking(&self, state: &mut S) -> Result<&'static str, Error> {
        block_on(
            "Observed::run_blocking",
            "flow.observe(observer).run(&mut state).await",
            self.run(state),
        )
    }

    /// The flow and its observer.
    pub(crate) fn into_parts(self) -> (&'f Flow<S, G>, O) {
        (self.flow, self.observer)
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
        name: &'static str,
    ) -> impl Future<Output = Stepped> + Send + 'a {
        // The run's params, set by the outermost flow, replace this flow's own (PocketFlow).
        runner.flow(&self.graph, state, name, self.max_steps)
    }

    fn __graph(&self) -> Option<Graph> {
        Some(self.graph())
    }
}
