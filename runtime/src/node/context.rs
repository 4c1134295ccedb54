//! [`Context`]: what a node's steps know of the run they are part of, and how they send events.

use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicU32, Ordering};

use serde_json::Value;

use super::Params;
use super::retry::Between;
use crate::error::Error;
use crate::event::{At, Event, EventSink, NO_SINK};

/// What a node's steps know about the run: params, where the node is, the step limit and the
/// steps left, the durable thread; and the one way a node sends events of its own
/// ([`emit`](Context::emit)).
///
/// [`prep`](super::Node::prep) and [`post`](super::Node::post) get it, and so does
/// [`exec_with`](super::Node::exec_with), the form of `exec` for work that reports as it goes (a
/// model's token deltas, progress).
///
/// ```
/// use slateflow::{Context, Params};
///
/// let params = Params::new().with("model", "small");
/// let context = Context::new(&params, "summarise", 3).with_max_steps(10);
/// assert_eq!(context.params().get_str("model"), Some("small"));
/// assert_eq!((context.step(), context.max_steps(), context.steps_left()), (3, 10, 7));
/// assert_eq!(context.thread(), None);
/// assert!(!context.is_observed());
/// context.emit("progress", &serde_json::json!({ "done": 1 })); // no observer: goes nowhere
/// ```
#[derive(Clone, Copy)]
pub struct Context<'a> {
    // What the step reads from its run: params, thread, where events go, where a kept batch keeps
    // its items. One pointer, so that a context, built for every step, stays small.
    run: &'a dyn RunScope,
    at: At<'a>,
    max_steps: u64,
    last_step: u64,
    // Where a `#[node]` function run under a retry policy records its attempts, for the run's
    // `NodeFinished` event.
    attempts: Option<&'a AtomicU32>,
}

/// What a step's [`Context`] reads from the run it is part of: the run's params and thread,
/// where its events go, and where a kept batch keeps its items. Implemented by the run (and by
/// what runs a fork's branches), behind a `dyn` so that `Context` has no type parameter; by
/// [`Params`] for a context made outside a run.
pub(crate) trait RunScope: Sync {
    /// The run's params.
    fn params(&self) -> &Params;

    /// The durable thread, if any.
    fn thread(&self) -> Option<&str>;

    /// Where the run's events go.
    fn events(&self) -> &dyn EventSink;

    /// Where the node at `at` keeps what the parts of its step produced, when its step keeps
    /// them.
    fn items(&self, at: &At<'_>) -> Option<&dyn ItemJournal>;
}

/// A context made outside a run has only its params.
impl RunScope for Params {
    fn params(&self) -> &Params {
        self
    }

    fn thread(&self) -> Option<&str> {
        None
    }

    fn events(&self) -> &dyn EventSink {
        &NO_SINK
    }

    fn items(&self, _: &At<'_>) -> Option<&dyn ItemJournal> {
        None
    }
}

/// Where a node keeps what parts of its step produced until the step is saved (a batch node its
/// items' outputs, an agent its model replies and tool results), each under a key of its own:
/// the journal of a durable run, reached by the step's [`Context`]. Store writes, never events.
pub(crate) trait ItemJournal: Sync {
    /// What the node at `at` kept under `key` in an earlier attempt of its step.
    fn kept_item(&self, at: &At<'_>, key: &str) -> Option<Value>;

    /// Keeps `output` (JSON) under `key` for the node at `at` until its step is saved. Called
    /// from the items of a batch, concurrently.
    fn keep_item<'a>(&'a self, at: At<'a>, key: String, output: Value) -> KeepItem<'a>;

    /// Keeps `question` under `key` for the node at `at`, as a pause that waits for a reply:
    /// [`Context::interrupt`]. The run then stops at the step, unsaved.
    fn ask_item<'a>(&'a self, at: At<'a>, key: &'a str, question: Value) -> KeepItem<'a>;
}

/// The error a step's code returns (through [`Context::interrupt`]) when it has asked a question
/// and stops until the reply comes: the run pauses at the step instead of failing it. Never
/// retried.
#[derive(Debug, thiserror::Error)]
#[error(
    "the step stopped to ask `{key}` and waits for the reply; a node that catches this error \
     must return it (with `?`) for its run to pause"
)]
pub(crate) struct Interrupted {
    pub(crate) key: String,
}

/// What [`ItemJournal::keep_item`] returns: boxed, since the journal is a `dyn` (one box per kept
/// item, beside the store's own write).
pub(crate) type KeepItem<'a> = Pin<Box<dyn Future<Output = Result<(), Error>> + Send + 'a>>;

impl<'a> Context<'a> {
    /// A context for calling a node's steps directly, as in a unit test of the node or a benchmark
    /// baseline (no step limit, no thread, events go nowhere); runs make their own.
    pub fn new(params: &'a Params, node: &'static str, step: u64) -> Self {
        Self {
            run: params,
            at: At {
                flows: &[],
                node,
                step,
                fork: None,
            },
            max_steps: Limit::NONE.max_steps,
            last_step: Limit::NONE.last_step,
            attempts: None,
        }
    }

    /// This context with a step limit of `max_steps` (counted from step 1).
    #[must_use]
    pub fn with_max_steps(mut self, max_steps: u64) -> Self {
        self.max_steps = max_steps;
        self.last_step = max_steps;
        self
    }

    /// The context of a step of `run`: where it is and the limit in force; `attempts` counts the
    /// attempts of a retried `#[node]` body.
    #[inline]
    pub(crate) fn in_run(
        run: &'a dyn RunScope,
        at: At<'a>,
        limit: Limit,
        attempts: Option<&'a AtomicU32>,
    ) -> Self {
        Self {
            run,
            at,
            max_steps: limit.max_steps,
            last_step: limit.last_step,
            attempts,
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
        self.run.params()
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
        self.run.thread()
    }

    /// Sends a custom event ([`Event::Custom`]) named `name` with `data` to the run's observer:
    /// the node's own progress, a model's token deltas. Without an observer it does nothing, and
    /// costs a branch.
    pub fn emit(&self, name: &str, data: &Value) {
        let events = self.run.events();
        if events.observed() {
            events.send(&Event::Custom {
                at: self.at,
                name,
                data,
            });
        }
    }

    /// Whether anyone watches the run's events: skip building costly event data when not.
    pub fn is_observed(&self) -> bool {
        self.run.events().observed()
    }

    /// Sends what happened between two attempts of the node's step: [`Event::Retry`] for a
    /// failed one and, when `starts` (the node's own attempts, not an item's or a call's),
    /// [`Event::NodeStarted`] for the next.
    pub(crate) fn between(&self, between: Between<'_>, starts: bool) {
        let events = self.run.events();
        if events.observed()
            && let Some(event) = between.event(self.at, starts)
        {
            events.send(&event);
        }
    }

    /// Sends [`Event::BatchItemFinished`].
    pub(crate) fn item_finished(&self, index: usize, finished: usize, total: usize) {
        let events = self.run.events();
        if events.observed() {
            events.send(&Event::BatchItemFinished {
                at: self.at,
                index,
                finished,
                total,
            });
        }
    }

    /// Where this step keeps what its parts produced (a batch's items, an agent's calls), when
    /// it keeps them (a durable step saved on its own).
    pub(crate) fn item_journal(&self) -> Option<&'a dyn ItemJournal> {
        self.run.items(&self.at)
    }

    /// Asks a person `question` from inside the step, and returns their reply: the step's run
    /// pauses here, unsaved, with a pause whose [`key`](crate::checkpoint::Pause::key) names
    /// `key` and whose [`asked`](crate::checkpoint::Pause::asked) is `question`; the reply comes
    /// with [`Durable::reply`](crate::durable::Durable::reply) (any JSON, read as `T`), and when
    /// the thread resumes, the node's step runs again from its start and this call returns the
    /// reply at once. Return its error with `?`: that is what pauses the run.
    ///
    /// Code before the call runs again on resume: keep what must not be repeated before it (an
    /// agent keeps its model replies), or ask first. Each question of a step has its own `key`.
    /// Only a durable run's steps can pause inside: a step saved on its own, or a fork's branch
    /// (the fork's other branches finish, and are kept; replied, only the asking branch runs
    /// again). Elsewhere (a plain run, a step inside a batch flow's run or a flow nested in a
    /// branch) the call fails the step, saying so. (To ask after a step instead, with the reply
    /// written to the state, see [`Command::ask`](crate::Command::ask).)
    ///
    /// ```
    /// use serde::{Deserialize, Serialize};
    /// use slateflow::checkpoint::MemoryStore;
    /// use slateflow::durable::Outcome;
    /// use slateflow::{Command, Context, NodeError, SharedState, flow, node};
    ///
    /// #[derive(SharedState, Clone, Debug, Default, Serialize, Deserialize)]
    /// struct Refund { amount: u32, paid: bool }
    ///
    /// #[node]
    /// async fn pay(refund: &Refund, context: &Context<'_>) -> Result<Command<Refund>, NodeError> {
    ///     let question = serde_json::json!({ "question": "Pay this refund?", "amount": refund.amount });
    ///     let approved: bool = context.interrupt("approve", question).await?;
    ///     Ok(Command::new(Refund::update().set_paid(approved)))
    /// }
    ///
    /// # fn main() -> Result<(), slateflow::Error> {
    /// let flow = flow! { pay; };
    /// let durable = flow.durable(MemoryStore::new()).blocking()?;
    /// let outcome = durable.start("r-1", &mut Refund { amount: 120, paid: false })?;
    /// let Outcome::Paused(pauses) = outcome else { panic!("it asks first") };
    /// assert_eq!(pauses[0].asked.as_ref().unwrap()["amount"], 120);
    ///
    /// durable.reply("r-1", &pauses[0].key, &true)?;
    /// let (refund, _) = durable.resume("r-1")?;
    /// assert!(refund.paid);
    /// # Ok(()) }
    /// ```
    ///
    /// # Errors
    /// The pause (for `?`), when no reply has come yet; a failure that says why when the run
    /// cannot pause here, when `question` is not JSON, or when the reply does not read as `T`.
    pub async fn interrupt<T: serde::de::DeserializeOwned>(
        &self,
        key: &str,
        question: impl serde::Serialize,
    ) -> Result<T, super::NodeError> {
        let Some(journal) = self.item_journal() else {
            return Err(format!(
                "`{}` asked `{key}` inside its step, which only a durable run's steps can do (a \
                 step saved on its own, or a fork's branch; not a plain run, nor a step inside a \
                 batch flow's run or a flow nested in a branch): run the flow durably, or ask \
                 after the step with `Command::ask`",
                self.at.path()
            )
            .into());
        };
        if let Some(reply) = journal.kept_item(&self.at, &reply_key(key)) {
            return serde_json::from_value(reply.clone()).map_err(|error| {
                format!(
                    "the reply to `{key}` does not read as `{}`: {error}; the reply was {reply}",
                    std::any::type_name::<T>()
                )
                .into()
            });
        }
        let question = serde_json::to_value(question)
            .map_err(|error| format!("the question `{key}` is not JSON: {error}"))?;
        journal.ask_item(self.at, key, question).await?;
        Err(Box::new(Interrupted {
            key: key.to_string(),
        }))
    }
}

/// The key under which a step keeps its question `key`.
pub(crate) fn ask_key(key: &str) -> String {
    format!("ask:{key}")
}

/// The key under which a step keeps the reply to its question `key`.
pub(crate) fn reply_key(key: &str) -> String {
    format!("reply:{key}")
}

impl std::fmt::Debug for Context<'_> {
    fn fmt(&self, formatter: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        formatter
            .debug_struct("Context")
            .field("params", self.params())
            .field("at", &self.at)
            .field("max_steps", &self.max_steps)
            .field("thread", &self.thread())
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
