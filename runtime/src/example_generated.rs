//! What `#[derive(SharedState)]` generates, shown on a documented example state. Only built for the
//! documentation: see [`Triage`] and the generated [`TriageUpdate`] with its setters.

use serde::{Deserialize, Serialize};

use crate::SharedState;

/// An example state: a security alert being triaged.
///
/// ```
/// # use serde::{Deserialize, Serialize};
/// # use slateflow::{SharedState, StateUpdate};
/// # #[derive(SharedState, Clone, Debug, Default, Serialize, Deserialize)]
/// # pub struct Triage {
/// #     pub alert_text: String,
/// #     pub classification: Option<String>,
/// #     #[reducer(add)]
/// #     pub steps: u64,
/// #     #[reducer(append)]
/// #     pub findings: Vec<String>,
/// #     #[reducer(with = keep_max)]
/// #     pub severity: u8,
/// # }
/// # pub fn keep_max(current: &mut u8, new: u8) { *current = (*current).max(new); }
/// // (The state above, derived in this example as on this page.)
/// let mut triage = Triage { alert_text: "login from a new country".into(), ..Triage::default() };
/// triage.apply(Triage::update().add_steps(1).push_findings("geo-ip mismatch".into()));
/// assert_eq!((triage.steps, triage.findings.len()), (1, 1));
/// ```
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
///
/// ```
/// # use serde::{Deserialize, Serialize};
/// # use slateflow::{SharedState, StateUpdate};
/// # #[derive(SharedState, Clone, Debug, Default, Serialize, Deserialize)]
/// # pub struct Triage {
/// #     pub alert_text: String,
/// #     pub classification: Option<String>,
/// #     #[reducer(add)]
/// #     pub steps: u64,
/// #     #[reducer(append)]
/// #     pub findings: Vec<String>,
/// #     #[reducer(with = keep_max)]
/// #     pub severity: u8,
/// # }
/// # pub fn keep_max(current: &mut u8, new: u8) { *current = (*current).max(new); }
/// // `reduce_severity` goes through `keep_max`: the larger value stays.
/// let mut triage = Triage::default();
/// triage.apply(Triage::update().reduce_severity(7));
/// triage.apply(Triage::update().reduce_severity(3));
/// assert_eq!(triage.severity, 7);
/// ```
pub fn keep_max(current: &mut u8, new: u8) {
    *current = (*current).max(new);
}
