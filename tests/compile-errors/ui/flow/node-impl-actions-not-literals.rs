#[path = "support/common.rs"]
mod common;
use common::*;
use slateflow::{Node, node};

// `#[node]` reads the actions as the impl writes them: a list of literals.
const PAGING: &[&str] = &["page", "ticket"];

struct Escalate;

#[node]
impl Node<Triage> for Escalate {
    const ACTIONS: &'static [&'static str] = PAGING;
    paging_steps!();
}

fn main() {
    let _ = Escalate;
}
