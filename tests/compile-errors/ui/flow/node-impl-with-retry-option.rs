#[path = "support/common.rs"]
mod common;
use common::*;
use slateflow::{Node, node};

// On an impl, the retry policy is the impl's `retry()`.
struct Escalate;

#[node(attempts = 3)]
impl Node<Triage> for Escalate {
    const ACTIONS: &'static [&'static str] = &["page", "ticket"];
    paging_steps!();
}

fn main() {
    let _ = Escalate;
}
