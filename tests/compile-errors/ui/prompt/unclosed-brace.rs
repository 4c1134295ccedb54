use slateflow::prompt;

#[path = "support/state.rs"]
mod state;
use state::Triage;

fn main() {
    let _ = prompt!(Triage, "Investigate {classification");
}
