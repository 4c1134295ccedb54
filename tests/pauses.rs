//! Exact pauses in durable runs: interrupts checked against the flow, pauses by path inside nested
//! flows and on fork branches, questions a node asks, keyed answers counted once, and the crash
//! points between saving a pause and reporting it. Also: the step limit across resumes, one claim
//! per thread within a process, a reducer that panics while a thread is rebuilt.

use std::sync::Arc;

use serde::{Deserialize, Serialize};
use slateflow::batch::{self, Batch};
use slateflow::checkpoint::{
    CheckpointStore, MemoryStore, RecordKind, RunStatus, StepRecord, StoreError,
};
use slateflow::durable::{Outcome, Pause, PauseWhen};
use slateflow::{Command, Context, Error, Params, SharedState, flow, node};

/// Helpers shared by test files; each uses part of them.
#[allow(dead_code)]
mod support {
    pub(crate) mod runs;
}

use support::runs::{block_on, params, ran};

#[derive(SharedState, Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
struct Desk {
    /// Summed: a step or an answer applied twice would show.
    #[reducer(add)]
    count: u64,
    #[reducer(append)]
    log: Vec<String>,
    #[reducer(append)]
    answers: Vec<String>,
}

/// Counts each run of a node per test, in the params' `test`: `ran("t/b")`.
fn visit(context: &Context<'_>, node: &str) -> DeskUpdate {
    let test = context.params().get_str("test").unwrap_or_default();
    support::runs::count(&format!("{test}/{node}")).unwrap();
    Desk::update().add_count(1).push_log(node.to_string())
}

#[node]
fn a(_: &Desk, context: &Context<'_>) -> Command<Desk> {
    Command::new(visit(context, "a"))
}

#[node]
fn b(_: &Desk, context: &Context<'_>) -> Command<Desk> {
    Command::new(visit(context, "b"))
}

#[node]
fn c(_: &Desk, context: &Context<'_>) -> Command<Desk> {
    Command::new(visit(context, "c"))
}

#[node]
fn d(_: &Desk, context: &Context<'_>) -> Command<Desk> {
    Command::new(visit(context, "d"))
}

/// Asks for approval, with the count so far as the question.
#[node]
fn ask(desk: &Desk, context: &Context<'_>) -> Command<Desk> {
    Command::new(visit(context, "ask")).ask(serde_json::json!({ "approve": desk.count }))
}

fn answer(text: &str) -> DeskUpdate {
    Desk::update().push_answers(text.to_string())
}

#[test]
fn an_interrupt_the_flow_does_not_have_is_an_error_naming_the_closest_node() {
    let inner = flow! { b >> c; };
    let batch = Batch::flow(
        flow! { [d, ask]; },
        batch::from_fn(|_: &Desk| vec![Params::new()]),
    );
    let flow = flow! { a >> inner >> batch; };
    let cases: [(&[&str], &[&str], &str); 4] = [
        (
            &["inenr/b"],
            &[],
            "cannot pause before `inenr/b`: the flow has no node of that name (did you mean \
             `inner/b`?); nodes nested in flows are named by their path; the nodes are: a, \
             inner/b, inner/c, batch/d, batch/ask",
        ),
        (
            &[],
            &["c"],
            "cannot pause after `c`: the flow has no node of that name (did you mean `a`?); nodes \
             nested in flows are named by their path; the nodes are: a, inner/b, inner/c, \
             batch/d, batch/ask",
        ),
        (
            &["inner"],
            &[],
            "cannot pause before `inner`: it is a nested flow; name one of its nodes (`inner/...`)",
        ),
        (
            &[],
            &["batch/dd"],
            "cannot pause after `batch/dd`: the flow has no node of that name (did you mean \
             `batch/d`?); nodes nested in flows are named by their path; the nodes are: a, \
             inner/b, inner/c, batch/d, batch/ask",
        ),
    ];
    for (before, after, expected) in cases {
        let durable = flow
            .durable(MemoryStore::new())
            .interrupt_before(before)
            .interrupt_after(after);
        let mut desk = Desk::default();
        let error = block_on(durable.start("t", &mut desk)).unwrap_err();
        assert!(matches!(error, Error::Interrupt { .. }), "{error:?}");
        assert_eq!(error.to_string(), expected);
        assert!(
            block_on(durable.threads()).unwrap().is_empty(),
            "nothing was started"
        );
    }
}

#[test]
fn pauses_inside_a_nested_flow_are_named_by_path_and_passed_on_resume() {
    let test = "nested";
    let inner = flow! { b >> c; };
    let flow = flow! { a >> inner >> d; }.with_params(params(test));
    let durable = flow
        .durable(MemoryStore::new())
        .interrupt_before(&["inner/c"])
        .interrupt_after(&["inner/b"]);
    let mut desk = Desk::default();
    let outcome = block_on(durable.start(test, &mut desk)).unwrap();
    assert_eq!(
        outcome.pauses(),
        [Pause::new("inner/b", PauseWhen::After, 2)]
    );
    let (_, outcome) = block_on(durable.resume(test)).unwrap();
    assert_eq!(
        outcome.pauses(),
        [Pause::new("inner/c", PauseWhen::Before, 2)]
    );
    let (desk, outcome) = block_on(durable.resume(test)).unwrap();
    assert_eq!(outcome, Outcome::Finished("default".into()));
    assert_eq!(desk.log, ["a", "b", "c", "d"]);
    for node in ["a", "b", "c", "d"] {
        assert_eq!(ran(&format!("{test}/{node}")), 1, "{node}");
    }
}

#[test]
fn branches_of_a_fork_pause_together_and_each_pause_takes_one_answer() {
    let test = "fork";
    let flow = flow! { a >> [b, c] >> d; }.with_params(params(test));
    let durable = flow
        .durable(MemoryStore::new())
        .interrupt_before(&["b", "c"])
        .interrupt_after(&["c"]);
    let mut desk = Desk::default();
    let outcome = block_on(durable.start(test, &mut desk)).unwrap();
    let before = [
        Pause::new("b", PauseWhen::Before, 1),
        Pause::new("c", PauseWhen::Before, 1),
    ];
    assert_eq!(outcome.pauses(), before);
    assert_eq!(ran("fork/b") + ran("fork/c"), 0, "no branch ran");
    assert_eq!(
        block_on(durable.status(test)).unwrap(),
        RunStatus::Paused {
            pauses: vec!["before:b@1".into(), "before:c@1".into()]
        }
    );
    // One answer of two: still paused. Both: queued, ready for whoever resumes it (a worker).
    block_on(durable.answer(test, &before[0].key, answer(&before[0].key))).unwrap();
    assert!(matches!(
        block_on(durable.status(test)).unwrap(),
        RunStatus::Paused { .. }
    ));
    block_on(durable.answer(test, &before[1].key, answer(&before[1].key))).unwrap();
    assert_eq!(block_on(durable.status(test)).unwrap(), RunStatus::Queued);
    assert_eq!(
        block_on(durable.pending(test)).unwrap(),
        before,
        "answered, not yet passed"
    );
    let error = block_on(durable.answer(test, "before:d@1", answer("?"))).unwrap_err();
    assert!(
        error
            .to_string()
            .contains("no pause `before:d@1` is waiting"),
        "{error}"
    );
    let (_, outcome) = block_on(durable.resume(test)).unwrap();
    // The fork ran once, as steps 2 and 3, and paused after it for `c`.
    assert_eq!(outcome.pauses(), [Pause::new("c", PauseWhen::After, 3)]);
    let (desk, outcome) = block_on(durable.resume(test)).unwrap();
    assert_eq!(outcome, Outcome::Finished("default".into()));
    assert_eq!(desk.log, ["a", "b", "c", "d"]);
    assert_eq!(desk.answers, ["before:b@1", "before:c@1"]);
    assert_eq!((ran("fork/b"), ran("fork/c"), ran("fork/d")), (1, 1, 1));
}

#[test]
fn a_node_asks_a_question_and_does_not_run_again_after_the_answer() {
    let test = "asks";
    let flow = flow! { a >> ask >> b; }.with_params(params(test));
    let durable = flow.durable(MemoryStore::new());
    let mut desk = Desk::default();
    let outcome = block_on(durable.start(test, &mut desk)).unwrap();
    let mut expected = Pause::new("ask", PauseWhen::Asked, 2);
    expected.asked = Some(serde_json::json!({ "approve": 1 }));
    assert_eq!(outcome.pauses(), std::slice::from_ref(&expected));
    assert_eq!(desk.count, 2, "the asking step was applied");
    block_on(durable.answer(test, &expected.key, answer("yes"))).unwrap();
    let (desk, outcome) = block_on(durable.resume(test)).unwrap();
    assert_eq!(outcome, Outcome::Finished("default".into()));
    assert_eq!(
        (desk.log.len(), desk.answers.clone()),
        (3, vec!["yes".into()])
    );
    assert_eq!(ran("asks/ask"), 1);
    // The history says what happened, in order.
    let kinds: Vec<RecordKind> = block_on(durable.history(test))
        .unwrap()
        .iter()
        .map(|record| record.kind)
        .collect();
    assert_eq!(
        kinds,
        [
            RecordKind::Start,
            RecordKind::Step,
            RecordKind::Step,
            RecordKind::Input,
            RecordKind::Resume,
            RecordKind::Step
        ]
    );
}

/// A thread branched from a step whose question was answered goes on past it when resumed: the
/// answer came with the branch, and nobody is left to answer it again. (It used to report the
/// answered pause again and stand as paused: a worker, which runs no paused thread, left it there.)
#[test]
fn a_branch_from_an_answered_question_goes_on_past_it() {
    let test = "branch-answered";
    let flow = flow! { a >> ask >> b; }.with_params(params(test));
    let durable = flow.durable(MemoryStore::new());
    let outcome = block_on(durable.start(test, &mut Desk::default())).unwrap();
    let key = outcome.pauses()[0].key.clone();
    block_on(durable.answer(test, &key, answer("yes"))).unwrap();
    block_on(durable.resume(test)).unwrap();
    block_on(durable.branch(test, 2, "branch-answered-2")).unwrap();
    assert_eq!(
        block_on(durable.status("branch-answered-2")).unwrap(),
        RunStatus::Interrupted
    );
    let (desk, outcome) = block_on(durable.resume("branch-answered-2")).unwrap();
    assert_eq!(outcome, Outcome::Finished("default".into()));
    assert_eq!(desk.log, ["a", "ask", "b"]);
    assert_eq!(desk.answers, ["yes"]);
    // Branched from before the question, it asks again.
    block_on(durable.branch(test, 1, "branch-answered-1")).unwrap();
    let (_, outcome) = block_on(durable.resume("branch-answered-1")).unwrap();
    assert_eq!(outcome.pauses()[0].key, key);
}

#[test]
fn a_question_where_the_run_cannot_pause_is_a_clear_error() {
    let mut desk = Desk::default();
    let plain = flow! { a >> ask; };
    let error = plain.run_blocking(&mut desk).unwrap_err();
    assert!(
        matches!(
            error,
            Error::InputRequested {
                node: "ask",
                step: 2,
                ..
            }
        ),
        "{error:?}"
    );
    assert!(error.to_string().contains("only a durable run"), "{error}");
    // Nor in a fork of a run that is not durable.
    let forked = flow! { a >> [b, ask]; };
    let error = forked.run_blocking(&mut Desk::default()).unwrap_err();
    assert!(
        matches!(error, Error::InputRequested { node: "ask", .. }),
        "{error:?}"
    );
}

#[test]
fn branches_that_ask_pause_the_run_after_the_fork_with_every_question() {
    let test = "fork-asks";
    let flow = flow! { a >> [ask, b, ask_again] >> d; }.with_params(params(test));
    let durable = flow.durable(MemoryStore::new());
    let mut desk = Desk::default();
    let outcome = block_on(durable.start(test, &mut desk)).unwrap();
    // The fork (steps 2 to 4) is saved as step 4, with both questions; then the run pauses.
    let mut first = Pause::new("ask", PauseWhen::Asked, 4);
    first.asked = Some(serde_json::json!({ "approve": 1 }));
    let mut second = Pause::new("ask_again", PauseWhen::Asked, 4);
    second.asked = Some(serde_json::json!([]));
    assert_eq!(outcome.pauses(), [first.clone(), second.clone()]);
    assert_eq!(desk.count, 4, "the fork was applied");
    block_on(durable.answer(test, &first.key, answer("one"))).unwrap();
    block_on(durable.answer(test, &second.key, answer("two"))).unwrap();
    let (desk, outcome) = block_on(durable.resume(test)).unwrap();
    assert_eq!(outcome, Outcome::Finished("default".into()));
    assert_eq!(desk.answers, ["one", "two"]);
    for node in ["a", "ask", "b", "ask_again", "d"] {
        assert_eq!(ran(&format!("{test}/{node}")), 1, "{node}");
    }
}

/// Three runs of a sequential batch flow, each one step, with the test's name.
fn three_runs(test: &'static str) -> impl slateflow::batch::BatchPlan<Desk> {
    batch::from_fn(move |_: &Desk| {
        (0..3)
            .map(|item| Params::new().with("test", test).with("item", item))
            .collect()
    })
}

#[test]
fn runs_of_a_sequential_batch_flow_ask_one_after_another_and_go_on_from_their_question() {
    let test = "sequential-ask";
    let batch = Batch::flow(flow! { b >> ask >> c; }, three_runs(test));
    let flow = flow! { a >> batch >> d; }.with_params(params(test));
    let durable = flow.durable(MemoryStore::new());
    let mut desk = Desk::default();
    let mut outcome = block_on(durable.start(test, &mut desk)).unwrap();
    // `a` is step 1 and the batch's own step 2; run r's `ask` is step 4 + 3r.
    let mut keys = Vec::new();
    while let Outcome::Paused(pauses) = outcome {
        assert_eq!(pauses.len(), 1, "{pauses:?}");
        keys.push(pauses[0].key.clone());
        block_on(durable.answer(test, &pauses[0].key, answer(&pauses[0].key))).unwrap();
        let (_, next) = block_on(durable.resume(test)).unwrap();
        outcome = next;
    }
    assert_eq!(
        keys,
        [
            "asked:batch/ask@4#0",
            "asked:batch/ask@7#1",
            "asked:batch/ask@10#2"
        ]
    );
    let desk = block_on(durable.state(test)).unwrap();
    assert_eq!(desk.answers, keys, "each answer counted once");
    for node in ["a", "b", "ask", "c", "d"] {
        let expected = if matches!(node, "a" | "d") { 1 } else { 3 };
        assert_eq!(ran(&format!("{test}/{node}")), expected, "{node}");
    }
    assert_eq!(
        desk.log,
        ["a", "b", "ask", "c", "b", "ask", "c", "b", "ask", "c", "d"]
    );
    // The batch was saved once, as one step, with the numbers of an uninterrupted run.
    let steps = step_numbers(&block_on(durable.history(test)).unwrap());
    assert_eq!(steps, [1, 11, 12]);
}

#[test]
fn an_interrupt_before_a_node_of_a_sequential_batch_flow_pauses_each_run() {
    let test = "sequential-before";
    let batch = Batch::flow(flow! { b >> c; }, three_runs(test));
    let flow = flow! { a >> batch >> d; }.with_params(params(test));
    let durable = flow
        .durable(MemoryStore::new())
        .interrupt_before(&["batch/c"]);
    let mut outcome = block_on(durable.start(test, &mut Desk::default())).unwrap();
    let mut keys = Vec::new();
    while let Outcome::Paused(pauses) = outcome {
        keys.extend(pauses.into_iter().map(|pause| pause.key));
        outcome = block_on(durable.resume(test)).unwrap().1;
    }
    assert_eq!(
        keys,
        [
            "before:batch/c@3#0",
            "before:batch/c@5#1",
            "before:batch/c@7#2"
        ]
    );
    assert_eq!(
        (ran("sequential-before/b"), ran("sequential-before/c")),
        (3, 3)
    );
    assert_eq!(block_on(durable.state(test)).unwrap().count, 1 + 6 + 1);
}

/// The numbers of the steps a thread saved, in order.
fn step_numbers(history: &[StepRecord]) -> Vec<u64> {
    history
        .iter()
        .filter(|record| record.kind == RecordKind::Step)
        .map(|record| record.step)
        .collect()
}

/// Logs the answers it sees.
#[node]
fn reads(desk: &Desk, context: &Context<'_>) -> Command<Desk> {
    let seen = visit(context, "reads");
    Command::new(seen.push_log(format!("saw {:?}", desk.answers)))
}

#[test]
fn a_question_inside_a_flow_nested_in_a_fork_branch_pauses_the_fork_and_goes_on_from_it() {
    let test = "branch-ask";
    let inner = flow! { ask >> reads; };
    let flow = flow! { a >> [b, inner, c] >> d; }.with_params(params(test));
    let root = std::env::temp_dir().join(format!("slateflow-pauses-{test}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&root);
    let durable = flow.durable(slateflow::checkpoint::FileStore::open(&root).unwrap());
    let mut desk = Desk::default();
    let outcome = block_on(durable.start(test, &mut desk)).unwrap();
    // a is step 1; the branches are steps 2, 3 (ask, then reads) and 4 (c): the question stops
    // `inner` after step 3, while `b` and `c` finish.
    let mut expected = Pause::new("inner/ask", PauseWhen::Asked, 3);
    expected.key = "asked:inner/ask@3#1".into();
    expected.asked = Some(serde_json::json!({ "approve": 1 }));
    assert_eq!(outcome.pauses(), std::slice::from_ref(&expected));
    assert_eq!(
        (
            ran("branch-ask/b"),
            ran("branch-ask/c"),
            ran("branch-ask/reads")
        ),
        (1, 1, 0)
    );
    assert_eq!(block_on(durable.pending(test)).unwrap(), [expected.clone()]);
    assert_eq!(
        block_on(durable.status(test)).unwrap(),
        RunStatus::Paused {
            pauses: vec![expected.key.clone()]
        }
    );
    assert_eq!(
        block_on(durable.state(test)).unwrap().count,
        1,
        "only `a` saved as a step"
    );
    block_on(durable.answer(test, &expected.key, answer("yes"))).unwrap();
    let (desk, outcome) = block_on(durable.resume(test)).unwrap();
    assert_eq!(outcome, Outcome::Finished("default".into()));
    // Nothing ran twice; `reads` saw the answer; the fork merged in written order.
    for node in ["a", "b", "ask", "c", "d", "reads"] {
        assert_eq!(ran(&format!("{test}/{node}")), 1, "{node}");
    }
    assert_eq!(
        desk.log,
        ["a", "b", "ask", "reads", "saw [\"yes\"]", "c", "d"]
    );
    assert_eq!(
        (desk.count, desk.answers.clone()),
        (6, vec!["yes".to_string()])
    );
    assert_eq!(block_on(durable.state(test)).unwrap(), desk);
    // The fork was saved once, as one step, after the answer: steps 1 (a), 5 (the fork, whose
    // branches ran four steps) and 6 (d).
    let steps = step_numbers(&block_on(durable.history(test)).unwrap());
    assert_eq!(steps, [1, 5, 6]);
    let _ = std::fs::remove_dir_all(&root);
}

/// Asks again, with the answers so far as the question.
#[node]
fn ask_again(desk: &Desk, context: &Context<'_>) -> Command<Desk> {
    Command::new(visit(context, "ask_again")).ask(serde_json::json!(desk.answers))
}

#[test]
fn a_branch_flow_that_asks_twice_stops_twice_and_a_crash_before_the_status_skips_nothing() {
    let test = "branch-twice";
    let inner = flow! { ask >> ask_again >> reads; };
    let flow = flow! { a >> [b, inner]; }.with_params(params(test));
    let store = MemoryStore::new();
    let durable = flow.durable(store.clone());
    let first = block_on(durable.start(test, &mut Desk::default())).unwrap();
    assert_eq!(first.pauses()[0].key, "asked:inner/ask@3#1");
    // The process dies after keeping the stopped branch, before saving the status: the resume
    // reports the same pause and runs nothing.
    die_before_the_status(&store, test);
    let (_, again) = block_on(durable.resume(test)).unwrap();
    assert_eq!(again, first);
    block_on(durable.answer(test, "asked:inner/ask@3#1", answer("one"))).unwrap();
    let (_, second) = block_on(durable.resume(test)).unwrap();
    assert_eq!(second.pauses()[0].key, "asked:inner/ask_again@4#1");
    assert_eq!(second.pauses()[0].asked, Some(serde_json::json!(["one"])));
    block_on(durable.answer(test, "asked:inner/ask_again@4#1", answer("two"))).unwrap();
    let (desk, outcome) = block_on(durable.resume(test)).unwrap();
    assert_eq!(outcome, Outcome::Finished("default".into()));
    assert_eq!(desk.answers, ["one", "two"]);
    assert_eq!(
        desk.log,
        [
            "a",
            "b",
            "ask",
            "ask_again",
            "reads",
            "saw [\"one\", \"two\"]"
        ]
    );
    for node in ["a", "b", "ask", "ask_again", "reads"] {
        assert_eq!(ran(&format!("{test}/{node}")), 1, "{node}");
    }
}

#[test]
fn runs_of_a_concurrent_batch_flow_pause_before_a_node_each_with_its_own_key() {
    let test = "batch-before";
    let runs_of = |_: &Desk| {
        (0..3)
            .map(|item| {
                Params::new()
                    .with("test", "batch-before")
                    .with("item", item)
            })
            .collect()
    };
    let batch = Batch::flow(flow! { b >> c; }, batch::from_fn(runs_of)).concurrent(3);
    let flow = flow! { a >> batch >> d; }.with_params(params(test));
    let durable = flow
        .durable(MemoryStore::new())
        .interrupt_before(&["batch/c"]);
    let outcome = block_on(durable.start(test, &mut Desk::default())).unwrap();
    // `a` is step 1, the batch's own step 2; each run numbers on from 3.
    let keys: Vec<&str> = outcome
        .pauses()
        .iter()
        .map(|pause| pause.key.as_str())
        .collect();
    assert_eq!(
        keys,
        [
            "before:batch/c@3#0",
            "before:batch/c@3#1",
            "before:batch/c@3#2"
        ]
    );
    assert!(outcome.pauses().iter().all(|pause| pause.node == "batch/c"));
    assert_eq!((ran("batch-before/b"), ran("batch-before/c")), (3, 0));
    // A resume goes past every pause; each run goes on from where it stopped.
    let (desk, outcome) = block_on(durable.resume(test)).unwrap();
    assert_eq!(outcome, Outcome::Finished("default".into()));
    assert_eq!((ran("batch-before/b"), ran("batch-before/c")), (3, 3));
    assert_eq!(desk.count, 1 + 6 + 1);
    assert_eq!(desk.log, ["a", "b", "c", "b", "c", "b", "c", "d"]);
}

#[test]
fn interrupts_after_nodes_in_fork_branch_flows_pause_and_wait_for_the_other_branches() {
    let test = "branch-after";
    let left = flow! { b >> c; };
    let right = flow! { d; };
    let flow = flow! { a >> [left, right] >> ask; }.with_params(params(test));
    let durable = flow
        .durable(MemoryStore::new())
        .interrupt_after(&["left/b", "right/d"]);
    let outcome = block_on(durable.start(test, &mut Desk::default())).unwrap();
    let keys: Vec<&str> = outcome
        .pauses()
        .iter()
        .map(|pause| pause.key.as_str())
        .collect();
    assert_eq!(keys, ["after:left/b@2#0", "after:right/d@3#1"]);
    let (_, outcome) = block_on(durable.resume(test)).unwrap();
    // Both went on from their pauses, the fork was saved, and `ask` asks.
    assert_eq!(outcome.pauses()[0].node, "ask");
    assert_eq!(
        (
            ran("branch-after/b"),
            ran("branch-after/c"),
            ran("branch-after/d")
        ),
        (1, 1, 1)
    );
}

/// Makes the store look as if the run's process died after saving its pauses and before saving
/// its status: the status says running, and nobody holds the claim.
fn die_before_the_status<St: CheckpointStore>(store: &St, thread: &str) {
    block_on(async {
        let mut claim = store.claim(thread).await.unwrap();
        store
            .set_status(&mut claim, &RunStatus::Running)
            .await
            .unwrap();
    });
}

#[test]
fn an_answer_saved_by_a_process_that_died_before_queueing_the_thread_is_queued_when_repeated() {
    let test = "answer-died";
    let flow = flow! { a >> ask >> b; }.with_params(params(test));
    let durable = flow.durable(MemoryStore::new());
    let outcome = block_on(durable.start(test, &mut Desk::default())).unwrap();
    let key = outcome.pauses()[0].key.clone();
    // The answer is saved, and the process dies before the status says the thread is queued.
    block_on(async {
        let mut claim = durable.store().claim(test).await.unwrap();
        let mut input = StepRecord::new(2, RecordKind::Input);
        input.key.clone_from(&key);
        input.update = serde_json::to_value(answer("yes")).unwrap();
        durable.store().append(&mut claim, &input).await.unwrap();
    });
    assert!(matches!(
        block_on(durable.status(test)).unwrap(),
        RunStatus::Paused { .. }
    ));
    // The application answers again: refused, counted once, and the thread is queued now.
    let error = block_on(durable.answer(test, &key, answer("yes"))).unwrap_err();
    assert!(error.to_string().contains("answered already"), "{error}");
    assert_eq!(block_on(durable.status(test)).unwrap(), RunStatus::Queued);
    let (desk, _) = block_on(durable.resume(test)).unwrap();
    assert_eq!(desk.answers, ["yes"]);
}

#[test]
fn a_pause_saved_but_never_reported_is_reported_on_resume_not_skipped() {
    for (test, interrupt) in [
        ("unreported-after", "after"),
        ("unreported-before", "before"),
    ] {
        let flow = flow! { a >> b >> c; }.with_params(params(test));
        let store = MemoryStore::new();
        let durable = if interrupt == "after" {
            flow.durable(store.clone()).interrupt_after(&["b"])
        } else {
            flow.durable(store.clone()).interrupt_before(&["c"])
        };
        let first = block_on(durable.start(test, &mut Desk::default())).unwrap();
        assert_eq!(first.pauses().len(), 1);
        die_before_the_status(&store, test);
        assert_eq!(
            block_on(durable.status(test)).unwrap(),
            RunStatus::Interrupted
        );
        // The resume reports the same pause and runs nothing.
        let (_, again) = block_on(durable.resume(test)).unwrap();
        assert_eq!(again, first, "{test}");
        assert_eq!(ran(&format!("{test}/c")), 0, "{test}");
        // Now it was reported: the next resume goes past it.
        let (desk, outcome) = block_on(durable.resume(test)).unwrap();
        assert_eq!(outcome, Outcome::Finished("default".into()));
        assert_eq!(desk.log, ["a", "b", "c"], "{test}");
    }
}

#[test]
fn a_resume_that_died_after_passing_a_pause_does_not_report_it_again() {
    let test = "passed";
    let flow = flow! { a >> b >> c; }.with_params(params(test));
    let store = MemoryStore::new();
    let durable = flow.durable(store.clone()).interrupt_before(&["c"]);
    let outcome = block_on(durable.start(test, &mut Desk::default())).unwrap();
    let key = outcome.pauses()[0].key.clone();
    block_on(durable.answer(test, &key, answer("go"))).unwrap();
    // A resume that saved that it went past the pause, then died before `c` was saved.
    block_on(async {
        let mut claim = store.claim(test).await.unwrap();
        store
            .append(&mut claim, &StepRecord::new(2, RecordKind::Resume))
            .await
            .unwrap();
        store
            .set_status(&mut claim, &RunStatus::Running)
            .await
            .unwrap();
    });
    let (desk, outcome) = block_on(durable.resume(test)).unwrap();
    assert_eq!(outcome, Outcome::Finished("default".into()));
    assert_eq!(desk.answers, ["go"], "the answer counted once");
    assert_eq!(ran("passed/c"), 1);
    // A late second answer (to a report seen twice) is refused: the thread went past the pause.
    let error = block_on(durable.answer(test, &key, answer("go"))).unwrap_err();
    assert!(
        error
            .to_string()
            .contains("no pause `before:c@2` is waiting"),
        "{error}"
    );
    assert_eq!(block_on(durable.state(test)).unwrap().answers, ["go"]);
}

#[node(actions = ["again"])]
fn spin(_: &Desk, context: &Context<'_>) -> Command<Desk> {
    Command::new(visit(context, "spin")).with_action("again")
}

#[test]
fn the_step_limit_counts_every_step_of_the_thread_across_resumes() {
    let test = "limit";
    let flow = flow! { spin - "again" >> spin; }
        .with_params(params(test))
        .with_max_steps(10);
    let durable = flow.durable(MemoryStore::new()).interrupt_after(&["spin"]);
    let mut desk = Desk::default();
    let mut outcome = block_on(durable.start(test, &mut desk));
    let mut resumes = 0;
    while let Ok(Outcome::Paused(_)) = outcome {
        resumes += 1;
        outcome = block_on(durable.resume(test)).map(|(_, outcome)| outcome);
    }
    let error = outcome.unwrap_err();
    assert!(
        matches!(
            error,
            Error::StepLimit {
                limit: 10,
                step: 11,
                ..
            }
        ),
        "{error:?}"
    );
    assert_eq!(resumes, 10);
    assert_eq!(
        ran("limit/spin"),
        10,
        "ten steps in all, not ten per resume"
    );
    assert!(matches!(
        block_on(durable.resume(test)),
        Err(Error::StepLimit { .. })
    ));
    assert_eq!(ran("limit/spin"), 10);
}

#[test]
fn a_nested_flows_step_limit_counts_from_where_it_was_entered_across_resumes() {
    let test = "nested-limit";
    let inner = flow! { spin - "again" >> spin; }.with_max_steps(4);
    let flow = flow! { a >> inner; }
        .with_params(params(test))
        .with_max_steps(100);
    let durable = flow
        .durable(MemoryStore::new())
        .interrupt_after(&["inner/spin"]);
    let mut desk = Desk::default();
    let mut outcome = block_on(durable.start(test, &mut desk));
    while let Ok(Outcome::Paused(_)) = outcome {
        outcome = block_on(durable.resume(test)).map(|(_, outcome)| outcome);
    }
    let error = outcome.unwrap_err();
    assert!(
        matches!(
            error,
            Error::StepLimit {
                limit: 4,
                step: 6,
                node: "spin",
            }
        ),
        "{error:?}"
    );
    assert_eq!(
        ran("nested-limit/spin"),
        4,
        "four steps of the nested flow in all, not four per resume"
    );
    let history = block_on(durable.history(test)).unwrap();
    let last = history
        .iter()
        .rfind(|record| record.kind == RecordKind::Step)
        .unwrap();
    assert_eq!(
        (last.node.as_str(), last.entered.as_slice()),
        ("inner/spin", &[1][..]),
        "entered after step 1"
    );
}

/// Holds its step until told to go on.
struct Gate(Arc<tokio::sync::Notify>);

impl slateflow::Node<Desk> for Gate {
    type Prep = ();
    type Exec = ();

    async fn prep(&self, _: &Desk, _: &Context<'_>) -> Result<(), slateflow::NodeError> {
        Ok(())
    }

    async fn exec(&self, (): &()) -> Result<(), slateflow::NodeError> {
        self.0.notified().await;
        Ok(())
    }

    async fn post(
        &self,
        _: &Desk,
        (): (),
        (): (),
        _: &Context<'_>,
    ) -> Result<Command<Desk>, slateflow::NodeError> {
        Ok(Command::new(Desk::update().add_count(1)))
    }
}

#[test]
fn a_second_run_of_a_running_thread_is_refused_and_writes_nothing() {
    let go = Arc::new(tokio::sync::Notify::new());
    let gate = Gate(Arc::clone(&go));
    let flow = flow! { a >> gate; }.with_params(params("claimed"));
    let store = MemoryStore::new();
    let first = flow.durable(store.clone());
    let second = flow.durable(store.clone());
    let mut desk = Desk::default();
    let (outcome, refused) = block_on(async {
        let run = first.start("busy", &mut desk);
        let other = async {
            // While the first run waits in `gate`, with step 1 saved.
            tokio::time::sleep(std::time::Duration::from_millis(20)).await;
            let refused = second.resume("busy").await;
            let update = second.update("busy", answer("sneaky")).await;
            go.notify_one();
            (refused, update)
        };
        tokio::join!(run, other)
    });
    assert_eq!(outcome.unwrap(), Outcome::Finished("default".into()));
    for error in [refused.0.unwrap_err(), refused.1.unwrap_err()] {
        assert!(
            matches!(&error, Error::Store(StoreError::Claimed { thread }) if thread == "busy"),
            "{error:?}"
        );
    }
    let desk = block_on(second.state("busy")).unwrap();
    assert_eq!((desk.count, desk.answers.len()), (2, 0));
    assert_eq!(ran("claimed/a"), 1);
}

#[derive(SharedState, Clone, Debug, Default, Serialize, Deserialize)]
struct Fragile {
    #[reducer(with = no_negatives)]
    value: i64,
}

fn no_negatives(current: &mut i64, next: i64) {
    assert!(next >= 0, "negative value {next}");
    *current = next;
}

#[node]
fn set_one(_: &Fragile) -> Command<Fragile> {
    Command::new(Fragile::update().reduce_value(1))
}

#[test]
fn a_reducer_that_panics_while_a_thread_is_rebuilt_is_an_error() {
    let flow = flow! { set_one; };
    let store = MemoryStore::new();
    let durable = flow.durable(store.clone());
    block_on(durable.start("fragile", &mut Fragile::default())).unwrap();
    // An input saved by an older version of the program, which the reducer now refuses.
    block_on(async {
        let mut claim = store.claim("fragile").await.unwrap();
        let mut input = StepRecord::new(1, RecordKind::Input);
        input.update = serde_json::json!({ "value": -5 });
        store.append(&mut claim, &input).await.unwrap();
    });
    let error = block_on(durable.state("fragile")).unwrap_err();
    let Error::Resume {
        thread,
        step,
        reason,
    } = &error
    else {
        panic!("expected a resume error, got {error:?}");
    };
    assert_eq!((thread.as_str(), *step), ("fragile", 1));
    assert!(
        reason.contains("a reducer panicked") && reason.contains("negative value -5"),
        "{reason}"
    );
}

#[node(actions = ["urgent", "routine"])]
fn route(_: &Desk) -> Command<Desk> {
    Command::goto("urgent").with_reason("the alert names an admin account")
}

#[test]
fn history_keeps_the_routing_reason_and_threads_can_be_listed_and_deleted() {
    let flow = flow! { route - "urgent" >> a; };
    let durable = flow.durable(MemoryStore::new());
    block_on(durable.start("one", &mut Desk::default())).unwrap();
    block_on(durable.start("two", &mut Desk::default())).unwrap();
    let history = block_on(durable.history("one")).unwrap();
    assert_eq!(history[1].node, "route");
    assert_eq!(
        history[1].reason.as_deref(),
        Some("the alert names an admin account")
    );
    let threads = block_on(durable.threads()).unwrap();
    assert_eq!(threads.len(), 2);
    assert_eq!(threads[0].id, "one");
    assert_eq!(threads[0].last_step, 2);
    assert_eq!(
        threads[0].status,
        RunStatus::Finished {
            action: "default".into()
        }
    );
    block_on(durable.delete("one")).unwrap();
    let ids: Vec<String> = block_on(durable.threads())
        .unwrap()
        .into_iter()
        .map(|thread| thread.id)
        .collect();
    assert_eq!(ids, ["two"]);
}

/// Asks two questions inside its step, counting each run of the step: what the person replied
/// goes in the state.
#[node]
async fn vet(_: &Desk, context: &Context<'_>) -> Result<Command<Desk>, slateflow::NodeError> {
    let update = visit(context, "vet");
    let first: String = context
        .interrupt("first", serde_json::json!({ "question": "Which team?" }))
        .await?;
    let second: u64 = context
        .interrupt("second", serde_json::json!({ "question": "How many?" }))
        .await?;
    Ok(Command::new(
        update.push_answers(first).push_answers(second.to_string()),
    ))
}

/// A node asks inside its step: the run pauses there, unsaved; each reply is kept, the step runs
/// again from its start and reads it; two questions pause twice; the state holds the step once.
/// On the memory, file and SQLite stores.
#[test]
fn a_node_asks_inside_its_step_and_reads_each_reply_when_it_runs_again() {
    let root = std::path::PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("pauses-interrupt");
    let _ = std::fs::remove_dir_all(&root);
    std::fs::create_dir_all(&root).unwrap();
    interrupted_on("interrupt-memory", MemoryStore::new());
    interrupted_on(
        "interrupt-file",
        slateflow::checkpoint::FileStore::open(root.join("file")).unwrap(),
    );
    interrupted_on(
        "interrupt-sqlite",
        slateflow::checkpoint::SqliteStore::open(root.join("runs.db")).unwrap(),
    );
}

fn interrupted_on<St: CheckpointStore + 'static>(test: &'static str, store: St) {
    let flow = flow! { a >> vet >> b; }.with_params(params(test));
    let durable = flow.durable(store);
    let outcome = block_on(durable.start(test, &mut Desk::default())).unwrap();
    let pauses = outcome.pauses().to_vec();
    assert_eq!(pauses.len(), 1, "{outcome:?}");
    assert_eq!(pauses[0].key, "asked:vet@1:first");
    assert_eq!(pauses[0].when, PauseWhen::Asked);
    assert_eq!(
        pauses[0].asked,
        Some(serde_json::json!({ "question": "Which team?" }))
    );
    // The step did not happen: the state stands after `a`.
    assert_eq!(block_on(durable.state(test)).unwrap().log, ["a"]);
    assert_eq!(
        block_on(durable.pending(test)).unwrap(),
        pauses,
        "the pause waits with the thread"
    );

    // A question asked inside a step takes a reply, not an update; and a reply of the wrong
    // type is refused by the node when it reads it.
    let error = block_on(durable.answer(test, &pauses[0].key, answer("x"))).unwrap_err();
    assert!(
        error
            .to_string()
            .contains("reply with `reply(thread, key, value)`"),
        "{error}"
    );
    block_on(durable.reply(test, &pauses[0].key, &"blue team")).unwrap();
    let again = block_on(durable.reply(test, &pauses[0].key, &"red team")).unwrap_err();
    assert!(again.to_string().contains("answered already"), "{again}");

    let (_, outcome) = block_on(durable.resume(test)).unwrap();
    let second = outcome.pauses().to_vec();
    assert_eq!(second.len(), 1, "{outcome:?}");
    assert_eq!(second[0].key, "asked:vet@1:second");
    block_on(durable.reply(test, &second[0].key, &"three")).unwrap();
    let error = block_on(durable.resume(test)).unwrap_err();
    assert!(
        error.to_string().contains(
            "the reply to `second` does not read as `u64`: invalid type: string \"three\""
        ),
        "{error}"
    );
    // A reply its node could not read may be replied again; the last one counts.
    block_on(durable.reply(test, &second[0].key, &3)).unwrap();
    let (desk, outcome) = block_on(durable.resume(test)).unwrap();
    assert_eq!(outcome, Outcome::Finished("default".into()));
    assert_eq!(desk.log, ["a", "vet", "b"], "the step is in the state once");
    assert_eq!(desk.answers, ["blue team", "3"]);
    assert_eq!(
        ran(&format!("{test}/vet")),
        4,
        "asked, asked, failed to read, done"
    );
    assert_eq!(ran(&format!("{test}/a")), 1);
}

/// Where a run cannot pause inside a step (a plain run, forked or not), asking there fails the
/// step, saying what to do.
#[test]
fn a_question_inside_a_step_where_the_run_cannot_pause_says_so() {
    let plain = flow! { a >> vet; };
    let error = plain.run_blocking(&mut Desk::default()).unwrap_err();
    assert!(
        error
            .to_string()
            .contains("which only a durable run's steps can do"),
        "{error}"
    );
    let forked = flow! { a >> [b, vet]; };
    let error = forked.run_blocking(&mut Desk::default()).unwrap_err();
    assert!(
        error.to_string().contains("only a durable run's step"),
        "{error}"
    );
}

/// A branch of a fork asks inside its step: the run pauses, the other branch's outcome kept;
/// replied, only the asking branch runs again, and the fork is saved once, with both.
#[test]
fn a_fork_branch_asks_inside_its_step_and_the_other_branch_does_not_run_again() {
    let test = "interrupt-fork";
    let forked = flow! { a >> [b, vet]; }.with_params(params(test));
    let durable = forked.durable(MemoryStore::new());
    let outcome = block_on(durable.start(test, &mut Desk::default())).unwrap();
    let [first] = outcome.pauses() else {
        panic!("{outcome:?}")
    };
    assert_eq!(first.key, "asked:vet@1:first");
    block_on(durable.reply(test, &first.key, &"blue team")).unwrap();
    let (_, outcome) = block_on(durable.resume(test)).unwrap();
    let [second] = outcome.pauses() else {
        panic!("{outcome:?}")
    };
    block_on(durable.reply(test, &second.key, &2)).unwrap();
    let (desk, outcome) = block_on(durable.resume(test)).unwrap();
    assert_eq!(outcome, Outcome::Finished("default".into()));
    assert_eq!(desk.answers, ["blue team", "2"]);
    let mut log = desk.log.clone();
    log.sort();
    assert_eq!(log, ["a", "b", "vet"]);
    assert_eq!(ran(&format!("{test}/b")), 1, "the finished branch was kept");
    assert_eq!(ran(&format!("{test}/vet")), 3);
}
