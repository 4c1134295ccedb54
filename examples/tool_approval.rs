//! Recipe: an agent that asks a person before it pays, on the blocking durable API.
//!
//! The clerk agent looks an invoice up and pays it. `pay` is marked `needs_approval()`: before
//! each call, the durable run pauses with the call as its question (tool, arguments, call id).
//! The program shows it, reads the decision from the terminal, and replies
//! (`durable.reply(thread, key, &Approval::...)`): approve, edit the arguments, or reject with a
//! message the model reads. Resumed, the agent goes on from its kept reply: the model is not asked
//! again for the call it made, and the lookup before it does not run again.
//!
//! Offline: a `ScriptedModel` plays the model.
//!
//! ```sh
//! cargo run -p slateflow-examples --example tool_approval              # asks on the terminal
//! echo 'edit {"invoice": 7, "amount": 100}' | cargo run -p slateflow-examples --example tool_approval
//! ```

use std::io::BufRead;
use std::sync::Arc;

use serde::{Deserialize, Serialize};
use serde_json::json;
use slateflow::agent::message::{Histories, Message, ToolCall};
use slateflow::agent::model::{ChatResponse, ScriptedModel};
use slateflow::agent::tool::{self, Toolbox};
use slateflow::agent::{Agent, Approval};
use slateflow::checkpoint::MemoryStore;
use slateflow::durable::Outcome;
use slateflow::{SharedState, flow, prompt};

#[derive(SharedState, Clone, Debug, Default, Serialize, Deserialize)]
#[slateflow(conversation)]
struct Desk {
    #[reducer(append)]
    messages: Vec<Message>,
    #[reducer(append)]
    histories: Histories,
}

#[derive(Debug, Deserialize)]
struct Payment {
    invoice: u32,
    amount: u32,
}

fn tools() -> Toolbox {
    Toolbox::new()
        .with(
            tool::from_fn(
                "lookup_invoice",
                "An invoice's supplier and amount",
                json!({"type": "object", "properties": {"invoice": {"type": "integer"}}}),
                |_: serde_json::Value| async move {
                    println!("  (lookup_invoice runs)");
                    Ok(json!({"invoice": 7, "supplier": "Acme", "amount": 120}))
                },
            )
            .repeatable(),
        )
        .with(
            tool::from_fn(
                "pay",
                "Pays an invoice",
                json!({"type": "object", "properties": {
                    "invoice": {"type": "integer"}, "amount": {"type": "integer"}
                }}),
                |payment: Payment| async move {
                    println!(
                        "  (pay runs: {} EUR for invoice {})",
                        payment.amount, payment.invoice
                    );
                    Ok(format!("paid {} EUR", payment.amount))
                },
            )
            .needs_approval(),
        )
}

/// The model: looks the invoice up and pays it in one round, then reports what the tools said.
fn model() -> ScriptedModel {
    ScriptedModel::from_fn(|request| {
        let said: Vec<&str> = request
            .messages
            .iter()
            .filter(|message| matches!(message, Message::Tool { .. }))
            .map(Message::content)
            .collect();
        if said.is_empty() {
            println!("  (the model is asked, and calls lookup_invoice and pay)");
            return Ok(ChatResponse::new(Message::ai_calling(
                "",
                vec![
                    ToolCall::new("c1", "lookup_invoice", r#"{"invoice": 7}"#),
                    ToolCall::new("c2", "pay", r#"{"invoice": 7, "amount": 120}"#),
                ],
            )));
        }
        Ok(ChatResponse::new(Message::ai(format!(
            "Done: {}",
            said.join("; ")
        ))))
    })
}

/// Reads a decision: `yes`, `no <why>`, or `edit <arguments as JSON>`; approves at the end of
/// the input.
fn decide(line: Option<String>) -> Approval {
    let line = line.unwrap_or_else(|| "yes".into());
    let line = line.trim();
    if let Some(arguments) = line.strip_prefix("edit ") {
        match serde_json::from_str(arguments) {
            Ok(arguments) => return Approval::Edit { arguments },
            Err(error) => println!("  not JSON ({error}); approving as it is"),
        }
    } else if let Some(why) = line.strip_prefix("no") {
        return Approval::Reject {
            message: why.trim().to_string(),
        };
    }
    Approval::Approve
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let clerk = Agent::new(Arc::new(model()))
        .system(prompt!(Desk, "You pay the invoices you are asked to pay."))
        .tools(tools());
    let flow = flow! { clerk; };
    let durable = flow.durable(MemoryStore::new()).blocking()?;
    let mut desk = Desk {
        messages: vec![Message::human("Please pay invoice 7.")],
        ..Desk::default()
    };
    let mut input = std::io::stdin().lock().lines();
    let mut outcome = durable.start("invoice-7", &mut desk)?;
    while let Outcome::Paused(pauses) = outcome {
        for pause in pauses {
            let asked = pause.asked.clone().unwrap_or_default();
            println!(
                "{} wants to call `{}` with {}. Approve? (yes | no <why> | edit <json>)",
                asked["agent"].as_str().unwrap_or_default(),
                asked["tool"].as_str().unwrap_or_default(),
                asked["arguments"]
            );
            let decision = decide(input.next().transpose()?);
            println!("  -> {decision:?}");
            durable.reply("invoice-7", &pause.key, &decision)?;
        }
        let (resumed, next) = durable.resume("invoice-7")?;
        desk = resumed;
        outcome = next;
    }
    println!(
        "{}",
        desk.messages
            .last()
            .map(Message::content)
            .unwrap_or_default()
    );
    Ok(())
}
