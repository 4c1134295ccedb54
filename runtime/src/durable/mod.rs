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
//! least every `K` steps. [`Durable::durability`] trades that for throughput: steps written
//! several at a time, in one write, a crash then taking back at most one write's worth (see
//! [`Durability`] for the exact promise of each mode).
//!
//! - [`Durable::resume`] rebuilds the state from the last snapshot and the updates after it, then
//!   continues from the last saved step: the saved step is never applied twice and its node never
//!   runs again. A run that failed (a node error, a parallel conflict) or was killed resumes the
//!   same way, from its last good step. The step limit counts every step of the thread, across
//!   resumes.
//! - A fork is saved as one step (its merged update), and so is a batch flow. Their parts are
//!   kept as they finish, before the step is saved: each branch of a fork, each run of a batch
//!   flow (sequential or concurrent) is saved as a [`RecordKind::Kept`] record (removed once the
//!   step is saved: [`CheckpointStore::compact`]). A resume after
//!   a failure or a crash inside the step runs only the parts that did not finish, then merges
//!   all of them in written order and saves the step once, with the step numbers of an
//!   uninterrupted run. An input at the step ([`Durable::update`], [`Durable::answer`])
//!   discards what was kept, since it was made from the state before the input. Branches whose
//!   updates do not merge (two wrote one last-write-wins field) are not kept: the fork fails
//!   after a [`RecordKind::Discard`] record voids them, and a resume runs them again, with the
//!   code it has then (a conflict with outcomes kept by an earlier attempt runs those branches
//!   again at once, so a fix deployed in between is used, and a crash between the failure and
//!   its record cannot fail the thread twice). A branch that fails keeps its finished siblings.
//!   The items of a batch node are kept the same way when it is made with
//!   [`Batch::kept`](crate::batch::Batch::kept) (its items and outputs serialize); a plain
//!   [`Batch`](crate::batch::Batch) keeps nothing.
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
//!   This holds at any depth: a fork or batch flow nested in a part keeps its own parts while
//!   the part runs, and a part that stops inside one is kept with them (its record's
//!   [`parts`](StepRecord::parts)), so that on resume nothing that finished runs again. The
//!   keys then end with the part at each level, innermost first (`asked:mid/deep/ask@3#0#1`).
//!   A merge that fails inside a part that had stopped voids what it kept of that step's parts,
//!   as at the top, and a question already answered is not asked again when its part runs
//!   again.
//! - [`Durable::history`] lists a thread's records, [`Durable::state_at`] rebuilds the state at any
//!   step, [`Durable::branch`] starts a new thread from an earlier step, [`Durable::threads`] lists
//!   threads and [`Durable::delete`] removes one.
//!
//! - Every call has a blocking form for synchronous programs (a command-line tool that asks a
//!   person): [`Durable::blocking`].
//!
//! Fields that cannot be serialized (a channel, a client) are `#[serde(skip)]`: a resumed state
//! has their `Default` value, and [`Durable::restore`] puts them back before any node runs, in
//! every resume and every worker's run.
//!
//! This module owns what makes a run durable, as the run's journal (the run module's seam): the
//! [`Durable`] calls (here), the journal that saves each committed step and keeps the parts of a
//! step (`recorder`), pauses inside those parts (`parts`), the interrupts and their check
//! (`interrupts`), rebuilding a thread from its records and the resume cursors (`resume`), and the
//! blocking forms (`blocking`). The run knows nothing of it. It stores through
//! [`CheckpointStore`] and knows no storage format; stores know no nodes.

mod blocking;
mod durability;
mod interrupts;
mod parts;
mod recorder;
mod resume;

use std::marker::PhantomData;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use serde::Serialize;
use serde::de::DeserializeOwned;

pub use blocking::Blocking;
pub use durability::Durability;
use interrupts::Interrupts;
use recorder::Recorder;
use resume::{
    Entries, Resume, Waiting, json_len, paused_status, rebuild, snapshot, state_type, to_json,
};

use crate::checkpoint::{
    CheckpointStore, FlowField, FlowInfo, RecordKind, Records, RunStatus, StepRecord, ThreadLog,
    Verified,
};
pub use crate::checkpoint::{Pause, PauseWhen, ThreadInfo};
use crate::error::Error;
use crate::event::{At, Event, Observer};
use crate::flow::{Flow, FlowGraph, Observed};
use crate::run::{NoWatch, Observe, Run, Watch};
use crate::state::SharedState;

/// How a durable run ended for now.
///
/// ```
/// # use serde::{Deserialize, Serialize};
/// # use slateflow::{Command, SharedState, flow, node};
/// # #[derive(SharedState, Clone, Debug, Default, Serialize, Deserialize)]
/// # struct Counter { #[reducer(add)] count: u32, label: String }
/// # #[node]
/// # fn count(_: &Counter) -> Command<Counter> { Command::new(Counter::update().add_count(1)) }
/// use slateflow::checkpoint::MemoryStore;
/// use slateflow::durable::Outcome;
///
/// let flow = flow! { count; };
/// let durable = flow.durable(MemoryStore::new()).interrupt_before(&["count"]);
/// let durable = durable.blocking()?;
/// let outcome = durable.start("t-1", &mut Counter::default())?;
/// assert_eq!(outcome.pauses()[0].node, "count");
/// let (counter, outcome) = durable.resume("t-1")?;
/// assert_eq!(outcome, Outcome::Finished("default".into()));
/// assert_eq!(counter.count, 1);
/// # Ok::<(), slateflow::Error>(())
/// ```
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

/// A run of a thread in flight, as a worker or a studio polls it with others: the run, and its
/// thread, handed back with the outcome.
#[cfg(any(feature = "postgres", feature = "studio"))]
pub(crate) struct ThreadRun<'a> {
    pub(crate) thread: String,
    pub(crate) run: std::pin::Pin<Box<dyn Future<Output = Result<Outcome, Error>> + Send + 'a>>,
}

#[cfg(any(feature = "postgres", feature = "studio"))]
impl Future for ThreadRun<'_> {
    type Output = (String, Result<Outcome, Error>);

    fn poll(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Self::Output> {
        self.run
            .as_mut()
            .poll(cx)
            .map(|result| (self.thread.clone(), result))
    }
}

/// Creates `new_thread` in `store` from `log`, the whole history of `thread`, as it was after
/// step `step` ([`Durable::branch`]), whatever its state type.
pub(crate) async fn branch_log<St: CheckpointStore>(
    store: &St,
    thread: &str,
    log: ThreadLog,
    step: u64,
    new_thread: &str,
) -> Result<(), Error> {
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
    let claim = store.create(new_thread, &log.state_type, &records).await?;
    drop(claim);
    Ok(())
}

/// What answers a pause: an update to the state, or a reply to a question asked inside a step.
enum Answering<U> {
    Update(U),
    Reply(serde_json::Value),
}

/// Two observers of one run: the flow's, then one for this run alone.
struct Both<'a>(&'a dyn Observer, &'a dyn Observer);

impl Observer for Both<'_> {
    fn on_event(&self, event: &Event<'_>) {
        self.0.on_event(event);
        self.1.on_event(event);
    }

    fn in_step(&self, at: &At<'_>, work: &mut dyn FnMut()) {
        self.0.in_step(at, &mut || self.1.in_step(at, work));
    }
}

/// The pauses a thread whose records end with `records` stopped at, read without the state's
/// type: those not answered yet, and the keys of those answered (the thread goes past them when
/// it resumes).
#[cfg(feature = "studio")]
pub(crate) fn pending_in(records: &[StepRecord]) -> (Vec<Pause>, Vec<String>) {
    let Waiting {
        mut pending,
        answered,
        ..
    } = Waiting::at_end(records);
    pending.retain(|pause| !answered.contains(&pause.key));
    (pending, answered)
}

/// The keys of the pauses at the end of `records` that were asked inside a step
/// ([`Context::interrupt`](crate::Context::interrupt)): answered with a reply, not an update.
#[cfg(feature = "studio")]
pub(crate) fn asked_inside(records: &[StepRecord]) -> Vec<String> {
    Waiting::at_end(records)
        .kept
        .iter()
        .filter(|kept| kept.key.starts_with("ask:"))
        .flat_map(|kept| kept.pauses.iter().map(|pause| pause.key.clone()))
        .collect()
}

/// The name of the state type `S` as threads record it.
#[cfg(feature = "studio")]
pub(crate) fn state_type_of<S>() -> &'static str {
    state_type::<S>()
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
    durability: Durability,
    interrupts: Interrupts,
    /// The observer given to [`Flow::observe`], if the runs are watched.
    observer: Option<Box<dyn Observer + 'f>>,
    /// What puts back a rebuilt state's unsaved fields.
    restore: Option<Restore<'f, S>>,
    /// Whether this flow's description was saved to the store ([`FlowInfo`]).
    flow_saved: AtomicBool,
}

/// What [`Durable::restore`] keeps.
type Restore<'f, S> = Box<dyn Fn(&mut S) + Send + Sync + 'f>;

impl<S, G> Flow<S, G>
where
    S: SharedState + Serialize + DeserializeOwned + 'static,
    G: FlowGraph<S>,
{
    /// Runs of this flow that save every step to `store`; see [`durable`](crate::durable). To
    /// watch them, start from [`Flow::observe`]: `flow.observe(observer).durable(store)`.
    pub fn durable<St: CheckpointStore + 'static>(&self, store: St) -> Durable<'_, S, G, St> {
        Durable::new(self, store, None)
    }
}

impl<'f, S, G, O> Observed<'f, S, G, O>
where
    S: SharedState + Serialize + DeserializeOwned + 'static,
    G: FlowGraph<S>,
    O: Observer + 'f,
{
    /// Durable runs of the flow whose events go to this observer, with
    /// [`Event::StepSaved`] after each saved step and [`Event::RunPaused`] at a pause.
    ///
    /// ```
    /// use std::sync::Mutex;
    /// use serde::{Deserialize, Serialize};
    /// use slateflow::checkpoint::MemoryStore;
    /// use slateflow::event::{self, Event};
    /// use slateflow::{Command, SharedState, flow, node};
    ///
    /// #[derive(SharedState, Debug, Default, Serialize, Deserialize)]
    /// struct Count {
    ///     #[reducer(add)]
    ///     n: u32,
    /// }
    ///
    /// #[node]
    /// fn bump(_: &Count) -> Command<Count> {
    ///     Command::new(Count::update().add_n(1))
    /// }
    ///
    /// let flow = flow! { bump; };
    /// let saved = Mutex::new(Vec::new());
    /// let observer = event::from_fn(|event: &Event<'_>| {
    ///     if let Event::StepSaved { step, node, .. } = event {
    ///         saved.lock().unwrap().push(format!("{node}@{step}"));
    ///     }
    /// });
    /// let durable = flow.observe(&observer).durable(MemoryStore::new());
    /// durable.blocking()?.start("count-1", &mut Count::default())?;
    /// assert_eq!(*saved.lock().unwrap(), ["bump@1"]);
    /// # Ok::<(), slateflow::Error>(())
    /// ```
    pub fn durable<St: CheckpointStore + 'static>(self, store: St) -> Durable<'f, S, G, St> {
        let (flow, observer) = self.into_parts();
        Durable::new(flow, store, Some(Box::new(observer)))
    }
}

impl<'f, S, G, St> Durable<'f, S, G, St>
where
    S: SharedState + Serialize + DeserializeOwned + 'static,
    G: FlowGraph<S>,
    St: CheckpointStore + 'static,
{
    fn new(flow: &'f Flow<S, G>, store: St, observer: Option<Box<dyn Observer + 'f>>) -> Self {
        Self {
            flow,
            name: String::new(),
            store: Arc::new(store),
            snapshot_every: None,
            durability: Durability::EveryStep,
            interrupts: Interrupts::default(),
            observer,
            restore: None,
            flow_saved: AtomicBool::new(false),
        }
    }

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

    /// How often the runs write their steps: each before the next node starts (the default), or
    /// several at a time, for throughput; see [`Durability`] for what a crash can take back.
    #[must_use]
    pub fn durability(mut self, durability: Durability) -> Self {
        self.durability = durability;
        self
    }

    /// Pauses before each of these nodes runs. Nodes in nested flows are named by their path
    /// (`inner/check`); naming a branch of a fork pauses before the fork; naming a node inside a
    /// flow nested in a branch (or in a batch flow) pauses that part, after the other parts
    /// finish (see [`durable`](crate::durable)). Checked against the flow when a run starts
    /// or resumes ([`Error::Interrupt`]).
    #[must_use]
    pub fn interrupt_before(mut self, nodes: &[&str]) -> Self {
        self.interrupts
            .before
            .extend(nodes.iter().map(|node| (*node).to_string()));
        self
    }

    /// Pauses after each of these nodes' steps is saved (named as for
    /// [`interrupt_before`](Self::interrupt_before)).
    #[must_use]
    pub fn interrupt_after(mut self, nodes: &[&str]) -> Self {
        self.interrupts
            .after
            .extend(nodes.iter().map(|node| (*node).to_string()));
        self
    }

    /// Calls `restore` on every state rebuilt from the store (in [`resume`](Self::resume), and
    /// in the runs of a `worker::Worker`), before any node runs: the place to put back the
    /// fields that are `#[serde(skip)]`, a model client or a channel, which no saved state holds.
    ///
    /// ```
    /// use std::sync::Arc;
    /// use serde::{Deserialize, Serialize};
    /// use slateflow::checkpoint::MemoryStore;
    /// use slateflow::{Command, SharedState, flow, node};
    ///
    /// /// A client made once and shared between runs.
    /// #[derive(Debug)]
    /// struct Crm {
    ///     url: String,
    /// }
    ///
    /// #[derive(SharedState, Default, Serialize, Deserialize)]
    /// struct Ticket {
    ///     logged_at: Option<String>,
    ///     /// Never saved: put back by `restore`.
    ///     #[serde(skip)]
    ///     crm: Option<Arc<Crm>>,
    /// }
    ///
    /// #[node]
    /// fn log(ticket: &Ticket) -> Command<Ticket> {
    ///     let crm = ticket.crm.as_ref().expect("put back by restore");
    ///     Command::new(Ticket::update().set_logged_at(Some(crm.url.clone())))
    /// }
    ///
    /// let crm = Arc::new(Crm { url: "https://crm.internal".into() });
    /// let flow = flow! { log; };
    /// let durable = flow
    ///     .durable(MemoryStore::new())
    ///     .interrupt_before(&["log"])
    ///     .restore(move |ticket: &mut Ticket| ticket.crm = Some(Arc::clone(&crm)))
    ///     .blocking()?;
    /// durable.start("t-1", &mut Ticket::default())?; // pauses before `log`
    /// let (ticket, _) = durable.resume("t-1")?; // rebuilt from the store, then restored
    /// assert_eq!(ticket.logged_at.as_deref(), Some("https://crm.internal"));
    /// # Ok::<(), slateflow::Error>(())
    /// ```
    #[must_use]
    pub fn restore(mut self, restore: impl Fn(&mut S) + Send + Sync + 'f) -> Self {
        self.restore = Some(Box::new(restore));
        self
    }

    /// The store.
    pub fn store(&self) -> &St {
        &self.store
    }

    /// The store, shared: what a studio over this flow reads its threads from.
    #[cfg(feature = "studio")]
    pub(crate) fn shared_store(&self) -> Arc<St> {
        Arc::clone(&self.store)
    }

    /// The flow's graph.
    #[cfg(feature = "studio")]
    pub(crate) fn graph(&self) -> crate::graph::Graph {
        self.flow.graph()
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
        self.drive(claim, thread, state, Resume::at_start(snapshot_bytes), None)
            .await
    }

    /// [`start`](Self::start) in two parts: the thread is created when this returns, and the
    /// future returned runs it, its events going to `also` as well as to the flow's observer. A
    /// studio answers a start once its thread can be read, and shows the run as it goes.
    #[cfg(feature = "studio")]
    pub(crate) async fn create_then_run(
        &self,
        thread: String,
        mut state: S,
        also: Arc<dyn Observer>,
    ) -> Result<impl Future<Output = Result<Outcome, Error>> + Send + '_, Error>
    where
        S: Send,
        S::Update: Send,
        G: Sync,
    {
        self.check_interrupts()?;
        let (claim, snapshot_bytes) = self.create(&thread, &state).await?;
        Ok(async move {
            let resume = Resume::at_start(snapshot_bytes);
            self.drive(claim, &thread, &mut state, resume, Some(&*also))
                .await
        })
    }

    /// [`resume`](Self::resume), its events going to `also` as well as to the flow's observer.
    #[cfg(feature = "studio")]
    pub(crate) async fn resume_watched(
        &self,
        thread: &str,
        also: &dyn Observer,
    ) -> Result<(S, Outcome), Error> {
        self.check_interrupts()?;
        let claim = self.store.claim(thread).await?;
        self.resume_claimed_with(claim, thread, Some(also)).await
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

    /// Creates the thread with its start record, claimed; and the size of its snapshot. A named
    /// flow's description is saved first, once.
    async fn create(&self, thread: &str, state: &S) -> Result<(St::Claim, usize), Error> {
        if !self.name.is_empty() && !self.flow_saved.load(Ordering::Relaxed) {
            self.store.save_flow(&self.flow_info()?).await?;
            self.flow_saved.store(true, Ordering::Relaxed);
        }
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
    /// reported (its process died first) reports them now instead, running nothing. The rebuilt
    /// state goes through [`restore`](Self::restore) first, when one was given.
    ///
    /// # Errors
    /// As [`start`](Self::start); [`StoreError::Claimed`](crate::checkpoint::StoreError::Claimed)
    /// when another worker runs the thread; [`Error::Resume`] when the saved records do not fit
    /// this flow or state (another state type, an update that does not read back, a position the
    /// flow does not have, a reducer that panics).
    pub async fn resume(&self, thread: &str) -> Result<(S, Outcome), Error> {
        self.check_interrupts()?;
        let claim = self.store.claim(thread).await?;
        self.resume_claimed(claim, thread).await
    }

    /// Resumes a thread whose claim the caller took (a worker).
    pub(crate) async fn resume_claimed(
        &self,
        claim: St::Claim,
        thread: &str,
    ) -> Result<(S, Outcome), Error> {
        self.resume_claimed_with(claim, thread, None).await
    }

    /// [`resume_claimed`](Self::resume_claimed), its events going to `also` too, if given.
    async fn resume_claimed_with(
        &self,
        mut claim: St::Claim,
        thread: &str,
        also: Option<&dyn Observer>,
    ) -> Result<(S, Outcome), Error> {
        let log = self.load(thread, Records::SinceSnapshot).await?;
        let mut state = rebuild::<S>(thread, &log.records, u64::MAX)?;
        if let Some(restore) = &self.restore {
            restore(&mut state);
        }
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
            let unanswered = at
                .pending
                .iter()
                .any(|pause| !at.answered.contains(&pause.key));
            if unanswered && !matches!(log.status, RunStatus::Paused { .. } | RunStatus::Queued) {
                // Saved, but its run died before saying so: report it, run nothing. Pauses all
                // answered (a branch from an answered step) wait for nobody: the run goes on.
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
            answered: at.answered,
        };
        let outcome = self.drive(claim, thread, &mut state, resume, also).await?;
        Ok((state, outcome))
    }

    /// Answers the pause `key` of a waiting thread with `update` (a human's input): saved as an
    /// input record, applied through the reducers when the thread resumes, and listed in its
    /// history. Each pause takes one answer, however often it was reported. Once every pending
    /// pause of the thread is answered, its status becomes [`RunStatus::Queued`]: a worker takes
    /// it, or anyone resumes it. A question asked inside a step
    /// ([`Context::interrupt`](crate::Context::interrupt)) takes a [`reply`](Self::reply)
    /// instead.
    ///
    /// # Errors
    /// [`Error::Resume`] when no pause with that key is waiting (the message lists those that
    /// are), it was answered already, or it was asked inside a step; [`Error::Store`], including
    /// a thread another worker runs.
    pub async fn answer(&self, thread: &str, key: &str, update: S::Update) -> Result<(), Error> {
        self.answer_pause(thread, key, Answering::Update(update))
            .await
    }

    /// Replies `reply` to the question `key` that a node asked inside its step
    /// ([`Context::interrupt`](crate::Context::interrupt); an agent's tool call waiting for
    /// approval, [`Approval`](crate::agent::Approval)): kept beside the question, and returned
    /// to the node when the thread resumes and its step runs again. The reply counts as the
    /// pause's answer: once every pending pause is answered, the thread is
    /// [`Queued`](RunStatus::Queued).
    ///
    /// # Errors
    /// As [`answer`](Self::answer); [`Error::Resume`] also when the pause waits for an update
    /// (asked after a step, with [`Command::ask`](crate::Command::ask)) or `reply` is not JSON.
    pub async fn reply(
        &self,
        thread: &str,
        key: &str,
        reply: &impl Serialize,
    ) -> Result<(), Error> {
        let reply = serde_json::to_value(reply).map_err(|error| Error::Resume {
            thread: thread.to_string(),
            step: 0,
            reason: format!("the reply to `{key}` is not JSON: {error}"),
        })?;
        self.answer_pause(thread, key, Answering::Reply(reply))
            .await
    }

    /// Answers the pause `key`: see [`answer`](Self::answer) and [`reply`](Self::reply).
    async fn answer_pause(
        &self,
        thread: &str,
        key: &str,
        answering: Answering<S::Update>,
    ) -> Result<(), Error> {
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
        // The question asked inside a step, when the pause is one: its node reads the reply.
        let inside = at.kept.iter().find_map(|kept| {
            let asked = kept.key.strip_prefix("ask:")?;
            kept.pauses
                .iter()
                .any(|pause| pause.key == key)
                .then_some((kept.node.as_str(), asked))
        });
        // A reply that its node could not read failed the thread: it may be replied again.
        let reply_again = inside.is_some()
            && matches!(answering, Answering::Reply(_))
            && matches!(log.status, RunStatus::Failed { .. });
        if at.answered.iter().any(|answered| answered == key) && !reply_again {
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
        if !reply_again && !at.pending.iter().any(|pause| pause.key == key) {
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
        input.key = key.to_string();
        match (answering, inside) {
            (Answering::Update(update), None) => {
                input.update = to_json(thread, log.last_step, &update)?;
            }
            (Answering::Reply(reply), Some((node, asked))) => {
                // The reply first: a crash before the input leaves the pause waiting, to be
                // replied again (the last reply counts).
                let kept = StepRecord {
                    node: node.to_string(),
                    key: crate::node::reply_key(asked),
                    update: reply,
                    ..StepRecord::new(log.last_step, RecordKind::Kept)
                };
                self.store.append(&mut claim, &kept).await?;
                input.update = to_json(thread, log.last_step, &S::Update::default())?;
            }
            (Answering::Update(_), Some((node, _))) => {
                return Err(refuse(format!(
                    "pause `{key}` is a question `{node}` asked inside its step, which reads the \
                     reply itself: reply with `reply(thread, key, value)`"
                )));
            }
            (Answering::Reply(_), None) => {
                return Err(refuse(format!(
                    "pause `{key}` waits for an update to the state, not a reply: answer it \
                     with `answer(thread, key, update)`"
                )));
            }
        }
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

    /// Reads the thread's whole history and checks every record, as
    /// [`CheckpointStore::verify`] does (checksums, order), and more: the thread was made for
    /// this state type, and every saved state and update reads back as `S` and its update. A
    /// resume reads only from the last snapshot; run this to find damage anywhere, before a
    /// resume needs it, or after changing the state's type.
    ///
    /// ```
    /// use slateflow::checkpoint::MemoryStore;
    /// use slateflow::{Command, SharedState, flow, node};
    /// # use serde::{Deserialize, Serialize};
    ///
    /// #[derive(SharedState, Default, Serialize, Deserialize)]
    /// struct Counter {
    ///     #[reducer(add)]
    ///     count: u64,
    /// }
    ///
    /// #[node]
    /// fn count(_: &Counter) -> Command<Counter> {
    ///     Command::new(Counter::update().add_count(1))
    /// }
    ///
    /// # tokio::runtime::Builder::new_current_thread().build().unwrap().block_on(async {
    /// let counting = flow! { count; };
    /// let durable = counting.durable(MemoryStore::new());
    /// durable.start("t-1", &mut Counter::default()).await?;
    /// let verified = durable.verify("t-1").await?;
    /// assert_eq!(verified.last_step, 1);
    /// # Ok::<(), slateflow::Error>(())
    /// # }).unwrap();
    /// ```
    ///
    /// # Errors
    /// [`Error::Store`] with [`StoreError::Corrupt`](crate::checkpoint::StoreError::Corrupt)
    /// naming the first damaged record; [`Error::Resume`] naming the step of the first record
    /// that does not read back as `S`, or a thread of another state type.
    pub async fn verify(&self, thread: &str) -> Result<Verified, Error> {
        let log = self.load(thread, Records::All).await?;
        let verified = crate::checkpoint::verify_history(thread, &log)?;
        for record in &log.records {
            let bad = |what: &str, error: serde_json::Error| Error::Resume {
                thread: thread.to_string(),
                step: record.step,
                reason: format!("the saved {what} does not read back: {error}"),
            };
            if let Some(snapshot) = &record.snapshot {
                S::deserialize(snapshot).map_err(|error| bad("state", error))?;
            }
            // (A kept part's outcome may be a batch item's output, not an update: a resume
            // reads it with the node that made it. The parts kept inside a part are parts of a
            // fork or batch flow: updates.)
            if matches!(record.kind, RecordKind::Step | RecordKind::Input) {
                <S::Update as serde::Deserialize>::deserialize(&record.update)
                    .map_err(|error| bad("update", error))?;
            }
            let mut inner: Vec<&StepRecord> = record.parts.iter().collect();
            while let Some(part) = inner.pop() {
                <S::Update as serde::Deserialize>::deserialize(&part.update).map_err(|error| {
                    bad(
                        &format!("update of the part `{}` kept inside it", part.node),
                        error,
                    )
                })?;
                inner.extend(&part.parts);
            }
        }
        Ok(verified)
    }

    /// Every thread in the store: id, status (with the keys of its pending pauses), last step and
    /// when it was last written.
    ///
    /// # Errors
    /// [`Error::Store`].
    pub async fn threads(&self) -> Result<Vec<ThreadInfo>, Error> {
        Ok(self.store.threads().await?)
    }

    /// Cancels a thread, whoever runs it, in this process or another: its run stops at its next
    /// write (with [`StoreError::Cancelled`](crate::checkpoint::StoreError::Cancelled)), and the
    /// thread is never run again: [`resume`](Self::resume) refuses it and no worker takes it. What
    /// was saved stays, to read or to [`branch`](Self::branch) from. The same on every store.
    ///
    /// ```
    /// use slateflow::checkpoint::{MemoryStore, RunStatus};
    /// use slateflow::{Command, SharedState, flow, node};
    /// # use serde::{Deserialize, Serialize};
    ///
    /// #[derive(SharedState, Default, Serialize, Deserialize)]
    /// struct Ticket {
    ///     approved: bool,
    /// }
    ///
    /// #[node]
    /// fn send(_: &Ticket) -> Command<Ticket> {
    ///     Command::new(Ticket::update())
    /// }
    ///
    /// # tokio::runtime::Builder::new_current_thread().build().unwrap().block_on(async {
    /// let approval = flow! { send; };
    /// let durable = approval.durable(MemoryStore::new()).interrupt_before(&["send"]);
    /// durable.start("t-1", &mut Ticket::default()).await?;
    /// // Paused before `send`: nobody will approve it, so it is cancelled.
    /// durable.cancel("t-1").await?;
    /// assert_eq!(durable.status("t-1").await?, RunStatus::Cancelled);
    /// assert!(durable.resume("t-1").await.is_err());
    /// # Ok::<(), slateflow::Error>(())
    /// # }).unwrap();
    /// ```
    ///
    /// # Errors
    /// [`Error::Store`]: an unknown thread, or the storage's error.
    pub async fn cancel(&self, thread: &str) -> Result<(), Error> {
        Ok(self.store.cancel(thread).await?)
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
        branch_log(&*self.store, thread, log, step, new_thread).await
    }

    /// What the store keeps of this flow, for a studio that does not host it.
    fn flow_info(&self) -> Result<FlowInfo, Error> {
        let graph = serde_json::to_value(self.flow.graph()).map_err(|error| Error::Save {
            thread: String::new(),
            step: 0,
            reason: format!("the flow's graph does not serialize: {error}"),
        })?;
        Ok(FlowInfo {
            name: self.name.clone(),
            state_type: state_type::<S>().to_string(),
            graph,
            fields: S::FIELDS
                .iter()
                .map(|field| FlowField {
                    name: field.name().to_string(),
                    type_name: field.type_name().to_string(),
                })
                .collect(),
            saved_at_ms: crate::checkpoint::now_ms(),
        })
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
        self.interrupts.check(&self.flow.graph())
    }

    /// Runs to the end or a pause, with or without the observer (and `also`, for this run),
    /// then saves the status.
    async fn drive(
        &self,
        claim: St::Claim,
        thread: &str,
        state: &mut S,
        resume: Resume,
        also: Option<&dyn Observer>,
    ) -> Result<Outcome, Error> {
        match (self.observer.as_deref(), also) {
            (Some(observer), Some(also)) => {
                let both = Both(observer, also);
                self.drive_with(Observe(&both), claim, thread, state, resume)
                    .await
            }
            (Some(observer), None) | (None, Some(observer)) => {
                self.drive_with(Observe(observer), claim, thread, state, resume)
                    .await
            }
            (None, None) => self.drive_with(NoWatch, claim, thread, state, resume).await,
        }
    }

    /// The journal of a run of `thread` under `claim`, going on from `resume`.
    fn recorder<'a>(
        &'a self,
        claim: &'a mut St::Claim,
        thread: &'a str,
        watch: &'a dyn crate::event::EventSink,
        resume: Resume,
    ) -> Recorder<'a, S, St> {
        Recorder {
            store: &*self.store,
            claim: tokio::sync::Mutex::new(claim),
            thread,
            events: watch,
            entries: resume.entries,
            snapshot_every: self.snapshot_every,
            per_write: self.durability.steps(),
            unsaved: std::sync::Mutex::new(Vec::new()),
            // A resumed thread may hold parts kept, or voided, by an earlier attempt: at its last
            // step, or at the one before when a crash fell between a step and its compaction.
            compact_due: std::sync::atomic::AtomicBool::new(resume.steps > 0),
            compacted_to: std::sync::atomic::AtomicU64::new(resume.steps.saturating_sub(1)),
            since_snapshot: 0,
            bytes_since_snapshot: 0,
            snapshot_bytes: resume.snapshot_bytes,
            interrupts: &self.interrupts,
            passing: resume.passing,
            answered: resume.answered,
            paused: Vec::new(),
            part_paused: std::sync::Mutex::new(Vec::new()),
            pending: None,
            kept_at: resume.steps,
            kept: resume.kept,
            in_place: parts::Levels::in_place(),
            state: PhantomData,
        }
    }

    async fn drive_with<W: Watch>(
        &self,
        watch: W,
        mut claim: St::Claim,
        thread: &str,
        state: &mut S,
        resume: Resume,
    ) -> Result<Outcome, Error> {
        let steps_before = resume.steps;
        let recorder = self.recorder(&mut claim, thread, &watch, resume);
        let mut run = Run::new(&watch, recorder, self.flow.params().clone(), steps_before);
        run.count_limit_from(0);
        let result = run
            .run(self.flow, state, "", self.flow.max_steps())
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
        let mut recorder = run.into_journal();
        let mut paused = std::mem::take(&mut recorder.paused);
        let part_paused = std::mem::take(
            recorder
                .part_paused
                .get_mut()
                .unwrap_or_else(std::sync::PoisonError::into_inner),
        );
        let claim = &mut **recorder.claim.get_mut();
        // Steps not yet written (batched durability) are written before the status.
        let unsaved = std::mem::take(
            recorder
                .unsaved
                .get_mut()
                .unwrap_or_else(std::sync::PoisonError::into_inner),
        );
        Recorder::<S, St>::write(
            self.store.as_ref(),
            claim,
            thread,
            &watch,
            &unsaved,
            (&recorder.compact_due, &recorder.compacted_to),
        )
        .await?;
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
                if W::OBSERVES {
                    for pause in &paused {
                        watch.event(&Event::RunPaused { pause });
                    }
                }
                Ok(Outcome::Paused(paused))
            }
            Err(error) => Err(error),
        }
    }
}

impl<S, G, St> std::fmt::Debug for Durable<'_, S, G, St> {
    fn fmt(&self, formatter: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        formatter
            .debug_struct("Durable")
            .field("name", &self.name)
            .field("snapshot_every", &self.snapshot_every)
            .field("durability", &self.durability)
            .field("interrupts", &self.interrupts)
            .field("observed", &self.observer.is_some())
            .finish_non_exhaustive()
    }
}
