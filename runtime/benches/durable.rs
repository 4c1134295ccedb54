//! Durable steps: a 100-node chain saving every step to each checkpoint store, against the same
//! chain run in memory, in the same run.
//!
//! `cargo bench -p slateflow --features sqlite` (without the feature, the SQLite store is left
//! out). Figures are medians in microseconds per step, with the ratio to the in-memory run; file
//! and SQLite steps are dominated by the flush to disk each step makes, so they depend on the disk.

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
    );
    durable_chain(
        "100-node chain, file store",
        FileStore::open(root.join("files")).unwrap(),
        5,
        &runtime,
        in_memory,
    );
    #[cfg(feature = "sqlite")]
    {
        std::fs::create_dir_all(&root).unwrap();
        let store = slateflow::checkpoint::SqliteStore::open(root.join("runs.db")).unwrap();
        durable_chain(
            "100-node chain, SQLite store",
            store,
            5,
            &runtime,
            in_memory,
        );
    }
    let _ = std::fs::remove_dir_all(&root);
}
