//! A tool-calling agent: the model asks for tools, the agent runs them and hands the results back,
//! until the model answers. A bad call (arguments that are not JSON, a tool that fails) goes back
//! to the model as a failed tool message, and the model tries again.
//!
//! Offline by default (a `ScriptedModel` plays the model); set `OPENAI_API_KEY` or
//! `OPENAI_BASE_URL` to use a real one. Run it with
//! `cargo run -p slateflow-examples --example tool_agent`.

use std::sync::Arc;

use serde::{Deserialize, Serialize};
use serde_json::json;
use slateflow::agent::Agent;
use slateflow::agent::message::{Histories, Message, ToolCall};
use slateflow::agent::model::{ChatModel, OpenAi, ScriptedModel};
use slateflow::agent::tool::{self, Toolbox};
use slateflow::event::{self, Event};
use slateflow::{NodeError, SharedState, flow, prompt};

#[derive(SharedState, Clone, Debug, Default, Serialize, Deserialize)]
#[slateflow(conversation)]
struct Desk {
    /// The customer's city, for the prompt.
    city: String,
    #[reducer(append)]
    messages: Vec<Message>,
    #[reducer(append)]
    histories: Histories,
}

#[derive(Deserialize)]
struct Convert {
    amount: f64,
    from: String,
    to: String,
}

#[derive(Deserialize)]
struct City {
    city: String,
}

fn tools() -> Toolbox {
    Toolbox::new()
        .with(tool::from_fn(
            "convert_currency",
            "Converts an amount between EUR, USD and GBP",
            json!({
                "type": "object",
                "properties": {
                    "amount": {"type": "number"},
                    "from": {"enum": ["EUR", "USD", "GBP"]},
                    "to": {"enum": ["EUR", "USD", "GBP"]},
                },
                "required": ["amount", "from", "to"],
            }),
            |args: Convert| async move {
                let in_eur = |currency: &str| match currency {
                    "EUR" => Ok(1.0),
                    "USD" => Ok(0.92),
                    "GBP" => Ok(1.17),
                    other => Err(NodeError::from(format!("unknown currency {other}"))),
                };
                let rate = in_eur(&args.from)? / in_eur(&args.to)?;
                Ok(json!({"amount": (args.amount * rate * 100.0).round() / 100.0, "currency": args.to}))
            },
        ))
        .with(tool::from_fn(
            "shipping_days",
            "Days to ship an order to a city",
            json!({"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]}),
            |args: City| async move {
                Ok(if args.city == "Lyon" { 2 } else { 5 })
            },
        ))
}

async fn answer<M: ChatModel + 'static>(model: M) -> Result<Desk, slateflow::Error> {
    let agent = Agent::new(model)
        .system(prompt!(
            Desk,
            "You are a shop assistant for a customer in {city}. Use the tools for prices and \
             delivery times; never guess them."
        ))
        .tools(tools());
    let flow = flow! { agent; };
    let trace = event::from_fn(|event: &Event<'_>| {
        if let Event::Custom {
            name: "tool", data, ..
        } = event
        {
            let outcome = if data["is_error"] == true {
                "failed"
            } else {
                "ok"
            };
            println!("  tool {} ({}): {outcome}", data["name"], data["id"]);
        }
    });
    let mut desk = Desk {
        city: "Lyon".into(),
        messages: vec![Message::human(
            "How much is a 120 USD lamp in euros, and when would it reach me?",
        )],
        ..Desk::default()
    };
    flow.observe(trace).run(&mut desk).await?;
    Ok(desk)
}

/// The model's side of the conversation, scripted: a broken call first, as real models sometimes
/// make, then the right ones, then the answer.
fn scripted() -> ScriptedModel {
    ScriptedModel::new()
        .call_tools(vec![ToolCall::new(
            "call_1",
            "convert_currency",
            r#"{"amount": 120, "from": "USD", "to": "EUR""#,
        )])
        .call_tools(vec![
            ToolCall::new(
                "call_2",
                "convert_currency",
                r#"{"amount": 120, "from": "USD", "to": "EUR"}"#,
            ),
            ToolCall::new("call_3", "shipping_days", r#"{"city": "Lyon"}"#),
        ])
        .reply("The lamp costs 110.4 EUR, and it would reach you in Lyon in 2 days.")
}

#[tokio::main(flavor = "current_thread")]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    println!("tool calls:");
    let desk = if std::env::var_os("OPENAI_API_KEY").is_some()
        || std::env::var_os("OPENAI_BASE_URL").is_some()
    {
        answer(Arc::new(OpenAi::from_env()?)).await?
    } else {
        answer(scripted()).await?
    };
    println!("\nthe agent's turn:");
    for message in desk.histories.get("agent") {
        println!("  {message}");
    }
    println!(
        "\nanswer: {}",
        desk.messages
            .last()
            .map(Message::content)
            .unwrap_or_default()
    );
    Ok(())
}
