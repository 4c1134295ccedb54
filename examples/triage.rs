//! Security-alert triage: classify an alert, enrich it with two lookups that run in parallel, route
//! it to an investigator or a phishing check, write a report, and send it back for revision once if
//! the reviewer finds it thin.
//!
//! The nodes are scripted (no model calls, no API key): each reads the state and returns an update
//! plus the action that picks the next node. The run is durable: every step is saved to the
//! `triage-runs` folder before the next begins, and the program ends by saying how to resume it.
//! Run it with `cargo run -p slateflow-examples --example triage`.

use serde::{Deserialize, Serialize};
use slateflow::checkpoint::{FileStore, RecordKind};
use slateflow::durable::Outcome;
use slateflow::{Command, Context, Node, NodeError, Retry, SharedState, flow, node};

/// The workflow's state.
#[derive(SharedState, Clone, Debug, Default, Serialize, Deserialize)]
struct Triage {
    /// The alert as received.
    alert_text: String,
    /// `intrusion` or `phishing`, once classified.
    classification: Option<String>,
    /// What the enrichment lookups found about the source, in the order they are wired.
    #[reducer(append)]
    context: Vec<String>,
    /// Findings, in the order the nodes made them.
    #[reducer(append)]
    findings: Vec<String>,
    /// The highest severity any node reported, 0 to 10.
    #[reducer(with = keep_max)]
    severity: u8,
    /// How many times the report was revised.
    #[reducer(add)]
    revisions: u32,
    /// The report.
    report: Option<String>,
    /// One line per step, for the printout.
    #[reducer(append)]
    steps: Vec<String>,
}

fn keep_max(current: &mut u8, new: u8) {
    *current = (*current).max(new);
}

/// A line for the step log.
fn log(node: &str, what: impl std::fmt::Display) -> TriageUpdate {
    Triage::update().push_steps(format!("{node:>12}: {what}"))
}

/// Classifies the alert. A real node would ask a model; this one looks for keywords.
struct Classify;

impl Node<Triage> for Classify {
    type Prep = String;
    type Exec = &'static str;

    /// Model calls fail now and then: try three times, waiting between attempts.
    fn retry(&self) -> Retry {
        Retry::attempts(3).wait(std::time::Duration::from_millis(200))
    }

    async fn prep(&self, triage: &Triage, _: &Context<'_>) -> Result<String, NodeError> {
        Ok(triage.alert_text.to_lowercase())
    }

    async fn exec(&self, alert: &String) -> Result<&'static str, NodeError> {
        Ok(if alert.contains("login") || alert.contains("ssh") {
            "intrusion"
        } else {
            "phishing"
        })
    }

    async fn post(
        &self,
        _: &Triage,
        _: String,
        kind: &'static str,
        context: &Context<'_>,
    ) -> Result<Command<Triage>, NodeError> {
        let update = log(context.node(), format!("classified as {kind}"))
            .set_classification(Some(kind.to_string()))
            .reduce_severity(3);
        Ok(Command::new(update))
    }
}

/// Routes on the classification.
#[node(actions = ["intrusion", "phishing"])]
fn route(triage: &Triage) -> Result<Command<Triage>, NodeError> {
    let kind = triage
        .classification
        .as_deref()
        .ok_or("the alert was not classified")?;
    let action = if kind == "intrusion" {
        "intrusion"
    } else {
        "phishing"
    };
    Ok(Command::new(log("route", format!("-> {action}")))
        .with_action(action)
        .with_reason(format!("classification is {kind}")))
}

/// Looks the source address up in a WHOIS database (scripted). Runs in parallel with `geoip`.
#[node]
fn whois(_: &Triage) -> Command<Triage> {
    let found = "203.0.113.7 belongs to a hosting provider";
    Command::new(log("whois", found).push_context(found.to_string()))
}

/// Locates the source address (scripted). Runs in parallel with `whois`.
#[node]
fn geoip(_: &Triage) -> Command<Triage> {
    let found = "203.0.113.7 is in a country the user never logged in from";
    Command::new(
        log("geoip", found)
            .push_context(found.to_string())
            .reduce_severity(4),
    )
}

/// Looks into an intrusion; finds more on a second pass.
#[node]
fn investigate(triage: &Triage) -> Command<Triage> {
    let finding = if triage.revisions == 0 {
        "login from a country never seen for this user"
    } else {
        "same source address probed ssh on 14 other hosts"
    };
    let update = log("investigate", finding)
        .push_findings(finding.to_string())
        .reduce_severity(if triage.revisions == 0 { 6 } else { 8 });
    Command::new(update)
}

/// Checks a suspected phishing message.
#[node]
fn phish_check(_: &Triage) -> Command<Triage> {
    let finding = "sender domain registered 2 days ago";
    Command::new(
        log("phish_check", finding)
            .push_findings(finding.to_string())
            .reduce_severity(5),
    )
}

/// Writes the report; asks for one revision when it rests on a single finding.
#[node(actions = ["done", "revise"])]
fn report(triage: &Triage) -> Command<Triage> {
    let kind = triage.classification.as_deref().unwrap_or("unclassified");
    let text = format!(
        "{kind} alert, severity {}/10: {} (context: {})",
        triage.severity,
        triage.findings.join("; "),
        triage.context.join("; ")
    );
    if triage.findings.len() < 2 && kind == "intrusion" {
        return Command::new(log("report", "one finding only: revise").add_revisions(1))
            .with_action("revise")
            .with_reason("a single finding is too thin for an intrusion");
    }
    Command::new(log("report", "done").set_report(Some(text))).with_action("done")
}

/// Where the example saves its runs: a folder in the current directory.
const RUNS: &str = "triage-runs";

/// `triage` starts a new run; `triage resume <thread>` resumes (or shows) a saved one.
fn main() {
    if let Err(error) = run() {
        eprintln!("error: {error}");
        std::process::exit(1);
    }
}

fn run() -> Result<(), Box<dyn std::error::Error>> {
    let classify = Classify;
    let triage = flow! {
        classify >> [whois, geoip] >> route; // both lookups run at once, then merge in this order
        route - "intrusion" >> investigate >> report;
        route - "phishing" >> phish_check >> report;
        report - "revise" >> investigate;
    };
    // Every step is saved to the folder before the next starts: a killed run resumes there.
    // `blocking()`: the durable calls for a synchronous program, on a runtime of their own.
    let durable = triage.durable(FileStore::open(RUNS)?).blocking()?;

    let arguments: Vec<String> = std::env::args().skip(1).collect();
    let (thread, state, outcome) = match arguments.as_slice() {
        [command, thread] if command == "resume" => {
            let (state, outcome) = durable.resume(thread)?;
            (thread.clone(), state, outcome)
        }
        [] => {
            let thread = format!("alert-{}", slateflow::checkpoint::now_ms());
            let mut state = Triage {
                alert_text: "Login for admin from 203.0.113.7 at 03:12".into(),
                ..Triage::default()
            };
            let outcome = durable.start(&thread, &mut state)?;
            (thread, state, outcome)
        }
        _ => return Err("usage: triage [resume <thread>]".into()),
    };

    println!("steps:");
    for line in &state.steps {
        println!("{line}");
    }
    match &outcome {
        Outcome::Finished(action) => println!("\nthe run ended on the action \"{action}\""),
        Outcome::Paused(pauses) => {
            for pause in pauses {
                println!("\nthe run paused {} `{}`", pause.when.as_str(), pause.node);
            }
        }
    }
    println!("\nfinal state:\n{}", serde_json::to_string_pretty(&state)?);
    println!("\ngraph (Mermaid):\n{}", triage.mermaid());
    // A fork is saved as one record whose number is its last step: its two branches are steps 2
    // and 3. Each branch's outcome was also kept as it finished (a `Kept` record), so that a crash
    // inside the fork does not run a finished branch again; the file store keeps those records.
    println!("\nsaved steps (a fork counts one step per branch; kept branch outcomes not shown):");
    let mut previous = 0;
    for entry in durable.history(&thread)? {
        if matches!(entry.kind, RecordKind::Kept | RecordKind::Discard) {
            continue;
        }
        let reason = entry
            .reason
            .map_or(String::new(), |reason| format!(" ({reason})"));
        let steps = if entry.kind == RecordKind::Step && entry.step > previous + 1 {
            format!("{}-{}", previous + 1, entry.step)
        } else {
            entry.step.to_string()
        };
        previous = entry.step;
        println!(
            "  {steps:>5} {:?} {} {}{reason}",
            entry.kind, entry.node, entry.action
        );
    }
    println!(
        "\nthe run is saved in {RUNS}/{thread}/; resume it (after a crash, say) or show it with:\n  \
         cargo run -p slateflow-examples --example triage -- resume {thread}"
    );
    Ok(())
}
