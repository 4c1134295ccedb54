//! Checkpoint stores: the in-memory and directory stores keep threads, records and statuses; the
//! directory store survives torn writes, refuses damaged records, and names what went wrong.

use std::path::PathBuf;

use slateflow::checkpoint::{
    CheckpointStore, FileStore, MemoryStore, RecordKind, RunStatus, SqliteStore, StepRecord,
    StoreError,
};

fn record(step: u64, node: &str) -> StepRecord {
    StepRecord {
        step,
        kind: RecordKind::Step,
        node: node.to_string(),
        action: "default".into(),
        position: vec![u32::try_from(step).unwrap()],
        update: serde_json::json!({ "count": step }),
        snapshot: step
            .is_multiple_of(2)
            .then(|| serde_json::json!({ "count": step * 10 })),
        saved_at_ms: 1_700_000_000_000 + step,
    }
}

/// A thread's first record: the initial state.
fn start() -> StepRecord {
    StepRecord {
        kind: RecordKind::Start,
        node: String::new(),
        action: String::new(),
        position: Vec::new(),
        ..record(0, "")
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

/// The behaviour every store shares.
async fn keeps_threads_records_and_statuses(store: &impl CheckpointStore) {
    store.create("alpha", "Triage", &start()).await.unwrap();
    store
        .create("beta-2.x_y", "Triage", &start())
        .await
        .unwrap();
    for step in 1..=3 {
        store
            .append("alpha", &record(step, "classify"))
            .await
            .unwrap();
    }
    store
        .set_status(
            "alpha",
            &RunStatus::Paused {
                at: "before report".into(),
            },
        )
        .await
        .unwrap();
    let log = store.load("alpha").await.unwrap();
    assert_eq!(log.state_type, "Triage");
    assert_eq!(
        log.status,
        RunStatus::Paused {
            at: "before report".into()
        }
    );
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
    assert_eq!(store.load("beta-2.x_y").await.unwrap().records, [start()]);
    assert_eq!(store.threads().await.unwrap(), ["alpha", "beta-2.x_y"]);

    let error = store.load("gamma").await.unwrap_err();
    assert!(matches!(&error, StoreError::UnknownThread { thread } if thread == "gamma"));
    assert_eq!(
        error.to_string(),
        "unknown thread `gamma`: it was never started in this store"
    );
    assert!(matches!(
        store.append("gamma", &record(1, "a")).await,
        Err(StoreError::UnknownThread { .. })
    ));
    assert!(matches!(
        store.create("alpha", "Triage", &start()).await,
        Err(StoreError::ThreadExists { .. })
    ));
    for bad in ["", ".hidden", "a/b", "../up", "sp ace", &"x".repeat(129)] {
        assert!(
            matches!(
                store.create(bad, "Triage", &start()).await,
                Err(StoreError::InvalidThreadId { .. })
            ),
            "{bad:?} was accepted"
        );
    }
    // Nothing was lost along the way.
    assert_eq!(store.load("alpha").await.unwrap().records.len(), 4);
}

#[test]
fn the_memory_store_keeps_threads() {
    block_on(keeps_threads_records_and_statuses(&MemoryStore::new()));
}

#[test]
fn the_file_store_keeps_threads_across_instances() {
    let root = scratch("keeps");
    block_on(keeps_threads_records_and_statuses(
        &FileStore::open(&root).unwrap(),
    ));
    // A new store on the same directory (a new process) reads the same.
    let reopened = FileStore::open(&root).unwrap();
    let log = block_on(reopened.load("alpha")).unwrap();
    assert_eq!(log.records.len(), 4);
    assert_eq!(
        log.status,
        RunStatus::Paused {
            at: "before report".into()
        }
    );
}

#[test]
fn the_sqlite_store_keeps_threads_across_connections() {
    let root = scratch("sqlite");
    std::fs::create_dir_all(&root).unwrap();
    let path = root.join("runs.db");
    block_on(keeps_threads_records_and_statuses(
        &SqliteStore::open(&path).unwrap(),
    ));
    let reopened = SqliteStore::open(&path).unwrap();
    let log = block_on(reopened.load("alpha")).unwrap();
    assert_eq!(log.records.len(), 4);
    assert_eq!(
        log.status,
        RunStatus::Paused {
            at: "before report".into()
        }
    );
}

#[test]
fn a_damaged_sqlite_record_is_refused_naming_it() {
    let root = scratch("sqlite-damaged");
    std::fs::create_dir_all(&root).unwrap();
    let path = root.join("runs.db");
    let store = SqliteStore::open(&path).unwrap();
    block_on(async {
        store.create("t", "S", &start()).await.unwrap();
        store.append("t", &record(1, "a")).await.unwrap();
        store.append("t", &record(2, "b")).await.unwrap();
    });
    // Another program damages the third record (step 2).
    let connection = rusqlite::Connection::open(&path).unwrap();
    connection
        .execute(
            "UPDATE records SET body = '{\"step\": \"two\"}' WHERE seq = 3",
            [],
        )
        .unwrap();
    let error = block_on(store.load("t")).unwrap_err();
    assert!(
        matches!(&error, StoreError::Corrupt { thread, what, .. } if thread == "t" && what == "record 3"),
        "{error:?}"
    );
}

#[test]
fn a_sqlite_path_in_a_missing_directory_is_an_error_naming_the_action() {
    let error = SqliteStore::open(scratch("missing").join("no").join("runs.db")).unwrap_err();
    assert!(
        error.to_string().starts_with("cannot open the database: "),
        "{error}"
    );
}

fn log_path(root: &std::path::Path) -> PathBuf {
    root.join("t").join("steps.log")
}

#[test]
fn a_torn_last_record_is_dropped_and_the_log_goes_on_from_the_last_whole_step() {
    for tear in ["cut", "garbled"] {
        let root = scratch(&format!("torn-{tear}"));
        let store = FileStore::open(&root).unwrap();
        block_on(async {
            store.create("t", "S", &start()).await.unwrap();
            store.append("t", &record(1, "a")).await.unwrap();
            store.append("t", &record(2, "b")).await.unwrap();
        });
        let whole = std::fs::read(log_path(&root)).unwrap();
        let third = serde_json::to_string(&record(3, "c")).unwrap();
        let mut bytes = whole.clone();
        if tear == "cut" {
            // A crash in the middle of writing record 3: half a line, no newline.
            bytes.extend_from_slice(format!("8badf00d {}", &third[..third.len() / 2]).as_bytes());
        } else {
            // Record 3's line whole, but its bytes are not the ones checksummed (a block of it
            // never reached the disk).
            bytes.extend_from_slice(format!("00000000 {third}\n").as_bytes());
        }
        std::fs::write(log_path(&root), &bytes).unwrap();

        let log = block_on(store.load("t")).unwrap();
        assert!(log.dropped_torn_record, "{tear}");
        assert_eq!(
            log.records,
            [start(), record(1, "a"), record(2, "b")],
            "{tear}"
        );
        assert_eq!(
            std::fs::read(log_path(&root)).unwrap(),
            whole,
            "{tear}: truncated back"
        );
        block_on(store.append("t", &record(3, "c"))).unwrap();
        let log = block_on(store.load("t")).unwrap();
        assert!(!log.dropped_torn_record);
        assert_eq!(log.records.len(), 4, "{tear}");
    }
}

#[test]
fn a_damaged_record_before_the_last_is_refused_naming_it() {
    let root = scratch("damaged");
    let store = FileStore::open(&root).unwrap();
    block_on(async {
        store.create("t", "S", &start()).await.unwrap();
        for step in 1..=3 {
            store.append("t", &record(step, "a")).await.unwrap();
        }
    });
    // Change one byte of the third record's JSON (step 2), which is not the last.
    let text = std::fs::read_to_string(log_path(&root)).unwrap();
    let mut lines: Vec<String> = text.lines().map(str::to_string).collect();
    lines[2] = lines[2].replace("\"node\":\"a\"", "\"node\":\"b\"");
    let damaged = lines.join("\n") + "\n";
    std::fs::write(log_path(&root), &damaged).unwrap();
    let error = block_on(store.load("t")).unwrap_err();
    let StoreError::Corrupt {
        thread,
        what,
        reason,
    } = &error
    else {
        panic!("expected a corrupt-record error, got {error:?}");
    };
    assert_eq!(
        (thread.as_str(), what.as_str()),
        ("t", "record 3 of steps.log")
    );
    assert!(reason.contains("checksum"), "{reason}");
    assert!(
        error
            .to_string()
            .starts_with("thread `t`: record 3 of steps.log is corrupt"),
        "{error}"
    );
    // Refusing did not touch the file.
    assert_eq!(std::fs::read_to_string(log_path(&root)).unwrap(), damaged);
}

#[test]
fn a_thread_folder_left_by_a_creation_cut_short_is_started_over() {
    let root = scratch("cut-short");
    // A crash between making the folder and writing `meta.json`.
    std::fs::create_dir_all(root.join("t")).unwrap();
    std::fs::write(root.join("t").join("steps.log"), b"half a rec").unwrap();
    let store = FileStore::open(&root).unwrap();
    assert!(
        block_on(store.threads()).unwrap().is_empty(),
        "not a thread yet"
    );
    block_on(store.create("t", "S", &start())).unwrap();
    assert_eq!(block_on(store.load("t")).unwrap().records, [start()]);
}

#[test]
fn a_damaged_status_file_is_refused_naming_it() {
    let root = scratch("status");
    let store = FileStore::open(&root).unwrap();
    block_on(store.create("t", "S", &start())).unwrap();
    std::fs::write(
        root.join("t").join("status.json"),
        b"{\"status\":\"sleeping\"}",
    )
    .unwrap();
    let error = block_on(store.load("t")).unwrap_err();
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
fn a_log_the_store_cannot_write_is_an_io_error_naming_the_thread_and_file() {
    // (The tests may run as root, for whom permissions do not apply: a directory standing where
    // the log should be is refused by the system for everyone.)
    let root = scratch("unwritable");
    let store = FileStore::open(&root).unwrap();
    block_on(store.create("t", "S", &start())).unwrap();
    let log = root.join("t").join("steps.log");
    std::fs::remove_file(&log).unwrap();
    std::fs::create_dir(&log).unwrap();
    let error = block_on(store.append("t", &record(1, "a"))).unwrap_err();
    let StoreError::Io { thread, path, .. } = &error else {
        panic!("expected an I/O error, got {error:?}");
    };
    assert_eq!((thread.as_str(), path), ("t", &log));
    assert!(
        error.to_string().starts_with("thread `t`: cannot open `"),
        "{error}"
    );
}
