use serde::{Deserialize, Serialize};
use slateflow::SharedState;

#[derive(SharedState, Debug, Default, Serialize, Deserialize)]
struct Counter {
    #[reducer(append)]
    count: u64,
}

fn main() {}
