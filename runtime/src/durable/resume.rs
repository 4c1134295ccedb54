//! Resuming a thread: what its records say about where it stands (the state, rebuilt from the
//! last snapshot and the updates after it; the pauses waiting; the parts of the next step kept),
//! and where a resumed run goes on in each flow it enters ([`Entries`]).

use std::panic::AssertUnwindSafe;

use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::checkpoint::{Pause, RecordKind, RunStatus, StepRecord};
use crate::error::Error;
use crate::run::{Entry, panic_message};
use crate::state::SharedState;

/// Where a resumed run goes on, level by level (the positions of a saved step, the steps after
/// which its flows were entered, and the action to route on at the innermost level, if any); and
/// the step after which each flow around the current node was entered, to save with a step.
/// Levels count from where the resuming starts: the outermost flow, or a part's own flow.
#[derive(Debug, Default)]
pub(super) struct Entries {
    cursor: Option<(Vec<u32>, Vec<u64>, Option<String>)>,
    /// How many levels of the cursor were entered.
    level: usize,
    entered: Vec<u64>,
}

impl Entries {
    /// Going on from `positions`, with the flows entered after `entered` steps and `action` to
    /// route on at the innermost level (none: the node there runs).
    pub(super) fn resuming(positions: Vec<u32>, entered: Vec<u64>, action: Option<String>) -> Self {
        Self {
            cursor: Some((positions, entered, action)),
            ..Self::default()
        }
    }

    /// A flow is entered at level `level` after `steps` steps: where to go on, on resume.
    pub(super) fn enter(&mut self, level: usize, steps: u64) -> Option<Entry> {
        let entry = self
            .cursor
            .as_mut()
            .and_then(|(positions, entered, action)| {
                let position = *positions.get(self.level)? as usize;
                self.level += 1;
                let innermost = self.level == positions.len();
                Some((
                    Entry {
                        position,
                        action: if innermost { action.take() } else { None },
                        entered: entered.get(level).copied(),
                    },
                    innermost,
                ))
            });
        let entry = entry.map(|(entry, innermost)| {
            if innermost {
                self.cursor = None;
            }
            entry
        });
        self.entered.truncate(level);
        self.entered.push(
            entry
                .as_ref()
                .and_then(|entry| entry.entered)
                .unwrap_or(steps),
        );
        entry
    }

    /// The step after which each flow around the current node was entered, outermost first.
    pub(super) fn entered(&self) -> &[u64] {
        &self.entered
    }

    /// The same, taken.
    pub(super) fn take_entered(&mut self) -> Vec<u64> {
        std::mem::take(&mut self.entered)
    }
}

/// The status of a thread waiting at `pauses`.
pub(super) fn paused_status(pauses: &[Pause]) -> RunStatus {
    RunStatus::Paused {
        pauses: pauses.iter().map(|pause| pause.key.clone()).collect(),
    }
}

/// The pauses at the end of a thread's records.
#[derive(Debug, Default)]
pub(super) struct Waiting {
    /// Saved and not yet gone past.
    pub(super) pending: Vec<Pause>,
    /// Gone past by the last resume at this step: a node before which it paused runs now.
    pub(super) passed: Vec<Pause>,
    /// The keys of the pauses answered at this step.
    pub(super) answered: Vec<String>,
    /// Finished parts of the next step (fork branches, batch flow runs), kept since the last
    /// input at this step.
    pub(super) kept: Vec<StepRecord>,
}

impl Waiting {
    /// Reads the records after the last step (a step's own pauses, then pause, resume and input
    /// records, in order).
    pub(super) fn at_end(records: &[StepRecord]) -> Self {
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
                    // A part that stopped at pauses inside its own flow: they wait like others;
                    // unless they were answered or gone past already (a part kept again,
                    // changed, after a merge inside it failed).
                    let gone = |pause: &Pause| {
                        waiting.answered.contains(&pause.key)
                            || waiting.passed.iter().any(|passed| passed.key == pause.key)
                    };
                    let new: Vec<Pause> = record
                        .pauses
                        .iter()
                        .filter(|pause| !gone(pause))
                        .cloned()
                        .collect();
                    waiting.pending.extend(new);
                    waiting.kept.push(record.clone());
                }
                RecordKind::Discard => {
                    // Their merge failed: the parts run again, and the pauses they had stopped
                    // at (answered, for the merge to happen) are theirs no longer.
                    for kept in waiting.kept.drain(..) {
                        waiting.pending.retain(|pending| {
                            !kept.pauses.iter().any(|pause| pause.key == pending.key)
                        });
                    }
                }
                _ => {}
            }
        }
        waiting
    }
}

/// Where a run of a thread starts: after `steps` saved steps, at `entries`.
pub(super) struct Resume {
    pub(super) steps: u64,
    pub(super) entries: Entries,
    /// The nodes (paths) before which the thread paused and which it now goes past, with the
    /// steps before them.
    pub(super) passing: Vec<(String, u64)>,
    /// The size of the last snapshot saved, as JSON.
    pub(super) snapshot_bytes: usize,
    /// Finished parts of the step after `steps`, kept by an earlier attempt of it.
    pub(super) kept: Vec<StepRecord>,
    /// The keys of the pauses answered at step `steps`.
    pub(super) answered: Vec<String>,
}

impl Resume {
    /// Where a new thread's run starts: at its start record, whose snapshot is
    /// `snapshot_bytes` long.
    pub(super) fn at_start(snapshot_bytes: usize) -> Self {
        Self {
            steps: 0,
            entries: Entries::default(),
            passing: Vec::new(),
            snapshot_bytes,
            kept: Vec::new(),
            answered: Vec::new(),
        }
    }
}

/// The length of `value` as compact JSON, counted without building the text.
pub(super) fn json_len(value: &Value) -> usize {
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
pub(super) fn state_type<S>() -> &'static str {
    std::any::type_name::<S>()
}

pub(super) fn snapshot<S: Serialize>(thread: &str, step: u64, state: &S) -> Result<Value, Error> {
    serde_json::to_value(state).map_err(|error| Error::Save {
        thread: thread.to_string(),
        step,
        reason: format!(
            "the state does not serialize ({error}); mark fields that cannot be saved \
             `#[serde(skip)]`"
        ),
    })
}

pub(super) fn to_json<T: Serialize>(thread: &str, step: u64, update: &T) -> Result<Value, Error> {
    serde_json::to_value(update).map_err(|error| Error::Save {
        thread: thread.to_string(),
        step,
        reason: format!("the update does not serialize: {error}"),
    })
}

/// The state after step `until` (inclusive, with its inputs): the last snapshot at or before it,
/// then the updates after that snapshot. A reducer that panics is an error, not an unwind.
pub(super) fn rebuild<S: SharedState + DeserializeOwned>(
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
