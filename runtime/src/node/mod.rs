//! Nodes: the steps of a flow, with PocketFlow's three phases.
//!
//! A [`Node`] reads the state in [`prep`](Node::prep), does its work in [`exec`](Node::exec) without
//! seeing the state (the only phase that is retried), and in [`post`](Node::post) returns a
//! [`Command`]: the update to apply and the action that picks the next node. Small nodes are plain
//! functions: [`#[node]`](macro@crate::node) on a `fn` or `async fn`, or [`from_fn`] for a closure.
//!
//! This module owns what a node is and what it returns; what it sees of the run ([`Context`],
//! [`Params`], in `context` and `params`); how its `exec` is retried ([`Retry`], in `retry`); in
//! `dispatch`, the interface through which generated flows and self-running nodes (flows, batch
//! flows) reach the run that runs them; and in `actions`, the actions a node declares to the type
//! system, for `flow!`'s checks. It runs nothing: it defines the interfaces the run implements
//! for it (`dispatch`, and what a context reads of its run), so that the layers stay in one
//! direction: `node` knows no run, store or flow.

pub(crate) mod actions;
mod context;
pub(crate) mod dispatch;
mod params;
mod retry;

use std::borrow::Cow;
use std::future::Future;
use std::sync::Arc;

use crate::error::Error;
use crate::graph::Graph;
use crate::state::SharedState;

pub use crate::error::NodeError;
pub use crate::graph::DEFAULT_ACTION;
pub use context::Context;
pub(crate) use context::{Interrupted, ItemJournal, KeepItem, Limit, RunScope, ask_key, reply_key};
pub use params::Params;
pub(crate) use retry::{Between, RetriedBody, TimedOut, with_retries};
pub use retry::{Retry, RetryHint};

/// A step of a flow over the state `S`.
///
/// # Example
/// ```
/// use serde::{Deserialize, Serialize};
/// use slateflow::{Command, Context, Node, NodeError, SharedState, node};
///
/// #[derive(SharedState, Debug, Default, Serialize, Deserialize)]
/// struct Doc {
///     text: String,
///     summary: Option<String>,
/// }
///
/// /// Summarises the text; routes to `"too_long"` when the summary is no shorter.
/// struct Summarise;
///
/// #[node] // optional: lets `cargo check` check the edges of `flow!` against `ACTIONS`
/// impl Node<Doc> for Summarise {
///     type Prep = String;
///     type Exec = String;
///     const ACTIONS: &'static [&'static str] = &["default", "too_long"];
///
///     async fn prep(&self, state: &Doc, _: &Context<'_>) -> Result<String, NodeError> {
///         Ok(state.text.clone())
///     }
///
///     async fn exec(&self, text: &String) -> Result<String, NodeError> {
///         Ok(text.split('.').next().unwrap_or_default().to_string()) // a model call in real life
///     }
///
///     async fn post(
///         &self,
///         _: &Doc,
///         text: String,
///         summary: String,
///         _: &Context<'_>,
///     ) -> Result<Command<Doc>, NodeError> {
///         let action = if summary.len() < text.len() { "default" } else { "too_long" };
///         Ok(Command::new(Doc::update().set_summary(Some(summary))).with_action(action))
///     }
/// }
///
/// let summarise = Summarise;
/// let mut doc = Doc { text: "First. Second.".into(), summary: None };
/// let action = slateflow::flow! { summarise; }.run_blocking(&mut doc)?;
/// assert_eq!((action, doc.summary.as_deref()), ("default", Some("First")));
/// # Ok::<(), slateflow::Error>(())
/// ```
#[diagnostic::on_unimplemented(
    message = "`{Self}` is not a node over the state `{S}`",
    label = "this is not a `Node<{S}>`",
    note = "every node of a flow works on the one state type `{S}`: a `#[node]` function takes \
            `&{S}` as its first argument, a hand-written node implements `Node<{S}>`, and a \
            closure over `&{S}` becomes a node with `slateflow::node::from_fn`"
)]
pub trait Node<S: SharedState>: Send + Sync {
    /// What [`prep`](Node::prep) hands to [`exec`](Node::exec) and [`post`](Node::post).
    type Prep: Send + Sync;
    /// What [`exec`](Node::exec) produces for [`post`](Node::post).
    type Exec: Send;

    /// Every action [`post`](Node::post) may return. `flow!` checks its edges against this list
    /// (in `cargo check` when the impl is marked [`#[node]`](macro@crate::node), as a list of
    /// string literals; otherwise when the flow is built), and returning an action not in it fails
    /// the run.
    const ACTIONS: &'static [&'static str] = &[DEFAULT_ACTION];

    /// How [`exec`](Node::exec) is retried and timed out. One attempt, no timeout by default.
    fn retry(&self) -> Retry {
        Retry::default()
    }

    /// Reads what the work needs from the state and params. Never retried.
    fn prep(
        &self,
        state: &S,
        context: &Context<'_>,
    ) -> impl Future<Output = Result<Self::Prep, NodeError>> + Send;

    /// Does the work (the model call) without seeing the state. The only step that is retried, so it
    /// should be safe to repeat.
    fn exec(&self, prep: &Self::Prep)
    -> impl Future<Output = Result<Self::Exec, NodeError>> + Send;

    /// Runs after the last failed attempt of [`exec`](Node::exec); its result goes to
    /// [`post`](Node::post). By default it returns the error, which fails the run.
    fn exec_fallback(
        &self,
        prep: &Self::Prep,
        error: NodeError,
    ) -> impl Future<Output = Result<Self::Exec, NodeError>> + Send {
        let _ = prep;
        async move { Err(error) }
    }

    /// Turns the results into a [`Command`]: the update to apply and the next action. Never retried.
    fn post(
        &self,
        state: &S,
        prep: Self::Prep,
        exec: Self::Exec,
        context: &Context<'_>,
    ) -> impl Future<Output = Result<Command<S>, NodeError>> + Send;

    /// Does the work like [`exec`](Node::exec), with the step's [`Context`] to send events along
    /// the way ([`Context::emit`]: a model's token deltas, progress) or read the params. The run
    /// calls this one; by default it calls `exec`, so override it only to emit events.
    fn exec_with(
        &self,
        prep: &Self::Prep,
        context: &Context<'_>,
    ) -> impl Future<Output = Result<Self::Exec, NodeError>> + Send {
        let _ = context;
        self.exec(prep)
    }

    /// Runs the node as one step of a run. Flows and batch flows override it to run their own
    /// steps; nodes keep this default.
    #[doc(hidden)]
    fn __run<'a, R: dispatch::Runner<S>>(
        &'a self,
        runner: &'a mut R,
        state: &'a mut S,
        name: &'static str,
    ) -> impl Future<Output = dispatch::Stepped> + Send + 'a
    where
        Self: Sized,
    {
        runner.node(self, state, name)
    }

    /// Runs the node as a branch of a fork: on a shared borrow of `state`, handing its update back
    /// instead of applying it, its phase kept in `phase` for the join to name should it panic.
    /// Self-running nodes override it to run on their own copy.
    #[doc(hidden)]
    fn __branch<'a, B: dispatch::BranchRunner<S>>(
        &'a self,
        branches: &'a B,
        state: &'a S,
        name: &'static str,
        step: u64,
        phase: &'a dispatch::PhaseCell,
    ) -> impl Future<Output = Result<dispatch::Branch<S>, Error>> + Send + 'a
    where
        Self: Sized,
        S: Clone,
    {
        branches.node(self, state, name, step, phase)
    }

    /// The node's own graph, for flows; `None` for plain nodes.
    #[doc(hidden)]
    fn __graph(&self) -> Option<Graph> {
        None
    }
}

/// What a node's [`post`](Node::post) returns: the update to apply and the action to follow.
///
/// ```
/// # use serde::{Deserialize, Serialize};
/// # use slateflow::{Command, SharedState, flow, node};
/// # #[derive(SharedState, Clone, Debug, Default, Serialize, Deserialize)]
/// # struct Counter { #[reducer(add)] count: u32, label: String }
/// # #[node]
/// # fn count(_: &Counter) -> Command<Counter> { Command::new(Counter::update().add_count(1)) }
/// #[node(actions = ["more", "done"])]
/// fn step(counter: &Counter) -> Command<Counter> {
///     let action = if counter.count < 2 { "more" } else { "done" };
///     Command::new(Counter::update().add_count(1))  // the update to apply
///         .with_action(action)                        // where to go next
///         .with_reason(format!("count is {}", counter.count)) // why, for events and history
/// }
///
/// let flow = flow! { step - "more" >> step; };
/// let mut counter = Counter::default();
/// assert_eq!(flow.run_blocking(&mut counter)?, "done");
/// assert_eq!(counter.count, 3);
/// # Ok::<(), slateflow::Error>(())
/// ```
pub struct Command<S: SharedState> {
    /// The writes to apply to the state, through its reducers.
    pub update: S::Update,
    /// The action that picks the next node; one of the node's [`ACTIONS`](Node::ACTIONS).
    pub action: &'static str,
    /// Why this action was chosen, for events, traces and durable history.
    pub reason: Option<Cow<'static, str>>,
    /// A question for a human: a durable run pauses after this step and waits for an answer
    /// ([`Command::ask`]).
    pub asked: Option<serde_json::Value>,
}

impl<S: SharedState> Command<S> {
    /// Applies `update` and follows the `"default"` action.
    pub fn new(update: S::Update) -> Self {
        Self {
            update,
            action: DEFAULT_ACTION,
            reason: None,
            asked: None,
        }
    }

    /// Writes nothing and follows `action`.
    pub fn goto(action: &'static str) -> Self {
        Self::new(S::Update::default()).with_action(action)
    }

    /// Follows `action` instead.
    #[must_use]
    pub fn with_action(mut self, action: &'static str) -> Self {
        self.action = action;
        self
    }

    /// Records why the action was chosen: the run's observer sees it in
    /// [`Event::NodeFinished`](crate::Event::NodeFinished), and the `tracing` adapter as the
    /// step's `reason`.
    #[must_use]
    pub fn with_reason(mut self, reason: impl Into<Cow<'static, str>>) -> Self {
        self.reason = Some(reason.into());
        self
    }

    /// Asks a human for input: the step is applied and saved as usual, then a durable run pauses
    /// with `question` as the pause's payload ([`Pause::asked`]). The caller answers it with an
    /// update ([`Durable::answer`]) and resumes; the node does not run again, and the next node
    /// reads the answer from the state. A run that is not durable fails with
    /// [`Error::InputRequested`]. In a durable run a node may ask anywhere it runs: as a fork
    /// branch (the run pauses after the fork is saved, with every branch's question), and inside
    /// a flow nested in a fork branch or a batch flow, at any depth (the other branches or
    /// concurrent runs finish first).
    ///
    /// ```
    /// use slateflow::{Command, SharedState};
    /// # #[derive(SharedState, Clone, Debug, Default, serde::Serialize, serde::Deserialize)]
    /// # struct Refund { amount: u32, approved: Option<bool> }
    /// let command = Command::<Refund>::goto("review")
    ///     .ask(serde_json::json!({ "question": "Pay 120 EUR?", "amount": 120 }));
    /// assert_eq!(command.asked.unwrap()["amount"], 120);
    /// ```
    ///
    /// [`Pause::asked`]: crate::checkpoint::Pause::asked
    /// [`Durable::answer`]: crate::durable::Durable::answer
    #[must_use]
    pub fn ask(mut self, question: impl Into<serde_json::Value>) -> Self {
        self.asked = Some(question.into());
        self
    }
}

impl<S: SharedState> Default for Command<S> {
    fn default() -> Self {
        Self::new(S::Update::default())
    }
}

impl<S: SharedState> std::fmt::Debug for Command<S> {
    fn fmt(&self, formatter: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        formatter
            .debug_struct("Command")
            .field("update", &self.update)
            .field("action", &self.action)
            .field("reason", &self.reason)
            .field("asked", &self.asked)
            .finish()
    }
}

/// A node made from a synchronous closure over the state; it follows `"default"` unless the
/// command names another action, which must then be `"default"` too. For nodes that choose between
/// actions, or that are `async`, put [`#[node]`](macro@crate::node) on a function.
///
/// ```
/// use serde::{Deserialize, Serialize};
/// use slateflow::{Command, SharedState, node::from_fn};
///
/// #[derive(SharedState, Debug, Default, Serialize, Deserialize)]
/// struct Count {
///     #[reducer(add)]
///     n: u32,
/// }
///
/// let increment = from_fn(|_: &Count| Ok(Command::new(Count::update().add_n(1))));
/// let mut count = Count::default();
/// slateflow::flow! { increment; }.run_blocking(&mut count)?;
/// assert_eq!(count.n, 1);
/// # Ok::<(), slateflow::Error>(())
/// ```
pub fn from_fn<S, F>(function: F) -> FnNode<F>
where
    S: SharedState,
    F: Fn(&S) -> Result<Command<S>, NodeError> + Send + Sync,
{
    FnNode { function }
}

/// The node [`from_fn`] makes.
///
/// ```
/// # use serde::{Deserialize, Serialize};
/// # use slateflow::{Command, SharedState, flow, node};
/// # #[derive(SharedState, Clone, Debug, Default, Serialize, Deserialize)]
/// # struct Counter { #[reducer(add)] count: u32, label: String }
/// # #[node]
/// # fn count(_: &Counter) -> Command<Counter> { Command::new(Counter::update().add_count(1)) }
/// use slateflow::node::{FnNode, from_fn};
///
/// // The type `node::from_fn` returns: a node from a closure over the state.
/// let bump = from_fn(|_: &Counter| Ok(Command::new(Counter::update().add_count(5))));
/// let _: &FnNode<_> = &bump;
/// let mut counter = Counter::default();
/// flow! { bump; }.run_blocking(&mut counter)?;
/// assert_eq!(counter.count, 5);
/// # Ok::<(), slateflow::Error>(())
/// ```
#[derive(Clone, Copy)]
pub struct FnNode<F> {
    function: F,
}

impl<F> std::fmt::Debug for FnNode<F> {
    fn fmt(&self, formatter: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        formatter.write_str("FnNode")
    }
}

#[slateflow_macros::node(crate = crate)]
impl<S, F> Node<S> for FnNode<F>
where
    S: SharedState,
    F: Fn(&S) -> Result<Command<S>, NodeError> + Send + Sync,
{
    type Prep = ();
    type Exec = ();

    async fn prep(&self, _: &S, _: &Context<'_>) -> Result<(), NodeError> {
        Ok(())
    }

    async fn exec(&self, (): &()) -> Result<(), NodeError> {
        Ok(())
    }

    async fn post(
        &self,
        state: &S,
        (): (),
        (): (),
        _: &Context<'_>,
    ) -> Result<Command<S>, NodeError> {
        (self.function)(state)
    }
}

/// Implements [`Node`] for a pointer to a node, every item forwarded to the node.
macro_rules! pointer_node {
    ($(#[$doc:meta])* $pointer:ty) => {
        $(#[$doc])*
        impl<S: SharedState, N: Node<S>> Node<S> for $pointer {
    type Prep = N::Prep;
    type Exec = N::Exec;
    const ACTIONS: &'static [&'static str] = N::ACTIONS;

    fn retry(&self) -> Retry {
        N::retry(self)
    }

    fn prep(
        &self,
        state: &S,
        context: &Context<'_>,
    ) -> impl Future<Output = Result<Self::Prep, NodeError>> + Send {
        N::prep(self, state, context)
    }

    fn exec(
        &self,
        prep: &Self::Prep,
    ) -> impl Future<Output = Result<Self::Exec, NodeError>> + Send {
        N::exec(self, prep)
    }

    fn exec_fallback(
        &self,
        prep: &Self::Prep,
        error: NodeError,
    ) -> impl Future<Output = Result<Self::Exec, NodeError>> + Send {
        N::exec_fallback(self, prep, error)
    }

    fn post(
        &self,
        state: &S,
        prep: Self::Prep,
        exec: Self::Exec,
        context: &Context<'_>,
    ) -> impl Future<Output = Result<Command<S>, NodeError>> + Send {
        N::post(self, state, prep, exec, context)
    }

    fn exec_with(
        &self,
        prep: &Self::Prep,
        context: &Context<'_>,
    ) -> impl Future<Output = Result<Self::Exec, NodeError>> + Send {
        N::exec_with(self, prep, context)
    }

    fn __run<'a, R: dispatch::Runner<S>>(
        &'a self,
        runner: &'a mut R,
        state: &'a mut S,
        name: &'static str,
    ) -> impl Future<Output = dispatch::Stepped> + Send + 'a {
        N::__run(self, runner, state, name)
    }

    fn __branch<'a, B: dispatch::BranchRunner<S>>(
        &'a self,
        branches: &'a B,
        state: &'a S,
        name: &'static str,
        step: u64,
        phase: &'a dispatch::PhaseCell,
    ) -> impl Future<Output = Result<dispatch::Branch<S>, Error>> + Send + 'a
    where
        S: Clone,
    {
        N::__branch(self, branches, state, name, step, phase)
    }

    fn __graph(&self) -> Option<Graph> {
        N::__graph(self)
    }
}
    };
}

pointer_node!(
    /// A shared node: one node value used in several flows (`Arc::clone` it into each).
    Arc<N>
);
pointer_node!(
    /// A borrowed node: a flow that borrows a node the caller keeps (and reads after the run).
    &N
);

/// The [`Node`] items of a node that runs itself through `__run` (a flow, a batch flow): `prep`,
/// `exec` and `post`, which no run calls (`prep` fails with `$unused`, should anyone call it), and
/// `__branch`, which runs it on its own copy of the state, since its steps must see each other's
/// updates.
macro_rules! self_running_node {
    ($unused:literal) => {
        type Prep = ();
        type Exec = ();

        async fn prep(
            &self,
            _: &S,
            _: &$crate::node::Context<'_>,
        ) -> Result<(), $crate::node::NodeError> {
            Err($unused.into())
        }

        async fn exec(&self, (): &()) -> Result<(), $crate::node::NodeError> {
            Ok(())
        }

        async fn post(
            &self,
            _: &S,
            (): (),
            (): (),
            _: &$crate::node::Context<'_>,
        ) -> Result<$crate::node::Command<S>, $crate::node::NodeError> {
            Ok($crate::node::Command::default())
        }

        fn __branch<'a, B: $crate::node::dispatch::BranchRunner<S>>(
            &'a self,
            branches: &'a B,
            state: &'a S,
            name: &'static str,
            step: u64,
            // Its run on the copy catches its own panics, naming its own node and phase.
            _: &'a $crate::node::dispatch::PhaseCell,
        ) -> impl ::std::future::Future<
            Output = Result<$crate::node::dispatch::Branch<S>, $crate::error::Error>,
        > + Send
        + 'a
        where
            S: Clone,
        {
            branches.on_copy(self, state, None, name, step, None)
        }
    };
}
pub(crate) use self_running_node;
