//! Pauses at any depth of nesting: inside a fork or batch flow that is itself inside a fork
//! branch's flow or a batch flow's run. Each pause is reported with its own key, the thread waits
//! for all of them, and a resume goes on from each: nothing that finished runs again, on every
//! store. A merge that fails inside a part that had stopped keeps nothing of its branches, so a
//! fixed branch's new output is used.

use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};

use serde::{Deserialize, Serialize};
use slateflow::Context;
use slateflow::batch::{self, Batch};
use slateflow::checkpoint::{
    CheckpointStore, FileStore, MemoryStore, PostgresStore, RecordKind, RunStatus, SqliteStore,
};
use slateflow::durable::Outcome;
use slateflow::{Command, NodeError, Params, SharedState, flow, node};

/// Helpers shared by test files; each uses part of them.
#[allow(dead_code)]
mod support {
    pub(crate) mod postgres;
    pub(crate) mod runs;
}

use support::runs::{block_on, count, params, ran};

#[derive(SharedState, Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
struct Desk {
    /// Summed: a step or an answer applied twice would show.
    #[reducer(add)]
    count: u64,
    #[reducer(append)]
    log: Vec<String>,
    #[reducer(append)]
    answers: Vec<String>,
    /// Written by one branch only, unless a test deploys a build where two write it.
    verdict: String,
}

/// Counts each run of a node per test (and batch item, when there is one): `ran("t/b")`.
fn visit(context: &Context<'_>, node: &str) -> Result<DeskUpdate, NodeError> {
    let test = context.params().get_str("test").unwrap_or_default();
    let item = context
        .params()
        .get("item")
        .map_or(String::new(), ToString::to_string);
    count(&format!("{test}/{node}{item}"))?;
    Ok(Desk::update()
        .add_count(1)
        .push_log(format!("{node}{item}")))
}

macro_rules! nodes {
    ($($name:ident),*) => {$(
        #[node]
        fn $name(_: &Desk, context: &Context<'_>) -> Result<Command<Desk>, NodeError> {
            Ok(Command::new(visit(context, stringify!($name))?))
        }
    )*};
}
nodes!(a, b, c, d, e, f);

/// Asks for approval, with the count so far.
#[node]
fn ask(desk: &Desk, context: &Context<'_>) -> Result<Command<Desk>, NodeError> {
    Ok(Command::new(visit(context, "ask")?).ask(serde_json::json!({ "approve": desk.count })))
}

/// Logs the answers it sees.
#[node]
fn reads(desk: &Desk, context: &Context<'_>) -> Result<Command<Desk>, NodeError> {
    let seen = visit(context, "reads")?;
    Ok(Command::new(
        seen.push_log(format!("saw {:?}", desk.answers)),
    ))
}

fn answer(text: &str) -> DeskUpdate {
    Desk::update().push_answers(text.to_string())
}

fn keys(outcome: &Outcome) -> Vec<String> {
    outcome
        .pauses()
        .iter()
        .map(|pause| pause.key.clone())
        .collect()
}

/// A fresh directory under the target directory.
fn scratch(name: &str) -> PathBuf {
    let dir = PathBuf::from(env!("CARGO_TARGET_TMPDIR"))
        .join("nested-pauses")
        .join(name);
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

/// On `store`: a fork inside a fork branch's flow pauses before one of its branches, then after
/// the other; the thread waits, and each resume goes on from the pause.
async fn a_fork_in_a_branch_flow_pauses_before_and_after_its_branches<
    St: CheckpointStore + 'static,
>(
    test: &'static str,
    store: St,
) {
    let inner = flow! { [b, c] >> d; };
    let flow = flow! { a >> [inner, e] >> f; }.with_params(params(test));
    let durable = flow
        .durable(store)
        .interrupt_before(&["inner/b"])
        .interrupt_after(&["inner/c"]);
    let first = durable.start(test, &mut Desk::default()).await.unwrap();
    // `a` is step 1; the branch flow `inner` (part 0 of the fork) stops before its own fork.
    assert_eq!(keys(&first), ["before:inner/b@1#0"]);
    assert_eq!(
        durable.status(test).await.unwrap(),
        RunStatus::Paused {
            pauses: keys(&first)
        }
    );
    assert_eq!(
        (ran(&format!("{test}/b")), ran(&format!("{test}/e"))),
        (0, 1)
    );
    // Its fork runs, and pauses after it for `c`.
    let (_, second) = durable.resume(test).await.unwrap();
    assert_eq!(keys(&second), ["after:inner/c@3#0"]);
    let (desk, last) = durable.resume(test).await.unwrap();
    assert_eq!(last, Outcome::Finished("default".into()));
    assert_eq!(desk.log, ["a", "b", "c", "d", "e", "f"]);
    for node in ["a", "b", "c", "d", "e", "f"] {
        assert_eq!(ran(&format!("{test}/{node}")), 1, "{node}");
    }
    assert_eq!(durable.state(test).await.unwrap(), desk);
}

#[test]
fn a_fork_in_a_branch_flow_pauses_on_the_memory_store() {
    block_on(
        a_fork_in_a_branch_flow_pauses_before_and_after_its_branches(
            "fork-in-branch-memory",
            MemoryStore::new(),
        ),
    );
}

#[test]
fn a_fork_in_a_branch_flow_pauses_on_the_file_store() {
    let dir = scratch("fork-in-branch-file");
    block_on(
        a_fork_in_a_branch_flow_pauses_before_and_after_its_branches(
            "fork-in-branch-file",
            FileStore::open(&dir).unwrap(),
        ),
    );
}

#[test]
fn a_fork_in_a_branch_flow_pauses_on_the_sqlite_store() {
    let dir = scratch("fork-in-branch-sqlite");
    block_on(
        a_fork_in_a_branch_flow_pauses_before_and_after_its_branches(
            "fork-in-branch-sqlite",
            SqliteStore::open(dir.join("threads.db")).unwrap(),
        ),
    );
}

#[test]
fn a_fork_in_a_branch_flow_pauses_on_the_postgres_store() {
    let Some(url) = support::postgres::database("nested_pauses") else {
        return;
    };
    support::postgres::runtime().block_on(async {
        let store = PostgresStore::connect(&url).await.unwrap();
        a_fork_in_a_branch_flow_pauses_before_and_after_its_branches(
            "fork-in-branch-postgres",
            store,
        )
        .await;
    });
}

#[test]
fn a_question_three_levels_deep_is_answered_and_nothing_runs_twice() {
    let test = "three-deep";
    let deep = flow! { b >> ask >> reads; };
    let mid = flow! { [deep, c] >> d; };
    let flow = flow! { a >> [mid, e] >> f; }.with_params(params(test));
    let durable = flow.durable(MemoryStore::new());
    let first = block_on(durable.start(test, &mut Desk::default())).unwrap();
    // Its key ends with the part at each level: `deep` is part 0 of `mid`'s fork, `mid` part 0
    // of the thread's.
    let pause = &first.pauses()[0];
    assert_eq!(keys(&first), ["asked:mid/deep/ask@3#0#0"]);
    assert_eq!(pause.node, "mid/deep/ask");
    assert_eq!(pause.asked, Some(serde_json::json!({ "approve": 2 })));
    // `mid` is kept with what its fork kept: `deep`, stopped at the question, and `c`, finished.
    let history = block_on(durable.history(test)).unwrap();
    let mid_kept = history
        .iter()
        .rfind(|record| record.kind == RecordKind::Kept && record.key == "0")
        .expect("mid is kept");
    let inner: Vec<(&str, bool)> = mid_kept
        .parts
        .iter()
        .map(|part| (part.key.as_str(), part.pauses.is_empty()))
        .collect();
    assert_eq!(inner, [("0", false), ("1", true)], "{mid_kept:?}");
    assert_eq!(mid_kept.parts[0].pauses[0].key, "asked:mid/deep/ask@3#0");

    block_on(durable.answer(test, &pause.key, answer("yes"))).unwrap();
    let (desk, last) = block_on(durable.resume(test)).unwrap();
    assert_eq!(last, Outcome::Finished("default".into()));
    assert_eq!(
        desk.log,
        [
            "a",
            "b",
            "ask",
            "reads",
            "saw [\"yes\"]",
            "c",
            "d",
            "e",
            "f"
        ]
    );
    assert_eq!(desk.answers, ["yes"]);
    for node in ["a", "b", "ask", "reads", "c", "d", "e", "f"] {
        assert_eq!(ran(&format!("{test}/{node}")), 1, "{node}");
    }
}

/// Two runs of a batch flow, item 0 and 1.
fn two_runs(test: &'static str) -> impl slateflow::batch::BatchPlan<Desk> {
    batch::from_fn(move |_: &Desk| {
        (0..2)
            .map(|item| Params::new().with("test", test).with("item", item))
            .collect()
    })
}

/// Answers every pause, each with its key, and resumes, until the thread finishes: the pauses
/// of each round.
fn answer_until_finished<St: CheckpointStore + 'static, G: slateflow::flow::FlowGraph<Desk>>(
    durable: &slateflow::durable::Durable<'_, Desk, G, St>,
    test: &str,
    mut outcome: Outcome,
) -> Vec<Vec<String>> {
    let mut rounds = Vec::new();
    while let Outcome::Paused(pauses) = outcome {
        for pause in &pauses {
            block_on(durable.answer(test, &pause.key, answer(&pause.key))).unwrap();
        }
        rounds.push(pauses.into_iter().map(|pause| pause.key).collect());
        assert!(rounds.len() < 10, "{rounds:?}");
        outcome = block_on(durable.resume(test)).unwrap().1;
    }
    assert_eq!(outcome, Outcome::Finished("default".into()));
    rounds
}

#[test]
fn runs_of_a_batch_flow_inside_a_batch_flow_ask_one_after_another() {
    let test = "batch-in-batch";
    let inner = Batch::flow(flow! { b >> ask; }, two_runs(test));
    let outer = Batch::flow(flow! { inner >> c; }, two_runs(test));
    let flow = flow! { a >> outer >> d; }.with_params(params(test));
    let durable = flow.durable(MemoryStore::new());
    let first = block_on(durable.start(test, &mut Desk::default())).unwrap();
    let rounds = answer_until_finished(&durable, test, first);
    // Keys end with the inner run, then the outer one.
    assert_eq!(
        rounds,
        [
            ["asked:outer/inner/ask@5#0#0"],
            ["asked:outer/inner/ask@7#1#0"],
            ["asked:outer/inner/ask@11#0#1"],
            ["asked:outer/inner/ask@13#1#1"],
        ]
    );
    let desk = block_on(durable.state(test)).unwrap();
    assert_eq!(
        desk.log,
        [
            "a", "b0", "ask0", "b1", "ask1", "c0", "b0", "ask0", "b1", "ask1", "c1", "d"
        ]
    );
    assert_eq!(desk.answers, rounds.concat(), "each answer counted once");
    for (node, times) in [
        ("a", 1),
        ("b0", 2),
        ("ask0", 2),
        ("b1", 2),
        ("ask1", 2),
        ("c0", 1),
        ("c1", 1),
        ("d", 1),
    ] {
        assert_eq!(ran(&format!("{test}/{node}")), times, "{node}");
    }
}

#[test]
fn concurrent_runs_of_a_batch_flow_inside_a_batch_flow_ask_together() {
    let test = "batch-in-batch-concurrent";
    let inner = Batch::flow(flow! { b >> ask; }, two_runs(test)).concurrent(2);
    let outer = Batch::flow(flow! { inner >> c; }, two_runs(test)).concurrent(2);
    let flow = flow! { a >> outer >> d; }.with_params(params(test));
    let durable = flow.durable(MemoryStore::new());
    let first = block_on(durable.start(test, &mut Desk::default())).unwrap();
    let rounds = answer_until_finished(&durable, test, first);
    assert_eq!(rounds.len(), 1, "all four ask at once: {rounds:?}");
    let mut asked = rounds[0].clone();
    asked.sort();
    assert_eq!(
        asked,
        [
            "asked:outer/inner/ask@5#0#0",
            "asked:outer/inner/ask@5#0#1",
            "asked:outer/inner/ask@5#1#0",
            "asked:outer/inner/ask@5#1#1",
        ]
    );
    let desk = block_on(durable.state(test)).unwrap();
    assert_eq!(desk.count, 1 + 2 * (2 * 2 + 1) + 1);
    assert_eq!(desk.answers.len(), 4);
    for (node, times) in [
        ("b0", 2),
        ("ask0", 2),
        ("b1", 2),
        ("ask1", 2),
        ("c0", 1),
        ("c1", 1),
    ] {
        assert_eq!(ran(&format!("{test}/{node}")), times, "{node}");
    }
}

#[test]
fn a_fork_inside_a_batch_flow_asks_and_goes_on() {
    let test = "fork-in-batch";
    let inner = flow! { b >> c; };
    let batch = Batch::flow(
        flow! { [inner, ask] >> reads; },
        batch::from_fn(|_: &Desk| vec![Params::new().with("test", "fork-in-batch")]),
    );
    let flow = flow! { a >> batch >> d; }.with_params(params(test));
    let durable = flow.durable(MemoryStore::new());
    let first = block_on(durable.start(test, &mut Desk::default())).unwrap();
    assert_eq!(keys(&first), ["asked:batch/ask@5#0"]);
    block_on(durable.answer(test, "asked:batch/ask@5#0", answer("yes"))).unwrap();
    let (desk, last) = block_on(durable.resume(test)).unwrap();
    assert_eq!(last, Outcome::Finished("default".into()));
    assert_eq!(
        desk.log,
        ["a", "b", "c", "ask", "reads", "saw [\"yes\"]", "d"]
    );
    for node in ["a", "b", "c", "ask", "reads", "d"] {
        assert_eq!(ran(&format!("{test}/{node}")), 1, "{node}");
    }
}

static BUGGY: AtomicBool = AtomicBool::new(true);

/// Writes the verdict.
#[node]
fn left(_: &Desk, context: &Context<'_>) -> Result<Command<Desk>, NodeError> {
    Ok(Command::new(
        visit(context, "left")?.set_verdict("left".into()),
    ))
}

/// Writes the verdict too while the buggy build is deployed: its branch conflicts with `left`'s.
#[node]
fn right(_: &Desk, context: &Context<'_>) -> Result<Command<Desk>, NodeError> {
    let update = visit(context, "right")?;
    Ok(Command::new(if BUGGY.load(Ordering::SeqCst) {
        update.set_verdict("right".into())
    } else {
        update
    }))
}

#[test]
fn a_merge_that_fails_inside_a_part_that_stopped_runs_again_once_fixed() {
    let test = "nested-conflict";
    let deep = flow! { ask >> right; };
    let mid = flow! { [left, deep] >> d; };
    let flow = flow! { a >> [mid, e]; }.with_params(params(test));
    let durable = flow.durable(MemoryStore::new());
    let first = block_on(durable.start(test, &mut Desk::default())).unwrap();
    // `mid` stops in its fork, having kept `left` (finished) and `deep` (at the question).
    assert_eq!(keys(&first), ["asked:mid/deep/ask@3#1#0"]);
    block_on(durable.answer(test, "asked:mid/deep/ask@3#1#0", answer("go"))).unwrap();
    // The buggy `right` conflicts with the kept `left`: the step fails.
    let error = block_on(durable.resume(test)).unwrap_err();
    assert!(
        matches!(error, slateflow::Error::ParallelConflict { .. }),
        "{error}"
    );
    assert!(matches!(
        block_on(durable.status(test)).unwrap(),
        RunStatus::Failed { .. }
    ));
    // The fix is deployed: the fork inside `mid` runs again, and its new output is used, where
    // a replay of what was kept would have failed the same way.
    BUGGY.store(false, Ordering::SeqCst);
    let (_, outcome) = block_on(durable.resume(test)).unwrap();
    let rounds = answer_until_finished(&durable, test, outcome);
    let desk = block_on(durable.state(test)).unwrap();
    assert_eq!(desk.verdict, "left");
    assert_eq!(
        ran(&format!("{test}/e")),
        1,
        "the finished sibling of `mid` is kept"
    );
    assert!(
        rounds.is_empty(),
        "the question answered is not asked again: {rounds:?}"
    );
    assert_eq!(desk.log, ["a", "left", "ask", "right", "d", "e"]);
    assert_eq!(desk.answers, ["go"]);
    assert!(ran(&format!("{test}/left")) >= 2, "`left` ran again");
}

#[test]
fn runs_of_a_batch_flow_inside_a_fork_branch_flow_ask_one_after_another() {
    let test = "batch-in-branch";
    let batch = Batch::flow(flow! { b >> ask; }, two_runs(test));
    let inner = flow! { batch >> d; };
    let flow = flow! { a >> [inner, e] >> f; }.with_params(params(test));
    let durable = flow.durable(MemoryStore::new());
    let first = block_on(durable.start(test, &mut Desk::default())).unwrap();
    let rounds = answer_until_finished(&durable, test, first);
    // Keys end with the batch flow's run, then the fork's branch.
    assert_eq!(
        rounds,
        [
            ["asked:inner/batch/ask@4#0#0"],
            ["asked:inner/batch/ask@6#1#0"]
        ]
    );
    let desk = block_on(durable.state(test)).unwrap();
    assert_eq!(desk.log, ["a", "b0", "ask0", "b1", "ask1", "d", "e", "f"]);
    assert_eq!(desk.answers, rounds.concat());
    for node in ["a", "b0", "ask0", "b1", "ask1", "d", "e", "f"] {
        assert_eq!(ran(&format!("{test}/{node}")), 1, "{node}");
    }
}
