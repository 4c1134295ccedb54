//! An in-memory checkpoint store, for tests.

use std::collections::BTreeMap;
use std::sync::{Mutex, PoisonError};

use super::{CheckpointStore, RunStatus, StepRecord, StoreError, ThreadLog, check_thread_id};

/// Keeps threads in memory: fast, and gone with the process. For tests.
#[derive(Debug, Default)]
pub struct MemoryStore {
    threads: Mutex<BTreeMap<String, ThreadLog>>,
}

impl MemoryStore {
    /// An empty store.
    pub fn new() -> Self {
        Self::default()
    }

    fn with_thread<T>(
        &self,
        thread: &str,
        action: impl FnOnce(&mut ThreadLog) -> T,
    ) -> Result<T, StoreError> {
        let mut threads = self.threads.lock().unwrap_or_else(PoisonError::into_inner);
        let log = threads
            .get_mut(thread)
            .ok_or_else(|| StoreError::UnknownThread {
                thread: thread.to_string(),
            })?;
        Ok(action(log))
    }
}

impl CheckpointStore for MemoryStore {
    async fn create(
        &self,
        thread: &str,
        state_type: &str,
        first: &StepRecord,
    ) -> Result<(), StoreError> {
        check_thread_id(thread)?;
        let mut threads = self.threads.lock().unwrap_or_else(PoisonError::into_inner);
        if threads.contains_key(thread) {
            return Err(StoreError::ThreadExists {
                thread: thread.to_string(),
            });
        }
        threads.insert(
            thread.to_string(),
            ThreadLog {
                state_type: state_type.to_string(),
                status: RunStatus::Running,
                records: vec![first.clone()],
                dropped_torn_record: false,
            },
        );
        Ok(())
    }

    async fn append(&self, thread: &str, record: &StepRecord) -> Result<(), StoreError> {
        self.with_thread(thread, |log| log.records.push(record.clone()))
    }

    async fn set_status(&self, thread: &str, status: &RunStatus) -> Result<(), StoreError> {
        self.with_thread(thread, |log| log.status = status.clone())
    }

    async fn load(&self, thread: &str) -> Result<ThreadLog, StoreError> {
        self.with_thread(thread, |log| log.clone())
    }

    async fn threads(&self) -> Result<Vec<String>, StoreError> {
        let threads = self.threads.lock().unwrap_or_else(PoisonError::into_inner);
        Ok(threads.keys().cloned().collect())
    }
}
