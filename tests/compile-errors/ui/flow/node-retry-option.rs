use slateflow::{Command, node};

#[path = "support/common.rs"]
mod common;
use common::Triage;

#[node(retry = 3)]
fn classify(_: &Triage) -> Command<Triage> {
    Command::default()
}

fn main() {}
