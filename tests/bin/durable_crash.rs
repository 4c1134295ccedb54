//! A durable flow for the crash test (`tests/crash.rs`), which kills this process with SIGKILL
//! at random instants and runs it again until the thread finishes.
//!
//! `durable-crash <file|sqlite> <store path> <thread>`: starts the thread, or resumes it when it
//! exists, and prints the final state as JSON. Each step adds 1 to an `add`-reducer counter and
//! appends its number: a step applied twice or skipped would show.

use serde::{Deserialize, Serialize};
use slateflow::checkpoint::{CheckpointStore, FileStore, SqliteStore};
use slateflow::durable::Outcome;
use slateflow::{Command, SharedState, flow, node};

/// Steps in a whole run.
const STEPS: u64 = 100;

#[derive(SharedState, Clone, Debug, Default, Serialize, Deserialize)]
struct Counter {
    #[reducer(add)]
    count: u64,
    #[reducer(append)]
    seen: Vec<u64>,
}

/// One step of work: a millisecond, so that kills land mid-run.
#[node(actions = ["again", "done"])]
fn tick(counter: &Counter) -> Command<Counter> {
    std::thread::sleep(std::time::Duration::from_millis(1));
    let next = counter.count + 1;
    let action = if next < STEPS { "again" } else { "done" };
    Command::new(Counter::update().add_count(1).push_seen(next)).with_action(action)
}

async fn run<St: CheckpointStore + 'static>(store: St, thread: &str) -> Counter {
    let flow = flow! { tick - "again" >> tick; };
    let durable = flow.durable(store).snapshot_every(10);
    let exists = durable
        .threads()
        .await
        .unwrap()
        .iter()
        .any(|info| info.id == thread);
    let (state, outcome) = if exists {
        durable.resume(thread).await.unwrap()
    } else {
        let mut state = Counter::default();
        let outcome = durable.start(thread, &mut state).await.unwrap();
        (state, outcome)
    };
    assert_eq!(outcome, Outcome::Finished("done".into()));
    state
}

fn main() {
    let arguments: Vec<String> = std::env::args().collect();
    let [_, kind, path, thread] = arguments.as_slice() else {
        panic!("usage: durable-crash <file|sqlite> <store path> <thread>");
    };
    let runtime = tokio::runtime::Builder::new_current_thread()
        .build()
        .unwrap();
    let state = runtime.block_on(async {
        match kind.as_str() {
            "file" => run(FileStore::open(path).unwrap(), thread).await,
            "sqlite" => {
                std::fs::create_dir_all(path).unwrap();
                let database = std::path::Path::new(path).join("runs.db");
                run(SqliteStore::open(database).unwrap(), thread).await
            }
            other => panic!("unknown store kind {other}"),
        }
    });
    println!("{}", serde_json::to_string(&state).unwrap());
}
