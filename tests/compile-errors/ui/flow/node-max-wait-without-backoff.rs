use slateflow::{Command, node};

#[path = "support/common.rs"]
mod common;
use common::Triage;

#[node(attempts = 3, max_wait = "5s")]
fn classify(_: &Triage) -> Command<Triage> {
    Command::default()
}

fn main() {}
