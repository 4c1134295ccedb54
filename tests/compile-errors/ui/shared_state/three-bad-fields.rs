use serde::{Deserialize, Serialize};
use slateflow::SharedState;

// Three mistakes, three errors, one build.
#[derive(SharedState, Debug, Default, Serialize, Deserialize)]
struct Triage {
    #[reducer(sum)]
    count: u64,
    #[reducer]
    messages: Vec<String>,
    #[reducer(with = "keep_max")]
    score: f64,
}

fn main() {}
