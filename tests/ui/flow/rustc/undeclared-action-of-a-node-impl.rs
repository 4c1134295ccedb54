#[path = "../support/common.rs"]
mod common;
use common::*;
use slateflow::{Command, Context, Node, NodeError, flow};

// A hand-written node's actions are a value (`ACTIONS`): its edges are checked when the flow is
// built, not by `cargo check`.
struct Escalate;

impl Node<Triage> for Escalate {
    type Prep = ();
    type Exec = ();
    const ACTIONS: &'static [&'static str] = &["page", "ticket"];

    async fn prep(&self, _: &Triage, _: &Context<'_>) -> Result<(), NodeError> {
        Ok(())
    }

    async fn exec(&self, (): &()) -> Result<(), NodeError> {
        Ok(())
    }

    async fn post(
        &self,
        _: &Triage,
        (): (),
        (): (),
        _: &Context<'_>,
    ) -> Result<Command<Triage>, NodeError> {
        Ok(Command::goto("page"))
    }
}

fn main() {
    let escalate = Escalate;
    let _flow = flow! {
        classify >> escalate;
        escalate - "email" >> report;
    };
}
