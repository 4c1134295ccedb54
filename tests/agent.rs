//! The agent layer in flows: per-agent histories, templates, tool loops, retries of model calls
//! and of function nodes, token events, editable conversations in forks and durable runs.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use serde::{Deserialize, Serialize};
use serde_json::json;
use slateflow::agent::ModelError;
use slateflow::agent::message::{Histories, Message, Messages, ToolCall};
use slateflow::agent::model::{ChatResponse, ScriptedModel};
use slateflow::agent::tool::{self, Toolbox};
use slateflow::agent::{Agent, Conversation};
use slateflow::checkpoint::MemoryStore;
use slateflow::durable::Outcome;
use slateflow::event::Event;
use slateflow::{Command, Context, Error, NodeError, Retry, SharedState, flow, node, prompt};

#[derive(SharedState, Clone, Debug, Default, Serialize, Deserialize)]
struct Triage {
    alert_text: String,
    classification: Option<String>,
    #[reducer(append)]
    messages: Vec<Message>,
    #[reducer(append)]
    histories: Histories,
}

impl Conversation for Triage {
    fn messages(&self) -> &[Message] {
        &self.messages
    }
    fn histories(&self) -> &Histories {
        &self.histories
    }
    fn record(messages: Vec<Message>, histories: Histories) -> TriageUpdate {
        Triage::update()
            .extend_messages(messages)
            .append_histories(histories)
    }
}

fn block_on<T>(future: impl Future<Output = T>) -> T {
    tokio::runtime::Builder::new_current_thread()
        .enable_time()
        .build()
        .unwrap()
        .block_on(future)
}

fn alert() -> Triage {
    Triage {
        alert_text: "47 failed logins from 10.0.0.5".into(),
        messages: vec![
            Message::human("New alert: 47 failed logins from 10.0.0.5").with_id("alert"),
        ],
        ..Triage::default()
    }
}

/// Helpers shared by test files; each uses part of them.
#[allow(dead_code)]
mod support {
    pub(crate) mod events;
    #[allow(dead_code)]
    pub(crate) mod runs;
}

use support::events::Recorder;

#[test]
fn each_agent_prompts_from_its_own_history_and_the_latest_global_message() {
    let model = Arc::new(
        ScriptedModel::new()
            .reply("Classification: intrusion")
            .reply("Investigation: the IP is on a block list")
            .reply("Classification: still intrusion")
            .reply("Investigation: confirmed"),
    );
    #[node]
    fn classified(_: &Triage) -> Command<Triage> {
        Command::new(Triage::update().set_classification(Some("intrusion".into())))
    }
    let classify = Agent::new(model.clone()).system(prompt!(Triage, "Classify alerts."));
    let investigate = Agent::new(model.clone()).system(prompt!(
        Triage,
        "Investigate this {classification} alert: {alert_text}"
    ));
    let inner = flow! { classify >> classified >> investigate; };
    let triage = flow! { inner; };
    let mut state = alert();
    triage.run_blocking(&mut state).unwrap();
    triage.run_blocking(&mut state).unwrap();

    let requests = model.requests();
    assert_eq!(requests.len(), 4);
    // The classifier's first prompt: its system prompt and the alert.
    assert_eq!(
        requests[0].messages,
        [
            Message::system("Classify alerts."),
            Message::human("New alert: 47 failed logins from 10.0.0.5").with_id("alert"),
        ]
    );
    // The investigator sees the classifier's answer as input, not as its own words.
    assert_eq!(
        requests[1].messages,
        [
            Message::system("Investigate this intrusion alert: 47 failed logins from 10.0.0.5"),
            Message::human("Classification: intrusion").with_id("run:1:inner/classify:0"),
        ]
    );
    // On the second run, each agent's own history comes first.
    assert_eq!(
        requests[2].messages[1].content(),
        "Classification: intrusion"
    );
    assert_eq!(requests[2].messages[1].role(), "assistant");
    assert_eq!(
        requests[2].messages[2].content(),
        "Investigation: the IP is on a block list"
    );
    assert_eq!(requests[2].messages[2].role(), "user");
    assert_eq!(
        requests[3].messages[1..]
            .iter()
            .map(|m| (m.role(), m.content()))
            .collect::<Vec<_>>(),
        [
            ("assistant", "Investigation: the IP is on a block list"),
            ("user", "Classification: still intrusion"),
        ]
    );

    // Global messages gain every answer; each history holds only its agent's turns.
    let global: Vec<&str> = state.messages.iter().map(Message::content).collect();
    assert_eq!(
        global,
        [
            "New alert: 47 failed logins from 10.0.0.5",
            "Classification: intrusion",
            "Investigation: the IP is on a block list",
            "Classification: still intrusion",
            "Investigation: confirmed",
        ]
    );
    let investigator: Vec<&str> = state
        .histories
        .get("inner/investigate")
        .iter()
        .map(Message::content)
        .collect();
    assert_eq!(
        investigator,
        [
            "Investigation: the IP is on a block list",
            "Investigation: confirmed"
        ]
    );
    assert_eq!(state.histories.get("inner/classify").len(), 2);
    assert_eq!(state.histories.iter().count(), 2);
}

#[test]
fn an_agent_running_twice_in_a_row_does_not_read_its_own_answer_twice() {
    let model = Arc::new(ScriptedModel::new().reply("first").reply("second"));
    let agent = Agent::new(model.clone());
    #[node(actions = ["again", "done"])]
    fn twice(state: &Triage) -> Command<Triage> {
        Command::goto(if state.messages.len() < 3 {
            "again"
        } else {
            "done"
        })
    }
    let chat = flow! { agent >> twice - "again" >> agent; };
    let mut state = alert();
    assert_eq!(chat.run_blocking(&mut state).unwrap(), "done");
    let second = &model.requests()[1].messages;
    assert_eq!(second.len(), 1, "{second:?}");
    assert_eq!(
        (second[0].role(), second[0].content()),
        ("assistant", "first")
    );
}

fn lookup_tools(calls: Arc<Mutex<Vec<String>>>) -> Toolbox {
    #[derive(Deserialize)]
    struct Ip {
        ip: String,
    }
    Toolbox::new().with(tool::from_fn(
        "lookup_ip",
        "Reputation of an IP address",
        json!({"type": "object", "properties": {"ip": {"type": "string"}}, "required": ["ip"]}),
        move |args: Ip| {
            let calls = calls.clone();
            async move {
                calls.lock().unwrap().push(args.ip.clone());
                if args.ip == "0.0.0.0" {
                    return Err(NodeError::from("not a routable address"));
                }
                Ok(json!({"ip": args.ip, "blocked": true}))
            }
        },
    ))
}

#[test]
fn the_tool_loop_runs_calls_and_shows_every_failure_to_the_model() {
    let model = Arc::new(
        ScriptedModel::new()
            .call_tools(vec![
                ToolCall::new("c1", "lookup_ip", r#"{"ip": "10.0.0.5"}"#),
                ToolCall::new("c2", "lookup_ip", r#"{"ip": "10.0.0.5""#),
                ToolCall::new("c3", "whois", "{}"),
            ])
            .call_tools(vec![ToolCall::new(
                "c4",
                "lookup_ip",
                r#"{"ip": "0.0.0.0"}"#,
            )])
            .reply("10.0.0.5 is blocked."),
    );
    let calls = Arc::new(Mutex::new(Vec::new()));
    let investigate = Agent::new(model.clone()).tools(lookup_tools(calls.clone()));
    let triage = flow! { investigate; };
    let recorder = Recorder::default();
    let mut state = alert();
    block_on(triage.observe(recorder.clone()).run(&mut state)).unwrap();

    assert_eq!(*calls.lock().unwrap(), ["10.0.0.5", "0.0.0.0"]);
    let requests = model.requests();
    assert_eq!(requests.len(), 3);
    assert_eq!(requests[0].tools[0].name, "lookup_ip");
    // The second request carries the answers to the three calls, in order.
    let answers: Vec<(&str, bool)> = requests[1].messages[2..]
        .iter()
        .map(|m| match m {
            Message::Tool {
                tool_call_id,
                is_error,
                ..
            } => (tool_call_id.as_str(), *is_error),
            other => panic!("{other:?}"),
        })
        .collect();
    assert_eq!(answers, [("c1", false), ("c2", true), ("c3", true)]);
    assert!(requests[1].messages[3].content().contains("not valid JSON"));
    assert!(
        requests[1].messages[4]
            .content()
            .contains("no tool named `whois`")
    );
    assert_eq!(
        requests[2].messages.last().unwrap().content(),
        "the tool `lookup_ip` failed: not a routable address"
    );

    // The global conversation gains the answer; the history keeps the whole turn, in order.
    assert_eq!(
        state.messages.last().unwrap().content(),
        "10.0.0.5 is blocked."
    );
    assert_eq!(state.messages.len(), 2);
    let turn: Vec<&str> = state
        .histories
        .get("investigate")
        .iter()
        .map(Message::role)
        .collect();
    assert_eq!(
        turn,
        [
            "assistant",
            "tool",
            "tool",
            "tool",
            "assistant",
            "tool",
            "assistant"
        ]
    );
    let ids: Vec<&str> = state
        .histories
        .get("investigate")
        .iter()
        .filter_map(Message::id)
        .collect();
    assert_eq!(ids[0], "run:1:investigate:0");
    assert_eq!(ids[6], "run:1:investigate:6");
    assert_eq!(
        state.messages.last().unwrap().id(),
        Some("run:1:investigate:6")
    );
    let tool_events = recorder.custom("tool");
    assert_eq!(tool_events.len(), 4);
    assert_eq!(
        tool_events[2],
        json!({"id": "c3", "name": "whois", "is_error": true})
    );
}

#[test]
fn the_tool_rounds_run_out_with_a_warning_and_a_model_that_ignores_it_fails_the_node() {
    let call = || vec![ToolCall::new("c", "lookup_ip", r#"{"ip": "10.0.0.5"}"#)];
    let model = Arc::new(
        ScriptedModel::new()
            .call_tools(call())
            .call_tools(call())
            .reply("done"),
    );
    let agent = Agent::new(model.clone())
        .tools(lookup_tools(Arc::default()))
        .max_tool_rounds(2);
    let mut state = alert();
    support::runs::alone_blocking(&agent, &mut state).unwrap();
    let requests = model.requests();
    assert_eq!(requests.len(), 3);
    assert!(
        requests[2].tools.is_empty(),
        "no tools offered after the last round"
    );
    let warning = requests[2].messages.last().unwrap();
    assert_eq!(warning.role(), "user");
    assert!(
        warning
            .content()
            .starts_with("You have used all 2 rounds of tool calls.")
    );
    assert_eq!(state.messages.last().unwrap().content(), "done");

    let stubborn = Arc::new(ScriptedModel::new().call_tools(call()).call_tools(call()));
    let agent = Agent::new(stubborn)
        .tools(lookup_tools(Arc::default()))
        .max_tool_rounds(1);
    let mut state = alert();
    let error = support::runs::alone_blocking(&agent, &mut state).unwrap_err();
    assert!(
        error
            .to_string()
            .contains("the model called `lookup_ip` after its 1 rounds of tool calls were used up"),
        "{error}"
    );
    assert_eq!(
        state.messages.len(),
        1,
        "nothing of the failed step was applied"
    );
}

#[test]
fn an_agent_retries_model_calls_that_may_succeed_and_no_others() {
    let busy = || ModelError::status(503, "busy");
    let model = Arc::new(ScriptedModel::new().fail(busy()).fail(busy()).reply("ok"));
    let agent = Agent::new(model.clone()).retry(Retry::attempts(3).wait(Duration::from_millis(1)));
    let flow = flow! { agent; };
    let recorder = Recorder::default();
    let mut state = alert();
    block_on(flow.observe(recorder.clone()).run(&mut state)).unwrap();
    assert_eq!(model.requests().len(), 3);
    assert_eq!(recorder.of_kind("retry").len(), 2);
    assert_eq!(state.messages.last().unwrap().content(), "ok");

    let refused = Arc::new(
        ScriptedModel::new()
            .fail(ModelError::status(401, "bad key"))
            .reply("never"),
    );
    let agent = Agent::new(refused.clone()).retry(Retry::attempts(3));
    let error = support::runs::alone_blocking(&agent, &mut alert()).unwrap_err();
    assert_eq!(refused.requests().len(), 1, "a 401 is not retried");
    assert!(
        error.to_string().contains("answered 401: bad key"),
        "{error}"
    );
}

#[test]
fn a_rate_limited_call_waits_what_the_endpoint_asked_for_up_to_the_policy_limit() {
    let ms = Duration::from_millis;
    // What the endpoint asked for, the policy's limit on it, and the wait that follows; the
    // policy's own wait is 100 ms.
    let cases = [
        (ms(2_000), None, ms(2_000)),
        (ms(10), None, ms(100)),
        (ms(600_000), None, ms(60_000)),
        (ms(600_000), Some(ms(5_000)), ms(5_000)),
        (ms(2_000), Some(Duration::ZERO), ms(100)),
    ];
    for (asked, limit, expected) in cases {
        let limited = ModelError::status(429, "slow down").with_retry_after(asked);
        let model = Arc::new(ScriptedModel::new().fail(limited).reply("ok"));
        let mut retry = Retry::attempts(2).wait(ms(100));
        if let Some(limit) = limit {
            retry = retry.max_retry_after(limit);
        }
        let agent = Agent::new(model.clone()).retry(retry);
        let flow = flow! { agent; };
        let waits = Mutex::new(Vec::new());
        let observer = slateflow::event::from_fn(|event: &Event<'_>| {
            if let Event::Retry { wait, .. } = event {
                waits.lock().unwrap().push(*wait);
            }
        });
        let mut state = alert();
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_time()
            .start_paused(true)
            .build()
            .unwrap();
        let elapsed = runtime.block_on(async {
            let started = tokio::time::Instant::now();
            flow.observe(&observer).run(&mut state).await.unwrap();
            started.elapsed()
        });
        assert_eq!(*waits.lock().unwrap(), [expected], "asked {asked:?}");
        assert_eq!(elapsed, expected, "the run waited what the event says");
        assert_eq!(model.requests().len(), 2);
        assert_eq!(state.messages.last().unwrap().content(), "ok");
    }
}

#[test]
fn streamed_replies_reach_the_observer_as_token_events() {
    let model = Arc::new(ScriptedModel::new().reply("the IP is blocked"));
    let agent = Agent::new(model);
    let flow = flow! { agent; };
    let recorder = Recorder::default();
    block_on(flow.observe(recorder.clone()).run(&mut alert())).unwrap();
    let tokens: Vec<String> = recorder
        .custom("token")
        .iter()
        .map(|token| token.as_str().unwrap().to_string())
        .collect();
    assert_eq!(tokens, ["the ", "IP ", "is ", "blocked"]);
}

#[test]
fn durable_agents_mint_ids_from_the_thread_and_replay_the_same_state() {
    let model = Arc::new(ScriptedModel::from_fn(|request| {
        Ok(ChatResponse::new(Message::ai(format!(
            "seen {}",
            request.messages.len()
        ))))
    }));
    let classify = Agent::new(model.clone());
    let investigate = Agent::new(model);
    let flow = flow! { classify >> investigate; };
    let durable = flow
        .durable(MemoryStore::new())
        .interrupt_before(&["investigate"]);
    let mut state = alert();
    let outcome = block_on(durable.start("ticket-7", &mut state)).unwrap();
    assert!(matches!(outcome, Outcome::Paused(_)));
    let (state, outcome) = block_on(durable.resume("ticket-7")).unwrap();
    assert_eq!(outcome, Outcome::Finished("default".into()));
    let ids: Vec<&str> = state.messages.iter().filter_map(Message::id).collect();
    assert_eq!(
        ids,
        ["alert", "ticket-7:1:classify:0", "ticket-7:2:investigate:0"]
    );
    let saved = block_on(durable.state("ticket-7")).unwrap();
    assert_eq!(
        serde_json::to_value(&saved).unwrap(),
        serde_json::to_value(&state).unwrap()
    );
}

#[derive(SharedState, Clone, Debug, Default, Serialize, Deserialize)]
struct Chat {
    #[reducer(append)]
    messages: Messages,
    #[reducer(add)]
    tries: u32,
}

#[test]
fn an_editable_conversation_merges_edits_from_fork_branches_in_written_order() {
    #[node]
    fn drop_draft(chat: &Chat) -> Result<Command<Chat>, NodeError> {
        Ok(Command::new(
            Chat::update().append_messages(chat.messages.remove("draft")?),
        ))
    }
    #[node]
    fn rewrite(chat: &Chat) -> Result<Command<Chat>, NodeError> {
        let edit = chat
            .messages
            .replace(Message::ai("final question").with_id("question"))?;
        Ok(Command::new(Chat::update().append_messages(edit)))
    }
    #[node]
    fn answer(_: &Chat) -> Command<Chat> {
        Command::new(Chat::update().push_messages(Message::ai("answer").with_id("answer")))
    }
    let flow = flow! { [drop_draft, rewrite, answer] >> answer; };
    let mut chat = Chat {
        messages: vec![
            Message::human("question").with_id("question"),
            Message::ai("draft").with_id("draft"),
        ]
        .into(),
        tries: 0,
    };
    flow.run_blocking(&mut chat).unwrap();
    let texts: Vec<&str> = chat.messages.iter().map(Message::content).collect();
    assert_eq!(
        texts,
        ["final question", "answer"],
        "the second `answer` replaced the first"
    );

    #[node]
    fn drop_unknown(chat: &Chat) -> Result<Command<Chat>, NodeError> {
        Ok(Command::new(
            Chat::update().append_messages(chat.messages.remove("nope")?),
        ))
    }
    let flow = flow! { drop_unknown; };
    let error = flow.run_blocking(&mut chat).unwrap_err();
    assert!(
        error.to_string().contains(
            "no message has the id `nope`, so it cannot be removed; the ids are: question, answer"
        ),
        "{error}"
    );
}

#[test]
fn a_function_node_retries_its_body_under_its_policy() {
    static CALLS: Mutex<u32> = Mutex::new(0);
    #[node(attempts = 3, wait = "1ms")]
    async fn flaky(_: &Chat) -> Result<Command<Chat>, ModelError> {
        tokio::task::yield_now().await;
        let mut calls = CALLS.lock().unwrap();
        *calls += 1;
        if *calls < 3 {
            return Err(ModelError::status(429, "slow down"));
        }
        Ok(Command::new(Chat::update().add_tries(*calls)))
    }
    assert_eq!(
        slateflow::Node::<Chat>::retry(&flaky),
        Retry::attempts(3)
            .wait(Duration::from_millis(1))
            .hints::<ModelError>(),
        "the function's error type gives its hints"
    );
    let flow = flow! { flaky; };
    let retries = Mutex::new(Vec::new());
    let started = Mutex::new(Vec::new());
    let finished = Mutex::new(Vec::new());
    let observer = slateflow::event::from_fn(|event: &Event<'_>| match event {
        Event::Retry { attempt, .. } => retries.lock().unwrap().push(*attempt),
        Event::NodeStarted { attempt, .. } => started.lock().unwrap().push(*attempt),
        Event::NodeFinished { attempts, .. } => finished.lock().unwrap().push(*attempts),
        _ => {}
    });
    let mut chat = Chat::default();
    block_on(flow.observe(&observer).run(&mut chat)).unwrap();
    assert_eq!(chat.tries, 3);
    assert_eq!(*retries.lock().unwrap(), [1, 2]);
    assert_eq!(*started.lock().unwrap(), [1, 2, 3], "one start per attempt");
    assert_eq!(*finished.lock().unwrap(), [3], "the attempts of the body");
}

#[test]
fn a_function_node_caps_the_wait_an_endpoint_asks_for_at_its_max_retry_after() {
    static CALLS: Mutex<u32> = Mutex::new(0);
    #[node(attempts = 2, wait = "10ms", max_retry_after = "2s")]
    fn limited(_: &Chat) -> Result<Command<Chat>, ModelError> {
        let mut calls = CALLS.lock().unwrap();
        *calls += 1;
        if *calls == 1 {
            let asked = Duration::from_secs(600);
            return Err(ModelError::status(429, "slow down").with_retry_after(asked));
        }
        Ok(Command::new(Chat::update().add_tries(*calls)))
    }
    assert_eq!(
        slateflow::Node::<Chat>::retry(&limited),
        Retry::attempts(2)
            .wait(Duration::from_millis(10))
            .max_retry_after(Duration::from_secs(2))
            .hints::<ModelError>()
    );
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_time()
        .start_paused(true)
        .build()
        .unwrap();
    let mut chat = Chat::default();
    let elapsed = runtime.block_on(async {
        let started = tokio::time::Instant::now();
        support::runs::alone(&limited, &mut chat).await.unwrap();
        started.elapsed()
    });
    assert_eq!(chat.tries, 2);
    assert_eq!(
        elapsed,
        Duration::from_secs(2),
        "the cap, not the 600 s asked"
    );
}

#[test]
fn a_function_node_fails_at_once_on_an_error_that_is_not_retryable() {
    static CALLS: Mutex<u32> = Mutex::new(0);
    #[node(attempts = 5)]
    fn refused(_: &Chat) -> Result<Command<Chat>, ModelError> {
        *CALLS.lock().unwrap() += 1;
        Err(ModelError::status(400, "bad request"))
    }
    let error = support::runs::alone_blocking(&refused, &mut Chat::default()).unwrap_err();
    assert_eq!(*CALLS.lock().unwrap(), 1, "a 400 is not retried");
    assert!(
        matches!(error, Error::NodeFailed { attempts: 1, .. }),
        "{error:?}"
    );
}

#[test]
fn a_function_node_retries_what_its_predicate_chooses() {
    static CALLS: Mutex<u32> = Mutex::new(0);
    fn only_io(error: &NodeError) -> bool {
        error.is::<std::io::Error>()
    }
    #[node(attempts = 4, retry_if = only_io)]
    fn picky(_: &Chat) -> Result<Command<Chat>, NodeError> {
        let mut calls = CALLS.lock().unwrap();
        *calls += 1;
        if *calls < 3 {
            return Err(std::io::Error::other("reset").into());
        }
        Err("a parse error".into())
    }
    let error = support::runs::alone_blocking(&picky, &mut Chat::default()).unwrap_err();
    assert_eq!(*CALLS.lock().unwrap(), 3);
    assert!(
        matches!(error, Error::NodeFailed { attempts: 3, .. }),
        "{error:?}"
    );
    assert!(
        error
            .to_string()
            .ends_with("after 3 attempts: a parse error"),
        "{error}"
    );
}

#[tokio::test(start_paused = true)]
async fn a_function_node_times_out_each_attempt() {
    #[node(
        attempts = 2,
        timeout = "30s",
        backoff = 2.0,
        wait = "1s",
        max_wait = "10s"
    )]
    async fn slow(_: &Chat, context: &Context<'_>) -> Command<Chat> {
        let _ = context.step();
        tokio::time::sleep(Duration::from_secs(60)).await;
        Command::default()
    }
    let error = flow! { slow; }.run(&mut Chat::default()).await.unwrap_err();
    match error {
        Error::Timeout {
            node,
            attempts,
            after,
            ..
        } => {
            assert_eq!(
                (node, attempts, after),
                ("slow", 2, Duration::from_secs(30))
            );
        }
        other => panic!("{other:?}"),
    }
}

/// What the effect tools did: each call, by tool and idempotency key, in order.
#[derive(Default)]
struct Effects {
    calls: Mutex<Vec<(String, String)>>,
    /// `pay` panics once, after its effect, as a process killed during the call would stop.
    stop_pay_once: std::sync::atomic::AtomicBool,
}

impl Effects {
    /// The keys of the calls, in order.
    fn keys(&self) -> Vec<String> {
        self.calls
            .lock()
            .unwrap()
            .iter()
            .map(|(_, key)| key.clone())
            .collect()
    }

    fn count(&self, tool: &str) -> usize {
        self.calls
            .lock()
            .unwrap()
            .iter()
            .filter(|(name, _)| name == tool)
            .count()
    }
}

/// A tool with an effect, recorded with its key: `lookup` (no effect elsewhere: repeatable) or
/// `pay` (repeatable only when told).
struct Effect {
    name: &'static str,
    effects: Arc<Effects>,
    repeatable: bool,
}

impl tool::Tool for Effect {
    type Args = serde_json::Value;
    type Output = String;

    fn name(&self) -> &str {
        self.name
    }

    fn description(&self) -> &'static str {
        "An effect"
    }

    fn parameters(&self) -> serde_json::Value {
        json!({"type": "object"})
    }

    async fn call(&self, _: serde_json::Value) -> Result<String, NodeError> {
        Err("call `call_keyed`".into())
    }

    async fn call_keyed(&self, _: serde_json::Value, key: &str) -> Result<String, NodeError> {
        self.effects
            .calls
            .lock()
            .unwrap()
            .push((self.name.to_string(), key.to_string()));
        if self.name == "pay"
            && self
                .effects
                .stop_pay_once
                .swap(false, std::sync::atomic::Ordering::SeqCst)
        {
            panic!("the process stops during the payment");
        }
        Ok(format!("{} done", self.name))
    }

    fn repeatable(&self) -> bool {
        self.repeatable
    }
}

/// A model that makes `calls` in its first reply, then answers with what the tools said (joined
/// by ` | `), unless `answer` fails first.
fn calls_then_reports(
    calls: Vec<ToolCall>,
    answer: impl Fn() -> Result<(), ModelError> + Send + Sync + 'static,
) -> Arc<ScriptedModel> {
    Arc::new(ScriptedModel::from_fn(move |request| {
        let answers: Vec<&str> = request
            .messages
            .iter()
            .filter(|message| matches!(message, Message::Tool { .. }))
            .map(Message::content)
            .collect();
        if answers.is_empty() {
            return Ok(ChatResponse::new(Message::ai_calling("", calls.clone())));
        }
        answer()?;
        Ok(ChatResponse::new(Message::ai(answers.join(" | "))))
    }))
}

/// A model that calls `lookup` and `pay` once, then answers with what the tools said; its
/// answer fails once with a non-retryable error when `fail_answer` is set.
fn effect_model(fail_answer: Arc<std::sync::atomic::AtomicBool>) -> Arc<ScriptedModel> {
    let calls = vec![
        ToolCall::new("c1", "lookup", "{}"),
        ToolCall::new("c2", "pay", "{}"),
    ];
    calls_then_reports(calls, move || {
        if fail_answer.swap(false, std::sync::atomic::Ordering::SeqCst) {
            return Err(ModelError::status(400, "the answer failed"));
        }
        Ok(())
    })
}

fn effect_tools(effects: &Arc<Effects>, pay_repeatable: bool) -> Toolbox {
    Toolbox::new()
        .with(Effect {
            name: "lookup",
            effects: effects.clone(),
            repeatable: true,
        })
        .with(Effect {
            name: "pay",
            effects: effects.clone(),
            repeatable: pay_repeatable,
        })
}

/// A durable turn whose answer fails after both tools ran: resumed, it goes on from the kept
/// reply and tool answers, calling neither tool again, and the model only for the answer.
#[test]
fn a_resumed_turn_runs_no_finished_tool_call_or_model_call_again() {
    let effects = Arc::new(Effects::default());
    let fail_answer = Arc::new(std::sync::atomic::AtomicBool::new(true));
    let model = effect_model(fail_answer);
    let agent = Agent::new(model.clone())
        .tools(effect_tools(&effects, false))
        .retry(Retry::attempts(1));
    let flow = flow! { agent; };
    let durable = flow.durable(MemoryStore::new());
    let error = block_on(durable.start("kept-calls", &mut alert())).unwrap_err();
    assert!(error.to_string().contains("the answer failed"), "{error}");
    assert_eq!((effects.count("lookup"), effects.count("pay")), (1, 1));
    assert_eq!(model.requests().len(), 2);

    let (state, outcome) = block_on(durable.resume("kept-calls")).unwrap();
    assert_eq!(outcome, Outcome::Finished("default".into()));
    assert_eq!((effects.count("lookup"), effects.count("pay")), (1, 1));
    assert_eq!(model.requests().len(), 3, "only the answer was asked again");
    assert_eq!(
        state.messages.last().unwrap().content(),
        "lookup done | pay done"
    );
    // Each call had the key of its thread, step and call, the same in both attempts.
    let keys = effects.keys();
    assert_eq!(keys, ["kept-calls/1/c1", "kept-calls/1/c2"]);
}

/// A run that stops during a call that is not repeatable does not run it again: the model is
/// told it may or may not have happened. A repeatable one runs again, with the same key.
#[test]
fn a_call_cut_short_runs_again_only_when_its_tool_is_repeatable() {
    for repeatable in [false, true] {
        let effects = Arc::new(Effects::default());
        effects
            .stop_pay_once
            .store(true, std::sync::atomic::Ordering::SeqCst);
        let model = effect_model(Arc::new(std::sync::atomic::AtomicBool::new(false)));
        let agent = Agent::new(model.clone()).tools(effect_tools(&effects, repeatable));
        let flow = flow! { agent; };
        let durable = flow.durable(MemoryStore::new());
        let thread = format!("cut-short-{repeatable}");
        let error = block_on(durable.start(&thread, &mut alert())).unwrap_err();
        assert!(matches!(error, Error::Panic { .. }), "{error}");
        let (state, _) = block_on(durable.resume(&thread)).unwrap();
        assert_eq!(
            effects.count("lookup"),
            1,
            "a finished call is not run again"
        );
        let answer = state.messages.last().unwrap().content().to_string();
        if repeatable {
            assert_eq!(effects.count("pay"), 2);
            assert_eq!(answer, "lookup done | pay done");
            let keys = effects.keys();
            assert_eq!(keys[1], keys[2], "the call ran again under its key");
        } else {
            assert_eq!(
                effects.count("pay"),
                1,
                "a call that may have happened is not run again"
            );
            assert!(
                answer.contains("the call to `pay` may or may not have happened"),
                "{answer}"
            );
        }
    }
}

/// A conversation whose messages can be corrected by id.
#[derive(SharedState, Clone, Debug, Default, Serialize, Deserialize)]
#[slateflow(conversation)]
struct Editable {
    #[reducer(append)]
    messages: Messages,
    #[reducer(append)]
    histories: Histories,
    #[reducer(add)]
    corrections: u32,
}

/// An answer corrected in the conversation (replaced by its id) reaches the agent that wrote it:
/// its next turn reads the corrected text, not its own original from its history.
#[test]
fn a_corrected_answer_reaches_the_agent_that_wrote_it() {
    #[node(actions = ["again", "done"])]
    fn correct(chat: &Editable) -> Result<Command<Editable>, NodeError> {
        if chat.corrections > 0 {
            return Ok(Command::goto("done"));
        }
        let answer = chat.messages.last().unwrap();
        let fixed = Message::ai("Classification: phishing").with_id(answer.id().unwrap());
        let edit = chat.messages.replace(fixed)?;
        let next = Message::human("Look again.").with_id("again");
        Ok(Command::new(
            Editable::update()
                .append_messages(edit)
                .push_messages(next)
                .add_corrections(1),
        )
        .with_action("again"))
    }
    let model = Arc::new(
        ScriptedModel::new()
            .reply("Classification: intrusion")
            .reply("Still phishing."),
    );
    let classify = Agent::new(model.clone());
    let flow = flow! { classify >> correct; correct - "again" >> classify; };
    let mut chat = Editable {
        messages: vec![Message::human("An alert").with_id("alert")].into(),
        ..Editable::default()
    };
    flow.run_blocking(&mut chat).unwrap();
    let requests = model.requests();
    let second: Vec<&str> = requests[1].messages.iter().map(Message::content).collect();
    assert_eq!(
        second,
        ["Classification: phishing", "Look again."],
        "the agent read its corrected answer"
    );
}

mod handoffs {
    use super::*;
    use slateflow::agent::{Counters, ROUTE_TOOL};

    /// A desk that keeps why its supervisor routed and how much each agent did.
    #[derive(SharedState, Clone, Debug, Default, Serialize, Deserialize)]
    #[slateflow(conversation(routing_reason, counters = work))]
    struct Desk {
        #[reducer(append)]
        messages: Vec<Message>,
        #[reducer(append)]
        histories: Histories,
        routing_reason: Option<String>,
        #[reducer(append)]
        work: Counters,
    }

    slateflow::routes! {
        /// Where the supervisor sends the work.
        struct Team = ["research", "write", "finish"];
    }

    fn route(id: &str, to: &str, reason: &str) -> ToolCall {
        ToolCall::new(
            id,
            ROUTE_TOOL,
            json!({"to": to, "reason": reason}).to_string(),
        )
    }

    /// A supervisor hands off to a researcher and a writer in turn, each of which hands back;
    /// the reason is in the state for the worker's prompt, the counts add up per agent, and a
    /// wrong route and an answer without a route are sent back to the model.
    #[test]
    fn a_supervisor_routes_among_agents_with_its_reasons_in_the_state() {
        let supervisor_model = Arc::new(
            ScriptedModel::new()
                // A route that does not exist is refused, with the choices.
                .call_tools(vec![route("r1", "publish", "ship it")])
                .call_tools(vec![route("r2", "research", "we need sources first")])
                // Text without a route: the model is asked to route.
                .reply("The research looks good.")
                .call_tools(vec![route("r3", "write", "sources are in")])
                .call_tools(vec![route(
                    "r4",
                    "finish",
                    "the draft answers the question",
                )]),
        );
        let worker_model = Arc::new(
            ScriptedModel::new()
                .reply("Three sources say yes.")
                .reply("Draft: yes, with three sources."),
        );
        let supervisor = Agent::new(supervisor_model.clone())
            .system(prompt!(Desk, "Lead the team."))
            .routes::<Team>();
        let research = Agent::new(worker_model.clone()).system(prompt!(
            Desk,
            "Research. You were asked because: {routing_reason}"
        ));
        let write = Agent::new(worker_model.clone()).system(prompt!(
            Desk,
            "Write. You were asked because: {routing_reason}"
        ));
        let flow = flow! {
            supervisor - "research" >> research;
            supervisor - "write" >> write;
            research >> supervisor;
            write >> supervisor;
        };
        let recorder = Arc::new(Recorder::default());
        let mut desk = Desk {
            messages: vec![Message::human("Is the claim true?")],
            ..Desk::default()
        };
        let ended = flow
            .observe(recorder.clone())
            .run_blocking(&mut desk)
            .unwrap();
        assert_eq!(ended, "finish");
        assert_eq!(
            desk.routing_reason.as_deref(),
            Some("the draft answers the question")
        );

        // The workers read the reason their supervisor gave.
        let worker_requests = worker_model.requests();
        assert_eq!(
            worker_requests[0].messages[0].content(),
            "Research. You were asked because: we need sources first"
        );
        assert_eq!(
            worker_requests[1].messages[0].content(),
            "Write. You were asked because: sources are in"
        );
        // The researcher's input is the question: the supervisor's routing turn added nothing
        // to the conversation.
        assert_eq!(
            worker_requests[0].messages[1].content(),
            "Is the claim true?"
        );
        let said: Vec<&str> = desk.messages.iter().map(Message::content).collect();
        assert_eq!(
            said,
            [
                "Is the claim true?",
                "Three sources say yes.",
                "Draft: yes, with three sources."
            ]
        );

        // The supervisor was offered the route, told what was wrong, and asked to route.
        supervisor_was_sent_back(&supervisor_model.requests());

        // Counts per agent: turns, model replies.
        let supervisor_work = desk.work.get("supervisor");
        assert_eq!((supervisor_work.turns, supervisor_work.model_calls), (3, 5));
        assert_eq!(supervisor_work.tool_calls, 0, "routes are not tool calls");
        assert_eq!(desk.work.get("research").turns, 1);
        assert_eq!(desk.work.get("write").model_calls, 1);

        // The route's reason is the step's routing reason, for observers too.
        let reasons: Vec<String> = recorder
            .of_kind("node_finished")
            .iter()
            .filter(|event| event.node.as_deref() == Some("supervisor"))
            .map(|event| event.data.as_str().unwrap_or_default().to_string())
            .collect();
        assert_eq!(
            reasons,
            [
                "we need sources first",
                "sources are in",
                "the draft answers the question"
            ]
        );
    }

    /// The supervisor's requests: the route offered with its actions, a wrong route refused
    /// with the choices, and an answer without a route sent back.
    fn supervisor_was_sent_back(asked: &[slateflow::agent::ChatRequest]) {
        assert_eq!(asked[0].tools.last().unwrap().name, ROUTE_TOOL);
        assert_eq!(
            asked[0].tools.last().unwrap().parameters["properties"]["to"]["enum"],
            json!(["research", "write", "finish"])
        );
        let refusal = &asked[1].messages.last().unwrap();
        assert!(
            matches!(refusal, Message::Tool { is_error: true, .. }),
            "{refusal:?}"
        );
        assert!(
            refusal.content().contains(
                "no route \"publish\"; `to` is one of \"research\", \"write\", \"finish\""
            ),
            "{refusal}"
        );
        assert!(
            asked[3]
                .messages
                .last()
                .unwrap()
                .content()
                .contains("Hand the work on now"),
            "{:?}",
            asked[3].messages.last()
        );
    }

    /// A routing model that never routes fails the node when its rounds are used up, naming the
    /// routes.
    #[test]
    fn a_model_that_never_routes_fails_with_the_routes() {
        let model = ScriptedModel::from_fn(|_| Ok(ChatResponse::new(Message::ai("Hmm."))));
        let supervisor = Agent::new(model).max_tool_rounds(2).routes::<Team>();
        let (research, write) = (
            Agent::new(ScriptedModel::new()),
            Agent::new(ScriptedModel::new()),
        );
        let flow = flow! {
            supervisor - "research" >> research;
            supervisor - "write" >> write;
        };
        let error = flow.run_blocking(&mut Desk::default()).unwrap_err();
        let text = error.to_string();
        assert!(
            text.contains(
                "answered without handing the work on (by calling `route`) after 2 rounds"
            ),
            "{text}"
        );
        assert!(
            text.contains("\"research\", \"write\", \"finish\""),
            "{text}"
        );
    }
}

mod approval {
    use super::*;
    use slateflow::agent::Approval;
    use slateflow::durable::Pause;

    /// Records each call of `pay` with its arguments.
    fn pay_tool(paid: Arc<Mutex<Vec<serde_json::Value>>>) -> Toolbox {
        Toolbox::new()
            .with(tool::from_fn(
                "lookup",
                "Looks an invoice up",
                json!({"type": "object"}),
                |_: serde_json::Value| async move { Ok("invoice 7: 120 EUR") },
            ))
            .with(
                tool::from_fn(
                    "pay",
                    "Pays an invoice",
                    json!({"type": "object", "properties": {"amount": {"type": "integer"}}}),
                    move |args: serde_json::Value| {
                        let paid = paid.clone();
                        async move {
                            paid.lock().unwrap().push(args.clone());
                            Ok(format!("paid {}", args["amount"]))
                        }
                    },
                )
                .needs_approval(),
            )
    }

    /// A model that looks the invoice up and pays it in one round, then answers with what the
    /// tools said.
    fn clerk_model() -> Arc<ScriptedModel> {
        let calls = vec![
            ToolCall::new("c1", "lookup", "{}"),
            ToolCall::new("c2", "pay", r#"{"amount": 120}"#),
        ];
        calls_then_reports(calls, || Ok(()))
    }

    /// Runs the clerk durably until it asks, replies `decision`, resumes: the paid calls, the
    /// model's requests and the final answer.
    fn decide(thread: &str, decision: &Approval) -> (Vec<serde_json::Value>, usize, String, Pause) {
        let paid = Arc::new(Mutex::new(Vec::new()));
        let model = clerk_model();
        let clerk = Agent::new(model.clone()).tools(pay_tool(paid.clone()));
        let flow = flow! { clerk; };
        let durable = flow.durable(MemoryStore::new());
        let outcome = block_on(durable.start(thread, &mut alert())).unwrap();
        let [pause] = outcome.pauses() else {
            panic!("the clerk asks before paying: {outcome:?}")
        };
        assert!(
            paid.lock().unwrap().is_empty(),
            "nothing paid before the reply"
        );
        block_on(durable.reply(thread, &pause.key, decision)).unwrap();
        let (triage, outcome) = block_on(durable.resume(thread)).unwrap();
        assert_eq!(outcome, Outcome::Finished("default".into()));
        let answer = triage.messages.last().unwrap().content().to_string();
        let paid = paid.lock().unwrap().clone();
        (paid, model.requests().len(), answer, pause.clone())
    }

    /// Approved, the call runs once as the model made it; the model is not asked again for the
    /// reply it gave before the pause, and the lookup that ran before it does not run again.
    #[test]
    fn an_approved_call_runs_once_after_the_reply() {
        let (paid, requests, answer, pause) = decide("approve", &Approval::Approve);
        assert_eq!(paid, [json!({"amount": 120})]);
        assert_eq!(
            requests, 2,
            "the tool-calling reply was kept across the pause"
        );
        assert_eq!(answer, "invoice 7: 120 EUR | paid 120");
        let asked = pause.asked.unwrap();
        assert_eq!(asked["tool"], "pay");
        assert_eq!(asked["arguments"], json!({"amount": 120}));
        assert_eq!(asked["call_id"], "c2");
        assert!(pause.key.ends_with("approve:0:c2"), "{}", pause.key);
    }

    /// Edited, it runs with the person's arguments, and the model reads that they changed.
    #[test]
    fn an_edited_call_runs_with_the_new_arguments_and_the_model_is_told() {
        let edit = Approval::Edit {
            arguments: json!({"amount": 100}),
        };
        let (paid, _, answer, _) = decide("edit", &edit);
        assert_eq!(paid, [json!({"amount": 100})]);
        assert!(
            answer.contains(
                r#"(a person changed the arguments to {"amount":100} before the call ran) paid 100"#
            ),
            "{answer}"
        );
    }

    /// Rejected, it does not run, and the model reads why.
    #[test]
    fn a_rejected_call_does_not_run_and_the_model_reads_why() {
        let reject = Approval::Reject {
            message: "over this month's budget".into(),
        };
        let (paid, _, answer, _) = decide("reject", &reject);
        assert!(paid.is_empty());
        assert!(
            answer.contains("a person rejected this call: over this month's budget"),
            "{answer}"
        );
    }

    /// The clerk as a branch of a durable fork: it asks, and replied, it goes on from its kept
    /// reply; the other branch is not run again.
    #[test]
    fn a_call_in_a_fork_branch_waits_for_approval_too() {
        let paid = Arc::new(Mutex::new(Vec::new()));
        let model = clerk_model();
        let clerk = Agent::new(model.clone()).tools(pay_tool(paid.clone()));
        let others = Arc::new(std::sync::atomic::AtomicU32::new(0));
        let counted = others.clone();
        let other = slateflow::node::from_fn(move |_: &Triage| {
            counted.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
            Ok(Command::default())
        });
        #[node]
        fn first(_: &Triage) -> Command<Triage> {
            Command::default()
        }
        let flow = flow! { first >> [other, clerk]; };
        let durable = flow.durable(MemoryStore::new());
        let outcome = block_on(durable.start("fork-approve", &mut alert())).unwrap();
        let [pause] = outcome.pauses() else {
            panic!("{outcome:?}")
        };
        assert!(paid.lock().unwrap().is_empty());
        block_on(durable.reply("fork-approve", &pause.key, &Approval::Approve)).unwrap();
        let (_, outcome) = block_on(durable.resume("fork-approve")).unwrap();
        assert_eq!(outcome, Outcome::Finished("default".into()));
        assert_eq!(*paid.lock().unwrap(), [json!({"amount": 120})]);
        assert_eq!(
            model.requests().len(),
            2,
            "the reply before the pause was kept"
        );
        assert_eq!(others.load(std::sync::atomic::Ordering::SeqCst), 1);
    }

    /// Without a durable run, a call that needs approval fails the node, saying why.
    #[test]
    fn a_plain_run_cannot_ask_for_approval() {
        let clerk = Agent::new(clerk_model()).tools(pay_tool(Arc::default()));
        let error = flow! { clerk; }.run_blocking(&mut alert()).unwrap_err();
        assert!(
            error
                .to_string()
                .contains("which only a durable run's steps can do"),
            "{error}"
        );
    }
}

/// An agent with tools as a branch of a fork in a durable run: it runs (what its turn keeps goes
/// with the fork's parts; it used to fail, writing it at a step the thread had not reached).
#[test]
fn an_agent_with_tools_runs_in_a_durable_forks_branch() {
    let effects = Arc::new(Effects::default());
    let model = effect_model(Arc::default());
    let agent = Agent::new(model.clone()).tools(effect_tools(&effects, true));
    #[node]
    fn other(_: &Triage) -> Command<Triage> {
        Command::default()
    }
    #[node]
    fn first(_: &Triage) -> Command<Triage> {
        Command::default()
    }
    // A step before the fork: the branches' steps are past the last one saved.
    let flow = flow! { first >> [other, agent]; };
    let durable = flow.durable(MemoryStore::new());
    let outcome = block_on(durable.start("fork-agent", &mut alert())).unwrap();
    assert_eq!(outcome, Outcome::Finished("default".into()));
    assert_eq!((effects.count("lookup"), effects.count("pay")), (1, 1));
}
