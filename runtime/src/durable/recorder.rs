//! [`Recorder`]: the journal that makes a run durable. It saves each committed step to the store
//! under the thread's claim (with a snapshot when enough bytes of updates have gone by), enters
//! flows at the saved position on resume, pauses at the interrupts and at questions, and keeps
//! the parts of a step (fork branches, batch flow runs, batch items) as they finish.

use std::marker::PhantomData;
use std::sync::atomic::Ordering::Relaxed;
use std::sync::atomic::{AtomicBool, AtomicU64};

use serde::Serialize;
use serde_json::Value;

use super::interrupts::{Interrupts, join_path, pass, path_is};
use super::parts::{Levels, Part, find_kept, finished_record, read_update};
use super::resume::{Entries, json_len, snapshot, to_json};
use crate::checkpoint::{CheckpointStore, Pause, PauseWhen, RecordKind, StepRecord};
use crate::error::Error;
use crate::event::{At, Event, EventSink};
use crate::node::dispatch::{Branch, Stepped};
use crate::node::{ItemJournal, KeepItem, Node, ask_key};
use crate::run::{
    After, Commit, Entry, Here, Journal, Opened, PartOf, Progress, Run, RunEnd, Trail, Watch,
};
use crate::state::SharedState;

/// The journal of a durable run: see the [module documentation](self).
pub(super) struct Recorder<'a, S, St: CheckpointStore> {
    pub(super) store: &'a St,
    /// Locked by the parts of a step that keep their outcomes concurrently; the rest of the run
    /// has it to itself (`get_mut`).
    pub(super) claim: tokio::sync::Mutex<&'a mut St::Claim>,
    pub(super) thread: &'a str,
    /// Where the run's events go, for [`Event::StepSaved`].
    pub(super) events: &'a dyn EventSink,
    /// Where a resumed run goes on, and where the flows around the current node were entered.
    pub(super) entries: Entries,
    /// A snapshot at least every this many steps, if set.
    pub(super) snapshot_every: Option<u64>,
    /// Steps written at a time ([`Durability`](super::Durability)), and those committed but not
    /// yet written: written before anything else is.
    pub(super) per_write: usize,
    pub(super) unsaved: std::sync::Mutex<Vec<StepRecord>>,
    /// Kept or voided parts may be in the store at a step before the next one written: removed
    /// once that step is written ([`CheckpointStore::compact`]), from the step where the last
    /// removal ended.
    pub(super) compact_due: AtomicBool,
    pub(super) compacted_to: AtomicU64,
    pub(super) since_snapshot: u64,
    /// The JSON bytes of the updates saved since the last snapshot, and that snapshot's.
    pub(super) bytes_since_snapshot: usize,
    pub(super) snapshot_bytes: usize,
    pub(super) interrupts: &'a Interrupts,
    /// Nodes a resumed run goes past without pausing, and the steps before them.
    pub(super) passing: Vec<(String, u64)>,
    /// The keys of the pauses answered at the thread's last step: a part run again asks no
    /// question answered already.
    pub(super) answered: Vec<String>,
    /// The pauses this run stopped at.
    pub(super) paused: Vec<Pause>,
    /// The pauses parts of a step (a fork's branches, a batch flow's runs) stopped at inside
    /// their own flows: saved with the parts, as they stopped.
    pub(super) part_paused: std::sync::Mutex<Vec<Pause>>,
    /// The update of the step being committed, as JSON: made before the update is applied.
    pub(super) pending: Option<Value>,
    /// Finished parts of the step after step `kept_at` (the last one saved when the run
    /// resumed), kept by an earlier attempt of it; cleared by the first commit.
    pub(super) kept: Vec<StepRecord>,
    pub(super) kept_at: u64,
    /// The batch flow runs in place under way (a batch flow's run in a batch flow's run, ...),
    /// and where each pauses (or goes on from).
    pub(super) in_place: Levels,
    pub(super) state: PhantomData<fn(&S)>,
}

impl<S: SharedState, St: CheckpointStore> Recorder<'_, S, St> {
    /// The last record kept for `part` (of a step at the thread's top level) by an earlier attempt
    /// of its step: when the part `stopped` at pauses, or else when it finished.
    fn kept_part(&self, part: PartOf<'_>, stopped: bool) -> Option<&StepRecord> {
        if part.before != self.kept_at {
            return None;
        }
        find_kept(&self.kept, part, stopped)
    }

    /// Where `part` stopped at pauses in an earlier attempt of its step, if it did: in the store
    /// for a part of a top-level step, else in the level of the run in place its step is in.
    fn stopped_part(&self, part: PartOf<'_>) -> Option<StepRecord> {
        if part.composite == 0 {
            self.kept_part(part, true).cloned()
        } else {
            let level = self.in_place.keeper(part)?;
            level.kept(part, true).cloned()
        }
    }

    /// Keeps `record`, of a part that stopped at pauses (or, `stopped` false, of one whose
    /// record had to change after it failed): in the store for a part of a top-level step, else
    /// in the level of the run in place its step is in.
    async fn keep_record(
        &self,
        part: PartOf<'_>,
        record: StepRecord,
        stopped: bool,
    ) -> Result<(), Error> {
        if part.composite > 0 {
            if let Some(level) = self.in_place.keeper(part) {
                if stopped {
                    level.keep(record, true);
                } else {
                    level.keep_again(record);
                }
            }
            return Ok(());
        }
        self.append_shared(&record).await?;
        if stopped {
            self.part_paused
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner)
                .extend(record.pauses);
        }
        Ok(())
    }

    /// The pauses saved with a committed step: a question its node asked, an interrupt after it;
    /// for a fork, those of its branches.
    fn pauses_after(&self, commit: &Commit<'_>, node: &str) -> Vec<Pause> {
        let mut pauses = Vec::new();
        let names = commit.trail.names();
        if commit.notes.branches.is_empty() {
            let (name, flows) = names.split_last().map_or(("", names), |(n, f)| (*n, f));
            if let Some(asked) = commit.notes.asked {
                let mut pause = Pause::new(node, PauseWhen::Asked, commit.step);
                pause.asked = Some(asked.clone());
                pauses.push(pause);
            } else if self.interrupts.after(flows, name) {
                pauses.push(Pause::new(node, PauseWhen::After, commit.step));
            }
            return pauses;
        }
        let flows = commit.trail.flows();
        for branch in commit.notes.branches {
            let asked = commit
                .notes
                .branch_asks
                .iter()
                .find(|(asking, _)| asking == branch);
            if let Some((_, question)) = asked {
                let mut pause = Pause::new(join_path(flows, branch), PauseWhen::Asked, commit.step);
                pause.asked = Some(question.clone());
                pauses.push(pause);
            } else if self.interrupts.after(flows, branch) {
                pauses.push(Pause::new(
                    join_path(flows, branch),
                    PauseWhen::After,
                    commit.step,
                ));
            }
        }
        pauses
    }
}

/// Writing steps, whatever the state.
impl<S, St: CheckpointStore> Recorder<'_, S, St> {
    /// Appends `record` under the claim, which parts of a step share, after the steps not yet
    /// written; kept or voided parts are then due to be compacted away.
    async fn append_shared(&self, record: &StepRecord) -> Result<(), Error> {
        let mut claim = self.claim.lock().await;
        self.write_unsaved(&mut claim).await?;
        self.store.append(&mut claim, record).await?;
        self.compact_due.store(true, Relaxed);
        Ok(())
    }

    /// Writes the steps committed and not yet written, if any.
    async fn write_unsaved(&self, claim: &mut St::Claim) -> Result<(), Error> {
        let unsaved = std::mem::take(
            &mut *self
                .unsaved
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner),
        );
        Self::write(
            self.store,
            claim,
            self.thread,
            self.events,
            &unsaved,
            (&self.compact_due, &self.compacted_to),
        )
        .await
    }

    /// Writes `records` (steps) in one write, then says so in the events; then removes the parts
    /// kept for the steps written, when some may be in the store (`compact_due`).
    pub(super) async fn write(
        store: &St,
        claim: &mut St::Claim,
        thread: &str,
        events: &dyn EventSink,
        records: &[StepRecord],
        (compact_due, compacted_to): (&AtomicBool, &AtomicU64),
    ) -> Result<(), Error> {
        match records {
            [] => return Ok(()),
            [record] => store.append(claim, record).await?,
            _ => store.append_all(claim, records).await?,
        }
        if let Some(last) = records.last()
            && compact_due.swap(false, Relaxed)
        {
            let from = compacted_to.swap(last.step, Relaxed);
            store.compact(claim, from..last.step).await?;
        }
        if events.observed() {
            for record in records {
                events.send(&Event::StepSaved {
                    thread,
                    step: record.step,
                    node: &record.node,
                    action: &record.action,
                });
            }
        }
        Ok(())
    }
}

/// A durable run's steps, at the top level of the thread, are committed one by one; the parts
/// of such a step are kept as they finish; a batch flow's run in place pauses on its own.
impl<S, St> Journal<S> for Recorder<'_, S, St>
where
    S: SharedState + Serialize,
    St: CheckpointStore,
{
    const PAUSES: bool = true;

    type Part<'p>
        = Part<'p>
    where
        Self: 'p;

    type Open = Vec<Opened<S>>;

    fn thread(&self) -> Option<&str> {
        Some(self.thread)
    }

    fn step<'a, W: Watch, N: Node<S>>(
        run: &'a mut Run<S, W, Self>,
        node: &'a N,
        state: &'a mut S,
        name: &'static str,
    ) -> impl Future<Output = Stepped> + Send + 'a {
        run.journaled_step(node, state, name)
    }

    fn enter_flow(&mut self, depth: usize, steps: u64, composite: u32) -> Option<Entry> {
        let entry = self.entries.enter(depth, steps);
        if composite == 0 {
            entry
        } else {
            // A batch flow's run in place goes on from where it stopped.
            self.in_place.enter_flow(depth, steps, composite).or(entry)
        }
    }

    fn pause_before(&mut self, here: Here<'_>) -> bool {
        if here.composite > 0 {
            return self.in_place.pause_before(self.interrupts, here);
        }
        if pass(&mut self.passing, here.flows, here.name, here.step) {
            return false;
        }
        if self.interrupts.before(here.flows, here.name) {
            let node = join_path(here.flows, here.name);
            self.paused
                .push(Pause::new(node, PauseWhen::Before, here.step));
            return true;
        }
        false
    }

    fn after(&mut self, here: Here<'_>, action: &'static str, asked: Option<&Value>) -> After {
        if here.composite == 0 {
            After::Commit
        } else {
            self.in_place
                .after((self.interrupts, &self.answered), here, action, asked)
        }
    }

    fn after_fork(
        &mut self,
        here: Here<'_>,
        branches: &'static [&'static str],
        asked: &[(&'static str, Value)],
    ) -> After {
        if here.composite == 0 {
            After::Commit
        } else {
            self.in_place
                .after_fork((self.interrupts, &self.answered), here, branches, asked)
        }
    }

    fn prepare(&mut self, step: u64, update: &S::Update) -> Result<(), Error> {
        self.pending = Some(to_json(self.thread, step, update)?);
        Ok(())
    }

    async fn commit(&mut self, state: &S, commit: Commit<'_>) -> Result<bool, Error> {
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
        let pauses = self.pauses_after(&commit, &node);
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
        self.kept.clear();
        self.paused.extend(record.pauses.iter().cloned());
        let unsaved = self
            .unsaved
            .get_mut()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        if self.per_write == 1 {
            Self::write(
                self.store,
                self.claim.get_mut(),
                self.thread,
                self.events,
                std::slice::from_ref(&record),
                (&self.compact_due, &self.compacted_to),
            )
            .await?;
        } else {
            unsaved.push(record);
            // A pause is written before the run stops at it; the rest when a write is full.
            if unsaved.len() >= self.per_write || !self.paused.is_empty() {
                let unsaved = std::mem::take(unsaved);
                Self::write(
                    self.store,
                    self.claim.get_mut(),
                    self.thread,
                    self.events,
                    &unsaved,
                    (&self.compact_due, &self.compacted_to),
                )
                .await?;
            }
        }
        Ok(!self.paused.is_empty())
    }

    fn commits(&self, here: Here<'_>) -> bool {
        here.composite == 0
    }

    fn keeps(&self, _: Here<'_>) -> bool {
        true
    }

    fn kept(&self, part: PartOf<'_>) -> Result<Option<(S::Update, u64, &str)>, Error> {
        let record = if part.composite == 0 {
            self.kept_part(part, false)
        } else {
            self.in_place
                .keeper(part)
                .and_then(|level| level.kept(part, false))
        };
        let Some(record) = record else {
            return Ok(None);
        };
        let update = read_update::<S>(self.thread, part, record, "outcome")?;
        Ok(Some((update, record.steps, record.action.as_str())))
    }

    async fn keep<'a>(&'a self, part: PartOf<'a>, outcome: Branch<S>) -> Result<Branch<S>, Error>
    where
        S: 'a,
    {
        let record = finished_record(self.thread, part, &outcome)?;
        if part.composite == 0 {
            self.append_shared(&record).await?;
        } else if let Some(level) = self.in_place.keeper(part) {
            level.keep(record, false);
        }
        Ok(outcome)
    }

    async fn discard<'a>(&'a self, part: PartOf<'a>) -> Result<(), Error>
    where
        S: 'a,
    {
        if part.composite > 0 {
            if let Some(level) = self.in_place.keeper(part) {
                level.discard(part);
            }
            return Ok(());
        }
        let record = StepRecord {
            node: join_path(part.flows, part.container),
            ..StepRecord::new(part.before, RecordKind::Discard)
        };
        self.append_shared(&record).await
    }

    fn part(
        &self,
        part: PartOf<'_>,
        depth: usize,
    ) -> Result<(Part<'_>, Option<Progress<S>>), Error> {
        let record = self.stopped_part(part);
        let around = self.in_place.suffix(part);
        Part::new::<S>(
            (self.thread, self.interrupts, &self.answered),
            part,
            (depth, &around),
            record,
        )
    }

    async fn keep_stopped<'a>(
        &'a self,
        part: PartOf<'a>,
        journal: Part<'a>,
        update: S::Update,
        steps: u64,
        trail: &'a Trail,
    ) -> Result<(), Error>
    where
        S: 'a,
    {
        let record = journal.stopped::<S>(part, update, steps, trail)?;
        self.keep_record(part, record, true).await
    }

    async fn part_failed<'a>(&'a self, part: PartOf<'a>, journal: Part<'a>) -> Result<(), Error>
    where
        S: 'a,
    {
        match journal.failed() {
            Some(record) => self.keep_record(part, record, false).await,
            None => Ok(()),
        }
    }

    fn run_start(&mut self, part: PartOf<'_>, depth: usize) -> Result<Option<Progress<S>>, Error> {
        let record = self.stopped_part(part);
        let around = self.in_place.suffix(part);
        self.in_place
            .start::<S>(self.thread, part, (depth, &around), record)
    }

    async fn run_finish<'a>(
        &'a mut self,
        part: PartOf<'a>,
        end: RunEnd,
        update: S::Update,
        steps: u64,
        trail: &'a Trail,
    ) -> Result<S::Update, Error>
    where
        S: 'a,
    {
        let (record, update) =
            self.in_place
                .finish::<S>(self.thread, part, end, update, steps, trail)?;
        if let Some(record) = record {
            match end {
                RunEnd::Finished(_) if part.composite == 0 => self.append_shared(&record).await?,
                RunEnd::Finished(_) => {
                    if let Some(level) = self.in_place.keeper(part) {
                        level.keep(record, false);
                    }
                }
                RunEnd::Stopped => self.keep_record(part, record, true).await?,
                RunEnd::Failed => self.keep_record(part, record, false).await?,
            }
        }
        Ok(update)
    }

    fn items(&self, here: Here<'_>) -> Option<&dyn ItemJournal> {
        (here.composite == 0).then_some(self as &dyn ItemJournal)
    }
}

/// What the parts of a step kept (a kept batch's items, an agent's calls), in a durable step
/// saved on its own.
impl<S, St: CheckpointStore> ItemJournal for Recorder<'_, S, St> {
    fn kept_item(&self, at: &At<'_>, key: &str) -> Option<Value> {
        let before = at.step.checked_sub(1)?;
        if before != self.kept_at || self.kept.is_empty() {
            return None;
        }
        self.kept
            .iter()
            .rev()
            .find(|record| record.key == key && path_is(&record.node, at.flows, at.node))
            .map(|record| record.update.clone())
    }

    fn keep_item<'a>(&'a self, at: At<'a>, key: String, output: Value) -> KeepItem<'a> {
        Box::pin(async move {
            let record = StepRecord {
                node: join_path(at.flows, at.node),
                key,
                update: output,
                ..StepRecord::new(at.step.saturating_sub(1), RecordKind::Kept)
            };
            self.append_shared(&record).await
        })
    }

    fn ask_item<'a>(&'a self, at: At<'a>, key: &'a str, question: Value) -> KeepItem<'a> {
        Box::pin(async move {
            let node = join_path(at.flows, at.node);
            let before = at.step.saturating_sub(1);
            let mut pause = Pause::new(node.clone(), PauseWhen::Asked, before);
            pause.key = format!("{}:{key}", pause.key);
            pause.asked = Some(question.clone());
            // The question is kept with its pause, as a part that stopped to ask is: the pause
            // waits with the thread, and the reply, kept beside it, survives the answer.
            let record = StepRecord {
                node,
                key: ask_key(key),
                update: question,
                pauses: vec![pause.clone()],
                ..StepRecord::new(before, RecordKind::Kept)
            };
            self.append_shared(&record).await?;
            self.part_paused
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner)
                .push(pause);
            Ok(())
        })
    }
}
