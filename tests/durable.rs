//! Durable runs: every step saved before the next begins; resume from the last saved step after a
//! failure (nothing applied twice, no saved node run again), inside nested flows and after forks;
//! pauses with a human's input; history, state at a step, branching; bad threads; a running
//! thread cancelled from another handle, on every single-machine store.

use serde::{Deserialize, Serialize};
use slateflow::checkpoint::{CheckpointStore, FileStore, MemoryStore, RecordKind, RunStatus};
use slateflow::durable::{Outcome, Pause, PauseWhen};
use slateflow::{Command, Context, Error, NodeError, SharedState, flow, node};

#[derive(SharedState, Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
struct Ledger {
    /// Summed: a step applied twice would show.
    #[reducer(add)]
    count: u64,
    #[reducer(append)]
    log: Vec<String>,
    approved: Option<bool>,
    verdict: Option<String>,
}

/// Helpers shared by test files; each uses part of them.
#[allow(dead_code)]
mod support {
    pub(crate) mod runs;
}

use support::runs::{block_on, failing, params, ran};

/// Counts the run of `node` for the test named in the params, and fails if told to.
fn visit(context: &Context<'_>, node: &str) -> Result<LedgerUpdate, NodeError> {
    let test = context.params().get_str("test").unwrap_or_default();
    support::runs::count(&format!("{test}/{node}"))?;
    Ok(Ledger::update().add_count(1).push_log(node.to_string()))
}

fn fail(test: &str, node: &str) {
    support::runs::fail(&format!("{test}/{node}"));
}

fn heal(test: &str, node: &str) {
    support::runs::heal(&format!("{test}/{node}"));
}

#[node]
fn a(_: &Ledger, context: &Context<'_>) -> Result<Command<Ledger>, NodeError> {
    Ok(Command::new(visit(context, "a")?))
}

#[node]
fn b(_: &Ledger, context: &Context<'_>) -> Result<Command<Ledger>, NodeError> {
    Ok(Command::new(visit(context, "b")?))
}

#[node]
fn c(_: &Ledger, context: &Context<'_>) -> Result<Command<Ledger>, NodeError> {
    Ok(Command::new(visit(context, "c")?))
}

#[node]
fn d(_: &Ledger, context: &Context<'_>) -> Result<Command<Ledger>, NodeError> {
    Ok(Command::new(visit(context, "d")?))
}

/// Publishes only what was approved.
#[node(actions = ["published", "rejected"])]
fn publish(ledger: &Ledger, context: &Context<'_>) -> Result<Command<Ledger>, NodeError> {
    let update = visit(context, "publish")?;
    let action = if ledger.approved == Some(true) {
        "published"
    } else {
        "rejected"
    };
    Ok(Command::new(update).with_action(action))
}

#[test]
fn a_durable_run_saves_every_step_and_its_end() {
    let flow = flow! { a >> b >> c; }.with_params(params("saves"));
    let durable = flow.durable(MemoryStore::new());
    let mut ledger = Ledger::default();
    let outcome = block_on(durable.start("saves", &mut ledger)).unwrap();
    assert_eq!(outcome, Outcome::Finished("default".into()));
    assert_eq!(ledger.log, ["a", "b", "c"]);
    let history = block_on(durable.history("saves")).unwrap();
    let summary: Vec<(u64, RecordKind, &str)> = history
        .iter()
        .map(|entry| (entry.step, entry.kind, entry.node.as_str()))
        .collect();
    assert_eq!(
        summary,
        [
            (0, RecordKind::Start, ""),
            (1, RecordKind::Step, "a"),
            (2, RecordKind::Step, "b"),
            (3, RecordKind::Step, "c"),
        ]
    );
    assert_eq!(
        block_on(durable.status("saves")).unwrap(),
        RunStatus::Finished {
            action: "default".into()
        }
    );
    assert_eq!(block_on(durable.state("saves")).unwrap(), ledger);
    assert_eq!(block_on(durable.state_at("saves", 1)).unwrap().log, ["a"]);
    // A finished thread resumes to its end without running anything.
    let (state, outcome) = block_on(durable.resume("saves")).unwrap();
    assert_eq!(
        (state, outcome),
        (ledger, Outcome::Finished("default".into()))
    );
    assert_eq!(ran("saves/a"), 1);
}

#[test]
fn a_submitted_thread_is_queued_runs_nothing_and_names_its_flow() {
    let test = "submitted";
    let flow = flow! { a >> b; }.with_params(params(test));
    let durable = flow.durable(MemoryStore::new()).named("ledger");
    block_on(durable.submit(test, &Ledger::default())).unwrap();
    assert_eq!(block_on(durable.status(test)).unwrap(), RunStatus::Queued);
    assert_eq!(ran("submitted/a"), 0, "submitting runs nothing");
    let history = block_on(durable.history(test)).unwrap();
    assert_eq!(
        (history.len(), history[0].kind, history[0].node.as_str()),
        (1, RecordKind::Start, "ledger"),
        "the start record names the flow a worker runs it with"
    );
    let (ledger, outcome) = block_on(durable.resume(test)).unwrap();
    assert_eq!(outcome, Outcome::Finished("default".into()));
    assert_eq!(ledger.log, ["a", "b"]);
    let error = block_on(durable.submit(test, &Ledger::default())).unwrap_err();
    assert!(error.to_string().contains("already exists"), "{error}");
}

#[test]
fn a_failed_run_resumes_from_its_last_saved_step_and_runs_no_saved_node_again() {
    let test = "failed";
    let flow = flow! { a >> b >> c >> d; }.with_params(params(test));
    let root = std::path::PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("durable-failed");
    let _ = std::fs::remove_dir_all(&root);
    let durable = flow.durable(FileStore::open(&root).unwrap());
    fail(test, "c");
    let mut ledger = Ledger::default();
    let error = block_on(durable.start(test, &mut ledger)).unwrap_err();
    assert!(
        matches!(
            error,
            Error::NodeFailed {
                node: "c",
                step: 3,
                ..
            }
        ),
        "{error:?}"
    );
    let RunStatus::Failed { error } = block_on(durable.status(test)).unwrap() else {
        panic!("the thread should be failed");
    };
    assert!(error.contains("c is failing"), "{error}");
    heal(test, "c");
    let (resumed, outcome) = block_on(durable.resume(test)).unwrap();
    assert_eq!(outcome, Outcome::Finished("default".into()));
    assert_eq!(resumed.log, ["a", "b", "c", "d"]);
    assert_eq!(resumed.count, 4, "no step applied twice");
    assert_eq!(
        (ran("failed/a"), ran("failed/b")),
        (1, 1),
        "saved nodes did not run again"
    );
    assert_eq!((ran("failed/c"), ran("failed/d")), (2, 1));
}

#[test]
fn a_run_resumes_inside_a_nested_flow() {
    let test = "nested";
    let inner = flow! { b >> c >> d; };
    let outer = flow! { a >> inner >> publish; }.with_params(params(test));
    let durable = outer.durable(MemoryStore::new());
    fail(test, "d");
    let mut ledger = Ledger::default();
    assert!(block_on(durable.start(test, &mut ledger)).is_err());
    let history = block_on(durable.history(test)).unwrap();
    assert_eq!(
        history[3].node, "inner/c",
        "nested steps are saved with their path"
    );
    heal(test, "d");
    let (resumed, outcome) = block_on(durable.resume(test)).unwrap();
    assert_eq!(outcome, Outcome::Finished("rejected".into()));
    assert_eq!(resumed.log, ["a", "b", "c", "d", "publish"]);
    assert_eq!((ran("nested/b"), ran("nested/c")), (1, 1));
}

#[node]
fn judge_yes(_: &Ledger, context: &Context<'_>) -> Result<Command<Ledger>, NodeError> {
    let update = visit(context, "judge_yes")?;
    Ok(Command::new(update.set_verdict(Some("yes".into()))))
}

#[node]
fn judge_also(ledger: &Ledger, context: &Context<'_>) -> Result<Command<Ledger>, NodeError> {
    let update = visit(context, "judge_also")?;
    // Writes the verdict too until someone approves: a conflict.
    Ok(Command::new(if ledger.approved == Some(true) {
        update
    } else {
        update.set_verdict(Some("also".into()))
    }))
}

#[test]
fn a_conflicting_fork_fails_the_thread_and_a_fixed_resume_goes_on() {
    let test = "conflict";
    let flow = flow! { a >> [judge_yes, judge_also] >> d; }.with_params(params(test));
    let durable = flow.durable(MemoryStore::new());
    let mut ledger = Ledger::default();
    let error = block_on(durable.start(test, &mut ledger)).unwrap_err();
    assert!(
        matches!(
            error,
            Error::ParallelConflict {
                field: "verdict",
                ..
            }
        ),
        "{error:?}"
    );
    // The cause is fixed with an update through the reducers, then the thread resumes.
    block_on(durable.update(test, Ledger::update().set_approved(Some(true)))).unwrap();
    let (resumed, outcome) = block_on(durable.resume(test)).unwrap();
    assert_eq!(outcome, Outcome::Finished("default".into()));
    assert_eq!(resumed.log, ["a", "judge_yes", "judge_also", "d"]);
    assert_eq!(resumed.verdict.as_deref(), Some("yes"));
    assert_eq!(ran("conflict/a"), 1, "the step before the fork was saved");
    assert_eq!(
        ran("conflict/judge_yes"),
        2,
        "the fork was not saved: it ran again whole"
    );
}

#[test]
fn a_pause_takes_a_humans_input_and_completed_nodes_do_not_run_again() {
    let test = "pause";
    let flow = flow! { a >> b >> publish; }.with_params(params(test));
    let durable = flow
        .durable(MemoryStore::new())
        .interrupt_before(&["publish"]);
    let mut ledger = Ledger::default();
    let outcome = block_on(durable.start(test, &mut ledger)).unwrap();
    let pause = Pause::new("publish", PauseWhen::Before, 2);
    assert_eq!(pause.key, "before:publish@2");
    assert_eq!(outcome, Outcome::Paused(vec![pause.clone()]));
    assert_eq!(
        block_on(durable.status(test)).unwrap(),
        RunStatus::Paused {
            pauses: vec![pause.key.clone()]
        }
    );
    assert_eq!(
        block_on(durable.pending(test)).unwrap(),
        std::slice::from_ref(&pause)
    );
    // The pause takes one answer; a finished thread takes none.
    let approve = || Ledger::update().set_approved(Some(true));
    block_on(durable.answer(test, &pause.key, approve())).unwrap();
    let error = block_on(durable.answer(test, &pause.key, approve())).unwrap_err();
    assert!(
        error.to_string().contains("was answered already"),
        "{error}"
    );
    let (resumed, outcome) = block_on(durable.resume(test)).unwrap();
    assert_eq!(outcome, Outcome::Finished("published".into()));
    assert_eq!(resumed.log, ["a", "b", "publish"]);
    assert_eq!(
        (ran("pause/a"), ran("pause/b"), ran("pause/publish")),
        (1, 1, 1)
    );
    let kinds: Vec<RecordKind> = block_on(durable.history(test))
        .unwrap()
        .iter()
        .map(|entry| entry.kind)
        .collect();
    assert!(
        kinds.contains(&RecordKind::Input),
        "the input is in the history"
    );
    assert!(matches!(
        block_on(durable.update(test, Ledger::update())),
        Err(Error::Resume { .. })
    ));
}

#[test]
fn a_pause_after_a_node_resumes_after_it() {
    let test = "after";
    let flow = flow! { a >> b >> c; }.with_params(params(test));
    let durable = flow.durable(MemoryStore::new()).interrupt_after(&["a"]);
    let mut ledger = Ledger::default();
    let outcome = block_on(durable.start(test, &mut ledger)).unwrap();
    assert_eq!(
        outcome,
        Outcome::Paused(vec![Pause::new("a", PauseWhen::After, 1)])
    );
    let (resumed, outcome) = block_on(durable.resume(test)).unwrap();
    assert_eq!(outcome, Outcome::Finished("default".into()));
    assert_eq!(resumed.log, ["a", "b", "c"]);
    assert_eq!(ran("after/a"), 1);
}

#[test]
fn a_new_thread_can_start_from_an_earlier_step() {
    let test = "branch";
    let flow = flow! { a >> b >> c; }.with_params(params(test));
    let durable = flow.durable(MemoryStore::new());
    let mut ledger = Ledger::default();
    block_on(durable.start(test, &mut ledger)).unwrap();
    block_on(durable.branch(test, 1, "branch-2")).unwrap();
    assert_eq!(block_on(durable.state("branch-2")).unwrap().log, ["a"]);
    let (resumed, _) = block_on(durable.resume("branch-2")).unwrap();
    assert_eq!(resumed.log, ["a", "b", "c"]);
    assert_eq!(ran("branch/a"), 1, "the branch resumed after `a`");
    assert_eq!(ran("branch/b"), 2, "`b` ran again on the branch");
    // The original is untouched: its start and three steps.
    assert_eq!(block_on(durable.history(test)).unwrap().len(), 4);
}

#[test]
fn unknown_threads_and_threads_of_another_state_are_clear_errors() {
    let flow = flow! { a >> b; }.with_params(params("errors"));
    let store = MemoryStore::new();
    let first = slateflow::checkpoint::StepRecord::new(0, RecordKind::Start)
        .with_snapshot(serde_json::json!({}));
    drop(block_on(store.create("other", "some::OtherState", &[first])).unwrap());
    let durable = flow.durable(store);
    let error = block_on(durable.resume("nobody")).unwrap_err();
    assert_eq!(
        error.to_string(),
        "unknown thread `nobody`: it was never started in this store"
    );
    let error = block_on(durable.resume("other")).unwrap_err();
    let Error::Resume { thread, reason, .. } = &error else {
        panic!("expected a resume error, got {error:?}");
    };
    assert_eq!(thread, "other");
    assert!(reason.contains("some::OtherState"), "{reason}");
    let mut ledger = Ledger::default();
    block_on(durable.start("twice", &mut ledger)).unwrap();
    assert!(matches!(
        block_on(durable.start("twice", &mut ledger)),
        Err(Error::Store(
            slateflow::checkpoint::StoreError::ThreadExists { .. }
        ))
    ));
}

#[derive(SharedState, Clone, Debug, Default, Serialize, Deserialize)]
struct Chat {
    #[reducer(append)]
    messages: Vec<String>,
}

/// Appends one message a step until there are as many as the params say.
#[node(actions = ["again", "done"])]
fn say(chat: &Chat, context: &Context<'_>) -> Command<Chat> {
    let total = context
        .params()
        .get("total")
        .and_then(serde_json::Value::as_u64)
        .unwrap();
    let next = chat.messages.len() as u64 + 1;
    let message = format!("message {next}: the quick brown fox jumps over the lazy dog");
    let action = if next < total { "again" } else { "done" };
    Command::new(Chat::update().push_messages(message)).with_action(action)
}

/// The bytes a thread takes in a file store, and its snapshots.
fn stored(root: &std::path::Path, thread: &str) -> (u64, usize) {
    let bytes = std::fs::read_dir(root.join(thread))
        .unwrap()
        .map(|entry| entry.unwrap().metadata().unwrap().len())
        .sum();
    let log = std::fs::read_to_string(root.join(thread).join("steps.log")).unwrap();
    (bytes, log.matches("\"snapshot\"").count())
}

#[test]
fn storage_grows_linearly_with_the_steps_not_with_the_state_times_the_steps() {
    let root = std::path::PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("durable-growth");
    let _ = std::fs::remove_dir_all(&root);
    let mut sizes = Vec::new();
    for total in [500_u64, 1_000] {
        let flow = flow! { say - "again" >> say; }
            .with_params(slateflow::Params::new().with("total", total));
        let durable = flow.durable(FileStore::open(&root).unwrap());
        let thread = format!("chat-{total}");
        let mut chat = Chat::default();
        block_on(durable.start(&thread, &mut chat)).unwrap();
        assert_eq!(chat.messages.len() as u64, total);
        assert_eq!(
            block_on(durable.state(&thread)).unwrap().messages,
            chat.messages
        );
        sizes.push(stored(&root, &thread));
    }
    let [(half, half_snapshots), (whole, whole_snapshots)] = sizes[..] else {
        unreachable!()
    };
    // Each step's record holds one message (~60 bytes) plus ~150 bytes of bookkeeping; the
    // snapshots, taken when the updates since the last one outweigh it, and the final one add at
    // most about as much again: a bound per step that holds at both sizes is linear growth.
    let (per_step_half, per_step_whole) = (half / 500, whole / 1_000);
    assert!(
        per_step_whole <= 520,
        "{per_step_whole} bytes a step over 1,000 steps"
    );
    assert!(
        per_step_whole * 10 <= per_step_half * 13,
        "bytes a step grew from {per_step_half} (500 steps) to {per_step_whole} (1,000 steps)"
    );
    // Snapshots get rarer as the state grows (a fixed interval would make them quadratic).
    assert!(
        whole_snapshots < 2 * half_snapshots,
        "{half_snapshots} then {whole_snapshots}"
    );
    // Storing the whole state at every step (LangGraph's SQLite saver) would take far more.
    let every_step: u64 = (1..=1_000_u64).map(|n| n * 62).sum();
    assert!(whole * 20 < every_step, "{whole} vs {every_step}");
}

#[test]
fn an_initial_state_from_json_names_the_field_path_of_a_mistake() {
    let ledger: Ledger =
        slateflow::state::state_from_json(r#"{"count": 2, "log": ["x"], "approved": true}"#)
            .unwrap();
    assert_eq!(
        (ledger.count, ledger.log.len(), ledger.approved),
        (2, 1, Some(true))
    );
    let cases = [
        (r#"{"count": "two"}"#, "count"),
        (r#"{"log": ["x", 3]}"#, "log[1]"),
        (r#"{"approved": "yes"}"#, "approved"),
        (r#"{"count": 1, "log": []} trailing"#, "."),
    ];
    for (document, path) in cases {
        match slateflow::state::state_from_json::<Ledger>(document) {
            Err(Error::InvalidState {
                path: found,
                message,
            }) => {
                assert_eq!(found, path, "{document}: {message}");
                assert!(message.contains("line 1"), "{message}");
            }
            other => panic!("{document}: expected an invalid-state error, got {other:?}"),
        }
    }
}

/// A state with a field that is not saved: a handle the caller owns.
#[derive(SharedState, Clone, Debug, Default, Serialize, Deserialize)]
struct WithClient {
    #[reducer(append)]
    log: Vec<String>,
    /// Not saved: restored by the caller on resume.
    #[serde(skip)]
    client: Option<std::sync::Arc<String>>,
}

#[node]
fn call(state: &WithClient, context: &Context<'_>) -> Result<Command<WithClient>, NodeError> {
    let test = context.params().get_str("test").unwrap_or_default();
    if failing(&format!("{test}/call")) {
        return Err("the endpoint is down".into());
    }
    let client = state
        .client
        .as_deref()
        .ok_or("no client: restore it on resume")?;
    Ok(Command::new(
        WithClient::update().push_log(format!("called {client}")),
    ))
}

#[node]
fn prepare(_: &WithClient) -> Command<WithClient> {
    Command::new(WithClient::update().push_log("prepared".to_string()))
}

#[test]
fn fields_that_are_not_saved_are_restored_by_the_caller_on_resume() {
    let test = "skip";
    let flow = flow! { prepare >> call; }.with_params(params(test));
    let durable = flow.durable(MemoryStore::new());
    fail(test, "call");
    let mut state = WithClient {
        client: Some(std::sync::Arc::new("model-endpoint".into())),
        ..WithClient::default()
    };
    assert!(block_on(durable.start(test, &mut state)).is_err());
    heal(test, "call");
    // Resumed as saved, the client is gone: the node says so.
    let error = block_on(durable.resume(test)).unwrap_err();
    assert!(error.to_string().contains("no client"), "{error}");
    // The caller puts it back before any node runs.
    let restoring = durable.restore(|state: &mut WithClient| {
        state.client = Some(std::sync::Arc::new("model-endpoint".into()));
    });
    let (state, outcome) = block_on(restoring.resume(test)).unwrap();
    assert_eq!(outcome, Outcome::Finished("default".into()));
    assert_eq!(state.log, ["prepared", "called model-endpoint"]);
}

#[test]
fn a_batch_flow_is_saved_as_one_step_and_runs_again_whole_after_a_failure() {
    use slateflow::batch::{self, Batch};
    let test = "batch";
    let items = batch::from_fn(|_: &Ledger| {
        (1..=3)
            .map(|item| {
                slateflow::Params::new()
                    .with("test", "batch")
                    .with("item", item)
            })
            .collect()
    });
    let per_item = flow! { b >> c; };
    let batch = Batch::flow(per_item, items);
    let flow = flow! { a >> batch >> d; }.with_params(params(test));
    let durable = flow.durable(MemoryStore::new());
    fail(test, "d");
    let mut ledger = Ledger::default();
    assert!(block_on(durable.start(test, &mut ledger)).is_err());
    let history = block_on(durable.history(test)).unwrap();
    let nodes: Vec<&str> = history
        .iter()
        .filter(|entry| entry.kind != RecordKind::Kept)
        .map(|entry| entry.node.as_str())
        .collect();
    assert_eq!(
        nodes,
        ["", "a", "batch"],
        "the batch's six inner steps are one record"
    );
    // Its runs were kept as they finished, until the step was saved; then they were removed (the
    // step's record holds their merged update).
    assert!(
        history.iter().all(|entry| entry.kind != RecordKind::Kept),
        "{history:?}"
    );
    heal(test, "d");
    let (resumed, _) = block_on(durable.resume(test)).unwrap();
    assert_eq!(resumed.count, 1 + 6 + 1, "nothing applied twice");
    assert_eq!(
        (ran("batch/b"), ran("batch/d")),
        (3, 2),
        "the saved batch did not run again"
    );
}

#[test]
fn a_failure_inside_a_batch_flow_resumes_from_before_the_batch() {
    use slateflow::batch::{self, Batch};
    let test = "inside";
    let items = batch::from_fn(|_: &Ledger| {
        (1..=3)
            .map(|item| {
                slateflow::Params::new()
                    .with("test", "inside")
                    .with("item", item)
            })
            .collect()
    });
    let per_item = flow! { b >> c; };
    let batch = Batch::flow(per_item, items);
    let flow = flow! { a >> batch >> d; }.with_params(params(test));
    let durable = flow.durable(MemoryStore::new());
    fail(test, "c");
    let mut ledger = Ledger::default();
    assert!(block_on(durable.start(test, &mut ledger)).is_err());
    assert_eq!(ledger.count, 2, "in memory, item 1's `b` had been applied");
    heal(test, "c");
    let (resumed, _) = block_on(durable.resume(test)).unwrap();
    assert_eq!(
        resumed.count,
        1 + 6 + 1,
        "the unsaved partial batch was not kept"
    );
    assert_eq!(ran("inside/b"), 1 + 3, "the batch ran again from its start");
}

/// Asks a person whether to publish.
#[node]
fn ask_to_publish(ledger: &Ledger, context: &Context<'_>) -> Result<Command<Ledger>, NodeError> {
    let update = visit(context, "ask")?;
    Ok(Command::new(update).ask(format!("Publish after {} steps?", ledger.count)))
}

/// A synchronous program (an approval tool) drives a durable thread from start to finish on a real
/// directory store, with no runtime of its own: start, pause, answer, resume, read.
#[test]
fn a_blocking_durable_run_starts_pauses_is_answered_and_finishes() {
    let test = "blocking";
    let dir = std::env::temp_dir().join(format!("slateflow-durable-{test}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    let flow = flow! { a >> ask_to_publish >> publish; }.with_params(params(test));
    let durable = flow
        .durable(FileStore::open(&dir).unwrap())
        .blocking()
        .unwrap();
    let mut ledger = Ledger::default();
    let Outcome::Paused(pauses) = durable.start(test, &mut ledger).unwrap() else {
        panic!("the question pauses the run");
    };
    assert_eq!(pauses.len(), 1);
    assert_eq!(pauses[0].when, PauseWhen::Asked);
    assert_eq!(pauses[0].asked, Some("Publish after 1 steps?".into()));
    assert_eq!(durable.pending(test).unwrap(), pauses);
    assert!(matches!(
        durable.status(test).unwrap(),
        RunStatus::Paused { .. }
    ));
    durable
        .answer(
            test,
            &pauses[0].key,
            Ledger::update().set_approved(Some(true)),
        )
        .unwrap();
    let (ledger, outcome) = durable.resume(test).unwrap();
    assert_eq!(outcome, Outcome::Finished("published".into()));
    assert_eq!(ledger.log, ["a", "ask", "publish"]);
    assert_eq!(
        (ran("blocking/a"), ran("blocking/ask")),
        (1, 1),
        "none ran twice"
    );
    assert_eq!(durable.state(test).unwrap(), ledger);
    let steps: Vec<u64> = durable
        .history(test)
        .unwrap()
        .iter()
        .filter(|record| record.kind == RecordKind::Step)
        .map(|record| record.step)
        .collect();
    assert_eq!(steps, [1, 2, 3]);
    std::fs::remove_dir_all(&dir).unwrap();
}

/// Inside a tokio runtime the blocking calls are refused at once, with what to call instead.
#[tokio::test]
async fn blocking_durable_calls_inside_a_runtime_say_to_await_instead() {
    let flow = flow! { a; };
    let error = flow.durable(MemoryStore::new()).blocking().unwrap_err();
    assert!(
        matches!(
            error,
            Error::BlockingInRuntime {
                call: "Durable::blocking",
                ..
            }
        ),
        "{error:?}"
    );
    assert!(
        error
            .to_string()
            .contains("use `durable.start(thread, &mut state).await` there"),
        "{error}"
    );
}

/// Steps of the cancelled run: the third waits, after saying it is there, until told to go on.
static REACHED: tokio::sync::Notify = tokio::sync::Notify::const_new();
static GO: tokio::sync::Notify = tokio::sync::Notify::const_new();

#[derive(SharedState, Clone, Debug, Default, Serialize, Deserialize)]
struct Steps {
    #[reducer(add)]
    count: u64,
}

#[node(actions = ["again"])]
async fn step(steps: &Steps) -> Command<Steps> {
    if steps.count == 2 {
        REACHED.notify_one();
        GO.notified().await;
    }
    Command::new(Steps::update().add_count(1)).with_action("again")
}

/// Cancelled through `other` (another handle on the same store: another process, for the file
/// and SQLite stores) while its third step runs, a run stops at its next write, keeps what it
/// saved, and is never resumed.
async fn a_running_thread_is_cancelled_through<S: CheckpointStore + 'static>(runner: S, other: S) {
    let steps = flow! { step - "again" >> step; };
    let durable = steps.durable(runner);
    let cancelling = steps.durable(other);
    let run = async {
        let mut state = Steps::default();
        durable.start("t", &mut state).await
    };
    let cancel = async {
        REACHED.notified().await;
        cancelling.cancel("t").await.unwrap();
        GO.notify_one();
    };
    let (result, ()) = tokio::join!(run, cancel);
    let error = result.unwrap_err();
    assert!(
        matches!(&error, Error::Store(slateflow::checkpoint::StoreError::Cancelled { thread }) if thread == "t"),
        "{error:?}"
    );
    assert_eq!(cancelling.status("t").await.unwrap(), RunStatus::Cancelled);
    let saved: Vec<u64> = cancelling
        .history("t")
        .await
        .unwrap()
        .iter()
        .filter(|record| record.kind == RecordKind::Step)
        .map(|record| record.step)
        .collect();
    assert_eq!(saved, [1, 2], "the steps before the cancel, none after");
    assert_eq!(cancelling.state("t").await.unwrap().count, 2);
    let error = durable.resume("t").await.unwrap_err();
    assert_eq!(
        error.to_string(),
        "cannot resume thread `t` at step 2: the thread was cancelled; branch it to go on"
    );
    // Branched from a saved step, it goes on as a new thread.
    cancelling.branch("t", 2, "t-again").await.unwrap();
    assert_eq!(
        cancelling.status("t-again").await.unwrap(),
        RunStatus::Interrupted
    );
    assert_eq!(cancelling.state("t-again").await.unwrap().count, 2);
}

#[test]
fn a_running_thread_is_cancelled_on_every_store() {
    let memory = MemoryStore::new();
    block_on(a_running_thread_is_cancelled_through(
        memory.clone(),
        memory,
    ));
    let root = std::env::temp_dir().join(format!("slateflow-cancel-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&root);
    block_on(a_running_thread_is_cancelled_through(
        FileStore::open(root.join("files")).unwrap(),
        FileStore::open(root.join("files")).unwrap(),
    ));
    std::fs::create_dir_all(&root).unwrap();
    let database = root.join("runs.db");
    block_on(a_running_thread_is_cancelled_through(
        slateflow::checkpoint::SqliteStore::open(&database).unwrap(),
        slateflow::checkpoint::SqliteStore::open(&database).unwrap(),
    ));
    std::fs::remove_dir_all(&root).unwrap();
}

/// `verify` reads the whole history: an update saved before the last snapshot that no longer
/// reads back as the state's update is named by its step, though the state (rebuilt from the
/// snapshot) still loads.
#[test]
fn verify_names_a_saved_update_that_no_longer_reads_back_before_the_last_snapshot() {
    block_on(async {
        // The state type's name as threads are saved with it, from a thread run to learn it.
        let store = MemoryStore::new();
        let once = flow! { step; };
        let durable = once.durable(store.clone());
        durable.start("probe", &mut Steps::default()).await.unwrap();
        let state_type = store.threads().await.unwrap()[0].state_type.clone();
        let mut claim = store
            .create(
                "t",
                &state_type,
                &[slateflow::checkpoint::StepRecord::new(0, RecordKind::Start)
                    .with_snapshot(serde_json::json!({ "count": 0 }))],
            )
            .await
            .unwrap();
        let mut bad = slateflow::checkpoint::StepRecord::new(0, RecordKind::Input);
        bad.update = serde_json::json!({ "count": "seven" });
        store.append(&mut claim, &bad).await.unwrap();
        let snapshot = slateflow::checkpoint::StepRecord::new(1, RecordKind::Step)
            .with_snapshot(serde_json::json!({ "count": 5 }));
        store.append(&mut claim, &snapshot).await.unwrap();
        drop(claim);
        assert_eq!(durable.state("t").await.unwrap().count, 5);
        let error = durable.verify("t").await.unwrap_err();
        assert!(
            matches!(&error, Error::Resume { thread, step: 0, reason }
                if thread == "t" && reason.starts_with("the saved update does not read back")),
            "{error:?}"
        );
        // The store's own check (checksums, order) finds nothing wrong.
        assert_eq!(store.verify("t").await.unwrap().records, 3);
    });
}

/// The store the `watched` node looks at while it runs.
static WATCHED: std::sync::Mutex<Option<MemoryStore>> = std::sync::Mutex::new(None);

#[derive(SharedState, Clone, Debug, Default, Serialize, Deserialize)]
struct Watched {
    #[reducer(add)]
    count: u64,
    /// For each step, the last step written when its node ran.
    #[reducer(append)]
    written_before: Vec<u64>,
}

/// Ten steps; each notes the last step the store holds as it runs; the seventh fails when the
/// params say `fail`.
#[node(actions = ["again", "done"])]
async fn watched(state: &Watched, context: &Context<'_>) -> Result<Command<Watched>, NodeError> {
    let store = WATCHED.lock().unwrap().clone().unwrap();
    let written = store
        .load("t", slateflow::checkpoint::Records::All)
        .await?
        .last_step;
    if state.count == 6 && context.params().get_str("fail").is_some() {
        return Err("the seventh step fails".into());
    }
    let action = if state.count + 1 < 10 {
        "again"
    } else {
        "done"
    };
    Ok(
        Command::new(Watched::update().add_count(1).push_written_before(written))
            .with_action(action),
    )
}

#[test]
fn batched_durability_writes_steps_a_batch_at_a_time_and_everything_before_it_stops() {
    use slateflow::durable::Durability;
    let run = |durability: Durability, fail: bool| {
        let store = MemoryStore::new();
        *WATCHED.lock().unwrap() = Some(store.clone());
        let params = if fail {
            slateflow::Params::new().with("fail", "yes")
        } else {
            slateflow::Params::new()
        };
        let steps = flow! { watched - "again" >> watched; }.with_params(params);
        let durable = steps.durable(store.clone()).durability(durability);
        let mut state = Watched::default();
        let result = block_on(durable.start("t", &mut state));
        let saved = block_on(durable.state("t")).unwrap();
        let last = block_on(store.load("t", slateflow::checkpoint::Records::All))
            .unwrap()
            .last_step;
        (result.map(|_| ()), saved, last)
    };
    // Every step: each node sees the step before it written.
    let (result, saved, last) = run(Durability::EveryStep, false);
    result.unwrap();
    assert_eq!(saved.written_before, (0..10).collect::<Vec<u64>>());
    assert_eq!(last, 10);
    // Four at a time: a node sees the last full write; the end writes the rest.
    let (result, saved, last) = run(Durability::batched(4), false);
    result.unwrap();
    assert_eq!(saved.written_before, [0, 0, 0, 0, 4, 4, 4, 4, 8, 8]);
    assert_eq!((saved.count, last), (10, 10));
    // A failure writes the steps before it first: none is lost to the failure itself.
    let (result, saved, last) = run(Durability::batched(4), true);
    assert!(
        matches!(result, Err(Error::NodeFailed { .. })),
        "the seventh step fails: {result:?}"
    );
    assert_eq!(saved.written_before, [0, 0, 0, 0, 4, 4]);
    assert_eq!((saved.count, last), (6, 6));
    // A pause after a step is written with it, before the run stops, whatever the batch.
    let store = MemoryStore::new();
    *WATCHED.lock().unwrap() = Some(store.clone());
    let steps = flow! { watched - "again" >> watched; };
    let durable = steps
        .durable(store.clone())
        .durability(Durability::batched(4))
        .interrupt_after(&["watched"]);
    let outcome = block_on(durable.start("t", &mut Watched::default())).unwrap();
    assert_eq!(outcome.pauses().len(), 1);
    let log = block_on(store.load("t", slateflow::checkpoint::Records::All)).unwrap();
    assert_eq!(log.last_step, 1);
    assert_eq!(log.records.last().unwrap().pauses, outcome.pauses());
}

/// A state with a field that must be given.
#[derive(SharedState, Clone, Debug, Default, Serialize, Deserialize)]
struct Named {
    name: String,
}

/// A state that accepts keys it does not know, collecting them.
#[derive(SharedState, Clone, Debug, Default, Serialize, Deserialize)]
struct Open {
    #[serde(default)]
    name: String,
    #[serde(flatten)]
    other: serde_json::Map<String, serde_json::Value>,
}

#[test]
fn a_key_no_field_reads_is_an_error_naming_it_and_the_nearest_field() {
    let message = |json: &str| match slateflow::state::state_from_json::<Ledger>(json) {
        Err(Error::InvalidState { path, message }) => (path, message),
        other => panic!("{json}: expected an invalid-state error, got {other:?}"),
    };
    assert_eq!(
        message(r#"{"count": 2, "log": [], "cuont": 3}"#),
        (
            "cuont".to_string(),
            "no field reads the key `cuont` (did you mean `count`?); to accept keys the state \
             does not know, collect them in a field with `#[serde(flatten)]`"
                .to_string()
        )
    );
    let (path, text) = message(r#"{"count": 2, "log": [], "colour": "red"}"#);
    assert_eq!(path, "colour");
    assert!(
        text.starts_with("no field reads the key `colour`;"),
        "{text}"
    );
    // A field that must be given says how to let it be left out.
    let error = slateflow::state::state_from_json::<Named>("{}").unwrap_err();
    assert!(
        error.to_string().contains(
            "missing field `name` at line 1 column 2; a field that may be left out needs \
             `#[serde(default)]`"
        ),
        "{error}"
    );
    // Collected with `#[serde(flatten)]`, unknown keys are accepted.
    let open: Open = slateflow::state::state_from_json(r#"{"colour": "red"}"#).unwrap();
    assert_eq!(open.other["colour"], "red");
}
