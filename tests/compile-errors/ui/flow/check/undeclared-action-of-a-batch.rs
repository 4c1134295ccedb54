#[path = "../support/common.rs"]
mod common;
use common::*;
use slateflow::batch::{Batch, BatchNode};
use slateflow::{Command, Context, NodeError, flow, node};

// A batch of a `#[node]` batch node declares the batch node's actions.
struct Doubler;

#[node]
impl BatchNode<Triage> for Doubler {
    type Item = u32;
    type Output = u32;

    async fn prep(&self, _: &Triage, _: &Context<'_>) -> Result<Vec<u32>, NodeError> {
        Ok(vec![1, 2])
    }

    async fn exec(&self, item: &u32) -> Result<u32, NodeError> {
        Ok(item * 2)
    }

    async fn post(
        &self,
        _: &Triage,
        _: Vec<u32>,
        _: Vec<u32>,
        _: &Context<'_>,
    ) -> Result<Command<Triage>, NodeError> {
        Ok(Command::default())
    }
}

fn main() {
    let doubler = Batch::items(Doubler).concurrent(2);
    let _flow = flow! {
        classify >> doubler;
        doubler - "partial" >> report;
    };
}
