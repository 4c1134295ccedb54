//! Real processes: a durable flow (`bin/durable-crash.rs`) is killed with SIGKILL at random
//! instants and started again until it finishes, on the file, SQLite and PostgreSQL stores; each
//! time the final state must be exactly the state an uninterrupted run gives. Its counter uses the
//! `add` reducer, so a step applied twice would show, and it logs every step number, so a step
//! lost or repeated would show too. The scenarios: a chain of steps; steps that ask questions,
//! answered by key after every restart (a pause skipped, or an answer counted twice, would show),
//! at the top level and from inside a fork's branch or a batch flow's run; a thread stopped by
//! its step limit (a limit that restarted with each resume would show); a concurrent batch flow
//! whose finished runs must be kept, not executed again after a kill; and the same for the items
//! of a kept batch node; and a fork whose merge fails in a buggy build, killed around that
//! failure, then resumed by the fixed build, which must finish the thread (nothing of the failed
//! merge is kept to fail it again); and an agent whose tools have effects, killed during its turns,
//! which must run no tool call that is not repeatable twice and lose no turn. On PostgreSQL (a throw-away server) the chain and the failed
//! merge and the agent are tried, each round a thread of its own in one database, restarted at once after each
//! kill (the killed process's claim is void when its connections close). Then two workers race to resume one thread: one runs it, the
//! other is refused and writes nothing.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::sync::Mutex;
use std::time::{Duration, Instant};

const BINARY: &str = env!("CARGO_BIN_EXE_durable-crash");
const STEPS: u64 = 100;
/// Kill trials per store and scenario: 50 in a soak (`SLATEFLOW_SOAK=1`, as CI runs), else 8.
fn rounds() -> u32 {
    support::soak::trials(50, 8)
}
/// Steps per write of the `chain-batched` scenario (as in the binary).
const BATCHED: usize = 8;
/// Runs of the batch scenario in flight at once (as in the binary).
const BATCH_LIMIT: usize = 4;

fn expected(scenario: &str) -> serde_json::Value {
    let answers: Vec<String> = match scenario {
        "questions" => (1..=10)
            .map(|k| format!("asked:ask@{}", k * 10 + 1))
            .collect(),
        // Round r (from 0) is the fork (steps 2 + 3r and 3 + 3r) and `check`; the branch asks
        // in rounds 9, 19, ...; its part of the fork is 0.
        "branch-questions" => (1..=10)
            .map(|k| format!("asked:inner/ask_in@{}#0", 2 + 3 * (k * 10 - 1)))
            .collect(),
        // Run r (from 0) of the batch is step 3 + r; every tenth run asks.
        "batch-questions" => (1..=10)
            .map(|k| {
                let run = k * 10 - 1;
                format!("asked:batch/ask_in@{}#{run}", 3 + run)
            })
            .collect(),
        _ => Vec::new(),
    };
    let mut state = serde_json::json!({
        "count": STEPS,
        "seen": (1..=STEPS).collect::<Vec<u64>>(),
        "answers": answers,
    });
    if scenario == "conflict" {
        state["winner"] = STEPS.into();
    }
    state
}

/// Helpers shared by test files; each uses part of them.
#[allow(dead_code)]
mod support {
    pub(crate) mod postgres;
    pub(crate) mod random;
    pub(crate) mod soak;
}

use support::postgres;
use support::random::Random;

/// The binary on the store of `kind` at `path`. On PostgreSQL every run of a test shares the
/// test's database, and the thread is named after `path`'s last part (`round-7`), so that each
/// round has a thread of its own.
fn command(kind: &str, path: &Path, scenario: &str) -> Command {
    let mut command = Command::new(BINARY);
    let thread = if kind == "postgres" {
        command.env("SLATEFLOW_CRASH_DATABASE", database_url(&database_of(path)));
        path.file_name().unwrap().to_str().unwrap()
    } else {
        "crash"
    };
    command.args([kind, path.to_str().unwrap(), thread, scenario]);
    command
}

/// The PostgreSQL databases of the tests, by name.
static DATABASES: Mutex<BTreeMap<String, String>> = Mutex::new(BTreeMap::new());

/// Makes the PostgreSQL database of the test whose rounds go under `crash-postgres-<scenario>`;
/// false when the test is skipped (no server could start, and CI does not require one).
fn postgres_database(scenario: &str) -> bool {
    let name = format!("crash-postgres-{scenario}");
    let Some(url) = postgres::database(&name) else {
        return false;
    };
    DATABASES.lock().unwrap().insert(name, url);
    true
}

fn database_url(name: &str) -> String {
    DATABASES.lock().unwrap()[name].clone()
}

/// The PostgreSQL database of a test whose rounds are under `path`'s parent (`crash-postgres-chain`).
fn database_of(path: &Path) -> String {
    path.parent()
        .unwrap()
        .file_name()
        .unwrap()
        .to_str()
        .unwrap()
        .to_string()
}

fn state_of(output: &Output) -> serde_json::Value {
    assert!(
        output.status.success(),
        "the run failed: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    serde_json::from_slice(&output.stdout).unwrap()
}

/// Runs the binary to the end, without killing it, and returns the state it printed.
fn finish(kind: &str, path: &Path, scenario: &str) -> serde_json::Value {
    state_of(&command(kind, path, scenario).output().unwrap())
}

/// Where the kills are aimed: at a random instant below `window` milliseconds after a start.
///
/// It begins at an uninterrupted run's duration, measured once, but a run's duration moves with
/// the machine's load: the test binary's other tests start their own processes on the same
/// cores, so a run measured among them can take several times as long as one measured alone
/// later. A window fixed at the first measure then aims most kills after the run has ended. So it
/// adapts: a fresh run that ends before its kill halves it, and a kill that lands widens it by
/// an eighth, which keeps it near a run's duration as the load changes.
struct Aim {
    window: u64,
}

impl Aim {
    fn instant(&self, random: &mut Random) -> Duration {
        Duration::from_millis(random.below(self.window.max(1)))
    }

    fn landed(&mut self) {
        self.window += self.window / 8;
    }

    fn missed(&mut self) {
        self.window /= 2;
    }
}

/// Fresh starts tried per round before the test gives up on landing a kill in it.
const TRIES: u32 = 8;

/// Starts `command`, kills it after `wait` unless it has ended by then, and says whether the kill
/// landed.
fn start_and_kill(mut command: Command, wait: Duration) -> bool {
    let mut child = command
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    std::thread::sleep(wait);
    // `Child::kill` sends SIGKILL on Unix: no destructor, no flush, no goodbye.
    let running = child.try_wait().unwrap().is_none();
    if running {
        child.kill().unwrap();
    }
    child.wait().unwrap();
    running
}

/// [`rounds`] times: start the thread and kill it at a random instant, then sometimes start it
/// again and kill it again, then run it to the end; the state must be the uninterrupted one.
/// Every round's first kill lands mid-run: a fresh run that ended before it is deleted and tried
/// again with the window narrowed.
fn survives_kills(kind: &str, scenario: &str, seed: u64) {
    let root = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join(format!("crash-{kind}-{scenario}"));
    let _ = std::fs::remove_dir_all(&root);
    // How long a whole run takes here, to aim the first kills inside it.
    let started = Instant::now();
    holds(
        kind,
        scenario,
        &root.join("timing"),
        &finish(kind, &root.join("timing"), scenario),
        "the uninterrupted run",
    );
    let mut aim = Aim {
        window: u64::try_from(started.elapsed().as_millis())
            .unwrap()
            .max(20),
    };
    let mut random = Random(seed);
    let mut resumed_with_saved_steps = 0;
    for round in 0..rounds() {
        let path = root.join(format!("round-{round}"));
        let mut kills = 0;
        for tried in 1.. {
            if start_and_kill(command(kind, &path, scenario), aim.instant(&mut random)) {
                aim.landed();
                kills += 1;
                break;
            }
            aim.missed();
            assert!(
                tried < TRIES,
                "{kind} store, {scenario}, round {round}: {TRIES} fresh runs all ended before \
                 their kill, the last aimed below {} ms",
                aim.window * 2
            );
            forget(kind, &path);
        }
        // A second kill, on the resumed thread, lands only when the rest of the run is long
        // enough; one that does not land says nothing about a whole run's duration.
        if random.below(2) == 1
            && start_and_kill(command(kind, &path, scenario), aim.instant(&mut random))
        {
            kills += 1;
        }
        if saved_records(kind, &path) > 1 {
            resumed_with_saved_steps += 1;
        }
        holds(
            kind,
            scenario,
            &path,
            &finish(kind, &path, scenario),
            &format!("round {round}"),
        );
        if let Some(per_kill) = match scenario {
            "chain" => Some(1),
            "chain-batched" => Some(BATCHED),
            _ => None,
        } {
            // A kill takes back at most the steps not yet written: the one running, with every
            // step written at once; up to a whole write's worth, with batched writes.
            let executed = std::fs::read_to_string(path.join("runs.log"))
                .unwrap()
                .lines()
                .count();
            assert!(
                executed <= usize::try_from(STEPS).unwrap() + kills * per_kill,
                "{kind} store, {scenario}, round {round}: {executed} steps run for {STEPS} with \
                 {kills} kills"
            );
        }
        if matches!(scenario, "batch" | "items") {
            // Each kill loses at most the runs in flight; finished runs were kept, not redone.
            let executed = std::fs::read_to_string(path.join("runs.log"))
                .unwrap()
                .lines()
                .count();
            assert!(
                executed <= usize::try_from(STEPS).unwrap() + kills * BATCH_LIMIT,
                "{kind} store, round {round}: {executed} runs executed for {STEPS} with {kills} \
                 kills: finished runs were executed again"
            );
        }
    }
    assert!(
        resumed_with_saved_steps >= rounds() / 3,
        "only {resumed_with_saved_steps} rounds resumed a thread with saved steps"
    );
}

/// Checks a finished thread of `scenario`: the state an uninterrupted run gives; for `agent`,
/// whose answers depend on where a kill fell, what must hold wherever it fell.
fn holds(kind: &str, scenario: &str, path: &Path, state: &serde_json::Value, round: &str) {
    if scenario == "agent" {
        tool_calls_held(kind, path, state, round);
    } else {
        assert_eq!(
            state,
            &expected(scenario),
            "{kind} store, {scenario}, {round}"
        );
    }
}

/// The `agent` scenario's thread, whatever its kills: ten turns, each answered once from both
/// tools in order; `pay` (not repeatable) ran at most once per key, and the turn that says it was
/// paid ran it exactly once; a payment the model was told may not have happened ran at most once
/// too. `lookup` (repeatable) ran at least once per turn.
fn tool_calls_held(kind: &str, path: &Path, state: &serde_json::Value, round: &str) {
    let context = format!("{kind} store, agent, {round}");
    assert_eq!(state["turns"], 10, "{context}");
    let answers: Vec<&str> = state["messages"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|message| message["role"] == "assistant")
        .map(|message| message["content"].as_str().unwrap())
        .collect();
    assert_eq!(answers.len(), 10, "{context}: {answers:?}");
    let log = std::fs::read_to_string(path.join("runs.log")).unwrap_or_default();
    let calls = |tool: &str, turn: usize| {
        let id = format!("/{}{turn}", &tool[..1]);
        log.lines()
            .filter(|line| line.starts_with(&format!("{tool} ")) && line.ends_with(&id))
            .count()
    };
    for (index, answer) in answers.iter().enumerate() {
        let turn = index + 1;
        let prefix = format!("turn {turn}: lookup done | ");
        assert!(answer.starts_with(&prefix), "{context}: {answer}");
        let paid = &answer[prefix.len()..];
        let pays = calls("pay", turn);
        if paid == "pay done" {
            assert_eq!(pays, 1, "{context}: turn {turn} paid {pays} times");
        } else {
            assert!(
                paid.contains("the call to `pay` may or may not have happened"),
                "{context}: {answer}"
            );
            assert!(pays <= 1, "{context}: turn {turn} paid {pays} times");
        }
        assert!(
            calls("lookup", turn) >= 1,
            "{context}: turn {turn} never looked up; the calls:\n{log}\nthe state: {state}"
        );
    }
}

/// [`rounds`] times: the buggy build of the `conflict` loop runs and is killed at a random instant
/// (before its fork's merge fails in round 50, while it fails, or after: the window is a whole
/// failing run), sometimes twice; then the fixed build resumes the thread and must finish it with
/// the uninterrupted state. A merge that failed keeps nothing of its branches, and outcomes kept
/// by a run killed before it could void them are run again when they conflict.
fn a_failed_merge_never_poisons_its_thread(kind: &str, seed: u64) {
    let root = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join(format!("crash-{kind}-conflict"));
    let _ = std::fs::remove_dir_all(&root);
    let started = Instant::now();
    let failed = command(kind, &root.join("timing"), "conflict-buggy")
        .output()
        .unwrap();
    let window = u64::try_from(started.elapsed().as_millis())
        .unwrap()
        .max(20);
    let stderr = String::from_utf8_lossy(&failed.stderr);
    assert!(
        !failed.status.success()
            && stderr.contains("both wrote the last-write-wins field `winner`"),
        "the buggy build fails on its conflict: {stderr}"
    );
    assert_eq!(
        finish(kind, &root.join("timing"), "conflict"),
        expected("conflict"),
        "the fixed build finishes the failed thread"
    );
    let mut random = Random(seed);
    let mut killed = 0;
    for round in 0..rounds() {
        let path = root.join(format!("round-{round}"));
        for _ in 0..=random.below(2) {
            let wait = Duration::from_millis(random.below(window + window / 4));
            killed += u32::from(start_and_kill(command(kind, &path, "conflict-buggy"), wait));
        }
        assert_eq!(
            finish(kind, &path, "conflict"),
            expected("conflict"),
            "{kind} store, round {round}"
        );
    }
    assert!(
        killed >= rounds() / 2,
        "only {killed} kills landed before the buggy runs ended"
    );
}

/// Removes the thread of a round, to start it afresh.
fn forget(kind: &str, path: &Path) {
    std::fs::remove_dir_all(path).unwrap();
    if kind == "postgres" {
        postgres::sql(
            &database_of(path),
            &format!(
                "DELETE FROM slateflow_threads WHERE id = '{}'",
                path.file_name().unwrap().to_str().unwrap()
            ),
        );
    }
}

/// How many records the killed run left (the log's lines; a torn last one counts too).
fn saved_records(kind: &str, path: &Path) -> usize {
    match kind {
        "file" => std::fs::read_to_string(path.join("crash").join("steps.log"))
            .map_or(0, |log| log.lines().count()),
        "sqlite" => rusqlite::Connection::open(path.join("runs.db"))
            .and_then(|database| {
                database.query_row("SELECT COUNT(*) FROM records", [], |row| row.get(0))
            })
            .unwrap_or(0),
        "postgres" => postgres::sql(
            &database_of(path),
            &format!(
                "SELECT COUNT(*) FROM slateflow_records WHERE thread = '{}'",
                path.file_name().unwrap().to_str().unwrap()
            ),
        )
        .parse()
        .unwrap(),
        other => panic!("unknown store kind {other}"),
    }
}

#[test]
fn a_file_store_chain_survives_sigkill_at_random_instants() {
    survives_kills("file", "chain", 0x2545_F491_4F6C_DD1D);
}

#[test]
fn a_sqlite_store_chain_survives_sigkill_at_random_instants() {
    survives_kills("sqlite", "chain", 0x9E37_79B9_7F4A_7C15);
}

#[test]
fn file_store_questions_are_neither_skipped_nor_answered_twice_under_sigkill() {
    survives_kills("file", "questions", 0x5851_F42D_4C95_7F2D);
}

#[test]
fn sqlite_store_questions_are_neither_skipped_nor_answered_twice_under_sigkill() {
    survives_kills("sqlite", "questions", 0x1405_7B7E_F767_814F);
}

#[test]
fn file_store_questions_inside_fork_branches_are_neither_skipped_nor_answered_twice() {
    survives_kills("file", "branch-questions", 0x7A3D_1F6B_C2E4_9085);
}

#[test]
fn sqlite_store_questions_inside_fork_branches_are_neither_skipped_nor_answered_twice() {
    survives_kills("sqlite", "branch-questions", 0x4B9E_08D1_F36A_2C57);
}

#[test]
fn file_store_questions_inside_batch_runs_are_neither_skipped_nor_answered_twice() {
    survives_kills("file", "batch-questions", 0x19E3_7B4C_A85D_F261);
}

#[test]
fn sqlite_store_questions_inside_batch_runs_are_neither_skipped_nor_answered_twice() {
    survives_kills("sqlite", "batch-questions", 0x6D2B_79F5_0C1A_E843);
}

#[test]
fn a_file_store_batch_keeps_its_finished_runs_across_sigkills() {
    survives_kills("file", "batch", 0x3C6E_F372_FE94_F82B);
}

#[test]
fn a_sqlite_store_batch_keeps_its_finished_runs_across_sigkills() {
    survives_kills("sqlite", "batch", 0xA54F_F53A_5F1D_36F1);
}

#[test]
fn a_file_store_batch_node_keeps_its_finished_items_across_sigkills() {
    survives_kills("file", "items", 0x8F1B_BCDC_BFA5_3E0B);
}

#[test]
fn a_sqlite_store_batch_node_keeps_its_finished_items_across_sigkills() {
    survives_kills("sqlite", "items", 0x2F7D_5A3B_9C0E_41A7);
}

#[test]
fn a_file_store_fork_whose_merge_failed_runs_again_once_fixed_across_sigkills() {
    a_failed_merge_never_poisons_its_thread("file", 0x0C0F_F1C7);
}

#[test]
fn a_sqlite_store_fork_whose_merge_failed_runs_again_once_fixed_across_sigkills() {
    a_failed_merge_never_poisons_its_thread("sqlite", 0x5EED_C0F1);
}

#[test]
fn a_postgres_store_chain_survives_sigkill_at_random_instants() {
    if postgres_database("chain") {
        survives_kills("postgres", "chain", 0x3C6E_F372_FE94_F82B);
    }
}

#[test]
fn a_file_store_chain_written_in_batches_survives_sigkill_at_random_instants() {
    survives_kills("file", "chain-batched", 0x1B87_3593_CC9E_2D51);
}

#[test]
fn a_sqlite_store_chain_written_in_batches_survives_sigkill_at_random_instants() {
    survives_kills("sqlite", "chain-batched", 0x85EB_CA6B_C2B2_AE35);
}

#[test]
fn a_postgres_store_chain_written_in_batches_survives_sigkill_at_random_instants() {
    if postgres_database("chain-batched") {
        survives_kills("postgres", "chain-batched", 0x27D4_EB2F_1656_67C5);
    }
}

#[test]
fn a_postgres_store_fork_whose_merge_failed_runs_again_once_fixed_across_sigkills() {
    if postgres_database("conflict") {
        a_failed_merge_never_poisons_its_thread("postgres", 0xA4_09_38_22);
    }
}

#[test]
fn a_file_store_agent_runs_no_tool_call_twice_across_sigkills() {
    survives_kills("file", "agent", 0x0B5E_55ED_F00D_CAFE);
}

#[test]
fn a_sqlite_store_agent_runs_no_tool_call_twice_across_sigkills() {
    survives_kills("sqlite", "agent", 0x7EA5_E1F0_0D15_EA5E);
}

#[test]
fn a_postgres_store_agent_runs_no_tool_call_twice_across_sigkills() {
    if postgres_database("agent") {
        survives_kills("postgres", "agent", 0x5AFE_CA11_0123_4567);
    }
}

#[test]
fn a_file_store_step_limit_holds_across_sigkills() {
    survives_kills("file", "limit", 0x27BB_2EE6_87B0_B0FD);
}

#[test]
fn a_sqlite_store_step_limit_holds_across_sigkills() {
    survives_kills("sqlite", "limit", 0x6C62_272E_07BB_0142);
}

/// Two workers resume one paused thread at the same instant: one runs it to the end, the other
/// is refused at once (exit 3) and writes nothing: every step is saved once.
fn two_workers_race(kind: &str) {
    let root = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join(format!("race-{kind}"));
    let _ = std::fs::remove_dir_all(&root);
    let mut refused = 0;
    for round in 0..5 {
        let path = root.join(format!("round-{round}"));
        let paused = command(kind, &path, "paused").output().unwrap();
        assert!(
            paused.status.success(),
            "{}",
            String::from_utf8_lossy(&paused.stderr)
        );
        let workers: Vec<_> = (0..2)
            .map(|_| {
                command(kind, &path, "chain")
                    .stdout(Stdio::piped())
                    .stderr(Stdio::piped())
                    .spawn()
                    .unwrap()
            })
            .collect();
        for worker in workers {
            let output = worker.wait_with_output().unwrap();
            if output.status.code() == Some(3) {
                refused += 1;
                assert!(output.stdout.is_empty());
            } else {
                // The pause answered once, by the worker that got the thread.
                let mut expected = expected("chain");
                expected["answers"] = serde_json::json!(["after:begin@1"]);
                assert_eq!(state_of(&output), expected, "{kind}, round {round}");
            }
        }
        // Each step saved once: the start, `begin`, and the ticks, in order.
        let steps = saved_steps(kind, &path);
        assert_eq!(
            steps,
            (0..=STEPS + 1).collect::<Vec<_>>(),
            "{kind}, round {round}"
        );
    }
    assert!(
        refused >= 3,
        "the workers overlapped in only {refused} of 5 races"
    );
}

/// The step numbers of the start and step records, in the order they were saved.
fn saved_steps(kind: &str, path: &Path) -> Vec<u64> {
    let bodies: Vec<String> = if kind == "file" {
        std::fs::read_to_string(path.join("crash").join("steps.log"))
            .unwrap()
            .lines()
            .map(|line| line[11..].to_string())
            .collect()
    } else {
        let database = rusqlite::Connection::open(path.join("runs.db")).unwrap();
        let mut statement = database
            .prepare("SELECT body FROM records ORDER BY seq")
            .unwrap();
        statement
            .query_map([], |row| row.get(0))
            .unwrap()
            .collect::<Result<_, _>>()
            .unwrap()
    };
    bodies
        .iter()
        .map(|body| serde_json::from_str::<serde_json::Value>(body).unwrap())
        .filter(|record| record["kind"] == "start" || record["kind"] == "step")
        .map(|record| record["step"].as_u64().unwrap())
        .collect()
}

#[test]
fn two_workers_on_one_file_store_thread_never_both_write() {
    two_workers_race("file");
}

#[test]
fn two_workers_on_one_sqlite_thread_never_both_write() {
    two_workers_race("sqlite");
}
