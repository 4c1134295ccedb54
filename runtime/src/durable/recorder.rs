//! [`Recorder`]: the journal that makes a run durable. It saves each committed step to the store
//! under the thread's claim (with a snapshot when enough bytes of updates have gone by), enters
//! flows at the saved position on resume, pauses at the interrupts and at questions, and keeps
//! the parts of a step (fork branches, batch flow runs, batch items) as they finish.

use std::marker::PhantomData;
use std::sync::atomic::Ordering::Relaxed;
use std::sync::atomic::{AtomicBool, AtomicU64};

use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::interrupts::{Interrupts, join_path, pass, path_is};
use super::parts::{Part, PartPause, Stopped, Stops, after_in_part};
use super::resume::{Entries, json_len, snapshot, to_json};
use crate::checkpoint::{CheckpointStore, Pause, PauseWhen, RecordKind, StepRecord};
use crate::error::Error;
use crate::event::{At, Event, EventSink};
use crate::node::dispatch::{Branch, Stepped};
use crate::node::{ItemJournal, KeepItem, Node};
use crate::run::{After, Commit, Entry, Here, Journal, PartOf, Progress, Run, Trail, Watch};
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
    /// A batch flow's run in place under way, and where it pauses (or goes on from).
    pub(super) in_place: Option<Stops>,
    pub(super) state: PhantomData<fn(&S)>,
}

impl<S: SharedState, St: CheckpointStore> Recorder<'_, S, St> {
    /// The last record kept for `part` by an earlier attempt of its step, with its update read
    /// back: when the part `stopped` at pauses, or else when it finished, as asked.
    fn kept_part(
        &self,
        part: PartOf<'_>,
        stopped: bool,
    ) -> Result<Option<(&StepRecord, S::Update)>, Error> {
        if part.before != self.kept_at {
            return Ok(None);
        }
        let key = part.index.to_string();
        let record =
            self.kept.iter().rev().find(|record| {
                record.key == key && path_is(&record.node, part.flows, part.container)
            });
        let Some(record) = record.filter(|record| record.pauses.is_empty() != stopped) else {
            return Ok(None);
        };
        let update = S::Update::deserialize(&record.update).map_err(|error| Error::Resume {
            thread: self.thread.to_string(),
            step: part.before,
            reason: format!(
                "the kept {} of part {} of `{}` does not read back: {error}",
                if stopped { "progress" } else { "outcome" },
                part.index,
                record.node
            ),
        })?;
        Ok(Some((record, update)))
    }

    /// Where `part` stopped at pauses in an earlier attempt of its step, if it did.
    fn stopped_part(&self, part: PartOf<'_>) -> Result<Option<Stopped<S>>, Error> {
        let Some((record, update)) = self.kept_part(part, true)? else {
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

    /// Appends `record` under the claim, which parts of a step share, after the steps not yet
    /// written.
    async fn append_shared(&self, record: &StepRecord) -> Result<(), Error> {
        let mut claim = self.claim.lock().await;
        self.write_unsaved(&mut claim).await?;
        self.store.append(&mut claim, record).await?;
        self.compact_due.store(true, Relaxed);
        Ok(())
    }

    /// Keeps where `part` stopped at pauses: its update, steps, position and pauses, whose keys
    /// end with the part (the runs of a batch flow share their nodes' paths and steps).
    async fn keep_stopped_part(&self, part: PartOf<'_>, stopped: Stopped<S>) -> Result<(), Error>
    where
        S: Serialize,
    {
        let index = part.index;
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
                pause.key = format!("{}#{index}", pause.key);
                pause.asked = part.asked;
                pause
            })
            .collect();
        let record = StepRecord {
            node: join_path(part.flows, part.container),
            key: index.to_string(),
            action: stopped.action.unwrap_or_default(),
            position: stopped.positions,
            entered: stopped.entered,
            update: to_json(self.thread, part.before, &stopped.update)?,
            steps: stopped.steps,
            pauses,
            ..StepRecord::new(part.before, RecordKind::Kept)
        };
        self.append_shared(&record).await?;
        self.part_paused
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .extend(record.pauses);
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
        match &mut self.in_place {
            // A batch flow's run in place goes on from where it stopped.
            Some(in_place) if composite == 1 => in_place.enter_flow(depth, steps).or(entry),
            _ => entry,
        }
    }

    fn pause_before(&mut self, here: Here<'_>) -> bool {
        match (here.composite, &mut self.in_place) {
            (0, _) => {
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
            (1, Some(stops)) => stops.before(self.interrupts, here.flows, here.name, here.step),
            _ => false,
        }
    }

    fn after(&mut self, here: Here<'_>, action: &'static str, asked: Option<&Value>) -> After {
        match (here.composite, &mut self.in_place) {
            (0, _) => After::Commit,
            (1, Some(stops)) => after_in_part(
                stops,
                self.interrupts,
                Here {
                    composite: 0,
                    ..here
                },
                action,
                asked,
            ),
            _ if asked.is_some() => After::CannotAsk,
            _ => After::Apply,
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

    fn keeps(&self, here: Here<'_>) -> bool {
        here.composite == 0
    }

    fn kept(&self, part: PartOf<'_>) -> Result<Option<(S::Update, u64, &str)>, Error> {
        let kept = self.kept_part(part, false)?;
        Ok(kept.map(|(record, update)| (update, record.steps, record.action.as_str())))
    }

    async fn keep<'a>(&'a self, part: PartOf<'a>, outcome: Branch<S>) -> Result<Branch<S>, Error>
    where
        S: 'a,
    {
        let record = StepRecord {
            node: join_path(part.flows, part.container),
            key: part.index.to_string(),
            action: outcome.action.to_string(),
            update: to_json(self.thread, part.before, &outcome.update)?,
            steps: outcome.steps,
            ..StepRecord::new(part.before, RecordKind::Kept)
        };
        self.append_shared(&record).await?;
        Ok(outcome)
    }

    async fn discard<'a>(&'a self, part: PartOf<'a>) -> Result<(), Error> {
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
        let stopped = self.stopped_part(part)?;
        let (stops, progress) = Stops::resuming(depth, stopped);
        let journal = Part {
            thread: self.thread,
            interrupts: self.interrupts,
            stops,
        };
        Ok((journal, progress))
    }

    async fn keep_stopped<'a>(
        &'a self,
        part: PartOf<'a>,
        mut journal: Part<'a>,
        update: S::Update,
        steps: u64,
        trail: &'a Trail,
    ) -> Result<(), Error>
    where
        S: 'a,
    {
        let stopped = journal.stops.stopped(update, steps, trail);
        self.keep_stopped_part(part, stopped).await
    }

    fn run_start(&mut self, part: PartOf<'_>, depth: usize) -> Result<Option<Progress<S>>, Error> {
        let stopped = self.stopped_part(part)?;
        let (stops, progress) = Stops::resuming(depth, stopped);
        self.in_place = Some(stops);
        Ok(progress)
    }

    async fn run_finish<'a>(
        &'a mut self,
        part: PartOf<'a>,
        action: Option<&'static str>,
        update: S::Update,
        steps: u64,
        trail: &'a Trail,
    ) -> Result<S::Update, Error>
    where
        S: 'a,
    {
        let mut in_place = self.in_place.take().unwrap_or_default();
        if let Some(action) = action {
            let kept = self.keep(part, Branch::new(action, update, steps)).await?;
            return Ok(kept.update);
        }
        let stopped = in_place.stopped(update, steps, trail);
        self.keep_stopped_part(part, stopped).await?;
        Ok(S::Update::default())
    }

    fn items(&self, here: Here<'_>) -> Option<&dyn ItemJournal> {
        (here.composite == 0).then_some(self as &dyn ItemJournal)
    }
}

/// A kept batch's items, in a durable step saved on its own.
impl<S, St: CheckpointStore> ItemJournal for Recorder<'_, S, St> {
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

    fn keep_item<'a>(&'a self, at: At<'a>, index: usize, output: Value) -> KeepItem<'a> {
        Box::pin(async move {
            let record = StepRecord {
                node: join_path(at.flows, at.node),
                key: index.to_string(),
                update: output,
                ..StepRecord::new(at.step.saturating_sub(1), RecordKind::Kept)
            };
            let mut claim = self.claim.lock().await;
            self.write_unsaved(&mut claim).await?;
            self.store.append(&mut claim, &record).await?;
            self.compact_due.store(true, Relaxed);
            Ok(())
        })
    }
}
