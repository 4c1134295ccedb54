//! An in-memory checkpoint store, for tests.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};

use super::{
    CheckpointStore, FlowInfo, RecordKind, Records, RunStatus, StepRecord, StoreError, ThreadInfo,
    ThreadLog, as_read, check_new, check_order, check_thread_id, flow_of,
};

/// Keeps threads in memory: fast, and gone with the process. For tests.
///
/// Claims work as in the other stores: a second claim on a thread is refused until the first is
/// dropped.
///
/// ```
/// use serde::{Deserialize, Serialize};
/// use slateflow::checkpoint::MemoryStore;
/// use slateflow::{Command, SharedState, flow, node};
///
/// #[derive(SharedState, Clone, Debug, Default, Serialize, Deserialize)]
/// struct Counter {
///     #[reducer(add)]
///     count: u32,
/// }
///
/// #[node]
/// fn count(_: &Counter) -> Command<Counter> {
///     Command::new(Counter::update().add_count(1))
/// }
///
/// // A store for tests: every thread lives as long as the store (clones share it).
/// let store = MemoryStore::new();
/// let flow = flow! { count; };
/// let durable = flow.durable(store.clone());
/// let durable = durable.blocking()?;
/// durable.start("t-1", &mut Counter::default())?;
/// assert_eq!(durable.state("t-1")?.count, 1);
/// assert_eq!(durable.history("t-1")?.len(), 2); // the start and one step
/// # Ok::<(), slateflow::Error>(())
/// ```
#[derive(Debug, Default, Clone)]
pub struct MemoryStore {
    threads: Arc<Mutex<BTreeMap<String, Thread>>>,
    flows: Arc<Mutex<BTreeMap<String, FlowInfo>>>,
}

#[derive(Debug)]
struct Thread {
    state_type: String,
    status: RunStatus,
    records: Vec<StepRecord>,
    claimed: bool,
    /// Raised by every claim and by a cancel: a claim with another number is refused.
    number: u64,
}

impl Thread {
    fn last_step(&self) -> u64 {
        self.records.last().map_or(0, |record| record.step)
    }
}

/// A claim on a thread of a [`MemoryStore`]; dropping it gives the thread up.
#[derive(Debug)]
pub struct MemoryClaim {
    threads: Arc<Mutex<BTreeMap<String, Thread>>>,
    thread: String,
    number: u64,
}

impl Drop for MemoryClaim {
    fn drop(&mut self) {
        if let Some(thread) = lock(&self.threads).get_mut(&self.thread)
            && thread.number == self.number
        {
            thread.claimed = false;
        }
    }
}

fn lock(threads: &Mutex<BTreeMap<String, Thread>>) -> MutexGuard<'_, BTreeMap<String, Thread>> {
    threads.lock().unwrap_or_else(PoisonError::into_inner)
}

impl MemoryStore {
    /// An empty store.
    pub fn new() -> Self {
        Self::default()
    }

    fn claimed<T>(
        &self,
        claim: &MemoryClaim,
        action: impl FnOnce(&mut Thread) -> Result<T, StoreError>,
    ) -> Result<T, StoreError> {
        let mut threads = lock(&self.threads);
        let thread = threads
            .get_mut(&claim.thread)
            .ok_or_else(|| StoreError::UnknownThread {
                thread: claim.thread.clone(),
            })?;
        if thread.number != claim.number {
            let thread_id = claim.thread.clone();
            return Err(if thread.status == RunStatus::Cancelled {
                StoreError::Cancelled { thread: thread_id }
            } else {
                StoreError::Claimed { thread: thread_id }
            });
        }
        action(thread)
    }
}

fn status(thread: &Thread) -> RunStatus {
    as_read(thread.status.clone(), thread.claimed)
}

impl CheckpointStore for MemoryStore {
    type Claim = MemoryClaim;

    async fn create(
        &self,
        thread: &str,
        state_type: &str,
        records: &[StepRecord],
    ) -> Result<MemoryClaim, StoreError> {
        check_new(thread, records)?;
        let mut threads = lock(&self.threads);
        if threads.contains_key(thread) {
            return Err(StoreError::ThreadExists {
                thread: thread.to_string(),
            });
        }
        threads.insert(
            thread.to_string(),
            Thread {
                state_type: state_type.to_string(),
                status: RunStatus::Running,
                records: records.to_vec(),
                claimed: true,
                number: 1,
            },
        );
        Ok(MemoryClaim {
            threads: Arc::clone(&self.threads),
            thread: thread.to_string(),
            number: 1,
        })
    }

    async fn claim(&self, thread: &str) -> Result<MemoryClaim, StoreError> {
        check_thread_id(thread)?;
        let mut threads = lock(&self.threads);
        let saved = threads
            .get_mut(thread)
            .ok_or_else(|| StoreError::UnknownThread {
                thread: thread.to_string(),
            })?;
        if saved.claimed {
            return Err(StoreError::Claimed {
                thread: thread.to_string(),
            });
        }
        saved.claimed = true;
        saved.number += 1;
        Ok(MemoryClaim {
            threads: Arc::clone(&self.threads),
            thread: thread.to_string(),
            number: saved.number,
        })
    }

    async fn append(&self, claim: &mut MemoryClaim, record: &StepRecord) -> Result<(), StoreError> {
        self.claimed(claim, |thread| {
            check_order(&claim.thread, thread.last_step(), record)?;
            thread.records.push(record.clone());
            Ok(())
        })
    }

    async fn append_all(
        &self,
        claim: &mut MemoryClaim,
        records: &[StepRecord],
    ) -> Result<(), StoreError> {
        self.claimed(claim, |thread| {
            let mut last = thread.last_step();
            for record in records {
                check_order(&claim.thread, last, record)?;
                last = record.step;
            }
            thread.records.extend_from_slice(records);
            Ok(())
        })
    }

    async fn compact(
        &self,
        claim: &mut MemoryClaim,
        steps: std::ops::Range<u64>,
    ) -> Result<(), StoreError> {
        self.claimed(claim, |thread| {
            // Only the records at the last steps are looked at.
            let start = thread
                .records
                .iter()
                .rposition(|record| record.step < steps.start)
                .map_or(0, |index| index + 1);
            let mut tail = thread.records.split_off(start);
            tail.retain(|record| {
                !(steps.contains(&record.step)
                    && matches!(record.kind, RecordKind::Kept | RecordKind::Discard))
            });
            thread.records.append(&mut tail);
            Ok(())
        })
    }

    async fn set_status(
        &self,
        claim: &mut MemoryClaim,
        status: &RunStatus,
    ) -> Result<(), StoreError> {
        self.claimed(claim, |thread| {
            thread.status = status.clone();
            Ok(())
        })
    }

    async fn load(&self, thread: &str, records: Records) -> Result<ThreadLog, StoreError> {
        check_thread_id(thread)?;
        let threads = lock(&self.threads);
        let saved = threads
            .get(thread)
            .ok_or_else(|| StoreError::UnknownThread {
                thread: thread.to_string(),
            })?;
        let from = match records {
            Records::All => 0,
            Records::SinceSnapshot => saved
                .records
                .iter()
                .rposition(|record| record.snapshot.is_some())
                .unwrap_or(0),
        };
        Ok(ThreadLog {
            state_type: saved.state_type.clone(),
            status: status(saved),
            records: saved.records[from..].to_vec(),
            last_step: saved.last_step(),
            dropped_torn_record: false,
        })
    }

    async fn threads(&self) -> Result<Vec<ThreadInfo>, StoreError> {
        let threads = lock(&self.threads);
        Ok(threads
            .iter()
            .map(|(id, thread)| ThreadInfo {
                id: id.clone(),
                state_type: thread.state_type.clone(),
                flow: flow_of(&thread.records).to_string(),
                status: status(thread),
                last_step: thread.last_step(),
                updated_at_ms: thread.records.last().map_or(0, |record| record.saved_at_ms),
            })
            .collect())
    }

    async fn delete(&self, claim: MemoryClaim) -> Result<(), StoreError> {
        self.claimed(&claim, |_| Ok(()))?;
        lock(&self.threads).remove(&claim.thread);
        Ok(())
    }

    async fn save_flow(&self, flow: &FlowInfo) -> Result<(), StoreError> {
        self.flows
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .insert(flow.name.clone(), flow.clone());
        Ok(())
    }

    async fn flows(&self) -> Result<Vec<FlowInfo>, StoreError> {
        Ok(self
            .flows
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .values()
            .cloned()
            .collect())
    }

    async fn cancel(&self, thread: &str) -> Result<(), StoreError> {
        check_thread_id(thread)?;
        let mut threads = lock(&self.threads);
        let saved = threads
            .get_mut(thread)
            .ok_or_else(|| StoreError::UnknownThread {
                thread: thread.to_string(),
            })?;
        saved.status = RunStatus::Cancelled;
        // The runner's claim is void: its writes are refused, and its drop changes nothing.
        saved.number += 1;
        saved.claimed = false;
        Ok(())
    }
}
