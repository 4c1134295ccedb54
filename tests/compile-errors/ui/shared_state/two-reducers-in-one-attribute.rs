use serde::{Deserialize, Serialize};
use slateflow::SharedState;

#[derive(SharedState, Debug, Default, Serialize, Deserialize)]
struct Counter {
    #[reducer(add, append)]
    count: Vec<u64>,
}

fn main() {}
