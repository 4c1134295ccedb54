use slateflow::node;

#[path = "../support/common.rs"]
mod common;
use common::Triage;

#[node]
fn classify(_: &Triage) -> String {
    String::new()
}

fn main() {}
