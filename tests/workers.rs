//! Many workers on one real PostgreSQL database (started by the test setup): worker processes
//! (`bin/pg_worker.rs`) killed with SIGKILL at random and started again must finish every thread
//! with exactly the state of an uninterrupted run, no step applied twice and no thread lost; a
//! pause answered from another process is run on by a worker; a worker shutting down gives its
//! unfinished threads up at once; an idle worker is woken by a submission; a worker runs up to its
//! concurrency limit at once; a worker puts back the state's unsaved fields before each run; a
//! cancelled thread is never run again; a worker set up wrong says so. A killed worker's threads
//! are run on by another within a second, whatever the lease; a hung one's when its lease lapses.

use std::process::{Child, Command, Output, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU32, Ordering};
use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};
use slateflow::checkpoint::{PostgresStore, RunStatus};
use slateflow::durable::Durable;
use slateflow::worker::Worker;
use slateflow::{Error, NodeError, SharedState, flow, node};

/// Helpers shared by test files; each uses part of them.
#[allow(dead_code)]
mod support {
    pub(crate) mod postgres;
    pub(crate) mod random;
    pub(crate) mod soak;
}

use support::postgres::{database, runtime, sql};
use support::random::Random;

const BINARY: &str = env!("CARGO_BIN_EXE_pg-worker");
/// Threads of the kill test, and the steps of each.
const THREADS: usize = 200;
const STEPS: u64 = 20;
/// Workers kept running, and the kills.
const WORKERS: usize = 4;
const KILLS: u32 = 12;

fn client(arguments: &[&str]) -> Output {
    let output = Command::new(BINARY).args(arguments).output().unwrap();
    assert!(
        output.status.success(),
        "pg-worker {arguments:?} failed: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    output
}

fn start_worker(url: &str) -> Child {
    Command::new(BINARY)
        .args(["work", url, "8"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap()
}

/// Closes the worker's input (its shutdown signal) and reads its report.
fn stop_worker(mut worker: Child) -> serde_json::Value {
    drop(worker.stdin.take());
    let output = worker.wait_with_output().unwrap();
    assert!(
        output.status.success(),
        "a worker failed: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    serde_json::from_slice(&output.stdout).unwrap()
}

fn count_in(name: &str, phase: &str) -> usize {
    sql(
        name,
        &format!("SELECT COUNT(*) FROM slateflow_threads WHERE phase = '{phase}'"),
    )
    .parse()
    .unwrap()
}

/// Waits until `count` threads of database `name` are in `phase`.
fn wait_for(name: &str, phase: &str, count: usize) {
    let deadline = Instant::now() + Duration::from_secs(120);
    while count_in(name, phase) < count {
        assert!(Instant::now() < deadline, "threads never reached `{phase}`");
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// Every thread of the database, as `pg-worker report` prints it.
fn report(url: &str) -> Vec<serde_json::Value> {
    let output = client(&["report", url]);
    String::from_utf8(output.stdout)
        .unwrap()
        .lines()
        .map(|line| serde_json::from_str(line).unwrap())
        .collect()
}

#[test]
fn four_workers_killed_at_random_finish_every_thread_exactly_once() {
    let Some(url) = database("kills") else {
        return;
    };
    client(&["submit", &url, "count", &THREADS.to_string()]);
    let mut workers: Vec<(Child, Instant)> = (0..WORKERS)
        .map(|_| (start_worker(&url), Instant::now()))
        .collect();
    let mut random = Random(0x9E37_79B9_7F4A_7C15);
    let mut kills = 0;
    let started = Instant::now();
    let deadline = started + Duration::from_secs(240);
    while count_in("kills", "finished") < THREADS {
        assert!(Instant::now() < deadline, "the threads never finished");
        std::thread::sleep(Duration::from_millis(100 + random.below(150)));
        if kills == KILLS {
            continue;
        }
        // A worker that has been up long enough to have taken threads dies mid-run.
        let victim = usize::try_from(random.below(WORKERS as u64)).unwrap();
        if workers[victim].1.elapsed() < Duration::from_millis(200) {
            continue;
        }
        let (mut child, _) =
            std::mem::replace(&mut workers[victim], (start_worker(&url), Instant::now()));
        child.kill().unwrap(); // SIGKILL
        child.wait().unwrap();
        kills += 1;
        if kills == KILLS {
            eprintln!(
                "{kills} kills in {:?}, {} threads finished",
                started.elapsed(),
                count_in("kills", "finished")
            );
        }
    }
    assert_eq!(
        kills, KILLS,
        "the threads finished before every kill landed"
    );
    let mut finished = 0;
    for (worker, _) in workers {
        let report = stop_worker(worker);
        assert_eq!(report["failed"], serde_json::json!([]), "{report}");
        finished += report["finished"].as_u64().unwrap();
    }
    assert!(finished <= THREADS as u64);

    let threads = report(&url);
    assert_eq!(threads.len(), THREADS, "no thread lost");
    let expected = serde_json::json!({
        "count": STEPS,
        "seen": (1..=STEPS).collect::<Vec<u64>>(),
    });
    for thread in &threads {
        assert_eq!(thread["status"], "finished", "{thread}");
        assert_eq!(thread["state"], expected, "{thread}");
        // Each step saved once, in order: none applied twice, none skipped.
        assert_eq!(
            thread["steps"],
            serde_json::json!((1..=STEPS).collect::<Vec<u64>>()),
            "{thread}"
        );
    }
    // The kills landed mid-run: threads were taken over from dead workers.
    let taken_over: usize = sql(
        "kills",
        "SELECT COUNT(*) FROM slateflow_threads WHERE claim > 2",
    )
    .parse()
    .unwrap();
    assert!(taken_over > 0, "no thread was taken over");
}

/// Kills of the takeover test (50 in a soak, `SLATEFLOW_SOAK=1`, as CI runs; else 10), and the
/// lease its workers hold: far longer than the test.
fn takeover_kills() -> usize {
    support::soak::trials(50, 10) as usize
}
const LONG_LEASE_MS: &str = "600000";

fn start_leased_worker(url: &str) -> Child {
    Command::new(BINARY)
        .args(["work", url, "8", LONG_LEASE_MS])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap()
}

/// The running `crawl` threads of database `name`: id, owner's process, claim and last step.
fn crawls(name: &str) -> Vec<(String, u32, u64, u64)> {
    sql(
        name,
        "SELECT id || ' ' || split_part(owner, ':', 2) || ' ' || claim || ' ' || last_step
         FROM slateflow_threads WHERE phase = 'running' AND owner IS NOT NULL ORDER BY id",
    )
    .lines()
    .map(|line| {
        let fields: Vec<&str> = line.split(' ').collect();
        (
            fields[0].to_string(),
            fields[1].parse().unwrap(),
            fields[2].parse().unwrap(),
            fields[3].parse().unwrap(),
        )
    })
    .collect()
}

/// A thread's claim number and last step.
fn claim_and_step(name: &str, thread: &str) -> (u64, u64) {
    let row = sql(
        name,
        &format!("SELECT claim || ' ' || last_step FROM slateflow_threads WHERE id = '{thread}'"),
    );
    let (claim, step) = row.split_once(' ').unwrap();
    (claim.parse().unwrap(), step.parse().unwrap())
}

#[test]
fn a_killed_workers_threads_are_run_on_within_a_second_whatever_the_lease() {
    let Some(url) = database("takeover") else {
        return;
    };
    client(&["submit", &url, "crawl", "4"]);
    let mut workers: Vec<Child> = (0..2).map(|_| start_leased_worker(&url)).collect();
    let mut random = Random(0x2545_F491_4F6C_DD1D);
    let mut takeovers: Vec<Duration> = Vec::new();
    let deadline = Instant::now() + Duration::from_secs(300);
    while takeovers.len() < takeover_kills() {
        assert!(
            Instant::now() < deadline,
            "too few takeovers: {takeovers:?}"
        );
        std::thread::sleep(Duration::from_millis(50 + random.below(250)));
        // A worker that runs threads dies at a random instant of its steps.
        let victim = usize::try_from(random.below(2)).unwrap();
        let pid = workers[victim].id();
        let owned: Vec<(String, u32, u64, u64)> = crawls("takeover")
            .into_iter()
            .filter(|thread| thread.1 == pid)
            .collect();
        if owned.is_empty() {
            continue;
        }
        workers[victim].kill().unwrap(); // SIGKILL
        let killed = Instant::now();
        workers[victim].wait().unwrap();
        // Each of its threads is claimed by the surviving worker, which then saves a step: timed
        // from the kill to that step. (A worker that starts finds dead owners at once; the
        // replacement starts after, so what is timed is the survivor noticing the death.)
        let mut slowest = Duration::ZERO;
        for (thread, _, claim, _) in owned {
            let taken_at = loop {
                let (now_claim, step) = claim_and_step("takeover", &thread);
                if now_claim > claim {
                    break step;
                }
                assert!(
                    killed.elapsed() < Duration::from_secs(20),
                    "thread `{thread}` was not taken over: it waits for the lease"
                );
                std::thread::sleep(Duration::from_millis(5));
            };
            while claim_and_step("takeover", &thread).1 <= taken_at {
                assert!(
                    killed.elapsed() < Duration::from_secs(20),
                    "no step after takeover"
                );
                std::thread::sleep(Duration::from_millis(5));
            }
            slowest = slowest.max(killed.elapsed());
        }
        takeovers.push(slowest);
        workers[victim] = start_leased_worker(&url);
    }
    takeovers.sort();
    let median = takeovers[takeovers.len() / 2];
    let worst = takeovers[takeovers.len() - 1];
    eprintln!(
        "{} kills: from SIGKILL to the first step of another worker, median {median:?}, \
         90th percentile {:?}, worst {worst:?} (lease {LONG_LEASE_MS} ms)",
        takeovers.len(),
        takeovers[takeovers.len() * 9 / 10],
    );
    assert!(
        median < Duration::from_millis(1500) && worst < Duration::from_secs(5),
        "takeover took {takeovers:?}"
    );

    // Cancelled, the threads stop; each step was saved once, in order, and counted once.
    for index in 0..4 {
        client(&["cancel", &url, &format!("crawl-{index}")]);
    }
    for worker in workers {
        let report = stop_worker(worker);
        assert_eq!(report["failed"], serde_json::json!([]), "{report}");
    }
    for thread in report(&url) {
        let steps = thread["steps"].as_array().unwrap();
        let expected: Vec<u64> = (1..=steps.len() as u64).collect();
        assert_eq!(thread["steps"], serde_json::json!(expected), "{thread}");
        assert_eq!(thread["state"]["count"], steps.len(), "{thread}");
        assert!(steps.len() > 20, "{thread}");
    }
}

#[test]
fn a_hung_workers_threads_are_taken_over_when_its_lease_lapses() {
    let Some(url) = database("hung") else {
        return;
    };
    let lease = Duration::from_millis(1500);
    let start = || {
        Command::new(BINARY)
            .args(["work", &url, "8", &lease.as_millis().to_string()])
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap()
    };
    client(&["submit", &url, "crawl", "1"]);
    let mut hung = start();
    wait_for("hung", "running", 1);
    while claim_and_step("hung", "crawl-0").1 < 2 {
        std::thread::sleep(Duration::from_millis(10));
    }
    let other = start();
    // Stopped, not killed: its connections and its liveness lock stay; only the lease can tell.
    let signal = |name: &str| {
        let status = Command::new("kill")
            .args([name, &hung.id().to_string()])
            .status()
            .unwrap();
        assert!(status.success());
    };
    signal("-STOP");
    let stopped = Instant::now();
    let (claim, _) = claim_and_step("hung", "crawl-0");
    while claim_and_step("hung", "crawl-0").0 == claim {
        assert!(
            stopped.elapsed() < Duration::from_secs(10),
            "the hung worker's thread was never taken over"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    let taken = stopped.elapsed();
    // The lease was renewed at most a third of it before the stop.
    assert!(
        taken + Duration::from_millis(100) >= lease * 2 / 3,
        "taken over after {taken:?}, before the lease of a live (hung) worker lapsed"
    );
    // Woken, the hung worker is refused its next write: the run is lost, not applied twice.
    signal("-CONT");
    client(&["cancel", &url, "crawl-0"]);
    drop(hung.stdin.take());
    let output = hung.wait_with_output().unwrap();
    assert!(output.status.success());
    let report_of_hung: serde_json::Value = serde_json::from_slice(&output.stdout).unwrap();
    assert_eq!(
        report_of_hung["lost"],
        serde_json::json!(["crawl-0"]),
        "{report_of_hung}"
    );
    let report_of_other = stop_worker(other);
    assert_eq!(
        report_of_other["failed"],
        serde_json::json!([]),
        "{report_of_other}"
    );
    let thread = &report(&url)[0];
    let steps = thread["steps"].as_array().unwrap();
    assert_eq!(
        thread["steps"],
        serde_json::json!((1..=steps.len() as u64).collect::<Vec<u64>>()),
        "{thread}"
    );
    assert_eq!(thread["state"]["count"], steps.len(), "{thread}");
}

#[test]
fn a_pause_answered_from_another_process_is_run_on_by_a_worker() {
    let Some(url) = database("pauses") else {
        return;
    };
    client(&["submit", &url, "review", "3"]);
    let worker = start_worker(&url);
    wait_for("pauses", "paused", 3);
    let threads = report(&url);
    assert!(
        threads
            .iter()
            .all(|thread| thread["state"]["published"] == false),
        "nothing is published before approval"
    );
    for index in 0..3 {
        let output = client(&["answer", &url, &format!("review-{index}")]);
        assert_eq!(
            String::from_utf8(output.stdout).unwrap().trim(),
            "before:publish@1",
            "the pause the worker reported"
        );
    }
    wait_for("pauses", "finished", 3);
    let report_of_worker = stop_worker(worker);
    assert_eq!(report_of_worker["paused"], 3, "{report_of_worker}");
    assert_eq!(report_of_worker["finished"], 3, "{report_of_worker}");
    for thread in report(&url) {
        assert_eq!(
            thread["state"],
            serde_json::json!({ "draft": "A reply", "approved": true, "published": true }),
            "{thread}"
        );
    }
}

#[derive(SharedState, Clone, Debug, Default, Serialize, Deserialize)]
struct Job {
    #[reducer(add)]
    done: u32,
}

/// While set, `work` never finishes: the run is in flight when its worker shuts down.
static HANG: AtomicBool = AtomicBool::new(true);

#[node]
async fn work(_: &Job) -> Result<slateflow::Command<Job>, NodeError> {
    if HANG.load(Ordering::SeqCst) {
        std::future::pending::<()>().await;
    }
    Ok(slateflow::Command::new(Job::update().add_done(1)))
}

fn is_finished(status: &RunStatus) -> bool {
    matches!(status, RunStatus::Finished { .. })
}

/// Waits until the status of `thread` is `done`, for at most a minute.
async fn until<S, G>(
    durable: &Durable<'_, S, G, PostgresStore>,
    thread: &str,
    done: impl Fn(&RunStatus) -> bool,
) where
    S: slateflow::SharedState + Serialize + serde::de::DeserializeOwned + Send + 'static,
    G: slateflow::flow::FlowGraph<S>,
{
    let deadline = Instant::now() + Duration::from_secs(60);
    while !done(&durable.status(thread).await.unwrap()) {
        assert!(Instant::now() < deadline, "`{thread}` never got there");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

#[node]
fn quick(_: &Job) -> slateflow::Command<Job> {
    slateflow::Command::new(Job::update().add_done(1))
}

#[test]
fn a_worker_shutting_down_gives_its_unfinished_threads_up_at_once() {
    let Some(url) = database("shutdown") else {
        return;
    };
    runtime().block_on(async {
        // A long lease: the thread can only move on because it was given up.
        let connect = || {
            PostgresStore::options()
                .lease(Duration::from_secs(60))
                .connect(&url)
        };
        let store = connect().await.unwrap();
        let jobs = flow! { work; };
        let durable = jobs.durable(store.clone()).named("jobs");
        durable.submit("job-1", &Job::default()).await.unwrap();
        let worker = Worker::new(store.clone())
            .flow(jobs.durable(store.clone()).named("jobs"))
            .grace(Duration::from_millis(50));
        let report = worker
            .run(until(&durable, "job-1", |status| {
                *status == RunStatus::Running
            }))
            .await
            .unwrap();
        assert_eq!(report.released, ["job-1"]);
        assert_eq!(
            durable.status("job-1").await.unwrap(),
            RunStatus::Interrupted
        );

        // Another worker (another store, as in another process) takes it at once.
        HANG.store(false, Ordering::SeqCst);
        let other = connect().await.unwrap();
        let other_durable = jobs.durable(other.clone()).named("jobs");
        let report = Worker::new(other.clone())
            .flow(jobs.durable(other.clone()).named("jobs"))
            .run(until(&other_durable, "job-1", is_finished))
            .await
            .unwrap();
        assert_eq!(report.finished, 1, "{report:?}");
        assert_eq!(other_durable.state("job-1").await.unwrap().done, 1);
    });
}

#[test]
fn an_idle_worker_is_woken_by_a_submission_not_by_its_poll() {
    let Some(url) = database("wake") else {
        return;
    };
    runtime().block_on(async {
        let store = PostgresStore::connect(&url).await.unwrap();
        let jobs = flow! { quick; };
        let client = jobs.durable(store.clone()).named("jobs");
        let finished = AtomicBool::new(false);
        // The worker looks once at its start, then only when woken: its poll is ten minutes.
        let worker = Worker::new(store.clone())
            .flow(jobs.durable(store.clone()).named("jobs"))
            .poll(Duration::from_secs(600));
        let (report, ()) = tokio::join!(
            worker.run(async {
                while !finished.load(Ordering::SeqCst) {
                    tokio::time::sleep(Duration::from_millis(10)).await;
                }
            }),
            async {
                // Submitted once the worker has looked and found nothing.
                tokio::time::sleep(Duration::from_millis(300)).await;
                client.submit("job-1", &Job::default()).await.unwrap();
                // Within a minute (`until`'s deadline), far less than the poll.
                until(&client, "job-1", is_finished).await;
                finished.store(true, Ordering::SeqCst);
            }
        );
        assert_eq!(report.unwrap().finished, 1);
    });
}

/// Runs of `busy` in flight now, and the most at once.
static IN_FLIGHT: AtomicU32 = AtomicU32::new(0);
static MOST: AtomicU32 = AtomicU32::new(0);

#[node]
async fn busy(_: &Job) -> Result<slateflow::Command<Job>, NodeError> {
    let now = IN_FLIGHT.fetch_add(1, Ordering::SeqCst) + 1;
    MOST.fetch_max(now, Ordering::SeqCst);
    tokio::time::sleep(Duration::from_millis(50)).await;
    IN_FLIGHT.fetch_sub(1, Ordering::SeqCst);
    Ok(slateflow::Command::new(Job::update().add_done(1)))
}

#[test]
fn a_worker_runs_up_to_its_concurrency_limit_at_once() {
    let Some(url) = database("concurrency") else {
        return;
    };
    runtime().block_on(async {
        let store = PostgresStore::connect(&url).await.unwrap();
        let jobs = flow! { busy; };
        let client = jobs.durable(store.clone()).named("busy");
        for index in 0..6 {
            client
                .submit(&format!("busy-{index}"), &Job::default())
                .await
                .unwrap();
        }
        let report = Worker::new(store.clone())
            .flow(jobs.durable(store.clone()).named("busy"))
            .concurrency(2)
            .run(async {
                for index in 0..6 {
                    until(&client, &format!("busy-{index}"), is_finished).await;
                }
            })
            .await
            .unwrap();
        assert_eq!(report.finished, 6, "{report:?}");
        assert_eq!(MOST.load(Ordering::SeqCst), 2, "two at once, never more");
    });
}

/// A state with a field no saved state holds: a handle each worker puts back before a run.
#[derive(SharedState, Clone, Debug, Default, Serialize, Deserialize)]
struct Call {
    #[reducer(append)]
    log: Vec<String>,
    #[serde(skip)]
    endpoint: Option<Arc<String>>,
}

#[node]
fn call(state: &Call) -> Result<slateflow::Command<Call>, NodeError> {
    let endpoint = state
        .endpoint
        .as_deref()
        .ok_or("no endpoint: put it back with `Durable::restore`")?;
    Ok(slateflow::Command::new(
        Call::update().push_log(format!("called {endpoint}")),
    ))
}

#[test]
fn a_worker_puts_back_the_fields_no_saved_state_holds_before_each_run() {
    let Some(url) = database("restore") else {
        return;
    };
    runtime().block_on(async {
        let store = PostgresStore::connect(&url).await.unwrap();
        let calls = flow! { call; };
        let client = calls.durable(store.clone()).named("calls");
        // The submitter's endpoint is not saved, so no worker sees it.
        let submitted = Call {
            endpoint: Some(Arc::new("the submitter's endpoint".into())),
            ..Call::default()
        };
        client.submit("bare", &submitted).await.unwrap();
        let report = Worker::new(store.clone())
            .flow(calls.durable(store.clone()).named("calls"))
            .run(until(&client, "bare", |status| {
                matches!(status, RunStatus::Failed { .. })
            }))
            .await
            .unwrap();
        assert_eq!(report.failed.len(), 1, "{report:?}");
        assert!(report.failed[0].1.contains("no endpoint"), "{report:?}");

        client.submit("restored", &submitted).await.unwrap();
        let restores = AtomicU32::new(0);
        let restoring = calls
            .durable(store.clone())
            .named("calls")
            .restore(|state: &mut Call| {
                restores.fetch_add(1, Ordering::SeqCst);
                state.endpoint = Some(Arc::new("the worker's endpoint".into()));
            });
        let report = Worker::new(store.clone())
            .flow(restoring)
            .run(until(&client, "restored", is_finished))
            .await
            .unwrap();
        assert_eq!(report.finished, 1, "{report:?}");
        assert_eq!(restores.load(Ordering::SeqCst), 1, "once, before the run");
        assert_eq!(
            client.state("restored").await.unwrap().log,
            ["called the worker's endpoint"]
        );
    });
}

#[test]
fn a_worker_set_up_wrong_says_what_to_fix() {
    let Some(url) = database("setup-errors") else {
        return;
    };
    runtime().block_on(async {
        let store = PostgresStore::connect(&url).await.unwrap();
        let jobs = flow! { work; };
        let error = Worker::new(store.clone())
            .flow(jobs.durable(store.clone()))
            .run(async {})
            .await
            .unwrap_err();
        assert!(matches!(error, Error::Worker { .. }));
        assert_eq!(
            error.to_string(),
            "the worker cannot start: a flow has no name: give each flow a name with \
             `Durable::named`, the same one its threads are submitted with"
        );
        let error = Worker::new(store.clone())
            .flow(jobs.durable(store.clone()).named("jobs"))
            .flow(jobs.durable(store.clone()).named("jobs"))
            .run(async {})
            .await
            .unwrap_err();
        assert_eq!(
            error.to_string(),
            "the worker cannot start: two flows are named `jobs`: a thread must name one flow"
        );
        // An interrupt the flow cannot pause at stops the worker before it takes any thread.
        let durable = jobs.durable(store.clone()).named("jobs");
        durable.submit("job-1", &Job::default()).await.unwrap();
        let error = Worker::new(store.clone())
            .flow(
                jobs.durable(store.clone())
                    .named("jobs")
                    .interrupt_before(&["wrok"]),
            )
            .run(async {})
            .await
            .unwrap_err();
        assert!(matches!(error, Error::Interrupt { .. }), "{error:?}");
        assert_eq!(
            durable.status("job-1").await.unwrap(),
            RunStatus::Queued,
            "not taken"
        );
    });
}

#[test]
fn a_cancelled_thread_is_not_resumed_nor_updated() {
    let Some(url) = database("cancelled") else {
        return;
    };
    runtime().block_on(async {
        let store = PostgresStore::connect(&url).await.unwrap();
        let jobs = flow! { work; };
        let durable = jobs.durable(store.clone()).named("jobs");
        durable.submit("job-1", &Job::default()).await.unwrap();
        durable.cancel("job-1").await.unwrap();
        assert_eq!(durable.status("job-1").await.unwrap(), RunStatus::Cancelled);
        let error = durable.resume("job-1").await.unwrap_err();
        assert_eq!(
            error.to_string(),
            "cannot resume thread `job-1` at step 0: the thread was cancelled; branch it to go on"
        );
        let error = durable
            .update("job-1", Job::update().add_done(1))
            .await
            .unwrap_err();
        assert!(
            error
                .to_string()
                .contains("cancelled thread takes no update"),
            "{error}"
        );
        assert!(store.take_runnable(&["jobs"]).await.unwrap().is_none());
    });
}

#[derive(SharedState, Clone, Debug, Default, Serialize, Deserialize)]
struct Tally {
    #[reducer(add)]
    count: u64,
}

#[node(actions = ["again", "done"])]
async fn tally(state: &Tally) -> slateflow::Command<Tally> {
    // Yields, so that the worker's other runs and its lease keeper interleave with the writes.
    tokio::task::yield_now().await;
    let action = if state.count + 1 < 100 {
        "again"
    } else {
        "done"
    };
    slateflow::Command::new(Tally::update().add_count(1)).with_action(action)
}

#[test]
fn a_worker_runs_threads_whose_steps_are_written_in_batches() {
    let Some(url) = database("batched") else {
        return;
    };
    runtime().block_on(async {
        // A short lease: its keeper renews the claims while the runs write.
        let store = PostgresStore::options()
            .lease(Duration::from_millis(300))
            .connect(&url)
            .await
            .unwrap();
        let tallies = flow! { tally - "again" >> tally; };
        let durable = || {
            tallies
                .durable(store.clone())
                .named("tally")
                .durability(slateflow::durable::Durability::batched(16))
        };
        let client = durable();
        for index in 0..32 {
            client
                .submit(&format!("tally-{index}"), &Tally::default())
                .await
                .unwrap();
        }
        let report = Worker::new(store.clone())
            .flow(durable())
            .run(async {
                for index in 0..32 {
                    until(&client, &format!("tally-{index}"), |status| {
                        !matches!(status, RunStatus::Queued | RunStatus::Running)
                    })
                    .await;
                }
            })
            .await
            .unwrap();
        assert_eq!(report.failed, Vec::<(String, String)>::new(), "{report:?}");
        assert_eq!(report.finished, 32, "{report:?}");
        for index in 0..32 {
            let thread = format!("tally-{index}");
            assert_eq!(client.state(&thread).await.unwrap().count, 100);
            let verified = client.verify(&thread).await.unwrap();
            assert_eq!((verified.last_step, verified.records), (100, 101));
        }
    });
}

#[derive(SharedState, Clone, Debug, Default, Serialize, Deserialize)]
struct Vetted {
    approved: bool,
}

/// Asks inside its step whether to approve.
#[node]
async fn vet(
    _: &Vetted,
    context: &slateflow::Context<'_>,
) -> Result<slateflow::Command<Vetted>, NodeError> {
    let approved: bool = context
        .interrupt("approve", serde_json::json!({ "question": "Approve?" }))
        .await?;
    Ok(slateflow::Command::new(
        Vetted::update().set_approved(approved),
    ))
}

/// A question a node asked inside its step, on a worker, replied from another client: the
/// thread is queued by the reply, and a worker runs the step again with it.
#[test]
fn a_question_inside_a_step_replied_by_another_client_is_run_on_by_a_worker() {
    let Some(url) = database("inside") else {
        return;
    };
    runtime().block_on(async {
        let store = PostgresStore::connect(&url).await.unwrap();
        let vetting = flow! { vet; };
        let client = vetting.durable(store.clone()).named("vetting");
        client.submit("v-1", &Vetted::default()).await.unwrap();
        let report = Worker::new(store.clone())
            .flow(vetting.durable(store.clone()).named("vetting"))
            .run(async {
                until(&client, "v-1", |status| {
                    matches!(status, RunStatus::Paused { .. })
                })
                .await;
                let pauses = client.pending("v-1").await.unwrap();
                assert_eq!(pauses.len(), 1, "{pauses:?}");
                assert!(pauses[0].key.ends_with(":approve"), "{pauses:?}");
                client.reply("v-1", &pauses[0].key, &true).await.unwrap();
                until(&client, "v-1", is_finished).await;
            })
            .await
            .unwrap();
        assert_eq!((report.paused, report.finished), (1, 1), "{report:?}");
        assert!(client.state("v-1").await.unwrap().approved);
    });
}
