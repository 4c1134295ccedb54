//! Checkpoint stores: where durable runs save their steps, one thread at a time.
//!
//! A store keeps, per thread, an append-only list of [`StepRecord`]s (each the update a step
//! applied, as JSON, with where the run was and, every so often, a full snapshot of the state) and
//! the thread's [`RunStatus`]. Stores know nothing about nodes or flows: the executor turns steps
//! into records and back. Two stores come with the crate:
//! - [`MemoryStore`], for tests;
//! - [`FileStore`], the default: a directory per thread, an append-only log whose records carry a
//!   checksum, and a status file replaced atomically (written to a temporary file, flushed, renamed);
//! - `SqliteStore` (feature `sqlite`): one embedded database file, SQLite compiled in, WAL mode.
//!
//! Thread ids are 1 to 128 characters from `A-Z a-z 0-9 _ - .`, not starting with `.`, so that
//! every store can use them as names.

mod file;
mod memory;
#[cfg(feature = "sqlite")]
mod sqlite;

use std::future::Future;
use std::path::PathBuf;

use serde::{Deserialize, Serialize};
use serde_json::Value;

pub use file::FileStore;
pub use memory::MemoryStore;
#[cfg(feature = "sqlite")]
pub use sqlite::SqliteStore;

/// One saved step of a thread.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct StepRecord {
    /// The step number in the run: 0 for the initial state, then from 1.
    pub step: u64,
    /// What the record is.
    pub kind: RecordKind,
    /// The node that ran, as a path through nested flows (`outer/inner`); empty for the initial
    /// state and for a human's update.
    pub node: String,
    /// The action the step returned; empty when there is none.
    pub action: String,
    /// Where the step ran: its position in each flow, outermost first.
    pub position: Vec<u32>,
    /// The update the step applied: the JSON of the state's update type.
    pub update: Value,
    /// The whole state after this step, when the executor saved one here.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub snapshot: Option<Value>,
    /// When the record was made, in milliseconds since the Unix epoch.
    pub saved_at_ms: u64,
}

/// What a [`StepRecord`] records.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum RecordKind {
    /// The initial state (in `snapshot`).
    Start,
    /// A node step, or a whole fork.
    Step,
    /// An update from outside the run (a human's input at a pause), applied through the reducers.
    Input,
    /// A snapshot of the state (in `snapshot`) at a pause or at the end; applies nothing.
    Snapshot,
}

/// Where a thread stands.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "status", rename_all = "snake_case")]
pub enum RunStatus {
    /// Steps are being saved (or the process running them stopped without saying more).
    Running,
    /// Stopped at a pause, waiting to be resumed.
    Paused {
        /// Why: `before <node>` or `after <node>`.
        at: String,
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
}

/// Everything a store holds about a thread.
#[derive(Debug, Clone, PartialEq)]
pub struct ThreadLog {
    /// The state type the thread was created for (checked when it is loaded).
    pub state_type: String,
    /// Where the thread stands.
    pub status: RunStatus,
    /// The records, in the order they were appended.
    pub records: Vec<StepRecord>,
    /// Whether a torn last record (a write cut short by a crash) was found and dropped.
    pub dropped_torn_record: bool,
}

/// A store's errors: each names the thread and, where it applies, the record and the file.
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
    /// A saved record or status cannot be read back.
    #[error("thread `{thread}`: {what} is corrupt ({reason}); nothing was loaded")]
    Corrupt {
        /// The thread.
        thread: String,
        /// Which record or file (for example `record 12 of steps.log`).
        what: String,
        /// What is wrong with it.
        reason: String,
    },
    /// The database behind a store failed.
    #[error("{}cannot {action}: {source}", thread_prefix(thread))]
    Backend {
        /// The thread, or empty for the store itself.
        thread: String,
        /// What the store was doing.
        action: &'static str,
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

/// Where durable runs save their steps. See the [module documentation](self).
///
/// Appends must be durable when they return: a step is saved before the next node starts.
pub trait CheckpointStore: Send + Sync {
    /// Starts a new thread for the state type named `state_type`, with its first record (the
    /// initial state). Atomic: after a crash the thread exists with that record, or not at all.
    fn create(
        &self,
        thread: &str,
        state_type: &str,
        first: &StepRecord,
    ) -> impl Future<Output = Result<(), StoreError>> + Send;

    /// Appends a record to a thread.
    fn append(
        &self,
        thread: &str,
        record: &StepRecord,
    ) -> impl Future<Output = Result<(), StoreError>> + Send;

    /// Sets a thread's status.
    fn set_status(
        &self,
        thread: &str,
        status: &RunStatus,
    ) -> impl Future<Output = Result<(), StoreError>> + Send;

    /// Reads everything about a thread. A torn last record is dropped (and reported in
    /// [`ThreadLog::dropped_torn_record`]); any other damage is an error.
    fn load(&self, thread: &str) -> impl Future<Output = Result<ThreadLog, StoreError>> + Send;

    /// The ids of every thread, sorted.
    fn threads(&self) -> impl Future<Output = Result<Vec<String>, StoreError>> + Send;
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
pub fn now_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |elapsed| {
            u64::try_from(elapsed.as_millis()).unwrap_or(u64::MAX)
        })
}
