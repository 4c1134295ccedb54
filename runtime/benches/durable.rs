//! Durable steps: a 100-node chain saving every step to each checkpoint store, against the same
//! chain run in memory, in the same run.
//!
//! `cargo bench -p slateflow --features sqlite` (without the feature, the SQLite store is left
//! out). Figures are medians in microseconds per step, with the ratio to the in-memory run and,
//! for the file and SQLite stores, to the store's own floor measured in the same run: 100 appends
//! of a line of the same size each followed by `fdatasync` on one open file, and 100 one-row
//! INSERT commits in a WAL database with full sync. File and SQLite steps are dominated by the
//! flush to disk each step makes, so their absolute figures depend on the disk.

mod support;

use std::hint::black_box;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use slateflow::checkpoint::{CheckpointStore, FileStore, MemoryStore};
use support::{Counter, chain_of_100};

static THREADS: AtomicU64 = AtomicU64::new(0);

/// The median time of one call of `run`, over `samples` calls.
fn median(samples: usize, mut run: impl FnMut()) -> Duration {
    let mut times: Vec<Duration> = (0..samples)
        .map(|_| {
            let start = Instant::now();
            run();
            start.elapsed()
        })
        .collect();
    times.sort();
    times[samples / 2]
}

fn per_step(time: Duration) -> f64 {
    time.as_secs_f64() * 1e6 / 100.0
}

fn durable_chain<St: CheckpointStore + 'static>(
    name: &str,
    store: St,
    samples: usize,
    runtime: &tokio::runtime::Runtime,
    in_memory: Duration,
    floor: Option<Duration>,
) {
    let chain = chain_of_100();
    let durable = chain.durable(store);
    let time = median(samples, || {
        let thread = format!("bench-{}", THREADS.fetch_add(1, Ordering::Relaxed));
        let mut counter = Counter::default();
        black_box(
            runtime
                .block_on(durable.start(&thread, &mut counter))
                .unwrap(),
        );
        assert_eq!(counter.steps, 100);
    });
    println!(
        "{name:<34} {:>10.2} us/step   in memory {:>8.3} us/step   ratio {:>8.0}x",
        per_step(time),
        per_step(in_memory),
        time.as_secs_f64() / in_memory.as_secs_f64()
    );
    if let Some(floor) = floor {
        println!(
            "{:<34} {:>10.2} us/step   durable step / floor {:>6.2}x",
            "  the store's floor",
            per_step(floor),
            time.as_secs_f64() / floor.as_secs_f64()
        );
    }
}

/// 100 appends of a 200-byte line to one open file, each flushed with `fdatasync`.
fn file_floor(root: &std::path::Path, samples: usize) -> Duration {
    use std::io::Write;
    std::fs::create_dir_all(root).unwrap();
    let line = [b'x'; 200];
    let mut round = 0;
    median(samples, || {
        round += 1;
        let mut file = std::fs::File::create(root.join(format!("floor-{round}"))).unwrap();
        for _ in 0..100 {
            file.write_all(&line).unwrap();
            file.sync_data().unwrap();
        }
    })
}

/// 100 one-row INSERTs, each its own commit, in a WAL database with full sync.
#[cfg(feature = "sqlite")]
fn sqlite_floor(root: &std::path::Path, samples: usize) -> Duration {
    let connection = rusqlite::Connection::open(root.join("floor.db")).unwrap();
    connection
        .execute_batch(
            "PRAGMA journal_mode = WAL; PRAGMA synchronous = FULL;
             CREATE TABLE rows (id INTEGER PRIMARY KEY, body TEXT NOT NULL);",
        )
        .unwrap();
    let body = "x".repeat(200);
    median(samples, || {
        for _ in 0..100 {
            connection
                .prepare_cached("INSERT INTO rows (body) VALUES (?1)")
                .unwrap()
                .execute([&body])
                .unwrap();
        }
    })
}

fn main() {
    // `cargo test --benches` runs this once as a smoke test; the figures need `cargo bench`.
    if !std::env::args().any(|argument| argument == "--bench") {
        println!(
            "durable benchmarks: run `cargo bench -p slateflow --features sqlite` for figures"
        );
        return;
    }
    let runtime = tokio::runtime::Builder::new_current_thread()
        .build()
        .unwrap();
    let chain = chain_of_100();
    let in_memory = median(101, || {
        let mut counter = Counter::default();
        black_box(runtime.block_on(chain.run(&mut counter)).unwrap());
    });
    let root = std::env::temp_dir().join(format!("slateflow-bench-{}", std::process::id()));
    durable_chain(
        "100-node chain, memory store",
        MemoryStore::new(),
        51,
        &runtime,
        in_memory,
        None,
    );
    let floor = file_floor(&root.join("floor"), 5);
    durable_chain(
        "100-node chain, file store",
        FileStore::open(root.join("files")).unwrap(),
        5,
        &runtime,
        in_memory,
        Some(floor),
    );
    #[cfg(feature = "sqlite")]
    {
        std::fs::create_dir_all(&root).unwrap();
        let store = slateflow::checkpoint::SqliteStore::open(root.join("runs.db")).unwrap();
        let floor = sqlite_floor(&root, 5);
        durable_chain(
            "100-node chain, SQLite store",
            store,
            5,
            &runtime,
            in_memory,
            Some(floor),
        );
    }
    let _ = std::fs::remove_dir_all(&root);
}
