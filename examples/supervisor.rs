//! Recipe: a supervisor that routes among agents.
//!
//! A supervisor (a model answering in structured JSON) reads the conversation and names the next
//! agent, and why; the flow routes on its answer, with the reason kept in the history and the
//! events. Each agent (`agent::Agent`) adds its turn to the shared conversation and returns to
//! the supervisor, until the supervisor says `finish`. A step limit bounds the loop.
//!
//! Offline: a `ScriptedModel` plays every model, answering from what each request holds.
//!
//! ```sh
//! cargo run -p slateflow-examples --example supervisor
//! ```

use std::sync::Arc;

use serde::{Deserialize, Serialize};
use serde_json::json;
use slateflow::agent::Agent;
use slateflow::agent::message::{Histories, Message};
use slateflow::agent::model::{ChatModel, ChatRequest, ChatResponse, ScriptedModel};
use slateflow::event::{self, Event};
use slateflow::{Command, Context, Node, NodeError, SharedState, flow, prompt};

#[derive(SharedState, Clone, Debug, Default, Serialize, Deserialize)]
#[slateflow(conversation)]
struct Team {
    task: String,
    /// The supervisor's last choice.
    next: String,
    #[reducer(append)]
    messages: Vec<Message>,
    #[reducer(append)]
    histories: Histories,
}

/// What the supervisor answers.
#[derive(Debug, Deserialize)]
struct Choice {
    next: String,
    reason: String,
}

/// Names the next agent from the conversation so far.
struct Supervisor<M> {
    model: Arc<M>,
}

impl<M: ChatModel> Node<Team> for Supervisor<M> {
    type Prep = ChatRequest;
    type Exec = Choice;
    const ACTIONS: &'static [&'static str] = &["researcher", "writer", "finish"];

    async fn prep(&self, team: &Team, _: &Context<'_>) -> Result<ChatRequest, NodeError> {
        let mut messages = vec![Message::system(format!(
            "You supervise a researcher and a writer on this task: {}. Name who acts next, or \
             finish.",
            team.task
        ))];
        messages.extend(team.messages.iter().cloned());
        let schema = json!({
            "type": "object",
            "properties": {
                "next": {"enum": ["researcher", "writer", "finish"]},
                "reason": {"type": "string"},
            },
            "required": ["next", "reason"],
        });
        Ok(ChatRequest::new(messages).with_output("choice", schema))
    }

    async fn exec(&self, request: &ChatRequest) -> Result<Choice, NodeError> {
        Ok(self.model.chat_into(request).await?)
    }

    async fn post(
        &self,
        _: &Team,
        _: ChatRequest,
        choice: Choice,
        _: &Context<'_>,
    ) -> Result<Command<Team>, NodeError> {
        let action = Self::ACTIONS
            .iter()
            .copied()
            .find(|action| *action == choice.next)
            .ok_or_else(|| {
                format!(
                    "the supervisor named `{}`, who is not on the team",
                    choice.next
                )
            })?;
        Ok(Command::new(Team::update().set_next(choice.next))
            .with_action(action)
            .with_reason(choice.reason))
    }
}

/// The offline stand-in for the models: the supervisor sends the researcher first, then the
/// writer, then finishes; the agents answer their part.
fn scripted() -> ScriptedModel {
    ScriptedModel::from_fn(|request| {
        let system = request
            .messages
            .first()
            .map(Message::content)
            .unwrap_or_default();
        let said = |who: &str| {
            request
                .messages
                .iter()
                .any(|message| message.content().starts_with(who))
        };
        let reply = if system.contains("You supervise") {
            let (next, reason) = if !said("Research:") {
                ("researcher", "nothing is known yet")
            } else if !said("Draft:") {
                ("writer", "the research is in; it needs writing up")
            } else {
                ("finish", "the draft answers the task")
            };
            json!({ "next": next, "reason": reason }).to_string()
        } else if system.contains("researcher") {
            "Research: refunds over 100 EUR need a second approval; 83% are paid within 5 days."
                .to_string()
        } else {
            "Draft: Most refunds are paid within 5 days; over 100 EUR, a second person approves."
                .to_string()
        };
        Ok(ChatResponse::new(Message::ai(reply)))
    })
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let model = Arc::new(scripted());
    let supervisor = Supervisor {
        model: model.clone(),
    };
    let researcher = Agent::new(model.clone()).system(prompt!(
        Team,
        "You are the researcher. Find the facts for: {task}. Start with `Research:`."
    ));
    let writer = Agent::new(model).system(prompt!(
        Team,
        "You are the writer. Write the answer to: {task}, from the research. Start with `Draft:`."
    ));
    let flow = flow! {
        supervisor - "researcher" >> researcher >> supervisor;
        supervisor - "writer" >> writer >> supervisor;
    }
    .with_max_steps(20);

    let trace = event::from_fn(|event: &Event<'_>| {
        if let Event::NodeFinished {
            at,
            action,
            reason: Some(reason),
            ..
        } = event
        {
            println!("step {}: {} -> {action} ({reason})", at.step, at.node);
        }
    });
    let mut team = Team {
        task: "how long do refunds take".into(),
        ..Team::default()
    };
    let action = flow.observe(trace).run_blocking(&mut team)?;
    println!("ended with \"{action}\"; the conversation:");
    for message in &team.messages {
        println!("  {}", message.content());
    }
    Ok(())
}
