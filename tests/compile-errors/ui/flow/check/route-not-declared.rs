// A routing agent's edge on an action its routes do not hold is an error at the action, in
// `cargo check`.
use serde::{Deserialize, Serialize};
use slateflow::agent::Agent;
use slateflow::agent::message::{Histories, Message};
use slateflow::agent::model::ScriptedModel;
use slateflow::{Command, SharedState, flow, node};

#[derive(SharedState, Clone, Debug, Default, Serialize, Deserialize)]
#[slateflow(conversation)]
struct Desk {
    #[reducer(append)]
    messages: Vec<Message>,
    #[reducer(append)]
    histories: Histories,
}

slateflow::routes! {
    struct Team = ["research", "finish"];
}

#[node]
fn write(_: &Desk) -> Command<Desk> {
    Command::default()
}

fn main() {
    let supervisor = Agent::new(ScriptedModel::new()).routes::<Team>();
    let _flow = flow! {
        supervisor - "write" >> write;
    };
}
