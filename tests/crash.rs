//! The crash test: a durable flow (`bin/durable_crash.rs`) is killed with SIGKILL at random
//! instants and started again until it finishes, on the file store and on the SQLite store; each time the final state must be exactly the
//! state an uninterrupted run gives. Its counter uses the `add` reducer, so a step applied twice
//! would show, and it logs every step number, so a step lost or repeated would show too.

use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

const BINARY: &str = env!("CARGO_BIN_EXE_durable-crash");
const STEPS: u64 = 100;

fn expected() -> serde_json::Value {
    serde_json::json!({ "count": STEPS, "seen": (1..=STEPS).collect::<Vec<u64>>() })
}

/// xorshift64, seeded per store: random kill instants, reproducible.
struct Random(u64);

impl Random {
    fn below(&mut self, bound: u64) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0 % bound
    }
}

/// Runs the binary to the end, without killing it, and returns the state it printed.
fn finish(kind: &str, path: &std::path::Path) -> serde_json::Value {
    let output = Command::new(BINARY)
        .args([kind, path.to_str().unwrap(), "crash"])
        .output()
        .unwrap();
    assert!(
        output.status.success(),
        "the resumed run failed: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    serde_json::from_slice(&output.stdout).unwrap()
}

/// `rounds` times: start the thread, kill it at a random instant (sometimes twice), then run it
/// to the end; the state must be the uninterrupted one.
fn survives_kills(kind: &str, rounds: u32, seed: u64) {
    let root = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join(format!("crash-{kind}"));
    // How long a whole run takes here, to aim the kills inside it.
    let _ = std::fs::remove_dir_all(&root);
    let started = Instant::now();
    assert_eq!(finish(kind, &root.join("timing")), expected());
    let whole = u64::try_from(started.elapsed().as_millis())
        .unwrap()
        .max(20);
    let mut random = Random(seed);
    let mut killed_mid_run = 0;
    let mut resumed_with_saved_steps = 0;
    for round in 0..rounds {
        let path = root.join(format!("round-{round}"));
        for _ in 0..=random.below(2) {
            let mut child = Command::new(BINARY)
                .args([kind, path.to_str().unwrap(), "crash"])
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .spawn()
                .unwrap();
            std::thread::sleep(Duration::from_millis(random.below(whole)));
            // `Child::kill` sends SIGKILL on Unix: no destructor, no flush, no goodbye.
            if child.try_wait().unwrap().is_none() {
                child.kill().unwrap();
                killed_mid_run += 1;
            }
            child.wait().unwrap();
        }
        if saved_steps(kind, &path) > 0 {
            resumed_with_saved_steps += 1;
        }
        assert_eq!(
            finish(kind, &path),
            expected(),
            "{kind} store, round {round}"
        );
    }
    assert!(
        killed_mid_run >= rounds / 2,
        "only {killed_mid_run} kills landed before the run ended"
    );
    assert!(
        resumed_with_saved_steps >= rounds / 3,
        "only {resumed_with_saved_steps} rounds resumed a thread with saved steps"
    );
}

/// How many step records the killed run left (the log's lines; a torn last one counts too).
fn saved_steps(kind: &str, path: &std::path::Path) -> usize {
    match kind {
        "file" => std::fs::read_to_string(path.join("crash").join("steps.log"))
            .map_or(0, |log| log.lines().count()),
        "sqlite" => rusqlite::Connection::open(path.join("runs.db"))
            .and_then(|database| {
                database.query_row("SELECT COUNT(*) FROM records", [], |row| row.get(0))
            })
            .unwrap_or(0),
        other => panic!("unknown store kind {other}"),
    }
}

#[test]
fn a_file_store_thread_survives_sigkill_at_random_instants() {
    survives_kills("file", 30, 0x2545_F491_4F6C_DD1D);
}

#[test]
fn a_sqlite_store_thread_survives_sigkill_at_random_instants() {
    survives_kills("sqlite", 30, 0x9E37_79B9_7F4A_7C15);
}
