//! Durable steps: a 100-node chain saving every step to each checkpoint store, against the same
//! chain run in memory, in the same run; and resuming a long thread against resuming a short one.
//!
//! `cargo bench -p slateflow --features sqlite` (without the feature, the SQLite store is left
//! out). Figures are medians in microseconds per step, with the ratio to the in-memory run and,
//! for the file and SQLite stores, to the store's own floor measured in the same run: 100 appends
//! of a line of the same size each followed by `fdatasync` on one open file, and 100 one-row
//! INSERT commits in a WAL database with full sync. File and SQLite steps are dominated by the
//! flush to disk each step makes, so their absolute figures depend on the disk.
//!
//! Resuming reads a thread from its last snapshot: a thread of 100,000 steps should resume as
//! fast, and in as little memory, as one of 100. Both are made by a real run (on the memory
//! store) and copied into each store; the figures are the median time of `resume` and the most
//! heap it held at once, counted by this program's allocator.
// The allocator below that counts the heap in use is `unsafe impl GlobalAlloc`; it only forwards
// to `System`.
#![allow(unsafe_code)]

mod support;

use std::alloc::{GlobalAlloc, Layout, System};
use std::hint::black_box;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::time::Duration;

use slateflow::checkpoint::{CheckpointStore, FileStore, MemoryStore, Records};
use slateflow::durable::Outcome;
use slateflow::flow;
use support::{Counter, Ticks, chain_of_100, median, tick};

/// Counts the heap in use, and the most in use since [`Heap::reset_peak`].
struct Heap;

static IN_USE: AtomicUsize = AtomicUsize::new(0);
static PEAK: AtomicUsize = AtomicUsize::new(0);

impl Heap {
    /// Starts counting the peak from what is in use now; returns that.
    fn reset_peak() -> usize {
        let now = IN_USE.load(Ordering::SeqCst);
        PEAK.store(now, Ordering::SeqCst);
        now
    }

    fn peak() -> usize {
        PEAK.load(Ordering::SeqCst)
    }

    fn grew(bytes: usize) {
        let now = IN_USE.fetch_add(bytes, Ordering::SeqCst) + bytes;
        PEAK.fetch_max(now, Ordering::SeqCst);
    }
}

// SAFETY: every call is forwarded unchanged to the system allocator.
unsafe impl GlobalAlloc for Heap {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        Self::grew(layout.size());
        // SAFETY: same contract as our caller's.
        unsafe { System.alloc(layout) }
    }

    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        Self::grew(layout.size());
        // SAFETY: same contract as our caller's.
        unsafe { System.alloc_zeroed(layout) }
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        if new_size >= layout.size() {
            Self::grew(new_size - layout.size());
        } else {
            IN_USE.fetch_sub(layout.size() - new_size, Ordering::SeqCst);
        }
        // SAFETY: same contract as our caller's.
        unsafe { System.realloc(ptr, layout, new_size) }
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        IN_USE.fetch_sub(layout.size(), Ordering::SeqCst);
        // SAFETY: same contract as our caller's.
        unsafe { System.dealloc(ptr, layout) }
    }
}

#[global_allocator]
static ALLOCATOR: Heap = Heap;

static THREADS: AtomicU64 = AtomicU64::new(0);

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

/// A finished thread of `steps` steps, as a real run saved it, copied into `store` as `thread`.
fn long_thread<St: CheckpointStore>(
    store: &St,
    thread: &str,
    steps: u64,
    runtime: &tokio::runtime::Runtime,
) {
    let flow = flow! { tick - "again" >> tick; }.with_max_steps(steps);
    let memory = MemoryStore::new();
    let durable = flow.durable(memory.clone());
    let mut ticks = Ticks {
        until: steps,
        ..Ticks::default()
    };
    let outcome = runtime.block_on(durable.start(thread, &mut ticks)).unwrap();
    assert_eq!(outcome, Outcome::Finished("done".into()));
    let log = runtime.block_on(memory.load(thread, Records::All)).unwrap();
    let claim = runtime
        .block_on(store.create(thread, &log.state_type, &log.records))
        .unwrap();
    let mut claim = claim;
    runtime
        .block_on(store.set_status(&mut claim, &log.status))
        .unwrap();
}

/// The median time of resuming `thread` (finished: load and rebuild, no step runs) and the most
/// heap a resume held beyond what was in use before it.
fn resume_cost<St: CheckpointStore + 'static>(
    store: St,
    thread: &str,
    runtime: &tokio::runtime::Runtime,
) -> (Duration, usize) {
    let flow = flow! { tick - "again" >> tick; };
    let durable = flow.durable(store);
    let mut peak = 0;
    let time = median(11, || {
        let before = Heap::reset_peak();
        let (ticks, outcome) = runtime.block_on(durable.resume(thread)).unwrap();
        peak = peak.max(Heap::peak().saturating_sub(before));
        assert_eq!(outcome, Outcome::Finished("done".into()));
        assert_eq!(ticks.ticks, ticks.until);
    });
    (time, peak)
}

/// Resuming a 100,000-step thread against a 100-step one, on stores made by `open` (over the
/// same files each time).
fn resume_long_against_short<St: CheckpointStore + 'static>(
    name: &str,
    open: impl Fn() -> St,
    runtime: &tokio::runtime::Runtime,
) {
    let store = open();
    long_thread(&store, "short", 100, runtime);
    long_thread(&store, "long", 100_000, runtime);
    let (short, short_heap) = resume_cost(open(), "short", runtime);
    let (long, long_heap) = resume_cost(store, "long", runtime);
    println!(
        "resume, {name:<12} 100,000 steps {:>8.0} us, {:>6} KB heap   100 steps {:>8.0} us, {:>6} KB heap   time ratio {:.2}x",
        long.as_secs_f64() * 1e6,
        long_heap / 1024,
        short.as_secs_f64() * 1e6,
        short_heap / 1024,
        long.as_secs_f64() / short.as_secs_f64(),
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
    resume_long_against_short(
        "file store",
        || FileStore::open(root.join("resume")).unwrap(),
        &runtime,
    );
    #[cfg(feature = "sqlite")]
    resume_long_against_short(
        "SQLite store",
        || slateflow::checkpoint::SqliteStore::open(root.join("resume.db")).unwrap(),
        &runtime,
    );
    let _ = std::fs::remove_dir_all(&root);
}
