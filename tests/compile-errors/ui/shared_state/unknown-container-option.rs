use serde::{Deserialize, Serialize};
use slateflow::SharedState;

#[derive(SharedState, Debug, Default, Serialize, Deserialize)]
#[slateflow(krate = slateflow)]
struct Counter {
    count: u64,
}

fn main() {}
