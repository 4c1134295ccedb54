use slateflow::{Command, node};

#[path = "support/common.rs"]
mod common;
use common::Triage;

#[node(timeout = "30 seconds")]
fn classify(_: &Triage) -> Command<Triage> {
    Command::default()
}

fn main() {}
