#[path = "support/common.rs"]
mod common;
use common::*;
use slateflow::{Command, Context, Node, NodeError, node};

// `#[node]` reads the actions as the impl writes them: a list of literals.
const PAGING: &[&str] = &["page", "ticket"];

struct Escalate;

#[node]
impl Node<Triage> for Escalate {
    type Prep = ();
    type Exec = ();
    const ACTIONS: &'static [&'static str] = PAGING;

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
