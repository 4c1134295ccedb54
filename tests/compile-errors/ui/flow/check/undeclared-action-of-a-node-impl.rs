#[path = "../support/common.rs"]
mod common;
use common::*;
use slateflow::{Node, flow, node};

// With `#[node]` on its impl, a hand-written node's actions are known to `cargo check`.
struct Escalate;

#[node]
impl Node<Triage> for Escalate {
    const ACTIONS: &'static [&'static str] = &["page", "ticket"];
    paging_steps!();
}

fn main() {
    let escalate = Escalate;
    let _flow = flow! {
        classify >> escalate;
        escalate - "email" >> report;
    };
}
