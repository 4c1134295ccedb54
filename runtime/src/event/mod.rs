//! Events: what a run tells whoever watches it (a progress bar, a log, a trace, a UI).
//!
//! An [`Event`] borrows what it describes, so emitting one allocates nothing. A run delivers its
//! events to the [`Observer`] chosen for it ([`Flow::observe`](crate::Flow::observe)), called in
//! place, in order, from the run's own task; with no observer, a run builds no events at all.
//!
//! Adapters:
//! - [`channel`]: a bounded queue whose reader is a [`Stream`](futures_util::Stream) of
//!   [`OwnedEvent`]s, for UIs. The run never waits for the reader: when the queue is full the
//!   event is dropped and counted ([`EventSender::dropped`]).
//! - `TracingObserver` (feature `tracing`): a span per run and per step, with the thread, node,
//!   step, attempt, action and reason as fields.
//! - [`from_fn`]: any `Fn(&Event<'_>) + Send + Sync` closure as an observer.
//!
//! # Order
//! Events of one run arrive in the order things happen: `RunStarted`, then for each step
//! `NodeStarted` (attempt 1), any `Custom` and `BatchItemFinished`, for each retried attempt a
//! `Retry` and, after its wait, a `NodeStarted` with the next attempt, then `NodeFinished`, then
//! `StepSaved` in a durable run; `RunFinished`, `RunPaused` or `RunFailed` last. A fork sends
//! `ForkStarted`, then the events of its branches, which run concurrently, so that their events
//! interleave as the branches make progress (each carries its branch in [`At::fork`]), and then
//! `ForkJoined` once every branch has finished and their updates are merged.
//!
//! This module owns the event types and the adapters. It does not run anything and knows no node
//! or flow; of durable runs it knows the [`Pause`] a paused run reports.

use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use serde::Serialize;
use serde_json::Value;

use crate::checkpoint::Pause;
use crate::error::Error;

/// Where something happened in a run: the node, the flows it is nested in, its step and, for a
/// branch of a fork, the fork.
///
/// ```
/// # use serde::{Deserialize, Serialize};
/// # use slateflow::{Command, SharedState, flow, node};
/// # #[derive(SharedState, Clone, Debug, Default, Serialize, Deserialize)]
/// # struct Counter { #[reducer(add)] count: u32, label: String }
/// # #[node]
/// # fn count(_: &Counter) -> Command<Counter> { Command::new(Counter::update().add_count(1)) }
/// use std::sync::Mutex;
/// use slateflow::{Event, event};
///
/// let paths = Mutex::new(Vec::new());
/// let record = event::from_fn(|event: &Event<'_>| {
///     if let Some(at) = event.at() {
///         paths.lock().unwrap().push(format!("{} at step {}", at.path(), at.step));
///     }
/// });
/// let inner = flow! { count; };
/// let flow = flow! { inner; };
/// flow.observe(&record).run_blocking(&mut Counter::default())?;
/// // Nested flows are named by their path.
/// assert!(paths.lock().unwrap().contains(&"inner/count at step 1".to_string()));
/// # Ok::<(), slateflow::Error>(())
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct At<'a> {
    /// The names of the nested flows the node runs in, outermost first (empty at the top level).
    pub flows: &'a [&'static str],
    /// The node's name in its flow (a branch's name for a node in a fork).
    pub node: &'static str,
    /// The step number in the run, from 1.
    pub step: u64,
    /// For a branch of a fork: the fork, as `flow!` names it (`[b, c]`).
    pub fork: Option<&'static str>,
}

impl At<'_> {
    /// The node's path: its flows and its name, `outer/inner/node`.
    pub fn path(&self) -> String {
        self.to_string()
    }
}

impl fmt::Display for At<'_> {
    fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        for flow in self.flows {
            write!(formatter, "{flow}/")?;
        }
        formatter.write_str(self.node)
    }
}

/// Something that happened in a run. Borrowed: emitting one allocates nothing; see
/// [`OwnedEvent`] to keep one.
///
/// ```
/// use slateflow::event::{At, Event};
///
/// let at = At { flows: &["review"], node: "check", step: 3, fork: None };
/// let event = Event::NodeStarted { at, attempt: 1 };
/// assert_eq!(event.to_string(), "step 3: review/check started");
/// let again = Event::NodeStarted { at, attempt: 2 };
/// assert_eq!(again.to_string(), "step 3: review/check attempt 2 started");
/// ```
#[derive(Debug, Clone, Copy)]
#[non_exhaustive]
pub enum Event<'a> {
    /// A run started (or resumed, after `first_step - 1` saved steps).
    RunStarted {
        /// The durable thread, if the run is durable.
        thread: Option<&'a str>,
        /// The step number the run starts at: 1, or the step after the last saved one.
        first_step: u64,
        /// The run's step limit.
        max_steps: u64,
    },
    /// A node is about to run its `prep` (attempt 1) or, after a [`Retry`](Event::Retry) and its
    /// wait, its next attempt of `exec` (of the body, for a `#[node]` function with a retry
    /// policy). A step has one `NodeStarted` per attempt and one `NodeFinished`.
    NodeStarted {
        /// Where.
        at: At<'a>,
        /// The attempt about to run, from 1.
        attempt: u32,
    },
    /// An attempt of a node's `exec` failed and another follows after `wait`.
    Retry {
        /// Where.
        at: At<'a>,
        /// The attempt that failed, from 1.
        attempt: u32,
        /// Why it failed.
        error: &'a (dyn std::error::Error + Send + Sync + 'static),
        /// The wait before the next attempt.
        wait: Duration,
    },
    /// One item of a batch node finished (for a progress bar: `finished` of `total`).
    BatchItemFinished {
        /// The batch node.
        at: At<'a>,
        /// The item's position in the list its `prep` returned, from 0.
        index: usize,
        /// How many items have finished so far, this one included.
        finished: usize,
        /// How many items the batch has.
        total: usize,
    },
    /// An event a node sent through [`Context::emit`](crate::Context::emit): its own progress, a
    /// model's token deltas.
    Custom {
        /// The node that sent it.
        at: At<'a>,
        /// What kind of event it is, as the node names it (`"token"`, `"progress"`).
        name: &'a str,
        /// Its data.
        data: &'a Value,
    },
    /// A node finished: its update is about to be applied (or, for a branch, merged).
    NodeFinished {
        /// Where.
        at: At<'a>,
        /// The action it returned.
        action: &'static str,
        /// Why it chose that action ([`Command::with_reason`](crate::Command::with_reason)).
        reason: Option<&'a str>,
        /// How many attempts of `exec` (or of a retried `#[node]` function's body) ran.
        attempts: u32,
        /// From `prep` to the end of `post`.
        duration: Duration,
    },
    /// A fork's branches are about to start.
    ForkStarted {
        /// The fork (its `node` is the fork's name, `[b, c]`; its step the first branch's).
        at: At<'a>,
        /// The branches, in written order.
        branches: &'static [&'static str],
    },
    /// Every branch of a fork finished and their updates were merged (and are about to be applied).
    ForkJoined {
        /// The fork, as in `ForkStarted`.
        at: At<'a>,
        /// The steps the branches took (one per node; a nested flow's own steps).
        steps: u64,
        /// From the fork's start to the merge.
        duration: Duration,
    },
    /// A node returned an action that its flow does not wire, although the node has other edges:
    /// its flow ends there, returning the action (PocketFlow's "Flow ends: 'x' not found in [...]"
    /// warning). A node without any edge ends its flow silently, as an exit.
    NoEdge {
        /// The node.
        at: At<'a>,
        /// The action it returned.
        action: &'static str,
        /// The actions its flow wires for it.
        wired: &'static [&'static str],
    },
    /// A durable run saved a step.
    StepSaved {
        /// The thread.
        thread: &'a str,
        /// The step saved.
        step: u64,
        /// The node's path (`outer/inner/node`), or the fork's name.
        node: &'a str,
        /// The action saved with it.
        action: &'a str,
    },
    /// A durable run paused at `pause` (one event per pending pause): answer it by its key and
    /// resume the thread to go on.
    RunPaused {
        /// Where and when it paused, its key, and the question a node asked.
        pause: &'a Pause,
    },
    /// The run ended with `action`.
    RunFinished {
        /// The last action.
        action: &'static str,
        /// The node steps the run took (in a resumed run, counted from the thread's start).
        steps: u64,
    },
    /// The run failed.
    RunFailed {
        /// Why.
        error: &'a Error,
        /// The node steps started when it failed.
        steps: u64,
    },
}

impl Event<'_> {
    /// The event's kind, in snake case: `"node_started"`, `"no_edge"`, ...
    pub fn kind(&self) -> &'static str {
        match self {
            Self::RunStarted { .. } => "run_started",
            Self::NodeStarted { .. } => "node_started",
            Self::Retry { .. } => "retry",
            Self::BatchItemFinished { .. } => "batch_item_finished",
            Self::Custom { .. } => "custom",
            Self::NodeFinished { .. } => "node_finished",
            Self::ForkStarted { .. } => "fork_started",
            Self::ForkJoined { .. } => "fork_joined",
            Self::NoEdge { .. } => "no_edge",
            Self::StepSaved { .. } => "step_saved",
            Self::RunPaused { .. } => "run_paused",
            Self::RunFinished { .. } => "run_finished",
            Self::RunFailed { .. } => "run_failed",
        }
    }

    /// Where it happened, for the events about one node or fork.
    pub fn at(&self) -> Option<&At<'_>> {
        match self {
            Self::NodeStarted { at, .. }
            | Self::Retry { at, .. }
            | Self::BatchItemFinished { at, .. }
            | Self::Custom { at, .. }
            | Self::NodeFinished { at, .. }
            | Self::ForkStarted { at, .. }
            | Self::ForkJoined { at, .. }
            | Self::NoEdge { at, .. } => Some(at),
            Self::RunStarted { .. }
            | Self::StepSaved { .. }
            | Self::RunPaused { .. }
            | Self::RunFinished { .. }
            | Self::RunFailed { .. } => None,
        }
    }

    /// A copy that owns its data, to keep or send elsewhere.
    pub fn to_owned(&self) -> OwnedEvent {
        OwnedEvent::from(self)
    }
}

/// One line per event, for logs.
impl fmt::Display for Event<'_> {
    fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::RunStarted {
                thread, first_step, ..
            } => match thread {
                Some(thread) => write!(formatter, "run of `{thread}` started at step {first_step}"),
                None => write!(formatter, "run started"),
            },
            Self::NodeStarted { at, attempt: 1 } => {
                write!(formatter, "step {}: {at} started", at.step)
            }
            Self::NodeStarted { at, attempt } => {
                write!(
                    formatter,
                    "step {}: {at} attempt {attempt} started",
                    at.step
                )
            }
            Self::Retry {
                at,
                attempt,
                error,
                wait,
            } => write!(
                formatter,
                "step {}: {at} attempt {attempt} failed ({error}); retrying in {wait:?}",
                at.step
            ),
            Self::BatchItemFinished {
                at,
                finished,
                total,
                ..
            } => write!(formatter, "step {}: {at} item {finished}/{total}", at.step),
            Self::Custom { at, name, data } => {
                write!(formatter, "step {}: {at} {name} {data}", at.step)
            }
            Self::NodeFinished {
                at, action, reason, ..
            } => {
                write!(formatter, "step {}: {at} -> \"{action}\"", at.step)?;
                match reason {
                    Some(reason) => write!(formatter, " ({reason})"),
                    None => Ok(()),
                }
            }
            Self::ForkStarted { at, .. } => write!(formatter, "step {}: fork {at}", at.step),
            Self::ForkJoined { at, steps, .. } => {
                write!(formatter, "fork {at} joined after {steps} steps")
            }
            Self::NoEdge { at, action, wired } => write!(
                formatter,
                "flow ends: \"{action}\" of {at} has no edge (wired: {})",
                wired
                    .iter()
                    .map(|action| format!("\"{action}\""))
                    .collect::<Vec<_>>()
                    .join(", ")
            ),
            Self::StepSaved { step, node, .. } => write!(formatter, "step {step} of {node} saved"),
            Self::RunPaused { pause } => write!(formatter, "{pause}"),
            Self::RunFinished { action, steps } => {
                write!(
                    formatter,
                    "run finished with \"{action}\" after {steps} steps"
                )
            }
            Self::RunFailed { error, .. } => write!(formatter, "run failed: {error}"),
        }
    }
}

/// Receives a run's events. Called in place from the run's task: keep it quick, and hand slow
/// work to another task (see [`channel`]).
///
/// ```
/// use std::sync::Mutex;
/// use slateflow::event::{Event, Observer};
///
/// struct Log(Mutex<Vec<String>>);
///
/// impl Observer for Log {
///     fn on_event(&self, event: &Event<'_>) {
///         self.0.lock().unwrap().push(event.to_string());
///     }
/// }
/// ```
pub trait Observer: Send + Sync {
    /// One event.
    fn on_event(&self, event: &Event<'_>);

    /// Runs `work`, a piece of the node step at `at` (one poll of its `prep`, `exec` or `post`),
    /// inside whatever this observer keeps for that step. The `TracingObserver` (feature `tracing`) enters the step's
    /// span here, so that what the node logs with `tracing`, and what its clients log, nests in
    /// the step's span. The default runs `work` as it is.
    ///
    /// ```
    /// use std::cell::Cell;
    /// use slateflow::event::{At, Event, Observer};
    ///
    /// thread_local!(static STEP: Cell<u64> = const { Cell::new(0) });
    ///
    /// /// Makes the running step's number readable from the node's own code.
    /// struct CurrentStep;
    ///
    /// impl Observer for CurrentStep {
    ///     fn on_event(&self, _: &Event<'_>) {}
    ///
    ///     fn in_step(&self, at: &At<'_>, work: &mut dyn FnMut()) {
    ///         let before = STEP.replace(at.step);
    ///         work();
    ///         STEP.set(before);
    ///     }
    /// }
    /// ```
    fn in_step(&self, at: &At<'_>, work: &mut dyn FnMut()) {
        let _ = at;
        work();
    }
}

/// An observer made of a closure: `event::from_fn(|event| println!("{event}"))`.
///
/// ```
/// # use serde::{Deserialize, Serialize};
/// # use slateflow::{Command, SharedState, flow, node};
/// # #[derive(SharedState, Clone, Debug, Default, Serialize, Deserialize)]
/// # struct Counter { #[reducer(add)] count: u32, label: String }
/// # #[node]
/// # fn count(_: &Counter) -> Command<Counter> { Command::new(Counter::update().add_count(1)) }
/// use std::sync::atomic::{AtomicU32, Ordering};
/// use slateflow::{Event, event};
///
/// let steps = AtomicU32::new(0);
/// let counting = event::from_fn(|event: &Event<'_>| {
///     if matches!(event, Event::NodeFinished { .. }) {
///         steps.fetch_add(1, Ordering::Relaxed);
///     }
/// });
/// let flow = flow! { count; };
/// flow.observe(&counting).run_blocking(&mut Counter::default())?;
/// assert_eq!(steps.load(Ordering::Relaxed), 1);
/// # Ok::<(), slateflow::Error>(())
/// ```
pub fn from_fn<F: Fn(&Event<'_>) + Send + Sync>(function: F) -> FnObserver<F> {
    FnObserver(function)
}

/// The observer [`from_fn`] makes.
///
/// ```
/// # use serde::{Deserialize, Serialize};
/// # use slateflow::{Command, SharedState, flow, node};
/// # #[derive(SharedState, Clone, Debug, Default, Serialize, Deserialize)]
/// # struct Counter { #[reducer(add)] count: u32, label: String }
/// # #[node]
/// # fn count(_: &Counter) -> Command<Counter> { Command::new(Counter::update().add_count(1)) }
/// use slateflow::event::{self, FnObserver};
/// use slateflow::Event;
///
/// // The type `event::from_fn` returns; name it to keep one in a struct.
/// struct Traced<F> {
///     observer: FnObserver<F>,
/// }
/// let traced = Traced { observer: event::from_fn(|event: &Event<'_>| println!("{event}")) };
/// flow! { count; }.observe(&traced.observer).run_blocking(&mut Counter::default())?;
/// # Ok::<(), slateflow::Error>(())
/// ```
#[derive(Clone, Copy)]
pub struct FnObserver<F>(F);

impl<F> fmt::Debug for FnObserver<F> {
    fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        formatter.write_str("FnObserver")
    }
}

impl<F: Fn(&Event<'_>) + Send + Sync> Observer for FnObserver<F> {
    fn on_event(&self, event: &Event<'_>) {
        (self.0)(event);
    }
}

/// A shared observer: keep a handle, give the run a clone.
impl<O: Observer + ?Sized> Observer for Arc<O> {
    fn on_event(&self, event: &Event<'_>) {
        (**self).on_event(event);
    }
    fn in_step(&self, at: &At<'_>, work: &mut dyn FnMut()) {
        (**self).in_step(at, work);
    }
}

/// A boxed observer, chosen at run time.
impl<O: Observer + ?Sized> Observer for Box<O> {
    fn on_event(&self, event: &Event<'_>) {
        (**self).on_event(event);
    }
    fn in_step(&self, at: &At<'_>, work: &mut dyn FnMut()) {
        (**self).in_step(at, work);
    }
}

/// Where a run's events go, as nodes see it: the run's observer behind a `dyn`, so that
/// [`Context`](crate::Context) has no type parameter. Events only: what a durable run keeps goes
/// through its journal, never through here.
pub(crate) trait EventSink: Sync {
    /// Whether anyone watches; when not, no event is built.
    fn observed(&self) -> bool;
    /// Delivers one event.
    fn send(&self, event: &Event<'_>);
}

/// The sink of a context made outside a run: nobody watches.
pub(crate) struct NoSink;

impl EventSink for NoSink {
    fn observed(&self) -> bool {
        false
    }

    fn send(&self, _: &Event<'_>) {}
}

pub(crate) static NO_SINK: NoSink = NoSink;

/// A reference to an observer is an observer: `flow.observe(&observer)` keeps it usable after.
impl<O: Observer + ?Sized> Observer for &O {
    fn on_event(&self, event: &Event<'_>) {
        (**self).on_event(event);
    }
    fn in_step(&self, at: &At<'_>, work: &mut dyn FnMut()) {
        (**self).in_step(at, work);
    }
}

/// An [`Event`] that owns its data ([`Event::to_owned`]): what [`channel`] sends.
///
/// ```
/// # use serde::{Deserialize, Serialize};
/// # use slateflow::{Command, SharedState, flow, node};
/// # #[derive(SharedState, Clone, Debug, Default, Serialize, Deserialize)]
/// # struct Counter { #[reducer(add)] count: u32, label: String }
/// # #[node]
/// # fn count(_: &Counter) -> Command<Counter> { Command::new(Counter::update().add_count(1)) }
/// use slateflow::event::{self, OwnedEvent};
///
/// # tokio::runtime::Builder::new_current_thread().build().unwrap().block_on(async {
/// let (sender, mut events) = event::channel(64);
/// let flow = flow! { count; };
/// flow.observe(sender).run(&mut Counter::default()).await?;
/// let mut kinds = Vec::new();
/// while let Some(OwnedEvent { kind, .. }) = events.recv().await {
///     kinds.push(kind);
/// }
/// assert_eq!(kinds, ["run_started", "node_started", "node_finished", "run_finished"]);
/// # Ok::<(), slateflow::Error>(())
/// # }).unwrap();
/// ```
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct OwnedEvent {
    /// [`Event::kind`].
    pub kind: &'static str,
    /// The node's path (`outer/inner/node`), for events about a node or fork.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub node: Option<String>,
    /// The step, where the event has one (for `run_started`, the step it starts at).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub step: Option<u64>,
    /// For a branch of a fork: the fork.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub fork: Option<&'static str>,
    /// The action, for `node_finished`, `no_edge`, `step_saved` and `run_finished`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub action: Option<String>,
    /// For `node_started` and `retry`: the attempt; for `node_finished`: the attempts it took.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub attempt: Option<u32>,
    /// For `batch_item_finished`: items finished so far and in all.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub progress: Option<(usize, usize)>,
    /// The custom event's name and data, the routing reason, the error, the pause (key, when,
    /// question), or a run's thread and step limit (`{"thread", "max_steps"}`), as text or JSON.
    #[serde(skip_serializing_if = "Value::is_null")]
    pub data: Value,
    /// The event as one line of text ([`Event`]'s `Display`).
    pub text: String,
}

impl From<&Event<'_>> for OwnedEvent {
    fn from(event: &Event<'_>) -> Self {
        let at = event.at();
        let mut owned = Self {
            kind: event.kind(),
            node: at.map(At::path),
            step: at.map(|at| at.step),
            fork: at.and_then(|at| at.fork),
            action: None,
            attempt: None,
            progress: None,
            data: Value::Null,
            text: event.to_string(),
        };
        match event {
            Event::NodeStarted { attempt, .. } => owned.attempt = Some(*attempt),
            Event::NodeFinished {
                action,
                reason,
                attempts,
                ..
            } => {
                owned.action = Some((*action).to_string());
                owned.attempt = Some(*attempts);
                owned.data = reason.map_or(Value::Null, Value::from);
            }
            Event::NoEdge { action, .. } | Event::RunFinished { action, .. } => {
                owned.action = Some((*action).to_string());
            }
            Event::StepSaved {
                step, node, action, ..
            } => {
                owned.step = Some(*step);
                owned.node = Some((*node).to_string());
                owned.action = Some((*action).to_string());
            }
            Event::RunPaused { pause } => {
                owned.step = Some(pause.step);
                owned.node = Some(pause.node.clone());
                owned.data = serde_json::to_value(pause).unwrap_or(Value::Null);
            }
            Event::BatchItemFinished {
                finished, total, ..
            } => owned.progress = Some((*finished, *total)),
            Event::Custom { name, data, .. } => {
                owned.data = serde_json::json!({ "name": name, "data": data });
            }
            Event::Retry { error, attempt, .. } => {
                owned.attempt = Some(*attempt);
                owned.data = Value::from(error.to_string());
            }
            Event::RunFailed { error, steps } => {
                owned.step = Some(*steps);
                owned.data = Value::from(error.to_string());
            }
            Event::RunStarted {
                thread,
                first_step,
                max_steps,
            } => {
                owned.step = Some(*first_step);
                owned.data = serde_json::json!({ "thread": thread, "max_steps": max_steps });
            }
            Event::ForkStarted { .. } | Event::ForkJoined { .. } => {}
        }
        owned
    }
}

mod channel;
mod progress;
#[cfg(feature = "tracing")]
mod tracing_observer;

pub use channel::{EventSender, EventStream, channel};
pub use progress::ProgressBar;
#[cfg(feature = "tracing")]
pub use tracing_observer::TracingObserver;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths_join_the_flows_and_the_node() {
        let at = At {
            flows: &["outer", "inner"],
            node: "b",
            step: 4,
            fork: None,
        };
        assert_eq!(at.path(), "outer/inner/b");
        let event = Event::NoEdge {
            at,
            action: "x",
            wired: &["default", "y"],
        };
        assert_eq!(
            event.to_string(),
            "flow ends: \"x\" of outer/inner/b has no edge (wired: \"default\", \"y\")"
        );
        let owned = event.to_owned();
        assert_eq!(owned.node.as_deref(), Some("outer/inner/b"));
        assert_eq!(owned.action.as_deref(), Some("x"));
    }
}
