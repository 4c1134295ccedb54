//! Nodes: the steps of a flow, with PocketFlow's three phases.
//!
//! A [`Node`] reads the state in [`prep`](Node::prep), does its work in [`exec`](Node::exec) without
//! seeing the state (the only phase that is retried), and in [`post`](Node::post) returns a
//! [`Command`]: the update to apply and the action that picks the next node. Small nodes are plain
//! functions: [`#[node]`](macro@crate::node) on a `fn` or `async fn`, or [`from_fn`] for a closure.
//!
//! This module owns what a node is, what it sees of the run ([`Context`], [`Emitter`]) and what it
//! returns. It runs nothing: a node is run by a [`Runner`](dispatch::Runner), the interface through
//! which generated flows and self-running nodes (flows, batch flows) reach the run; the run module
//! implements it. That interface lives here, beside [`Node`], so that the layers stay in one
//! direction: `node` knows no run, hook, store or flow.

use std::borrow::Cow;
use std::future::Future;
use std::sync::Arc;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::Duration;

use futures_util::future::{self, Either};
use serde_json::{Map, Value};

use crate::error::{Error, ModelError};
use crate::event::{At, Event, EventSink, NO_SINK};
use crate::graph::Graph;
use crate::state::SharedState;

pub use crate::error::NodeError;
pub use crate::graph::DEFAULT_ACTION;

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
/// let mut doc = Doc { text: "First. Second.".into(), summary: None };
/// let action = slateflow::run_node_blocking(&Summarise, &mut doc)?;
/// assert_eq!((action, doc.summary.as_deref()), ("default", Some("First")));
/// # Ok::<(), slateflow::Error>(())
/// ```
#[diagnostic::on_unimplemented(
    message = "`{Self}` is not a node over the state `{S}`",
    label = "this is not a `Node<{S}>`",
    note = "every node of a flow works on the same state type; implement `Node<{S}>`, use \
            `#[slateflow::node]` on a function, or wrap a closure with `slateflow::node::from_fn`"
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

    /// Does the work like [`exec`](Node::exec), with an [`Emitter`] for events along the way (a
    /// model's token deltas, progress). The run calls this one; by default it calls `exec`, so
    /// override it only to emit events.
    fn exec_with(
        &self,
        prep: &Self::Prep,
        emitter: &Emitter<'_>,
    ) -> impl Future<Output = Result<Self::Exec, NodeError>> + Send {
        let _ = emitter;
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
    /// [`Event::NodeFinished`], and the `tracing` adapter as the
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
    /// a flow nested in a fork branch or a batch flow (the other branches or concurrent runs
    /// finish first); not in a fork or batch flow nested in one of those, where a run cannot
    /// pause yet.
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

/// What a node's [`prep`](Node::prep) and [`post`](Node::post) know about the run: params, where
/// the node is, the step limit and the steps left, the durable thread; and a way to send events.
///
/// ```
/// use slateflow::{Context, Params};
///
/// let params = Params::new().with("model", "small");
/// let context = Context::new(&params, "summarise", 3).with_max_steps(10);
/// assert_eq!(context.params().get_str("model"), Some("small"));
/// assert_eq!((context.step(), context.max_steps(), context.steps_left()), (3, 10, 7));
/// assert_eq!(context.thread(), None);
/// context.emit("progress", &serde_json::json!({ "done": 1 })); // no observer: goes nowhere
/// ```
#[derive(Clone, Copy)]
pub struct Context<'a> {
    params: &'a Params,
    at: At<'a>,
    max_steps: u64,
    last_step: u64,
    thread: Option<&'a str>,
    sink: &'a dyn EventSink,
    // Where a `#[node]` function run under a retry policy records its attempts, for the run's
    // `NodeFinished` event.
    attempts: Option<&'a AtomicU32>,
    // Whether a kept batch's items are kept through `sink` (a durable step saved on its own).
    keeps: bool,
}

impl<'a> Context<'a> {
    /// A context for calling a node's steps directly, as in a unit test of the node or a benchmark
    /// baseline (no step limit, no thread, events go nowhere); runs make their own.
    pub fn new(params: &'a Params, node: &'static str, step: u64) -> Self {
        Self {
            params,
            at: At {
                flows: &[],
                node,
                step,
                fork: None,
            },
            max_steps: Limit::NONE.max_steps,
            last_step: Limit::NONE.last_step,
            thread: None,
            sink: &NO_SINK,
            attempts: None,
            keeps: false,
        }
    }

    /// This context with a step limit of `max_steps` (counted from step 1).
    #[must_use]
    pub fn with_max_steps(mut self, max_steps: u64) -> Self {
        self.max_steps = max_steps;
        self.last_step = max_steps;
        self
    }

    /// The context of a step of a run: where it is, its run's params, limit, thread and sink;
    /// `attempts` counts the attempts of a retried `#[node]` body; `keeps` says whether a kept
    /// batch's items are kept through `sink`.
    #[inline]
    pub(crate) fn in_run(
        params: &'a Params,
        at: At<'a>,
        limit: Limit,
        thread: Option<&'a str>,
        sink: &'a dyn EventSink,
        attempts: Option<&'a AtomicU32>,
        keeps: bool,
    ) -> Self {
        Self {
            params,
            at,
            max_steps: limit.max_steps,
            last_step: limit.last_step,
            thread,
            sink,
            attempts,
            keeps,
        }
    }

    /// Records how many attempts a retried `#[node]` body took.
    pub(crate) fn record_attempts(&self, attempts: u32) {
        if let Some(count) = self.attempts {
            count.store(attempts, Ordering::Relaxed);
        }
    }

    /// How many attempts a retried `#[node]` body recorded (0 when none did).
    pub(crate) fn body_attempts(&self) -> u32 {
        self.attempts
            .map_or(0, |count| count.load(Ordering::Relaxed))
    }

    /// The params the run was given (a flow's params reach every node it runs, nested ones too).
    pub fn params(&self) -> &'a Params {
        self.params
    }

    /// The node's name in its flow (the variable named in `flow!`).
    pub fn node(&self) -> &'static str {
        self.at.node
    }

    /// Where the node is: its flows, name, step and fork; `to_string()` gives its path.
    pub fn at(&self) -> At<'a> {
        self.at
    }

    /// The step number in the run, from 1.
    pub fn step(&self) -> u64 {
        self.at.step
    }

    /// The step limit that bounds this step (the flow's, or an enclosing flow's when that one
    /// leaves fewer steps).
    pub fn max_steps(&self) -> u64 {
        self.max_steps
    }

    /// How many more steps the run may take after this one before it reaches its step limit
    /// (LangGraph's `RemainingSteps`): a node can wrap up when it sees few left.
    pub fn steps_left(&self) -> u64 {
        self.last_step.saturating_sub(self.at.step)
    }

    /// The durable run's thread id; `None` for a run that is not durable.
    pub fn thread(&self) -> Option<&'a str> {
        self.thread
    }

    /// Sends a custom event ([`Event::Custom`]) to the run's observer.
    /// Without an observer it does nothing, and costs a branch.
    pub fn emit(&self, name: &str, data: &Value) {
        self.emitter().emit(name, data);
    }

    /// An [`Emitter`] for this node, to hand to work that has no context.
    pub fn emitter(&self) -> Emitter<'_> {
        Emitter { context: self }
    }
}

impl std::fmt::Debug for Context<'_> {
    fn fmt(&self, formatter: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        formatter
            .debug_struct("Context")
            .field("params", &self.params)
            .field("at", &self.at)
            .field("max_steps", &self.max_steps)
            .field("thread", &self.thread)
            .finish_non_exhaustive()
    }
}

/// The step limit in force for a step: the limit, and the last step number it allows.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Limit {
    pub(crate) max_steps: u64,
    pub(crate) last_step: u64,
}

impl Limit {
    /// No limit: a context made outside a run, a run before it enters a flow.
    pub(crate) const NONE: Self = Self {
        max_steps: u64::MAX,
        last_step: u64::MAX,
    };
}

/// Sends a node's custom events to the run's observer; what [`exec_with`](Node::exec_with) gets.
///
/// ```
/// use slateflow::{Context, Params};
///
/// let params = Params::new();
/// let context = Context::new(&params, "writer", 1);
/// let emitter = context.emitter();
/// for token in ["Hel", "lo"] {
///     emitter.emit("token", &serde_json::Value::from(token));
/// }
/// assert!(!emitter.is_observed());
/// ```
#[derive(Clone, Copy)]
pub struct Emitter<'a> {
    // A reference, not a copy of where the node is: one is made for every step.
    context: &'a Context<'a>,
}

impl Emitter<'_> {
    /// Sends [`Event::Custom`] named `name` with `data`.
    pub fn emit(&self, name: &str, data: &Value) {
        if self.context.sink.observed() {
            self.context.sink.send(&Event::Custom {
                at: self.context.at,
                name,
                data,
            });
        }
    }

    /// Whether anyone watches: skip building costly event data when not.
    pub fn is_observed(&self) -> bool {
        self.context.sink.observed()
    }

    /// Sends what happened between two attempts of the node's step: [`Event::Retry`] for a
    /// failed one and, when `starts` (the node's own attempts, not an item's or a call's),
    /// [`Event::NodeStarted`] for the next.
    ///
    /// [`Event::Retry`]: crate::event::Event::Retry
    /// [`Event::NodeStarted`]: crate::event::Event::NodeStarted
    pub(crate) fn between(self, between: Between<'_>, starts: bool) {
        if self.context.sink.observed()
            && let Some(event) = between.event(self.context.at, starts)
        {
            self.context.sink.send(&event);
        }
    }

    /// Whether the outputs of batch items are kept here (a durable step saved on its own).
    pub(crate) fn keeps_items(self) -> bool {
        self.context.keeps
    }

    /// The output of item `index` kept by an earlier attempt of this step.
    pub(crate) fn kept_item(self, index: usize) -> Option<Value> {
        if self.context.keeps {
            self.context.sink.kept_item(&self.context.at, index)
        } else {
            None
        }
    }

    /// Keeps the output of item `index` until this step is saved.
    pub(crate) async fn keep_item(self, index: usize, output: Value) -> Result<(), Error> {
        if self.context.keeps {
            self.context
                .sink
                .keep_item(self.context.at, index, output)
                .await
        } else {
            Ok(())
        }
    }

    /// Sends [`Event::BatchItemFinished`](crate::event::Event::BatchItemFinished).
    pub(crate) fn item_finished(self, index: usize, finished: usize, total: usize) {
        if self.context.sink.observed() {
            self.context.sink.send(&Event::BatchItemFinished {
                at: self.context.at,
                index,
                finished,
                total,
            });
        }
    }
}

impl std::fmt::Debug for Emitter<'_> {
    fn fmt(&self, formatter: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        formatter
            .debug_struct("Emitter")
            .field("at", &self.context.at)
            .field("observed", &self.context.sink.observed())
            .finish()
    }
}

/// Immutable params, string to JSON value, set on a flow and read by its nodes. Cheap to clone.
///
/// As in PocketFlow, a flow's params replace those of a flow nested in it: a run sees the params
/// of the outermost flow (or those passed to [`Flow::run_with_params`](crate::Flow::run_with_params)).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Params {
    values: Option<Arc<Map<String, Value>>>,
}

impl Params {
    /// No params.
    pub const fn new() -> Self {
        Self { values: None }
    }

    /// The value of `key`.
    pub fn get(&self, key: &str) -> Option<&Value> {
        self.values.as_ref()?.get(key)
    }

    /// The value of `key`, if it is a string.
    pub fn get_str(&self, key: &str) -> Option<&str> {
        self.get(key)?.as_str()
    }

    /// Whether there are no params.
    pub fn is_empty(&self) -> bool {
        self.values.as_ref().is_none_or(|values| values.is_empty())
    }

    /// The params with `key` set to `value` (a copy: params are immutable once shared).
    #[must_use]
    pub fn with(mut self, key: impl Into<String>, value: impl Into<Value>) -> Self {
        Arc::make_mut(self.values.get_or_insert_with(Arc::default))
            .insert(key.into(), value.into());
        self
    }

    /// These params with every key of `other` set to its value there: `other` wins (a batch
    /// flow's item over the flow's params).
    #[must_use]
    pub fn merged(&self, other: &Params) -> Params {
        match (&self.values, &other.values) {
            (_, None) => self.clone(),
            (None, Some(_)) => other.clone(),
            (Some(base), Some(over)) => {
                let mut values = Map::clone(base);
                values.extend(over.iter().map(|(key, value)| (key.clone(), value.clone())));
                Self {
                    values: Some(Arc::new(values)),
                }
            }
        }
    }

    /// Every key and value, in key order.
    pub fn iter(&self) -> impl Iterator<Item = (&str, &Value)> {
        self.values
            .iter()
            .flat_map(|values| values.iter().map(|(key, value)| (key.as_str(), value)))
    }
}

impl<K: Into<String>, V: Into<Value>> FromIterator<(K, V)> for Params {
    fn from_iter<I: IntoIterator<Item = (K, V)>>(pairs: I) -> Self {
        let values: Map<String, Value> = pairs
            .into_iter()
            .map(|(key, value)| (key.into(), value.into()))
            .collect();
        Self {
            values: (!values.is_empty()).then(|| Arc::new(values)),
        }
    }
}

/// How a node's [`exec`](Node::exec) is retried and timed out.
///
/// `max_attempts` counts attempts (PocketFlow's `max_retries` does too, under a misleading name): the
/// default, 1, tries once. The wait happens only between attempts, never after the last; with
/// [`backoff`](Retry::backoff) it is multiplied by `factor` after each attempt, up to `max_wait`.
/// A [`timeout`](Retry::timeout) bounds each attempt; a timed-out attempt counts as a failed one.
/// Waits and timeouts use tokio's timer: run flows inside a tokio runtime with time enabled.
///
/// Which errors are worth another attempt is the [`retry_if`](Retry::retry_if) predicate's call. By
/// default ([`is_retryable`]) every error is, except a [`ModelError`] that says it is not (a 400 or
/// 401 from a model endpoint, a reply that does not parse): those fail at once, without waiting
/// through the attempts that would fail the same way.
///
/// An endpoint that limits its callers says how long to wait (`Retry-After`): when a failed
/// attempt's error is a [`ModelError`] carrying that wait, the next attempt waits at least as
/// long, up to [`max_retry_after`](Retry::max_retry_after) (a minute by default), even past
/// `max_wait`, since an earlier attempt would only be refused again. See
/// [`wait_for`](Retry::wait_for).
///
/// ```
/// use std::time::Duration;
/// use slateflow::Retry;
/// use slateflow::error::ModelError;
///
/// let retry = Retry::attempts(3).wait(Duration::from_millis(200)).backoff(2.0, Duration::from_secs(5));
/// assert_eq!(retry.wait_after(2), Duration::from_millis(400));
/// assert!(retry.retries(&ModelError::status(503, "busy").into()));
/// assert!(!retry.retries(&ModelError::status(400, "bad").into()));
/// ```
#[derive(Debug, Clone, Copy)]
pub struct Retry {
    max_attempts: u32,
    wait: Duration,
    backoff_factor: f64,
    max_wait: Duration,
    timeout: Option<Duration>,
    predicate: fn(&NodeError) -> bool,
    /// In whole milliseconds: a `u32` fits beside `max_attempts`, where a `Duration` would make
    /// every node step's future (which holds its policy) 16 bytes larger.
    max_retry_after_ms: u32,
}

/// The longest wait, in milliseconds, an endpoint's `Retry-After` can ask of a [`Retry`] policy
/// by default: a minute.
const MAX_RETRY_AFTER_MS: u32 = 60_000;

impl Default for Retry {
    fn default() -> Self {
        Self {
            max_attempts: 1,
            wait: Duration::ZERO,
            backoff_factor: 1.0,
            max_wait: Duration::MAX,
            timeout: None,
            predicate: is_retryable,
            max_retry_after_ms: MAX_RETRY_AFTER_MS,
        }
    }
}

impl PartialEq for Retry {
    fn eq(&self, other: &Self) -> bool {
        self.max_attempts == other.max_attempts
            && self.wait == other.wait
            && self.backoff_factor == other.backoff_factor
            && self.max_wait == other.max_wait
            && self.timeout == other.timeout
            && std::ptr::fn_addr_eq(self.predicate, other.predicate)
            && self.max_retry_after_ms == other.max_retry_after_ms
    }
}

/// The default retry predicate: every error is worth another attempt, except a [`ModelError`] whose
/// [`is_retryable`](ModelError::is_retryable) is false.
pub fn is_retryable(error: &NodeError) -> bool {
    error
        .downcast_ref::<ModelError>()
        .is_none_or(ModelError::is_retryable)
}

impl Retry {
    /// Up to `max_attempts` attempts (at least one), with no wait between them.
    pub fn attempts(max_attempts: u32) -> Self {
        Self {
            max_attempts: max_attempts.max(1),
            ..Self::default()
        }
    }

    /// Waits `wait` between attempts.
    #[must_use]
    pub fn wait(mut self, wait: Duration) -> Self {
        self.wait = wait;
        self
    }

    /// Multiplies the wait by `factor` after each attempt, never waiting longer than `max_wait`.
    #[must_use]
    pub fn backoff(mut self, factor: f64, max_wait: Duration) -> Self {
        self.backoff_factor = factor.max(1.0);
        self.max_wait = max_wait;
        self
    }

    /// Fails an attempt of [`exec`](Node::exec) that takes longer than `timeout`.
    #[must_use]
    pub fn timeout(mut self, timeout: Duration) -> Self {
        self.timeout = Some(timeout);
        self
    }

    /// Retries only the errors for which `predicate` is true; the others fail the node at once
    /// (through its fallback). A timed-out attempt is always retried.
    ///
    /// ```
    /// use slateflow::{NodeError, Retry};
    ///
    /// fn transient(error: &NodeError) -> bool {
    ///     error.to_string().contains("busy")
    /// }
    /// let retry = Retry::attempts(5).retry_if(transient);
    /// assert!(retry.retries(&"server busy".into()));
    /// assert!(!retry.retries(&"no such user".into()));
    /// ```
    #[must_use]
    pub fn retry_if(mut self, predicate: fn(&NodeError) -> bool) -> Self {
        self.predicate = predicate;
        self
    }

    /// The longest wait an endpoint's `Retry-After` may impose between two attempts (a minute by
    /// default); one that asks for more is cut to this, and [`Duration::ZERO`] ignores it. It is
    /// kept in whole milliseconds, up to 49 days.
    ///
    /// ```
    /// use std::time::Duration;
    /// use slateflow::{ModelError, Retry};
    ///
    /// let limited = ModelError::status(429, "slow down").with_retry_after(Duration::from_secs(600));
    /// let retry = Retry::attempts(3).max_retry_after(Duration::from_secs(30));
    /// assert_eq!(retry.wait_for(1, &limited.into()), Duration::from_secs(30));
    /// ```
    #[must_use]
    pub fn max_retry_after(mut self, limit: Duration) -> Self {
        self.max_retry_after_ms = u32::try_from(limit.as_millis()).unwrap_or(u32::MAX);
        self
    }

    /// Whether the policy's predicate calls `error` worth another attempt (attempts left aside).
    pub fn retries(&self, error: &NodeError) -> bool {
        (self.predicate)(error)
    }

    /// One attempt and no timeout: `exec` runs once, as it is (the common case, which needs no
    /// timer).
    #[inline]
    pub(crate) fn is_single_attempt(&self) -> bool {
        self.max_attempts == 1 && self.timeout.is_none()
    }

    /// How many attempts at most.
    pub fn max_attempts(&self) -> u32 {
        self.max_attempts
    }

    /// The timeout of each attempt, if any.
    pub fn attempt_timeout(&self) -> Option<Duration> {
        self.timeout
    }

    /// The policy's own wait after the failed attempt number `attempt` (from 1) and before the
    /// next; [`wait_for`](Retry::wait_for) adds what the error asked for.
    pub fn wait_after(&self, attempt: u32) -> Duration {
        let exponent = i32::try_from(attempt.saturating_sub(1)).unwrap_or(i32::MAX);
        let factor = self.backoff_factor.powi(exponent);
        let wait = self.wait.as_secs_f64() * factor;
        if wait >= self.max_wait.as_secs_f64() {
            self.max_wait
        } else {
            Duration::from_secs_f64(wait)
        }
    }

    /// The wait after the failed attempt number `attempt` (from 1), which failed with `error`,
    /// and before the next: the policy's [`wait_after`](Retry::wait_after), or longer when
    /// `error` is a [`ModelError`] whose endpoint asked for a longer wait
    /// ([`ModelError::retry_after`]), up to [`max_retry_after`](Retry::max_retry_after).
    ///
    /// ```
    /// use std::time::Duration;
    /// use slateflow::{ModelError, Retry};
    ///
    /// let retry = Retry::attempts(3).wait(Duration::from_millis(100));
    /// let busy = ModelError::status(503, "busy");
    /// assert_eq!(retry.wait_for(1, &busy.clone().into()), Duration::from_millis(100));
    /// let asked = busy.with_retry_after(Duration::from_secs(2));
    /// assert_eq!(retry.wait_for(1, &asked.into()), Duration::from_secs(2));
    /// ```
    pub fn wait_for(&self, attempt: u32, error: &NodeError) -> Duration {
        let own = self.wait_after(attempt);
        error
            .downcast_ref::<ModelError>()
            .and_then(ModelError::retry_after)
            .map_or(own, |asked| {
                let limit = Duration::from_millis(self.max_retry_after_ms.into());
                own.max(asked.min(limit))
            })
    }
}

/// An attempt of `exec` that ran out of time; becomes [`Error::Timeout`] if nothing recovers it.
#[derive(Debug, thiserror::Error)]
#[error("`exec` took longer than {0:?}")]
pub(crate) struct TimedOut(pub(crate) Duration);

/// What [`with_retries`] reports between two attempts.
#[derive(Clone, Copy)]
pub(crate) enum Between<'e> {
    /// Attempt `attempt` failed with `error`; the next starts after `wait`.
    Failed {
        attempt: u32,
        error: &'e NodeError,
        wait: Duration,
    },
    /// Attempt `attempt` (the second or a later one) starts, after the wait.
    Starts(u32),
}

impl<'e> Between<'e> {
    /// Its event at `at`: a retry, or (when `starts`) the node started again.
    pub(crate) fn event(self, at: At<'e>, starts: bool) -> Option<Event<'e>> {
        match self {
            Self::Failed {
                attempt,
                error,
                wait,
            } => Some(Event::Retry {
                at,
                attempt,
                error: &**error,
                wait,
            }),
            Self::Starts(attempt) => starts.then_some(Event::NodeStarted { at, attempt }),
        }
    }
}

/// Runs `exec` under a retry policy: attempts while its predicate calls the error retryable,
/// waits between them (never after the last), a timeout on each. `between` hears of each failed
/// attempt before its wait, and of the next attempt as it starts: one callback, so that a future
/// holding this one (every node step's and fork branch's does) holds one closure for both.
/// Returns the output and the attempts it took, or the last error and the number of attempts
/// when every attempt failed.
pub(crate) async fn with_retries<T, F, Fut>(
    retry: Retry,
    mut exec: F,
    mut between: impl FnMut(Between<'_>),
) -> Result<(T, u32), (NodeError, u32)>
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Result<T, NodeError>>,
{
    // The timers are boxed, allocated only by a policy that times out or waits: every node
    // step's future (and every fork branch's) holds this future inline, retried or not, and
    // inline timers would make each hundreds of bytes larger.
    let mut attempt = 0;
    loop {
        attempt += 1;
        let outcome = match retry.attempt_timeout() {
            None => exec().await,
            Some(limit) => {
                let attempt = std::pin::pin!(exec());
                match future::select(attempt, Box::pin(tokio::time::sleep(limit))).await {
                    Either::Left((outcome, _)) => outcome,
                    Either::Right(((), _)) => Err(Box::new(TimedOut(limit)) as NodeError),
                }
            }
        };
        let error = match outcome {
            Ok(exec) => return Ok((exec, attempt)),
            Err(error) => error,
        };
        if attempt >= retry.max_attempts() || !(error.is::<TimedOut>() || retry.retries(&error)) {
            return Err((error, attempt));
        }
        let wait = retry.wait_for(attempt, &error);
        between(Between::Failed {
            attempt,
            error: &error,
            wait,
        });
        if !wait.is_zero() {
            Box::pin(tokio::time::sleep(wait)).await;
        }
        between(Between::Starts(attempt + 1));
    }
}

/// The last error of a `#[node]` function whose body ran under a retry policy, with the number
/// of attempts; the run reports it as the node's failure after that many attempts.
#[derive(Debug, thiserror::Error)]
#[error("{source}")]
pub(crate) struct RetriedBody {
    pub(crate) attempts: u32,
    pub(crate) source: NodeError,
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
/// slateflow::run_node_blocking(&increment, &mut count)?;
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

/// A shared node: one node value used in several flows.
impl<S: SharedState, N: Node<S>> Node<S> for Arc<N> {
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
        emitter: &Emitter<'_>,
    ) -> impl Future<Output = Result<Self::Exec, NodeError>> + Send {
        N::exec_with(self, prep, emitter)
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

/// How flows and self-running nodes reach the run that runs them. Not public API: `flow!`
/// generates implementations of [`FlowGraph`](dispatch::FlowGraph), and the run module implements
/// the runners. Reached through `slateflow::__private` only.
pub(crate) mod dispatch {
    use std::future::Future;
    use std::marker::PhantomData;
    use std::sync::atomic::{AtomicU8, Ordering};

    use super::{Context, Node, Params};
    use crate::error::{Error, Phase};
    use crate::graph::Graph;
    use crate::state::SharedState;
    use crate::text::ActionSet;

    /// The phase a node step is in, where whoever catches its panic can read it: the run's, or a
    /// fork branch's (kept by the fork, which catches each branch's panics).
    #[derive(Debug)]
    pub struct PhaseCell(AtomicU8);

    impl PhaseCell {
        /// The phases by their discriminants, in declaration order.
        const PHASES: [Phase; 5] = [
            Phase::Prep,
            Phase::Exec,
            Phase::Fallback,
            Phase::Post,
            Phase::Apply,
        ];

        /// A cell at [`Phase::Prep`].
        pub const fn new() -> Self {
            Self(AtomicU8::new(Phase::Prep as u8))
        }

        /// Records `phase`: one store, on a step's path.
        #[inline]
        pub(crate) fn set(&self, phase: Phase) {
            self.0.store(phase as u8, Ordering::Relaxed);
        }

        /// The phase recorded last.
        pub(crate) fn get(&self) -> Phase {
            let index = usize::from(self.0.load(Ordering::Relaxed));
            Self::PHASES.get(index).copied().unwrap_or(Phase::Prep)
        }
    }

    impl Default for PhaseCell {
        fn default() -> Self {
            Self::new()
        }
    }

    /// What a step hands back up through a run's layers (the node, the generated `match`, the
    /// flow's loop): its action, or the run's error, boxed. Each layer writes and moves its
    /// outcome, which is then two words where an [`Error`] inline would make it ten; errors are
    /// rare, and a box is one allocation on the way out.
    pub type Stepped = Result<&'static str, Box<Error>>;

    /// What `flow!` generates: the static parts of a flow. The run owns the loop and asks only
    /// "run the node at this position" and "where does this action lead".
    ///
    /// Positions number the flow's nodes in the order it names them, then its forks.
    pub trait FlowGraph<S: SharedState>: Send + Sync {
        /// The actions the flow can end with, computed at compile time.
        const TERMINAL: ActionSet;
        /// The actions the flow can end with: declared by its nodes, not wired.
        const ACTIONS: &'static [&'static str] = Self::TERMINAL.list.split_at(Self::TERMINAL.len).0;
        /// Compile-time checks of the wiring; evaluating it fails the build when one fails.
        const CHECKS: ();
        /// The name of each position (a node, or a fork as `[b, c]`).
        const NAMES: &'static [&'static str];
        /// The start position.
        const START: usize;

        /// Where `action` leads from `position`; `None` ends the flow.
        fn route(position: usize, action: &str) -> Option<usize>;

        /// The actions wired from `position`.
        fn wired(position: usize) -> &'static [&'static str];

        /// The actions the node at `position` declares (`"default"` for a fork).
        fn declared(position: usize) -> &'static [&'static str];

        /// Runs the node (or fork) at `position` as one step of `runner`'s run.
        fn step<'a, R: Runner<S>>(
            &'a self,
            position: usize,
            runner: &'a mut R,
            state: &'a mut S,
        ) -> impl Future<Output = Stepped> + Send + 'a;

        /// The graph, for export.
        fn describe(&self) -> Graph;
    }

    /// Names the state type of a flow while `flow!` builds it, so that a node over another state
    /// is an error at that node.
    pub struct StateType<S>(PhantomData<fn(&mut S)>);

    impl<S> StateType<S> {
        /// The marker.
        pub const fn new() -> Self {
            Self(PhantomData)
        }
    }

    impl<S> Default for StateType<S> {
        fn default() -> Self {
            Self::new()
        }
    }

    /// The future of one branch of a fork, pinned where the generated code keeps it: a borrowed
    /// trait object, so a fork joins branches of different node types without allocating.
    pub type BranchFuture<'a, S> =
        std::pin::Pin<&'a mut (dyn Future<Output = Result<Branch<S>, Error>> + Send + 'a)>;

    /// What a branch of a fork, a run on a copy of the state or a whole fork hands back: its
    /// action, its update (not applied yet), the node steps it took, and the questions its
    /// branches asked (by branch, in written order), which pause a durable run after the fork.
    pub struct Branch<S: SharedState> {
        pub(crate) action: &'static str,
        pub(crate) update: S::Update,
        pub(crate) steps: u64,
        pub(crate) asked: Vec<(&'static str, serde_json::Value)>,
    }

    impl<S: SharedState> Branch<S> {
        pub(crate) fn new(action: &'static str, update: S::Update, steps: u64) -> Self {
            Self {
                action,
                update,
                steps,
                asked: Vec::new(),
            }
        }

        /// Adds the questions another outcome asked after this one's. None, usually: then
        /// nothing is called, not even the empty list's drop.
        #[inline]
        pub(crate) fn ask(&mut self, asked: Vec<(&'static str, serde_json::Value)>) {
            if !asked.is_empty() {
                self.asked.extend(asked);
            }
        }
    }

    /// A composite step under way: its number, and when it started (when the run is watched).
    #[derive(Debug, Clone, Copy)]
    pub struct Composite {
        pub(crate) step: u64,
        pub(crate) started: Option<std::time::Instant>,
    }

    /// A run, as nodes and generated flows see it. Implemented by the run module only.
    pub trait Runner<S: SharedState>: Send {
        /// What runs the branches of a fork, borrowed from the run.
        type Branches<'b>: BranchRunner<S> + Send
        where
            Self: 'b;

        /// One node step on the state in place: prep, exec, post, the update applied.
        fn node<'a, N: Node<S>>(
            &'a mut self,
            node: &'a N,
            state: &'a mut S,
            name: &'static str,
        ) -> impl Future<Output = Stepped> + Send + 'a;

        /// A nested flow's walk, on the state in place, bounded by `max_steps` too.
        fn flow<'a, G: FlowGraph<S>>(
            &'a mut self,
            graph: &'a G,
            state: &'a mut S,
            max_steps: u64,
        ) -> impl Future<Output = Stepped> + Send + 'a;

        /// A fork called `name` is about to run `branches`: checks they fit in the step limit and
        /// returns the steps before it (its first branch is the next step).
        ///
        /// # Errors
        /// [`Error::StepLimit`] naming the first branch that does not fit.
        fn fork_start(
            &mut self,
            name: &'static str,
            branches: &'static [&'static str],
        ) -> Result<u64, Error>;

        /// What runs the branches of the fork just started.
        fn branches(&self) -> Self::Branches<'_>;

        /// What runs the items of the concurrent batch flow `name`, whose own step is `step`.
        fn batch_branches(&self, name: &'static str, step: u64) -> Self::Branches<'_>;

        /// The outcome of run `index` of the batch flow `name` (own step `step`), kept by an
        /// earlier attempt of the step (a durable run resumed after a failure or a crash), with
        /// its action looked up in `declared`.
        ///
        /// # Errors
        /// A kept outcome that does not read back, or whose action is not in `declared`.
        fn kept(
            &self,
            name: &'static str,
            step: u64,
            index: usize,
            declared: &'static [&'static str],
        ) -> Result<Option<Branch<S>>, Error>;

        /// Run `index` of the sequential batch flow `name` (own step `step`) starts, in place:
        /// its updates are set apart, so that [`item_finish`](Runner::item_finish) can keep
        /// them; a run that stopped at pauses in an earlier attempt of the step has what it had
        /// done applied, and goes on from where it stood.
        ///
        /// # Errors
        /// A kept update that does not read back.
        fn item_start(
            &mut self,
            state: &mut S,
            name: &'static str,
            step: u64,
            index: usize,
        ) -> Result<(), Error>;

        /// Run `index` of the batch flow `name` (own step `step`) ended with `outcome`: keeps
        /// its outcome until the step is saved, or where it stopped when it paused, and hands
        /// the outcome back.
        fn item_finish<'a>(
            &'a mut self,
            name: &'static str,
            step: u64,
            index: usize,
            outcome: Stepped,
        ) -> impl Future<Output = Stepped> + Send + 'a;

        /// Applies (and commits) the merged outcome of the fork just started.
        fn fork_finish<'a>(
            &'a mut self,
            state: &'a mut S,
            joined: Branch<S>,
        ) -> impl Future<Output = Result<(), Error>> + Send + 'a;

        /// Starts a step that runs other steps inside it (a batch flow's own): returns its
        /// number (and when it started, for its event). Its inner steps are committed with it,
        /// as one.
        fn composite_start(&mut self, name: &'static str) -> Composite;

        /// The context of a composite step's own `prep` and `post`.
        fn context(&self, name: &'static str, step: u64) -> Context<'_>;

        /// The run's params; [`replace_params`](Runner::replace_params) sets others (a batch
        /// flow's item) and returns the old ones.
        fn params(&self) -> &Params;

        /// See [`params`](Runner::params).
        fn replace_params(&mut self, params: Params) -> Params;

        /// Back in a composite step's own work, in `phase`: what a panic is attributed to.
        fn resume_composite(&mut self, name: &'static str, phase: Phase);

        /// Applies an update that steps on copies of the state made, counting their steps.
        fn apply_from_copies(&mut self, state: &mut S, update: S::Update, steps: u64);

        /// Ends a composite step: applies its own update and commits it with its inner steps.
        fn composite_finish<'a>(
            &'a mut self,
            state: &'a mut S,
            name: &'static str,
            composite: Composite,
            command: crate::node::Command<S>,
            declared: &'static [&'static str],
        ) -> impl Future<Output = Stepped> + Send + 'a;
    }

    /// What runs the branches of a fork (and the items of a concurrent batch flow): on a shared
    /// borrow of the state, handing updates back instead of applying them.
    pub trait BranchRunner<S: SharedState>: Sync {
        /// A node as a branch, recording its phase in `phase`.
        fn node<'a, N: Node<S>>(
            &'a self,
            node: &'a N,
            state: &'a S,
            name: &'static str,
            step: u64,
            phase: &'a PhaseCell,
        ) -> impl Future<Output = Result<Branch<S>, Error>> + Send + 'a;

        /// A self-running node (a flow) on its own copy of the state, numbering its steps from
        /// `step`, with `params` instead of the run's when given; its update is the composition of
        /// what it applied. `index` is its part of a concurrent batch flow (a fork's branch is
        /// known by its step).
        fn on_copy<'a, N: Node<S>>(
            &'a self,
            node: &'a N,
            state: &'a S,
            params: Option<&'a Params>,
            name: &'static str,
            step: u64,
            index: Option<usize>,
        ) -> impl Future<Output = Result<Branch<S>, Error>> + Send + 'a
        where
            S: Clone;

        /// The outcome of part `index` (a fork's branch, a batch flow's run), kept by an earlier
        /// attempt of the step (a durable run resumed after a failure or a crash). Its action is
        /// looked up in `declared`; a fork, which does not route on its branches' actions, passes
        /// `None` and gets `"default"`.
        ///
        /// # Errors
        /// A kept outcome that does not read back, or whose action is not in `declared`.
        fn kept(
            &self,
            index: usize,
            declared: Option<&'static [&'static str]>,
        ) -> Result<Option<Branch<S>>, Error>;

        /// Whether parts' outcomes are kept as they finish (a durable step): when not,
        /// [`keep`](BranchRunner::keep) hands every outcome back as it is and
        /// [`kept`](BranchRunner::kept) has none, and neither need be called.
        fn keeps(&self) -> bool;

        /// Part `index` finished: keeps its outcome until the step is saved (durable runs only),
        /// and hands it back.
        fn keep<'a>(
            &'a self,
            index: usize,
            outcome: Branch<S>,
        ) -> impl Future<Output = Result<Branch<S>, Error>> + Send + 'a
        where
            S: 'a;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::error::Phase;

    #[test]
    fn retry_waits_grow_by_the_factor_up_to_the_cap() {
        let retry = Retry::attempts(5)
            .wait(Duration::from_millis(100))
            .backoff(2.0, Duration::from_millis(500));
        let waits: Vec<u128> = (1..=5).map(|n| retry.wait_after(n).as_millis()).collect();
        assert_eq!(waits, [100, 200, 400, 500, 500]);
        assert_eq!(Retry::default().wait_after(1), Duration::ZERO);
        assert_eq!(Retry::attempts(0).max_attempts(), 1, "at least one attempt");
    }

    #[test]
    fn a_phase_cell_gives_back_each_phase_it_is_set_to() {
        let cell = dispatch::PhaseCell::new();
        assert_eq!(cell.get(), Phase::Prep);
        for phase in [
            Phase::Exec,
            Phase::Fallback,
            Phase::Post,
            Phase::Apply,
            Phase::Prep,
        ] {
            cell.set(phase);
            assert_eq!(cell.get(), phase);
        }
    }

    #[test]
    fn params_are_immutable_once_shared() {
        let base = Params::new().with("model", "small");
        let shared = base.clone();
        let changed = base.with("model", "large").with("temperature", 0.5);
        assert_eq!(shared.get_str("model"), Some("small"));
        assert_eq!(changed.get_str("model"), Some("large"));
        assert_eq!(changed.iter().count(), 2);
        assert!(Params::new().is_empty());
        let collected: Params = [("k", 1)].into_iter().collect();
        assert_eq!(collected.get("k"), Some(&Value::from(1)));
    }
}
