//! The errors slateflow returns. Each says what went wrong, where, and what to do about it.

use std::fmt;
use std::time::Duration;

/// What a node's steps return as an error: anything that implements [`std::error::Error`].
///
/// ```
/// use slateflow::NodeError;
///
/// fn parse(text: &str) -> Result<u32, NodeError> {
///     // Any error type converts with `?`; so does text.
///     let number: u32 = text.trim().parse()?;
///     if number == 0 {
///         return Err("zero is not a valid amount".into());
///     }
///     Ok(number)
/// }
/// assert_eq!(parse(" 12 ").unwrap(), 12);
/// assert_eq!(parse("0").unwrap_err().to_string(), "zero is not a valid amount");
/// ```
pub type NodeError = Box<dyn std::error::Error + Send + Sync + 'static>;

/// An error of a run: which node, at which step, and what happened.
///
/// When a step fails, nothing of that step is applied to the state; every earlier step stays applied.
///
/// ```
/// # use serde::{Deserialize, Serialize};
/// # use slateflow::{Command, SharedState, flow, node};
/// # #[derive(SharedState, Clone, Debug, Default, Serialize, Deserialize)]
/// # struct Counter { #[reducer(add)] count: u32, label: String }
/// # #[node]
/// # fn count(_: &Counter) -> Command<Counter> { Command::new(Counter::update().add_count(1)) }
/// use slateflow::{Error, NodeError, Phase};
///
/// #[node]
/// fn fail(_: &Counter) -> Result<Command<Counter>, NodeError> {
///     Err("the ledger is closed".into())
/// }
///
/// let flow = flow! { count >> fail; };
/// let error = flow.run_blocking(&mut Counter::default()).unwrap_err();
/// // Each variant names what failed and where; its text says what to do.
/// assert!(matches!(error, Error::NodeFailed { node: "fail", step: 2, phase: Phase::Post, .. }));
/// assert_eq!(error.node(), Some("fail"));
/// assert_eq!(
///     error.to_string(),
///     "node `fail` failed in `post` at step 2: the ledger is closed"
/// );
/// ```
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// A node's step returned an error (for `exec`, after its last attempt and its fallback).
    #[error("node `{node}` failed in `{phase}` at step {step}{}: {source}", attempts_text(*.attempts))]
    NodeFailed {
        /// The node's name in its flow.
        node: &'static str,
        /// The step number in the run, from 1.
        step: u64,
        /// Which of the node's steps failed.
        phase: Phase,
        /// How many attempts ran (1 for `prep` and `post`, which are never retried).
        attempts: u32,
        /// The node's error.
        #[source]
        source: NodeError,
    },
    /// The last attempt of a node's `exec` (or of a retried `#[node]` function's body) took longer
    /// than its timeout.
    #[error(
        "node `{node}` timed out at step {step}: its last attempt took longer than {after:?}{}; \
         raise the timeout (`Retry::timeout`, `#[node(timeout = ...)]`) or allow more attempts",
        attempts_text(*.attempts)
    )]
    Timeout {
        /// The node's name in its flow.
        node: &'static str,
        /// The step number in the run, from 1.
        step: u64,
        /// How many attempts ran.
        attempts: u32,
        /// The timeout of each attempt.
        after: Duration,
    },
    /// A node panicked; the panic was caught and the step not applied (unless it panicked while its
    /// update was being applied: [`Phase::Apply`]).
    #[error("node `{node}` panicked in `{phase}` at step {step}: {message}{}", panic_consequence(*.phase))]
    Panic {
        /// The node's name in its flow.
        node: &'static str,
        /// The step number in the run, from 1.
        step: u64,
        /// Where it panicked.
        phase: Phase,
        /// The panic's message.
        message: String,
    },
    /// A node returned an action it does not declare in its `ACTIONS`.
    #[error(
        "node `{node}` returned the action \"{action}\" at step {step}, which it does not declare \
         (it declares {}); declare it: `#[node(actions = [..., \"{action}\"])]` on a function, or \
         in `ACTIONS` of an `impl Node` (a `node::from_fn` closure can only return \"default\")",
        quoted_list(.declared)
    )]
    UndeclaredAction {
        /// The node's name in its flow.
        node: &'static str,
        /// The step number in the run, from 1.
        step: u64,
        /// The action it returned.
        action: &'static str,
        /// The actions it declares.
        declared: &'static [&'static str],
    },
    /// Two branches of a fork wrote the same last-write-wins field. Nothing of the fork was
    /// applied (see [`MergeConflict`] for why equal values conflict too).
    #[error(
        "branches `{first}` and `{second}` of the fork at step {step} both wrote the \
         last-write-wins field `{field}`, so nothing of the fork was applied: write it from one \
         branch only, or give it a reducer such as `#[reducer(append)]` or `#[reducer(with = path)]`"
    )]
    ParallelConflict {
        /// The field both branches wrote.
        field: &'static str,
        /// The earlier branch, in written order.
        first: &'static str,
        /// The later branch.
        second: &'static str,
        /// The step number of the fork's first branch.
        step: u64,
    },
    /// Two branches of a fork both overwrote the same reducer field (`overwrite_<field>`). Nothing
    /// of the fork was applied. One overwrite per field is fine: the other branches' writes to the
    /// field are applied on top of it.
    #[error(
        "branches `{first}` and `{second}` of the fork at step {step} both overwrote the field \
         `{field}`, so nothing of the fork was applied: overwrite it from one branch only (the \
         other branches' writes to it are then applied on top of the overwrite)"
    )]
    ParallelOverwrite {
        /// The field both branches overwrote.
        field: &'static str,
        /// The earlier branch, in written order.
        first: &'static str,
        /// The later branch.
        second: &'static str,
        /// The step number of the fork's first branch.
        step: u64,
    },
    /// The flow ran as many steps as its limit allows and was about to run another.
    #[error(
        "step limit of {limit} reached before running node `{node}`, which would have been step \
         {step} of the run: the flow may be cycling; raise the limit with `Flow::with_max_steps` \
         if it is not"
    )]
    StepLimit {
        /// The limit of the flow that stopped.
        limit: u64,
        /// The node that would have run next.
        node: &'static str,
        /// The step number that node would have had in the run.
        step: u64,
    },
    /// A durable run stopped at an interrupt. [`Durable`](crate::durable::Durable) returns it as
    /// [`Outcome::Paused`](crate::durable::Outcome::Paused); a plain run never does.
    #[error(
        "the run paused {} node `{node}` (the last saved step is {step}): resume the thread to go on",
        if *.before { "before" } else { "after" }
    )]
    Paused {
        /// The node it paused at.
        node: &'static str,
        /// The last saved step.
        step: u64,
        /// Whether it paused before the node ran (or after its step was saved).
        before: bool,
    },
    /// A node asked for input ([`Command::ask`](crate::Command::ask)) where the run cannot pause:
    /// a run that is not durable, or a batch flow's own `post` inside a fork branch or another
    /// batch flow (see `where_`).
    #[error(
        "node `{node}` asked for input at step {step}, and this run cannot pause for it: {where_}"
    )]
    InputRequested {
        /// The node that asked.
        node: &'static str,
        /// Its step.
        step: u64,
        /// Why the run cannot pause there, and what to do.
        where_: &'static str,
    },
    /// An interrupt names a node the run cannot pause at: a name the flow does not have (a typo
    /// would otherwise skip an approval), or a nested flow rather than a node.
    #[error("cannot pause {when} `{name}`: {reason}")]
    Interrupt {
        /// `before` or `after`.
        when: &'static str,
        /// The name as given.
        name: String,
        /// What is wrong, with the names the flow has.
        reason: String,
    },
    /// A checkpoint store failed; its error names the thread and the file or record.
    #[error(transparent)]
    Store(#[from] crate::checkpoint::StoreError),
    /// A thread's saved records do not fit this flow or state, so it cannot be resumed or read.
    #[error("cannot resume thread `{thread}` at step {step}: {reason}")]
    Resume {
        /// The thread.
        thread: String,
        /// The step whose record does not fit.
        step: u64,
        /// What does not fit.
        reason: String,
    },
    /// A step could not be saved (the state or an update does not serialize to JSON).
    #[error("cannot save step {step} of thread `{thread}`: {reason}")]
    Save {
        /// The thread.
        thread: String,
        /// The step.
        step: u64,
        /// Why.
        reason: String,
    },
    /// A state read from JSON ([`state_from_json`](crate::state::state_from_json)) does not fit
    /// the state type.
    #[error("the state is not valid at `{path}`: {message}")]
    InvalidState {
        /// Where in the document: `messages[2].role`, or `.` for the document itself.
        path: String,
        /// What is wrong there, with the line and column.
        message: String,
    },
    /// Flows nested more deeply than the runtime tracks.
    #[error(
        "flows are nested more than {limit} deep at node `{node}`: flatten the nesting (a flow \
         that nests itself through a shared handle never ends)"
    )]
    NestingTooDeep {
        /// The node whose nested flow went past the limit.
        node: &'static str,
        /// The deepest nesting allowed.
        limit: usize,
    },
    /// A blocking call (`run_blocking`, `Durable::blocking`) could not start its tokio runtime.
    #[error("could not start a tokio runtime for a blocking call: {0}")]
    Runtime(#[source] std::io::Error),
    /// A blocking call was made inside a tokio runtime, where blocking would stall the runtime's
    /// own thread (and tokio refuses to start a runtime inside another).
    #[error(
        "`{call}` blocks its thread until the work is done, and was called inside a tokio \
         runtime, which it would stall: use `{instead}` there, or call it from \
         `tokio::task::spawn_blocking`"
    )]
    BlockingInRuntime {
        /// The blocking call.
        call: &'static str,
        /// Its async form.
        instead: &'static str,
    },
    /// A worker cannot run as set up (feature `postgres`).
    #[error("the worker cannot start: {reason}")]
    Worker {
        /// What is wrong with it.
        reason: String,
    },
}

impl Error {
    /// The node the error is about, if any.
    pub fn node(&self) -> Option<&'static str> {
        match self {
            Self::NodeFailed { node, .. }
            | Self::Timeout { node, .. }
            | Self::Panic { node, .. }
            | Self::UndeclaredAction { node, .. }
            | Self::StepLimit { node, .. }
            | Self::Paused { node, .. }
            | Self::InputRequested { node, .. }
            | Self::NestingTooDeep { node, .. } => Some(node),
            Self::ParallelConflict { first, .. } | Self::ParallelOverwrite { first, .. } => {
                Some(first)
            }
            Self::Store(_)
            | Self::Interrupt { .. }
            | Self::Resume { .. }
            | Self::Save { .. }
            | Self::InvalidState { .. }
            | Self::Runtime(_)
            | Self::BlockingInRuntime { .. }
            | Self::Worker { .. } => None,
        }
    }
}

/// One of a node's steps.
///
/// ```
/// # use serde::{Deserialize, Serialize};
/// # use slateflow::{Command, SharedState, flow, node};
/// # #[derive(SharedState, Clone, Debug, Default, Serialize, Deserialize)]
/// # struct Counter { #[reducer(add)] count: u32, label: String }
/// # #[node]
/// # fn count(_: &Counter) -> Command<Counter> { Command::new(Counter::update().add_count(1)) }
/// use slateflow::{Error, Phase};
///
/// #[node]
/// fn panics(_: &Counter) -> Command<Counter> {
///     panic!("a bug")
/// }
///
/// let flow = flow! { panics; };
/// let error = flow.run_blocking(&mut Counter::default()).unwrap_err();
/// assert!(matches!(error, Error::Panic { phase: Phase::Post, .. }));
/// assert_eq!(Phase::Exec.to_string(), "exec");
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum Phase {
    /// `prep`: reading the state.
    Prep,
    /// `exec`: the work.
    Exec,
    /// `exec_fallback`: after the last failed attempt.
    Fallback,
    /// `post`: building the command.
    Post,
    /// Applying the command's update through the reducers. A panic here (in a `with` reducer, or a
    /// type's `+=`) may leave the update partly applied.
    Apply,
}

impl fmt::Display for Phase {
    fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        formatter.write_str(match self {
            Self::Prep => "prep",
            Self::Exec => "exec",
            Self::Fallback => "exec_fallback",
            Self::Post => "post",
            Self::Apply => "apply",
        })
    }
}

fn panic_consequence(phase: Phase) -> &'static str {
    if phase == Phase::Apply {
        "; the step's update may be partly applied"
    } else {
        "; nothing of this step was applied"
    }
}

fn attempts_text(attempts: u32) -> String {
    if attempts > 1 {
        format!(" after {attempts} attempts")
    } else {
        String::new()
    }
}

fn quoted_list(items: &[&str]) -> String {
    let quoted: Vec<String> = items.iter().map(|item| format!("\"{item}\"")).collect();
    quoted.join(", ")
}

/// Two parallel updates both wrote the same last-write-wins field, or both overwrote the same
/// reducer field.
///
/// Returned by [`StateUpdate::merge`](crate::StateUpdate::merge). Which value should win would depend
/// on which branch finished first, so the merge refuses both, even when they are equal (LangGraph's
/// rule). Write the field from one branch only, or give it a reducer that combines writes.
///
/// ```
/// # use serde::{Deserialize, Serialize};
/// # use slateflow::{Command, SharedState, flow, node};
/// # #[derive(SharedState, Clone, Debug, Default, Serialize, Deserialize)]
/// # struct Counter { #[reducer(add)] count: u32, label: String }
/// # #[node]
/// # fn count(_: &Counter) -> Command<Counter> { Command::new(Counter::update().add_count(1)) }
/// use slateflow::StateUpdate;
///
/// let left = Counter::update().set_label("a".into());
/// let right = Counter::update().set_label("b".into());
/// let conflict = left.merge(right).unwrap_err();
/// assert_eq!(conflict.field(), "label");
/// // Reducer fields merge: both increments count.
/// let merged = Counter::update().add_count(1).merge(Counter::update().add_count(2)).unwrap();
/// let mut counter = Counter::default();
/// counter.apply(merged);
/// assert_eq!(counter.count, 3);
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct MergeConflict {
    field: &'static str,
    overwrite: bool,
}

impl MergeConflict {
    /// A conflict on the last-write-wins field called `field`.
    pub const fn new(field: &'static str) -> Self {
        Self {
            field,
            overwrite: false,
        }
    }

    /// Two overwrites of the reducer field called `field`.
    pub const fn overwrite(field: &'static str) -> Self {
        Self {
            field,
            overwrite: true,
        }
    }

    /// The name of the field both updates wrote.
    pub const fn field(&self) -> &'static str {
        self.field
    }

    /// Whether both updates overwrote a reducer field (rather than wrote a last-write-wins one).
    pub const fn is_overwrite(&self) -> bool {
        self.overwrite
    }
}

impl fmt::Display for MergeConflict {
    fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        let field = self.field;
        if self.overwrite {
            write!(
                formatter,
                "conflicting parallel overwrites of the field `{field}`: overwrite it from one \
                 branch only (the other branches' writes to it are applied on top of that one)"
            )
        } else {
            write!(
                formatter,
                "conflicting parallel writes to the last-write-wins field `{field}`: write it \
                 from one branch only, or give it a reducer such as `#[reducer(append)]` or \
                 `#[reducer(with = path)]`"
            )
        }
    }
}

impl std::error::Error for MergeConflict {}
