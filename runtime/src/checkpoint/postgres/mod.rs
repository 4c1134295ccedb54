//! A checkpoint store in a PostgreSQL database shared by many processes (feature `postgres`).

use std::fmt;
use std::path::PathBuf;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use deadpool_postgres::Pool;
use tokio::sync::Notify;
use tokio_postgres::config::Host;
use tokio_postgres::{Config, IsolationLevel};

mod alive;
mod queue;
mod setup;
mod tls;

use alive::{owner_gone, owner_key};

pub(crate) use queue::CHANNEL;
pub use queue::Taken;
use queue::keep_leases;
pub use setup::PostgresOptions;
pub(crate) use tls::Tls;

use super::{
    CheckpointStore, FlowInfo, RecordKind, Records, RunStatus, StepRecord, StoreError, ThreadInfo,
    ThreadLog, as_read, check_new, check_order, check_thread_id, crc32, encode, now_ms, refused,
    status_json, to_i64,
};

/// Keeps every thread in a PostgreSQL database, so that processes on many machines share them:
/// any of them can resume, inspect or answer any thread, and [`Worker`](crate::worker::Worker)s
/// take runnable threads from it.
///
/// Tables `slateflow_threads` and `slateflow_records` mirror the other stores: a row per thread
/// (state type, flow, status, last step, claim), a row per record (its JSON with a CRC-32, so a
/// changed byte is an error, never a wrong state). The tables are made by the first store that
/// connects, in one transaction.
///
/// A claim is a lease: the thread's row names the store that holds it and until when, and the
/// store renews its leases while it lives. Every claim raises the thread's claim number, and every
/// append checks both the claim number and the last saved step in the same statement (fencing):
/// a worker whose lease lapsed and whose thread was taken over never writes again. A claim
/// dropped in a live process is given up at once. A killed process's claims are void at once:
/// each store holds a session-level advisory lock on a connection of its own while it lives,
/// which the server frees when the process dies, and a thread whose owner's lock is free reads
/// as interrupted and can be claimed ([`Worker`](crate::worker::Worker)s look for such threads
/// twice a second). A process that hangs keeps its lock; its claims lapse after the lease
/// ([`PostgresOptions::lease`]).
///
/// Connections use TLS as the URL's `sslmode` asks (`disable`, `prefer` (the default),
/// `require`, `verify-ca`, `verify-full`, with the authorities of `sslrootcert` or else
/// Mozilla's), in Rust, without the system's OpenSSL: a managed database that requires TLS is
/// reached with `?sslmode=verify-full&sslrootcert=/path/to/its-ca.pem`. `prefer` and `require`
/// encrypt but do not check whose certificate it is; `verify-full` does.
///
/// ```no_run
/// use slateflow::checkpoint::{CheckpointStore, PostgresStore, RecordKind, Records, StepRecord};
/// # async fn run() -> Result<(), slateflow::checkpoint::StoreError> {
/// let store = PostgresStore::connect("postgres://slateflow@127.0.0.1:5432/runs").await?;
/// let start = StepRecord::new(0, RecordKind::Start).with_snapshot(serde_json::json!({}));
/// let mut claim = store.create("t-1", "Counter", &[start]).await?;
/// store.append(&mut claim, &StepRecord::new(1, RecordKind::Step)).await?;
/// assert_eq!(store.load("t-1", Records::All).await?.last_step, 1);
/// # Ok(()) }
/// ```
#[derive(Clone)]
pub struct PostgresStore {
    inner: Arc<Inner>,
}

struct Inner {
    pool: Pool,
    config: Config,
    /// Makes the TLS sessions the URL's `sslmode` asks for.
    tls: Tls,
    /// Where the database is, for errors (no password).
    place: PathBuf,
    /// Names this store's claims in the table.
    owner: String,
    lease_ms: i64,
    /// Claims dropped and not yet given up in the table.
    releases: Mutex<Vec<(String, i64)>>,
    /// Held while dropped claims are given up, so that a call after a drop sees it done.
    settling: tokio::sync::Mutex<()>,
    /// Claims alive.
    held: AtomicUsize,
    /// Wakes the lease keeper to give up dropped claims.
    wake: Arc<Notify>,
    /// The connection that holds this store's liveness lock (see `alive`); `None` or closed
    /// when it was lost, until the lease keeper holds it again.
    alive: Mutex<Option<tokio_postgres::Client>>,
}

impl Inner {
    /// A connection of its own, outside the pool, driven by a task of its own.
    async fn connect_one(&self) -> Result<tokio_postgres::Client, tokio_postgres::Error> {
        let (client, connection) = self.config.connect(self.tls.clone()).await?;
        tokio::spawn(connection);
        Ok(client)
    }
}

impl fmt::Debug for PostgresStore {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PostgresStore")
            .field("database", &self.inner.place)
            .field("owner", &self.inner.owner)
            .field("lease_ms", &self.inner.lease_ms)
            .finish_non_exhaustive()
    }
}

/// A claim on a thread of a [`PostgresStore`]: the thread's claim number, leased to this store.
/// Dropping it gives the thread up.
///
/// ```no_run
/// use slateflow::checkpoint::{CheckpointStore, PostgresStore, RecordKind, StepRecord};
/// # async fn example() -> Result<(), slateflow::checkpoint::StoreError> {
/// let store = PostgresStore::connect("postgres://postgres@127.0.0.1/postgres").await?;
/// let start = StepRecord::new(0, RecordKind::Start).with_snapshot(serde_json::json!({}));
/// // A claim is a lease on the thread, renewed while the store lives; another store's claim
/// // is refused until this one is dropped (or its process dies).
/// let mut claim = store.create("t-1", "Counter", &[start]).await?;
/// store.append(&mut claim, &StepRecord::new(1, RecordKind::Step)).await?;
/// drop(claim);
/// # Ok(()) }
/// ```
pub struct PostgresClaim {
    thread: String,
    number: i64,
    last_step: u64,
    inner: Arc<Inner>,
}

impl fmt::Debug for PostgresClaim {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PostgresClaim")
            .field("thread", &self.thread)
            .field("number", &self.number)
            .field("last_step", &self.last_step)
            .finish_non_exhaustive()
    }
}

impl PostgresClaim {
    /// The claimed thread.
    pub fn thread(&self) -> &str {
        &self.thread
    }

    fn new(inner: &Arc<Inner>, thread: &str, number: i64, last_step: i64) -> Self {
        inner.held.fetch_add(1, Ordering::Relaxed);
        Self {
            thread: thread.to_string(),
            number,
            last_step: from_i64(last_step),
            inner: Arc::clone(inner),
        }
    }
}

impl Drop for PostgresClaim {
    fn drop(&mut self) {
        self.inner.held.fetch_sub(1, Ordering::Relaxed);
        let release = (std::mem::take(&mut self.thread), self.number);
        // Given up by the lease keeper, or by this store's next call, whichever comes first.
        self.inner
            .releases
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .push(release);
        self.inner.wake.notify_one();
    }
}

impl PostgresStore {
    /// Connects with the default [`PostgresOptions`] (a pool of 16, a lease of 15 s).
    ///
    /// # Errors
    /// As [`PostgresOptions::connect`].
    pub async fn connect(url: &str) -> Result<Self, StoreError> {
        PostgresOptions::default().connect(url).await
    }

    /// Options to connect with: the pool's size and the claims' lease.
    pub fn options() -> PostgresOptions {
        PostgresOptions::default()
    }

    /// Where the database is (`postgres://user@host:port/name`, without a password).
    pub fn database(&self) -> &std::path::Path {
        &self.inner.place
    }

    /// The lease of this store's claims.
    pub fn lease(&self) -> Duration {
        Duration::from_millis(u64::try_from(self.inner.lease_ms).unwrap_or(0))
    }

    /// The connection settings and TLS, for a connection of its own (a worker's `LISTEN`).
    pub(crate) fn config(&self) -> (&Config, Tls) {
        (&self.inner.config, self.inner.tls.clone())
    }

    async fn client(&self, thread: &str) -> Result<deadpool_postgres::Object, StoreError> {
        self.inner
            .pool
            .get()
            .await
            .map_err(|error| self.backend(thread, "connect to the database", error))
    }

    fn backend(
        &self,
        thread: &str,
        action: &'static str,
        error: impl std::error::Error,
    ) -> StoreError {
        backend_error(thread, action, &self.inner.place, error)
    }

    /// Inserts the thread's row and records in one transaction; `false` when the id is taken.
    async fn insert_thread(
        client: &mut deadpool_postgres::Object,
        row: &NewThread<'_>,
        records: &[StepRecord],
        bodies: &[String],
    ) -> Result<bool, tokio_postgres::Error> {
        let transaction = client.transaction().await?;
        let created = transaction
            .execute(
                "INSERT INTO slateflow_threads
                     (id, state_type, flow, status, phase, last_step, seq, claim, owner,
                      lease_until, updated_ms)
                 VALUES ($1, $2, $3, $4, 'running', $5, $6, 1, $7,
                         now() + $8::BIGINT * INTERVAL '1 millisecond', $9)
                 ON CONFLICT (id) DO NOTHING",
                &[
                    &row.thread,
                    &row.state_type,
                    &row.flow,
                    &status_json(&RunStatus::Running),
                    &to_i64(row.last_step),
                    &to_i64(records.len() as u64),
                    &row.owner,
                    &row.lease_ms,
                    &to_i64(now_ms()),
                ],
            )
            .await?;
        if created != 1 {
            return Ok(false);
        }
        let insert = transaction
            .prepare_cached(
                "INSERT INTO slateflow_records (thread, seq, step, snapshot, crc, body)
                 VALUES ($1, $2, $3, $4, $5, $6)",
            )
            .await?;
        for (seq, (record, body)) in records.iter().zip(bodies).enumerate() {
            transaction
                .execute(
                    &insert,
                    &[
                        &row.thread,
                        &to_i64(seq as u64 + 1),
                        &to_i64(record.step),
                        &record.snapshot.is_some(),
                        &i64::from(crc32(body.as_bytes())),
                        body,
                    ],
                )
                .await?;
        }
        transaction.commit().await?;
        Ok(true)
    }
}

/// The row of a new thread.
struct NewThread<'a> {
    thread: &'a str,
    state_type: &'a str,
    flow: &'a str,
    last_step: u64,
    owner: &'a str,
    lease_ms: i64,
}

/// Appends a record if the claim is still the thread's and its last step is the one the claim
/// knows, moving the thread on: one statement, so one transaction.
const APPEND: &str = "WITH moved AS (
         UPDATE slateflow_threads
         SET last_step = $2, seq = seq + 1, updated_ms = $3
         WHERE id = $1 AND claim = $4 AND last_step = $5
         RETURNING seq)
     INSERT INTO slateflow_records (thread, seq, step, snapshot, crc, body)
     SELECT $1, seq, $2, $6, $7, $8 FROM moved";

/// As [`APPEND`], for many records at once, given as arrays ($7 steps, $8 snapshot flags, $9
/// checksums, $10 bodies, $6 of each): their sequence numbers follow the thread's.
const APPEND_ALL: &str = "WITH moved AS (
         UPDATE slateflow_threads
         SET last_step = $2, seq = seq + $6, updated_ms = $3
         WHERE id = $1 AND claim = $4 AND last_step = $5
         RETURNING seq)
     INSERT INTO slateflow_records (thread, seq, step, snapshot, crc, body)
     SELECT $1, moved.seq - $6 + r.ord, r.step, r.snapshot, r.crc, r.body
     FROM moved,
          UNNEST($7::BIGINT[], $8::BOOLEAN[], $9::BIGINT[], $10::TEXT[])
              WITH ORDINALITY AS r(step, snapshot, crc, body, ord)";

impl CheckpointStore for PostgresStore {
    type Claim = PostgresClaim;

    async fn create(
        &self,
        thread: &str,
        state_type: &str,
        records: &[StepRecord],
    ) -> Result<PostgresClaim, StoreError> {
        let last_step = check_new(thread, records)?;
        let bodies = records
            .iter()
            .map(|record| encode(thread, record))
            .collect::<Result<Vec<_>, _>>()?;
        // The flow a worker runs the thread with: named in its start record.
        let flow = records
            .first()
            .filter(|record| record.kind == RecordKind::Start)
            .map_or("", |record| record.node.as_str());
        let row = NewThread {
            thread,
            state_type,
            flow,
            last_step,
            owner: &self.inner.owner,
            lease_ms: self.inner.lease_ms,
        };
        let mut client = self.client(thread).await?;
        match Self::insert_thread(&mut client, &row, records, &bodies).await {
            Ok(true) => Ok(PostgresClaim::new(
                &self.inner,
                thread,
                1,
                to_i64(last_step),
            )),
            Ok(false) => Err(StoreError::ThreadExists {
                thread: thread.to_string(),
            }),
            Err(error) => Err(self.backend(thread, "create", error)),
        }
    }

    async fn claim(&self, thread: &str) -> Result<PostgresClaim, StoreError> {
        check_thread_id(thread)?;
        self.settle().await?;
        let client = self.client(thread).await?;
        let claimed = async {
            let statement = client
                .prepare_cached(concat!(
                    "UPDATE slateflow_threads
                     SET claim = claim + 1, owner = $2,
                         lease_until = now() + $3::BIGINT * INTERVAL '1 millisecond'
                     WHERE id = $1 AND (owner IS NULL OR lease_until < now() OR ",
                    owner_gone!(),
                    ")
                     RETURNING claim, last_step",
                ))
                .await?;
            let row = client
                .query_opt(
                    &statement,
                    &[&thread, &self.inner.owner, &self.inner.lease_ms],
                )
                .await?;
            if let Some(row) = row {
                return Ok(Ok((row.get::<_, i64>(0), row.get::<_, i64>(1))));
            }
            let known = client
                .query_opt("SELECT 1 FROM slateflow_threads WHERE id = $1", &[&thread])
                .await?
                .is_some();
            Ok(Err(known))
        }
        .await
        .map_err(|error: tokio_postgres::Error| self.backend(thread, "claim", error))?;
        match claimed {
            Ok((number, last_step)) => {
                Ok(PostgresClaim::new(&self.inner, thread, number, last_step))
            }
            Err(true) => Err(StoreError::Claimed {
                thread: thread.to_string(),
            }),
            Err(false) => Err(StoreError::UnknownThread {
                thread: thread.to_string(),
            }),
        }
    }

    async fn append(
        &self,
        claim: &mut PostgresClaim,
        record: &StepRecord,
    ) -> Result<(), StoreError> {
        check_order(&claim.thread, claim.last_step, record)?;
        let body = encode(&claim.thread, record)?;
        let client = self.client(&claim.thread).await?;
        // One statement, so one transaction: the thread moves on and the record is saved only if
        // the claim is still the thread's and its last step is the one the claim knows.
        let appended = async {
            let statement = client.prepare_cached(APPEND).await?;
            client
                .execute(
                    &statement,
                    &[
                        &claim.thread,
                        &to_i64(record.step),
                        &to_i64(record.saved_at_ms),
                        &claim.number,
                        &to_i64(claim.last_step),
                        &record.snapshot.is_some(),
                        &i64::from(crc32(body.as_bytes())),
                        &body,
                    ],
                )
                .await
        }
        .await
        .map_err(|error| self.backend(&claim.thread, "append to", error))?;
        // Refused when another worker claimed the thread (the lease lapsed), or it was cancelled.
        if appended != 1 {
            return Err(self.refused(&client, &claim.thread).await);
        }
        claim.last_step = record.step;
        Ok(())
    }

    /// One statement (one transaction, one round trip) for all of `records`: no transaction is
    /// left open across awaits, holding the thread's row while the run is not polled.
    async fn append_all(
        &self,
        claim: &mut PostgresClaim,
        records: &[StepRecord],
    ) -> Result<(), StoreError> {
        let last_record = match records {
            [] => return Ok(()),
            [record] => return self.append(claim, record).await,
            [.., last] => last,
        };
        let mut last = claim.last_step;
        let (mut steps, mut snapshots, mut crcs, mut bodies) = (
            Vec::with_capacity(records.len()),
            Vec::with_capacity(records.len()),
            Vec::with_capacity(records.len()),
            Vec::with_capacity(records.len()),
        );
        for record in records {
            check_order(&claim.thread, last, record)?;
            last = record.step;
            let body = encode(&claim.thread, record)?;
            steps.push(to_i64(record.step));
            snapshots.push(record.snapshot.is_some());
            crcs.push(i64::from(crc32(body.as_bytes())));
            bodies.push(body);
        }
        let client = self.client(&claim.thread).await?;
        let appended = async {
            let statement = client.prepare_cached(APPEND_ALL).await?;
            client
                .execute(
                    &statement,
                    &[
                        &claim.thread,
                        &to_i64(last_record.step),
                        &to_i64(last_record.saved_at_ms),
                        &claim.number,
                        &to_i64(claim.last_step),
                        &to_i64(records.len() as u64),
                        &steps,
                        &snapshots,
                        &crcs,
                        &bodies,
                    ],
                )
                .await
        }
        .await
        .map_err(|error| self.backend(&claim.thread, "append to", error))?;
        if appended != records.len() as u64 {
            return Err(self.refused(&client, &claim.thread).await);
        }
        claim.last_step = last;
        Ok(())
    }

    async fn compact(
        &self,
        claim: &mut PostgresClaim,
        steps: std::ops::Range<u64>,
    ) -> Result<(), StoreError> {
        let client = self.client(&claim.thread).await?;
        // The records after the last one before `steps`: found walking back from the end.
        let statement = "DELETE FROM slateflow_records WHERE thread = $1
             AND seq > COALESCE((SELECT seq FROM slateflow_records WHERE thread = $1 AND step < $2
                                 ORDER BY seq DESC LIMIT 1), 0)
             AND step < $3
             AND (body::jsonb)->>'kind' IN ('kept', 'discard')
             AND EXISTS (SELECT 1 FROM slateflow_threads WHERE id = $1 AND claim = $4)";
        async {
            let statement = client.prepare_cached(statement).await?;
            client
                .execute(
                    &statement,
                    &[
                        &claim.thread,
                        &to_i64(steps.start),
                        &to_i64(steps.end),
                        &claim.number,
                    ],
                )
                .await
        }
        .await
        .map_err(|error| self.backend(&claim.thread, "compact", error))?;
        Ok(())
    }

    async fn set_status(
        &self,
        claim: &mut PostgresClaim,
        status: &RunStatus,
    ) -> Result<(), StoreError> {
        let text = status_json(status);
        let client = self.client(&claim.thread).await?;
        // A queued thread wakes the workers when the change commits. A status other than running
        // is a run's (or an answer's) last write: the claim is given up with it, so that whoever
        // reads the status can act on the thread at once (an answer right after a pause, a
        // worker taking a thread just queued), before the dropped claim is given up. Running
        // (re)takes the lease for the claim it still holds.
        let changed = async {
            let statement = client
                .prepare_cached(
                    "WITH changed AS (
                         UPDATE slateflow_threads SET status = $2, phase = $3,
                             owner = CASE WHEN $3 = 'running' THEN $6 END,
                             lease_until = CASE WHEN $3 = 'running'
                                 THEN now() + $7::BIGINT * INTERVAL '1 millisecond' END
                         WHERE id = $1 AND claim = $4
                         RETURNING id),
                     woken AS (
                         SELECT pg_notify($5, id) FROM changed WHERE $3 = 'queued')
                     SELECT (SELECT COUNT(*) FROM changed), (SELECT COUNT(*) FROM woken)",
                )
                .await?;
            let row = client
                .query_one(
                    &statement,
                    &[
                        &claim.thread,
                        &text,
                        &phase(status),
                        &claim.number,
                        &CHANNEL,
                        &self.inner.owner,
                        &self.inner.lease_ms,
                    ],
                )
                .await?;
            Ok::<i64, tokio_postgres::Error>(row.get(0))
        }
        .await
        .map_err(|error| self.backend(&claim.thread, "set the status of", error))?;
        if changed == 1 {
            Ok(())
        } else {
            Err(self.refused(&client, &claim.thread).await)
        }
    }

    async fn load(&self, thread: &str, records: Records) -> Result<ThreadLog, StoreError> {
        check_thread_id(thread)?;
        self.settle().await?;
        let mut client = self.client(thread).await?;
        let query = match records {
            Records::All => {
                "SELECT seq, crc, body FROM slateflow_records WHERE thread = $1 ORDER BY seq"
            }
            Records::SinceSnapshot => {
                "SELECT seq, crc, body FROM slateflow_records WHERE thread = $1 AND seq >= COALESCE(
                     (SELECT MAX(seq) FROM slateflow_records WHERE thread = $1 AND snapshot), 0)
                 ORDER BY seq"
            }
        };
        // One snapshot of the database: the thread's row and its records agree.
        let read = async {
            let transaction = client
                .build_transaction()
                .isolation_level(IsolationLevel::RepeatableRead)
                .read_only(true)
                .start()
                .await?;
            let row = transaction
                .query_opt(
                    concat!(
                        "SELECT state_type, status, last_step,
                                owner IS NOT NULL AND lease_until >= now() AND NOT ",
                        owner_gone!(),
                        " FROM slateflow_threads WHERE id = $1"
                    ),
                    &[&thread],
                )
                .await?;
            let Some(row) = row else {
                return Ok(None);
            };
            let statement = transaction.prepare_cached(query).await?;
            let rows = transaction.query(&statement, &[&thread]).await?;
            transaction.commit().await?;
            Ok(Some((row, rows)))
        }
        .await
        .map_err(|error: tokio_postgres::Error| self.backend(thread, "read", error))?;
        let Some((row, rows)) = read else {
            return Err(StoreError::UnknownThread {
                thread: thread.to_string(),
            });
        };
        let status = self.status(thread, row.get(1), row.get(3))?;
        let mut loaded = Vec::with_capacity(rows.len());
        for row in rows {
            loaded.push(self.record(thread, row.get(0), row.get(1), row.get(2))?);
        }
        Ok(ThreadLog {
            state_type: row.get(0),
            status,
            records: loaded,
            last_step: from_i64(row.get(2)),
            dropped_torn_record: false,
        })
    }

    async fn threads(&self) -> Result<Vec<ThreadInfo>, StoreError> {
        self.settle().await?;
        let client = self.client("").await?;
        let rows = client
            .query(
                concat!(
                    "SELECT id, state_type, status, last_step, updated_ms,
                            owner IS NOT NULL AND lease_until >= now() AND NOT ",
                    owner_gone!(),
                    ", flow FROM slateflow_threads ORDER BY id COLLATE \"C\""
                ),
                &[],
            )
            .await
            .map_err(|error| self.backend("", "list threads", error))?;
        rows.into_iter()
            .map(|row| {
                let id: String = row.get(0);
                Ok(ThreadInfo {
                    status: self.status(&id, row.get(2), row.get(5))?,
                    id,
                    state_type: row.get(1),
                    flow: row.get(6),
                    last_step: from_i64(row.get(3)),
                    updated_at_ms: from_i64(row.get(4)),
                })
            })
            .collect()
    }

    async fn save_flow(&self, flow: &FlowInfo) -> Result<(), StoreError> {
        let body = flow.to_json()?;
        self.client("")
            .await?
            .execute(
                "INSERT INTO slateflow_flows (name, body) VALUES ($1, $2)
                 ON CONFLICT (name) DO UPDATE SET body = EXCLUDED.body",
                &[&flow.name, &body],
            )
            .await
            .map_err(|error| self.backend("", "save a flow", error))?;
        Ok(())
    }

    async fn flows(&self) -> Result<Vec<FlowInfo>, StoreError> {
        let rows = self
            .client("")
            .await?
            .query(
                "SELECT name, body FROM slateflow_flows ORDER BY name COLLATE \"C\"",
                &[],
            )
            .await
            .map_err(|error| self.backend("", "list the flows", error))?;
        rows.into_iter()
            .map(|row| {
                let (name, body): (String, String) = (row.get(0), row.get(1));
                FlowInfo::from_json(body.as_bytes(), || format!("the saved flow `{name}`"))
            })
            .collect()
    }

    async fn delete(&self, claim: PostgresClaim) -> Result<(), StoreError> {
        let client = self.client(&claim.thread).await?;
        let deleted = client
            .execute(
                "DELETE FROM slateflow_threads WHERE id = $1 AND claim = $2",
                &[&claim.thread, &claim.number],
            )
            .await
            .map_err(|error| self.backend(&claim.thread, "delete", error))?;
        if deleted == 1 {
            Ok(())
        } else {
            Err(self.refused(&client, &claim.thread).await)
        }
    }

    async fn cancel(&self, thread: &str) -> Result<(), StoreError> {
        self.cancel_thread(thread).await
    }
}

impl PostgresStore {
    /// Why a write of `thread` was refused by its claim's fencing.
    async fn refused(&self, client: &tokio_postgres::Client, thread: &str) -> StoreError {
        let status: Option<String> = client
            .query_opt(
                "SELECT status FROM slateflow_threads WHERE id = $1",
                &[&thread],
            )
            .await
            .ok()
            .flatten()
            .map(|row| row.get(0));
        refused(thread, status.as_deref())
    }

    /// The saved status, as a reader sees it.
    fn status(&self, thread: &str, text: &str, leased: bool) -> Result<RunStatus, StoreError> {
        let status: RunStatus =
            serde_json::from_str(text).map_err(|error| StoreError::Corrupt {
                thread: thread.to_string(),
                what: format!(
                    "its status in slateflow_threads of `{}`",
                    self.inner.place.display()
                ),
                reason: error.to_string(),
            })?;
        Ok(as_read(status, leased))
    }

    /// A record read back, its checksum checked.
    fn record(
        &self,
        thread: &str,
        seq: i64,
        crc: i64,
        body: &str,
    ) -> Result<StepRecord, StoreError> {
        let corrupt = |reason: String| StoreError::Corrupt {
            thread: thread.to_string(),
            what: format!(
                "record {seq} in slateflow_records of `{}`",
                self.inner.place.display()
            ),
            reason,
        };
        if i64::from(crc32(body.as_bytes())) != crc {
            return Err(corrupt("its checksum does not match its text".into()));
        }
        serde_json::from_str(body)
            .map_err(|error| corrupt(format!("the record is not valid: {error}")))
    }
}

/// The phase column: what a worker looks for.
fn phase(status: &RunStatus) -> &'static str {
    match status {
        RunStatus::Running | RunStatus::Interrupted => "running",
        RunStatus::Queued => "queued",
        RunStatus::Paused { .. } => "paused",
        RunStatus::Finished { .. } => "finished",
        RunStatus::Failed { .. } => "failed",
        RunStatus::Cancelled => "cancelled",
    }
}

fn backend_error(
    thread: &str,
    action: &'static str,
    place: &std::path::Path,
    error: impl std::error::Error,
) -> StoreError {
    StoreError::Backend {
        thread: thread.to_string(),
        action,
        path: place.to_path_buf(),
        source: Box::new(DatabaseError::from(&error)),
    }
}

/// A database error with its causes in its text: the driver's own text is often only "db error"
/// or "error connecting to server", the reason being in its sources.
#[derive(Debug)]
pub(crate) struct DatabaseError(String);

impl<E: std::error::Error + ?Sized> From<&E> for DatabaseError {
    fn from(error: &E) -> Self {
        let mut text = error.to_string();
        let mut source = error.source();
        while let Some(cause) = source {
            let cause_text = cause.to_string();
            if !text.contains(&cause_text) {
                text.push_str(": ");
                text.push_str(&cause_text);
            }
            source = cause.source();
        }
        Self(text)
    }
}

impl fmt::Display for DatabaseError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for DatabaseError {}

/// `postgres://user@host:port/name`, for errors.
fn describe(config: &Config) -> PathBuf {
    let host = match config.get_hosts().first() {
        Some(Host::Tcp(host)) => host.clone(),
        Some(Host::Unix(path)) => path.display().to_string(),
        None => "localhost".into(),
    };
    let port = config.get_ports().first().copied().unwrap_or(5432);
    let user = config.get_user().unwrap_or("");
    let name = config.get_dbname().unwrap_or(user);
    let at = if user.is_empty() { "" } else { "@" };
    PathBuf::from(format!("postgres://{user}{at}{host}:{port}/{name}"))
}

/// Names this store in the claims it holds: the machine, the process and when it connected.
fn owner_id() -> String {
    static STORES: AtomicUsize = AtomicUsize::new(0);
    let host = std::fs::read_to_string("/proc/sys/kernel/hostname")
        .map(|name| name.trim().to_string())
        .unwrap_or_default();
    format!(
        "{host}:{}:{}:{}",
        std::process::id(),
        now_ms(),
        STORES.fetch_add(1, Ordering::Relaxed)
    )
}

fn from_i64(value: i64) -> u64 {
    u64::try_from(value).unwrap_or(0)
}
