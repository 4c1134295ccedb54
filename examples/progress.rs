//! Watching a run: a live progress bar over a batch of "model calls", drawn by a UI task that
//! reads the run's events from a bounded channel. The run never waits for the UI.
//!
//! ```sh
//! cargo run -p slateflow-examples --example progress
//! ```
//!
//! Offline: the model calls are simulated with short sleeps, and one of them fails once so that a
//! retry shows up in the log.

use std::io::Write as _;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use serde::{Deserialize, Serialize};
use slateflow::batch::{Batch, BatchNode};
use slateflow::event::{self, OwnedEvent};
use slateflow::{Command, Context, NodeError, Retry, SharedState, flow, node};

#[derive(SharedState, Clone, Debug, Default, Serialize, Deserialize)]
struct Digest {
    documents: Vec<String>,
    #[reducer(append)]
    summaries: Vec<String>,
    verdict: Option<String>,
}

/// Summarises every document, eight at a time (a rate limit), retrying a failed call once.
struct Summarise {
    failed_once: AtomicBool,
}

impl BatchNode<Digest> for Summarise {
    type Item = String;
    type Output = String;

    fn retry(&self) -> Retry {
        Retry::attempts(2).wait(Duration::from_millis(20))
    }

    async fn prep(&self, digest: &Digest, _: &Context<'_>) -> Result<Vec<String>, NodeError> {
        Ok(digest.documents.clone())
    }

    async fn exec(&self, document: &String) -> Result<String, NodeError> {
        // A model call in real life; here a short wait that varies with the document.
        let millis = 15 + (document.len() as u64 * 7) % 40;
        tokio::time::sleep(Duration::from_millis(millis)).await;
        if document.ends_with("13") && !self.failed_once.swap(true, Ordering::Relaxed) {
            return Err("the model timed out".into());
        }
        Ok(format!("{document} in brief"))
    }

    async fn post(
        &self,
        _: &Digest,
        _: Vec<String>,
        summaries: Vec<String>,
        _: &Context<'_>,
    ) -> Result<Command<Digest>, NodeError> {
        Ok(Command::new(Digest::update().extend_summaries(summaries)))
    }
}

#[node(actions = ["publish", "review"])]
fn judge(digest: &Digest) -> Command<Digest> {
    let complete = digest.summaries.len() == digest.documents.len();
    let action = if complete { "publish" } else { "review" };
    Command::new(Digest::update().set_verdict(Some(action.into())))
        .with_action(action)
        .with_reason(format!(
            "{} of {} documents summarised",
            digest.summaries.len(),
            digest.documents.len()
        ))
}

/// Draws the progress bar and logs the other events, as a UI would.
async fn show(mut events: event::EventStream) {
    let mut stderr = std::io::stderr();
    while let Some(event) = events.recv().await {
        match event {
            OwnedEvent {
                kind: "batch_item_finished",
                progress: Some((finished, total)),
                ..
            } => {
                let width = 30;
                let filled = finished * width / total;
                let _ = write!(
                    stderr,
                    "\r  [{}{}] {finished}/{total}",
                    "#".repeat(filled),
                    "-".repeat(width - filled)
                );
                if finished == total {
                    let _ = writeln!(stderr);
                }
            }
            OwnedEvent {
                kind: "node_started",
                ..
            } => {}
            other => {
                let _ = writeln!(stderr, "\r{}", other.text);
            }
        }
    }
    if events.dropped() > 0 {
        let _ = writeln!(
            stderr,
            "({} events dropped: the UI fell behind)",
            events.dropped()
        );
    }
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let summarise = Batch::items(Summarise {
        failed_once: AtomicBool::new(false),
    })
    .concurrent(8);
    let digest_flow = flow! { summarise >> judge; };
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_time()
        .build()?;
    let mut digest = Digest {
        documents: (1..=40).map(|number| format!("report {number}")).collect(),
        ..Digest::default()
    };

    let (sender, events) = event::channel(256);
    let ui = runtime.spawn(show(events));
    let action = runtime.block_on(digest_flow.observe(sender).run(&mut digest))?;
    // The observer (and with it the channel's sender) is dropped with the run: the UI drains
    // what is left and ends.
    runtime.block_on(ui)?;

    println!(
        "{action}: {} summaries, verdict {:?}",
        digest.summaries.len(),
        digest.verdict
    );
    assert_eq!(digest.summaries.len(), 40);
    Ok(())
}
