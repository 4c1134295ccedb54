use serde::{Deserialize, Serialize};
use slateflow::SharedState;
use slateflow::agent::message::{Histories, Message};

#[derive(SharedState, Clone, Debug, Default, Serialize, Deserialize)]
#[slateflow(conversation(routing_reason))]
struct Desk {
    #[reducer(append)]
    messages: Vec<Message>,
    #[reducer(append)]
    histories: Histories,
    #[reducer(append)]
    routing_reason: String,
}

fn main() {}
