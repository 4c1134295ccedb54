//! Recipe: a command-line program that asks a person to approve, on the blocking durable API.
//!
//! Refund requests run as durable threads in a file store. A node asks a question when a refund
//! is large (`Command::ask`): the thread pauses, saved. The program lists what waits, asks on the
//! terminal, saves each answer (`answer`) and resumes the thread, which reads the answer from its
//! state. No async code: `durable.blocking()` gives every call in blocking form. The threads
//! would wait the same way for a program started tomorrow, on another machine with the folder.
//!
//! ```sh
//! cargo run -p slateflow-examples --example approval
//! printf 'yes\nno\n' | cargo run -p slateflow-examples --example approval   # scripted
//! ```

use std::io::{BufRead, Write};

use serde::{Deserialize, Serialize};
use slateflow::checkpoint::{FileStore, RunStatus};
use slateflow::durable::Outcome;
use slateflow::{Command, SharedState, flow, node};

#[derive(SharedState, Clone, Debug, Default, Serialize, Deserialize)]
struct Refund {
    customer: String,
    amount: u32,
    /// The person's answer, when one was needed.
    approved: Option<bool>,
    outcome: String,
}

/// Small refunds go through; large ones ask a person.
#[node(actions = ["pay", "decide"])]
fn assess(refund: &Refund) -> Command<Refund> {
    if refund.amount <= 50 {
        return Command::new(Refund::update().set_approved(Some(true))).with_action("pay");
    }
    Command::new(Refund::update())
        .with_action("decide")
        .ask(serde_json::json!(format!(
            "Refund {} EUR to {}? (yes/no)",
            refund.amount, refund.customer
        )))
}

/// Reads the answer the person gave.
#[node(actions = ["pay", "refuse"])]
fn decide(refund: &Refund) -> Command<Refund> {
    let action = if refund.approved == Some(true) {
        "pay"
    } else {
        "refuse"
    };
    Command::goto(action)
}

#[node]
fn pay(refund: &Refund) -> Command<Refund> {
    Command::new(Refund::update().set_outcome(format!("paid {} EUR", refund.amount)))
}

#[node]
fn refuse(_: &Refund) -> Command<Refund> {
    Command::new(Refund::update().set_outcome("refused".into()))
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let flow = flow! {
        assess - "pay" >> pay;
        assess - "decide" >> decide;
        decide - "pay" >> pay;
        decide - "refuse" >> refuse;
    };
    let folder = std::env::temp_dir().join(format!("slateflow-approval-{}", std::process::id()));
    let durable = flow.durable(FileStore::open(&folder)?);
    let durable = durable.blocking()?;

    for (thread, customer, amount) in [
        ("r-1", "Ada", 30),
        ("r-2", "Brian", 120),
        ("r-3", "Chen", 900),
    ] {
        let mut refund = Refund {
            customer: customer.into(),
            amount,
            ..Refund::default()
        };
        durable.start(thread, &mut refund)?;
    }

    let stdin = std::io::stdin();
    let mut lines = stdin.lock().lines();
    for thread in durable.threads()? {
        if !matches!(thread.status, RunStatus::Paused { .. }) {
            continue;
        }
        for pause in durable.pending(&thread.id)? {
            print!("{}: {} ", thread.id, pause.question().unwrap_or_default());
            std::io::stdout().flush()?;
            // No terminal (end of input): the safe answer.
            let line = lines.next().transpose()?.unwrap_or_default();
            let yes = matches!(line.trim(), "y" | "yes");
            println!("{}", if yes { "-> yes" } else { "-> no" });
            durable.answer(
                &thread.id,
                &pause.key,
                Refund::update().set_approved(Some(yes)),
            )?;
        }
        let (_, outcome) = durable.resume(&thread.id)?;
        assert_eq!(outcome, Outcome::Finished("default".into()));
    }

    for thread in durable.threads()? {
        let refund = durable.state(&thread.id)?;
        println!("{} {}: {}", thread.id, refund.customer, refund.outcome);
    }
    std::fs::remove_dir_all(&folder)?;
    Ok(())
}
