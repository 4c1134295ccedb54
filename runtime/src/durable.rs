//! Durable runs: every step saved to a [`CheckpointStore`] before the next begins, one writer per
//! thread, resume after a crash, pauses for a human, history.
//!
//! [`Flow::durable`] pairs a flow with a store. A run has a thread id, and claims its thread while
//! it runs: a second worker starting or resuming the same thread gets
//! [`StoreError::Claimed`](crate::checkpoint::StoreError::Claimed) at once and writes nothing.
//! Before the next node starts, the step is saved: the update it applied (the state's update
//! type, as JSON), where it ran (its position in each nested flow), its number, node, action and
//! routing reason. A full snapshot of the state is saved at the start and whenever the updates
//! saved since the last snapshot add up to as many bytes as that snapshot: snapshots never cost
//! more than the updates, so storage grows linearly with what changed, and resuming reads and
//! replays at most about a snapshot's worth of updates. [`Durable::snapshot_every`] adds one at
//! least every `K` steps.
//!
//! - [`Durable::resume`] rebuilds the state from the last snapshot and the updates after it, then
//!   continues from the last saved step: the saved step is never applied twice and its node never
//!   runs again. A run that failed (a node error, a parallel conflict) or was killed resumes the
//!   same way, from its last good step. The step limit counts every step of the thread, across
//!   resumes.
//! - A fork is saved as one step (its merged update), and so is a batch flow. Their parts are kept
//!   as they finish, before the step is saved: each branch of a fork, each run of a batch flow
//!   (sequential or concurrent) is saved as a [`RecordKind::Kept`] record. A resume after a
//!   failure or a crash inside the step runs only the parts that did not finish, then merges all
//!   of them in written order and saves the step once, with the step numbers of an uninterrupted
//!   run. An input at the step ([`Durable::update`], [`Durable::answer`]) discards what was kept,
//!   since it was made from the state before the input. The items of a batch node are kept the
//!   same way when it is made with [`Batch::kept`](crate::batch::Batch::kept) (its items and
//!   outputs serialize); a plain [`Batch`](crate::batch::Batch) keeps nothing.
//! - Pauses. [`Durable::interrupt_before`] / [`interrupt_after`](Durable::interrupt_after) pause
//!   at nodes named by their path (`review`, `inner/check`), including the branches of a fork;
//!   the names are checked against the flow when a run starts, and a name the flow does not have
//!   is an error ([`Error::Interrupt`]), never a skipped approval. A node may also ask a question
//!   ([`Command::ask`](crate::Command::ask)): its step is saved and the run pauses after it. The
//!   run returns [`Outcome::Paused`] with every pending [`Pause`]; the caller answers each by key
//!   ([`Durable::answer`], an update applied through the reducers, counted once) and resumes.
//!   Pauses are saved before they are reported, so a crash at any write neither skips one nor
//!   reports one that was already passed.
//! - Pauses inside the parts of a step: a node in a flow nested in a fork branch, or in a batch
//!   flow's sub-flow, pauses its part. The other branches of a fork, or runs of a concurrent
//!   batch flow, finish (and are kept); the paused part is kept with what it had done and where
//!   it stood, with its pauses, and the run pauses once all are done (a sequential batch flow
//!   pauses at once, its later runs not started). Their keys end with the part
//!   (`asked:inner/ask@3#1`), since the runs of a batch flow share paths. On resume each paused
//!   part goes on from where it stood, on a state that holds the answers, and the step is saved
//!   once. (A sequential batch flow's runs work on the state in place, so the state a paused
//!   [`start`](Durable::start) leaves holds the finished runs and the paused one's progress.)
//!   Forks or batch flows nested inside a part cannot pause yet (an interrupt there is an
//!   [`Error::Interrupt`]; a question, an [`Error::InputRequested`]).
//! - [`Durable::history`] lists a thread's records, [`Durable::state_at`] rebuilds the state at any
//!   step, [`Durable::branch`] starts a new thread from an earlier step, [`Durable::threads`] lists
//!   threads and [`Durable::delete`] removes one.
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
use std::panic::AssertUnwindSafe;
use std::sync::Arc;

use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::checkpoint::{CheckpointStore, RecordKind, Records, RunStatus, StepRecord, ThreadLog};
pub use crate::checkpoint::{Pause, PauseWhen, ThreadInfo};
use crate::error::Error;
use crate::event::{At, Event, KeepFuture, Observer};
use crate::flow::{Flow, FlowGraph};
use crate::graph::Graph;
use crate::node::Node;
use crate::node::dispatch::{Branch, Stepped};
use crate::run::{
    Commit, Entries, Entry, Hook, NoHook, Observe, PartPause, Run, Stopped, Watch, join_path,
    panic_message, pass, path_is,
};
use crate::state::SharedState;

/// How a durable run ended for now.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    /// The run ended with this action.
    Finished(String),
    /// The run is waiting at these pauses (several when fork branches pause together); answer
    /// them ([`Durable::answer`]) and resume.
    Paused(Vec<Pause>),
}

impl Outcome {
    /// The pauses waiting, if the run paused.
    pub fn pauses(&self) -> &[Pause] {
        match self {
            Self::Paused(pauses) => pauses,
            Self::Finished(_) => &[],
        }
    }
}

/// A flow paired with a checkpoint store. Made by [`Flow::durable`].
///
/// ```
/// use serde::{Deserialize, Serialize};
/// use slateflow::checkpoint::MemoryStore;
/// use slateflow::durable::{Outcome, PauseWhen};
/// use slateflow::{Command, SharedState, flow, node};
///
/// #[derive(SharedState, Clone, Debug, Default, Serialize, Deserialize)]
/// struct Refund {
///     amount: u32,
///     approved: Option<bool>,
///     paid: bool,
/// }
///
/// #[node]
/// fn check(refund: &Refund) -> Command<Refund> {
///     Command::goto("default").ask(format!("Pay back {} EUR?", refund.amount))
/// }
///
/// #[node]
/// fn pay(refund: &Refund) -> Command<Refund> {
///     Command::new(Refund::update().set_paid(refund.approved == Some(true)))
/// }
///
/// # tokio::runtime::Builder::new_current_thread().build().unwrap().block_on(async {
/// let refunds = flow! { check >> pay; };
/// let durable = refunds.durable(MemoryStore::new());
/// let mut refund = Refund { amount: 120, ..Refund::default() };
/// let Outcome::Paused(pauses) = durable.start("refund-1", &mut refund).await? else {
///     panic!("the question pauses the run");
/// };
/// assert_eq!(pauses[0].when, PauseWhen::Asked);
/// assert_eq!(pauses[0].asked, Some("Pay back 120 EUR?".into()));
/// // Later, perhaps in another process: answer by key, then resume.
/// durable.answer("refund-1", &pauses[0].key, Refund::update().set_approved(Some(true))).await?;
/// let (refund, outcome) = durable.resume("refund-1").await?;
/// assert!(refund.paid);
/// assert_eq!(outcome, Outcome::Finished("default".into()));
/// # Ok::<(), slateflow::Error>(())
/// # }).unwrap();
/// ```
pub struct Durable<'f, S, G, St> {
    flow: &'f Flow<S, G>,
    name: String,
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
            name: String::new(),
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
    /// Names the flow in the threads it starts (in their start record), so that a
    /// `worker::Worker` (feature `postgres`) that knows a flow by this name can run them: see
    /// [`submit`](Self::submit).
    #[must_use]
    pub fn named(mut self, name: impl Into<String>) -> Self {
        self.name = name.into();
        self
    }

    /// The name given with [`named`](Self::named) (empty when none was).
    pub fn name(&self) -> &str {
        &self.name
    }

    /// Also saves a full snapshot at least every `steps` steps (at least 1): resuming then
    /// replays at most that many updates, at the cost of storage that grows with the state's size
    /// times the steps divided by `steps`.
    #[must_use]
    pub fn snapshot_every(mut self, steps: u64) -> Self {
        self.snapshot_every = Some(steps.max(1));
        self
    }

    /// Pauses before each of these nodes runs. Nodes in nested flows are named by their path
    /// (`inner/check`); naming a branch of a fork pauses before the fork; naming a node inside a
    /// flow nested in a branch (or in a batch flow) pauses that part, after the other parts
    /// finish (see [`durable`](crate::durable)). Checked against the flow when a run starts
    /// or resumes ([`Error::Interrupt`]).
    #[must_use]
    pub fn interrupt_before(mut self, nodes: &[&str]) -> Self {
        self.before
            .extend(nodes.iter().map(|node| (*node).to_string()));
        self
    }

    /// Pauses after each of these nodes' steps is saved (named as for
    /// [`interrupt_before`](Self::interrupt_before)).
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
    /// [`Error::Interrupt`] for an interrupt the flow cannot pause at; [`Error::Store`] when the
    /// thread exists or cannot be written; the run's errors otherwise, after the thread is marked
    /// failed (it can be resumed from its last saved step).
    pub async fn start(&self, thread: &str, state: &mut S) -> Result<Outcome, Error> {
        self.check_interrupts()?;
        let (claim, snapshot_bytes) = self.create(thread, state).await?;
        let resume = Resume {
            steps: 0,
            entries: Entries::default(),
            passing: Vec::new(),
            snapshot_bytes,
            kept: Vec::new(),
        };
        self.drive(claim, thread, state, resume).await
    }

    /// Saves a new thread with `state` as its step 0 and runs nothing: it waits, as
    /// [`RunStatus::Queued`], for a `worker::Worker` (feature `postgres`) that knows this flow's
    /// [name](Self::named), or for anyone to [`resume`](Self::resume) it.
    ///
    /// # Errors
    /// [`Error::Store`] when the thread exists or cannot be written.
    pub async fn submit(&self, thread: &str, state: &S) -> Result<(), Error> {
        let (mut claim, _) = self.create(thread, state).await?;
        self.store
            .set_status(&mut claim, &RunStatus::Queued)
            .await?;
        Ok(())
    }

    /// Creates the thread with its start record, claimed; and the size of its snapshot.
    async fn create(&self, thread: &str, state: &S) -> Result<(St::Claim, usize), Error> {
        let snapshot = snapshot(thread, 0, state)?;
        let snapshot_bytes = json_len(&snapshot);
        let mut first = StepRecord::new(0, RecordKind::Start).with_snapshot(snapshot);
        first.node.clone_from(&self.name);
        let claim = self
            .store
            .create(thread, state_type::<S>(), &[first])
            .await?;
        Ok((claim, snapshot_bytes))
    }

    /// Resumes a thread from its last saved step and runs it until it ends or pauses; returns the
    /// state. A finished thread is not run again. A thread waiting at pauses goes on past them
    /// (answer them first with [`answer`](Self::answer)); one whose pauses were saved but never
    /// reported (its process died first) reports them now instead, running nothing.
    ///
    /// # Errors
    /// As [`start`](Self::start); [`StoreError::Claimed`](crate::checkpoint::StoreError::Claimed)
    /// when another worker runs the thread; [`Error::Resume`] when the saved records do not fit
    /// this flow or state (another state type, an update that does not read back, a position the
    /// flow does not have, a reducer that panics).
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
        self.check_interrupts()?;
        let claim = self.store.claim(thread).await?;
        self.resume_claimed(claim, thread, restore).await
    }

    /// Resumes a thread whose claim the caller took (a worker).
    pub(crate) async fn resume_claimed(
        &self,
        mut claim: St::Claim,
        thread: &str,
        restore: impl FnOnce(&mut S),
    ) -> Result<(S, Outcome), Error> {
        let log = self.load(thread, Records::SinceSnapshot).await?;
        let mut state = rebuild::<S>(thread, &log.records, u64::MAX)?;
        restore(&mut state);
        match &log.status {
            RunStatus::Finished { action } => {
                return Ok((state, Outcome::Finished(action.clone())));
            }
            RunStatus::Cancelled => {
                return Err(Error::Resume {
                    thread: thread.to_string(),
                    step: log.last_step,
                    reason: "the thread was cancelled; branch it to go on".into(),
                });
            }
            _ => {}
        }
        let at = Waiting::at_end(&log.records);
        if !at.pending.is_empty() {
            if !matches!(log.status, RunStatus::Paused { .. } | RunStatus::Queued) {
                // Saved, but its run died before saying so: report it, run nothing.
                let status = paused_status(&at.pending);
                self.store.set_status(&mut claim, &status).await?;
                return Ok((state, Outcome::Paused(at.pending)));
            }
            let passed = StepRecord::new(log.last_step, RecordKind::Resume);
            self.store.append(&mut claim, &passed).await?;
        }
        self.store
            .set_status(&mut claim, &RunStatus::Running)
            .await?;
        let passing = if at.pending.is_empty() {
            at.passed
        } else {
            at.pending
        };
        // The saved step's `entered` leaves out the outermost flow, entered at the start.
        let entries = log
            .records
            .iter()
            .rev()
            .find(|record| record.kind == RecordKind::Step)
            .map(|record| {
                let entered = std::iter::once(0).chain(record.entered.iter().copied());
                Entries::resuming(
                    record.position.clone(),
                    entered.collect(),
                    Some(record.action.clone()),
                )
            })
            .unwrap_or_default();
        let snapshot_bytes = log
            .records
            .iter()
            .rev()
            .find_map(|record| record.snapshot.as_ref())
            .map_or(0, json_len);
        let resume = Resume {
            steps: log.last_step,
            entries,
            passing: passing
                .into_iter()
                .filter(|pause| pause.when == PauseWhen::Before)
                .map(|pause| (pause.node, pause.step))
                .collect(),
            snapshot_bytes,
            kept: at.kept,
        };
        let outcome = self.drive(claim, thread, &mut state, resume).await?;
        Ok((state, outcome))
    }

    /// Answers the pause `key` of a waiting thread with `update` (a human's input): saved as an
    /// input record, applied through the reducers when the thread resumes, and listed in its
    /// history. Each pause takes one answer, however often it was reported. Once every pending
    /// pause of the thread is answered, its status becomes [`RunStatus::Queued`]: a worker takes
    /// it, or anyone resumes it.
    ///
    /// # Errors
    /// [`Error::Resume`] when no pause with that key is waiting (the message lists those that
    /// are) or it was answered already; [`Error::Store`], including a thread another worker runs.
    pub async fn answer(&self, thread: &str, key: &str, update: S::Update) -> Result<(), Error> {
        let mut claim = self.store.claim(thread).await?;
        let log = self.load(thread, Records::SinceSnapshot).await?;
        let at = Waiting::at_end(&log.records);
        let refuse = |reason: String| Error::Resume {
            thread: thread.to_string(),
            step: log.last_step,
            reason,
        };
        let all_answered = |also: &str| {
            at.pending
                .iter()
                .all(|pause| pause.key == also || at.answered.contains(&pause.key))
        };
        if at.answered.iter().any(|answered| answered == key) {
            if all_answered(key) && matches!(log.status, RunStatus::Paused { .. }) {
                // Answered, and the process died before queueing it: queue it now.
                self.store
                    .set_status(&mut claim, &RunStatus::Queued)
                    .await?;
            }
            return Err(refuse(format!(
                "pause `{key}` was answered already; an answer counts once"
            )));
        }
        if !at.pending.iter().any(|pause| pause.key == key) {
            let waiting: Vec<&str> = at.pending.iter().map(|pause| pause.key.as_str()).collect();
            return Err(refuse(format!(
                "no pause `{key}` is waiting; {}",
                if waiting.is_empty() {
                    "none is".to_string()
                } else {
                    format!("these are: {}", waiting.join(", "))
                }
            )));
        }
        let mut input = StepRecord::new(log.last_step, RecordKind::Input);
        input.update = to_json(thread, log.last_step, &update)?;
        input.key = key.to_string();
        self.store.append(&mut claim, &input).await?;
        if all_answered(key) && matches!(log.status, RunStatus::Paused { .. }) {
            // Ready to go on: a worker takes it now.
            self.store
                .set_status(&mut claim, &RunStatus::Queued)
                .await?;
        }
        Ok(())
    }

    /// Adds an update to a thread that is not running and not finished (a correction, or input
    /// that answers no particular pause): saved as an input record and applied through the
    /// reducers when the thread resumes.
    ///
    /// # Errors
    /// [`Error::Store`], including a thread another worker runs; [`Error::Resume`] when the
    /// thread is finished, or was made for another state type.
    pub async fn update(&self, thread: &str, update: S::Update) -> Result<(), Error> {
        let mut claim = self.store.claim(thread).await?;
        let log = self.load(thread, Records::SinceSnapshot).await?;
        if let RunStatus::Finished { .. } | RunStatus::Cancelled = log.status {
            return Err(Error::Resume {
                thread: thread.to_string(),
                step: log.last_step,
                reason: "a finished or cancelled thread takes no update; branch it to go on".into(),
            });
        }
        let mut input = StepRecord::new(log.last_step, RecordKind::Input);
        input.update = to_json(thread, log.last_step, &update)?;
        self.store.append(&mut claim, &input).await?;
        Ok(())
    }

    /// The pauses a thread is waiting at (none when it is not paused).
    ///
    /// # Errors
    /// As [`resume`](Self::resume).
    pub async fn pending(&self, thread: &str) -> Result<Vec<Pause>, Error> {
        let log = self.load(thread, Records::SinceSnapshot).await?;
        Ok(Waiting::at_end(&log.records).pending)
    }

    /// The thread's current state, as saved.
    ///
    /// # Errors
    /// As [`resume`](Self::resume).
    pub async fn state(&self, thread: &str) -> Result<S, Error> {
        let log = self.load(thread, Records::SinceSnapshot).await?;
        rebuild::<S>(thread, &log.records, u64::MAX)
    }

    /// The state as it was after step `step` (and any input saved with it).
    ///
    /// # Errors
    /// As [`resume`](Self::resume).
    pub async fn state_at(&self, thread: &str, step: u64) -> Result<S, Error> {
        let log = self.load(thread, Records::All).await?;
        rebuild::<S>(thread, &log.records, step)
    }

    /// The thread's records, oldest first: each step with its update, node, action and routing
    /// reason; inputs with the pause they answer; pauses and resumes.
    ///
    /// # Errors
    /// As [`resume`](Self::resume).
    pub async fn history(&self, thread: &str) -> Result<Vec<StepRecord>, Error> {
        Ok(self.load(thread, Records::All).await?.records)
    }

    /// The thread's status: [`RunStatus::Interrupted`] when its last run stopped without ending
    /// and nobody runs it now.
    ///
    /// # Errors
    /// As [`resume`](Self::resume).
    pub async fn status(&self, thread: &str) -> Result<RunStatus, Error> {
        Ok(self
            .store
            .load(thread, Records::SinceSnapshot)
            .await?
            .status)
    }

    /// Every thread in the store: id, status (with the keys of its pending pauses), last step and
    /// when it was last written.
    ///
    /// # Errors
    /// [`Error::Store`].
    pub async fn threads(&self) -> Result<Vec<ThreadInfo>, Error> {
        Ok(self.store.threads().await?)
    }

    /// Deletes a thread that nobody runs, with everything saved for it.
    ///
    /// # Errors
    /// [`Error::Store`], including a thread another worker runs.
    pub async fn delete(&self, thread: &str) -> Result<(), Error> {
        let claim = self.store.claim(thread).await?;
        self.store.delete(claim).await?;
        Ok(())
    }

    /// Starts `new_thread` from `thread` as it was after step `step`: the records up to that step
    /// are copied in one go (the new thread exists whole or not at all), and resuming the new
    /// thread continues from there; pauses at that step are reported again. The old thread is
    /// untouched.
    ///
    /// # Errors
    /// As [`resume`](Self::resume); [`Error::Store`] when `new_thread` exists.
    pub async fn branch(&self, thread: &str, step: u64, new_thread: &str) -> Result<(), Error> {
        let log = self.load(thread, Records::All).await?;
        let records: Vec<StepRecord> = log
            .records
            .into_iter()
            .filter(|record| {
                record.step < step
                    || (record.step == step
                        && !matches!(record.kind, RecordKind::Pause | RecordKind::Resume))
            })
            .collect();
        if records.is_empty() {
            return Err(Error::Resume {
                thread: thread.to_string(),
                step,
                reason: "the thread has no records to branch from".into(),
            });
        }
        // Created claimed and released at once: the new thread reads as interrupted, to resume.
        let claim = self
            .store
            .create(new_thread, &log.state_type, &records)
            .await?;
        drop(claim);
        Ok(())
    }

    async fn load(&self, thread: &str, records: Records) -> Result<ThreadLog, Error> {
        let log = self.store.load(thread, records).await?;
        if log.state_type != state_type::<S>() {
            return Err(Error::Resume {
                thread: thread.to_string(),
                step: log.last_step,
                reason: format!(
                    "the thread was saved for the state type `{}`, not `{}`",
                    log.state_type,
                    state_type::<S>()
                ),
            });
        }
        Ok(log)
    }

    /// Checks every interrupt against the flow's nodes.
    pub(crate) fn check_interrupts(&self) -> Result<(), Error> {
        if self.before.is_empty() && self.after.is_empty() {
            return Ok(());
        }
        let mut places = Vec::new();
        pausable(&self.flow.graph(), "", Place::Node, &mut places);
        for (when, names) in [("before", &self.before), ("after", &self.after)] {
            for name in names {
                check_interrupt(when, name, &places)?;
            }
        }
        Ok(())
    }

    /// Runs to the end or a pause, with or without the observer, then saves the status.
    async fn drive(
        &self,
        claim: St::Claim,
        thread: &str,
        state: &mut S,
        resume: Resume,
    ) -> Result<Outcome, Error> {
        match self.observer.as_deref() {
            Some(observer) => {
                self.drive_with(Observe(observer), claim, thread, state, resume)
                    .await
            }
            None => self.drive_with(NoHook, claim, thread, state, resume).await,
        }
    }

    async fn drive_with<H: Hook<S>>(
        &self,
        inner: H,
        mut claim: St::Claim,
        thread: &str,
        state: &mut S,
        resume: Resume,
    ) -> Result<Outcome, Error> {
        let recorder = Recorder {
            store: &*self.store,
            claim: tokio::sync::Mutex::new(&mut claim),
            thread,
            inner,
            entries: resume.entries,
            snapshot_every: self.snapshot_every,
            since_snapshot: 0,
            bytes_since_snapshot: 0,
            snapshot_bytes: resume.snapshot_bytes,
            before: &self.before,
            after: &self.after,
            passing: resume.passing,
            paused: Vec::new(),
            part_paused: std::sync::Mutex::new(Vec::new()),
            pending: None,
            kept_at: resume.steps,
            kept: resume.kept,
            state: PhantomData,
        };
        let mut run = Run::new(recorder, self.flow.params().clone(), resume.steps);
        run.count_limit_from(0);
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
        let mut recorder = run.into_hook();
        let mut paused = std::mem::take(&mut recorder.paused);
        let part_paused = std::mem::take(
            recorder
                .part_paused
                .get_mut()
                .unwrap_or_else(std::sync::PoisonError::into_inner),
        );
        let claim = &mut **recorder.claim.get_mut();
        let status = match &result {
            Ok(action) => RunStatus::Finished {
                action: (*action).to_string(),
            },
            Err(Error::Paused { .. }) => {
                // Pauses before a node are saved now; those after a step were saved with it.
                let before: Vec<Pause> = paused
                    .iter()
                    .filter(|pause| pause.when == PauseWhen::Before)
                    .cloned()
                    .collect();
                if !before.is_empty() {
                    let mut record = StepRecord::new(steps, RecordKind::Pause);
                    record.node = before[0].node.clone();
                    record.pauses = before;
                    self.store.append(claim, &record).await?;
                }
                // Those inside parts were saved with the parts.
                paused.extend(part_paused);
                paused_status(&paused)
            }
            Err(error) => RunStatus::Failed {
                error: error.to_string(),
            },
        };
        self.store.set_status(claim, &status).await?;
        match result {
            Ok(action) => Ok(Outcome::Finished(action.to_string())),
            Err(Error::Paused { .. }) => {
                if H::OBSERVES {
                    for pause in &paused {
                        recorder.inner.event(&Event::RunPaused { pause });
                    }
                }
                Ok(Outcome::Paused(paused))
            }
            Err(error) => Err(error),
        }
    }
}

/// The status of a thread waiting at `pauses`.
fn paused_status(pauses: &[Pause]) -> RunStatus {
    RunStatus::Paused {
        pauses: pauses.iter().map(|pause| pause.key.clone()).collect(),
    }
}

/// The pauses at the end of a thread's records.
#[derive(Debug, Default)]
struct Waiting {
    /// Saved and not yet gone past.
    pending: Vec<Pause>,
    /// Gone past by the last resume at this step: a node before which it paused runs now.
    passed: Vec<Pause>,
    /// The keys of the pauses answered at this step.
    answered: Vec<String>,
    /// Finished parts of the next step (fork branches, batch flow runs), kept since the last
    /// input at this step.
    kept: Vec<StepRecord>,
}

impl Waiting {
    /// Reads the records after the last step (a step's own pauses, then pause, resume and input
    /// records, in order).
    fn at_end(records: &[StepRecord]) -> Self {
        let mut waiting = Self::default();
        let last = records
            .iter()
            .rposition(|record| matches!(record.kind, RecordKind::Step | RecordKind::Start));
        let Some(last) = last else {
            return waiting;
        };
        waiting.pending.clone_from(&records[last].pauses);
        for record in &records[last + 1..] {
            match record.kind {
                RecordKind::Pause => waiting.pending.extend(record.pauses.iter().cloned()),
                RecordKind::Resume => {
                    waiting.passed = std::mem::take(&mut waiting.pending);
                }
                RecordKind::Input => {
                    if !record.key.is_empty() {
                        waiting.answered.push(record.key.clone());
                    }
                    // Made from the state before this input, the parts run again; unless it
                    // answers a part that stopped to ask for it.
                    let answers_a_part = !record.key.is_empty()
                        && waiting
                            .kept
                            .iter()
                            .any(|kept| kept.pauses.iter().any(|pause| pause.key == record.key));
                    if !answers_a_part {
                        waiting.kept.clear();
                    }
                }
                RecordKind::Kept => {
                    // A part that stopped at pauses inside its own flow: they wait like others.
                    waiting.pending.extend(record.pauses.iter().cloned());
                    waiting.kept.push(record.clone());
                }
                _ => {}
            }
        }
        waiting
    }
}

/// Where a node sits, for the interrupts that name it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Place {
    /// A node the run steps through (at any depth of nested flows, or a branch of a fork).
    Node,
    /// A node inside a part of a step: in a flow nested in a fork branch, or in a batch flow's
    /// sub-flow. The part pauses there, and the step once all parts are done.
    Part,
    /// A nested flow (pause at one of its nodes instead).
    Flow,
    /// Where a run cannot pause yet.
    Inside(&'static str),
}

/// Every node path of `graph` under `prefix`, and whether a run can pause there.
fn pausable(graph: &Graph, prefix: &str, place: Place, out: &mut Vec<(String, Place)>) {
    const NESTED_PART: Place =
        Place::Inside("a fork or batch flow inside a fork branch or a batch flow");
    for node in &graph.nodes {
        let path = if prefix.is_empty() {
            node.name.to_string()
        } else {
            format!("{prefix}/{}", node.name)
        };
        let in_branch = graph
            .forks
            .iter()
            .any(|fork| fork.branches.contains(&node.name));
        match &node.flow {
            None if in_branch && place == Place::Part => out.push((path, NESTED_PART)),
            None => out.push((path, place)),
            Some(inner) => {
                out.push((
                    path.clone(),
                    if matches!(place, Place::Node | Place::Part) {
                        Place::Flow
                    } else {
                        place
                    },
                ));
                let parts = inner.batch || in_branch;
                let inner_place = match place {
                    Place::Inside(_) => place,
                    Place::Part if parts => NESTED_PART,
                    _ if parts => Place::Part,
                    _ => place,
                };
                pausable(inner, &path, inner_place, out);
            }
        }
    }
}

fn check_interrupt(
    when: &'static str,
    name: &str,
    places: &[(String, Place)],
) -> Result<(), Error> {
    let problem = |reason: String| Error::Interrupt {
        when,
        name: name.to_string(),
        reason,
    };
    match places.iter().find(|(path, _)| path == name) {
        Some((_, Place::Node | Place::Part)) => Ok(()),
        Some((_, Place::Flow)) => Err(problem(format!(
            "it is a nested flow; name one of its nodes (`{name}/...`)"
        ))),
        Some((_, Place::Inside(what))) => Err(problem(format!(
            "it is inside {what}, where a run cannot pause yet"
        ))),
        None => {
            let nodes: Vec<&str> = places
                .iter()
                .filter(|(_, place)| matches!(place, Place::Node | Place::Part))
                .map(|(path, _)| path.as_str())
                .collect();
            let closest = nodes
                .iter()
                .min_by_key(|node| crate::text::edit_distance(node, name))
                .filter(|node| crate::text::is_near(name, node));
            Err(problem(format!(
                "the flow has no node of that name{}; nodes nested in flows are named by their \
                 path; the nodes are: {}",
                closest.map_or(String::new(), |node| format!(" (did you mean `{node}`?)")),
                nodes.join(", ")
            )))
        }
    }
}

/// Where a run of a thread starts: after `steps` saved steps, at `entries`.
struct Resume {
    steps: u64,
    entries: Entries,
    /// The nodes (paths) before which the thread paused and which it now goes past, with the
    /// steps before them.
    passing: Vec<(String, u64)>,
    /// The size of the last snapshot saved, as JSON.
    snapshot_bytes: usize,
    /// Finished parts of the step after `steps`, kept by an earlier attempt of it.
    kept: Vec<StepRecord>,
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

fn to_json<T: Serialize>(thread: &str, step: u64, update: &T) -> Result<Value, Error> {
    serde_json::to_value(update).map_err(|error| Error::Save {
        thread: thread.to_string(),
        step,
        reason: format!("the update does not serialize: {error}"),
    })
}

/// The state after step `until` (inclusive, with its inputs): the last snapshot at or before it,
/// then the updates after that snapshot. A reducer that panics is an error, not an unwind.
fn rebuild<S: SharedState + DeserializeOwned>(
    thread: &str,
    records: &[StepRecord],
    until: u64,
) -> Result<S, Error> {
    let end = records
        .iter()
        .position(|record| record.step > until)
        .unwrap_or(records.len());
    let records = &records[..end];
    let bad = |step: u64, reason: String| Error::Resume {
        thread: thread.to_string(),
        step,
        reason,
    };
    let start = records
        .iter()
        .rposition(|record| record.snapshot.is_some())
        .ok_or_else(|| bad(0, "no snapshot of the state was saved".into()))?;
    let base = &records[start];
    let mut state: S =
        S::deserialize(base.snapshot.as_ref().unwrap_or(&Value::Null)).map_err(|error| {
            bad(
                base.step,
                format!("the saved state does not read back: {error}"),
            )
        })?;
    for record in &records[start + 1..] {
        if matches!(record.kind, RecordKind::Step | RecordKind::Input) {
            let update = S::Update::deserialize(&record.update).map_err(|error| {
                bad(
                    record.step,
                    format!("the saved update does not read back: {error}"),
                )
            })?;
            std::panic::catch_unwind(AssertUnwindSafe(|| state.apply(update))).map_err(
                |payload| {
                    bad(
                        record.step,
                        format!(
                            "a reducer panicked while the state was rebuilt: {}",
                            panic_message(payload)
                        ),
                    )
                },
            )?;
        }
    }
    Ok(state)
}

/// The hook that makes a run durable: it saves each committed step to the store under the
/// thread's claim, enters flows at the saved position on resume, and pauses at the interrupts.
/// Its events go to `inner` (an observer, or nothing), with a [`Event::StepSaved`] after each
/// save.
struct Recorder<'a, S, St: CheckpointStore, H> {
    store: &'a St,
    /// Locked by the parts of a step that keep their outcomes concurrently; the rest of the run
    /// has it to itself (`get_mut`).
    claim: tokio::sync::Mutex<&'a mut St::Claim>,
    thread: &'a str,
    inner: H,
    /// Where a resumed run goes on, and where the flows around the current node were entered.
    entries: Entries,
    /// A snapshot at least every this many steps, if set.
    snapshot_every: Option<u64>,
    since_snapshot: u64,
    /// The JSON bytes of the updates saved since the last snapshot, and that snapshot's.
    bytes_since_snapshot: usize,
    snapshot_bytes: usize,
    before: &'a [String],
    after: &'a [String],
    /// Nodes a resumed run goes past without pausing, and the steps before them.
    passing: Vec<(String, u64)>,
    /// The pauses this run stopped at.
    paused: Vec<Pause>,
    /// The pauses parts of a step (a fork's branches, a batch flow's runs) stopped
    /// at inside their own flows: saved with the parts, as they stopped.
    part_paused: std::sync::Mutex<Vec<Pause>>,
    /// The update of the step being committed, as JSON: made before the update is applied.
    pending: Option<Value>,
    /// Finished parts of the step after step `kept_at` (the last one saved when the run
    /// resumed), kept by an earlier attempt of it; cleared by the first commit.
    kept: Vec<StepRecord>,
    kept_at: u64,
    state: PhantomData<fn(&S)>,
}

impl<S: SharedState, St: CheckpointStore, H> Recorder<'_, S, St, H> {
    /// The last record kept for part `index` of `container` (nested in `flows`) by an earlier
    /// attempt of the step after step `before`, with its update read back: when the part
    /// `stopped` at pauses, or else when it finished, as asked.
    fn kept_part(
        &self,
        flows: &[&'static str],
        container: &'static str,
        before: u64,
        index: usize,
        stopped: bool,
    ) -> Result<Option<(&StepRecord, S::Update)>, Error> {
        if before != self.kept_at {
            return Ok(None);
        }
        let key = index.to_string();
        let record = self
            .kept
            .iter()
            .rev()
            .find(|record| record.key == key && path_is(&record.node, flows, container));
        let Some(record) = record.filter(|record| record.pauses.is_empty() != stopped) else {
            return Ok(None);
        };
        let update = S::Update::deserialize(&record.update).map_err(|error| Error::Resume {
            thread: self.thread.to_string(),
            step: before,
            reason: format!(
                "the kept {} of part {index} of `{}` does not read back: {error}",
                if stopped { "progress" } else { "outcome" },
                record.node
            ),
        })?;
        Ok(Some((record, update)))
    }
}

impl<S, St: CheckpointStore, H: Watch> Watch for Recorder<'_, S, St, H> {
    const OBSERVES: bool = H::OBSERVES;

    fn event(&self, event: &Event<'_>) {
        self.inner.event(event);
    }

    fn thread(&self) -> Option<&str> {
        Some(self.thread)
    }

    fn kept_item(&self, at: &At<'_>, index: usize) -> Option<Value> {
        let before = at.step.checked_sub(1)?;
        if before != self.kept_at || self.kept.is_empty() {
            return None;
        }
        let key = index.to_string();
        self.kept
            .iter()
            .rev()
            .find(|record| record.key == key && path_is(&record.node, at.flows, at.node))
            .map(|record| record.update.clone())
    }

    fn keep_item<'a>(&'a self, at: At<'a>, index: usize, output: Value) -> KeepFuture<'a> {
        Box::pin(async move {
            let record = StepRecord {
                node: join_path(at.flows, at.node),
                key: index.to_string(),
                update: output,
                ..StepRecord::new(at.step.saturating_sub(1), RecordKind::Kept)
            };
            let mut claim = self.claim.lock().await;
            self.store.append(&mut claim, &record).await?;
            Ok(())
        })
    }
}

impl<S, St, H> Hook<S> for Recorder<'_, S, St, H>
where
    S: SharedState + Serialize,
    St: CheckpointStore,
    H: Hook<S>,
{
    const COMMITS: bool = true;

    fn step<'a, N: Node<S>>(
        run: &'a mut Run<S, Self>,
        node: &'a N,
        state: &'a mut S,
        name: &'static str,
    ) -> impl Future<Output = Stepped> + Send + 'a {
        run.hooked_step(node, state, name)
    }

    /// For a flow being entered on a resumed run: the position to go to and, at the innermost
    /// level, the saved action to route on instead of running the step again.
    fn enter_flow(&mut self, depth: usize, steps: u64) -> Option<Entry> {
        self.entries.enter(depth, steps)
    }

    fn pause_before(&mut self, flows: &[&'static str], name: &'static str, step: u64) -> bool {
        if pass(&mut self.passing, flows, name, step) {
            return false;
        }
        if self.before.iter().any(|node| path_is(node, flows, name)) {
            self.paused
                .push(Pause::new(join_path(flows, name), PauseWhen::Before, step));
            return true;
        }
        false
    }

    fn pause_after(&self) -> bool {
        !self.paused.is_empty()
    }

    fn kept(
        &self,
        flows: &[&'static str],
        container: &'static str,
        before: u64,
        index: usize,
    ) -> Result<Option<(S::Update, u64, &str)>, Error> {
        let kept = self.kept_part(flows, container, before, index, false)?;
        Ok(kept.map(|(record, update)| (update, record.steps, record.action.as_str())))
    }

    fn interrupts(&self, before: bool, flows: &[&'static str], name: &'static str) -> bool {
        let interrupts = if before { self.before } else { self.after };
        interrupts.iter().any(|node| path_is(node, flows, name))
    }

    fn stopped_part(
        &self,
        flows: &[&'static str],
        container: &'static str,
        before: u64,
        index: usize,
    ) -> Result<Option<Stopped<S>>, Error> {
        let Some((record, update)) = self.kept_part(flows, container, before, index, true)? else {
            return Ok(None);
        };
        Ok(Some(Stopped {
            update,
            steps: record.steps,
            positions: record.position.clone(),
            entered: record.entered.clone(),
            action: (!record.action.is_empty()).then(|| record.action.clone()),
            pauses: record
                .pauses
                .iter()
                .map(|pause| PartPause {
                    node: pause.node.clone(),
                    step: pause.step,
                    before: pause.when == PauseWhen::Before,
                    asked: pause.asked.clone(),
                })
                .collect(),
        }))
    }

    async fn keep_stopped<'k>(
        &'k self,
        flows: &'k [&'static str],
        container: &'static str,
        before: u64,
        index: usize,
        stopped: Stopped<S>,
    ) -> Result<(), Error>
    where
        S: 'k,
    {
        let pauses: Vec<Pause> = stopped
            .pauses
            .into_iter()
            .map(|part| {
                let when = match (part.before, &part.asked) {
                    (true, _) => PauseWhen::Before,
                    (false, None) => PauseWhen::After,
                    (false, Some(_)) => PauseWhen::Asked,
                };
                let mut pause = Pause::new(part.node, when, part.step);
                // Runs of a batch flow share their nodes' paths and steps: the part tells them
                // apart.
                pause.key = format!("{}#{index}", pause.key);
                pause.asked = part.asked;
                pause
            })
            .collect();
        let record = StepRecord {
            node: join_path(flows, container),
            key: index.to_string(),
            action: stopped.action.unwrap_or_default(),
            position: stopped.positions,
            entered: stopped.entered,
            update: to_json(self.thread, before, &stopped.update)?,
            steps: stopped.steps,
            pauses,
            ..StepRecord::new(before, RecordKind::Kept)
        };
        let mut claim = self.claim.lock().await;
        self.store.append(&mut claim, &record).await?;
        drop(claim);
        self.part_paused
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .extend(record.pauses);
        Ok(())
    }

    async fn keep<'k>(
        &'k self,
        flows: &'k [&'static str],
        container: &'static str,
        before: u64,
        index: usize,
        outcome: Branch<S>,
    ) -> Result<Branch<S>, Error>
    where
        S: 'k,
    {
        let record = StepRecord {
            node: join_path(flows, container),
            key: index.to_string(),
            action: outcome.action.to_string(),
            update: to_json(self.thread, before, &outcome.update)?,
            steps: outcome.steps,
            ..StepRecord::new(before, RecordKind::Kept)
        };
        let mut claim = self.claim.lock().await;
        self.store.append(&mut claim, &record).await?;
        Ok(outcome)
    }

    fn before_apply(&mut self, step: u64, update: &S::Update) -> Result<(), Error> {
        self.pending = Some(to_json(self.thread, step, update)?);
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
        let names = commit.trail.names();
        let node = names.join("/");
        // The pauses after this step, saved with it.
        let mut pauses = Vec::new();
        if commit.notes.branches.is_empty() {
            let (name, flows) = names.split_last().map_or(("", names), |(n, f)| (*n, f));
            if let Some(asked) = commit.notes.asked {
                let mut pause = Pause::new(node.clone(), PauseWhen::Asked, commit.step);
                pause.asked = Some(asked.clone());
                pauses.push(pause);
            } else if self.after.iter().any(|after| path_is(after, flows, name)) {
                pauses.push(Pause::new(node.clone(), PauseWhen::After, commit.step));
            }
        } else {
            let flows = commit.trail.flows();
            for branch in commit.notes.branches {
                let asked = commit
                    .notes
                    .branch_asks
                    .iter()
                    .find(|(asking, _)| asking == branch);
                if let Some((_, question)) = asked {
                    let mut pause =
                        Pause::new(join_path(flows, branch), PauseWhen::Asked, commit.step);
                    pause.asked = Some(question.clone());
                    pauses.push(pause);
                } else if self.after.iter().any(|after| path_is(after, flows, branch)) {
                    pauses.push(Pause::new(
                        join_path(flows, branch),
                        PauseWhen::After,
                        commit.step,
                    ));
                }
            }
        }
        let record = StepRecord {
            node,
            action: commit.action.to_string(),
            reason: commit.notes.reason.map(str::to_string),
            position: commit.trail.positions().to_vec(),
            entered: self
                .entries
                .entered()
                .get(1..names.len())
                .map(<[u64]>::to_vec)
                .unwrap_or_default(),
            update,
            pauses,
            snapshot,
            ..StepRecord::new(commit.step, RecordKind::Step)
        };
        self.store.append(self.claim.get_mut(), &record).await?;
        self.kept.clear();
        self.paused.extend(record.pauses.iter().cloned());
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
