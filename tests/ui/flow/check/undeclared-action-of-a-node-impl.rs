#[path = "../support/common.rs"]
mod common;
use common::*;
use slateflow::{Command, Context, Node, NodeError, flow, node};

// With `#[node]` on its impl, a hand-written node's actions are known to `cargo check`.
struct Escalate;

#[node]
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
