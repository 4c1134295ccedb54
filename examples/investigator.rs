//! The security-alert triage of the design's seed, with chat models: a classifier that answers in
//! structured JSON, a router that says why it routes, an investigator agent with its own history,
//! `{classification}` and `{alert_text}` templates and a tool, and a reporter.
//!
//! Offline by default: a `ScriptedModel` plays the model, so no key and no server are needed. Set
//! `OPENAI_API_KEY` (OpenAI) or `OPENAI_BASE_URL` (any OpenAI-compatible server, e.g. Ollama at
//! `http://127.0.0.1:11434/v1`, with `OPENAI_MODEL`) to talk to a real one.
//! Run it with `cargo run -p slateflow-examples --example investigator`.

use std::sync::Arc;

use serde::{Deserialize, Serialize};
use serde_json::json;
use slateflow::agent::Agent;
use slateflow::agent::message::{Histories, Message, ToolCall};
use slateflow::agent::model::{ChatModel, ChatRequest, ChatResponse, OpenAi, ScriptedModel};
use slateflow::agent::template::Prompt;
use slateflow::agent::tool::{self, Toolbox};
use slateflow::event::{self, Event};
use slateflow::{Command, Context, Node, NodeError, Retry, SharedState, flow, node, prompt};

/// The shared state: named fields the agents fill in, the global conversation, and one history
/// per agent.
#[derive(SharedState, Clone, Debug, Default, Serialize, Deserialize)]
#[slateflow(conversation)]
struct Triage {
    /// The alert as received.
    alert_text: String,
    /// `intrusion`, `phishing` or `benign`, once classified.
    classification: Option<String>,
    /// `low`, `medium` or `high`, once classified.
    severity: Option<String>,
    /// Every agent's answers, in order: what the next agent reads.
    #[reducer(append)]
    messages: Vec<Message>,
    /// Each agent's own turns, by its path in the flow.
    #[reducer(append)]
    histories: Histories,
}

/// What the classifier answers, as JSON.
#[derive(Debug, Deserialize)]
struct Verdict {
    classification: String,
    severity: String,
}

/// Classifies the alert with structured output: the reply must parse as a [`Verdict`].
struct Classify<M> {
    model: Arc<M>,
    system: Prompt<Triage>,
}

impl<M: ChatModel> Node<Triage> for Classify<M> {
    type Prep = ChatRequest;
    type Exec = Verdict;

    /// Rate limits and server errors are retried; a reply that does not parse is not.
    fn retry(&self) -> Retry {
        Retry::attempts(3).wait(std::time::Duration::from_millis(200))
    }

    async fn prep(&self, state: &Triage, _: &Context<'_>) -> Result<ChatRequest, NodeError> {
        let schema = json!({
            "type": "object",
            "properties": {
                "classification": {"enum": ["intrusion", "phishing", "benign"]},
                "severity": {"enum": ["low", "medium", "high"]},
            },
            "required": ["classification", "severity"],
            "additionalProperties": false,
        });
        let messages = vec![
            Message::system(self.system.render(state)),
            Message::human(state.alert_text.clone()),
        ];
        Ok(ChatRequest::new(messages).with_output("verdict", schema))
    }

    async fn exec(&self, request: &ChatRequest) -> Result<Verdict, NodeError> {
        Ok(self.model.chat_into(request).await?)
    }

    async fn post(
        &self,
        _: &Triage,
        _: ChatRequest,
        verdict: Verdict,
        context: &Context<'_>,
    ) -> Result<Command<Triage>, NodeError> {
        let mut said = Message::ai(format!(
            "Classification: {}, severity: {}",
            verdict.classification, verdict.severity
        ));
        said.ensure_id(context, 0);
        Ok(Command::new(
            Triage::update()
                .set_classification(Some(verdict.classification))
                .set_severity(Some(verdict.severity))
                .push_messages(said.clone())
                .append_histories(Histories::of(context.at().path(), [said])),
        ))
    }
}

/// Routes on the classification, and says why.
#[node(actions = ["intrusion", "phishing", "benign"])]
fn route(state: &Triage) -> Command<Triage> {
    let kind = state.classification.as_deref().unwrap_or("benign");
    let severity = state.severity.as_deref().unwrap_or("low");
    let action = match kind {
        "intrusion" => "intrusion",
        "phishing" => "phishing",
        _ => "benign",
    };
    Command::goto(action).with_reason(format!(
        "the classifier called it {kind} with {severity} severity"
    ))
}

/// The tools the investigator may call.
fn tools() -> Toolbox {
    #[derive(Deserialize)]
    struct Ip {
        ip: String,
    }
    Toolbox::new().with(tool::from_fn(
        "lookup_ip",
        "Reputation and recent activity of an IP address",
        json!({
            "type": "object",
            "properties": {"ip": {"type": "string", "description": "an IPv4 address"}},
            "required": ["ip"],
        }),
        |args: Ip| async move {
            let blocked = args.ip.starts_with("10.");
            Ok(json!({"ip": args.ip, "on_block_list": blocked, "failed_logins_24h": 47}))
        },
    ))
}

/// The whole triage, on any chat model.
async fn triage<M: ChatModel + 'static>(
    model: Arc<M>,
    alert: &str,
) -> Result<Triage, slateflow::Error> {
    let classify = Classify {
        model: model.clone(),
        system: prompt!(Triage, "Classify security alerts. Answer with JSON only."),
    };
    let investigate = Agent::new(model.clone())
        .system(prompt!(
            Triage,
            "You are a security investigator. Investigate this {classification} alert \
             ({severity} severity). Use the tools, then give your findings in two sentences."
        ))
        .human(prompt!(Triage, "The raw alert: {alert_text}"))
        .tools(tools())
        .max_tool_rounds(3)
        .retry(Retry::attempts(3).wait(std::time::Duration::from_millis(200)));
    let phish_check = Agent::new(model.clone()).system(prompt!(
        Triage,
        "You check suspected phishing. Say whether the sender and links in this alert look \
         forged: {alert_text}"
    ));
    let report = Agent::new(model).system(prompt!(
        Triage,
        "You are the reporter. Write a three-line incident report on the {classification} alert \
         from the findings you are given."
    ));
    let flow = flow! {
        classify >> route;
        route - "intrusion" >> investigate >> report;
        route - "phishing" >> phish_check >> report;
    };

    let trace = event::from_fn(|event: &Event<'_>| match event {
        Event::NodeFinished {
            at, action, reason, ..
        } => {
            let reason = reason.map_or(String::new(), |reason| format!(" because {reason}"));
            println!("  step {}: {at} -> \"{action}\"{reason}", at.step);
        }
        Event::Custom {
            at,
            name: "tool",
            data,
            ..
        } => {
            println!(
                "  step {}: {at} called {} ({})",
                at.step, data["name"], data["id"]
            );
        }
        Event::NoEdge { at, action, .. } => {
            println!("  step {}: {at} ended the run with \"{action}\"", at.step);
        }
        _ => {}
    });
    let mut state = Triage {
        alert_text: alert.to_string(),
        messages: vec![Message::human(format!("New alert: {alert}")).with_id("alert")],
        ..Triage::default()
    };
    flow.observe(trace).run(&mut state).await?;
    Ok(state)
}

/// Plays the model offline: answers each agent from its system prompt, as a model would.
fn scripted() -> ScriptedModel {
    ScriptedModel::from_fn(|request| {
        let system = request
            .messages
            .first()
            .map(Message::content)
            .unwrap_or_default();
        let called_tools = request
            .messages
            .iter()
            .any(|m| matches!(m, Message::Tool { .. }));
        let reply = if system.starts_with("Classify") {
            Message::ai(r#"{"classification": "intrusion", "severity": "high"}"#)
        } else if system.contains("investigator") && !called_tools {
            Message::ai_calling(
                "",
                vec![ToolCall::new(
                    "call_1",
                    "lookup_ip",
                    r#"{"ip": "10.0.0.5"}"#,
                )],
            )
        } else if system.contains("investigator") {
            Message::ai(
                "10.0.0.5 is on the block list and made 47 failed logins in 24 hours. \
                 This is a brute-force attempt against the admin account.",
            )
        } else if system.contains("reporter") {
            Message::ai(
                "Incident: brute-force intrusion attempt from 10.0.0.5 (high severity).\n\
                 Evidence: 47 failed logins in 24 hours; the IP is on the block list.\n\
                 Action: block 10.0.0.5 at the edge and reset the admin password.",
            )
        } else {
            Message::ai("The sender's domain does not match its display name.")
        };
        Ok(ChatResponse::new(reply))
    })
}

#[tokio::main(flavor = "current_thread")]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let alert = "Suspicious login attempt from 10.0.0.5 at 03:42 UTC: 47 failures for user admin";
    let online = std::env::var_os("OPENAI_API_KEY").is_some()
        || std::env::var_os("OPENAI_BASE_URL").is_some();
    println!("trace:");
    let state = if online {
        let model = OpenAi::from_env()?;
        println!("  (model {} at {})", model.model(), model.base_url());
        triage(Arc::new(model), alert).await?
    } else {
        triage(Arc::new(scripted()), alert).await?
    };

    println!("\nglobal messages:");
    for message in &state.messages {
        println!("  {message}");
    }
    println!("\nper-agent histories:");
    for (agent, history) in state.histories.iter() {
        println!("  {agent}:");
        for message in history {
            println!("    {message}");
        }
    }
    Ok(())
}
