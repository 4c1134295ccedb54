use slateflow::prompt;

#[path = "support/state.rs"]
mod state;
use state::Triage;

fn main() {
    let _ = prompt!(Triage, "Reply as a JSON object: \"risk\": 1}");
}
