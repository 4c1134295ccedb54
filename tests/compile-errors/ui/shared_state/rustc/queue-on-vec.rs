use serde::{Deserialize, Serialize};
use slateflow::SharedState;

#[derive(SharedState, Debug, Default, Serialize, Deserialize)]
struct Mail {
    #[reducer(queue)]
    inbox: Vec<String>,
}

fn main() {}
