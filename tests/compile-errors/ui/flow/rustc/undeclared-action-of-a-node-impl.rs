#[path = "../support/common.rs"]
mod common;
use common::*;
use slateflow::{Node, flow};

// A hand-written node's actions are a value (`ACTIONS`): its edges are checked when the flow is
// built, not by `cargo check`.
struct Escalate;

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
