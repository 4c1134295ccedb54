use serde::{Deserialize, Serialize};
use slateflow::SharedState;
use slateflow::agent::message::Message;

#[derive(SharedState, Debug, Default, Serialize, Deserialize)]
#[slateflow(conversation)]
struct Chat {
    #[reducer(append)]
    messages: Vec<Message>,
}

fn main() {}
