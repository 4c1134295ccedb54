use serde::{Deserialize, Serialize};
use slateflow::SharedState;

#[derive(SharedState, Debug, Default, Serialize, Deserialize)]
struct Scores {
    #[reducer(with =)]
    best: f64,
}

fn main() {}
