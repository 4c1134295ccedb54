//! How a [`PostgresStore`] connects ([`PostgresOptions`]) and sets up its tables.

use std::sync::atomic::AtomicUsize;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use deadpool_postgres::{Manager, ManagerConfig, Pool, RecyclingMethod};
use tokio::sync::Notify;

use super::{
    DatabaseError, Inner, PostgresStore, alive, backend_error, describe, keep_leases, owner_id, tls,
};
use crate::checkpoint::StoreError;

/// The schema's version, in `slateflow_schema`.
const VERSION: i32 = 2;

/// What version 2 added to version 1: the saved flows. A database of version 1 is brought up to
/// date by the first store that connects.
const FLOWS_TABLE: &str =
    "CREATE TABLE slateflow_flows (name TEXT PRIMARY KEY, body TEXT NOT NULL);";

/// Serializes concurrent set-ups of one database (`pg_advisory_xact_lock`): `slate` in ASCII.
const SETUP_LOCK: i64 = 0x0073_6C61_7465;

/// The tables, made in one transaction by the first store that connects. Plain `CREATE INDEX`
/// (never `CONCURRENTLY`, which cannot run inside a transaction).
const SCHEMA: &str = "
    CREATE TABLE slateflow_threads (
        id TEXT PRIMARY KEY,
        state_type TEXT NOT NULL,
        flow TEXT NOT NULL,
        status TEXT NOT NULL,
        phase TEXT NOT NULL,
        last_step BIGINT NOT NULL,
        seq BIGINT NOT NULL,
        claim BIGINT NOT NULL,
        owner TEXT,
        lease_until TIMESTAMPTZ,
        updated_ms BIGINT NOT NULL
    );
    CREATE INDEX slateflow_threads_runnable ON slateflow_threads (updated_ms)
        WHERE phase IN ('queued', 'running');
    CREATE INDEX slateflow_threads_owner ON slateflow_threads (owner) WHERE owner IS NOT NULL;
    CREATE TABLE slateflow_records (
        thread TEXT NOT NULL REFERENCES slateflow_threads (id) ON DELETE CASCADE,
        seq BIGINT NOT NULL,
        step BIGINT NOT NULL,
        snapshot BOOLEAN NOT NULL,
        crc BIGINT NOT NULL,
        body TEXT NOT NULL,
        PRIMARY KEY (thread, seq)
    );
    CREATE INDEX slateflow_records_snapshots ON slateflow_records (thread, seq) WHERE snapshot;
    CREATE TABLE slateflow_flows (name TEXT PRIMARY KEY, body TEXT NOT NULL);
";

/// How a [`PostgresStore`] connects: the pool's size and the claims' lease.
///
/// ```no_run
/// use std::time::Duration;
/// use slateflow::checkpoint::PostgresStore;
/// # async fn connect() -> Result<(), slateflow::checkpoint::StoreError> {
/// let store = PostgresStore::options()
///     .pool_size(32)
///     .lease(Duration::from_secs(10))
///     .connect("postgres://slateflow@db.internal/runs")
///     .await?;
/// # Ok(()) }
/// ```
#[derive(Debug, Clone)]
pub struct PostgresOptions {
    pool_size: usize,
    lease: Duration,
}

impl Default for PostgresOptions {
    fn default() -> Self {
        Self {
            pool_size: 16,
            lease: Duration::from_secs(15),
        }
    }
}

impl PostgresOptions {
    /// At most `size` connections at once (at least 1; 16 by default). Every call takes one for
    /// the time of its query. Besides the pool, the store keeps one connection that holds its
    /// liveness lock, and a worker one more to listen for runnable threads.
    #[must_use]
    pub fn pool_size(mut self, size: usize) -> Self {
        self.pool_size = size.max(1);
        self
    }

    /// How long a claim lasts unless renewed (15 s by default, at least 100 ms). The store renews
    /// its claims every third of it; a claim whose process hung or lost the database lapses after
    /// it, and the thread can then be claimed by another worker, whose claim refuses any late write
    /// of the first. (A process that dies needs no lease: its claims are void at once.)
    #[must_use]
    pub fn lease(mut self, lease: Duration) -> Self {
        self.lease = lease.max(Duration::from_millis(100));
        self
    }

    /// Connects to the database at `url` (a `postgres://` URL or a `key=value` string, as
    /// libpq takes) and sets up its tables if they are missing, in one transaction.
    ///
    /// # Errors
    /// [`StoreError::Backend`], naming the database, when the URL is not valid, the server cannot
    /// be reached or the tables cannot be made; [`StoreError::Corrupt`] when the database holds
    /// another version of the tables.
    pub async fn connect(self, url: &str) -> Result<PostgresStore, StoreError> {
        let (config, tls) = tls::read(url).map_err(|reason| {
            backend_error(
                "",
                "read the connection string",
                std::path::Path::new("the PostgreSQL database"),
                DatabaseError(reason),
            )
        })?;
        let place = describe(&config);
        let manager = Manager::from_config(
            config.clone(),
            tls.clone(),
            ManagerConfig {
                recycling_method: RecyclingMethod::Fast,
            },
        );
        let pool = Pool::builder(manager)
            .max_size(self.pool_size)
            .build()
            .map_err(|error| backend_error("", "open a connection pool", &place, error))?;
        let inner = Arc::new(Inner {
            pool,
            config,
            tls,
            place,
            owner: owner_id(),
            lease_ms: i64::try_from(self.lease.as_millis()).unwrap_or(i64::MAX),
            releases: Mutex::new(Vec::new()),
            settling: tokio::sync::Mutex::new(()),
            held: AtomicUsize::new(0),
            wake: Arc::new(Notify::new()),
            alive: Mutex::new(None),
        });
        let store = PostgresStore { inner };
        store.set_up().await?;
        let alive = alive::hold(&store.inner).await?;
        *store
            .inner
            .alive
            .lock()
            .unwrap_or_else(PoisonError::into_inner) = Some(alive);
        tokio::spawn(keep_leases(
            Arc::downgrade(&store.inner),
            Arc::clone(&store.inner.wake),
            self.lease / 3,
        ));
        Ok(store)
    }
}

impl PostgresStore {
    /// Makes the tables in one transaction when they are missing; checks their version.
    async fn set_up(&self) -> Result<(), StoreError> {
        let mut client = self.client("").await?;
        let run = async {
            let transaction = client.transaction().await?;
            transaction
                .execute("SELECT pg_advisory_xact_lock($1)", &[&SETUP_LOCK])
                .await?;
            transaction
                .batch_execute(
                    "CREATE TABLE IF NOT EXISTS slateflow_schema (version INTEGER NOT NULL)",
                )
                .await?;
            let mut version: Option<i32> = transaction
                .query_opt("SELECT version FROM slateflow_schema", &[])
                .await?
                .map(|row| row.get(0));
            if version.is_none() {
                transaction.batch_execute(SCHEMA).await?;
                transaction
                    .execute(
                        "INSERT INTO slateflow_schema (version) VALUES ($1)",
                        &[&VERSION],
                    )
                    .await?;
            } else if version == Some(1) {
                transaction.batch_execute(FLOWS_TABLE).await?;
                transaction
                    .execute("UPDATE slateflow_schema SET version = $1", &[&VERSION])
                    .await?;
                version = Some(VERSION);
            }
            transaction.commit().await?;
            Ok::<_, tokio_postgres::Error>(version)
        };
        match run.await {
            Ok(Some(version)) if version != VERSION => Err(StoreError::Corrupt {
                thread: String::new(),
                what: format!(
                    "the slateflow_schema table of `{}`",
                    self.inner.place.display()
                ),
                reason: format!(
                    "it says version {version}; this version of slateflow uses version {VERSION}"
                ),
            }),
            Ok(_) => Ok(()),
            Err(error) => Err(self.backend("", "set up the tables", error)),
        }
    }
}
