use serde::{Deserialize, Serialize};
use slateflow::SharedState;

#[derive(SharedState, Default, Serialize, Deserialize)]
struct Odd {
    #[reducer(add)]
    count: u32,
    __slateflow_overwrites: u64,
}

fn main() {}
