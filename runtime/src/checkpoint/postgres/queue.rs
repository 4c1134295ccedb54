//! PostgreSQL's work queue (feature `postgres`): how workers take runnable threads, how a claim
//! given up or lapsed makes its thread runnable again (and wakes the workers), how leases are
//! renewed, and how a thread is cancelled from anywhere. The store itself, records and claims,
//! is the parent module's.

use std::sync::atomic::Ordering;
use std::sync::{Arc, PoisonError, Weak};
use std::time::Duration;

use tokio::sync::Notify;

use super::{Inner, PostgresClaim, PostgresStore, alive, backend_error, owner_gone, owner_key};
use crate::checkpoint::{RunStatus, StoreError, check_thread_id, now_ms, status_json, to_i64};

/// The channel workers listen on: a thread id is sent when it becomes runnable.
pub(crate) const CHANNEL: &str = "slateflow_runnable";

/// What a worker took: a runnable thread, its flow's name, and the claim.
///
/// ```no_run
/// use slateflow::checkpoint::{CheckpointStore, PostgresStore};
/// # async fn example() -> Result<(), slateflow::checkpoint::StoreError> {
/// let store = PostgresStore::connect("postgres://postgres@127.0.0.1/postgres").await?;
/// // What a worker does: take a runnable thread of a flow it knows, claimed.
/// if let Some(taken) = store.take_runnable(&["refunds"]).await? {
///     println!("{} ({}): resume it under {:?}", taken.thread, taken.flow, taken.claim);
/// }
/// # Ok(()) }
/// ```
#[derive(Debug)]
pub struct Taken {
    /// The thread's id.
    pub thread: String,
    /// The flow it was submitted for.
    pub flow: String,
    /// The claim, leased to the store that took it.
    pub claim: PostgresClaim,
}

impl PostgresStore {
    /// Gives up the claims dropped since the last call, in the table.
    pub(crate) async fn settle(&self) -> Result<(), StoreError> {
        settle(&self.inner).await
    }

    /// Takes the longest-waiting runnable thread of one of `flows`: one submitted or answered
    /// ([`RunStatus::Queued`]), or one whose run stopped without ending (its claim given up or its
    /// lease lapsed). `SELECT ... FOR UPDATE SKIP LOCKED`, so workers never wait on each other or
    /// take the same thread. `None` when there is none.
    ///
    /// # Errors
    /// The database's error.
    pub async fn take_runnable(&self, flows: &[&str]) -> Result<Option<Taken>, StoreError> {
        self.settle().await?;
        let client = self.client("").await?;
        let row = async {
            let statement = client
                .prepare_cached(concat!(
                    "UPDATE slateflow_threads AS t
                     SET claim = t.claim + 1, owner = $2,
                         lease_until = now() + $3::BIGINT * INTERVAL '1 millisecond'
                     FROM (SELECT id FROM slateflow_threads
                           WHERE flow = ANY($1) AND phase IN ('queued', 'running')
                             AND (owner IS NULL OR lease_until < now() OR ",
                    owner_gone!(),
                    ")
                           ORDER BY updated_ms LIMIT 1
                           FOR UPDATE SKIP LOCKED) AS next
                     WHERE t.id = next.id
                     RETURNING t.id, t.flow, t.claim, t.last_step",
                ))
                .await?;
            client
                .query_opt(
                    &statement,
                    &[&flows, &self.inner.owner, &self.inner.lease_ms],
                )
                .await
        }
        .await
        .map_err(|error| self.backend("", "take a runnable thread", error))?;
        Ok(row.map(|row| {
            let thread: String = row.get(0);
            let claim = PostgresClaim::new(&self.inner, &thread, row.get(2), row.get(3));
            Taken {
                thread,
                flow: row.get(1),
                claim,
            }
        }))
    }

    /// Frees the claims of stores whose process died (their liveness lock is free): the threads
    /// they were running become runnable at once, not when their leases lapse, and the workers
    /// are woken. Returns how many threads were made runnable.
    pub(crate) async fn reap(&self) -> Result<u64, StoreError> {
        alive::reap(&self.inner).await
    }

    /// Cancels a thread ([`CheckpointStore::cancel`](crate::checkpoint::CheckpointStore::cancel)):
    /// its claim number moves on, so a worker running it is refused at its next write, and its
    /// phase becomes `cancelled`, so no worker takes it again.
    pub(super) async fn cancel_thread(&self, thread: &str) -> Result<(), StoreError> {
        check_thread_id(thread)?;
        let status = status_json(&RunStatus::Cancelled);
        let client = self.client(thread).await?;
        let changed = client
            .execute(
                "UPDATE slateflow_threads
                 SET status = $2, phase = 'cancelled', claim = claim + 1, owner = NULL,
                     lease_until = NULL, updated_ms = $3
                 WHERE id = $1",
                &[&thread, &status, &to_i64(now_ms())],
            )
            .await
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

/// Renews this store's leases every `every`, and gives up dropped claims as soon as they are
/// dropped; ends with the store.
pub(super) async fn keep_leases(inner: Weak<Inner>, wake: Arc<Notify>, every: Duration) {
    while let Some(inner) = inner.upgrade() {
        // Errors are left for the calls that need the database to report: a lease that cannot
        // be renewed lapses, and the fencing refuses this store's late writes.
        let _ = settle(&inner).await;
        alive::keep(&inner).await;
        if inner.held.load(Ordering::Relaxed) > 0
            && let Ok(client) = inner.pool.get().await
        {
            let _ = client
                .execute(
                    "UPDATE slateflow_threads
                     SET lease_until = now() + $2::BIGINT * INTERVAL '1 millisecond'
                     WHERE owner = $1",
                    &[&inner.owner, &inner.lease_ms],
                )
                .await;
        }
        drop(inner);
        tokio::select! {
            () = wake.notified() => {}
            () = tokio::time::sleep(every) => {}
        }
    }
}

/// Gives up the claims dropped since the last call; a thread left running becomes runnable, and
/// the workers are woken.
pub(super) async fn settle(inner: &Inner) -> Result<(), StoreError> {
    let _settling = inner.settling.lock().await;
    let next = || {
        inner
            .releases
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .last()
            .cloned()
    };
    if next().is_none() {
        return Ok(());
    }
    let client = inner
        .pool
        .get()
        .await
        .map_err(|error| backend_error("", "connect to the database", &inner.place, error))?;
    let statement = client
        .prepare_cached(
            "WITH released AS (
                 UPDATE slateflow_threads SET owner = NULL, lease_until = NULL
                 WHERE id = $1 AND claim = $2 AND owner = $3
                 RETURNING id, phase)
             SELECT pg_notify($4, id)::TEXT FROM released WHERE phase IN ('queued', 'running')",
        )
        .await
        .map_err(|error| backend_error("", "give up a claim", &inner.place, error))?;
    while let Some((thread, number)) = next() {
        client
            .query(&statement, &[&thread, &number, &inner.owner, &CHANNEL])
            .await
            .map_err(|error| backend_error(&thread, "give up the claim", &inner.place, error))?;
        inner
            .releases
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .retain(|release| *release != (thread.clone(), number));
    }
    Ok(())
}
