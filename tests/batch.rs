//! Batch nodes and batch flows, after PocketFlow's `BatchNode`, `AsyncParallelBatchNode`,
//! `BatchFlow` and `AsyncParallelBatchFlow`: per-item retries and fallbacks, input order, the
//! concurrency limit, params merging (the item wins), nested batch flows, and every run's action
//! reaching `post`.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::Duration;

use serde::{Deserialize, Serialize};
use slateflow::batch::{self, Batch, BatchNode, BatchPlan, BatchRun, ItemFailed};
use slateflow::{
    Command, Context, Error, NodeError, Params, Phase, Retry, SharedState, flow, node,
};

mod support {
    #[allow(dead_code)]
    pub(crate) mod runs;
}

#[derive(SharedState, Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
struct Docs {
    inputs: Vec<i64>,
    #[reducer(append)]
    outputs: Vec<i64>,
    #[reducer(add)]
    total: i64,
    /// What the leaf nodes of batch flows saw of params, in the order the updates merged.
    #[reducer(append)]
    seen: Vec<String>,
    last: Option<String>,
    /// The actions a batch flow's post received.
    #[reducer(append)]
    actions: Vec<String>,
}

fn paused_runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_time()
        .start_paused(true)
        .build()
        .unwrap()
}

/// Multiplies each input by ten after a delay that makes later items finish first; fails on
/// negative inputs, recovering as `-1` when `fallback` is set. Tracks the items in flight.
#[derive(Default)]
struct Times10 {
    fallback: bool,
    in_flight: AtomicUsize,
    most_in_flight: AtomicUsize,
    attempts: AtomicUsize,
}

#[node]
impl BatchNode<Docs> for Times10 {
    type Item = i64;
    type Output = i64;

    async fn prep(&self, docs: &Docs, _: &Context<'_>) -> Result<Vec<i64>, NodeError> {
        Ok(docs.inputs.clone())
    }

    async fn exec(&self, item: &i64) -> Result<i64, NodeError> {
        self.attempts.fetch_add(1, Ordering::SeqCst);
        let now = self.in_flight.fetch_add(1, Ordering::SeqCst) + 1;
        self.most_in_flight.fetch_max(now, Ordering::SeqCst);
        let delay = 100 - item.unsigned_abs().min(100);
        tokio::time::sleep(Duration::from_millis(delay)).await;
        self.in_flight.fetch_sub(1, Ordering::SeqCst);
        if *item < 0 {
            return Err(format!("cannot handle {item}").into());
        }
        Ok(item * 10)
    }

    async fn exec_fallback(&self, item: &i64, error: NodeError) -> Result<i64, NodeError> {
        if self.fallback {
            Ok(-1)
        } else {
            Err(format!("item {item}: {error}").into())
        }
    }

    async fn post(
        &self,
        _: &Docs,
        items: Vec<i64>,
        outputs: Vec<i64>,
        _: &Context<'_>,
    ) -> Result<Command<Docs>, NodeError> {
        assert_eq!(items.len(), outputs.len());
        Ok(Command::new(Docs::update().extend_outputs(outputs)))
    }
}

fn docs(inputs: &[i64]) -> Docs {
    Docs {
        inputs: inputs.to_vec(),
        ..Docs::default()
    }
}

#[test]
fn a_sequential_batch_keeps_input_order_and_falls_back_per_item() {
    let batch = Batch::items(Times10 {
        fallback: true,
        ..Times10::default()
    });
    let mut state = docs(&[1, -2, 3]);
    paused_runtime()
        .block_on(support::runs::alone(&batch, &mut state))
        .unwrap();
    assert_eq!(
        state.outputs,
        [10, -1, 30],
        "PocketFlow's [1, fallback(2), 3]"
    );
    assert_eq!(batch.node().most_in_flight.load(Ordering::SeqCst), 1);
}

#[test]
fn a_concurrent_batch_keeps_input_order_within_its_limit() {
    let batch = Batch::items(Times10::default()).concurrent(3);
    let inputs: Vec<i64> = (1..=10).collect();
    let mut state = docs(&inputs);
    paused_runtime()
        .block_on(support::runs::alone(&batch, &mut state))
        .unwrap();
    // Later items are faster, so they finished first; the outputs are still in input order.
    let expected: Vec<i64> = inputs.iter().map(|item| item * 10).collect();
    assert_eq!(state.outputs, expected);
    assert_eq!(batch.node().most_in_flight.load(Ordering::SeqCst), 3);
    assert_eq!(batch.limit(), 3);
}

#[test]
fn an_empty_batch_reaches_post_with_nothing() {
    for batch in [
        Batch::items(Times10::default()),
        Batch::items(Times10::default()).concurrent(4),
    ] {
        let mut state = docs(&[]);
        support::runs::alone_blocking(&batch, &mut state).unwrap();
        assert!(state.outputs.is_empty());
        assert_eq!(batch.node().attempts.load(Ordering::SeqCst), 0);
    }
}

/// Fails each item's first two attempts.
#[derive(Default)]
struct Flaky {
    attempts: std::sync::Mutex<std::collections::HashMap<i64, u32>>,
}

impl BatchNode<Docs> for Flaky {
    type Item = i64;
    type Output = i64;

    fn retry(&self) -> Retry {
        Retry::attempts(3).wait(Duration::from_millis(5))
    }

    async fn prep(&self, docs: &Docs, _: &Context<'_>) -> Result<Vec<i64>, NodeError> {
        Ok(docs.inputs.clone())
    }

    async fn exec(&self, item: &i64) -> Result<i64, NodeError> {
        let attempt = {
            let mut attempts = self.attempts.lock().unwrap();
            let attempt = attempts.entry(*item).or_default();
            *attempt += 1;
            *attempt
        };
        if attempt < 3 {
            Err(format!("attempt {attempt} of {item} failed").into())
        } else {
            Ok(*item)
        }
    }

    async fn post(
        &self,
        _: &Docs,
        _: Vec<i64>,
        outputs: Vec<i64>,
        _: &Context<'_>,
    ) -> Result<Command<Docs>, NodeError> {
        Ok(Command::new(Docs::update().extend_outputs(outputs)))
    }
}

#[test]
fn retries_count_for_each_item_on_its_own() {
    let batch = Batch::items(Flaky::default()).concurrent(8);
    let mut state = docs(&[4, 5, 6]);
    paused_runtime()
        .block_on(support::runs::alone(&batch, &mut state))
        .unwrap();
    assert_eq!(state.outputs, [4, 5, 6]);
    let attempts = batch.node().attempts.lock().unwrap().clone();
    assert!(attempts.values().all(|&count| count == 3), "{attempts:?}");
}

#[test]
fn a_retried_item_is_reported_as_a_retry_not_as_a_new_attempt_of_its_node() {
    let batch = Batch::items(Flaky::default());
    let flow = flow! { batch; };
    let events = std::sync::Mutex::new(Vec::new());
    let observer = slateflow::event::from_fn(|event: &slateflow::Event<'_>| {
        let attempt = match event {
            slateflow::Event::NodeStarted { attempt, .. }
            | slateflow::Event::Retry { attempt, .. } => *attempt,
            _ => return,
        };
        events.lock().unwrap().push((event.kind(), attempt));
    });
    let mut state = docs(&[4]);
    paused_runtime()
        .block_on(flow.observe(&observer).run(&mut state))
        .unwrap();
    assert_eq!(state.outputs, [4]);
    assert_eq!(
        *events.lock().unwrap(),
        [("node_started", 1), ("retry", 1), ("retry", 2)]
    );
}

#[test]
fn a_failing_item_fails_the_batch_names_the_item_and_cancels_the_rest() {
    let batch = Batch::items(Times10::default()).concurrent(2);
    // Item 1 (-90) fails after 10 ms; item 0 (1) would take 99 ms and is cancelled; items 2 and 3
    // never start.
    let mut state = docs(&[1, -90, 2, 3]);
    let runtime = paused_runtime();
    let error = runtime
        .block_on(support::runs::alone(&batch, &mut state))
        .unwrap_err();
    let Error::NodeFailed {
        phase: Phase::Exec,
        step: 1,
        source,
        ..
    } = &error
    else {
        panic!("expected an exec failure, got {error:?}");
    };
    let item = source.downcast_ref::<ItemFailed>().expect("an ItemFailed");
    assert_eq!((item.index, item.attempts), (1, 1));
    assert!(
        error.to_string().contains("item 1 of the batch failed"),
        "{error}"
    );
    assert_eq!(batch.node().attempts.load(Ordering::SeqCst), 2);
    assert!(state.outputs.is_empty(), "nothing of the step applied");
}

/// Records the params it sees: `item`, and `flow`.
#[node]
fn leaf(_: &Docs, context: &Context<'_>) -> Command<Docs> {
    let params = context.params();
    let text = params
        .iter()
        .map(|(key, value)| format!("{key}={value}"))
        .collect::<Vec<_>>()
        .join(",");
    Command::new(Docs::update().push_seen(text).add_total(1))
}

#[test]
fn a_batch_flow_runs_once_per_item_with_the_item_winning_over_the_flow_params() {
    let sub = flow! { leaf; };
    let items = batch::from_fn(|_: &Docs| {
        vec![
            Params::new().with("k", 1),
            Params::new().with("k", 2).with("fp", "over"),
        ]
    });
    let batch = Batch::flow(sub, items);
    let outer = flow! { batch; }.with_params(Params::new().with("fp", "flow").with("k", 0));
    let mut state = Docs::default();
    outer.run_blocking(&mut state).unwrap();
    assert_eq!(state.seen, [r#"fp="flow",k=1"#, r#"fp="over",k=2"#]);
    assert_eq!(state.total, 2);
}

/// Lists one run per input and records every run's action in `post`.
struct PerInput;

#[node]
impl BatchPlan<Docs> for PerInput {
    const ACTIONS: &'static [&'static str] = &["default", "had_odd"];

    async fn prep(&self, docs: &Docs, _: &Context<'_>) -> Result<Vec<Params>, NodeError> {
        Ok(docs
            .inputs
            .iter()
            .map(|input| Params::new().with("input", *input))
            .collect())
    }

    async fn post(
        &self,
        _: &Docs,
        runs: Vec<BatchRun>,
        _: &Context<'_>,
    ) -> Result<Command<Docs>, NodeError> {
        let odd = runs.iter().any(|run| run.action == "odd");
        let actions = runs.iter().map(|run| run.action.to_string());
        let command = Command::new(Docs::update().extend_actions(actions));
        Ok(if odd {
            command.with_action("had_odd")
        } else {
            command
        })
    }
}

/// Adds its input after a delay that makes later inputs finish first; routes on parity. Records
/// the running total it saw.
#[node(actions = ["even", "odd"])]
async fn parity(docs: &Docs, context: &Context<'_>) -> Command<Docs> {
    let input = context
        .params()
        .get("input")
        .and_then(serde_json::Value::as_i64)
        .unwrap();
    tokio::time::sleep(Duration::from_millis(u64::try_from(50 - input).unwrap())).await;
    let action = if input % 2 == 0 { "even" } else { "odd" };
    Command::new(
        Docs::update()
            .add_total(input)
            .push_seen(format!("{input} saw {}", docs.total))
            .set_last(Some(input.to_string())),
    )
    .with_action(action)
}

#[node]
fn after_odd(_: &Docs) -> Command<Docs> {
    Command::new(Docs::update().push_seen("after_odd".to_string()))
}

#[test]
fn a_sequential_batch_flow_runs_in_place_and_hands_every_action_to_post() {
    let sub = flow! { parity; };
    let batch = Batch::flow(sub, PerInput);
    let outer = flow! { batch - "had_odd" >> after_odd; };
    let mut state = docs(&[2, 3, 4]);
    paused_runtime().block_on(outer.run(&mut state)).unwrap();
    assert_eq!(state.actions, ["even", "odd", "even"]);
    assert_eq!(state.seen, ["2 saw 0", "3 saw 2", "4 saw 5", "after_odd"]);
    assert_eq!((state.total, state.last.as_deref()), (9, Some("4")));
}

#[test]
fn a_concurrent_batch_flow_runs_on_copies_and_merges_back_in_item_order() {
    let sub = flow! { parity; };
    let batch = Batch::flow(sub, PerInput).concurrent(10);
    let outer = flow! { batch - "had_odd" >> after_odd; };
    let mut state = docs(&[2, 3, 4]);
    paused_runtime().block_on(outer.run(&mut state)).unwrap();
    assert_eq!(state.actions, ["even", "odd", "even"]);
    // Each run saw the state before the batch; item 4 finished first, yet merged last.
    assert_eq!(state.seen, ["2 saw 0", "3 saw 0", "4 saw 0", "after_odd"]);
    assert_eq!(state.total, 9, "the add reducer summed every run");
    assert_eq!(state.last.as_deref(), Some("4"), "last write in item order");
}

#[test]
fn nested_batch_flows_accumulate_params_level_by_level() {
    let sub = flow! { leaf; };
    let inner = Batch::flow(
        sub,
        batch::from_fn(|_: &Docs| vec![Params::new().with("b", "x"), Params::new().with("b", "y")]),
    );
    let outer = Batch::flow(
        inner,
        batch::from_fn(|_: &Docs| vec![Params::new().with("a", 1), Params::new().with("a", 2)]),
    )
    .concurrent(2);
    let mut state = Docs::default();
    support::runs::alone_blocking(&outer, &mut state).unwrap();
    assert_eq!(
        state.seen,
        [
            r#"a=1,b="x""#,
            r#"a=1,b="y""#,
            r#"a=2,b="x""#,
            r#"a=2,b="y""#
        ]
    );
}

/// Fails on input 3; marks when any other run finishes.
#[node]
async fn fail_on_three(_: &Docs, context: &Context<'_>) -> Result<Command<Docs>, NodeError> {
    let input = context
        .params()
        .get("input")
        .and_then(serde_json::Value::as_i64)
        .unwrap();
    if input == 3 {
        return Err("three is not allowed".into());
    }
    tokio::time::sleep(Duration::from_secs(1)).await;
    FINISHED.store(true, Ordering::SeqCst);
    Ok(Command::new(Docs::update().add_total(input)))
}

static FINISHED: AtomicBool = AtomicBool::new(false);

#[test]
fn a_failing_run_of_a_concurrent_batch_flow_cancels_the_others_and_applies_nothing() {
    let sub = flow! { fail_on_three; };
    let batch = Arc::new(Batch::flow(sub, PerInput).concurrent(4));
    let outer = flow! { batch; };
    let mut state = docs(&[2, 3, 4]);
    let runtime = paused_runtime();
    let error = runtime.block_on(outer.run(&mut state)).unwrap_err();
    assert!(
        matches!(
            error,
            Error::NodeFailed {
                node: "fail_on_three",
                phase: Phase::Post,
                ..
            }
        ),
        "{error:?}"
    );
    runtime.block_on(async { tokio::time::sleep(Duration::from_secs(5)).await });
    assert!(
        !FINISHED.load(Ordering::SeqCst),
        "the other runs were dropped"
    );
    assert_eq!(state.total, 0);
    assert!(state.actions.is_empty(), "post did not run");
}
