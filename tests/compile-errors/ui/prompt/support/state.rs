// Shared by the prompt UI cases: a state with a few fields.
use serde::{Deserialize, Serialize};
use slateflow::SharedState;

#[derive(SharedState, Clone, Debug, Default, Serialize, Deserialize)]
pub struct Triage {
    pub alert_text: String,
    pub classification: Option<String>,
    pub severity: Option<String>,
}
