//! Checkpoint stores: the contract every store keeps (threads, records in order, one claim at a
//! time, statuses, readers that change nothing, deletion, saved flows), then what each store does with damaged
//! storage: torn writes are left out by readers and cut off by the next claim, damage anywhere
//! else is an error naming the record and the file, and nothing saved is ever dropped silently.

use std::path::{Path, PathBuf};

use std::time::Duration;

use slateflow::checkpoint::{
    CheckpointStore, FileStore, FlowField, FlowInfo, MemoryStore, PostgresStore, RecordKind,
    Records, RunStatus, SqliteStore, StepRecord, StoreError, ThreadLog,
};

/// Helpers shared by test files; each uses part of them.
#[allow(dead_code)]
mod support {
    pub(crate) mod postgres;
}

use support::postgres::{database, runtime, sql};

fn record(step: u64, node: &str) -> StepRecord {
    StepRecord {
        node: node.to_string(),
        action: "default".into(),
        reason: (step == 2).then(|| "because".to_string()),
        position: vec![u32::try_from(step).unwrap()],
        update: serde_json::json!({ "count": step }),
        snapshot: step
            .is_multiple_of(2)
            .then(|| serde_json::json!({ "count": step * 10 })),
        saved_at_ms: 1_700_000_000_000 + step,
        ..StepRecord::new(step, RecordKind::Step)
    }
}

/// A thread's first record: the initial state.
fn start() -> StepRecord {
    StepRecord {
        saved_at_ms: 1_700_000_000_000,
        ..StepRecord::new(0, RecordKind::Start).with_snapshot(serde_json::json!({ "count": 0 }))
    }
}

/// A fresh directory under the target directory, removed first if a previous run left it.
fn scratch(name: &str) -> PathBuf {
    let dir = PathBuf::from(env!("CARGO_TARGET_TMPDIR"))
        .join("checkpoint")
        .join(name);
    let _ = std::fs::remove_dir_all(&dir);
    dir
}

fn block_on<F: std::future::Future>(future: F) -> F::Output {
    tokio::runtime::Builder::new_current_thread()
        .build()
        .unwrap()
        .block_on(future)
}

/// The contract every store keeps.
async fn keeps_the_contract(store: &impl CheckpointStore) {
    keeps_records_and_one_writer(store).await;
    refuses_mistakes_and_deletes(store).await;
    appends_many_in_one_write(store).await;
    keeps_flows(store).await;
}

fn flow_info(name: &str, nodes: &[&str]) -> FlowInfo {
    FlowInfo {
        name: name.to_string(),
        state_type: "Counter".into(),
        graph: serde_json::json!({ "nodes": nodes }),
        fields: vec![FlowField {
            name: "count".into(),
            type_name: "u32".into(),
        }],
        saved_at_ms: 1,
    }
}

/// Flows are kept by name, sorted, any name; saving one again replaces it; none of them is a
/// thread.
async fn keeps_flows(store: &impl CheckpointStore) {
    let threads = store.threads().await.unwrap().len();
    store.save_flow(&flow_info("triage", &["a"])).await.unwrap();
    store
        .save_flow(&flow_info("claims / 2026", &["b"]))
        .await
        .unwrap();
    store
        .save_flow(&flow_info("triage", &["a", "c"]))
        .await
        .unwrap();
    let flows = store.flows().await.unwrap();
    assert_eq!(
        flows,
        [
            flow_info("claims / 2026", &["b"]),
            flow_info("triage", &["a", "c"])
        ]
    );
    assert_eq!(store.threads().await.unwrap().len(), threads);
    // A thread names the flow its start record names.
    let mut named = start();
    named.node = "triage".into();
    let claim = store.create("flowed", "Counter", &[named]).await.unwrap();
    drop(claim);
    let listed = store.threads().await.unwrap();
    let flowed = listed.iter().find(|thread| thread.id == "flowed").unwrap();
    assert_eq!(flowed.flow, "triage");
    assert!(
        listed
            .iter()
            .filter(|thread| thread.id != "flowed")
            .all(|thread| thread.flow.is_empty())
    );
}

/// `append_all` saves its records in order, or none of them when one is out of order.
async fn appends_many_in_one_write(store: &impl CheckpointStore) {
    let mut claim = store.create("eta", "Triage", &[start()]).await.unwrap();
    let three = [record(1, "a"), record(2, "b"), record(3, "c")];
    store.append_all(&mut claim, &three).await.unwrap();
    let error = store
        .append_all(&mut claim, &[record(4, "d"), record(4, "again")])
        .await
        .unwrap_err();
    assert!(
        matches!(
            error,
            StoreError::OutOfOrder {
                step: 4,
                last: 4,
                ..
            }
        ),
        "{error:?}"
    );
    store.append(&mut claim, &record(4, "d")).await.unwrap();
    let log = store.load("eta", Records::All).await.unwrap();
    assert_eq!(log.last_step, 4);
    assert_eq!(
        log.records,
        [
            start(),
            record(1, "a"),
            record(2, "b"),
            record(3, "c"),
            record(4, "d")
        ]
    );
    drop(claim);
}

/// A cancel from `other` (another process, or this one) fences out the run that holds the
/// thread's claim in `runner`; the thread reads as cancelled from then on.
async fn cancels<S: CheckpointStore>(runner: &S, other: &S) {
    let mut claim = runner
        .create("epsilon", "Triage", &[start()])
        .await
        .unwrap();
    runner
        .append(&mut claim, &record(1, "classify"))
        .await
        .unwrap();
    other.cancel("epsilon").await.unwrap();
    let error = runner
        .append(&mut claim, &record(2, "report"))
        .await
        .unwrap_err();
    assert!(
        matches!(&error, StoreError::Cancelled { thread } if thread == "epsilon"),
        "{error:?}"
    );
    assert_eq!(
        error.to_string(),
        "thread `epsilon` was cancelled: nothing more was written, and it is not run again \
         (branch it to go on from a saved step)"
    );
    let finished = RunStatus::Finished {
        action: "default".into(),
    };
    assert!(matches!(
        runner.set_status(&mut claim, &finished).await,
        Err(StoreError::Cancelled { .. })
    ));
    for store in [runner, other] {
        let log = store.load("epsilon", Records::All).await.unwrap();
        assert_eq!(log.status, RunStatus::Cancelled);
        assert_eq!(
            log.records,
            [start(), record(1, "classify")],
            "nothing after"
        );
    }
    // Its runner gone, it still reads as cancelled; a second cancel changes nothing.
    drop(claim);
    other.cancel("epsilon").await.unwrap();
    let threads = runner.threads().await.unwrap();
    let epsilon = threads.iter().find(|info| info.id == "epsilon").unwrap();
    assert_eq!(epsilon.status, RunStatus::Cancelled);
    assert_eq!(epsilon.last_step, 1);
    let error = other.cancel("zeta").await.unwrap_err();
    assert!(
        matches!(&error, StoreError::UnknownThread { thread } if thread == "zeta"),
        "{error:?}"
    );
}

/// Records and statuses, what reads see, one claim at a time, appends in order.
async fn keeps_records_and_one_writer(store: &impl CheckpointStore) {
    // Records, statuses, and what reads see.
    let mut alpha = store.create("alpha", "Triage", &[start()]).await.unwrap();
    let beta = store
        .create("beta-2.x_y", "Triage", &[start()])
        .await
        .unwrap();
    drop(beta);
    for step in 1..=3 {
        store
            .append(&mut alpha, &record(step, "classify"))
            .await
            .unwrap();
    }
    let paused = RunStatus::Paused {
        pauses: vec!["before:report@3".into()],
    };
    store.set_status(&mut alpha, &paused).await.unwrap();
    let log = store.load("alpha", Records::All).await.unwrap();
    assert_eq!(log.state_type, "Triage");
    assert_eq!(log.status, paused);
    assert_eq!(log.last_step, 3);
    assert_eq!(
        log.records,
        [
            start(),
            record(1, "classify"),
            record(2, "classify"),
            record(3, "classify")
        ]
    );
    assert!(!log.dropped_torn_record);
    // From the last snapshot (step 2's record holds one): what a resume reads.
    let tail = store.load("alpha", Records::SinceSnapshot).await.unwrap();
    assert_eq!(tail.records, [record(2, "classify"), record(3, "classify")]);
    assert_eq!(tail.last_step, 3);

    // One writer: while it runs, the claim is held, so nobody else writes. (A status that ends a
    // run may give the claim up with it: the PostgreSQL store does.)
    store
        .set_status(&mut alpha, &RunStatus::Running)
        .await
        .unwrap();
    let error = store.claim("alpha").await.err().expect("a second claim");
    assert!(matches!(&error, StoreError::Claimed { thread } if thread == "alpha"));
    assert!(
        error
            .to_string()
            .starts_with("thread `alpha` is being run by another worker"),
        "{error}"
    );
    // Appends go forward: a step after the last, anything else at it.
    let error = store
        .append(&mut alpha, &record(3, "again"))
        .await
        .unwrap_err();
    assert!(
        matches!(
            &error,
            StoreError::OutOfOrder {
                step: 3,
                last: 3,
                ..
            }
        ),
        "{error:?}"
    );
    let mut input = StepRecord::new(3, RecordKind::Input);
    input.key = "before:report@3".into();
    store.append(&mut alpha, &input).await.unwrap();
    store
        .set_status(&mut alpha, &RunStatus::Running)
        .await
        .unwrap();
    assert_eq!(
        store.load("alpha", Records::All).await.unwrap().status,
        RunStatus::Running
    );
    // Given up (as by a killed process): the status reads as interrupted, and it can be claimed.
    drop(alpha);
    assert_eq!(
        store.load("alpha", Records::All).await.unwrap().status,
        RunStatus::Interrupted
    );
    let mut alpha = store.claim("alpha").await.unwrap();
    store
        .append(&mut alpha, &record(4, "report"))
        .await
        .unwrap();
    drop(alpha);

    let threads = store.threads().await.unwrap();
    let ids: Vec<&str> = threads.iter().map(|thread| thread.id.as_str()).collect();
    assert_eq!(ids, ["alpha", "beta-2.x_y"]);
    assert_eq!(threads[0].last_step, 4);
    assert_eq!(threads[0].updated_at_ms, 1_700_000_000_004);
    assert_eq!(threads[0].status, RunStatus::Interrupted);
    assert_eq!(threads[1].state_type, "Triage");
}

/// Clear errors for mistakes; a thread made with many records at once (a branch), then deleted.
async fn refuses_mistakes_and_deletes(store: &impl CheckpointStore) {
    let error = store.load("gamma", Records::All).await.unwrap_err();
    assert!(matches!(&error, StoreError::UnknownThread { thread } if thread == "gamma"));
    assert_eq!(
        error.to_string(),
        "unknown thread `gamma`: it was never started in this store"
    );
    assert!(matches!(
        store.claim("gamma").await,
        Err(StoreError::UnknownThread { .. })
    ));
    assert!(matches!(
        store.create("alpha", "Triage", &[start()]).await,
        Err(StoreError::ThreadExists { .. })
    ));
    assert!(matches!(
        store
            .create(
                "delta",
                "Triage",
                &[start(), record(2, "a"), record(1, "b")]
            )
            .await,
        Err(StoreError::OutOfOrder { .. })
    ));
    for bad in ["", ".hidden", "a/b", "../up", "sp ace", &"x".repeat(129)] {
        assert!(
            matches!(
                store.create(bad, "Triage", &[start()]).await,
                Err(StoreError::InvalidThreadId { .. })
            ),
            "{bad:?} was accepted"
        );
    }

    let many = [start(), record(1, "a"), record(2, "b")];
    drop(store.create("copy", "Triage", &many).await.unwrap());
    assert_eq!(
        store.load("copy", Records::All).await.unwrap().records,
        many
    );
    let claim = store.claim("copy").await.unwrap();
    store.delete(claim).await.unwrap();
    assert!(matches!(
        store.load("copy", Records::All).await,
        Err(StoreError::UnknownThread { .. })
    ));
    assert_eq!(store.threads().await.unwrap().len(), 2);
    // Nothing was lost along the way.
    assert_eq!(
        store
            .load("alpha", Records::All)
            .await
            .unwrap()
            .records
            .len(),
        6
    );
}

#[test]
fn the_memory_store_keeps_the_contract() {
    let store = MemoryStore::new();
    block_on(keeps_the_contract(&store));
    block_on(cancels(&store, &store.clone()));
}

#[test]
fn the_file_store_keeps_the_contract_across_instances() {
    let root = scratch("contract");
    block_on(keeps_the_contract(&FileStore::open(&root).unwrap()));
    // A new store on the same directory (a new process) reads the same.
    let reopened = FileStore::open(&root).unwrap();
    assert_eq!(block_on(reopened.flows()).unwrap().len(), 2);
    let log = block_on(reopened.load("alpha", Records::All)).unwrap();
    assert_eq!(log.records.len(), 6);
    assert_eq!(log.status, RunStatus::Interrupted);
    block_on(cancels(&FileStore::open(&root).unwrap(), &reopened));
}

#[test]
fn the_sqlite_store_keeps_the_contract_across_connections() {
    let root = scratch("sqlite");
    std::fs::create_dir_all(&root).unwrap();
    let path = root.join("runs.db");
    block_on(keeps_the_contract(&SqliteStore::open(&path).unwrap()));
    assert!(
        !root.join("runs.db-claims").join("gamma.lock").exists(),
        "claiming an unknown thread left a lock file"
    );
    let reopened = SqliteStore::open(&path).unwrap();
    let log = block_on(reopened.load("alpha", Records::All)).unwrap();
    assert_eq!(log.records.len(), 6);
    assert_eq!(log.status, RunStatus::Interrupted);
    block_on(cancels(&SqliteStore::open(&path).unwrap(), &reopened));
}

#[test]
fn the_postgres_store_keeps_the_contract_across_connections() {
    let Some(url) = database("contract") else {
        return;
    };
    runtime().block_on(async {
        keeps_the_contract(&PostgresStore::connect(&url).await.unwrap()).await;
        // Another store on the same database (another process) reads the same.
        let reopened = PostgresStore::connect(&url).await.unwrap();
        let log = reopened.load("alpha", Records::All).await.unwrap();
        assert_eq!(log.records.len(), 6);
        assert_eq!(log.status, RunStatus::Interrupted);
        let runner = PostgresStore::connect(&url).await.unwrap();
        cancels(&runner, &reopened).await;
    });
}

/// A run's last status (paused, finished, queued ...) gives its PostgreSQL claim up in the same
/// write: another process can claim the thread at once, before the runner drops its claim (an
/// answer right after a pause met `Claimed` while the drop was given up in the background).
/// Running keeps the claim; the old claim's writes are refused once another took the thread.
#[test]
fn a_postgres_claim_is_given_up_with_the_status_that_ends_a_run() {
    let Some(url) = database("ends") else {
        return;
    };
    runtime().block_on(async {
        let runner = PostgresStore::connect(&url).await.unwrap();
        let other = PostgresStore::connect(&url).await.unwrap();
        let mut claim = runner.create("ends", "S", &[start()]).await.unwrap();
        runner
            .set_status(&mut claim, &RunStatus::Running)
            .await
            .unwrap();
        assert!(
            matches!(other.claim("ends").await, Err(StoreError::Claimed { .. })),
            "running keeps the claim"
        );
        let paused = RunStatus::Paused {
            pauses: vec!["before:b@1".into()],
        };
        runner.set_status(&mut claim, &paused).await.unwrap();
        // The runner still holds its claim object; the thread is free all the same.
        let mut answering = other.claim("ends").await.unwrap();
        other
            .append(&mut answering, &StepRecord::new(0, RecordKind::Input))
            .await
            .unwrap();
        assert!(
            runner.append(&mut claim, &record(1, "late")).await.is_err(),
            "the old claim is fenced out"
        );
        drop(claim);
        other
            .set_status(&mut answering, &RunStatus::Queued)
            .await
            .unwrap();
        assert_eq!(
            other.load("ends", Records::All).await.unwrap().status,
            RunStatus::Queued
        );
    });
}

/// A PostgreSQL store with a thread `t` of three records, and the database's name.
async fn postgres_thread(url: &str) -> PostgresStore {
    let store = PostgresStore::connect(url).await.unwrap();
    let mut claim = store.create("t", "S", &[start()]).await.unwrap();
    store.append(&mut claim, &record(1, "a")).await.unwrap();
    store.append(&mut claim, &record(2, "b")).await.unwrap();
    store
}

#[test]
fn a_changed_byte_in_a_postgres_record_is_caught_by_its_checksum() {
    let Some(url) = database("flipped") else {
        return;
    };
    runtime().block_on(async {
        let store = postgres_thread(&url).await;
        // Another program changes a digit of step 1's update: still valid JSON, another state.
        sql(
            "flipped",
            "UPDATE slateflow_records SET body = replace(body, '\"count\":1', '\"count\":7') \
             WHERE seq = 2",
        );
        let error = store.load("t", Records::All).await.unwrap_err();
        assert_checksum_error(&error, &format!("record 2 in slateflow_records of `{url}`"));
    });
}

#[test]
fn a_stale_claim_is_taken_over_when_its_lease_lapses_and_its_late_writes_are_refused() {
    let Some(url) = database("fencing") else {
        return;
    };
    // The stale worker's runtime is not driven while it "hangs": its leases are not renewed.
    let stale_runtime = runtime();
    let (stale, mut stale_claim) = stale_runtime.block_on(async {
        let store = PostgresStore::options()
            .lease(Duration::from_millis(300))
            .connect(&url)
            .await
            .unwrap();
        let mut claim = store.create("t", "S", &[start()]).await.unwrap();
        store.append(&mut claim, &record(1, "a")).await.unwrap();
        (store, claim)
    });
    let other_runtime = runtime();
    let (other, other_claim) = other_runtime.block_on(async {
        let other = PostgresStore::connect(&url).await.unwrap();
        // While the lease holds, nobody else may claim.
        assert!(matches!(
            other.claim("t").await,
            Err(StoreError::Claimed { .. })
        ));
        tokio::time::sleep(Duration::from_millis(600)).await;
        let mut claim = other
            .claim("t")
            .await
            .expect("the lapsed lease is taken over");
        other.append(&mut claim, &record(2, "b")).await.unwrap();
        (other, claim)
    });
    stale_runtime.block_on(async {
        // The stale worker wakes and writes what it computed meanwhile: refused, nothing written.
        let error = stale
            .append(&mut stale_claim, &record(2, "stale"))
            .await
            .unwrap_err();
        assert!(
            matches!(&error, StoreError::Claimed { thread } if thread == "t"),
            "{error}"
        );
        let error = stale
            .set_status(
                &mut stale_claim,
                &RunStatus::Finished { action: "x".into() },
            )
            .await
            .unwrap_err();
        assert!(matches!(error, StoreError::Claimed { .. }), "{error}");
        let log = stale.load("t", Records::All).await.unwrap();
        assert_eq!(log.records, [start(), record(1, "a"), record(2, "b")]);
        assert_eq!(
            log.status,
            RunStatus::Running,
            "the new holder's lease is live"
        );
    });
    // The new holder's process ends (its store and its connections go) without giving the claim
    // up: the thread is free at once, though its lease has 15 s to run.
    std::mem::forget(other_claim);
    drop(other);
    drop(other_runtime);
    stale_runtime.block_on(async {
        let deadline = std::time::Instant::now() + Duration::from_secs(5);
        while stale.load("t", Records::All).await.unwrap().status != RunStatus::Interrupted {
            assert!(
                std::time::Instant::now() < deadline,
                "a gone store's thread still reads as running"
            );
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        let mut claim = stale
            .claim("t")
            .await
            .expect("a gone store's claim is void");
        stale.append(&mut claim, &record(3, "c")).await.unwrap();
    });
}

#[test]
fn a_cancelled_thread_refuses_its_runner_and_is_never_taken_again() {
    let Some(url) = database("cancel") else {
        return;
    };
    runtime().block_on(async {
        let store = PostgresStore::connect(&url).await.unwrap();
        // Two threads submitted for `flow-a` (their start records name it), one for `flow-b`.
        for (id, flow) in [("one", "flow-a"), ("two", "flow-a"), ("three", "flow-b")] {
            let first = StepRecord {
                node: flow.into(),
                ..start()
            };
            let mut claim = store.create(id, "S", &[first]).await.unwrap();
            store
                .set_status(&mut claim, &RunStatus::Queued)
                .await
                .unwrap();
        }
        assert_eq!(
            store.load("one", Records::All).await.unwrap().status,
            RunStatus::Queued
        );
        let first = store.take_runnable(&["flow-a"]).await.unwrap().unwrap();
        assert_eq!(
            (first.thread.as_str(), first.flow.as_str()),
            ("one", "flow-a")
        );
        let second = store.take_runnable(&["flow-a"]).await.unwrap().unwrap();
        assert_eq!(second.thread, "two");
        assert!(
            store.take_runnable(&["flow-a"]).await.unwrap().is_none(),
            "both taken"
        );
        assert!(store.take_runnable(&["flow-c"]).await.unwrap().is_none());

        // Cancelled while its runner holds it: the runner is refused, and it is not taken again.
        let mut runner = first.claim;
        store.cancel("one").await.unwrap();
        let error = store
            .append(&mut runner, &record(1, "a"))
            .await
            .unwrap_err();
        assert!(matches!(error, StoreError::Cancelled { .. }), "{error}");
        drop(runner);
        // A thread given up while running is taken again at once; a cancelled one never.
        let mut claim = second.claim;
        store
            .set_status(&mut claim, &RunStatus::Running)
            .await
            .unwrap();
        drop(claim);
        let again = store.take_runnable(&["flow-a"]).await.unwrap().unwrap();
        assert_eq!(again.thread, "two");
        assert!(store.take_runnable(&["flow-a"]).await.unwrap().is_none());
        assert_eq!(
            store.load("one", Records::All).await.unwrap().status,
            RunStatus::Cancelled
        );
        assert!(matches!(
            store.cancel("nobody").await,
            Err(StoreError::UnknownThread { .. })
        ));
    });
}

#[test]
fn postgres_set_up_is_safe_to_race_and_refuses_other_versions() {
    let Some(url) = database("setup") else {
        return;
    };
    runtime().block_on(async {
        // Four processes starting at once all set up (or find) the same tables.
        let stores =
            futures_util::future::join_all((0..4).map(|_| PostgresStore::connect(&url))).await;
        for store in stores {
            store.unwrap();
        }
        // A database of version 1 (before saved flows) is brought up to date.
        sql(
            "setup",
            "DROP TABLE slateflow_flows; UPDATE slateflow_schema SET version = 1",
        );
        let store = PostgresStore::connect(&url).await.unwrap();
        store.save_flow(&flow_info("triage", &["a"])).await.unwrap();
        assert_eq!(store.flows().await.unwrap().len(), 1);
        sql("setup", "UPDATE slateflow_schema SET version = 9");
        let error = PostgresStore::connect(&url).await.unwrap_err().to_string();
        assert_eq!(
            error,
            format!(
                "the slateflow_schema table of `{url}` is corrupt (it says version 9; this \
                 version of slateflow uses version 2); nothing was loaded"
            )
        );
    });
}

#[test]
fn postgres_errors_name_the_database() {
    runtime().block_on(async {
        let nowhere = {
            let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
            listener.local_addr().unwrap().port()
        };
        let url = format!("postgres://someone@127.0.0.1:{nowhere}/runs");
        let error = PostgresStore::connect(&url).await.unwrap_err().to_string();
        assert!(
            error.starts_with(&format!("cannot connect to the database in `{url}`: "))
                && error.contains("refused"),
            "{error}"
        );
        let error = PostgresStore::connect("postgres://[nope")
            .await
            .unwrap_err()
            .to_string();
        assert!(
            error.starts_with("cannot read the connection string in `the PostgreSQL database`"),
            "{error}"
        );
    });
}

/// `error` says that the record `what` of thread `t` fails its checksum.
fn assert_checksum_error(error: &StoreError, what: &str) {
    let StoreError::Corrupt {
        thread,
        what: named,
        reason,
    } = error
    else {
        panic!("expected a corrupt-record error, got {error:?}");
    };
    assert_eq!((thread.as_str(), named.as_str()), ("t", what));
    assert!(reason.contains("checksum"), "{reason}");
}

/// A SQLite store with a thread `t` of three records, and its database file.
fn sqlite_thread(name: &str) -> (SqliteStore, PathBuf) {
    let root = scratch(name);
    std::fs::create_dir_all(&root).unwrap();
    let path = root.join("runs.db");
    let store = SqliteStore::open(&path).unwrap();
    block_on(async {
        let mut claim = store.create("t", "S", &[start()]).await.unwrap();
        store.append(&mut claim, &record(1, "a")).await.unwrap();
        store.append(&mut claim, &record(2, "b")).await.unwrap();
    });
    (store, path)
}

#[test]
fn a_changed_byte_in_a_sqlite_record_is_caught_by_its_checksum() {
    let (store, path) = sqlite_thread("sqlite-flipped");
    // Another program changes a digit of step 1's update: still valid JSON, a different state.
    let connection = rusqlite::Connection::open(&path).unwrap();
    connection
        .execute(
            "UPDATE records SET body = replace(body, '\"count\":1', '\"count\":7') WHERE seq = 2",
            [],
        )
        .unwrap();
    let error = block_on(store.load("t", Records::All)).unwrap_err();
    assert_checksum_error(&error, &format!("record 2 in `{}`", path.display()));
}

#[test]
fn sqlite_errors_name_the_file() {
    let root = scratch("sqlite-not-a-db");
    std::fs::create_dir_all(&root).unwrap();
    let path = root.join("runs.db");
    std::fs::write(&path, "these are notes, not a database".repeat(200)).unwrap();
    let error = SqliteStore::open(&path).unwrap_err().to_string();
    assert!(
        error.contains(&format!("`{}`", path.display())) && error.contains("not a database"),
        "{error}"
    );
    let missing = scratch("missing").join("no").join("runs.db");
    let error = SqliteStore::open(&missing).unwrap_err().to_string();
    assert!(
        error.starts_with(&format!(
            "cannot open the database in `{}`",
            missing.display()
        )),
        "{error}"
    );
}

/// A database of the schema before saved flows (version 2) is brought up to date when opened for
/// writing, its threads kept; opened read-only, it reads as having no saved flow.
#[test]
fn a_sqlite_database_of_version_2_is_brought_up_to_date() {
    let (store, path) = sqlite_thread("sqlite-version-2");
    drop(store);
    let connection = rusqlite::Connection::open(&path).unwrap();
    connection
        .execute_batch(
            "DROP TABLE flows; ALTER TABLE threads DROP COLUMN flow; PRAGMA user_version = 2;",
        )
        .unwrap();
    drop(connection);
    let reader = SqliteStore::open_read_only(&path).unwrap();
    assert_eq!(block_on(reader.flows()).unwrap(), []);
    let threads = block_on(reader.threads()).unwrap();
    assert_eq!((threads.len(), threads[0].flow.as_str()), (1, ""));
    drop(reader);
    let store = SqliteStore::open(&path).unwrap();
    block_on(store.save_flow(&flow_info("triage", &["a"]))).unwrap();
    assert_eq!(block_on(store.flows()).unwrap().len(), 1);
    assert_eq!(
        block_on(store.load("t", Records::All))
            .unwrap()
            .records
            .len(),
        3
    );
    assert_eq!(block_on(store.threads()).unwrap()[0].flow, "");
    let version: i64 = rusqlite::Connection::open(&path)
        .unwrap()
        .query_row("PRAGMA user_version", [], |row| row.get(0))
        .unwrap();
    assert_eq!(version, 3);
}

#[test]
fn a_sqlite_store_opened_read_only_reads_and_claims_nothing() {
    let (store, path) = sqlite_thread("sqlite-read-only");
    drop(store);
    let reader = SqliteStore::open_read_only(&path).unwrap();
    let log = block_on(reader.load("t", Records::All)).unwrap();
    assert_eq!(log.records.len(), 3);
    assert_eq!(block_on(reader.threads()).unwrap().len(), 1);
    let error = block_on(reader.claim("t")).expect_err("no claim");
    assert!(error.to_string().contains("readonly"), "{error}");
}

fn log_path(root: &Path) -> PathBuf {
    root.join("t").join("steps.log")
}

/// A file store with a thread `t` of a start and `steps` steps.
fn file_thread(name: &str, steps: u64) -> (FileStore, PathBuf) {
    let root = scratch(name);
    let store = FileStore::open(&root).unwrap();
    block_on(async {
        let mut claim = store.create("t", "S", &[start()]).await.unwrap();
        for step in 1..=steps {
            store.append(&mut claim, &record(step, "a")).await.unwrap();
        }
    });
    (store, root)
}

#[test]
fn a_torn_last_record_is_left_out_by_readers_and_cut_off_by_the_next_claim() {
    for tear in ["cut", "garbled"] {
        let (store, root) = file_thread(&format!("torn-{tear}"), 2);
        let whole = std::fs::read(log_path(&root)).unwrap();
        let third = serde_json::to_string(&record(3, "c")).unwrap();
        let mut bytes = whole.clone();
        if tear == "cut" {
            // A crash in the middle of writing record 3: half a line, no newline.
            bytes.extend_from_slice(format!("8badf00d - {}", &third[..third.len() / 2]).as_bytes());
        } else {
            // Record 3's line whole, but its bytes are not the ones checksummed (a block of it
            // never reached the disk).
            bytes.extend_from_slice(format!("00000000 - {third}\n").as_bytes());
        }
        std::fs::write(log_path(&root), &bytes).unwrap();

        let log = block_on(store.load("t", Records::All)).unwrap();
        assert!(log.dropped_torn_record, "{tear}");
        assert_eq!(
            log.records,
            [start(), record(1, "a"), record(2, "a")],
            "{tear}"
        );
        // A reader changes nothing: the writer may still be writing.
        assert_eq!(std::fs::read(log_path(&root)).unwrap(), bytes, "{tear}");
        let mut claim = block_on(store.claim("t")).unwrap();
        assert_eq!(
            std::fs::read(log_path(&root)).unwrap(),
            whole,
            "{tear}: the claim cut it off"
        );
        block_on(store.append(&mut claim, &record(3, "c"))).unwrap();
        let log = block_on(store.load("t", Records::All)).unwrap();
        assert!(!log.dropped_torn_record);
        assert_eq!(log.records.len(), 4, "{tear}");
    }
}

#[test]
fn a_damaged_record_before_the_last_is_refused_naming_where_it_starts() {
    let root = scratch("damaged");
    let store = FileStore::open(&root).unwrap();
    block_on(async {
        let mut claim = store.create("t", "S", &[start()]).await.unwrap();
        for step in 1..=3 {
            let step = StepRecord {
                snapshot: None,
                ..record(step, "a")
            };
            store.append(&mut claim, &step).await.unwrap();
        }
    });
    // Change one byte of step 1's record, which is not the last.
    let text = std::fs::read_to_string(log_path(&root)).unwrap();
    let offset = text.lines().next().unwrap().len() + 1;
    let damaged = text.replacen("\"node\":\"a\"", "\"node\":\"b\"", 1);
    std::fs::write(log_path(&root), &damaged).unwrap();
    let error = block_on(store.load("t", Records::All)).unwrap_err();
    assert_checksum_error(&error, &format!("the record at byte {offset} of steps.log"));
    // A claim reads only the end of the log (a resume then loads and refuses it), so the
    // damaged thread can still be claimed, to be deleted. Neither reading nor claiming touched
    // the file.
    let claim = block_on(store.claim("t")).unwrap();
    assert!(block_on(store.load("t", Records::SinceSnapshot)).is_err());
    drop(claim);
    assert_eq!(std::fs::read_to_string(log_path(&root)).unwrap(), damaged);
}

#[test]
fn a_broken_line_end_between_the_last_two_records_is_an_error_not_a_drop() {
    let (store, root) = file_thread("newline", 3);
    let mut bytes = std::fs::read(log_path(&root)).unwrap();
    // The newline that ends step 2's record becomes a space: read as one line, the last, it
    // would look like a torn write and take two good records with it.
    let ends: Vec<usize> = bytes
        .iter()
        .enumerate()
        .filter(|(_, byte)| **byte == b'\n')
        .map(|(at, _)| at)
        .collect();
    bytes[ends[2]] = b' ';
    std::fs::write(log_path(&root), &bytes).unwrap();
    let error = block_on(store.load("t", Records::All)).unwrap_err();
    assert!(
        error.to_string().contains("the end of its line is damaged"),
        "{error}"
    );
    assert!(block_on(store.claim("t")).is_err());
    assert_eq!(std::fs::read(log_path(&root)).unwrap(), bytes);
}

#[test]
fn a_thread_folder_without_its_meta_file_is_an_error_and_is_left_alone() {
    let root = scratch("no-meta");
    std::fs::create_dir_all(root.join("t")).unwrap();
    std::fs::write(root.join("t").join("steps.log"), b"records someone wants").unwrap();
    let store = FileStore::open(&root).unwrap();
    assert!(
        block_on(store.threads()).unwrap().is_empty(),
        "not a thread"
    );
    for error in [
        block_on(store.create("t", "S", &[start()])).err().unwrap(),
        block_on(store.load("t", Records::All)).unwrap_err(),
    ] {
        assert!(
            matches!(&error, StoreError::Corrupt { reason, .. } if reason.contains("meta.json")),
            "{error:?}"
        );
    }
    assert_eq!(
        std::fs::read(root.join("t").join("steps.log")).unwrap(),
        b"records someone wants"
    );
}

#[test]
fn a_damaged_status_file_is_refused_naming_it() {
    let (store, root) = file_thread("status", 0);
    std::fs::write(
        root.join("t").join("status.json"),
        b"{\"status\":\"sleeping\"}",
    )
    .unwrap();
    let error = block_on(store.load("t", Records::All)).unwrap_err();
    assert!(
        matches!(&error, StoreError::Corrupt { what, .. } if what == "status.json"),
        "{error:?}"
    );
}

#[test]
fn a_store_path_that_is_a_file_is_an_io_error_naming_it() {
    let root = scratch("not-a-dir");
    std::fs::create_dir_all(root.parent().unwrap()).unwrap();
    std::fs::write(&root, b"not a directory").unwrap();
    let error = FileStore::open(&root).unwrap_err();
    let StoreError::Io { action, path, .. } = &error else {
        panic!("expected an I/O error, got {error:?}");
    };
    assert_eq!((*action, path), ("create the store directory", &root));
    std::fs::remove_file(&root).unwrap();
}

#[test]
fn a_log_the_store_cannot_open_is_an_io_error_naming_the_thread_and_file() {
    // (The tests may run as root, for whom permissions do not apply: a directory standing where
    // the log should be is refused by the system for everyone.)
    let (store, root) = file_thread("unwritable", 0);
    let log = log_path(&root);
    std::fs::remove_file(&log).unwrap();
    std::fs::create_dir(&log).unwrap();
    let error = block_on(store.claim("t")).err().unwrap();
    let StoreError::Io { thread, path, .. } = &error else {
        panic!("expected an I/O error, got {error:?}");
    };
    assert_eq!((thread.as_str(), path), ("t", &log));
}

#[test]
fn loading_from_the_last_snapshot_reads_only_the_end_of_a_long_log() {
    // 3,000 records, a snapshot on every even step: the tail read stops at the last one.
    let (store, root) = file_thread("long", 3_000);
    let log = block_on(store.load("t", Records::SinceSnapshot)).unwrap();
    assert_eq!(log.records, [record(3_000, "a")]);
    assert_eq!(log.last_step, 3_000);
    assert!(std::fs::metadata(log_path(&root)).unwrap().len() > 300_000);
}

/// Two threads of four steps (snapshots at steps 2 and 4); `damage` then changes a byte of step
/// 1's record of thread `t`, which a resume never reads (it begins at the last snapshot), and
/// says how the store names that record. `verify` finds it and names it; the other thread
/// verifies whole; `verify_all` reports both.
async fn verify_finds_damage_before_the_last_snapshot(
    store: &impl CheckpointStore,
    damage: impl FnOnce() -> String,
) {
    for thread in ["t", "u"] {
        let mut claim = store.create(thread, "S", &[start()]).await.unwrap();
        for step in 1..=4 {
            store.append(&mut claim, &record(step, "a")).await.unwrap();
        }
    }
    let damaged_record = &damage();
    let tail = store.load("t", Records::SinceSnapshot).await.unwrap();
    assert_eq!(tail.records.first().map(|record| record.step), Some(4));
    let error = store.verify("t").await.unwrap_err();
    assert_checksum_error(&error, damaged_record);
    let verified = store.verify("u").await.unwrap();
    assert_eq!(
        (
            verified.records,
            verified.last_step,
            verified.dropped_torn_record
        ),
        (5, 4, false)
    );
    let all = store.verify_all().await.unwrap();
    assert!(!all.is_sound());
    assert_eq!(all.sound, [verified]);
    assert_eq!(all.damaged.len(), 1);
    assert_checksum_error(&all.damaged[0], damaged_record);
}

#[test]
fn verify_all_reports_a_file_store_thread_whose_status_is_damaged_and_goes_on() {
    let root = scratch("verify-status");
    let store = FileStore::open(&root).unwrap();
    block_on(async {
        for thread in ["t", "u"] {
            let mut claim = store.create(thread, "S", &[start()]).await.unwrap();
            store.append(&mut claim, &record(1, "a")).await.unwrap();
        }
        std::fs::write(root.join("t").join("status.json"), b"{\"runn").unwrap();
        // Listing the threads fails on it; verifying all of them names it and goes on.
        assert!(store.threads().await.is_err());
        let all = store.verify_all().await.unwrap();
        assert_eq!(all.sound.len(), 1);
        assert_eq!(all.sound[0].thread, "u");
        assert_eq!(all.damaged.len(), 1);
        let error = all.damaged[0].to_string();
        assert!(
            error.contains("status.json") && error.contains('t'),
            "{error}"
        );
    });
}

#[test]
fn verify_finds_damage_a_resume_would_not_read_in_a_file_store() {
    let root = scratch("verify-file");
    let store = FileStore::open(&root).unwrap();
    let log = log_path(&root);
    block_on(verify_finds_damage_before_the_last_snapshot(&store, || {
        let text = std::fs::read_to_string(&log).unwrap();
        std::fs::write(&log, text.replacen("\"count\":1", "\"count\":7", 1)).unwrap();
        let offset = text.lines().next().unwrap().len() + 1;
        format!("the record at byte {offset} of steps.log")
    }));
}

#[test]
fn verify_finds_damage_a_resume_would_not_read_in_a_sqlite_store() {
    let root = scratch("verify-sqlite");
    std::fs::create_dir_all(&root).unwrap();
    let path = root.join("runs.db");
    let store = SqliteStore::open(&path).unwrap();
    block_on(verify_finds_damage_before_the_last_snapshot(&store, || {
        rusqlite::Connection::open(&path)
            .unwrap()
            .execute(
                "UPDATE records SET body = replace(body, '\"count\":1', '\"count\":7') \
                 WHERE thread = 't' AND seq = 2",
                [],
            )
            .unwrap();
        format!("record 2 in `{}`", path.display())
    }));
}

#[test]
fn verify_finds_damage_a_resume_would_not_read_in_a_postgres_store() {
    let Some(url) = database("verify") else {
        return;
    };
    runtime().block_on(async {
        let store = PostgresStore::connect(&url).await.unwrap();
        verify_finds_damage_before_the_last_snapshot(&store, || {
            sql(
                "verify",
                "UPDATE slateflow_records SET body = replace(body, '\"count\":1', \
                 '\"count\":7') WHERE thread = 't' AND seq = 2",
            );
            format!("record 2 in slateflow_records of `{url}`")
        })
        .await;
    });
}

/// Whether each connection the store named `application` keeps is encrypted, as the server sees
/// it.
fn encrypted(application: &str) -> Vec<bool> {
    sql(
        "tls",
        &format!(
            "SELECT ssl FROM pg_stat_ssl JOIN pg_stat_activity USING (pid) \
             WHERE application_name = '{application}'"
        ),
    )
    .lines()
    .map(|line| line == "t")
    .collect()
}

#[test]
fn postgres_connections_use_tls_as_the_sslmode_asks() {
    let Some(url) = database("tls") else {
        return;
    };
    let Some((ca, other_ca)) = support::postgres::certificates() else {
        eprintln!("skipped: a server of your own (SLATEFLOW_TEST_POSTGRES) has no test authority");
        return;
    };
    // The server's certificate names `localhost`; `url` reaches it by address.
    let by_name = url.replace("127.0.0.1", "localhost");
    let (ca, other_ca) = (ca.display().to_string(), other_ca.display().to_string());
    runtime().block_on(async {
        let connect = |url: String| async move { PostgresStore::connect(&url).await };
        // Checked in full: the authority signed it, for the host connected to. A store works.
        let store = connect(format!(
            "{by_name}?sslmode=verify-full&sslrootcert={ca}&application_name=full"
        ))
        .await
        .unwrap();
        let mut claim = store.create("t", "S", &[start()]).await.unwrap();
        store.append(&mut claim, &record(1, "a")).await.unwrap();
        drop(claim);
        assert_eq!(store.load("t", Records::All).await.unwrap().last_step, 1);
        let sessions = encrypted("full");
        assert!(
            !sessions.is_empty() && sessions.iter().all(|&tls| tls),
            "{sessions:?}"
        );

        // The certificate is not for the address: `verify-full` refuses, `verify-ca` does not.
        let error = connect(format!("{url}?sslmode=verify-full&sslrootcert={ca}"))
            .await
            .unwrap_err()
            .to_string();
        assert!(
            error.contains("`postgres://slateflow@127.0.0.1")
                && error.contains("certificate not valid for name"),
            "{error}"
        );
        // (Each store is kept while the server is asked about its connections.)
        let _ca_store = connect(format!(
            "{url}?sslmode=verify-ca&sslrootcert={ca}&application_name=ca"
        ))
        .await
        .unwrap();
        assert_eq!(encrypted("ca").first(), Some(&true));

        // Signed by an authority the client does not trust: refused, whatever the name.
        let error = connect(format!(
            "{by_name}?sslmode=verify-full&sslrootcert={other_ca}"
        ))
        .await
        .unwrap_err()
        .to_string();
        assert!(error.contains("UnknownIssuer"), "{error}");

        // `require` encrypts without checking; `disable` does not encrypt; the default, `prefer`,
        // encrypts when the server offers it, as this one does.
        for (mode, application, tls) in [
            ("sslmode=require&", "required", true),
            ("sslmode=disable&", "disabled", false),
            ("", "preferred", true),
        ] {
            let _store = connect(format!("{url}?{mode}application_name={application}"))
                .await
                .unwrap();
            assert_eq!(encrypted(application).first(), Some(&tls), "{mode}");
        }

        // Mistakes say what is wrong.
        let error = connect(format!("{url}?sslmode=verify")).await.unwrap_err();
        assert!(
            error.to_string().contains(
                "sslmode `verify` is not one of disable, prefer, require, verify-ca, verify-full"
            ),
            "{error}"
        );
        let error = connect(format!(
            "{url}?sslmode=verify-full&sslrootcert=/nowhere/ca.pem"
        ))
        .await
        .unwrap_err();
        assert!(
            error
                .to_string()
                .contains("cannot read sslrootcert `/nowhere/ca.pem`"),
            "{error}"
        );
    });
}

/// `compact` removes the kept and voided parts at the steps it is given, and nothing else.
async fn compacts_only_the_parts_at_the_steps_given(store: &impl CheckpointStore) {
    let part = |step: u64, kind: RecordKind| StepRecord {
        node: "[b, c]".into(),
        key: "0".into(),
        ..StepRecord::new(step, kind)
    };
    let records = [
        start(),
        part(0, RecordKind::Kept),
        record(1, "fork"),
        part(1, RecordKind::Kept),
        part(1, RecordKind::Discard),
        record(2, "fork"),
        part(2, RecordKind::Kept),
    ];
    let mut claim = store.create("theta", "S", &records[..1]).await.unwrap();
    store.append_all(&mut claim, &records[1..]).await.unwrap();
    let kinds = |log: &ThreadLog| {
        log.records
            .iter()
            .map(|record| (record.step, record.kind))
            .collect::<Vec<_>>()
    };
    store.compact(&mut claim, 1..2).await.unwrap();
    let log = store.load("theta", Records::All).await.unwrap();
    assert_eq!(
        kinds(&log),
        [
            (0, RecordKind::Start),
            (0, RecordKind::Kept),
            (1, RecordKind::Step),
            (2, RecordKind::Step),
            (2, RecordKind::Kept),
        ]
    );
    store.compact(&mut claim, 0..2).await.unwrap();
    let log = store.load("theta", Records::All).await.unwrap();
    assert_eq!(
        kinds(&log),
        [
            (0, RecordKind::Start),
            (1, RecordKind::Step),
            (2, RecordKind::Step),
            (2, RecordKind::Kept),
        ]
    );
    // The thread goes on after its records were removed.
    store.append(&mut claim, &record(3, "d")).await.unwrap();
    assert_eq!(store.verify("theta").await.unwrap().last_step, 3);
}

#[test]
fn compaction_removes_only_the_parts_at_the_steps_given() {
    block_on(compacts_only_the_parts_at_the_steps_given(
        &MemoryStore::new(),
    ));
    let root = scratch("compact-sqlite");
    std::fs::create_dir_all(&root).unwrap();
    block_on(compacts_only_the_parts_at_the_steps_given(
        &SqliteStore::open(root.join("runs.db")).unwrap(),
    ));
    if let Some(url) = database("compact") {
        runtime().block_on(async {
            let store = PostgresStore::connect(&url).await.unwrap();
            compacts_only_the_parts_at_the_steps_given(&store).await;
        });
    }
}

/// The file store leaves the kept parts of saved steps out of every read at once, and writes its
/// log again without them once they make up half of it: the log shrinks, the thread goes on
/// appending to the new log, and a new claim reads it whole.
#[test]
fn the_file_store_writes_its_log_again_without_compacted_parts() {
    let root = scratch("compact-file");
    let store = FileStore::open(&root).unwrap();
    let log = root.join("omega").join("steps.log");
    // Each step keeps two parts of about 8 KiB before it is saved, as a fork's branches would.
    let part = |step: u64, key: &str| StepRecord {
        node: "[b, c]".into(),
        key: key.into(),
        update: serde_json::json!({ "log": ["x".repeat(8 * 1024)] }),
        ..StepRecord::new(step, RecordKind::Kept)
    };
    block_on(async {
        let mut claim = store.create("omega", "S", &[start()]).await.unwrap();
        let mut sizes = Vec::new();
        for step in 1..=20 {
            store
                .append(&mut claim, &part(step - 1, "0"))
                .await
                .unwrap();
            store
                .append(&mut claim, &part(step - 1, "1"))
                .await
                .unwrap();
            // Before the step is saved, its parts are read (a resume needs them).
            let read = store.load("omega", Records::All).await.unwrap();
            let kept = read
                .records
                .iter()
                .filter(|record| record.kind == RecordKind::Kept)
                .count();
            assert_eq!(kept, 2, "step {step}");
            store
                .append(&mut claim, &record(step, "fork"))
                .await
                .unwrap();
            store.compact(&mut claim, step - 1..step).await.unwrap();
            sizes.push(std::fs::metadata(&log).unwrap().len());
            let read = store.load("omega", Records::All).await.unwrap();
            assert!(
                read.records
                    .iter()
                    .all(|record| record.kind != RecordKind::Kept),
                "step {step}: the saved step's parts are left out"
            );
            assert_eq!(read.last_step, step);
        }
        // 40 parts of 8 KiB went through the log; it was written again whenever they made up
        // half of it, so it never held much more than 64 KiB of them.
        let largest = *sizes.iter().max().unwrap();
        assert!(largest < 100 * 1024, "{sizes:?}");
        assert!(
            sizes.windows(2).any(|pair| pair[1] < pair[0]),
            "the log shrank: {sizes:?}"
        );
        // Nothing but the parts is gone: every step reads back, in order, and verifies.
        let verified = store.verify("omega").await.unwrap();
        assert_eq!(verified.last_step, 20);
        let steps: Vec<u64> = store
            .load("omega", Records::All)
            .await
            .unwrap()
            .records
            .iter()
            .map(|record| record.step)
            .collect();
        assert_eq!(steps, (0..=20).collect::<Vec<_>>());
        // A rewrite that died before replacing the log leaves its file; the next claim drops it.
        drop(claim);
        let leftover = root.join("omega").join(".steps.log.compacted");
        std::fs::write(&leftover, b"half a rewrite").unwrap();
        let mut claim = store.claim("omega").await.unwrap();
        assert!(!leftover.exists());
        store.append(&mut claim, &record(21, "d")).await.unwrap();
        assert_eq!(store.verify("omega").await.unwrap().last_step, 21);
    });
}
