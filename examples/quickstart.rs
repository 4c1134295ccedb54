//! A support flow: classify a ticket, then refund it or answer it.
//! `cargo run -p slateflow-examples --example quickstart`

use serde::{Deserialize, Serialize};
use slateflow::{Command, SharedState, flow, node};

/// The state the nodes share. A node reads it and returns an update: only what it writes.
#[derive(SharedState, Debug, Default, Serialize, Deserialize)]
struct Ticket {
    text: String,
    category: Option<String>,
    #[reducer(append)] // each update adds lines to the log
    log: Vec<String>,
}

/// Picks the next node by the action it returns.
#[node(actions = ["refund", "answer"])]
fn classify(ticket: &Ticket) -> Command<Ticket> {
    let category = if ticket.text.contains("refund") {
        "refund"
    } else {
        "answer"
    };
    let update = Ticket::update()
        .set_category(Some(category.to_string()))
        .push_log(format!("classified as {category}"));
    Command::new(update).with_action(category)
}

#[node]
fn refund(ticket: &Ticket) -> Command<Ticket> {
    Command::new(Ticket::update().push_log(format!("refunded: {}", ticket.text)))
}

#[node]
fn answer(_: &Ticket) -> Command<Ticket> {
    Command::new(Ticket::update().push_log("answered".to_string()))
}

fn main() -> Result<(), slateflow::Error> {
    // Checked when it compiles: every action has a node, every node exists.
    let support = flow! {
        classify - "refund" >> refund;
        classify - "answer" >> answer;
    };
    let mut ticket = Ticket {
        text: "I want a refund for order 42".to_string(),
        ..Ticket::default()
    };
    support.run_blocking(&mut ticket)?;
    for line in &ticket.log {
        println!("{line}");
    }
    Ok(())
}
