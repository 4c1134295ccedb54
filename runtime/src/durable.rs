//! Durable runs: every step saved to a [`CheckpointStore`] before the next begins, resume after a
//! crash, pauses for a human, history.
//!
//! [`Flow::durable`] pairs a flow with a store. A run has a thread id. Before the next node starts,
//! the step is saved: the update it applied (the state's update type, as JSON), where it ran (its
//! position in each nested flow), its number, node and action. A full snapshot of the state is
//! saved at the start, at a pause, at the end, and whenever the updates saved since the last
//! snapshot add up to as many bytes as that snapshot: snapshots never cost more than the updates,
//! so storage grows linearly with what changed (not with the state's size times the steps), and
//! resuming replays at most about a snapshot's worth of updates.
//! [`Durable::snapshot_every`] adds one at least every `K` steps.
//!
//! - [`Durable::resume`] rebuilds the state from the last snapshot and the updates after it, then
//!   continues from the last saved step: the saved step is never applied twice and its node never
//!   runs again. A run that failed (a node error, a parallel conflict) or was killed resumes the
//!   same way, from its last good step.
//! - A fork is saved as one step (its merged update), and so is a batch flow: a crash inside one
//!   runs it again from its start, on the state from before it.
//! - [`Durable::interrupt_before`] / [`interrupt_after`](Durable::interrupt_after) pause at named
//!   nodes (plain nodes, at any depth); the run returns [`Outcome::Paused`]. The caller may add an
//!   update ([`Durable::update`], a human's input, applied through the reducers and listed in the
//!   history as such) and resume; nodes that completed are not run again.
//! - [`Durable::history`] lists a thread's records, [`Durable::state_at`] rebuilds the state at any
//!   step, and [`Durable::branch`] starts a new thread from an earlier step.
//!
//! Fields that cannot be serialized (a channel, a client) are `#[serde(skip)]`: a resumed state
//! has their `Default` value, and [`Durable::resume_with`] lets the caller put them back before any
//! node runs.
//!
//! This module owns what makes a run durable, as a hook on the run (the run module's seam): it saves
//! each committed step, tells the run where to enter each flow on resume, and answers whether to
//! pause at a node. The run knows nothing of it. It stores through [`CheckpointStore`] and knows no
//! storage format; stores know no nodes.

use std::marker::PhantomData;
use std::sync::Arc;

use serde::Serialize;
use serde::de::DeserializeOwned;
use serde_json::Value;

use crate::checkpoint::{CheckpointStore, RecordKind, RunStatus, StepRecord, ThreadLog, now_ms};
use crate::error::Error;
use crate::event::{Event, Observer};
use crate::flow::{Flow, FlowGraph};
use crate::run::{Commit, Hook, NoHook, Observe, Run, Trail, Watch};
use crate::state::SharedState;

/// How a durable run ended for now.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    /// The run ended with this action.
    Finished(String),
    /// The run stopped at an interrupt; resume it to go on.
    Paused(Pause),
}

/// Where a durable run paused.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Pause {
    /// The node (a path through nested flows, `outer/inner`).
    pub node: String,
    /// Whether it paused before the node ran (or after its step was saved).
    pub before: bool,
    /// The last saved step.
    pub step: u64,
}

impl Pause {
    fn status(&self) -> RunStatus {
        RunStatus::Paused {
            at: format!(
                "{} {}",
                if self.before { "before" } else { "after" },
                self.node
            ),
        }
    }

    fn from_status(at: &str, step: u64) -> Option<Self> {
        let (when, node) = at.split_once(' ')?;
        Some(Self {
            node: node.to_string(),
            before: when == "before",
            step,
        })
    }
}

/// One line of a thread's history.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HistoryEntry {
    /// The step number (0 for the initial state).
    pub step: u64,
    /// What the record is: a step, a human's input, the start, a snapshot.
    pub kind: RecordKind,
    /// The node, as a path through nested flows; empty for the start and for input.
    pub node: String,
    /// The action the step returned.
    pub action: String,
    /// When it was saved, in milliseconds since the Unix epoch.
    pub saved_at_ms: u64,
}

/// A flow paired with a checkpoint store. Made by [`Flow::durable`].
pub struct Durable<'f, S, G, St> {
    flow: &'f Flow<S, G>,
    store: Arc<St>,
    snapshot_every: Option<u64>,
    before: Vec<String>,
    after: Vec<String>,
    observer: Option<Arc<dyn Observer>>,
}

impl<S, G> Flow<S, G>
where
    S: SharedState + Serialize + DeserializeOwned + 'static,
    G: FlowGraph<S>,
{
    /// Runs of this flow that save every step to `store`; see [`durable`](crate::durable).
    pub fn durable<St: CheckpointStore + 'static>(&self, store: St) -> Durable<'_, S, G, St> {
        Durable {
            flow: self,
            store: Arc::new(store),
            snapshot_every: None,
            before: Vec::new(),
            after: Vec::new(),
            observer: None,
        }
    }
}

impl<S, G, St> Durable<'_, S, G, St>
where
    S: SharedState + Serialize + DeserializeOwned + 'static,
    G: FlowGraph<S>,
    St: CheckpointStore + 'static,
{
    /// Also saves a full snapshot at least every `steps` steps (at least 1): resuming then
    /// replays at most that many updates, at the cost of storage that grows with the state's size
    /// times the steps divided by `steps`.
    #[must_use]
    pub fn snapshot_every(mut self, steps: u64) -> Self {
        self.snapshot_every = Some(steps.max(1));
        self
    }

    /// Pauses before each of these nodes runs (names as in `flow!`, at any depth).
    #[must_use]
    pub fn interrupt_before(mut self, nodes: &[&str]) -> Self {
        self.before
            .extend(nodes.iter().map(|node| (*node).to_string()));
        self
    }

    /// Pauses after each of these nodes' steps is saved.
    #[must_use]
    pub fn interrupt_after(mut self, nodes: &[&str]) -> Self {
        self.after
            .extend(nodes.iter().map(|node| (*node).to_string()));
        self
    }

    /// Sends the events of every run (start, resume) to `observer`, with
    /// [`Event::StepSaved`] after each saved step and [`Event::RunPaused`] at a pause.
    #[must_use]
    pub fn observe(mut self, observer: impl Observer + 'static) -> Self {
        self.observer = Some(Arc::new(observer));
        self
    }

    /// The store.
    pub fn store(&self) -> &St {
        &self.store
    }

    /// Starts a new thread from `state` (saved as step 0) and runs it until it ends or pauses.
    ///
    /// # Errors
    /// [`Error::Store`] when the thread exists or cannot be written; the run's errors otherwise,
    /// after the thread is marked failed (it can be resumed from its last saved step).
    pub async fn start(&self, thread: &str, state: &mut S) -> Result<Outcome, Error> {
        let snapshot = snapshot(thread, 0, state)?;
        let snapshot_bytes = json_len(&snapshot);
        let first = record(
            0,
            RecordKind::Start,
            "",
            "",
            Vec::new(),
            Value::Null,
            Some(snapshot),
        );
        self.store.create(thread, state_type::<S>(), &first).await?;
        let resume = Resume {
            steps: 0,
            cursor: None,
            pass_before: None,
            snapshot_bytes,
        };
        self.drive(thread, state, resume).await
    }

    /// Resumes a thread from its last saved step and runs it until it ends or pauses; returns the
    /// state. A finished thread is not run again.
    ///
    /// # Errors
    /// As [`start`](Self::start), and [`Error::Resume`] when the saved records do not fit this flow
    /// or state (another state type, an update that does not read back, a position the flow does
    /// not have).
    pub async fn resume(&self, thread: &str) -> Result<(S, Outcome), Error> {
        self.resume_with(thread, |_| {}).await
    }

    /// As [`resume`](Self::resume), calling `restore` on the rebuilt state before any node runs:
    /// the place to put back fields that are `#[serde(skip)]` (a channel, a client).
    ///
    /// # Errors
    /// As [`resume`](Self::resume).
    pub async fn resume_with(
        &self,
        thread: &str,
        restore: impl FnOnce(&mut S),
    ) -> Result<(S, Outcome), Error> {
        let log = self.load(thread).await?;
        let mut state = rebuild::<S>(thread, &log.records, u64::MAX)?;
        restore(&mut state);
        let last_step = log.records.last().map_or(0, |record| record.step);
        match &log.status {
            RunStatus::Finished { action } => {
                return Ok((state, Outcome::Finished(action.clone())));
            }
            RunStatus::Paused { .. } | RunStatus::Running | RunStatus::Failed { .. } => {}
        }
        let pass_before = match &log.status {
            RunStatus::Paused { at } => Pause::from_status(at, last_step)
                .filter(|pause| pause.before)
                .map(|pause| pause.node),
            _ => None,
        };
        let cursor = log
            .records
            .iter()
            .rev()
            .find(|record| record.kind == RecordKind::Step)
            .map(|record| Cursor {
                position: record.position.clone(),
                depth: 0,
                action: record.action.clone(),
            });
        self.store.set_status(thread, &RunStatus::Running).await?;
        let snapshot_bytes = log
            .records
            .iter()
            .rev()
            .find_map(|record| record.snapshot.as_ref())
            .map_or(0, json_len);
        let resume = Resume {
            steps: last_step,
            cursor,
            pass_before,
            snapshot_bytes,
        };
        let outcome = self.drive(thread, &mut state, resume).await?;
        Ok((state, outcome))
    }

    /// Adds an update to a thread that is not running (a human's input at a pause): saved as an
    /// input record and applied through the reducers when the thread resumes.
    ///
    /// # Errors
    /// [`Error::Store`]; [`Error::Resume`] when the thread is running or finished, or was made for
    /// another state type.
    pub async fn update(&self, thread: &str, update: S::Update) -> Result<(), Error> {
        let log = self.load(thread).await?;
        let last = log.records.last().map_or(0, |record| record.step);
        if matches!(log.status, RunStatus::Running | RunStatus::Finished { .. }) {
            return Err(Error::Resume {
                thread: thread.to_string(),
                step: last,
                reason: "only a paused or failed thread takes an update".into(),
            });
        }
        let json = serde_json::to_value(&update).map_err(|error| Error::Save {
            thread: thread.to_string(),
            step: last,
            reason: format!("the update does not serialize: {error}"),
        })?;
        self.store
            .append(
                thread,
                &record(last, RecordKind::Input, "", "", Vec::new(), json, None),
            )
            .await?;
        Ok(())
    }

    /// The thread's current state, as saved.
    ///
    /// # Errors
    /// As [`resume`](Self::resume).
    pub async fn state(&self, thread: &str) -> Result<S, Error> {
        self.state_at(thread, u64::MAX).await
    }

    /// The state as it was after step `step` (and any input saved with it).
    ///
    /// # Errors
    /// As [`resume`](Self::resume).
    pub async fn state_at(&self, thread: &str, step: u64) -> Result<S, Error> {
        let log = self.load(thread).await?;
        rebuild::<S>(thread, &log.records, step)
    }

    /// The thread's records, oldest first.
    ///
    /// # Errors
    /// As [`resume`](Self::resume).
    pub async fn history(&self, thread: &str) -> Result<Vec<HistoryEntry>, Error> {
        let log = self.load(thread).await?;
        Ok(log
            .records
            .into_iter()
            .map(|record| HistoryEntry {
                step: record.step,
                kind: record.kind,
                node: record.node,
                action: record.action,
                saved_at_ms: record.saved_at_ms,
            })
            .collect())
    }

    /// The thread's status.
    ///
    /// # Errors
    /// As [`resume`](Self::resume).
    pub async fn status(&self, thread: &str) -> Result<RunStatus, Error> {
        Ok(self.load(thread).await?.status)
    }

    /// Starts `new_thread` from `thread` as it was after step `step`: the records up to that step
    /// are copied, and resuming the new thread continues from there (the old one is untouched).
    ///
    /// # Errors
    /// As [`resume`](Self::resume); [`Error::Store`] when `new_thread` exists.
    pub async fn branch(&self, thread: &str, step: u64, new_thread: &str) -> Result<(), Error> {
        let log = self.load(thread).await?;
        let mut records = log.records.iter().filter(|record| record.step <= step);
        let Some(first) = records.next() else {
            return Err(Error::Resume {
                thread: thread.to_string(),
                step,
                reason: "the thread has no records to branch from".into(),
            });
        };
        self.store
            .create(new_thread, &log.state_type, first)
            .await?;
        for record in records {
            self.store.append(new_thread, record).await?;
        }
        self.store
            .set_status(
                new_thread,
                &RunStatus::Paused {
                    at: format!("branched from {thread} at step {step}"),
                },
            )
            .await?;
        Ok(())
    }

    async fn load(&self, thread: &str) -> Result<ThreadLog, Error> {
        let log = self.store.load(thread).await?;
        if log.state_type != state_type::<S>() {
            return Err(Error::Resume {
                thread: thread.to_string(),
                step: log.records.last().map_or(0, |record| record.step),
                reason: format!(
                    "the thread was saved for the state type `{}`, not `{}`",
                    log.state_type,
                    state_type::<S>()
                ),
            });
        }
        Ok(log)
    }

    /// Runs to the end or a pause, with or without the observer, then saves a snapshot and the
    /// status.
    async fn drive(&self, thread: &str, state: &mut S, resume: Resume) -> Result<Outcome, Error> {
        match self.observer.as_deref() {
            Some(observer) => {
                self.drive_with(Observe(observer), thread, state, resume)
                    .await
            }
            None => self.drive_with(NoHook, thread, state, resume).await,
        }
    }

    async fn drive_with<H: Hook<S>>(
        &self,
        inner: H,
        thread: &str,
        state: &mut S,
        resume: Resume,
    ) -> Result<Outcome, Error> {
        let recorder = Recorder {
            store: &*self.store,
            thread,
            inner,
            cursor: resume.cursor,
            snapshot_every: self.snapshot_every,
            since_snapshot: 0,
            bytes_since_snapshot: 0,
            snapshot_bytes: resume.snapshot_bytes,
            before: &self.before,
            after: &self.after,
            pass_before: resume.pass_before,
            pending: None,
            state: PhantomData,
        };
        let mut run = Run::new(recorder, self.flow.params().clone(), resume.steps);
        let result = run
            .run(self.flow, state, "")
            .await
            .map_err(|error| match error {
                // The run knows the flow, not the thread.
                Error::Resume {
                    thread: unknown,
                    step,
                    reason,
                } if unknown.is_empty() => Error::Resume {
                    thread: thread.to_string(),
                    step,
                    reason,
                },
                other => other,
            });
        let steps = run.steps();
        let outcome = match result {
            Ok(action) => Outcome::Finished(action.to_string()),
            Err(Error::Paused { node, before, .. }) => {
                let pause = Pause {
                    node: node_path(run.trail(), node),
                    before,
                    step: steps,
                };
                run.hook().event(&Event::RunPaused {
                    node: &pause.node,
                    before,
                    step: steps,
                });
                Outcome::Paused(pause)
            }
            Err(error) => {
                // The thread stays resumable from its last saved step.
                self.store
                    .set_status(
                        thread,
                        &RunStatus::Failed {
                            error: error.to_string(),
                        },
                    )
                    .await?;
                return Err(error);
            }
        };
        let saved_step = match &outcome {
            Outcome::Paused(pause) => pause.step,
            Outcome::Finished(_) => steps,
        };
        let snapshot = snapshot(thread, saved_step, state)?;
        self.store
            .append(
                thread,
                &record(
                    saved_step,
                    RecordKind::Snapshot,
                    "",
                    "",
                    Vec::new(),
                    Value::Null,
                    Some(snapshot),
                ),
            )
            .await?;
        let status = match &outcome {
            Outcome::Finished(action) => RunStatus::Finished {
                action: action.clone(),
            },
            Outcome::Paused(pause) => pause.status(),
        };
        self.store.set_status(thread, &status).await?;
        Ok(outcome)
    }
}

/// Where a run of a thread starts: after `steps` saved steps, at `cursor`.
struct Resume {
    steps: u64,
    cursor: Option<Cursor>,
    /// A run resumed from a pause before this node runs it without pausing again.
    pass_before: Option<String>,
    /// The size of the last snapshot saved, as JSON.
    snapshot_bytes: usize,
}

fn node_path(trail: &Trail, node: &str) -> String {
    let names = trail.names();
    if names.is_empty() {
        node.to_string()
    } else {
        names.join("/")
    }
}
/// The length of `value` as compact JSON, counted without building the text.
fn json_len(value: &Value) -> usize {
    struct Count(usize);
    impl std::io::Write for Count {
        fn write(&mut self, bytes: &[u8]) -> std::io::Result<usize> {
            self.0 += bytes.len();
            Ok(bytes.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }
    let mut count = Count(0);
    let _ = serde_json::to_writer(&mut count, value);
    count.0
}

/// The state type's name, saved with a thread and checked when it is loaded.
fn state_type<S>() -> &'static str {
    std::any::type_name::<S>()
}

fn snapshot<S: Serialize>(thread: &str, step: u64, state: &S) -> Result<Value, Error> {
    serde_json::to_value(state).map_err(|error| Error::Save {
        thread: thread.to_string(),
        step,
        reason: format!(
            "the state does not serialize ({error}); mark fields that cannot be saved \
             `#[serde(skip)]`"
        ),
    })
}

fn record(
    step: u64,
    kind: RecordKind,
    node: &str,
    action: &str,
    position: Vec<u32>,
    update: Value,
    snapshot: Option<Value>,
) -> StepRecord {
    StepRecord {
        step,
        kind,
        node: node.to_string(),
        action: action.to_string(),
        position,
        update,
        snapshot,
        saved_at_ms: now_ms(),
    }
}

/// The state after step `until` (inclusive, with its inputs): the last snapshot at or before it,
/// then the updates after that snapshot.
fn rebuild<S: SharedState + DeserializeOwned>(
    thread: &str,
    records: &[StepRecord],
    until: u64,
) -> Result<S, Error> {
    let records: Vec<&StepRecord> = records
        .iter()
        .filter(|record| record.step <= until)
        .collect();
    let bad = |step: u64, reason: String| Error::Resume {
        thread: thread.to_string(),
        step,
        reason,
    };
    let start = records
        .iter()
        .rposition(|record| record.snapshot.is_some())
        .ok_or_else(|| bad(0, "no snapshot of the state was saved".into()))?;
    let base = records[start];
    let mut state: S =
        serde_json::from_value(base.snapshot.clone().unwrap_or_default()).map_err(|error| {
            bad(
                base.step,
                format!("the saved state does not read back: {error}"),
            )
        })?;
    for record in &records[start + 1..] {
        if matches!(record.kind, RecordKind::Step | RecordKind::Input) {
            let update: S::Update =
                serde_json::from_value(record.update.clone()).map_err(|error| {
                    bad(
                        record.step,
                        format!("the saved update does not read back: {error}"),
                    )
                })?;
            state.apply(update);
        }
    }
    Ok(state)
}

/// Where a resumed run picks up: the saved step's position and action, one flow level at a time.
#[derive(Debug)]
struct Cursor {
    position: Vec<u32>,
    depth: usize,
    action: String,
}

/// The hook that makes a run durable: it saves each committed step to the store, enters flows at
/// the saved position on resume, and pauses at the interrupts. Its events go to `inner` (an
/// observer, or nothing), with a [`Event::StepSaved`] after each save.
struct Recorder<'a, S, St, H> {
    store: &'a St,
    thread: &'a str,
    inner: H,
    cursor: Option<Cursor>,
    /// A snapshot at least every this many steps, if set.
    snapshot_every: Option<u64>,
    since_snapshot: u64,
    /// The JSON bytes of the updates saved since the last snapshot, and that snapshot's.
    bytes_since_snapshot: usize,
    snapshot_bytes: usize,
    before: &'a [String],
    after: &'a [String],
    pass_before: Option<String>,
    /// The update of the step being committed, as JSON: made before the update is applied.
    pending: Option<Value>,
    state: PhantomData<fn(&S)>,
}

impl<S, St: CheckpointStore, H: Watch> Watch for Recorder<'_, S, St, H> {
    const OBSERVES: bool = H::OBSERVES;

    fn event(&self, event: &Event<'_>) {
        self.inner.event(event);
    }

    fn thread(&self) -> Option<&str> {
        Some(self.thread)
    }
}

impl<S, St, H> Hook<S> for Recorder<'_, S, St, H>
where
    S: SharedState + Serialize,
    St: CheckpointStore,
    H: Hook<S>,
{
    const COMMITS: bool = true;

    /// For a flow being entered on a resumed run: the position to go to and, at the innermost
    /// level, the saved action to route on instead of running the step again.
    fn enter_flow(&mut self) -> Option<(usize, Option<String>)> {
        let cursor = self.cursor.as_mut()?;
        let index = *cursor.position.get(cursor.depth)? as usize;
        cursor.depth += 1;
        if cursor.depth == cursor.position.len() {
            let cursor = self.cursor.take()?;
            Some((index, Some(cursor.action)))
        } else {
            Some((index, None))
        }
    }

    fn pause_before(&mut self, _: &Trail, name: &'static str) -> bool {
        if self.pass_before.as_deref() == Some(name) {
            self.pass_before = None;
            return false;
        }
        self.before.iter().any(|node| node == name)
    }

    fn pause_after(&self, _: &Trail, name: &'static str) -> bool {
        self.after.iter().any(|node| node == name)
    }

    fn before_apply(&mut self, step: u64, update: &S::Update) -> Result<(), Error> {
        let json = serde_json::to_value(update).map_err(|error| Error::Save {
            thread: self.thread.to_string(),
            step,
            reason: format!("the update does not serialize: {error}"),
        })?;
        self.pending = Some(json);
        Ok(())
    }

    async fn committed(&mut self, state: &S, commit: Commit<'_>) -> Result<(), Error> {
        let update = self.pending.take().unwrap_or_default();
        self.since_snapshot += 1;
        self.bytes_since_snapshot += json_len(&update);
        let due = self.bytes_since_snapshot >= self.snapshot_bytes
            || self
                .snapshot_every
                .is_some_and(|every| self.since_snapshot >= every);
        let snapshot = if due {
            let snapshot = snapshot(self.thread, commit.step, state)?;
            self.since_snapshot = 0;
            self.bytes_since_snapshot = 0;
            self.snapshot_bytes = json_len(&snapshot);
            Some(snapshot)
        } else {
            None
        };
        let record = StepRecord {
            step: commit.step,
            kind: RecordKind::Step,
            node: commit.trail.names().join("/"),
            action: commit.action.to_string(),
            position: commit.trail.positions().to_vec(),
            update,
            snapshot,
            saved_at_ms: now_ms(),
        };
        self.store.append(self.thread, &record).await?;
        if H::OBSERVES {
            self.inner.event(&Event::StepSaved {
                thread: self.thread,
                step: commit.step,
                node: &record.node,
                action: &record.action,
            });
        }
        Ok(())
    }
}
