//! Checkpoint stores: where durable runs save their steps, one thread at a time.
//!
//! A store keeps, per thread, an append-only list of [`StepRecord`]s (each the update a step
//! applied, as JSON, with where the run was and, every so often, a full snapshot of the state) and
//! the thread's [`RunStatus`]. Stores know nothing about nodes or flows: the durable run turns
//! steps into records and back. Four stores come with the crate:
//! - [`MemoryStore`], for tests;
//! - [`FileStore`], the default: a directory per thread, an append-only log whose records carry a
//!   checksum, and a status file replaced atomically;
//! - `SqliteStore` (feature `sqlite`): one embedded database file, SQLite compiled in, WAL mode;
//! - `PostgresStore` (feature `postgres`): one PostgreSQL database shared by processes on many
//!   machines, with leased claims; `worker::Worker`s run its threads.
//!
//! # One writer per thread
//! Only the holder of a thread's [`CheckpointStore::Claim`] writes to it. A run claims its thread
//! when it starts or resumes and keeps the claim until it ends, pauses or is dropped; a second
//! worker asking for the claim meanwhile gets [`StoreError::Claimed`] at once and writes nothing.
//! On one machine the claim is a lock the operating system releases when its process dies, so a
//! thread whose run was killed can be resumed at once, and its status then reads
//! [`RunStatus::Interrupted`] rather than [`RunStatus::Running`]; `PostgresStore`'s claims are
//! leases, void at once when the process that holds them dies, and lapsing when it hangs.
//! Every append is checked against the last saved step under the
//! claim ([`StoreError::OutOfOrder`]): a record never goes backwards.
//!
//! Any process may [cancel](CheckpointStore::cancel) a thread on any store: the run that holds
//! its claim is refused at its next write ([`StoreError::Cancelled`]), and the thread is never
//! run again.
//!
//! # What readers may do
//! Reading a thread ([`CheckpointStore::load`], [`CheckpointStore::threads`]) never changes it: a
//! torn last record (a write cut short by a crash) is left out of what is read and reported in
//! [`ThreadLog::dropped_torn_record`]; the next claim removes it. Damage anywhere else is an error
//! naming the thread, the record and the file.
//!
//! Thread ids are 1 to 128 characters from `A-Z a-z 0-9 _ - .`, not starting with `.`, so that
//! every store can use them as names.
//!
//! ```
//! use slateflow::checkpoint::{CheckpointStore, MemoryStore, RecordKind, Records, StepRecord};
//! # tokio::runtime::Builder::new_current_thread().build().unwrap().block_on(async {
//! let store = MemoryStore::new();
//! let start = StepRecord::new(0, RecordKind::Start).with_snapshot(serde_json::json!({"count": 0}));
//! let mut claim = store.create("t-1", "Counter", &[start]).await?;
//! store.append(&mut claim, &StepRecord::new(1, RecordKind::Step)).await?;
//! // While the claim is held, nobody else writes to the thread.
//! assert!(store.claim("t-1").await.is_err());
//! drop(claim);
//! let log = store.load("t-1", Records::All).await?;
//! assert_eq!(log.last_step, 1);
//! # Ok::<(), slateflow::checkpoint::StoreError>(())
//! # }).unwrap();
//! ```

mod file;
mod lock;
mod memory;
#[cfg(feature = "postgres")]
mod postgres;
#[cfg(feature = "sqlite")]
mod sqlite;
mod verify;

use std::future::Future;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};
use serde_json::Value;

pub use file::FileStore;
pub use memory::MemoryStore;
#[cfg(feature = "postgres")]
pub(crate) use postgres::{CHANNEL, DatabaseError};
#[cfg(feature = "postgres")]
pub use postgres::{PostgresClaim, PostgresOptions, PostgresStore, Taken};
#[cfg(feature = "sqlite")]
pub use sqlite::SqliteStore;
pub(crate) use verify::history as verify_history;
pub use verify::{Verification, Verified};

/// One saved record of a thread.
///
/// ```
/// use slateflow::checkpoint::{MemoryStore, RecordKind, StepRecord};
/// # use serde::{Deserialize, Serialize};
/// # use slateflow::{Command, SharedState, flow, node};
/// # #[derive(SharedState, Clone, Debug, Default, Serialize, Deserialize)]
/// # struct Counter { #[reducer(add)] count: u32 }
/// # #[node]
/// # fn count(_: &Counter) -> Command<Counter> { Command::new(Counter::update().add_count(1)) }
///
/// let flow = flow! { count; };
/// let durable = flow.durable(MemoryStore::new());
/// let durable = durable.blocking()?;
/// durable.start("t-1", &mut Counter::default())?;
/// let history: Vec<StepRecord> = durable.history("t-1")?;
/// assert_eq!(history[0].kind, RecordKind::Start);
/// let step = &history[1];
/// assert_eq!((step.step, step.node.as_str(), step.action.as_str()), (1, "count", "default"));
/// assert_eq!(step.update, serde_json::json!({ "count": 1 }));
/// # Ok::<(), slateflow::Error>(())
/// ```
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct StepRecord {
    /// The step number in the run: 0 for the initial state, then from 1. Records other than steps
    /// (inputs, pauses, resumes) carry the number of the last step before them.
    pub step: u64,
    /// What the record is.
    pub kind: RecordKind,
    /// The node, as a path through nested flows (`outer/inner`): the one that ran (a step), or the
    /// one paused at (a pause). For the start record, the name of the flow the thread is run
    /// with, when it was given one ([`Durable::named`](crate::durable::Durable::named)): what a
    /// worker runs it with. Empty otherwise.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub node: String,
    /// The action the step returned; empty when there is none.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub action: String,
    /// Why the step's node chose its action, when it said ([`Command::with_reason`]).
    ///
    /// [`Command::with_reason`]: crate::Command::with_reason
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    /// Where the step ran: its position in each flow, outermost first.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub position: Vec<u32>,
    /// For a step inside nested flows: the step after which each of them was entered, outermost
    /// nested flow first (the outermost flow counts from the thread's start). A resumed run
    /// counts a nested flow's own step limit from there.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub entered: Vec<u64>,
    /// The update the record applies (the JSON of the state's update type): a step's or an
    /// input's; `null` for the others.
    #[serde(default)]
    pub update: Value,
    /// For an input, the key of the pause it answers (empty when it answers none).
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub key: String,
    /// The pauses the record makes: for a step, those after it (an interrupt after its node, a
    /// question its node asked), saved with the step so that a crash cannot separate them; for a
    /// pause record, those before the next node (or the branches of the next fork).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub pauses: Vec<Pause>,
    /// For a kept result: how many node steps it ran (a nested flow's, or 1).
    #[serde(default, skip_serializing_if = "is_zero")]
    pub steps: u64,
    /// For a kept part that stopped at pauses: what the step it stopped in (a fork or batch
    /// flow nested in the part) had kept of its own parts, finished or stopped, as records of
    /// this same form, one level down. A resumed part goes on from them.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub parts: Vec<StepRecord>,
    /// The whole state after this record, when the durable run saved one here.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub snapshot: Option<Value>,
    /// When the record was made, in milliseconds since the Unix epoch.
    pub saved_at_ms: u64,
}

impl StepRecord {
    /// A record of `kind` at `step`, made now, with every other field empty.
    pub fn new(step: u64, kind: RecordKind) -> Self {
        Self {
            step,
            kind,
            node: String::new(),
            action: String::new(),
            reason: None,
            position: Vec::new(),
            entered: Vec::new(),
            update: Value::Null,
            key: String::new(),
            pauses: Vec::new(),
            steps: 0,
            parts: Vec::new(),
            snapshot: None,
            saved_at_ms: now_ms(),
        }
    }

    /// The record with a snapshot of the whole state.
    #[must_use]
    pub fn with_snapshot(mut self, snapshot: Value) -> Self {
        self.snapshot = Some(snapshot);
        self
    }
}

/// What a [`StepRecord`] records.
///
/// ```
/// use slateflow::checkpoint::{RecordKind, StepRecord};
///
/// let step = StepRecord::new(3, RecordKind::Step);
/// assert_eq!(serde_json::to_value(step.kind).unwrap(), "step");
/// assert_eq!(serde_json::from_str::<RecordKind>(r#""kept""#).unwrap(), RecordKind::Kept);
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum RecordKind {
    /// The initial state (in `snapshot`).
    Start,
    /// A node step, or a whole fork.
    Step,
    /// An update from outside the run (a human's input at a pause), applied through the reducers.
    Input,
    /// The run paused before a node (in `pauses`).
    Pause,
    /// A resume went on past the pauses recorded at this step.
    Resume,
    /// A finished part of the step after this one (a branch of a fork, a run of a batch flow),
    /// kept until that step is saved so that a resume after a failure or a crash does not run it
    /// again: `node` names the fork or batch flow (a path), `key` the part's index, and `update`,
    /// `action` and `steps` its outcome. An input at the step discards the kept parts (they were
    /// made from the state before it).
    Kept,
    /// The parts kept for the step after this one (the [`Kept`](RecordKind::Kept) records before
    /// this one, at the same step) are void: merging them failed (two branches of a fork wrote one
    /// field), and a resume runs them again, with whatever code it has then. `node` names the
    /// fork (a path).
    Discard,
}

/// When a pause happens, relative to its node.
///
/// ```
/// use slateflow::checkpoint::{Pause, PauseWhen};
///
/// let pause = Pause::new("review", PauseWhen::After, 4);
/// assert_eq!(pause.when, PauseWhen::After);
/// assert_eq!(PauseWhen::After.as_str(), "after");
/// assert_eq!(pause.key, "after:review@4");
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum PauseWhen {
    /// Before the node runs (`interrupt_before`).
    Before,
    /// After the node's step is saved (`interrupt_after`).
    After,
    /// After the node's step is saved, because the node asked for input.
    Asked,
}

impl PauseWhen {
    /// `before`, `after` or `asked`.
    pub const fn as_str(self) -> &'static str {
        match self {
            Self::Before => "before",
            Self::After => "after",
            Self::Asked => "asked",
        }
    }
}

/// A place where a durable run waits for a human.
///
/// ```
/// use slateflow::checkpoint::{Pause, PauseWhen};
/// let pause = Pause::new("review/pay", PauseWhen::Before, 3);
/// assert_eq!(pause.key, "before:review/pay@3");
/// assert_eq!(pause.to_string(), "paused before `review/pay` (answer `before:review/pay@3`)");
///
/// let mut asked = Pause::new("check", PauseWhen::Asked, 1);
/// asked.asked = Some(serde_json::json!("Pay back 120 EUR?"));
/// assert_eq!(asked.question().as_deref(), Some("Pay back 120 EUR?"));
/// assert_eq!(
///     asked.to_string(),
///     "`check` asks: Pay back 120 EUR? (answer `asked:check@1`)"
/// );
/// ```
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Pause {
    /// Names the pause when it is answered: `when:node@step`, the same however often it is
    /// reported.
    pub key: String,
    /// The node, as a path through nested flows (`outer/inner`).
    pub node: String,
    /// Before the node ran, after it, or after it because it asked.
    pub when: PauseWhen,
    /// The last saved step when the run paused.
    pub step: u64,
    /// What the node asked ([`Command::ask`](crate::Command::ask)), for a question.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub asked: Option<Value>,
}

impl Pause {
    /// A pause at `node` (a path), with its key.
    pub fn new(node: impl Into<String>, when: PauseWhen, step: u64) -> Self {
        let node = node.into();
        Self {
            key: format!("{}:{node}@{step}", when.as_str()),
            node,
            when,
            step,
            asked: None,
        }
    }

    /// What the node asked, as text: a string as it is, anything else as compact JSON.
    pub fn question(&self) -> Option<std::borrow::Cow<'_, str>> {
        self.asked.as_ref().map(|asked| match asked {
            Value::String(text) => std::borrow::Cow::Borrowed(text.as_str()),
            other => std::borrow::Cow::Owned(other.to_string()),
        })
    }
}

/// For a person: the question, or where the run paused, and the key to answer it by.
impl std::fmt::Display for Pause {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match (self.when, self.question()) {
            (PauseWhen::Asked, Some(question)) => write!(f, "`{}` asks: {question}", self.node)?,
            (PauseWhen::Before, _) => write!(f, "paused before `{}`", self.node)?,
            _ => write!(f, "paused after `{}`", self.node)?,
        }
        write!(f, " (answer `{}`)", self.key)
    }
}

/// Where a thread stands.
///
/// ```
/// use slateflow::checkpoint::{MemoryStore, RunStatus};
/// # use serde::{Deserialize, Serialize};
/// # use slateflow::{Command, SharedState, flow, node};
/// # #[derive(SharedState, Clone, Debug, Default, Serialize, Deserialize)]
/// # struct Counter { #[reducer(add)] count: u32 }
/// # #[node]
/// # fn count(_: &Counter) -> Command<Counter> { Command::new(Counter::update().add_count(1)) }
///
/// let flow = flow! { count; };
/// let durable = flow.durable(MemoryStore::new());
/// let durable = durable.blocking()?;
/// durable.start("t-1", &mut Counter::default())?;
/// assert_eq!(durable.status("t-1")?, RunStatus::Finished { action: "default".into() });
/// // In JSON, as a store saves it:
/// let status = RunStatus::Paused { pauses: vec!["before:pay@1".into()] };
/// assert_eq!(
///     serde_json::to_string(&status).unwrap(),
///     r#"{"status":"paused","pauses":["before:pay@1"]}"#
/// );
/// # Ok::<(), slateflow::Error>(())
/// ```
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "status", rename_all = "snake_case")]
pub enum RunStatus {
    /// A run holds the thread's claim and is saving steps.
    Running,
    /// Waiting for a run to take it: submitted and never run
    /// ([`Durable::submit`](crate::durable::Durable::submit)), or every pause it waited at was
    /// answered. Workers take such threads.
    Queued,
    /// The thread's last run stopped without ending, pausing or failing (its process was killed,
    /// or the run was dropped): nobody holds the claim, and it can be resumed. Only reads report
    /// it; no store saves it.
    Interrupted,
    /// Stopped at one or more pauses, waiting to be answered and resumed.
    Paused {
        /// The keys of the pauses waiting.
        pauses: Vec<String>,
    },
    /// Ended normally with this action.
    Finished {
        /// The run's last action.
        action: String,
    },
    /// A step failed; the thread can resume from its last saved step.
    Failed {
        /// The error's text.
        error: String,
    },
    /// Stopped for good by a cancel, whoever was running it: it is not run again.
    Cancelled,
}

impl RunStatus {
    /// The status's name, as its JSON says it: `running`, `queued`, `interrupted`, `paused`,
    /// `finished`, `failed` or `cancelled`.
    ///
    /// ```
    /// use slateflow::checkpoint::RunStatus;
    ///
    /// assert_eq!(RunStatus::Paused { pauses: vec![] }.name(), "paused");
    /// assert_eq!(RunStatus::Finished { action: "done".into() }.name(), "finished");
    /// ```
    pub const fn name(&self) -> &'static str {
        match self {
            Self::Running => "running",
            Self::Queued => "queued",
            Self::Interrupted => "interrupted",
            Self::Paused { .. } => "paused",
            Self::Finished { .. } => "finished",
            Self::Failed { .. } => "failed",
            Self::Cancelled => "cancelled",
        }
    }
}

/// Which records [`CheckpointStore::load`] reads.
///
/// ```
/// use slateflow::checkpoint::{CheckpointStore, MemoryStore, RecordKind, Records, StepRecord};
/// # tokio::runtime::Builder::new_current_thread().build().unwrap().block_on(async {
/// let store = MemoryStore::new();
/// let start = StepRecord::new(0, RecordKind::Start).with_snapshot(serde_json::json!({"n": 0}));
/// let mut claim = store.create("t-1", "Counter", &[start]).await?;
/// store.append(&mut claim, &StepRecord::new(1, RecordKind::Step)).await?;
/// let snapshot = StepRecord::new(2, RecordKind::Step).with_snapshot(serde_json::json!({"n": 2}));
/// store.append(&mut claim, &snapshot).await?;
/// assert_eq!(store.load("t-1", Records::All).await?.records.len(), 3);
/// // What a resume reads: from the last snapshot on.
/// assert_eq!(store.load("t-1", Records::SinceSnapshot).await?.records.len(), 1);
/// # Ok::<(), slateflow::checkpoint::StoreError>(())
/// # }).unwrap();
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Records {
    /// All of them, from the start.
    All,
    /// From the last record that holds a snapshot: what rebuilding the current state needs.
    SinceSnapshot,
}

/// Everything a store read about a thread.
///
/// ```
/// use slateflow::checkpoint::{CheckpointStore, MemoryStore, RecordKind, Records, RunStatus, StepRecord};
/// # tokio::runtime::Builder::new_current_thread().build().unwrap().block_on(async {
/// let store = MemoryStore::new();
/// let start = StepRecord::new(0, RecordKind::Start).with_snapshot(serde_json::json!({}));
/// let mut claim = store.create("t-1", "Counter", &[start]).await?;
/// store.append(&mut claim, &StepRecord::new(1, RecordKind::Step)).await?;
/// let log = store.load("t-1", Records::All).await?;
/// assert_eq!((log.state_type.as_str(), log.last_step, log.records.len()), ("Counter", 1, 2));
/// assert_eq!(log.status, RunStatus::Running);
/// # Ok::<(), slateflow::checkpoint::StoreError>(())
/// # }).unwrap();
/// ```
#[derive(Debug, Clone, PartialEq)]
pub struct ThreadLog {
    /// The state type the thread was created for (checked when it is loaded).
    pub state_type: String,
    /// Where the thread stands.
    pub status: RunStatus,
    /// The records read, in the order they were appended: all of them, or from the last snapshot.
    pub records: Vec<StepRecord>,
    /// The step number of the last record.
    pub last_step: u64,
    /// Whether a torn last record (a write cut short by a crash) was found and left out.
    pub dropped_torn_record: bool,
}

/// One line of [`CheckpointStore::threads`].
///
/// ```
/// use slateflow::checkpoint::{CheckpointStore, MemoryStore, RecordKind, StepRecord};
/// # tokio::runtime::Builder::new_current_thread().build().unwrap().block_on(async {
/// let store = MemoryStore::new();
/// let start = StepRecord::new(0, RecordKind::Start).with_snapshot(serde_json::json!({}));
/// let _claim = store.create("t-1", "Counter", &[start]).await?;
/// let threads = store.threads().await?;
/// assert_eq!((threads[0].id.as_str(), threads[0].last_step), ("t-1", 0));
/// assert_eq!(threads[0].flow, ""); // its start record names no flow
/// # Ok::<(), slateflow::checkpoint::StoreError>(())
/// # }).unwrap();
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ThreadInfo {
    /// The thread's id.
    pub id: String,
    /// The state type it was created for.
    pub state_type: String,
    /// The name of the flow it was started with ([`Durable::named`]); empty when it had none.
    ///
    /// [`Durable::named`]: crate::durable::Durable::named
    pub flow: String,
    /// Where it stands.
    pub status: RunStatus,
    /// The step number of its last record.
    pub last_step: u64,
    /// When it was last written, in milliseconds since the Unix epoch.
    pub updated_at_ms: u64,
}

/// A flow as a store keeps it, so that a studio that did not start a thread can still draw its
/// flow: its name, its state type, its graph and its state's fields. A durable run of a named
/// flow ([`Durable::named`](crate::durable::Durable::named)) saves it once per process, at its
/// first start or submit, replacing what was saved under that name before.
///
/// ```
/// use slateflow::checkpoint::{CheckpointStore, MemoryStore};
/// use slateflow::{Command, SharedState, flow, node};
/// # use serde::{Deserialize, Serialize};
///
/// #[derive(SharedState, Default, Serialize, Deserialize)]
/// struct Counter {
///     #[reducer(add)]
///     count: u32,
/// }
///
/// #[node]
/// fn count(_: &Counter) -> Command<Counter> {
///     Command::new(Counter::update().add_count(1))
/// }
///
/// # tokio::runtime::Builder::new_current_thread().build().unwrap().block_on(async {
/// let store = MemoryStore::new();
/// let flow = flow! { count; };
/// let durable = flow.durable(store.clone()).named("counting");
/// durable.start("t-1", &mut Counter::default()).await?;
/// let flows = store.flows().await?;
/// assert_eq!(flows[0].name, "counting");
/// assert_eq!(flows[0].graph["nodes"][0]["name"], "count");
/// assert_eq!(flows[0].fields[0].type_name, "u32");
/// # Ok::<(), slateflow::Error>(())
/// # }).unwrap();
/// ```
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct FlowInfo {
    /// The name its threads are started with.
    pub name: String,
    /// The state type its threads are created for.
    pub state_type: String,
    /// Its [`Graph`](crate::graph::Graph), as JSON.
    pub graph: Value,
    /// Its state's fields.
    pub fields: Vec<FlowField>,
    /// When it was saved, in milliseconds since the Unix epoch.
    pub saved_at_ms: u64,
}

impl FlowInfo {
    /// The JSON text a store keeps.
    pub(crate) fn to_json(&self) -> Result<String, StoreError> {
        serde_json::to_string(self).map_err(|error| StoreError::Corrupt {
            thread: String::new(),
            what: format!("the flow `{}`", self.name),
            reason: format!("it does not serialize: {error}"),
        })
    }

    /// Reads back what a store kept; an error names `what` it read (`the saved flow ...`).
    pub(crate) fn from_json(
        text: &[u8],
        what: impl FnOnce() -> String,
    ) -> Result<Self, StoreError> {
        serde_json::from_slice(text).map_err(|error| StoreError::Corrupt {
            thread: String::new(),
            what: what(),
            reason: format!("it does not read: {error}"),
        })
    }
}

/// A field of a [`FlowInfo`]'s state: its name and its type as written in the struct.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct FlowField {
    /// The field's name.
    pub name: String,
    /// Its type, as written: `Vec<String>`.
    #[serde(rename = "type")]
    pub type_name: String,
}

/// A store's errors: each names the thread and, where it applies, the record and the file.
///
/// ```
/// use slateflow::checkpoint::{CheckpointStore, MemoryStore, Records, StoreError};
/// # tokio::runtime::Builder::new_current_thread().build().unwrap().block_on(async {
/// let error = MemoryStore::new().load("nobody", Records::All).await.unwrap_err();
/// assert!(matches!(error, StoreError::UnknownThread { .. }));
/// assert_eq!(error.to_string(), "unknown thread `nobody`: it was never started in this store");
/// # });
/// ```
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum StoreError {
    /// No thread has this id.
    #[error("unknown thread `{thread}`: it was never started in this store")]
    UnknownThread {
        /// The id asked for.
        thread: String,
    },
    /// A thread with this id exists already.
    #[error("thread `{thread}` already exists: resume it, or pick another id")]
    ThreadExists {
        /// The id.
        thread: String,
    },
    /// The id cannot name a thread.
    #[error(
        "`{thread}` cannot be a thread id: use 1 to 128 characters from A-Z a-z 0-9 _ - . not \
         starting with `.`"
    )]
    InvalidThreadId {
        /// The id.
        thread: String,
    },
    /// Another run holds the thread's claim: it is being run (or written) by another worker.
    #[error(
        "thread `{thread}` is being run by another worker (it holds the thread's claim): nothing \
         was written; wait until that run ends or pauses, then resume it"
    )]
    Claimed {
        /// The thread.
        thread: String,
    },
    /// The thread was cancelled ([`CheckpointStore::cancel`]) while this run held its claim: the
    /// run stops here, and no run resumes the thread.
    #[error(
        "thread `{thread}` was cancelled: nothing more was written, and it is not run again \
         (branch it to go on from a saved step)"
    )]
    Cancelled {
        /// The thread.
        thread: String,
    },
    /// An append that does not follow the thread's last saved step.
    #[error(
        "thread `{thread}`: a {kind} record for step {step} cannot follow the last saved step \
         {last}; nothing was written"
    )]
    OutOfOrder {
        /// The thread.
        thread: String,
        /// The record's kind, as saved (`step`, `input`, ...).
        kind: &'static str,
        /// The record's step.
        step: u64,
        /// The last saved step.
        last: u64,
    },
    /// A saved record or status cannot be read back.
    #[error(
        "{}{what} is corrupt ({reason}); nothing was loaded",
        thread_prefix(thread)
    )]
    Corrupt {
        /// The thread, or empty for the store itself.
        thread: String,
        /// Which record or file (for example `record 12 of steps.log`).
        what: String,
        /// What is wrong with it.
        reason: String,
    },
    /// The database behind a store failed.
    #[error("{}cannot {action} in `{}`: {source}", thread_prefix(thread), path.display())]
    Backend {
        /// The thread, or empty for the store itself.
        thread: String,
        /// What the store was doing.
        action: &'static str,
        /// The database (a file, or where the database is).
        path: PathBuf,
        /// The database's error.
        #[source]
        source: Box<dyn std::error::Error + Send + Sync>,
    },
    /// The file system refused.
    #[error("{}cannot {action} `{}`: {source}", thread_prefix(thread), path.display())]
    Io {
        /// The thread, or empty for the store's own directory.
        thread: String,
        /// What the store was doing.
        action: &'static str,
        /// The file or directory.
        path: PathBuf,
        /// The system's error.
        #[source]
        source: std::io::Error,
    },
}

/// Where durable runs save their steps. See the [module documentation](self) for the contract
/// every store keeps: one writer per thread, appends in order, readers that change nothing.
///
/// Appends must be durable when they return: a step is saved before the next node starts.
///
/// ```
/// use slateflow::checkpoint::{CheckpointStore, MemoryStore, RecordKind, Records, StepRecord};
/// # tokio::runtime::Builder::new_current_thread().build().unwrap().block_on(async {
/// // What a durable run does with a store, by hand: create a thread, claim it, append steps.
/// let store = MemoryStore::new();
/// let start = StepRecord::new(0, RecordKind::Start).with_snapshot(serde_json::json!({"n": 0}));
/// let mut claim = store.create("t-1", "Counter", &[start]).await?;
/// store.append(&mut claim, &StepRecord::new(1, RecordKind::Step)).await?;
/// // One writer per thread: a second claim is refused while the first is held.
/// assert!(store.claim("t-1").await.is_err());
/// drop(claim);
/// let claim = store.claim("t-1").await?;
/// assert_eq!(store.load("t-1", Records::All).await?.last_step, 1);
/// # drop(claim);
/// # Ok::<(), slateflow::checkpoint::StoreError>(())
/// # }).unwrap();
/// ```
pub trait CheckpointStore: Send + Sync {
    /// The right to write to one thread, held by one run at a time; dropping it gives the thread
    /// up (and so does the death of its process).
    type Claim: Send + Sync;

    /// Starts a new thread for the state type named `state_type` with `records` (the first is the
    /// initial state), and claims it. Atomic: after a crash the thread exists with all of
    /// `records`, or not at all.
    ///
    /// # Errors
    /// [`StoreError::ThreadExists`], [`StoreError::InvalidThreadId`], or the storage's error.
    fn create(
        &self,
        thread: &str,
        state_type: &str,
        records: &[StepRecord],
    ) -> impl Future<Output = Result<Self::Claim, StoreError>> + Send;

    /// Claims an existing thread for writing, first removing a torn last record if a crash left
    /// one.
    ///
    /// # Errors
    /// [`StoreError::Claimed`] when another run holds it; [`StoreError::UnknownThread`].
    fn claim(&self, thread: &str) -> impl Future<Output = Result<Self::Claim, StoreError>> + Send;

    /// Appends a record to the claimed thread. A step's number must be above the last saved
    /// step; any other record's must equal it.
    ///
    /// # Errors
    /// [`StoreError::OutOfOrder`], or the storage's error.
    fn append(
        &self,
        claim: &mut Self::Claim,
        record: &StepRecord,
    ) -> impl Future<Output = Result<(), StoreError>> + Send;

    /// Appends `records` to the claimed thread, in order, as one write where the store can (one
    /// flush, one transaction): after a crash the thread holds all of them, or a first part of
    /// them, never a later record without an earlier one. By default, one
    /// [`append`](Self::append) after another.
    ///
    /// # Errors
    /// As [`append`](Self::append); on an error, a first part of `records` may have been saved.
    fn append_all(
        &self,
        claim: &mut Self::Claim,
        records: &[StepRecord],
    ) -> impl Future<Output = Result<(), StoreError>> + Send {
        async move {
            for record in records {
                self.append(claim, record).await?;
            }
            Ok(())
        }
    }

    /// Removes the claimed thread's [`Kept`](RecordKind::Kept) and
    /// [`Discard`](RecordKind::Discard) records at the steps `steps` (a step after them is saved,
    /// and its record holds their merged update, or they were voided). Nothing a resume, a read of
    /// the state or [`verify`](Self::verify) needs is removed. The stores read only the records
    /// at those steps (the last ones), not the thread's whole history. By default nothing is
    /// removed; the memory, SQLite and PostgreSQL stores remove them. The file store leaves the
    /// kept parts of every saved step out of its reads, and removes them from its log in
    /// batches, writing the log again once they make up half of it (see [`FileStore`]).
    ///
    /// # Errors
    /// The storage's error; [`StoreError::Claimed`] or [`StoreError::Cancelled`] for a claim that
    /// is no longer the thread's.
    fn compact(
        &self,
        claim: &mut Self::Claim,
        steps: std::ops::Range<u64>,
    ) -> impl Future<Output = Result<(), StoreError>> + Send {
        let _ = (claim, steps);
        async { Ok(()) }
    }

    /// Sets the claimed thread's status. A status other than [`RunStatus::Running`] is the last
    /// write of a run (or of an answer): a store may give the claim up with it, as the
    /// PostgreSQL store does, so that an answer or a worker that reads the status can claim the
    /// thread at once.
    ///
    /// # Errors
    /// The storage's error.
    fn set_status(
        &self,
        claim: &mut Self::Claim,
        status: &RunStatus,
    ) -> impl Future<Output = Result<(), StoreError>> + Send;

    /// Reads a thread, changing nothing. A torn last record is left out (and reported in
    /// [`ThreadLog::dropped_torn_record`]); any other damage is an error.
    ///
    /// # Errors
    /// [`StoreError::UnknownThread`], [`StoreError::Corrupt`], or the storage's error.
    fn load(
        &self,
        thread: &str,
        records: Records,
    ) -> impl Future<Output = Result<ThreadLog, StoreError>> + Send;

    /// Every thread, sorted by id.
    ///
    /// # Errors
    /// The storage's error, or a thread whose status cannot be read.
    fn threads(&self) -> impl Future<Output = Result<Vec<ThreadInfo>, StoreError>> + Send;

    /// Deletes the claimed thread and everything saved for it.
    ///
    /// # Errors
    /// The storage's error.
    fn delete(&self, claim: Self::Claim) -> impl Future<Output = Result<(), StoreError>> + Send;

    /// Saves `flow` under its name, replacing what was saved under that name before.
    ///
    /// # Errors
    /// The storage's error.
    fn save_flow(&self, flow: &FlowInfo) -> impl Future<Output = Result<(), StoreError>> + Send;

    /// The flows saved, sorted by name.
    ///
    /// # Errors
    /// The storage's error; [`StoreError::Corrupt`] naming a saved flow that does not read.
    fn flows(&self) -> impl Future<Output = Result<Vec<FlowInfo>, StoreError>> + Send;

    /// Cancels a thread, whoever runs it, from this process or any other: its status reads
    /// [`RunStatus::Cancelled`] from then on, and a run that holds its claim is refused at its
    /// next write ([`StoreError::Claimed`]; a write already under way when the cancel lands may
    /// still be saved, none after it). Nothing saved is removed: the thread can be read and
    /// branched, but no run resumes it and no worker takes it. Cancelling a cancelled thread
    /// changes nothing.
    ///
    /// # Errors
    /// [`StoreError::UnknownThread`], or the storage's error.
    fn cancel(&self, thread: &str) -> impl Future<Output = Result<(), StoreError>> + Send;

    /// Reads a thread's whole history, changing nothing, and checks every record: its checksum,
    /// that the history begins with the start record and its state, and that steps never go
    /// backwards. A resume reads only from the last snapshot, so damage before it is found here
    /// or not at all.
    ///
    /// ```
    /// use slateflow::checkpoint::{CheckpointStore, MemoryStore, RecordKind, StepRecord};
    /// # tokio::runtime::Builder::new_current_thread().build().unwrap().block_on(async {
    /// let store = MemoryStore::new();
    /// let start = StepRecord::new(0, RecordKind::Start).with_snapshot(serde_json::json!({}));
    /// let mut claim = store.create("t-1", "Counter", &[start]).await?;
    /// store.append(&mut claim, &StepRecord::new(1, RecordKind::Step)).await?;
    /// let verified = store.verify("t-1").await?;
    /// assert_eq!((verified.records, verified.last_step), (2, 1));
    /// # Ok::<(), slateflow::checkpoint::StoreError>(())
    /// # }).unwrap();
    /// ```
    ///
    /// # Errors
    /// [`StoreError::Corrupt`] naming the first damaged record; [`StoreError::UnknownThread`];
    /// the storage's error.
    fn verify(&self, thread: &str) -> impl Future<Output = Result<Verified, StoreError>> + Send {
        verify::thread(self, thread)
    }

    /// [`verify`](Self::verify)s every thread of the store, going on past damaged ones: the
    /// threads found whole, and for each damaged thread the error naming its first damaged
    /// record.
    ///
    /// A thread whose status cannot be read is damaged too: the file store, whose
    /// [`threads`](Self::threads) fails on it, lists its threads' folders instead.
    ///
    /// # Errors
    /// The storage's error when the threads cannot be listed or read at all.
    fn verify_all(&self) -> impl Future<Output = Result<Verification, StoreError>> + Send {
        verify::all(self)
    }
}

#[allow(clippy::trivially_copy_pass_by_ref)] // serde's `skip_serializing_if` passes a reference
const fn is_zero(value: &u64) -> bool {
    *value == 0
}

/// The flow named by a new thread's start record (the first of `records`): empty when none.
fn flow_of(records: &[StepRecord]) -> &str {
    records
        .first()
        .filter(|record| record.kind == RecordKind::Start)
        .map_or("", |record| record.node.as_str())
}

/// Checks that `record` may follow `last` (the thread's last saved step).
///
/// # Errors
/// [`StoreError::OutOfOrder`].
fn check_order(thread: &str, last: u64, record: &StepRecord) -> Result<(), StoreError> {
    let follows = match record.kind {
        RecordKind::Step => record.step > last,
        _ => record.step == last,
    };
    if follows {
        Ok(())
    } else {
        Err(StoreError::OutOfOrder {
            thread: thread.to_string(),
            kind: kind_name(record.kind),
            step: record.step,
            last,
        })
    }
}

/// The error of a write the claim's fencing refused: the thread was cancelled (its saved status,
/// `status`, says so), or another run claimed it since.
#[cfg(any(feature = "sqlite", feature = "postgres"))]
fn refused(thread: &str, status: Option<&str>) -> StoreError {
    let thread = thread.to_string();
    if status.is_some_and(|status| status == status_json(&RunStatus::Cancelled)) {
        StoreError::Cancelled { thread }
    } else {
        StoreError::Claimed { thread }
    }
}

/// The kind as it is saved.
const fn kind_name(kind: RecordKind) -> &'static str {
    match kind {
        RecordKind::Start => "start",
        RecordKind::Step => "step",
        RecordKind::Input => "input",
        RecordKind::Pause => "pause",
        RecordKind::Resume => "resume",
        RecordKind::Kept => "kept",
        RecordKind::Discard => "discard",
    }
}

/// Checks the records a thread is created with: at least one, in order.
fn check_new(thread: &str, records: &[StepRecord]) -> Result<u64, StoreError> {
    check_thread_id(thread)?;
    let (first, rest) = records.split_first().ok_or_else(|| StoreError::Corrupt {
        thread: thread.to_string(),
        what: "the new thread".into(),
        reason: "a thread is created with at least one record".into(),
    })?;
    let mut last = first.step;
    for record in rest {
        check_order(thread, last, record)?;
        last = record.step;
    }
    Ok(last)
}

/// The status as readers report it: `Running` with nobody holding the claim is `Interrupted`.
fn as_read(status: RunStatus, claimed: bool) -> RunStatus {
    match status {
        RunStatus::Running if !claimed => RunStatus::Interrupted,
        status => status,
    }
}

/// A record as the JSON text the database stores.
#[cfg(any(feature = "sqlite", feature = "postgres"))]
fn encode(thread: &str, record: &StepRecord) -> Result<String, StoreError> {
    serde_json::to_string(record).map_err(|error| StoreError::Corrupt {
        thread: thread.to_string(),
        what: format!("the step {} record", record.step),
        reason: format!("it does not serialize: {error}"),
    })
}

/// A step number or time for a database's signed integer column.
#[cfg(any(feature = "sqlite", feature = "postgres"))]
fn to_i64(value: u64) -> i64 {
    i64::try_from(value).unwrap_or(i64::MAX)
}

/// A status as JSON. Statuses are plain strings and lists of them: this cannot fail.
fn status_json(status: &RunStatus) -> String {
    serde_json::to_string(status).unwrap_or_default()
}

/// The file system refused `action` on `path` for `thread`.
fn io_error(thread: &str, action: &'static str, path: &Path, source: std::io::Error) -> StoreError {
    StoreError::Io {
        thread: thread.to_string(),
        action,
        path: path.to_path_buf(),
        source,
    }
}

/// `thread `t`: ` before a message about a thread; nothing for the store itself.
fn thread_prefix(thread: &str) -> String {
    if thread.is_empty() {
        String::new()
    } else {
        format!("thread `{thread}`: ")
    }
}

/// Checks that `thread` can name a thread in every store.
///
/// # Errors
/// [`StoreError::InvalidThreadId`].
///
/// ```
/// use slateflow::checkpoint::check_thread_id;
///
/// assert!(check_thread_id("refund-42.v2").is_ok());
/// assert!(check_thread_id("../etc").is_err());
/// assert!(check_thread_id("").is_err());
/// ```
pub fn check_thread_id(thread: &str) -> Result<(), StoreError> {
    let valid = !thread.is_empty()
        && thread.len() <= 128
        && !thread.starts_with('.')
        && thread
            .bytes()
            .all(|byte| byte.is_ascii_alphanumeric() || matches!(byte, b'_' | b'-' | b'.'));
    if valid {
        Ok(())
    } else {
        Err(StoreError::InvalidThreadId {
            thread: thread.to_string(),
        })
    }
}

/// Milliseconds since the Unix epoch, for [`StepRecord::saved_at_ms`].
///
/// ```
/// use slateflow::checkpoint::{RecordKind, StepRecord, now_ms};
///
/// let before = now_ms();
/// let record = StepRecord::new(1, RecordKind::Step);
/// assert!(record.saved_at_ms >= before);
/// ```
pub fn now_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |elapsed| {
            u64::try_from(elapsed.as_millis()).unwrap_or(u64::MAX)
        })
}

/// CRC-32 (IEEE) of `bytes`: every record's checksum (and a kept batch item's fingerprint).
pub(crate) fn crc32(bytes: &[u8]) -> u32 {
    !crc32_update(!0, bytes)
}

/// Feeds `bytes` to a running CRC-32 (IEEE), table-driven; the table is built at compile time.
/// A checksum is `!crc32_update(!0, bytes)`, and can be computed piece by piece.
fn crc32_update(crc: u32, bytes: &[u8]) -> u32 {
    const TABLE: [u32; 256] = {
        let mut table = [0_u32; 256];
        let mut index = 0;
        while index < 256 {
            #[allow(clippy::cast_possible_truncation)] // index < 256
            let mut value = index as u32;
            let mut bit = 0;
            while bit < 8 {
                value = if value & 1 == 1 {
                    0xEDB8_8320 ^ (value >> 1)
                } else {
                    value >> 1
                };
                bit += 1;
            }
            table[index] = value;
            index += 1;
        }
        table
    };
    bytes.iter().fold(crc, |crc, &byte| {
        TABLE[((crc ^ u32::from(byte)) & 0xFF) as usize] ^ (crc >> 8)
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn crc32_matches_the_standard_check_value() {
        assert_eq!(crc32(b"123456789"), 0xCBF4_3926);
        assert_eq!(crc32(b""), 0);
        let pieces = crc32_update(crc32_update(!0, b"1234"), b"56789");
        assert_eq!(!pieces, 0xCBF4_3926);
    }

    #[test]
    fn steps_go_forward_and_other_records_stay_at_the_last_step() {
        let step = |step| StepRecord::new(step, RecordKind::Step);
        let input = |step| StepRecord::new(step, RecordKind::Input);
        assert!(check_order("t", 3, &step(4)).is_ok());
        assert!(check_order("t", 3, &step(6)).is_ok(), "a fork of three");
        assert!(check_order("t", 3, &input(3)).is_ok());
        let error = check_order("t", 3, &step(3)).unwrap_err().to_string();
        assert_eq!(
            error,
            "thread `t`: a step record for step 3 cannot follow the last saved step 3; nothing \
             was written"
        );
        assert!(check_order("t", 3, &input(4)).is_err());
    }
}
