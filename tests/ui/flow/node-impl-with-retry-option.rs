#[path = "support/common.rs"]
mod common;
use common::*;
use slateflow::{Command, Context, Node, NodeError, node};

// On an impl, the retry policy is the impl's `retry()`.
struct Escalate;

#[node(attempts = 3)]
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
    let _ = Escalate;
}
