//! Threads followed as they change: the events of the runs the studio makes, as they happen, and
//! each thread's saved changes, whoever made them, read through the store.
//!
//! `GET /api/threads/{id}/events` is a stream of server-sent events:
//! - `changed`, with `{"status", "step", "updated_at_ms"}`: at once, then whenever the thread's
//!   status, last step or last write changes, whoever runs it (this studio, or a worker
//!   elsewhere), read through the store four times a second;
//! - `run`, with the event as JSON ([`OwnedEvent`]: `kind`, `node`, `step`, `text`...): each event
//!   of a run this studio started, resumed or answered, as it happens (a node started, a retry, a
//!   node's own event, a node finished, a step saved);
//! - `gone`, when the thread is deleted, ending the stream.

use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;

use futures_util::Stream;
use serde_json::json;
use tokio::sync::broadcast;

use crate::checkpoint::{CheckpointStore, Records, StoreError};
use crate::event::{Event, Observer, OwnedEvent};

/// The server-sent events of a stream, each whole (`event: ...\ndata: ...\n\n`).
pub(super) type Events = Pin<Box<dyn Stream<Item = String> + Send>>;

/// A run's event, as JSON, with its thread.
pub(super) type RunEvent = Arc<(String, String)>;

/// How many run events wait for a slow reader before the oldest are dropped for it.
pub(super) const BACKLOG: usize = 1024;

/// How often a stream reads its thread again.
const WATCH_EVERY: Duration = Duration::from_millis(250);

/// After how many quiet reads a stream sends a comment, so that proxies keep it open.
const QUIET_READS: u32 = 60;

/// Sends the events of a run of `thread` to every stream that follows it.
pub(super) struct Relay {
    pub(super) thread: String,
    pub(super) sender: broadcast::Sender<RunEvent>,
}

impl Observer for Relay {
    fn on_event(&self, event: &Event<'_>) {
        // Nobody follows the thread now: nothing to send, nothing to build.
        if self.sender.receiver_count() == 0 {
            return;
        }
        if let Ok(json) = serde_json::to_string(&OwnedEvent::from(event)) {
            let _ = self.sender.send(Arc::new((self.thread.clone(), json)));
        }
    }
}

/// The stream of `thread`'s events, from the store and from the studio's runs.
pub(super) fn events<St: CheckpointStore + 'static>(
    store: Arc<St>,
    thread: &str,
    runs: broadcast::Receiver<RunEvent>,
) -> Events {
    let mut every = tokio::time::interval(WATCH_EVERY);
    every.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let watch = Watch {
        store,
        thread: thread.to_string(),
        runs: Some(runs),
        every,
        last: None,
        quiet: 0,
    };
    Box::pin(futures_util::stream::unfold(
        Some(watch),
        |watch| async move {
            let mut watch = watch?;
            let event = watch.next().await;
            let gone = event.starts_with("event: gone");
            Some((event, (!gone).then_some(watch)))
        },
    ))
}

/// What a stream follows: a thread, and what it last said of it.
struct Watch<St> {
    store: Arc<St>,
    thread: String,
    /// The studio's runs' events; `None` once the studio stopped.
    runs: Option<broadcast::Receiver<RunEvent>>,
    every: tokio::time::Interval,
    last: Option<String>,
    quiet: u32,
}

impl<St: CheckpointStore> Watch<St> {
    /// The next event: the thread as saved, at once; then a run's event as it comes, or a
    /// change read through the store (or a comment after a quiet while).
    async fn next(&mut self) -> String {
        loop {
            let run = async {
                match self.runs.as_mut() {
                    Some(runs) => Some(runs.recv().await),
                    None => std::future::pending().await,
                }
            };
            tokio::select! {
                received = run => match received {
                    Some(Ok(event)) if event.0 == self.thread => {
                        return format!("event: run\ndata: {}\n\n", event.1);
                    }
                    // Another thread's, or events dropped for a slow reader: the store still
                    // says where the thread stands.
                    Some(Ok(_) | Err(broadcast::error::RecvError::Lagged(_))) => {}
                    Some(Err(broadcast::error::RecvError::Closed)) | None => self.runs = None,
                },
                _ = self.every.tick() => {
                    if let Some(event) = self.look().await {
                        return event;
                    }
                }
            }
        }
    }

    /// Reads the thread: an event when it changed (or was deleted), a comment after a quiet
    /// while, else nothing.
    async fn look(&mut self) -> Option<String> {
        let seen = match self.store.load(&self.thread, Records::SinceSnapshot).await {
            Ok(log) => json!({
                "status": log.status.name(),
                "step": log.last_step,
                "updated_at_ms": log.records.last().map_or(0, |record| record.saved_at_ms),
            })
            .to_string(),
            Err(StoreError::UnknownThread { .. }) => {
                return Some(format!(
                    "event: gone\ndata: {}\n\n",
                    json!({ "thread": self.thread })
                ));
            }
            // A store that cannot be read now (a database away) may be at the next look.
            Err(error) => json!({ "error": error.to_string() }).to_string(),
        };
        if self.last.as_ref() != Some(&seen) {
            self.quiet = 0;
            let event = format!("event: changed\ndata: {seen}\n\n");
            self.last = Some(seen);
            return Some(event);
        }
        self.quiet += 1;
        if self.quiet >= QUIET_READS {
            self.quiet = 0;
            return Some(": still watching\n\n".into());
        }
        None
    }
}
