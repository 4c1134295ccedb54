//! Security-alert triage on a typed shared state.
//!
//! Each step is a plain function that reads the state and returns an update; the state applies it
//! through each field's reducer. Two enrichment steps run "in parallel" on the same snapshot and
//! their updates merge deterministically. The steps are scripted (no model calls): run it with
//! `cargo run -p slateflow-examples --example triage`.

use serde::{Deserialize, Serialize};
use slateflow::{SharedState, StateUpdate};

/// The workflow's state.
#[derive(SharedState, Clone, Debug, Default, Serialize, Deserialize)]
struct Triage {
    /// The alert as received.
    alert_text: String,
    /// `intrusion` or `phishing`, once classified.
    classification: Option<String>,
    /// How many steps ran.
    #[reducer(add)]
    steps: u64,
    /// Findings, in the order the steps made them.
    #[reducer(append)]
    findings: Vec<String>,
    /// The highest severity any step reported, 0 to 10.
    #[reducer(with = keep_max)]
    severity: u8,
    /// The final report.
    report: Option<String>,
}

fn keep_max(current: &mut u8, new: u8) {
    *current = (*current).max(new);
}

fn classify(state: &Triage) -> TriageUpdate {
    let kind = if state.alert_text.contains("login") {
        "intrusion"
    } else {
        "phishing"
    };
    Triage::update()
        .set_classification(Some(kind.into()))
        .add_steps(1)
        .push_findings(format!("classified as {kind}"))
        .reduce_severity(4)
}

fn whois(_: &Triage) -> TriageUpdate {
    Triage::update()
        .add_steps(1)
        .push_findings("whois: domain registered 2 days ago".into())
        .reduce_severity(6)
}

fn geoip(_: &Triage) -> TriageUpdate {
    Triage::update()
        .add_steps(1)
        .push_findings("geoip: login from a country never seen for this user".into())
        .reduce_severity(8)
}

fn report(state: &Triage) -> TriageUpdate {
    let text = format!(
        "{} alert, severity {}/10: {}",
        state.classification.as_deref().unwrap_or("unclassified"),
        state.severity,
        state.findings.join("; ")
    );
    Triage::update().add_steps(1).set_report(Some(text))
}

/// Runs one step on the state, shows what it wrote and applies it.
fn step(
    state: &mut Triage,
    name: &str,
    node: impl FnOnce(&Triage) -> Result<TriageUpdate, slateflow::MergeConflict>,
) -> Result<(), Box<dyn std::error::Error>> {
    let update = node(state)?;
    println!("{name:>10}: {}", serde_json::to_string(&update)?);
    state.apply(update);
    Ok(())
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let mut state = Triage {
        alert_text: "login for admin from 203.0.113.7 at 03:12".into(),
        ..Triage::default()
    };

    step(&mut state, "classify", |state| Ok(classify(state)))?;
    // Both enrichments read the same snapshot; their updates merge in the order written here.
    step(&mut state, "enrich", |state| {
        whois(state).merge(geoip(state))
    })?;
    step(&mut state, "report", |state| Ok(report(state)))?;

    // Two branches that both set a last-write-wins field: refused, whichever finished first.
    let conflict = Triage::update()
        .set_classification(Some("phishing".into()))
        .merge(Triage::update().set_classification(Some("intrusion".into())))
        .unwrap_err();
    println!("\nrefused merge: {conflict}");

    println!("\nfinal state:\n{}", serde_json::to_string_pretty(&state)?);
    println!("\nschema:");
    for field in Triage::FIELDS {
        println!(
            "  {:<15} {:<16} {}",
            field.name(),
            field.type_name(),
            field.reducer()
        );
    }
    Ok(())
}
