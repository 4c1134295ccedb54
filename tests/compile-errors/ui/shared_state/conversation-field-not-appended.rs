use serde::{Deserialize, Serialize};
use slateflow::SharedState;
use slateflow::agent::message::{Histories, Message};

#[derive(SharedState, Debug, Default, Serialize, Deserialize)]
#[slateflow(conversation)]
struct Chat {
    messages: Vec<Message>,
    #[reducer(append)]
    histories: Histories,
}

fn main() {}
