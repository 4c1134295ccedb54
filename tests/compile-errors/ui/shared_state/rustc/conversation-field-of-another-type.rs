use serde::{Deserialize, Serialize};
use slateflow::SharedState;
use slateflow::agent::message::Message;

#[derive(SharedState, Debug, Default, Serialize, Deserialize)]
#[slateflow(conversation(messages = chat, histories = agents))]
struct Chat {
    #[reducer(append)]
    chat: Vec<Message>,
    #[reducer(append)]
    agents: Vec<Message>,
}

fn main() {}
