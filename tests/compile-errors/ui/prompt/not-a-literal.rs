use slateflow::prompt;

#[path = "support/state.rs"]
mod state;
use state::Triage;

const TEMPLATE: &str = "Investigate {alert_text}";

fn main() {
    let _ = prompt!(Triage, TEMPLATE);
}
