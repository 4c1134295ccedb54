use serde::{Deserialize, Serialize};
use slateflow::SharedState;
use slateflow::agent::message::{Histories, Message};

#[derive(SharedState, Clone, Debug, Default, Serialize, Deserialize)]
#[slateflow(conversation(counters = work))]
struct Desk {
    #[reducer(append)]
    messages: Vec<Message>,
    #[reducer(append)]
    histories: Histories,
}

fn main() {}
