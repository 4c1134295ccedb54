//! For behaviour tests of failures and resumes: how many times each node ran, and which nodes
//! fail, keyed by text; the params that name a test, and a blocking runner with timers. The tests of one file run in parallel in one process, so each keys by its
//! own name (`"test/node"`).

use std::collections::HashMap;
use std::sync::Mutex;

static RUNS: Mutex<Option<HashMap<String, u32>>> = Mutex::new(None);
static FAILING: Mutex<Vec<String>> = Mutex::new(Vec::new());

/// Counts a run of `key`; an error while `key` is set to fail.
pub(crate) fn count(key: &str) -> Result<(), String> {
    *RUNS
        .lock()
        .unwrap()
        .get_or_insert_with(HashMap::new)
        .entry(key.to_string())
        .or_default() += 1;
    if failing(key) {
        Err(format!("{key} is failing"))
    } else {
        Ok(())
    }
}

/// How many times `key` ran.
pub(crate) fn ran(key: &str) -> u32 {
    RUNS.lock()
        .unwrap()
        .as_ref()
        .and_then(|runs| runs.get(key).copied())
        .unwrap_or(0)
}

/// Makes `key` fail until it is healed.
pub(crate) fn fail(key: &str) {
    FAILING.lock().unwrap().push(key.to_string());
}

/// Makes `key` succeed again.
pub(crate) fn heal(key: &str) {
    FAILING.lock().unwrap().retain(|failing| failing != key);
}

/// Whether `key` is set to fail.
pub(crate) fn failing(key: &str) -> bool {
    FAILING.lock().unwrap().iter().any(|failing| failing == key)
}

/// Params naming the test `test`, for nodes that key their runs by it.
pub(crate) fn params(test: &str) -> slateflow::Params {
    slateflow::Params::new().with("test", test)
}

/// Runs `future` to its end on a current-thread runtime with timers.
pub(crate) fn block_on<F: std::future::Future>(future: F) -> F::Output {
    tokio::runtime::Builder::new_current_thread()
        .enable_time()
        .build()
        .unwrap()
        .block_on(future)
}

/// Runs `node` alone, as a flow of one node that borrows it (so the test can read it after).
pub(crate) async fn alone<S, N>(node: &N, state: &mut S) -> Result<&'static str, slateflow::Error>
where
    S: slateflow::SharedState,
    N: slateflow::Node<S>,
{
    slateflow::flow! { node; }.run(state).await
}

/// [`alone`], blocking.
pub(crate) fn alone_blocking<S, N>(
    node: &N,
    state: &mut S,
) -> Result<&'static str, slateflow::Error>
where
    S: slateflow::SharedState,
    N: slateflow::Node<S>,
{
    slateflow::flow! { node; }.run_blocking(state)
}
