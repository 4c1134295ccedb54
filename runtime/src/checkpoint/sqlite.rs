//! A checkpoint store in one SQLite database file (feature `sqlite`).

use std::path::{Path, PathBuf};
use std::sync::{Mutex, MutexGuard, PoisonError};

use rusqlite::{Connection, OpenFlags, OptionalExtension, params};

use super::{
    CheckpointStore, FlowInfo, Records, RunStatus, StepRecord, StoreError, ThreadInfo, ThreadLog,
    as_read, check_new, check_order, check_thread_id, crc32, encode, flow_of, io_error, lock,
    now_ms, refused, status_json, to_i64,
};

/// The schema's version, in SQLite's `user_version`.
const VERSION: i64 = 3;

/// What version 3 added to version 2: the saved flows, and each thread's flow. A database of
/// version 2 is brought up to date when opened for writing; opened read-only, it reads as having
/// no saved flow, and threads without one.
const VERSION_3: &str = "
    CREATE TABLE flows (name TEXT PRIMARY KEY, body TEXT NOT NULL);
    ALTER TABLE threads ADD COLUMN flow TEXT NOT NULL DEFAULT '';
";

const SCHEMA: &str = "
    CREATE TABLE threads (
        id TEXT PRIMARY KEY,
        state_type TEXT NOT NULL,
        status TEXT NOT NULL,
        last_step INTEGER NOT NULL,
        claim INTEGER NOT NULL,
        updated_ms INTEGER NOT NULL,
        flow TEXT NOT NULL DEFAULT ''
    );
    CREATE TABLE records (
        thread TEXT NOT NULL REFERENCES threads(id),
        seq INTEGER NOT NULL,
        step INTEGER NOT NULL,
        snapshot INTEGER NOT NULL,
        crc INTEGER NOT NULL,
        body TEXT NOT NULL,
        PRIMARY KEY (thread, seq)
    );
    CREATE INDEX snapshots ON records (thread, seq) WHERE snapshot = 1;
    CREATE TABLE flows (name TEXT PRIMARY KEY, body TEXT NOT NULL);
";

/// Keeps every thread in one SQLite database file: SQLite is compiled in (no system library), the
/// database runs in WAL mode with full synchronous commits, and each record is one transaction
/// with a CRC-32 of its text, so a crash leaves whole records only and a byte changed on disk is
/// an error, never a wrong state.
///
/// A run's claim is a lock file beside the database (`<file>-claims/<thread>.lock`, released by
/// the system when the process dies) and a claim number in the database: every append checks both
/// the claim number and the last saved step in the same transaction, so a writer that lost its
/// claim never writes. Statements are prepared once per connection. [`SqliteStore::open_read_only`]
/// reads a database it may not write to.
///
/// Its calls run in place, blocking the task briefly (one commit per step); the connection is
/// shared behind a mutex.
///
/// ```
/// use slateflow::checkpoint::{CheckpointStore, RecordKind, Records, SqliteStore, StepRecord};
/// # let folder = std::env::temp_dir().join(format!("slateflow-sqlite-{}", std::process::id()));
/// # std::fs::create_dir_all(&folder).unwrap();
/// # tokio::runtime::Builder::new_current_thread().build().unwrap().block_on(async {
/// let store = SqliteStore::open(folder.join("runs.db"))?;
/// let start = StepRecord::new(0, RecordKind::Start).with_snapshot(serde_json::json!({}));
/// let mut claim = store.create("t-1", "Counter", &[start]).await?;
/// store.append(&mut claim, &StepRecord::new(1, RecordKind::Step)).await?;
/// assert_eq!(store.load("t-1", Records::All).await?.last_step, 1);
/// # Ok::<(), slateflow::checkpoint::StoreError>(())
/// # }).unwrap();
/// # std::fs::remove_dir_all(&folder).unwrap();
/// ```
#[derive(Debug)]
pub struct SqliteStore {
    path: PathBuf,
    claims: PathBuf,
    connection: Mutex<Connection>,
}

/// A claim on a thread of a [`SqliteStore`]: the locked claim file and the claim's number.
/// Dropping it (or the death of its process) releases the lock.
#[derive(Debug)]
pub struct SqliteClaim {
    thread: String,
    number: i64,
    last_step: u64,
    _lock: lock::Lock,
}

impl SqliteStore {
    /// Opens (or creates) the database at `path` for reading and writing.
    ///
    /// # Errors
    /// [`StoreError::Backend`], naming the file, when SQLite cannot open or set it up (not a
    /// database, a newer or older schema).
    pub fn open(path: impl Into<PathBuf>) -> Result<Self, StoreError> {
        let path = path.into();
        let connection = Connection::open(&path)
            .map_err(|error| backend("", "open the database", &path, error))?;
        let store = Self::with(path, connection)?;
        store.set_up()?;
        Ok(store)
    }

    /// Opens the database at `path` for reading only (one on a read-only disk, or a copy):
    /// loading and listing threads work; claims are refused.
    ///
    /// # Errors
    /// [`StoreError::Backend`], naming the file, when it is not a slateflow database.
    pub fn open_read_only(path: impl Into<PathBuf>) -> Result<Self, StoreError> {
        let path = path.into();
        let connection = Connection::open_with_flags(
            &path,
            OpenFlags::SQLITE_OPEN_READ_ONLY | OpenFlags::SQLITE_OPEN_NO_MUTEX,
        )
        .map_err(|error| backend("", "open the database", &path, error))?;
        let store = Self::with(path, connection)?;
        let version = store.version()?;
        if !(2..=VERSION).contains(&version) {
            return Err(store.wrong_version(version));
        }
        Ok(store)
    }

    fn with(path: PathBuf, connection: Connection) -> Result<Self, StoreError> {
        connection
            .busy_timeout(std::time::Duration::from_secs(5))
            .map_err(|error| backend("", "open the database", &path, error))?;
        let mut claims = path.clone().into_os_string();
        claims.push("-claims");
        Ok(Self {
            claims: PathBuf::from(claims),
            path,
            connection: Mutex::new(connection),
        })
    }

    fn version(&self) -> Result<i64, StoreError> {
        self.connection()
            .query_row("PRAGMA user_version", [], |row| row.get(0))
            .map_err(|error| self.backend("", "read the schema version of", error))
    }

    fn wrong_version(&self, version: i64) -> StoreError {
        StoreError::Corrupt {
            thread: String::new(),
            what: format!("the database `{}`", self.path.display()),
            reason: format!(
                "its schema is version {version}; this version of slateflow uses version {VERSION}"
            ),
        }
    }

    /// WAL, full sync, and the schema when the database is new.
    fn set_up(&self) -> Result<(), StoreError> {
        let connection = self.connection();
        connection
            .execute_batch("PRAGMA journal_mode = WAL; PRAGMA synchronous = FULL;")
            .map_err(|error| self.backend("", "set up", error))?;
        let run = || -> rusqlite::Result<Option<i64>> {
            connection.execute_batch("BEGIN IMMEDIATE")?;
            let version: i64 = connection.query_row("PRAGMA user_version", [], |row| row.get(0))?;
            let tables: i64 = connection.query_row(
                "SELECT COUNT(*) FROM sqlite_master WHERE type = 'table'",
                [],
                |row| row.get(0),
            )?;
            let mut found = (version != 0 || tables != 0).then_some(version);
            if found.is_none() {
                connection.execute_batch(SCHEMA)?;
                connection.execute_batch(&format!("PRAGMA user_version = {VERSION}"))?;
            } else if version == 2 {
                connection.execute_batch(VERSION_3)?;
                connection.execute_batch(&format!("PRAGMA user_version = {VERSION}"))?;
                found = Some(VERSION);
            }
            connection.execute_batch("COMMIT")?;
            Ok(found)
        };
        match run() {
            Ok(Some(version)) if version != VERSION => Err(self.wrong_version(version)),
            Ok(_) => Ok(()),
            Err(error) => {
                let _ = connection.execute_batch("ROLLBACK");
                Err(self.backend("", "set up", error))
            }
        }
    }

    /// The database file.
    pub fn path(&self) -> &Path {
        &self.path
    }

    fn connection(&self) -> MutexGuard<'_, Connection> {
        self.connection
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
    }

    /// Inserts `records` (checked, with their JSON) under `claim` in one transaction.
    fn insert_checked(
        &self,
        claim: &mut SqliteClaim,
        records: &[StepRecord],
        bodies: &[String],
    ) -> Result<(), StoreError> {
        let Some(last) = records.last().map(|record| record.step) else {
            return Ok(());
        };
        let connection = self.connection();
        match Self::insert(&connection, claim, records, bodies) {
            Ok(true) => {
                claim.last_step = last;
                Ok(())
            }
            // The claim moved on (another worker claimed the thread, or it was cancelled).
            Ok(false) => Err(Self::refused(&connection, &claim.thread)),
            Err(error) => {
                let _ = connection.execute_batch("ROLLBACK");
                Err(self.backend(&claim.thread, "append to", error))
            }
        }
    }

    /// Why a write of `thread` was refused by its claim's fencing.
    fn refused(connection: &Connection, thread: &str) -> StoreError {
        let status: Option<String> = connection
            .query_row(
                "SELECT status FROM threads WHERE id = ?1",
                [thread],
                |row| row.get(0),
            )
            .optional()
            .ok()
            .flatten();
        refused(thread, status.as_deref())
    }

    fn backend(&self, thread: &str, action: &'static str, error: rusqlite::Error) -> StoreError {
        backend(thread, action, &self.path, error)
    }

    fn lock_path(&self, thread: &str) -> PathBuf {
        self.claims.join(format!("{thread}.lock"))
    }

    fn take_lock(&self, thread: &str) -> Result<lock::Lock, StoreError> {
        std::fs::create_dir_all(&self.claims)
            .map_err(|source| io_error(thread, "create the claims folder", &self.claims, source))?;
        lock::exclusive(thread, &self.lock_path(thread))
    }

    /// The saved status, as a reader sees it.
    fn status(&self, thread: &str, text: &str) -> Result<RunStatus, StoreError> {
        let status: RunStatus =
            serde_json::from_str(text).map_err(|error| StoreError::Corrupt {
                thread: thread.to_string(),
                what: format!("its status in `{}`", self.path.display()),
                reason: error.to_string(),
            })?;
        Ok(as_read(status, lock::is_held(&self.lock_path(thread))))
    }

    /// Appends `records` (with their JSON, `bodies`) and moves the thread's last step in one
    /// transaction, if the claim is still the thread's and the last step is the one it knows.
    fn insert(
        connection: &Connection,
        claim: &SqliteClaim,
        records: &[StepRecord],
        bodies: &[String],
    ) -> rusqlite::Result<bool> {
        let Some(last) = records.last() else {
            return Ok(true);
        };
        connection.execute_batch("BEGIN IMMEDIATE")?;
        let moved = connection
            .prepare_cached(
                "UPDATE threads SET last_step = ?1, updated_ms = ?2
                 WHERE id = ?3 AND claim = ?4 AND last_step = ?5",
            )?
            .execute(params![
                to_i64(last.step),
                to_i64(last.saved_at_ms),
                claim.thread,
                claim.number,
                to_i64(claim.last_step),
            ])?;
        if moved != 1 {
            connection.execute_batch("ROLLBACK")?;
            return Ok(false);
        }
        let mut insert = connection.prepare_cached(
            "INSERT INTO records (thread, seq, step, snapshot, crc, body) VALUES (?1,
                 (SELECT COALESCE(MAX(seq), 0) + 1 FROM records WHERE thread = ?1),
                 ?2, ?3, ?4, ?5)",
        )?;
        for (record, body) in records.iter().zip(bodies) {
            insert.execute(params![
                claim.thread,
                to_i64(record.step),
                record.snapshot.is_some(),
                crc32(body.as_bytes()),
                body,
            ])?;
        }
        connection.execute_batch("COMMIT")?;
        Ok(true)
    }
}

fn backend(thread: &str, action: &'static str, path: &Path, source: rusqlite::Error) -> StoreError {
    StoreError::Backend {
        thread: thread.to_string(),
        action,
        path: path.to_path_buf(),
        source: Box::new(source),
    }
}

impl CheckpointStore for SqliteStore {
    type Claim = SqliteClaim;

    async fn create(
        &self,
        thread: &str,
        state_type: &str,
        records: &[StepRecord],
    ) -> Result<SqliteClaim, StoreError> {
        let last_step = check_new(thread, records)?;
        let lock = self.take_lock(thread)?;
        let status = status_json(&RunStatus::Running);
        let bodies = records
            .iter()
            .map(|record| encode(thread, record))
            .collect::<Result<Vec<_>, _>>()?;
        let connection = self.connection();
        // One transaction: the thread and its records, or nothing.
        let run = || -> rusqlite::Result<bool> {
            connection.execute_batch("BEGIN IMMEDIATE")?;
            let exists = connection
                .prepare_cached("SELECT 1 FROM threads WHERE id = ?1")?
                .query_row([thread], |_| Ok(()))
                .optional()?
                .is_some();
            if exists {
                connection.execute_batch("ROLLBACK")?;
                return Ok(false);
            }
            connection.execute(
                "INSERT INTO threads (id, state_type, status, last_step, claim, updated_ms, flow)
                 VALUES (?1, ?2, ?3, ?4, 1, ?5, ?6)",
                params![
                    thread,
                    state_type,
                    status,
                    to_i64(last_step),
                    to_i64(now_ms()),
                    flow_of(records)
                ],
            )?;
            for (seq, (record, body)) in records.iter().zip(&bodies).enumerate() {
                connection.execute(
                    "INSERT INTO records (thread, seq, step, snapshot, crc, body)
                     VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
                    params![
                        thread,
                        to_i64(seq as u64 + 1),
                        to_i64(record.step),
                        record.snapshot.is_some(),
                        crc32(body.as_bytes()),
                        body
                    ],
                )?;
            }
            connection.execute_batch("COMMIT")?;
            Ok(true)
        };
        match run() {
            Ok(true) => Ok(SqliteClaim {
                thread: thread.to_string(),
                number: 1,
                last_step,
                _lock: lock,
            }),
            Ok(false) => Err(StoreError::ThreadExists {
                thread: thread.to_string(),
            }),
            Err(error) => {
                let _ = connection.execute_batch("ROLLBACK");
                Err(self.backend(thread, "create", error))
            }
        }
    }

    async fn claim(&self, thread: &str) -> Result<SqliteClaim, StoreError> {
        check_thread_id(thread)?;
        // An unknown thread gets no lock file.
        let known = self
            .connection()
            .prepare_cached("SELECT 1 FROM threads WHERE id = ?1")
            .and_then(|mut statement| statement.exists([thread]))
            .map_err(|error| self.backend(thread, "look up", error))?;
        if !known {
            return Err(StoreError::UnknownThread {
                thread: thread.to_string(),
            });
        }
        let lock = self.take_lock(thread)?;
        let connection = self.connection();
        let claimed = connection
            .prepare_cached(
                "UPDATE threads SET claim = claim + 1 WHERE id = ?1 RETURNING claim, last_step",
            )
            .and_then(|mut statement| {
                statement
                    .query_row([thread], |row| {
                        Ok((row.get::<_, i64>(0)?, row.get::<_, i64>(1)?))
                    })
                    .optional()
            })
            .map_err(|error| self.backend(thread, "claim", error))?;
        let Some((number, last_step)) = claimed else {
            return Err(StoreError::UnknownThread {
                thread: thread.to_string(),
            });
        };
        Ok(SqliteClaim {
            thread: thread.to_string(),
            number,
            last_step: u64::try_from(last_step).unwrap_or(0),
            _lock: lock,
        })
    }

    async fn append(&self, claim: &mut SqliteClaim, record: &StepRecord) -> Result<(), StoreError> {
        check_order(&claim.thread, claim.last_step, record)?;
        let body = encode(&claim.thread, record)?;
        self.insert_checked(
            claim,
            std::slice::from_ref(record),
            std::slice::from_ref(&body),
        )
    }

    /// One transaction (one commit) for all of `records`.
    async fn append_all(
        &self,
        claim: &mut SqliteClaim,
        records: &[StepRecord],
    ) -> Result<(), StoreError> {
        let mut last = claim.last_step;
        let mut bodies = Vec::with_capacity(records.len());
        for record in records {
            check_order(&claim.thread, last, record)?;
            last = record.step;
            bodies.push(encode(&claim.thread, record)?);
        }
        self.insert_checked(claim, records, &bodies)
    }

    async fn compact(
        &self,
        claim: &mut SqliteClaim,
        steps: std::ops::Range<u64>,
    ) -> Result<(), StoreError> {
        let connection = self.connection();
        // The records after the last one before `steps`: found walking back from the end.
        connection
            .prepare_cached(
                "DELETE FROM records WHERE thread = ?1
                 AND seq > COALESCE((SELECT seq FROM records WHERE thread = ?1 AND step < ?2
                                     ORDER BY seq DESC LIMIT 1), 0)
                 AND step < ?3
                 AND json_extract(body, '$.kind') IN ('kept', 'discard')
                 AND EXISTS (SELECT 1 FROM threads WHERE id = ?1 AND claim = ?4)",
            )
            .and_then(|mut statement| {
                statement.execute(params![
                    claim.thread,
                    to_i64(steps.start),
                    to_i64(steps.end),
                    claim.number
                ])
            })
            .map_err(|error| self.backend(&claim.thread, "compact", error))?;
        Ok(())
    }

    async fn set_status(
        &self,
        claim: &mut SqliteClaim,
        status: &RunStatus,
    ) -> Result<(), StoreError> {
        let status = status_json(status);
        let connection = self.connection();
        let changed = connection
            .prepare_cached("UPDATE threads SET status = ?1 WHERE id = ?2 AND claim = ?3")
            .and_then(|mut statement| {
                statement.execute(params![status, claim.thread, claim.number])
            })
            .map_err(|error| self.backend(&claim.thread, "set the status of", error))?;
        if changed == 1 {
            Ok(())
        } else {
            Err(Self::refused(&connection, &claim.thread))
        }
    }

    async fn load(&self, thread: &str, records: Records) -> Result<ThreadLog, StoreError> {
        check_thread_id(thread)?;
        let connection = self.connection();
        let row = connection
            .prepare_cached("SELECT state_type, status, last_step FROM threads WHERE id = ?1")
            .and_then(|mut statement| {
                statement
                    .query_row([thread], |row| {
                        Ok((
                            row.get::<_, String>(0)?,
                            row.get::<_, String>(1)?,
                            row.get::<_, i64>(2)?,
                        ))
                    })
                    .optional()
            })
            .map_err(|error| self.backend(thread, "read", error))?;
        let Some((state_type, status, last_step)) = row else {
            return Err(StoreError::UnknownThread {
                thread: thread.to_string(),
            });
        };
        let status = self.status(thread, &status)?;
        let query = match records {
            Records::All => "SELECT seq, crc, body FROM records WHERE thread = ?1 ORDER BY seq",
            Records::SinceSnapshot => {
                "SELECT seq, crc, body FROM records WHERE thread = ?1 AND seq >= COALESCE(
                     (SELECT MAX(seq) FROM records WHERE thread = ?1 AND snapshot = 1), 0)
                 ORDER BY seq"
            }
        };
        let mut statement = connection
            .prepare_cached(query)
            .map_err(|error| self.backend(thread, "read", error))?;
        let rows = statement
            .query_map([thread], |row| {
                Ok((
                    row.get::<_, i64>(0)?,
                    row.get::<_, u32>(1)?,
                    row.get::<_, String>(2)?,
                ))
            })
            .map_err(|error| self.backend(thread, "read", error))?;
        let mut loaded = Vec::new();
        for row in rows {
            let (seq, crc, body) = row.map_err(|error| self.backend(thread, "read", error))?;
            let corrupt = |reason: String| StoreError::Corrupt {
                thread: thread.to_string(),
                what: format!("record {seq} in `{}`", self.path.display()),
                reason,
            };
            if crc32(body.as_bytes()) != crc {
                return Err(corrupt("its checksum does not match its text".into()));
            }
            let record: StepRecord = serde_json::from_str(&body)
                .map_err(|error| corrupt(format!("the record is not valid: {error}")))?;
            loaded.push(record);
        }
        Ok(ThreadLog {
            state_type,
            status,
            records: loaded,
            last_step: u64::try_from(last_step).unwrap_or(0),
            dropped_torn_record: false,
        })
    }

    async fn save_flow(&self, flow: &FlowInfo) -> Result<(), StoreError> {
        let body = flow.to_json()?;
        self.connection()
            .prepare_cached("INSERT OR REPLACE INTO flows (name, body) VALUES (?1, ?2)")
            .and_then(|mut statement| statement.execute(rusqlite::params![flow.name, body]))
            .map_err(|error| self.backend("", "save a flow in", error))?;
        Ok(())
    }

    async fn flows(&self) -> Result<Vec<FlowInfo>, StoreError> {
        // A database of version 2, opened read-only, has no table of flows.
        if self.version()? < VERSION {
            return Ok(Vec::new());
        }
        let connection = self.connection();
        let mut statement = connection
            .prepare_cached("SELECT name, body FROM flows ORDER BY name")
            .map_err(|error| self.backend("", "list the flows of", error))?;
        let rows = statement
            .query_map([], |row| {
                Ok((row.get::<_, String>(0)?, row.get::<_, String>(1)?))
            })
            .map_err(|error| self.backend("", "list the flows of", error))?;
        let mut flows = Vec::new();
        for row in rows {
            let (name, body) = row.map_err(|error| self.backend("", "list the flows of", error))?;
            flows.push(FlowInfo::from_json(body.as_bytes(), || {
                format!("the saved flow `{name}` in `{}`", self.path.display())
            })?);
        }
        Ok(flows)
    }

    async fn threads(&self) -> Result<Vec<ThreadInfo>, StoreError> {
        // A database of version 2, opened read-only, keeps no thread's flow.
        let query = if self.version()? < VERSION {
            "SELECT id, state_type, status, last_step, updated_ms, '' FROM threads ORDER BY id"
        } else {
            "SELECT id, state_type, status, last_step, updated_ms, flow FROM threads ORDER BY id"
        };
        let connection = self.connection();
        let mut statement = connection
            .prepare_cached(query)
            .map_err(|error| self.backend("", "list threads", error))?;
        let rows = statement
            .query_map([], |row| {
                Ok((
                    row.get::<_, String>(0)?,
                    row.get::<_, String>(1)?,
                    row.get::<_, String>(2)?,
                    row.get::<_, i64>(3)?,
                    row.get::<_, i64>(4)?,
                    row.get::<_, String>(5)?,
                ))
            })
            .map_err(|error| self.backend("", "list threads", error))?;
        let mut threads = Vec::new();
        for row in rows {
            let (id, state_type, status, last_step, updated, flow) =
                row.map_err(|error| self.backend("", "list threads", error))?;
            threads.push(ThreadInfo {
                status: self.status(&id, &status)?,
                id,
                state_type,
                flow,
                last_step: u64::try_from(last_step).unwrap_or(0),
                updated_at_ms: u64::try_from(updated).unwrap_or(0),
            });
        }
        Ok(threads)
    }

    async fn delete(&self, claim: SqliteClaim) -> Result<(), StoreError> {
        let connection = self.connection();
        let run = || -> rusqlite::Result<bool> {
            connection.execute_batch("BEGIN IMMEDIATE")?;
            connection.execute(
                "DELETE FROM records WHERE thread = ?1
                 AND EXISTS (SELECT 1 FROM threads WHERE id = ?1 AND claim = ?2)",
                params![claim.thread, claim.number],
            )?;
            let deleted = connection.execute(
                "DELETE FROM threads WHERE id = ?1 AND claim = ?2",
                params![claim.thread, claim.number],
            )?;
            if deleted != 1 {
                connection.execute_batch("ROLLBACK")?;
                return Ok(false);
            }
            connection.execute_batch("COMMIT")?;
            Ok(true)
        };
        let deleted = run().map_err(|error| {
            let _ = connection.execute_batch("ROLLBACK");
            self.backend(&claim.thread, "delete", error)
        })?;
        if !deleted {
            return Err(Self::refused(&connection, &claim.thread));
        }
        let _ = std::fs::remove_file(self.lock_path(&claim.thread));
        Ok(())
    }

    async fn cancel(&self, thread: &str) -> Result<(), StoreError> {
        check_thread_id(thread)?;
        let connection = self.connection();
        // A new claim number: the runner's next write is refused.
        let changed = connection
            .prepare_cached("UPDATE threads SET status = ?2, claim = claim + 1 WHERE id = ?1")
            .and_then(|mut statement| {
                statement.execute(params![thread, status_json(&RunStatus::Cancelled)])
            })
            .map_err(|error| self.backend(thread, "cancel", error))?;
        if changed == 1 {
            Ok(())
        } else {
            Err(StoreError::UnknownThread {
                thread: thread.to_string(),
            })
        }
    }
}
