use serde::{Deserialize, Serialize};
use slateflow::{Command, SharedState, flow, node};

/// A state that is not `Clone`: a flow with a fork cannot run on it.
#[derive(SharedState, Debug, Default, Serialize, Deserialize)]
pub struct Billing {
    #[reducer(add)]
    pub total: u32,
}

#[node]
fn start(_: &Billing) -> Command<Billing> {
    Command::default()
}

#[node]
fn charge(_: &Billing) -> Command<Billing> {
    Command::new(Billing::update().add_total(1))
}

#[node]
fn refund(_: &Billing) -> Command<Billing> {
    Command::default()
}

fn main() {
    let flow = flow! {
        start >> [charge, refund];
    };
    // Using the flow adds no error of its own: the one above says it all.
    let mut state = Billing::default();
    let _run = flow.run(&mut state);
}
