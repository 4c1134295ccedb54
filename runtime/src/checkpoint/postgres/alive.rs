//! How a store shows it is alive, so that a killed process's threads are taken over at once
//! rather than when its leases lapse.
//!
//! Each store holds a session-level advisory lock named after its owner id, on a connection of
//! its own, from before its first claim for as long as it lives. PostgreSQL frees a session's
//! locks when its connection ends, and a killed process's connections end with it (the kernel
//! closes its sockets). So an owner whose lock can be taken is gone: its claims are void, whatever
//! their lease says. A process that hangs keeps its connection and its lock, and is then found out
//! by its lease, which it no longer renews.

use std::sync::PoisonError;

use tokio_postgres::Client;

use super::{Inner, backend_error};
use crate::checkpoint::StoreError;
use crate::checkpoint::postgres::queue::CHANNEL;

/// The lock's key for `owner`, in SQL: a 64-bit hash of the owner id, seeded apart from other
/// applications' advisory locks.
macro_rules! owner_key {
    ($owner:literal) => {
        concat!("hashtextextended(", $owner, ", 7597540947506389605)")
    };
}

/// True, in SQL, when the row's `owner` holds no live store: its lock can be taken (for the
/// rest of the transaction, harmlessly: no live store asks for a gone owner's lock).
macro_rules! owner_gone {
    () => {
        concat!("pg_try_advisory_xact_lock(", owner_key!("owner"), ")")
    };
}
pub(super) use {owner_gone, owner_key};

/// Opens the store's own connection and takes its owner's lock, before any claim is made.
pub(super) async fn hold(inner: &Inner) -> Result<Client, StoreError> {
    let failed = |error| backend_error("", "hold the store's liveness lock", &inner.place, error);
    let client = inner.connect_one().await.map_err(failed)?;
    client
        .execute(
            concat!("SELECT pg_advisory_lock(", owner_key!("$1"), ")"),
            &[&inner.owner],
        )
        .await
        .map_err(failed)?;
    Ok(client)
}

/// Holds the lock again when its connection was lost (the server restarted, the network failed):
/// meanwhile this store's threads could be taken over, and its writes to them are refused.
pub(super) async fn keep(inner: &Inner) {
    let lost = inner
        .alive
        .lock()
        .unwrap_or_else(PoisonError::into_inner)
        .as_ref()
        .is_none_or(Client::is_closed);
    if lost && let Ok(client) = hold(inner).await {
        *inner.alive.lock().unwrap_or_else(PoisonError::into_inner) = Some(client);
    }
}

/// Frees the claims of the owners that are gone (another store's process died): their threads
/// that were running become runnable, and the workers are woken. Returns how many threads were
/// made runnable.
pub(super) async fn reap(inner: &Inner) -> Result<u64, StoreError> {
    const ACTION: &str = "free the claims of dead workers";
    let client = inner
        .pool
        .get()
        .await
        .map_err(|error| backend_error("", ACTION, &inner.place, error))?;
    let failed = |error: tokio_postgres::Error| backend_error("", ACTION, &inner.place, error);
    let statement = client
        .prepare_cached(concat!(
            "WITH gone AS (
                 SELECT owner FROM (SELECT DISTINCT owner FROM slateflow_threads
                                    WHERE owner IS NOT NULL AND owner <> $1) AS owners
                 WHERE ",
            owner_gone!(),
            "),
             freed AS (
                 UPDATE slateflow_threads AS t SET owner = NULL, lease_until = NULL
                 FROM gone WHERE t.owner = gone.owner
                 RETURNING t.id, t.phase)
             SELECT COUNT(pg_notify($2, id)::TEXT) FROM freed
             WHERE phase IN ('queued', 'running')"
        ))
        .await
        .map_err(failed)?;
    let row = client
        .query_one(&statement, &[&inner.owner, &CHANNEL])
        .await
        .map_err(failed)?;
    Ok(u64::try_from(row.get::<_, i64>(0)).unwrap_or(0))
}
