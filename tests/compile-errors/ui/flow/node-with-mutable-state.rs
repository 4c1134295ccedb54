use slateflow::{Command, node};

#[path = "support/common.rs"]
mod common;
use common::Triage;

#[node]
fn classify(state: &mut Triage) -> Command<Triage> {
    let _ = state;
    Command::default()
}

fn main() {}
