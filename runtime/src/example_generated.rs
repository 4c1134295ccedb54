//! What `#[derive(SharedState)]` generates, shown on a documented example state. Only built for the
//! documentation: see [`Triage`] and the generated [`TriageUpdate`] with its setters.

use serde::{Deserialize, Serialize};

use crate::SharedState;

/// An example state: a security alert being triaged.
#[derive(SharedState, Clone, Debug, Default, Serialize, Deserialize)]
pub struct Triage {
    /// The alert as received.
    pub alert_text: String,
    /// `intrusion` or `phishing`, once classified.
    pub classification: Option<String>,
    /// How many steps ran.
    #[reducer(add)]
    pub steps: u64,
    /// Findings, in the order the steps made them.
    #[reducer(append)]
    pub findings: Vec<String>,
    /// The highest severity reported, 0 to 10.
    #[reducer(with = keep_max)]
    pub severity: u8,
}

/// The `with` reducer of [`Triage::severity`]: keeps the larger value.
pub fn keep_max(current: &mut u8, new: u8) {
    *current = (*current).max(new);
}
