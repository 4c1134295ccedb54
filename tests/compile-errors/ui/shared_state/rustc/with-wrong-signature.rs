use serde::{Deserialize, Serialize};
use slateflow::SharedState;

fn keep_max(current: f64, new: f64) -> f64 {
    current.max(new)
}

#[derive(SharedState, Debug, Default, Serialize, Deserialize)]
struct Scores {
    #[reducer(with = keep_max)]
    best: f64,
}

fn main() {}
