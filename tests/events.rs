//! Events: what a run tells its observer, in what order, and the adapters (channel, tracing).

use std::sync::{Arc, Mutex};
use std::time::Duration;

use futures_util::StreamExt;
use serde::{Deserialize, Serialize};
use serde_json::json;
use slateflow::batch::{self, Batch, BatchNode};
use slateflow::checkpoint::MemoryStore;
use slateflow::durable::Outcome;
use slateflow::event;
use slateflow::{Command, Context, Node, NodeError, Params, Retry, SharedState, flow, node};

#[derive(SharedState, Clone, Debug, Default, Serialize, Deserialize)]
struct Ticket {
    text: String,
    #[reducer(append)]
    log: Vec<String>,
    #[reducer(add)]
    count: u32,
}

/// Helpers shared by test files; each uses part of them.
#[allow(dead_code)]
mod support {
    pub(crate) mod events;
}

use support::events::Recorder;

/// Routes on the text: `"default"` for most, `"specific_action"` when asked.
#[node(actions = ["default", "specific_action"])]
fn route(ticket: &Ticket) -> Command<Ticket> {
    let action = if ticket.text == "specific" {
        "specific_action"
    } else {
        "default"
    };
    Command::new(Ticket::update().push_log("route".into()))
        .with_action(action)
        .with_reason(format!("text was {:?}", ticket.text))
}

#[node]
fn handle(_: &Ticket) -> Command<Ticket> {
    Command::new(Ticket::update().push_log("handle".into()))
}

#[node]
fn finish(_: &Ticket) -> Command<Ticket> {
    Command::new(Ticket::update().add_count(1))
}

// PocketFlow's `Flow ends: 'None' not found in ['specific_action']`: the node follows its default
// action, which its flow does not wire, although it wires another.
#[tokio::test]
async fn a_default_action_without_an_edge_ends_the_flow_with_an_event() {
    let flow = flow! { route - "specific_action" >> handle; };
    let recorder = Recorder::default();
    let mut ticket = Ticket::default();
    let action = flow.observe(&recorder).run(&mut ticket).await.unwrap();
    assert_eq!(action, "default", "the run returns the last action");
    assert_eq!(ticket.log, ["route"], "`handle` never ran");
    let ends = recorder.of_kind("no_edge");
    assert_eq!(ends.len(), 1, "exactly one end-of-flow event: {ends:?}");
    assert_eq!(ends[0].node.as_deref(), Some("route"));
    assert_eq!(ends[0].action.as_deref(), Some("default"));
    assert_eq!(
        ends[0].text,
        "flow ends: \"default\" of route has no edge (wired: \"specific_action\")"
    );
}

// PocketFlow's `Flow ends: 'specific_action' not found in ['default']`.
#[tokio::test]
async fn a_named_action_without_an_edge_ends_the_flow_with_an_event() {
    let flow = flow! { route >> handle; };
    let recorder = Recorder::default();
    let mut ticket = Ticket {
        text: "specific".into(),
        ..Ticket::default()
    };
    let action = flow.observe(&recorder).run(&mut ticket).await.unwrap();
    assert_eq!(action, "specific_action");
    assert_eq!(ticket.log, ["route"]);
    let ends = recorder.of_kind("no_edge");
    assert_eq!(ends.len(), 1);
    assert_eq!(ends[0].action.as_deref(), Some("specific_action"));
    assert!(
        ends[0].text.ends_with("(wired: \"default\")"),
        "{}",
        ends[0].text
    );
}

#[tokio::test]
async fn a_node_without_edges_ends_its_flow_silently() {
    let flow = flow! { handle >> route; };
    let recorder = Recorder::default();
    let action = flow
        .observe(&recorder)
        .run(&mut Ticket::default())
        .await
        .unwrap();
    assert_eq!(action, "default");
    assert!(
        recorder.of_kind("no_edge").is_empty(),
        "{:?}",
        recorder.kinds()
    );
}

#[tokio::test]
async fn a_chain_reports_each_step_in_order_with_paths_and_reasons() {
    let inner = flow! { handle >> finish; };
    let flow = flow! { route >> inner; };
    let recorder = Recorder::default();
    flow.observe(&recorder)
        .run(&mut Ticket::default())
        .await
        .unwrap();
    assert_eq!(
        recorder.kinds(),
        [
            "run_started",
            "node_started route",
            "node_finished route",
            "node_started inner/handle",
            "node_finished inner/handle",
            "node_started inner/finish",
            "node_finished inner/finish",
            "run_finished",
        ]
    );
    let finished = recorder.of_kind("node_finished");
    let steps: Vec<Option<u64>> = finished.iter().map(|event| event.step).collect();
    assert_eq!(steps, [Some(1), Some(2), Some(3)]);
    assert_eq!(
        finished[0].data,
        json!("text was \"\""),
        "the routing reason"
    );
    assert_eq!(finished[1].data, serde_json::Value::Null, "no reason given");
    let last = recorder.events().pop().unwrap();
    assert_eq!(last.text, "run finished with \"default\" after 3 steps");
}

#[tokio::test]
async fn a_failed_run_ends_with_its_error() {
    let broken = slateflow::node::from_fn(|_: &Ticket| Err("the model is down".into()));
    let flow = flow! { handle >> broken; };
    let recorder = Recorder::default();
    let error = flow
        .observe(&recorder)
        .run(&mut Ticket::default())
        .await
        .unwrap_err();
    let last = recorder.events().pop().unwrap();
    assert_eq!(last.kind, "run_failed");
    assert_eq!(last.step, Some(2));
    assert_eq!(last.data, json!(error.to_string()));
    assert!(last.text.contains("the model is down"), "{}", last.text);
}

/// Waits `millis` on tokio's clock, then appends its name.
struct Slow {
    name: &'static str,
    millis: u64,
}

impl Node<Ticket> for Slow {
    type Prep = ();
    type Exec = ();

    async fn prep(&self, _: &Ticket, _: &Context<'_>) -> Result<(), NodeError> {
        Ok(())
    }

    async fn exec(&self, (): &()) -> Result<(), NodeError> {
        tokio::time::sleep(Duration::from_millis(self.millis)).await;
        Ok(())
    }

    async fn post(
        &self,
        _: &Ticket,
        (): (),
        (): (),
        _: &Context<'_>,
    ) -> Result<Command<Ticket>, NodeError> {
        Ok(Command::new(Ticket::update().push_log(self.name.into())))
    }
}

// The documented order: `fork_started`, then the branches' own events as they make progress
// (interleaved: here the last-written branch finishes first), then `fork_joined` once all are
// done, then the join.
#[tokio::test(start_paused = true)]
async fn fork_events_carry_their_branch_and_join_after_every_branch() {
    let first = Slow {
        name: "first",
        millis: 30,
    };
    let second = Slow {
        name: "second",
        millis: 10,
    };
    let flow = flow! { handle >> [first, second] >> finish; };
    let recorder = Recorder::default();
    let mut ticket = Ticket::default();
    flow.observe(&recorder).run(&mut ticket).await.unwrap();
    assert_eq!(
        ticket.log,
        ["handle", "first", "second"],
        "merged in written order"
    );
    assert_eq!(
        recorder.kinds(),
        [
            "run_started",
            "node_started handle",
            "node_finished handle",
            "fork_started [first, second]",
            "node_started first",
            "node_started second",
            "node_finished second",
            "node_finished first",
            "fork_joined [first, second]",
            "node_started finish",
            "node_finished finish",
            "run_finished",
        ]
    );
    let events = recorder.events();
    for event in events.iter().filter(|event| {
        event.kind.starts_with("node_") && matches!(event.node.as_deref(), Some("first" | "second"))
    }) {
        assert_eq!(event.fork, Some("[first, second]"), "{event:?}");
    }
    let steps: Vec<(String, Option<u64>)> = events
        .iter()
        .filter(|event| event.kind == "node_finished")
        .map(|event| (event.node.clone().unwrap(), event.step))
        .collect();
    assert_eq!(
        steps,
        [
            ("handle".into(), Some(1)),
            ("second".into(), Some(3)),
            ("first".into(), Some(2)),
            ("finish".into(), Some(4)),
        ]
    );
}

/// Fails `failures` times, then succeeds; streams two tokens from `exec`.
struct Flaky {
    failures: u32,
    calls: Mutex<u32>,
}

impl Node<Ticket> for Flaky {
    type Prep = ();
    type Exec = String;

    fn retry(&self) -> Retry {
        Retry::attempts(3).wait(Duration::from_millis(5))
    }

    async fn prep(&self, _: &Ticket, context: &Context<'_>) -> Result<(), NodeError> {
        context.emit("progress", &json!({ "phase": "prep" }));
        Ok(())
    }

    async fn exec(&self, (): &()) -> Result<String, NodeError> {
        unreachable!("the run calls `exec_with`")
    }

    async fn exec_with(&self, (): &(), context: &Context<'_>) -> Result<String, NodeError> {
        let call = {
            let mut calls = self.calls.lock().unwrap();
            *calls += 1;
            *calls
        };
        if call <= self.failures {
            return Err(format!("attempt {call} failed").into());
        }
        let mut text = String::new();
        for token in ["Hel", "lo"] {
            context.emit("token", &json!(token));
            text.push_str(token);
        }
        Ok(text)
    }

    async fn post(
        &self,
        _: &Ticket,
        (): (),
        text: String,
        _: &Context<'_>,
    ) -> Result<Command<Ticket>, NodeError> {
        Ok(Command::new(Ticket::update().push_log(text)))
    }
}

#[tokio::test(start_paused = true)]
async fn retries_and_custom_events_reach_the_observer() {
    let writer = Flaky {
        failures: 2,
        calls: Mutex::new(0),
    };
    let flow = flow! { writer; };
    let recorder = Recorder::default();
    let mut ticket = Ticket::default();
    flow.observe(&recorder).run(&mut ticket).await.unwrap();
    assert_eq!(ticket.log, ["Hello"]);
    let retries = recorder.of_kind("retry");
    assert_eq!(retries.len(), 2);
    assert_eq!(retries[0].data, json!("attempt 1 failed"));
    assert_eq!(
        retries[1].text,
        "step 1: writer attempt 2 failed (attempt 2 failed); retrying in 5ms"
    );
    let custom: Vec<serde_json::Value> = recorder
        .of_kind("custom")
        .into_iter()
        .map(|event| event.data)
        .collect();
    assert_eq!(
        custom,
        [
            json!({ "name": "progress", "data": { "phase": "prep" } }),
            json!({ "name": "token", "data": "Hel" }),
            json!({ "name": "token", "data": "lo" }),
        ]
    );
    assert!(recorder.kinds().ends_with(&[
        "node_finished writer".to_string(),
        "run_finished".to_string()
    ]));
    // One `NodeStarted` per attempt, each after the failure and wait before it.
    let attempts: Vec<(&str, Option<u32>)> = recorder
        .events()
        .iter()
        .filter(|event| ["node_started", "retry", "node_finished"].contains(&event.kind))
        .map(|event| (event.kind, event.attempt))
        .collect();
    assert_eq!(
        attempts,
        [
            ("node_started", Some(1)),
            ("retry", Some(1)),
            ("node_started", Some(2)),
            ("retry", Some(2)),
            ("node_started", Some(3)),
            ("node_finished", Some(3)),
        ]
    );
    assert_eq!(
        recorder.of_kind("node_started")[2].text,
        "step 1: writer attempt 3 started"
    );
}

/// Doubles numbers; a batch node.
struct Doubler;

impl BatchNode<Ticket> for Doubler {
    type Item = u32;
    type Output = u32;

    async fn prep(&self, _: &Ticket, _: &Context<'_>) -> Result<Vec<u32>, NodeError> {
        Ok((1..=5).collect())
    }

    async fn exec(&self, item: &u32) -> Result<u32, NodeError> {
        tokio::time::sleep(Duration::from_millis(u64::from(10 - item))).await;
        Ok(item * 2)
    }

    async fn post(
        &self,
        _: &Ticket,
        _: Vec<u32>,
        outputs: Vec<u32>,
        _: &Context<'_>,
    ) -> Result<Command<Ticket>, NodeError> {
        Ok(Command::new(
            Ticket::update().add_count(outputs.iter().sum()),
        ))
    }
}

#[tokio::test(start_paused = true)]
async fn batch_items_report_progress() {
    let doubler = Batch::items(Doubler).concurrent(5);
    let flow = flow! { doubler; };
    let recorder = Recorder::default();
    let mut ticket = Ticket::default();
    flow.observe(&recorder).run(&mut ticket).await.unwrap();
    assert_eq!(ticket.count, 30);
    let progress: Vec<(usize, usize)> = recorder
        .of_kind("batch_item_finished")
        .iter()
        .map(|event| event.progress.unwrap())
        .collect();
    assert_eq!(progress, [(1, 5), (2, 5), (3, 5), (4, 5), (5, 5)]);
    // The shortest wait (the last item) finishes first.
    assert!(
        recorder.of_kind("batch_item_finished")[0]
            .text
            .ends_with("item 1/5")
    );
}

/// Takes a little time, so that a duration that was never measured shows.
#[node]
fn slow(_: &Ticket) -> Command<Ticket> {
    std::thread::sleep(Duration::from_millis(2));
    Command::new(Ticket::update().add_count(1))
}

#[tokio::test]
async fn a_batch_flow_reports_how_long_its_whole_step_took() {
    let runs = batch::from_fn(|_: &Ticket| vec![Params::new(), Params::new()]);
    let batch = Batch::flow(flow! { slow; }, runs);
    let flow = flow! { batch; };
    let durations = Mutex::new(Vec::new());
    let observer = event::from_fn(|event| {
        if let event::Event::NodeFinished { at, duration, .. } = event {
            durations.lock().unwrap().push((at.node, *duration));
        }
    });
    let mut ticket = Ticket::default();
    flow.observe(&observer).run(&mut ticket).await.unwrap();
    let durations = durations.into_inner().unwrap();
    let (node, batch) = durations.last().copied().unwrap();
    assert_eq!(node, "batch", "{durations:?}");
    assert!(
        batch >= Duration::from_millis(4),
        "the batch flow's step spans both runs: {durations:?}"
    );
}

#[node]
fn count_steps(_: &Ticket, context: &Context<'_>) -> Command<Ticket> {
    let seen = format!(
        "step {} of {}, {} left, thread {:?}",
        context.step(),
        context.max_steps(),
        context.steps_left(),
        context.thread()
    );
    Command::new(Ticket::update().push_log(seen))
}

#[tokio::test]
async fn nodes_see_the_step_limit_and_the_thread() {
    let flow = flow! { count_steps >> finish; }.with_max_steps(5);
    let mut ticket = Ticket::default();
    flow.run(&mut ticket).await.unwrap();
    assert_eq!(ticket.log, ["step 1 of 5, 4 left, thread None"]);

    let durable = flow.durable(MemoryStore::new());
    let mut ticket = Ticket::default();
    durable.start("t-1", &mut ticket).await.unwrap();
    assert_eq!(ticket.log, ["step 1 of 5, 4 left, thread Some(\"t-1\")"]);
}

#[tokio::test]
async fn a_nested_flow_leaves_the_steps_of_the_tighter_limit() {
    let inner = flow! { count_steps; }.with_max_steps(100);
    let flow = flow! { handle >> inner; }.with_max_steps(3);
    let mut ticket = Ticket::default();
    flow.run(&mut ticket).await.unwrap();
    assert_eq!(ticket.log[1], "step 2 of 3, 1 left, thread None");
}

#[tokio::test]
async fn durable_runs_report_saved_steps_and_pauses() {
    let flow = flow! { route >> handle >> finish; };
    let recorder = Recorder::default();
    let durable = flow
        .observe(recorder.clone())
        .durable(MemoryStore::new())
        .interrupt_before(&["finish"]);
    let mut ticket = Ticket::default();
    let outcome = durable.start("t", &mut ticket).await.unwrap();
    assert!(matches!(outcome, Outcome::Paused(_)));
    let saved: Vec<(Option<u64>, Option<String>)> = recorder
        .of_kind("step_saved")
        .into_iter()
        .map(|event| (event.step, event.node))
        .collect();
    assert_eq!(
        saved,
        [
            (Some(1), Some("route".into())),
            (Some(2), Some("handle".into()))
        ]
    );
    let last = recorder.events().pop().unwrap();
    assert_eq!(last.kind, "run_paused");
    assert_eq!(
        last.text,
        "paused before `finish` (answer `before:finish@2`)"
    );
    assert_eq!(last.step, Some(2));
    assert_eq!(last.data["key"], "before:finish@2");
    assert_eq!(last.data["when"], "before");
    // Every step is saved before the next starts.
    let kinds = recorder.kinds();
    let saved_first = kinds
        .iter()
        .position(|kind| kind == "step_saved route")
        .unwrap();
    let second_start = kinds
        .iter()
        .position(|kind| kind == "node_started handle")
        .unwrap();
    assert!(saved_first < second_start, "{kinds:?}");

    recorder.clear();
    let (state, outcome) = durable.resume("t").await.unwrap();
    assert_eq!(outcome, Outcome::Finished("default".into()));
    assert_eq!(state.count, 1);
    assert_eq!(
        recorder.kinds()[..2],
        ["run_started".to_string(), "node_started finish".to_string()]
    );
    assert!(recorder.events()[0].text.contains("started at step 3"));
}

#[node]
fn confirm(ticket: &Ticket) -> Command<Ticket> {
    Command::new(Ticket::update().push_log("confirm".into()))
        .ask(format!("Send {:?}?", ticket.text))
}

#[tokio::test]
async fn a_question_is_reported_with_its_key_and_payload() {
    let flow = flow! { route >> confirm >> finish; };
    let recorder = Recorder::default();
    let durable = flow.observe(recorder.clone()).durable(MemoryStore::new());
    let mut ticket = Ticket {
        text: "hello".into(),
        ..Ticket::default()
    };
    let outcome = durable.start("q", &mut ticket).await.unwrap();
    let paused = recorder.of_kind("run_paused");
    assert_eq!(paused.len(), 1, "{paused:?}");
    assert_eq!(
        paused[0].text,
        "`confirm` asks: Send \"hello\"? (answer `asked:confirm@2`)"
    );
    assert_eq!(
        outcome.pauses()[0].question().as_deref(),
        Some("Send \"hello\"?"),
        "the question as text, not as JSON"
    );
    assert_eq!(paused[0].data["key"], outcome.pauses()[0].key.as_str());
    assert_eq!(paused[0].data["when"], "asked");
    assert_eq!(paused[0].data["asked"], "Send \"hello\"?");
}

#[tokio::test]
async fn the_channel_never_blocks_the_run_and_counts_what_it_drops() {
    let flow = flow! { route >> handle >> finish; };
    let (sender, mut events) = event::channel(3);
    let mut ticket = Ticket::default();
    // Nobody reads while the run goes: a full queue must not stop it.
    flow.observe(sender.clone()).run(&mut ticket).await.unwrap();
    assert_eq!(ticket.count, 1);
    let total = 8; // started, 3 x (node started, finished), finished
    assert_eq!(sender.dropped(), total - 3);
    drop(sender);
    let received: Vec<&'static str> = (&mut events).map(|event| event.kind).collect().await;
    assert_eq!(received, ["run_started", "node_started", "node_finished"]);
    assert_eq!(events.dropped(), total - 3);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_ui_reads_the_channel_while_the_run_goes_on() {
    let flow = Arc::new(flow! { route >> handle >> finish; });
    let (sender, events) = event::channel(64);
    let run = tokio::spawn({
        let flow = Arc::clone(&flow);
        async move {
            let mut ticket = Ticket::default();
            flow.observe(sender).run(&mut ticket).await.map(|_| ticket)
        }
    });
    let kinds: Vec<&'static str> = events.map(|event| event.kind).collect().await;
    assert_eq!(run.await.unwrap().unwrap().count, 1);
    assert_eq!(kinds.first(), Some(&"run_started"));
    assert_eq!(kinds.last(), Some(&"run_finished"));
    assert_eq!(kinds.len(), 8);
}

/// A `tracing` subscriber that records spans (name, parent, fields) and events (parent, fields).
#[derive(Default)]
struct Traced {
    spans: Mutex<Vec<SpanRecord>>,
    events: Mutex<Vec<EventRecord>>,
    /// The spans entered, innermost last: the parent of what is logged without one named.
    entered: Mutex<Vec<u64>>,
}

impl Traced {
    fn current(&self) -> Option<u64> {
        self.entered.lock().unwrap().last().copied()
    }
}

/// An event's parent span and fields.
type EventRecord = (Option<u64>, Vec<(String, String)>);

#[derive(Debug, Clone)]
struct SpanRecord {
    name: &'static str,
    parent: Option<u64>,
    fields: Vec<(String, String)>,
}

impl SpanRecord {
    fn field(&self, name: &str) -> Option<&str> {
        self.fields
            .iter()
            .rev()
            .find(|(field, _)| field == name)
            .map(|(_, value)| value.as_str())
    }
}

struct Fields<'a>(&'a mut Vec<(String, String)>);

impl tracing::field::Visit for Fields<'_> {
    fn record_debug(&mut self, field: &tracing::field::Field, value: &dyn std::fmt::Debug) {
        self.0
            .push((field.name().to_string(), format!("{value:?}")));
    }

    fn record_str(&mut self, field: &tracing::field::Field, value: &str) {
        self.0.push((field.name().to_string(), value.to_string()));
    }
}

impl tracing::Subscriber for &'static Traced {
    fn enabled(&self, _: &tracing::Metadata<'_>) -> bool {
        true
    }

    fn new_span(&self, attributes: &tracing::span::Attributes<'_>) -> tracing::span::Id {
        let mut fields = Vec::new();
        attributes.record(&mut Fields(&mut fields));
        let mut spans = self.spans.lock().unwrap();
        spans.push(SpanRecord {
            name: attributes.metadata().name(),
            parent: attributes
                .parent()
                .map(tracing::span::Id::into_u64)
                .or_else(|| attributes.is_contextual().then(|| self.current()).flatten()),
            fields,
        });
        tracing::span::Id::from_u64(spans.len() as u64)
    }

    fn record(&self, span: &tracing::span::Id, values: &tracing::span::Record<'_>) {
        let mut spans = self.spans.lock().unwrap();
        let index = usize::try_from(span.into_u64()).unwrap() - 1;
        values.record(&mut Fields(&mut spans[index].fields));
    }

    fn record_follows_from(&self, _: &tracing::span::Id, _: &tracing::span::Id) {}

    fn event(&self, event: &tracing::Event<'_>) {
        let mut fields = Vec::new();
        event.record(&mut Fields(&mut fields));
        let parent = event
            .parent()
            .map(tracing::span::Id::into_u64)
            .or_else(|| event.is_contextual().then(|| self.current()).flatten());
        self.events.lock().unwrap().push((parent, fields));
    }

    fn enter(&self, span: &tracing::span::Id) {
        self.entered.lock().unwrap().push(span.into_u64());
    }

    fn exit(&self, span: &tracing::span::Id) {
        let mut entered = self.entered.lock().unwrap();
        assert_eq!(
            entered.pop(),
            Some(span.into_u64()),
            "spans exit innermost first"
        );
    }
}

/// Logs with `tracing` in each of its phases, waiting in `exec` between two logs, and fails its
/// first attempt.
struct Chatty {
    calls: Mutex<u32>,
}

impl Node<Ticket> for Chatty {
    type Prep = ();
    type Exec = ();

    fn retry(&self) -> Retry {
        Retry::attempts(2).wait(Duration::from_millis(5))
    }

    async fn prep(&self, _: &Ticket, _: &Context<'_>) -> Result<(), NodeError> {
        tracing::info!("chatty prep");
        Ok(())
    }

    async fn exec(&self, (): &()) -> Result<(), NodeError> {
        tracing::info!("chatty exec before");
        tokio::task::yield_now().await;
        tracing::info!("chatty exec after");
        let mut calls = self.calls.lock().unwrap();
        *calls += 1;
        if *calls == 1 {
            return Err("first attempt fails".into());
        }
        Ok(())
    }

    async fn post(
        &self,
        _: &Ticket,
        (): (),
        (): (),
        _: &Context<'_>,
    ) -> Result<Command<Ticket>, NodeError> {
        tracing::info!("chatty post");
        Ok(Command::new(Ticket::update()))
    }
}

/// What a node logs with `tracing` nests in its step's span, in every phase, across a wait and
/// a retry; what the next node logs nests in its own; nothing outside a run is in one.
#[test]
fn a_nodes_own_logs_nest_in_its_step_span() {
    let spans: &'static Traced = Box::leak(Box::default());
    let (first, second) = (
        Chatty {
            calls: Mutex::new(0),
        },
        Chatty {
            calls: Mutex::new(0),
        },
    );
    let flow = flow! { first >> second; };
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_time()
        .start_paused(true)
        .build()
        .unwrap();
    tracing::subscriber::with_default(spans, || {
        runtime
            .block_on(
                flow.observe(event::TracingObserver::new())
                    .run(&mut Ticket::default()),
            )
            .unwrap();
        tracing::info!("after the run");
    });
    let recorded = spans.spans.lock().unwrap().clone();
    let step_of = |node: &str| {
        recorded
            .iter()
            .position(|span| span.name == "slateflow.step" && span.field("node") == Some(node))
            .map(|index| index as u64 + 1)
            .unwrap()
    };
    let (first_span, second_span) = (step_of("first"), step_of("second"));
    let events = spans.events.lock().unwrap().clone();
    let parents_of = |message: &str| -> Vec<Option<u64>> {
        events
            .iter()
            .filter(|(_, fields)| {
                fields
                    .iter()
                    .any(|(name, value)| name == "message" && value == message)
            })
            .map(|(parent, _)| *parent)
            .collect()
    };
    let both = vec![Some(first_span), Some(second_span)];
    assert_eq!(parents_of("chatty prep"), both);
    let twice = vec![
        Some(first_span),
        Some(first_span),
        Some(second_span),
        Some(second_span),
    ];
    assert_eq!(
        parents_of("chatty exec before"),
        twice,
        "each attempt, in its step"
    );
    assert_eq!(
        parents_of("chatty exec after"),
        twice,
        "after the wait as before it"
    );
    assert_eq!(parents_of("chatty post"), both);
    assert_eq!(parents_of("after the run"), [None]);
    assert!(
        spans.entered.lock().unwrap().is_empty(),
        "every span entered was left"
    );
}

#[test]
fn the_tracing_observer_makes_a_span_per_run_and_per_step() {
    let spans: &'static Traced = Box::leak(Box::default());
    let writer = Flaky {
        failures: 1,
        calls: Mutex::new(0),
    };
    let flow = flow! { route >> writer; };
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_time()
        .start_paused(true)
        .build()
        .unwrap();
    tracing::subscriber::with_default(spans, || {
        let durable = flow
            .observe(event::TracingObserver::new())
            .durable(MemoryStore::new());
        runtime
            .block_on(durable.start("ticket-7", &mut Ticket::default()))
            .unwrap();
    });
    let recorded = spans.spans.lock().unwrap().clone();
    let names: Vec<&str> = recorded.iter().map(|span| span.name).collect();
    assert_eq!(names, ["slateflow.run", "slateflow.step", "slateflow.step"]);
    assert_eq!(recorded[0].field("thread"), Some("ticket-7"));
    assert_eq!(
        recorded[0].field("gen_ai.conversation.id"),
        Some("ticket-7")
    );
    let (route_span, writer_span) = (&recorded[1], &recorded[2]);
    assert_eq!(
        (route_span.parent, writer_span.parent),
        (Some(1), Some(1)),
        "steps inside the run"
    );
    assert_eq!(route_span.field("node"), Some("route"));
    assert_eq!(route_span.field("step"), Some("1"));
    assert_eq!(route_span.field("action"), Some("default"));
    assert_eq!(route_span.field("reason"), Some("text was \"\""));
    assert_eq!(writer_span.field("node"), Some("writer"));
    assert_eq!(writer_span.field("attempt"), Some("2"), "one retry");
    let events = spans.events.lock().unwrap().clone();
    let retry = events
        .iter()
        .find(|(_, fields)| fields.iter().any(|(_, value)| value.contains("retrying")))
        .expect("a retry event");
    assert_eq!(
        retry.0,
        Some(3),
        "the retry is an event in the writer's step span"
    );
    let messages: Vec<&str> = events
        .iter()
        .filter_map(|(_, fields)| {
            fields
                .iter()
                .find(|(name, _)| name == "message")
                .map(|(_, value)| value.as_str())
        })
        .collect();
    assert!(messages.contains(&"step saved"), "{messages:?}");
    assert_eq!(messages.last(), Some(&"run finished"));
}

/// The step limit each run starts with, as `RunStarted` reports it to an observer and through a
/// channel: the flow's own, for plain and durable runs (a resumed one says where it starts).
#[tokio::test]
async fn run_started_reports_the_real_step_limit_and_where_the_run_starts() {
    let limits = Arc::new(Mutex::new(Vec::new()));
    let seen = limits.clone();
    let observer = event::from_fn(move |event: &slateflow::Event<'_>| {
        if let slateflow::Event::RunStarted {
            first_step,
            max_steps,
            ..
        } = event
        {
            seen.lock().unwrap().push((*first_step, *max_steps));
        }
    });
    let flow = flow! { handle >> finish; }.with_max_steps(7);
    let watched = flow.observe(&observer);
    watched.run(&mut Ticket::default()).await.unwrap();
    let durable = flow
        .observe(&observer)
        .durable(MemoryStore::new())
        .interrupt_before(&["finish"]);
    durable
        .start("limits", &mut Ticket::default())
        .await
        .unwrap();
    durable.resume("limits").await.unwrap();
    assert_eq!(*limits.lock().unwrap(), [(1, 7), (1, 7), (2, 7)]);

    // Through a channel, the owned event carries them too.
    let (sender, mut events) = event::channel(16);
    flow.observe(sender)
        .run(&mut Ticket::default())
        .await
        .unwrap();
    let started = events.recv().await.unwrap();
    assert_eq!(started.kind, "run_started");
    assert_eq!(started.step, Some(1));
    assert_eq!(started.data, json!({ "thread": null, "max_steps": 7 }));
}
