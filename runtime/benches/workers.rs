//! Durable steps per second with 1, 2 and 4 workers sharing one PostgreSQL database, against the
//! SQLite store in the same run, with each durability mode: every step written before the next
//! (the default) and steps written 16 at a time (`Durability::batched(16)`).
//!
//! `cargo bench -p slateflow --features postgres,sqlite --bench workers` starts a throw-away
//! PostgreSQL server that flushes every commit (Debian's `postgresql` package must be installed;
//! see `tests/support/postgres.rs`). Each round submits 32 threads of the 100-node no-op chain
//! and runs them: with the SQLite store, one after another in one process (SQLite has one
//! writer); with PostgreSQL, by 1, 2 or 4 workers, each on a thread of its own with its own
//! connection pool, as separate processes would be, running up to 8 threads at once. The time
//! runs from the workers' start to the last saved record. Figures are steps per second and the
//! ratio to SQLite writing every step; all are bound by the disk's flushes, so only the ratios
//! carry over to another machine.

#[allow(dead_code, unreachable_pub)]
#[path = "../../tests/support/postgres.rs"]
mod postgres;
mod support;

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use postgres::runtime;
use slateflow::checkpoint::{CheckpointStore, PostgresStore, SqliteStore};
use slateflow::durable::Durability;
use slateflow::worker::Worker;
use support::{Counter, chain_of_100};

/// Threads per round, and steps per thread.
const THREADS: u32 = 32;
const STEPS: u32 = 100;

/// Steps per second of the SQLite store, one thread after another.
fn sqlite(durability: Durability) -> f64 {
    let root = std::env::temp_dir().join(format!("slateflow-bench-workers-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&root);
    std::fs::create_dir_all(&root).unwrap();
    let chain = chain_of_100();
    let durable = chain
        .durable(SqliteStore::open(root.join("runs.db")).unwrap())
        .durability(durability);
    let runtime = runtime();
    let start = Instant::now();
    for thread in 0..THREADS {
        let mut counter = Counter::default();
        runtime
            .block_on(durable.start(&format!("t{thread}"), &mut counter))
            .unwrap();
        assert_eq!(counter.steps, STEPS);
    }
    let elapsed = start.elapsed();
    let _ = std::fs::remove_dir_all(&root);
    rate(elapsed)
}

/// Steps per second of `workers` workers on a fresh database.
fn postgres(workers: usize, durability: Durability) -> f64 {
    let url =
        postgres::durable_database(&format!("bench-{}-{workers}", durability_name(durability)))
            .expect("the workers benchmark needs PostgreSQL");
    let runtime = runtime();
    let store = runtime.block_on(PostgresStore::connect(&url)).unwrap();
    let chain = chain_of_100();
    let durable = chain.durable(store.clone()).named("chain");
    for thread in 0..THREADS {
        runtime
            .block_on(durable.submit(&format!("t{thread}"), &Counter::default()))
            .unwrap();
    }
    let done = Arc::new(AtomicBool::new(false));
    let start = Instant::now();
    let started_ms = slateflow::checkpoint::now_ms();
    let handles: Vec<_> = (0..workers)
        .map(|_| {
            let (url, done) = (url.clone(), Arc::clone(&done));
            std::thread::spawn(move || work(&url, &done, durability))
        })
        .collect();
    // Waits for every thread to finish, then reads when the last record was saved.
    let last_ms = runtime.block_on(async {
        loop {
            let threads = store.threads().await.unwrap();
            if threads.iter().all(|thread| {
                matches!(
                    thread.status,
                    slateflow::checkpoint::RunStatus::Finished { .. }
                )
            }) {
                break threads
                    .iter()
                    .map(|thread| thread.updated_at_ms)
                    .max()
                    .unwrap();
            }
            if let Some(failed) = threads.iter().find(|thread| {
                matches!(
                    thread.status,
                    slateflow::checkpoint::RunStatus::Failed { .. }
                )
            }) {
                panic!("a run failed: {failed:?}");
            }
            assert!(
                start.elapsed() < Duration::from_secs(600),
                "the workers never finished"
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    });
    done.store(true, Ordering::SeqCst);
    for handle in handles {
        handle.join().unwrap();
    }
    rate(Duration::from_millis(last_ms.saturating_sub(started_ms)))
}

/// One worker, until `done`.
fn work(url: &str, done: &AtomicBool, durability: Durability) {
    let runtime = runtime();
    runtime.block_on(async {
        let store = PostgresStore::connect(url).await.unwrap();
        let chain = chain_of_100();
        let report = Worker::new(store.clone())
            .flow(
                chain
                    .durable(store.clone())
                    .named("chain")
                    .durability(durability),
            )
            .concurrency(8)
            .poll(Duration::from_millis(50))
            .run(async {
                while !done.load(Ordering::SeqCst) {
                    tokio::time::sleep(Duration::from_millis(5)).await;
                }
            })
            .await
            .unwrap();
        assert!(report.failed.is_empty(), "{report:?}");
    });
}

fn rate(elapsed: Duration) -> f64 {
    f64::from(THREADS * STEPS) / elapsed.as_secs_f64()
}

fn main() {
    // `cargo test --benches` runs this once as a smoke test; the figures need `cargo bench`.
    if !std::env::args().any(|argument| argument == "--bench") {
        println!(
            "workers benchmark: run `cargo bench -p slateflow --features postgres,sqlite --bench \
             workers` for figures"
        );
        return;
    }
    let mut baseline = None;
    for durability in [Durability::EveryStep, Durability::batched(16)] {
        let name = durability_name(durability);
        let sqlite = sqlite(durability);
        let baseline = *baseline.get_or_insert(sqlite);
        println!(
            "{name:<11} SQLite store, one process              {sqlite:>9.0} steps/s   {:.2}x",
            sqlite / baseline
        );
        for workers in [1, 2, 4] {
            let steps = postgres(workers, durability);
            println!(
                "{name:<11} PostgreSQL, {workers} worker{} (8 runs each)   {steps:>9.0} steps/s   \
                 {:.2}x",
                if workers == 1 { " " } else { "s" },
                steps / baseline
            );
        }
    }
}

fn durability_name(durability: Durability) -> &'static str {
    match durability {
        Durability::EveryStep => "every-step",
        _ => "batched-16",
    }
}
