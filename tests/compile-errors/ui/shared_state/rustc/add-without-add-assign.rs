use serde::{Deserialize, Serialize};
use slateflow::SharedState;

#[derive(SharedState, Debug, Default, Serialize, Deserialize)]
struct Counter {
    #[reducer(add)]
    label: String,
}

fn main() {}
