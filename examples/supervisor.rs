//! Recipe: a supervisor that hands the work off among three agents.
//!
//! The supervisor is an `Agent` that routes (`.routes::<Team>()`): its model hands the work on by
//! calling the `route` tool with one of the team's actions and a reason. The flow follows the
//! action; the reason is the step's routing reason (in events and durable history) and is kept in
//! the state's `routing_reason`, which each worker's prompt reads (`{routing_reason}`). Each
//! agent adds its answer to the shared conversation and returns to the supervisor, until it
//! routes to `finish`. The state's `counters` add up each agent's turns and model calls. A step
//! limit bounds the loop.
//!
//! Each agent prompts from its own turns and the latest message of the conversation, so the
//! supervisor reads the report of the agent it sent.
//!
//! Offline: a `ScriptedModel` plays every model, answering from what each request holds.
//!
//! ```sh
//! cargo run -p slateflow-examples --example supervisor
//! ```

use std::sync::Arc;

use serde::{Deserialize, Serialize};
use serde_json::json;
use slateflow::agent::message::{Histories, Message, ToolCall};
use slateflow::agent::model::{ChatResponse, ScriptedModel};
use slateflow::agent::{Agent, Counters, ROUTE_TOOL};
use slateflow::event::{self, Event};
use slateflow::{SharedState, flow, prompt};

#[derive(SharedState, Clone, Debug, Default, Serialize, Deserialize)]
#[slateflow(conversation(routing_reason, counters))]
struct Desk {
    task: String,
    #[reducer(append)]
    messages: Vec<Message>,
    #[reducer(append)]
    histories: Histories,
    /// Why the supervisor chose the last route.
    routing_reason: String,
    /// Each agent's turns, model calls and tool calls.
    #[reducer(append)]
    counters: Counters,
}

slateflow::routes! {
    /// Where the supervisor sends the work next.
    struct Team = ["research", "write", "review", "finish"];
}

/// The offline stand-in for the models: the supervisor sends the work to the researcher, the
/// writer and the reviewer in turn, then finishes; each agent answers its part.
fn scripted() -> ScriptedModel {
    ScriptedModel::from_fn(|request| {
        let system = request
            .messages
            .first()
            .map(Message::content)
            .unwrap_or_default();
        // An agent sees its own turns and the latest message of the conversation: the
        // supervisor, the report of the agent it sent.
        let latest = request
            .messages
            .last()
            .map(Message::content)
            .unwrap_or_default();
        let reply = if system.starts_with("You lead") {
            let (to, reason) = if latest.starts_with("Research:") {
                ("write", "the research is in; it needs writing up")
            } else if latest.starts_with("Draft:") {
                ("review", "a draft is ready for a second pair of eyes")
            } else if latest.starts_with("Review:") {
                ("finish", "the reviewed draft answers the task")
            } else {
                ("research", "nothing is known yet")
            };
            let call = ToolCall::new(
                format!("route-{to}"),
                ROUTE_TOOL,
                json!({"to": to, "reason": reason}).to_string(),
            );
            Message::ai_calling("", vec![call])
        } else if system.starts_with("You are the researcher") {
            Message::ai(
                "Research: refunds over 100 EUR need a second approval; 83% are paid within 5 days.",
            )
        } else if system.starts_with("You are the writer") {
            Message::ai(
                "Draft: Most refunds are paid within 5 days; over 100 EUR, a second person approves.",
            )
        } else {
            Message::ai("Review: accurate and short; ship it.")
        };
        Ok(ChatResponse::new(reply))
    })
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let model = Arc::new(scripted());
    let supervisor = Agent::new(model.clone())
        .system(prompt!(
            Desk,
            "You lead a researcher, a writer and a reviewer on this task: {task}. Hand the work \
             to whoever should act next, or finish."
        ))
        .routes::<Team>();
    let research = Agent::new(model.clone()).system(prompt!(
        Desk,
        "You are the researcher. Find the facts for: {task}. You were asked because \
         {routing_reason}. Start with `Research:`."
    ));
    let write = Agent::new(model.clone()).system(prompt!(
        Desk,
        "You are the writer. Answer: {task}, from the research. Start with `Draft:`."
    ));
    let review = Agent::new(model).system(prompt!(
        Desk,
        "You are the reviewer. Check the draft against the research. Start with `Review:`."
    ));
    let flow = flow! {
        supervisor - "research" >> research >> supervisor;
        supervisor - "write" >> write >> supervisor;
        supervisor - "review" >> review >> supervisor;
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
    let mut desk = Desk {
        task: "how long do refunds take".into(),
        ..Desk::default()
    };
    let action = flow.observe(trace).run_blocking(&mut desk)?;
    println!("ended with \"{action}\" because {}", desk.routing_reason);
    println!("the conversation:");
    for message in &desk.messages {
        println!("  {}", message.content());
    }
    println!("the work:");
    for (agent, counts) in desk.counters.iter() {
        println!(
            "  {agent}: {} turns, {} model calls",
            counts.turns, counts.model_calls
        );
    }
    assert_eq!(action, "finish");
    assert_eq!(desk.counters.get("supervisor").turns, 4);
    Ok(())
}
