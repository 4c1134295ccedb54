#[path = "../support/common.rs"]
mod common;
use common::*;
use slateflow::flow;

use serde::{Deserialize, Serialize};
use slateflow::{Command, SharedState, node};

#[derive(SharedState, Debug, Default, Serialize, Deserialize)]
pub struct Billing {
    pub total: u32,
}

#[node]
fn charge(_: &Billing) -> Command<Billing> {
    Command::default()
}

fn main() {
    let flow = flow! {
        classify >> charge;
    };
    // Using the flow adds no error of its own: the one above says it all.
    let mut state = Triage::default();
    let _run = flow.run(&mut state);
}
