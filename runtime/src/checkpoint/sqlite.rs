//! A checkpoint store in one SQLite database file (feature `sqlite`).

use std::path::{Path, PathBuf};
use std::sync::{Mutex, PoisonError};

use rusqlite::{Connection, OptionalExtension, params};

use super::{CheckpointStore, RunStatus, StepRecord, StoreError, ThreadLog, check_thread_id};

/// Keeps every thread in one SQLite database file: SQLite is compiled in (no system library), the
/// database runs in WAL mode with full synchronous commits, and each record is one transaction, so
/// a crash leaves whole records only.
///
/// Its calls run in place, blocking the task briefly (one commit per step); the connection is
/// shared behind a mutex.
#[derive(Debug)]
pub struct SqliteStore {
    path: PathBuf,
    connection: Mutex<Connection>,
}

fn backend(thread: &str, action: &'static str, source: rusqlite::Error) -> StoreError {
    StoreError::Backend {
        thread: thread.to_string(),
        action,
        source: Box::new(source),
    }
}

impl SqliteStore {
    /// Opens (or creates) the database at `path`.
    ///
    /// # Errors
    /// [`StoreError::Backend`] when SQLite cannot open or set up the file.
    pub fn open(path: impl Into<PathBuf>) -> Result<Self, StoreError> {
        let path = path.into();
        let connection =
            Connection::open(&path).map_err(|error| backend("", "open the database", error))?;
        connection
            .execute_batch(
                "PRAGMA journal_mode = WAL;
                 PRAGMA synchronous = FULL;
                 CREATE TABLE IF NOT EXISTS threads (
                     id TEXT PRIMARY KEY,
                     state_type TEXT NOT NULL,
                     status TEXT NOT NULL
                 );
                 CREATE TABLE IF NOT EXISTS records (
                     thread TEXT NOT NULL REFERENCES threads(id),
                     seq INTEGER NOT NULL,
                     body TEXT NOT NULL,
                     PRIMARY KEY (thread, seq)
                 );",
            )
            .map_err(|error| backend("", "set up the database", error))?;
        Ok(Self {
            path,
            connection: Mutex::new(connection),
        })
    }

    /// The database file.
    pub fn path(&self) -> &Path {
        &self.path
    }

    fn connection(&self) -> std::sync::MutexGuard<'_, Connection> {
        self.connection
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
    }
}

fn exists(connection: &Connection, thread: &str) -> Result<bool, StoreError> {
    connection
        .query_row("SELECT 1 FROM threads WHERE id = ?1", [thread], |_| Ok(()))
        .optional()
        .map(|found| found.is_some())
        .map_err(|error| backend(thread, "look up", error))
}

fn require(connection: &Connection, thread: &str) -> Result<(), StoreError> {
    check_thread_id(thread)?;
    if exists(connection, thread)? {
        Ok(())
    } else {
        Err(StoreError::UnknownThread {
            thread: thread.to_string(),
        })
    }
}

impl CheckpointStore for SqliteStore {
    async fn create(
        &self,
        thread: &str,
        state_type: &str,
        first: &StepRecord,
    ) -> Result<(), StoreError> {
        check_thread_id(thread)?;
        let connection = self.connection();
        if exists(&connection, thread)? {
            return Err(StoreError::ThreadExists {
                thread: thread.to_string(),
            });
        }
        let status = serde_json::to_string(&RunStatus::Running).unwrap_or_default();
        let body = serde_json::to_string(first).unwrap_or_default();
        // One transaction: the thread and its first record, or neither.
        connection
            .execute_batch("BEGIN IMMEDIATE")
            .and_then(|()| {
                connection.execute(
                    "INSERT INTO threads (id, state_type, status) VALUES (?1, ?2, ?3)",
                    params![thread, state_type, status],
                )?;
                connection.execute(
                    "INSERT INTO records (thread, seq, body) VALUES (?1, 1, ?2)",
                    params![thread, body],
                )?;
                connection.execute_batch("COMMIT")
            })
            .map_err(|error| {
                let _ = connection.execute_batch("ROLLBACK");
                backend(thread, "create", error)
            })
    }

    async fn append(&self, thread: &str, record: &StepRecord) -> Result<(), StoreError> {
        let connection = self.connection();
        require(&connection, thread)?;
        let body = serde_json::to_string(record).unwrap_or_default();
        connection
            .execute(
                "INSERT INTO records (thread, seq, body) VALUES (?1,
                     (SELECT COALESCE(MAX(seq), 0) + 1 FROM records WHERE thread = ?1), ?2)",
                params![thread, body],
            )
            .map_err(|error| backend(thread, "append to", error))?;
        Ok(())
    }

    async fn set_status(&self, thread: &str, status: &RunStatus) -> Result<(), StoreError> {
        let connection = self.connection();
        require(&connection, thread)?;
        let status = serde_json::to_string(status).unwrap_or_default();
        connection
            .execute(
                "UPDATE threads SET status = ?2 WHERE id = ?1",
                params![thread, status],
            )
            .map_err(|error| backend(thread, "set the status of", error))?;
        Ok(())
    }

    async fn load(&self, thread: &str) -> Result<ThreadLog, StoreError> {
        let connection = self.connection();
        require(&connection, thread)?;
        let corrupt = |what: String, reason: String| StoreError::Corrupt {
            thread: thread.to_string(),
            what,
            reason,
        };
        let (state_type, status): (String, String) = connection
            .query_row(
                "SELECT state_type, status FROM threads WHERE id = ?1",
                [thread],
                |row| Ok((row.get(0)?, row.get(1)?)),
            )
            .map_err(|error| backend(thread, "read", error))?;
        let status: RunStatus = serde_json::from_str(&status)
            .map_err(|error| corrupt("its status".into(), error.to_string()))?;
        let mut statement = connection
            .prepare("SELECT seq, body FROM records WHERE thread = ?1 ORDER BY seq")
            .map_err(|error| backend(thread, "read", error))?;
        let rows = statement
            .query_map([thread], |row| {
                Ok((row.get::<_, i64>(0)?, row.get::<_, String>(1)?))
            })
            .map_err(|error| backend(thread, "read", error))?;
        let mut records = Vec::new();
        for row in rows {
            let (seq, body) = row.map_err(|error| backend(thread, "read", error))?;
            let record: StepRecord = serde_json::from_str(&body)
                .map_err(|error| corrupt(format!("record {seq}"), error.to_string()))?;
            records.push(record);
        }
        Ok(ThreadLog {
            state_type,
            status,
            records,
            dropped_torn_record: false,
        })
    }

    async fn threads(&self) -> Result<Vec<String>, StoreError> {
        let connection = self.connection();
        let mut statement = connection
            .prepare("SELECT id FROM threads ORDER BY id")
            .map_err(|error| backend("", "list threads", error))?;
        let ids = statement
            .query_map([], |row| row.get::<_, String>(0))
            .map_err(|error| backend("", "list threads", error))?;
        ids.collect::<Result<_, _>>()
            .map_err(|error| backend("", "list threads", error))
    }
}
