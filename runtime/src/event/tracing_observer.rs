//! [`TracingObserver`]: a run's events as `tracing` spans and events (feature `tracing`).

use std::collections::HashMap;
use std::sync::Mutex;

use tracing::{Level, Span, field};

use super::{At, Event, Observer};

/// Turns a run's events into `tracing` spans and events (feature `tracing`): a `slateflow.run`
/// span per run (field `thread`, as the conversation id of the OpenTelemetry `GenAI`
/// conventions), a `slateflow.step` span per node step inside it (fields `node`, `step`,
/// `attempt`, `action`, `reason`), and an event for each retry, custom event, flow end without
/// an edge, saved step and pause. The step's span is entered while the node's code runs, so
/// that what the node logs with `tracing` (and what its HTTP client logs) nests in it. Use one
/// observer per run.
///
/// ```
/// # #[cfg(feature = "tracing")] {
/// let observer = slateflow::event::TracingObserver::new();
/// # let _ = observer; }
/// ```
#[derive(Debug, Default)]
pub struct TracingObserver {
    run: Mutex<Option<Span>>,
    /// Open step spans by step and node: a nested flow in a branch of a fork numbers its
    /// steps on from its branch's, so a number alone can be shared.
    steps: Mutex<HashMap<(u64, &'static str), Span>>,
}

impl TracingObserver {
    /// A new observer.
    pub fn new() -> Self {
        Self::default()
    }

    fn run_span(&self) -> Span {
        self.run
            .lock()
            .ok()
            .and_then(|run| run.clone())
            .unwrap_or_else(Span::none)
    }

    fn step_span(&self, step: u64, node: &'static str) -> Span {
        self.steps
            .lock()
            .ok()
            .and_then(|steps| steps.get(&(step, node)).cloned())
            .unwrap_or_else(|| self.run_span())
    }
}

impl Observer for TracingObserver {
    /// Enters the step's span around each poll of the node's code: its own logs nest in it.
    fn in_step(&self, at: &At<'_>, work: &mut dyn FnMut()) {
        self.step_span(at.step, at.node).in_scope(work);
    }

    fn on_event(&self, event: &Event<'_>) {
        match event {
            Event::RunStarted {
                thread,
                first_step,
                max_steps,
            } => {
                let span = tracing::span!(
                    Level::INFO,
                    "slateflow.run",
                    thread = thread.unwrap_or(""),
                    gen_ai.conversation.id = thread.unwrap_or(""),
                    first_step,
                    max_steps,
                );
                if let Ok(mut run) = self.run.lock() {
                    *run = Some(span);
                }
            }
            Event::NodeStarted { at, attempt } if *attempt > 1 => {
                // A later attempt runs in its step's span.
                self.step_span(at.step, at.node).record("attempt", attempt);
            }
            Event::NodeStarted { at, attempt } => {
                let parent = self.run_span();
                let span = tracing::span!(
                    parent: &parent,
                    Level::INFO,
                    "slateflow.step",
                    node = %at,
                    step = at.step,
                    fork = at.fork.unwrap_or(""),
                    attempt,
                    action = field::Empty,
                    reason = field::Empty,
                );
                if let Ok(mut steps) = self.steps.lock() {
                    steps.insert((at.step, at.node), span);
                }
            }
            Event::Retry {
                at,
                attempt,
                error,
                wait,
            } => {
                let span = self.step_span(at.step, at.node);
                tracing::event!(parent: &span, Level::WARN, attempt, error = %error, wait = ?wait, "attempt failed; retrying");
            }
            Event::NodeFinished {
                at, action, reason, ..
            } => {
                let span = self
                    .steps
                    .lock()
                    .ok()
                    .and_then(|mut steps| steps.remove(&(at.step, at.node)));
                if let Some(span) = span {
                    span.record("action", *action);
                    if let Some(reason) = reason {
                        span.record("reason", *reason);
                    }
                }
            }
            Event::Custom { at, name, data } => {
                let span = self.step_span(at.step, at.node);
                tracing::event!(parent: &span, Level::DEBUG, name, data = %data, "custom event");
            }
            Event::NoEdge { at, action, wired } => {
                let span = self.run_span();
                tracing::event!(parent: &span, Level::WARN, node = %at, action, wired = ?wired, "flow ends: the action has no edge");
            }
            Event::StepSaved { step, node, .. } => {
                let span = self.run_span();
                tracing::event!(parent: &span, Level::DEBUG, step, node, "step saved");
            }
            Event::RunPaused { pause } => {
                let span = self.run_span();
                tracing::event!(
                    parent: &span,
                    Level::INFO,
                    node = pause.node,
                    when = pause.when.as_str(),
                    step = pause.step,
                    key = pause.key,
                    "run paused"
                );
            }
            Event::RunFinished { action, steps } => {
                let span = self.run_span();
                tracing::event!(parent: &span, Level::INFO, action, steps, "run finished");
                self.close();
            }
            Event::RunFailed { error, steps } => {
                let span = self.run_span();
                tracing::event!(parent: &span, Level::ERROR, error = %error, steps, "run failed");
                self.close();
            }
            Event::BatchItemFinished { .. }
            | Event::ForkStarted { .. }
            | Event::ForkJoined { .. } => {}
        }
    }
}

impl TracingObserver {
    fn close(&self) {
        if let Ok(mut steps) = self.steps.lock() {
            steps.clear();
        }
        if let Ok(mut run) = self.run.lock() {
            *run = None;
        }
    }
}
