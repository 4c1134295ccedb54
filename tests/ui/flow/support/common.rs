// Shared by the flow UI cases: a state and a few nodes.
use serde::{Deserialize, Serialize};
use slateflow::{Command, SharedState, node};

#[derive(SharedState, Clone, Debug, Default, Serialize, Deserialize)]
pub struct Triage {
    #[reducer(add)]
    pub steps: u32,
}

#[node]
pub fn classify(_: &Triage) -> Command<Triage> {
    Command::new(Triage::update().add_steps(1))
}

#[node(actions = ["intrusion", "phishing"])]
pub fn route(_: &Triage) -> Command<Triage> {
    Command::goto("intrusion")
}

#[node]
pub fn investigate(_: &Triage) -> Command<Triage> {
    Command::default()
}

#[node]
pub fn report(_: &Triage) -> Command<Triage> {
    Command::default()
}
