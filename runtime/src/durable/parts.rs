//! Pauses inside the parts of a step, at any depth: a node in a flow nested in a fork branch, in
//! a batch flow's sub-flow, or in either of those nested again, pauses its part, which keeps what
//! it had done and where it stood, and goes on from there when resumed.
//!
//! A part's journal has [`Levels`]: the part's own, then one for each batch flow run in place
//! inside it. The recorder has the same for the runs in place of the thread's own steps, whose
//! own level is the store. A level keeps the parts of its own steps (a fork's branches, a batch
//! flow's runs) as they finish or stop, in memory: when the level itself stops, they are saved
//! with it, in its record's [`parts`](StepRecord::parts), one level down; a resumed level reads
//! them back.
//!
//! [`Stops`] is where a level pauses and goes on from; [`Part`] is the journal of a part's run on
//! its own copy of the state; [`Stopped`] is what is kept of a part that stopped.

use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, Ordering::Relaxed};

use serde::Deserialize;
use serde_json::Value;

use super::interrupts::{Interrupts, join_path, pass, path_is};
use super::resume::{Entries, to_json};
use crate::checkpoint::{Pause, PauseWhen, RecordKind, StepRecord};
use crate::error::Error;
use crate::node::Node;
use crate::node::dispatch::{Branch, Stepped};
use crate::run::{
    After, Entry, Here, Journal, Opened, PartOf, Progress, Run, RunEnd, Trail, Watch,
};
use crate::state::SharedState;

/// A part of a step (a fork's branch, a batch flow's run) that stopped at pauses inside its own
/// flow, or that goes on from them: what it had done and where it stood.
pub(super) struct Stopped<S: SharedState> {
    /// The composition of the updates it applied.
    pub(super) update: S::Update,
    /// The node steps it ran.
    pub(super) steps: u64,
    /// Its position in each of its flows, its own outermost first.
    pub(super) positions: Vec<u32>,
    /// The step after which each of its flows was entered.
    pub(super) entered: Vec<u64>,
    /// After a pause after a node: that node's action, to route on; before a node: none (the
    /// node at the last position runs).
    pub(super) action: Option<String>,
    /// The pauses: where, when, and what a node asked.
    pub(super) pauses: Vec<PartPause>,
    /// The parts of the step it stopped in (a fork or batch flow inside it), finished or
    /// stopped.
    pub(super) parts: Vec<StepRecord>,
}

/// A pause inside a part.
#[derive(Debug, Clone, PartialEq)]
pub(super) struct PartPause {
    /// The node's path.
    pub(super) node: String,
    /// The steps before it (for a pause before the node), or its own step.
    pub(super) step: u64,
    /// Before the node; otherwise after it.
    pub(super) before: bool,
    /// What the node asked, for a question.
    pub(super) asked: Option<Value>,
}

/// Where a part of a step pauses and where it goes on from.
#[derive(Debug, Default)]
pub(super) struct Stops {
    /// The trail's depth where the part's own flow is entered.
    base: usize,
    /// Where a stopped part goes on, from the part's own flow down, and where its flows were
    /// entered.
    entries: Entries,
    /// The pauses before nodes that the resumed part goes past: path and step.
    passing: Vec<(String, u64)>,
    pauses: Vec<PartPause>,
    /// The action of the node after which it paused.
    action: Option<&'static str>,
    /// What the keys of its pauses end with: its part's index, then those of the parts around
    /// it (`#1#0`).
    suffix: String,
}

impl Stops {
    /// A part whose own flow is entered at trail depth `base`, going on from where it `stopped`
    /// (if it did): and what it had done then, its update and steps.
    pub(super) fn resuming<S: SharedState>(
        base: usize,
        stopped: Option<Stopped<S>>,
    ) -> (Self, Option<Progress<S>>) {
        let mut stops = Self {
            base,
            ..Self::default()
        };
        let Some(stopped) = stopped else {
            return (stops, None);
        };
        stops.passing = stopped
            .pauses
            .into_iter()
            .filter(|pause| pause.before)
            .map(|pause| (pause.node, pause.step))
            .collect();
        stops.entries = Entries::resuming(stopped.positions, stopped.entered, stopped.action);
        (stops, Some((stopped.update, stopped.steps)))
    }

    /// A flow of the part is entered at trail depth `depth` after `steps` steps.
    pub(super) fn enter_flow(&mut self, depth: usize, steps: u64) -> Option<Entry> {
        self.entries.enter(depth.checked_sub(self.base)?, steps)
    }

    /// Whether the part pauses before the node `name` nested in `flows`, after `step` steps.
    pub(super) fn before(
        &mut self,
        interrupts: &Interrupts,
        flows: &[&'static str],
        name: &'static str,
        step: u64,
    ) -> bool {
        if pass(&mut self.passing, flows, name, step) {
            return false;
        }
        if interrupts.before(flows, name) {
            self.pauses.push(PartPause {
                node: join_path(flows, name),
                step,
                before: true,
                asked: None,
            });
            return true;
        }
        false
    }

    /// Whether the part pauses after the node `name` ran as step `step` with `action`. A
    /// question already `answered` (a part run again after its merge failed asks it again) is
    /// not asked twice: the answer is in the state.
    pub(super) fn after(
        &mut self,
        (interrupts, answered): (&Interrupts, &[String]),
        flows: &[&'static str],
        name: &'static str,
        step: u64,
        action: &'static str,
        asked: Option<&Value>,
    ) -> bool {
        if asked.is_none() && !interrupts.after(flows, name) {
            return false;
        }
        if asked.is_some() && !answered.is_empty() {
            let key = Pause::new(join_path(flows, name), PauseWhen::Asked, step).key;
            if answered.contains(&format!("{key}{}", self.suffix)) {
                return false;
            }
        }
        self.pauses.push(PartPause {
            node: join_path(flows, name),
            step,
            before: false,
            asked: asked.cloned(),
        });
        self.action = Some(action);
        true
    }

    /// Where the part stopped: its update and steps so far, and the trail at the pause.
    pub(super) fn stopped<S: SharedState>(
        &mut self,
        update: S::Update,
        steps: u64,
        trail: &Trail,
        parts: Vec<StepRecord>,
    ) -> Stopped<S> {
        let positions = trail
            .positions()
            .get(self.base..)
            .unwrap_or_default()
            .to_vec();
        let mut entered = self.entries.take_entered();
        entered.truncate(positions.len());
        Stopped {
            update,
            steps,
            positions,
            entered,
            action: self.action.map(str::to_string),
            pauses: std::mem::take(&mut self.pauses),
            parts,
        }
    }

    /// The pause after the node at `here` asked for by an interrupt or a question, as the journal
    /// of a part says it.
    fn after_step(
        &mut self,
        asks: (&Interrupts, &[String]),
        here: Here<'_>,
        action: &'static str,
        asked: Option<&Value>,
    ) -> After {
        if self.after(asks, here.flows, here.name, here.step, action, asked) {
            After::Pause
        } else {
            After::Apply
        }
    }
}

impl Stops {
    /// Whether the level pauses after the fork at `here`, whose `branches` (nodes) ran, some of
    /// them asking `asked`: each asking branch, and each an interrupt names, pauses.
    fn after_fork(
        &mut self,
        asks: (&Interrupts, &[String]),
        here: Here<'_>,
        branches: &'static [&'static str],
        asked: &[(&'static str, Value)],
    ) -> After {
        let mut paused = false;
        for branch in branches {
            let question = asked
                .iter()
                .find(|(asking, _)| asking == branch)
                .map(|(_, question)| question);
            paused |= self.after(
                asks,
                here.flows,
                branch,
                here.step,
                crate::graph::DEFAULT_ACTION,
                question,
            );
        }
        if paused { After::Pause } else { After::Apply }
    }
}

/// One level of a part: the part's own flow, or a batch flow's run in place inside it. It pauses
/// where the interrupts say (or a node asks), goes on from where it stopped, and keeps the parts
/// of its own steps (a fork's branches, a batch flow's runs) in memory, to be saved with it if it
/// stops in their step.
#[derive(Debug, Default)]
pub(super) struct Level {
    pub(super) stops: Stops,
    /// The parts of the step this level stopped in, as an earlier attempt kept them (each is
    /// the record of a part, at that step).
    kept: Vec<StepRecord>,
    /// The parts kept in this attempt, finished or stopped: called from the parts, concurrently.
    parts: Mutex<Vec<StepRecord>>,
    /// The steps before the step a part of this level stopped in, if one did.
    stopped_in: Mutex<Option<u64>>,
    /// The record this level went on from, if any; and whether its parts changed since (a merge
    /// inside it failed and voided some, or a part's own record changed), so that it is kept
    /// again, changed, if its run fails.
    original: Option<StepRecord>,
    changed: AtomicBool,
    /// The steps whose parts failed to merge: the container's path and the steps before it.
    voided: Mutex<Vec<(String, u64)>>,
}

impl Level {
    /// A level whose flow is entered at trail depth `base`, going on from `record` (a part that
    /// stopped in an earlier attempt), if any: and what it had done then.
    ///
    /// # Errors
    /// A kept update that does not read back.
    pub(super) fn resuming<S: SharedState>(
        thread: &str,
        part: PartOf<'_>,
        (base, around): (usize, &str),
        record: Option<StepRecord>,
    ) -> Result<(Self, Option<Progress<S>>), Error> {
        let suffix = format!("#{}{around}", part.index);
        let Some(record) = record else {
            return Ok((
                Self {
                    stops: Stops {
                        base,
                        suffix,
                        ..Stops::default()
                    },
                    ..Self::default()
                },
                None,
            ));
        };
        let stopped = Stopped::<S> {
            update: read_update::<S>(thread, part, &record, "progress")?,
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
            parts: Vec::new(),
        };
        let (mut stops, progress) = Stops::resuming(base, Some(stopped));
        stops.suffix = suffix;
        Ok((
            Self {
                stops,
                kept: record.parts.clone(),
                original: Some(record),
                ..Self::default()
            },
            progress,
        ))
    }

    /// The record an earlier attempt kept for `part`, one of this level's: when it `stopped` at
    /// pauses, or else when it finished.
    pub(super) fn kept(&self, part: PartOf<'_>, stopped: bool) -> Option<&StepRecord> {
        find_kept(&self.kept, part, stopped).filter(|record| !self.is_voided(record))
    }

    /// Whether `record` is of a step whose parts failed to merge.
    fn is_voided(&self, record: &StepRecord) -> bool {
        lock(&self.voided)
            .iter()
            .any(|(node, step)| record.step == *step && record.node == *node)
    }

    /// Keeps `record`, of a part of one of this level's steps; one that `stopped` at pauses
    /// after `before` steps makes the level stop in that step.
    pub(super) fn keep(&self, record: StepRecord, stopped: bool) {
        if stopped {
            *lock(&self.stopped_in) = Some(record.step);
        }
        lock(&self.parts).push(record);
    }

    /// A part of this level's that failed, whose record had to change (`record`, kept again):
    /// this level's own record, if it has one, has to change too.
    pub(super) fn keep_again(&self, record: StepRecord) {
        self.changed.store(true, Relaxed);
        lock(&self.parts).push(record);
    }

    /// The parts of `part`'s step failed to merge: nothing kept of them is used again.
    pub(super) fn discard(&self, part: PartOf<'_>) {
        let container = join_path(part.flows, part.container);
        lock(&self.parts)
            .retain(|record| !(record.step == part.before && record.node == container));
        lock(&self.voided).push((container, part.before));
        self.changed.store(true, Relaxed);
    }

    /// The parts to save with this level, which stopped: those of the step it stopped in, the
    /// latest of each.
    pub(super) fn stopped_parts(&mut self) -> Vec<StepRecord> {
        let Some(before) = *lock(&self.stopped_in) else {
            return Vec::new();
        };
        let kept = std::mem::take(&mut self.kept);
        let new = std::mem::take(&mut *lock(&self.parts));
        let kept = kept.into_iter().filter(|record| !self.is_voided(record));
        latest(kept.chain(new).filter(|record| record.step == before))
    }

    /// When the run of this level failed: its record as it was when the run went on from it,
    /// without the parts voided since, if any were (else the record stands as saved).
    pub(super) fn failed(mut self) -> Option<StepRecord> {
        if !self.changed.load(Relaxed) {
            return None;
        }
        let mut record = self.original.take()?;
        let at = record.parts.first().map(|part| part.step);
        let new = std::mem::take(&mut *lock(&self.parts));
        let kept = std::mem::take(&mut self.kept);
        let kept = kept.into_iter().filter(|record| !self.is_voided(record));
        record.parts = latest(kept.chain(new).filter(|part| Some(part.step) == at));
        record.saved_at_ms = crate::checkpoint::now_ms();
        Some(record)
    }
}

/// A mutex's value, whether or not a part panicked while holding it (each change is whole).
fn lock<T>(mutex: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    mutex
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
}

/// `records` with only the last of each part (node, key and step), in order.
fn latest(records: impl Iterator<Item = StepRecord>) -> Vec<StepRecord> {
    let mut out: Vec<StepRecord> = Vec::new();
    for record in records {
        out.retain(|earlier| {
            (earlier.step, &earlier.node, &earlier.key) != (record.step, &record.node, &record.key)
        });
        out.push(record);
    }
    out
}

/// The last record in `records` kept for `part`, if it `stopped` at pauses (or else finished).
pub(super) fn find_kept<'r>(
    records: &'r [StepRecord],
    part: PartOf<'_>,
    stopped: bool,
) -> Option<&'r StepRecord> {
    let key = part.index.to_string();
    records
        .iter()
        .rev()
        .find(|record| {
            record.step == part.before
                && record.key == key
                && path_is(&record.node, part.flows, part.container)
        })
        .filter(|record| record.pauses.is_empty() != stopped)
}

/// The update of `record`, kept for `part` (its `what`: outcome or progress), read back.
///
/// # Errors
/// [`Error::Resume`] naming the part, when it does not read back.
pub(super) fn read_update<S: SharedState>(
    thread: &str,
    part: PartOf<'_>,
    record: &StepRecord,
    what: &str,
) -> Result<S::Update, Error> {
    S::Update::deserialize(&record.update).map_err(|error| Error::Resume {
        thread: thread.to_string(),
        step: part.before,
        reason: format!(
            "the kept {what} of part {} of `{}` does not read back: {error}",
            part.index, record.node
        ),
    })
}

/// The record of `part`, finished with `outcome`.
///
/// # Errors
/// An update that does not serialize.
pub(super) fn finished_record<S: SharedState>(
    thread: &str,
    part: PartOf<'_>,
    outcome: &Branch<S>,
) -> Result<StepRecord, Error> {
    Ok(StepRecord {
        node: join_path(part.flows, part.container),
        key: part.index.to_string(),
        action: outcome.action.to_string(),
        update: to_json(thread, part.before, &outcome.update)?,
        steps: outcome.steps,
        ..StepRecord::new(part.before, RecordKind::Kept)
    })
}

/// The record of `part`, which `stopped` at pauses: its update, steps, position and pauses, with
/// those of the parts it stopped in, whose keys end with the part (the runs of a batch flow share
/// their nodes' paths and steps).
///
/// # Errors
/// An update that does not serialize.
pub(super) fn stopped_record<S: SharedState>(
    thread: &str,
    part: PartOf<'_>,
    stopped: Stopped<S>,
) -> Result<StepRecord, Error> {
    let own = stopped.pauses.into_iter().map(|part| {
        let when = match (part.before, &part.asked) {
            (true, _) => PauseWhen::Before,
            (false, None) => PauseWhen::After,
            (false, Some(_)) => PauseWhen::Asked,
        };
        let mut pause = Pause::new(part.node, when, part.step);
        pause.asked = part.asked;
        pause
    });
    let inner = stopped
        .parts
        .iter()
        .flat_map(|record| record.pauses.iter().cloned());
    let pauses = own
        .chain(inner)
        .map(|mut pause| {
            pause.key = format!("{}#{}", pause.key, part.index);
            pause
        })
        .collect();
    Ok(StepRecord {
        node: join_path(part.flows, part.container),
        key: part.index.to_string(),
        action: stopped.action.unwrap_or_default(),
        position: stopped.positions,
        entered: stopped.entered,
        update: to_json(thread, part.before, &stopped.update)?,
        steps: stopped.steps,
        pauses,
        parts: stopped.parts,
        ..StepRecord::new(part.before, RecordKind::Kept)
    })
}

/// The levels a journal steers, outermost first: a part's own level (inside no composite step
/// of its run), then one per batch flow run in place, each inside one more composite step. The
/// recorder's first level is inside one composite step: the thread's own level is the store.
#[derive(Debug)]
pub(super) struct Levels {
    levels: Vec<Level>,
    /// How many composite steps the first level is inside.
    first: u32,
}

impl Levels {
    /// The levels of the runs in place of a thread's top level: none yet.
    pub(super) const fn in_place() -> Self {
        Self {
            levels: Vec::new(),
            first: 1,
        }
    }

    /// The levels of a part, its own first.
    fn of_part(own: Level) -> Self {
        Self {
            levels: vec![own],
            first: 0,
        }
    }

    /// The level of a step inside `composite` composite steps.
    fn at(&self, composite: u32) -> Option<&Level> {
        let index = composite.checked_sub(self.first)?;
        self.levels.get(usize::try_from(index).ok()?)
    }

    fn at_mut(&mut self, composite: u32) -> Option<&mut Level> {
        let index = composite.checked_sub(self.first)?;
        self.levels.get_mut(usize::try_from(index).ok()?)
    }

    /// A flow is entered at trail depth `depth` inside `composite` composite steps: where the
    /// run in place there goes on, if it stopped there.
    pub(super) fn enter_flow(&mut self, depth: usize, steps: u64, composite: u32) -> Option<Entry> {
        let level = self.at_mut(composite)?;
        level.stops.enter_flow(depth, steps)
    }

    pub(super) fn pause_before(&mut self, interrupts: &Interrupts, here: Here<'_>) -> bool {
        self.at_mut(here.composite).is_some_and(|level| {
            level
                .stops
                .before(interrupts, here.flows, here.name, here.step)
        })
    }

    pub(super) fn after(
        &mut self,
        asks: (&Interrupts, &[String]),
        here: Here<'_>,
        action: &'static str,
        asked: Option<&Value>,
    ) -> After {
        match self.at_mut(here.composite) {
            Some(level) => level.stops.after_step(asks, here, action, asked),
            None if asked.is_some() => After::CannotAsk,
            None => After::Apply,
        }
    }

    pub(super) fn after_fork(
        &mut self,
        asks: (&Interrupts, &[String]),
        here: Here<'_>,
        branches: &'static [&'static str],
        asked: &[(&'static str, Value)],
    ) -> After {
        match self.at_mut(here.composite) {
            Some(level) => level.stops.after_fork(asks, here, branches, asked),
            None if !asked.is_empty() => After::CannotAsk,
            None => After::Apply,
        }
    }

    /// The level that keeps `part`'s record: the one its container is in.
    pub(super) fn keeper(&self, part: PartOf<'_>) -> Option<&Level> {
        self.at(part.composite)
    }

    /// What the keys of the pauses of the level that keeps `part`'s record end with (nothing
    /// at a thread's top level).
    pub(super) fn suffix(&self, part: PartOf<'_>) -> String {
        self.keeper(part)
            .map_or_else(String::new, |level| level.stops.suffix.clone())
    }

    /// The record of the first level, a part's own, which stopped having applied `update` in
    /// `steps` steps, `trail` where.
    fn stopped<S: SharedState>(
        mut self,
        thread: &str,
        part: PartOf<'_>,
        update: S::Update,
        steps: u64,
        trail: &Trail,
    ) -> Result<StepRecord, Error> {
        let mut own = self.levels.swap_remove(0);
        let parts = own.stopped_parts();
        let stopped = own.stops.stopped::<S>(update, steps, trail, parts);
        stopped_record(thread, part, stopped)
    }

    /// `part`, a run in place, starts at trail depth `depth`, going on from `record`, inside
    /// the level whose keys end with `around`.
    ///
    /// # Errors
    /// A kept update that does not read back.
    pub(super) fn start<S: SharedState>(
        &mut self,
        thread: &str,
        part: PartOf<'_>,
        (depth, around): (usize, &str),
        record: Option<StepRecord>,
    ) -> Result<Option<Progress<S>>, Error> {
        let (level, progress) = Level::resuming::<S>(thread, part, (depth, around), record)?;
        self.levels.push(level);
        Ok(progress)
    }

    /// `part`, the innermost run in place, ended, having applied `update` in `steps` steps: the
    /// record to keep for it in the level (or store) around it, if any, and for a run that
    /// finished, its update, handed back to be applied.
    ///
    /// # Errors
    /// An update that does not serialize.
    pub(super) fn finish<S: SharedState>(
        &mut self,
        thread: &str,
        part: PartOf<'_>,
        end: RunEnd,
        update: S::Update,
        steps: u64,
        trail: &Trail,
    ) -> Result<(Option<StepRecord>, S::Update), Error> {
        let mut level = self.levels.pop().unwrap_or_default();
        Ok(match end {
            RunEnd::Finished(action) => {
                let outcome = Branch::<S>::new(action, update, steps);
                let record = finished_record(thread, part, &outcome)?;
                (Some(record), outcome.update)
            }
            RunEnd::Stopped => {
                let parts = level.stopped_parts();
                let stopped = level.stops.stopped::<S>(update, steps, trail, parts);
                (
                    Some(stopped_record(thread, part, stopped)?),
                    S::Update::default(),
                )
            }
            RunEnd::Failed => (level.failed(), S::Update::default()),
        })
    }
}

/// The journal of a part's run on its own copy of the state, in a durable run: it pauses where
/// the run's interrupts say (or a node asks), goes on from where a stopped part stood, and keeps
/// the parts of its own steps, at any depth. Nothing is committed: the run commits the part with
/// its step.
pub(super) struct Part<'p> {
    pub(super) thread: &'p str,
    pub(super) interrupts: &'p Interrupts,
    /// The keys of the pauses answered at the thread's step.
    pub(super) answered: &'p [String],
    /// The part's own level, then the batch flow runs in place inside it.
    levels: Levels,
}

impl<'p> Part<'p> {
    /// The journal of `part`, whose own flow is entered at trail depth `depth`, going on from
    /// `record` if it stopped in an earlier attempt; inside the level whose keys end with
    /// `around`.
    ///
    /// # Errors
    /// A kept update that does not read back.
    pub(super) fn new<S: SharedState>(
        (thread, interrupts, answered): (&'p str, &'p Interrupts, &'p [String]),
        part: PartOf<'_>,
        (depth, around): (usize, &str),
        record: Option<StepRecord>,
    ) -> Result<(Self, Option<Progress<S>>), Error> {
        let (own, progress) = Level::resuming::<S>(thread, part, (depth, around), record)?;
        let journal = Self {
            thread,
            interrupts,
            answered,
            levels: Levels::of_part(own),
        };
        Ok((journal, progress))
    }

    /// The record the part stopped with, `update` applied in `steps` steps, `trail` where.
    ///
    /// # Errors
    /// An update that does not serialize.
    pub(super) fn stopped<S: SharedState>(
        self,
        part: PartOf<'_>,
        update: S::Update,
        steps: u64,
        trail: &Trail,
    ) -> Result<StepRecord, Error> {
        self.levels
            .stopped::<S>(self.thread, part, update, steps, trail)
    }

    /// When the part's run failed: its record, changed, if it has to be kept again (see
    /// [`Level::failed`]).
    pub(super) fn failed(mut self) -> Option<StepRecord> {
        self.levels.levels.swap_remove(0).failed()
    }
}

impl<S: SharedState> Journal<S> for Part<'_> {
    const PAUSES: bool = true;

    type Part<'q>
        = Part<'q>
    where
        Self: 'q;

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
        self.levels.enter_flow(depth, steps, composite)
    }

    fn pause_before(&mut self, here: Here<'_>) -> bool {
        self.levels.pause_before(self.interrupts, here)
    }

    fn after(&mut self, here: Here<'_>, action: &'static str, asked: Option<&Value>) -> After {
        self.levels
            .after((self.interrupts, self.answered), here, action, asked)
    }

    fn after_fork(
        &mut self,
        here: Here<'_>,
        branches: &'static [&'static str],
        asked: &[(&'static str, Value)],
    ) -> After {
        self.levels
            .after_fork((self.interrupts, self.answered), here, branches, asked)
    }

    fn keeps(&self, _: Here<'_>) -> bool {
        true
    }

    fn kept(&self, part: PartOf<'_>) -> Result<Option<(S::Update, u64, &str)>, Error> {
        let Some(record) = self
            .levels
            .keeper(part)
            .and_then(|level| level.kept(part, false))
        else {
            return Ok(None);
        };
        let update = read_update::<S>(self.thread, part, record, "outcome")?;
        Ok(Some((update, record.steps, record.action.as_str())))
    }

    async fn keep<'a>(&'a self, part: PartOf<'a>, outcome: Branch<S>) -> Result<Branch<S>, Error>
    where
        S: 'a,
    {
        if let Some(level) = self.levels.keeper(part) {
            level.keep(finished_record(self.thread, part, &outcome)?, false);
        }
        Ok(outcome)
    }

    async fn discard<'a>(&'a self, part: PartOf<'a>) -> Result<(), Error>
    where
        S: 'a,
    {
        if let Some(level) = self.levels.keeper(part) {
            level.discard(part);
        }
        Ok(())
    }

    fn part(
        &self,
        part: PartOf<'_>,
        depth: usize,
    ) -> Result<(Part<'_>, Option<Progress<S>>), Error> {
        let record = self
            .levels
            .keeper(part)
            .and_then(|level| level.kept(part, true))
            .cloned();
        let around = self.levels.suffix(part);
        Part::new::<S>(
            (self.thread, self.interrupts, self.answered),
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
        if let Some(level) = self.levels.keeper(part) {
            level.keep(record, true);
        }
        Ok(())
    }

    async fn part_failed<'a>(&'a self, part: PartOf<'a>, journal: Part<'a>) -> Result<(), Error>
    where
        S: 'a,
    {
        if let (Some(record), Some(level)) = (journal.failed(), self.levels.keeper(part)) {
            level.keep_again(record);
        }
        Ok(())
    }

    fn run_start(&mut self, part: PartOf<'_>, depth: usize) -> Result<Option<Progress<S>>, Error> {
        let record = self
            .levels
            .keeper(part)
            .and_then(|level| level.kept(part, true))
            .cloned();
        let around = self.levels.suffix(part);
        self.levels
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
            self.levels
                .finish::<S>(self.thread, part, end, update, steps, trail)?;
        if let (Some(record), Some(level)) = (record, self.levels.keeper(part)) {
            match end {
                RunEnd::Failed => level.keep_again(record),
                _ => level.keep(record, end == RunEnd::Stopped),
            }
        }
        Ok(update)
    }
}
