//! Finished work kept: in a durable run, the branches of a fork, the runs of a batch flow
//! (sequential or concurrent) and the items of a kept batch node that finished are saved as they
//! finish, before their step is. A
//! resume after a failure runs only the rest; the step still merges in written order and applies
//! once, and its step numbers are those of an uninterrupted run. An input at the step discards
//! what was kept; a kept outcome is never reused for a later step.

use serde::{Deserialize, Serialize};
use slateflow::batch::{self, Batch, BatchNode};
use slateflow::checkpoint::{
    CheckpointStore, FileStore, MemoryStore, PostgresStore, RecordKind, SqliteStore,
};
use slateflow::durable::Outcome;
use slateflow::{Command, Context, NodeError, Params, SharedState, flow, node};

#[derive(SharedState, Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
struct Tally {
    /// Summed: a part applied twice would show.
    #[reducer(add)]
    count: u64,
    /// Appended in merge order.
    #[reducer(append)]
    log: Vec<String>,
    /// The step numbers the nodes saw, in merge order.
    #[reducer(append)]
    steps: Vec<u64>,
    approved: Option<bool>,
}

/// Helpers shared by test files; each uses part of them.
#[allow(dead_code)]
mod support {
    pub(crate) mod postgres;
    pub(crate) mod runs;
}

use support::runs::{block_on, fail, heal, params as test_params, ran};

/// Counts the run of `node` (keyed `test/node`, or `test/node#item` in a batch) and fails when
/// told to.
fn visit(context: &Context<'_>, node: &str) -> Result<TallyUpdate, NodeError> {
    let params = context.params();
    let test = params.get_str("test").unwrap_or_default();
    let key = match params.get("item") {
        Some(item) => format!("{test}/{node}#{item}"),
        None => format!("{test}/{node}"),
    };
    support::runs::count(&key)?;
    Ok(Tally::update()
        .add_count(1)
        .push_log(key)
        .push_steps(context.step()))
}

#[node]
fn a(_: &Tally, context: &Context<'_>) -> Result<Command<Tally>, NodeError> {
    Ok(Command::new(visit(context, "a")?))
}

#[node]
fn b(_: &Tally, context: &Context<'_>) -> Result<Command<Tally>, NodeError> {
    Ok(Command::new(visit(context, "b")?))
}

#[node]
fn c(_: &Tally, context: &Context<'_>) -> Result<Command<Tally>, NodeError> {
    Ok(Command::new(visit(context, "c")?))
}

#[node]
fn d(_: &Tally, context: &Context<'_>) -> Result<Command<Tally>, NodeError> {
    Ok(Command::new(visit(context, "d")?))
}

#[node]
fn e(_: &Tally, context: &Context<'_>) -> Result<Command<Tally>, NodeError> {
    Ok(Command::new(visit(context, "e")?))
}

fn kept_records(history: &[slateflow::checkpoint::StepRecord]) -> Vec<(String, String, u64)> {
    history
        .iter()
        .filter(|record| record.kind == RecordKind::Kept)
        .map(|record| (record.node.clone(), record.key.clone(), record.step))
        .collect()
}

#[test]
fn a_failed_fork_resumes_running_only_the_branch_that_did_not_finish() {
    let test = "fork";
    let inner = flow! { d >> e; };
    let flow = flow! { a >> [b, inner, c] >> d; }.with_params(test_params(test));
    let root = std::env::temp_dir().join(format!("slateflow-kept-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&root);
    let durable = flow.durable(FileStore::open(&root).unwrap());
    fail("fork/c");
    let mut state = Tally::default();
    let error = block_on(durable.start(test, &mut state)).unwrap_err();
    assert!(error.to_string().contains("fork/c is failing"), "{error}");
    let history = block_on(durable.history(test)).unwrap();
    assert_eq!(
        kept_records(&history),
        [
            ("[b, inner, c]".to_string(), "0".to_string(), 1),
            ("[b, inner, c]".to_string(), "1".to_string(), 1),
        ],
        "the finished branches were kept at the step before the fork"
    );
    heal("fork/c");
    let (resumed, outcome) = block_on(durable.resume(test)).unwrap();
    assert_eq!(outcome, Outcome::Finished("default".into()));
    assert_eq!(
        (ran("fork/b"), ran("fork/e"), ran("fork/c"), ran("fork/a")),
        (1, 1, 2, 1),
        "only the failed branch ran again"
    );
    // Exactly an uninterrupted run: merge order, each part once, the same step numbers.
    let mut plain = Tally::default();
    let inner = flow! { d >> e; };
    block_on(
        flow! { a >> [b, inner, c] >> d; }
            .with_params(test_params("plain"))
            .run(&mut plain),
    )
    .unwrap();
    let strip = |log: &[String]| -> Vec<String> {
        log.iter()
            .map(|entry| entry.split_once('/').unwrap().1.to_string())
            .collect()
    };
    assert_eq!(strip(&resumed.log), strip(&plain.log));
    assert_eq!(
        resumed.log,
        ["fork/a", "fork/b", "fork/d", "fork/e", "fork/c", "fork/d"]
    );
    assert_eq!(
        (resumed.count, resumed.steps.clone()),
        (plain.count, plain.steps)
    );
    assert_eq!(block_on(durable.state(test)).unwrap(), resumed);
    let _ = std::fs::remove_dir_all(&root);
}

#[test]
fn an_input_at_the_step_discards_what_was_kept() {
    let test = "input";
    let flow = flow! { a >> [b, c] >> d; }.with_params(test_params(test));
    let durable = flow.durable(MemoryStore::new());
    fail("input/c");
    assert!(block_on(durable.start(test, &mut Tally::default())).is_err());
    // `b` finished from the state before this input: it must see the new state, so it runs again.
    block_on(durable.update(test, Tally::update().set_approved(Some(true)))).unwrap();
    heal("input/c");
    let (resumed, _) = block_on(durable.resume(test)).unwrap();
    assert_eq!((ran("input/b"), ran("input/c")), (2, 2));
    assert_eq!(resumed.count, 4, "a, b, c, d: each applied once");
}

#[node(actions = ["again", "done"])]
fn looping(tally: &Tally, context: &Context<'_>) -> Result<Command<Tally>, NodeError> {
    let action = if tally.count < 5 { "again" } else { "done" };
    Ok(Command::new(visit(context, "looping")?).with_action(action))
}

#[test]
fn a_kept_branch_is_not_reused_when_the_fork_runs_again_later() {
    let test = "loop";
    let flow = flow! {
        a >> [b, c] >> looping;
        looping - "again" >> [b, c];
    }
    .with_params(test_params(test));
    let durable = flow.durable(MemoryStore::new());
    fail("loop/c");
    assert!(block_on(durable.start(test, &mut Tally::default())).is_err());
    heal("loop/c");
    let (resumed, outcome) = block_on(durable.resume(test)).unwrap();
    assert_eq!(outcome, Outcome::Finished("done".into()));
    // a, [b, c], looping (count 4: again), [b, c], looping (count 7: done).
    assert_eq!(resumed.count, 7);
    assert_eq!(ran("loop/b"), 2, "kept once, then run for the second round");
    assert_eq!(ran("loop/c"), 3, "failed, resumed, second round");
}

fn three_items(test: &'static str) -> impl slateflow::batch::BatchPlan<Tally> {
    batch::from_fn(move |_: &Tally| {
        (1..=3)
            .map(|item| Params::new().with("test", test).with("item", item))
            .collect()
    })
}

#[test]
fn a_failed_sequential_batch_flow_resumes_with_the_runs_that_did_not_finish() {
    let test = "sequential";
    let batch = Batch::flow(flow! { b >> c; }, three_items(test));
    let flow = flow! { a >> batch >> d; }.with_params(test_params(test));
    let durable = flow.durable(MemoryStore::new());
    fail("sequential/c#2");
    assert!(block_on(durable.start(test, &mut Tally::default())).is_err());
    let history = block_on(durable.history(test)).unwrap();
    assert_eq!(
        kept_records(&history),
        [("batch".to_string(), "0".to_string(), 1)],
        "run 0 finished and was kept; run 1 failed"
    );
    heal("sequential/c#2");
    let (resumed, _) = block_on(durable.resume(test)).unwrap();
    assert_eq!(
        (
            ran("sequential/b#1"),
            ran("sequential/b#2"),
            ran("sequential/b#3")
        ),
        (1, 2, 1),
        "run 0 did not run again; run 1 did; run 2 ran once"
    );
    assert_eq!(resumed.count, 1 + 6 + 1, "every part applied once");
    let mut plain = Tally::default();
    let batch = Batch::flow(flow! { b >> c; }, three_items("plain-sequential"));
    block_on(
        flow! { a >> batch >> d; }
            .with_params(test_params("plain-sequential"))
            .run(&mut plain),
    )
    .unwrap();
    assert_eq!(resumed.steps, plain.steps, "the same step numbers");
}

#[test]
fn a_failed_concurrent_batch_flow_resumes_with_the_runs_that_did_not_finish() {
    let test = "concurrent";
    let batch = Batch::flow(flow! { b >> c; }, three_items(test)).concurrent(3);
    let flow = flow! { a >> batch >> d; }.with_params(test_params(test));
    let durable = flow.durable(MemoryStore::new());
    fail("concurrent/c#3");
    assert!(block_on(durable.start(test, &mut Tally::default())).is_err());
    let kept = kept_records(&block_on(durable.history(test)).unwrap());
    assert_eq!(
        kept.iter()
            .map(|(_, key, _)| key.as_str())
            .collect::<Vec<_>>(),
        ["0", "1"],
        "the runs that finished before the failure were kept"
    );
    heal("concurrent/c#3");
    let (resumed, _) = block_on(durable.resume(test)).unwrap();
    assert_eq!(
        (
            ran("concurrent/c#1"),
            ran("concurrent/c#2"),
            ran("concurrent/c#3")
        ),
        (1, 1, 2)
    );
    assert_eq!(resumed.count, 1 + 6 + 1);
    assert_eq!(
        resumed.log[1..7],
        [
            "concurrent/b#1",
            "concurrent/c#1",
            "concurrent/b#2",
            "concurrent/c#2",
            "concurrent/b#3",
            "concurrent/c#3"
        ],
        "merged in item order"
    );
}

/// A map-reduce over the items its params name (`test`): each item counted as `test/call#item`
/// and failing when told to; `post` logs the outputs in item order.
struct Calls;

impl BatchNode<Tally> for Calls {
    type Item = (String, String);
    type Output = String;

    async fn prep(
        &self,
        _: &Tally,
        context: &Context<'_>,
    ) -> Result<Vec<(String, String)>, NodeError> {
        let test = context.params().get_str("test").unwrap_or_default();
        // Told to, the second item changes: its kept output must not be used for the new item.
        let second = if support::runs::failing(&format!("{test}/rename")) {
            "Y"
        } else {
            "y"
        };
        Ok(["x", second, "z", "w"]
            .iter()
            .map(|item| (test.to_string(), (*item).to_string()))
            .collect())
    }

    async fn exec(&self, (test, item): &(String, String)) -> Result<String, NodeError> {
        support::runs::count(&format!("{test}/call#{item}"))?;
        Ok(format!("called {item}"))
    }

    async fn post(
        &self,
        _: &Tally,
        _: Vec<(String, String)>,
        outputs: Vec<String>,
        _: &Context<'_>,
    ) -> Result<Command<Tally>, NodeError> {
        let count = outputs.len() as u64;
        Ok(Command::new(
            Tally::update().add_count(count).extend_log(outputs),
        ))
    }
}

#[test]
fn a_failed_kept_batch_resumes_calling_only_the_items_that_did_not_finish() {
    for (test, calls) in [
        ("items-sequential", Batch::items(Calls).kept()),
        ("items-concurrent", Batch::items(Calls).concurrent(4).kept()),
    ] {
        let flow = flow! { a >> calls >> d; }.with_params(test_params(test));
        let root =
            std::env::temp_dir().join(format!("slateflow-kept-{test}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&root);
        let durable = flow.durable(FileStore::open(&root).unwrap());
        fail(&format!("{test}/call#z"));
        let error = block_on(durable.start(test, &mut Tally::default())).unwrap_err();
        assert!(
            error.to_string().contains("item 2 of the batch failed"),
            "{error}"
        );
        let kept = kept_records(&block_on(durable.history(test)).unwrap());
        assert_eq!(
            kept.iter()
                .map(|(node, key, step)| (node.as_str(), key.as_str(), *step))
                .collect::<Vec<_>>(),
            [("calls", "0", 1), ("calls", "1", 1)],
            "{test}: the items that finished before the failure were kept"
        );
        heal(&format!("{test}/call#z"));
        let (resumed, outcome) = block_on(durable.resume(test)).unwrap();
        assert_eq!(outcome, Outcome::Finished("default".into()));
        let calls: Vec<u32> = ["x", "y", "z", "w"]
            .iter()
            .map(|item| ran(&format!("{test}/call#{item}")))
            .collect();
        assert_eq!(
            calls,
            [1, 1, 2, 1],
            "{test}: only the failed item and the rest ran"
        );
        assert_eq!(
            resumed.log[1..5],
            ["called x", "called y", "called z", "called w"],
            "{test}: outputs in item order"
        );
        assert_eq!(resumed.count, 1 + 4 + 1, "{test}: the step applied once");
        assert_eq!(block_on(durable.state(test)).unwrap(), resumed);
        let _ = std::fs::remove_dir_all(&root);
    }
}

#[test]
fn a_kept_output_is_not_used_for_an_item_that_changed() {
    let test = "items-changed";
    let calls = Batch::items(Calls).kept();
    let flow = flow! { calls; }.with_params(test_params(test));
    let durable = flow.durable(MemoryStore::new());
    fail("items-changed/call#z");
    assert!(block_on(durable.start(test, &mut Tally::default())).is_err());
    // `prep` now returns `Y` where `y` was: `y`'s kept output does not answer it.
    fail("items-changed/rename");
    heal("items-changed/call#z");
    let (resumed, _) = block_on(durable.resume(test)).unwrap();
    let calls: Vec<u32> = ["x", "y", "Y", "z"]
        .iter()
        .map(|item| ran(&format!("{test}/call#{item}")))
        .collect();
    assert_eq!(calls, [1, 1, 1, 2]);
    assert_eq!(
        resumed.log,
        ["called x", "called Y", "called z", "called w"]
    );
}

#[test]
fn a_kept_batch_inside_a_batch_flow_keeps_nothing_of_its_own() {
    // Its items are keyed by index within one run of the batch flow; the batch flow keeps whole
    // runs instead.
    let test = "items-nested";
    let calls = Batch::items(Calls).kept();
    let batch = Batch::flow(flow! { calls >> e; }, three_items(test));
    let flow = flow! { batch; }.with_params(test_params(test));
    let durable = flow.durable(MemoryStore::new());
    // The third run fails after its calls: the step is not saved, and what was kept stays.
    fail(&format!("{test}/e#3"));
    let error = block_on(durable.start(test, &mut Tally::default())).unwrap_err();
    heal(&format!("{test}/e#3"));
    assert!(error.to_string().contains("e#3 is failing"), "{error}");
    let kept = kept_records(&block_on(durable.history(test)).unwrap());
    assert_eq!(
        kept.iter()
            .map(|(node, key, _)| (node.as_str(), key.as_str()))
            .collect::<Vec<_>>(),
        [("batch", "0"), ("batch", "1")],
        "only the batch flow's finished runs"
    );
}

/// The nodes (`test/node`) whose deployed code writes `approved`, a last-write-wins field: two
/// branches of one fork that both do conflict.
static WRITES: std::sync::Mutex<Vec<String>> = std::sync::Mutex::new(Vec::new());

/// Deploys the version of `key`'s node that writes `approved` (`true`) or the one that does not.
fn deploy(key: &str, writes: bool) {
    let mut deployed = WRITES.lock().unwrap();
    deployed.retain(|node| node != key);
    if writes {
        deployed.push(key.to_string());
    }
}

/// As [`visit`], writing `approved` when the deployed version of the node does.
fn visit_writing(context: &Context<'_>, node: &str) -> Result<TallyUpdate, NodeError> {
    let update = visit(context, node)?;
    let key = format!(
        "{}/{node}",
        context.params().get_str("test").unwrap_or_default()
    );
    let writes = WRITES.lock().unwrap().contains(&key);
    Ok(if writes {
        update.set_approved(Some(true))
    } else {
        update
    })
}

#[node]
fn left(_: &Tally, context: &Context<'_>) -> Result<Command<Tally>, NodeError> {
    Ok(Command::new(visit_writing(context, "left")?))
}

#[node]
fn right(_: &Tally, context: &Context<'_>) -> Result<Command<Tally>, NodeError> {
    Ok(Command::new(visit_writing(context, "right")?))
}

fn kinds(history: &[slateflow::checkpoint::StepRecord]) -> Vec<RecordKind> {
    history.iter().map(|record| record.kind).collect()
}

/// On `store`: a fork whose branches conflict fails and keeps nothing of them; once the code is
/// fixed, a resume runs both again and the thread finishes. A fork that failed because one branch
/// failed keeps its finished sibling, which a resume does not run again.
async fn a_failed_merge_runs_again_once_fixed<St: CheckpointStore + 'static>(
    store: St,
    test: &str,
) {
    let flow = flow! { a >> [left, right] >> d; }.with_params(test_params(test));
    let durable = flow.durable(store);
    let key = |node: &str| format!("{test}/{node}");
    deploy(&key("left"), true);
    deploy(&key("right"), true);
    let error = durable
        .start(test, &mut Tally::default())
        .await
        .unwrap_err();
    assert!(
        matches!(
            error,
            slateflow::Error::ParallelConflict {
                field: "approved",
                first: "left",
                second: "right",
                step: 2
            }
        ),
        "{error:?}"
    );
    let history = durable.history(test).await.unwrap();
    assert_eq!(
        kinds(&history),
        [
            RecordKind::Start,
            RecordKind::Step,
            RecordKind::Kept,
            RecordKind::Kept,
            RecordKind::Discard,
        ],
        "both branches were kept as they finished, then void when they did not merge"
    );
    assert_eq!(history[4].node, "[left, right]");
    // A resume with the code unchanged meets the same conflict, from branches run again.
    let again = durable.resume(test).await.unwrap_err();
    assert!(
        matches!(again, slateflow::Error::ParallelConflict { .. }),
        "{again:?}"
    );
    assert_eq!((ran(&key("left")), ran(&key("right"))), (2, 2));
    // The fix: only `left` writes the field.
    deploy(&key("right"), false);
    let (resumed, outcome) = durable.resume(test).await.unwrap();
    assert_eq!(outcome, Outcome::Finished("default".into()));
    assert_eq!(
        (
            ran(&key("a")),
            ran(&key("left")),
            ran(&key("right")),
            ran(&key("d"))
        ),
        (1, 3, 3, 1),
        "the fixed branches ran, not outcomes kept from before the fix"
    );
    assert_eq!(resumed.approved, Some(true));
    assert_eq!(resumed.count, 4, "a, left, right, d: each applied once");
    assert_eq!(durable.state(test).await.unwrap(), resumed);

    // A failed branch, not a failed merge: its finished sibling stays kept.
    let thread = format!("{test}-failing");
    let before = (ran(&key("left")), ran(&key("right")));
    fail(&key("right"));
    let error = durable
        .start(&thread, &mut Tally::default())
        .await
        .unwrap_err();
    assert!(error.to_string().contains("is failing"), "{error}");
    heal(&key("right"));
    let (resumed, _) = durable.resume(&thread).await.unwrap();
    assert_eq!(
        (ran(&key("left")) - before.0, ran(&key("right")) - before.1),
        (1, 2),
        "the finished sibling was kept, not run again"
    );
    assert_eq!(resumed.count, 4);
}

#[test]
fn a_failed_merge_runs_again_once_fixed_on_the_memory_store() {
    block_on(a_failed_merge_runs_again_once_fixed(
        MemoryStore::new(),
        "merge-memory",
    ));
}

#[test]
fn a_failed_merge_runs_again_once_fixed_on_the_file_store() {
    let root = std::env::temp_dir().join(format!("slateflow-merge-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&root);
    block_on(a_failed_merge_runs_again_once_fixed(
        FileStore::open(&root).unwrap(),
        "merge-file",
    ));
    let _ = std::fs::remove_dir_all(&root);
}

#[test]
fn a_failed_merge_runs_again_once_fixed_on_the_sqlite_store() {
    let root = std::env::temp_dir().join(format!("slateflow-merge-sqlite-{}", std::process::id()));
    std::fs::create_dir_all(&root).unwrap();
    block_on(a_failed_merge_runs_again_once_fixed(
        SqliteStore::open(root.join("runs.db")).unwrap(),
        "merge-sqlite",
    ));
    let _ = std::fs::remove_dir_all(&root);
}

#[test]
fn a_failed_merge_runs_again_once_fixed_on_the_postgres_store() {
    let Some(url) = support::postgres::database("kept_merge") else {
        return;
    };
    support::postgres::runtime().block_on(async {
        let store = PostgresStore::connect(&url).await.unwrap();
        a_failed_merge_runs_again_once_fixed(store, "merge-postgres").await;
    });
}

/// Kept outcomes of an earlier attempt that conflict with a branch run now (the code changed in
/// between: `left` wrote `approved`, now `right` does) are void, and their branches run again at
/// once: the resume finishes. When the branch run again still conflicts, the fork fails, and
/// nothing is kept for the next resume.
#[test]
fn kept_outcomes_that_conflict_with_new_code_are_run_again() {
    let test = "replayed";
    let key = |node: &str| format!("{test}/{node}");
    let flow = flow! { a >> [left, right] >> d; }.with_params(test_params(test));
    let durable = flow.durable(MemoryStore::new());
    // Before: `left` writes the field; `right` fails, after `left` finished and was kept.
    deploy(&key("left"), true);
    fail(&key("right"));
    assert!(block_on(durable.start(test, &mut Tally::default())).is_err());
    assert_eq!(
        kept_records(&block_on(durable.history(test)).unwrap()),
        [("[left, right]".to_string(), "0".to_string(), 1)]
    );
    // Deployed: `right` writes the field too, and works; `left` still writes it.
    heal(&key("right"));
    deploy(&key("right"), true);
    let error = block_on(durable.resume(test)).unwrap_err();
    assert!(
        matches!(
            error,
            slateflow::Error::ParallelConflict {
                field: "approved",
                ..
            }
        ),
        "{error:?}"
    );
    assert_eq!(
        (ran(&key("left")), ran(&key("right"))),
        (2, 2),
        "the kept `left` conflicted, ran again, and conflicted again"
    );
    let history = block_on(durable.history(test)).unwrap();
    assert_eq!(
        kinds(&history)[2..],
        [
            RecordKind::Kept,    // `left`, before
            RecordKind::Kept,    // `right`, now
            RecordKind::Discard, // the conflict with the kept `left`
            RecordKind::Kept,    // `left`, run again
            RecordKind::Discard, // the same conflict, from branches both run now
        ]
    );
    // Fixed: `left` no longer writes the field. Kept `left` outcomes are void: it runs again.
    deploy(&key("left"), false);
    let (resumed, outcome) = block_on(durable.resume(test)).unwrap();
    assert_eq!(outcome, Outcome::Finished("default".into()));
    assert_eq!((ran(&key("left")), ran(&key("right"))), (3, 3));
    assert_eq!((resumed.count, resumed.approved), (4, Some(true)));

    // The same change, with nothing between: the resume that meets the conflict finishes.
    let thread = "replayed-fixed";
    deploy(&key("left"), true);
    deploy(&key("right"), false);
    fail(&key("right"));
    assert!(block_on(durable.start(thread, &mut Tally::default())).is_err());
    let before = (ran(&key("left")), ran(&key("right")));
    heal(&key("right"));
    deploy(&key("right"), true);
    deploy(&key("left"), false);
    let (resumed, outcome) = block_on(durable.resume(thread)).unwrap();
    assert_eq!(outcome, Outcome::Finished("default".into()));
    assert_eq!(
        (ran(&key("left")) - before.0, ran(&key("right")) - before.1),
        (1, 1),
        "the kept `left`, which conflicted with the new `right`, ran again"
    );
    assert_eq!((resumed.count, resumed.approved), (4, Some(true)));
    // What was kept and voided for the fork's step is removed once the step is saved.
    let kinds = kinds(&block_on(durable.history(thread)).unwrap());
    assert_eq!(kinds[2..], [RecordKind::Step, RecordKind::Step]);
}

/// What a fork keeps while its step runs is removed once the step is saved: the state and a
/// resume need none of it.
async fn kept_parts_are_removed_once_their_step_is_saved<St: CheckpointStore + 'static>(
    store: St,
    test: &str,
) {
    let flow = flow! { a >> [b, c] >> d; }.with_params(test_params(test));
    let durable = flow.durable(store);
    fail(&format!("{test}/c"));
    assert!(durable.start(test, &mut Tally::default()).await.is_err());
    // `b` finished and is kept; the fork's step is not saved.
    let kept = kept_records(&durable.history(test).await.unwrap());
    assert_eq!(kept, [("[b, c]".to_string(), "0".to_string(), 1)]);
    let before = durable.verify(test).await.unwrap().records;
    heal(&format!("{test}/c"));
    let (resumed, outcome) = durable.resume(test).await.unwrap();
    assert_eq!(outcome, Outcome::Finished("default".into()));
    assert_eq!(resumed.count, 4, "a, b, c and d, once each");
    let history = durable.history(test).await.unwrap();
    let after = durable.verify(test).await.unwrap().records;
    assert!(kept_records(&history).is_empty(), "{history:?}");
    // The start, `a`, the fork and `d`.
    assert_eq!((before, after), (3, 4));
    assert_eq!(durable.state(test).await.unwrap(), resumed);
}

#[test]
fn kept_parts_are_removed_once_their_step_is_saved_on_every_store() {
    let root = std::env::temp_dir().join(format!("slateflow-compact-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&root);
    std::fs::create_dir_all(&root).unwrap();
    block_on(kept_parts_are_removed_once_their_step_is_saved(
        MemoryStore::new(),
        "compact-memory",
    ));
    block_on(kept_parts_are_removed_once_their_step_is_saved(
        SqliteStore::open(root.join("runs.db")).unwrap(),
        "compact-sqlite",
    ));
    block_on(kept_parts_are_removed_once_their_step_is_saved(
        FileStore::open(root.join("files")).unwrap(),
        "compact-file",
    ));
    std::fs::remove_dir_all(&root).unwrap();
    if let Some(url) = support::postgres::database("kept_compact") {
        support::postgres::runtime().block_on(async {
            let store = PostgresStore::connect(&url).await.unwrap();
            kept_parts_are_removed_once_their_step_is_saved(store, "compact-postgres").await;
        });
    }
}
