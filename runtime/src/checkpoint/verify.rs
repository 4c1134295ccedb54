//! Reading a whole thread, or every thread of a store, to find damage before a resume needs the
//! damaged record: [`CheckpointStore::verify`] and [`CheckpointStore::verify_all`].

use super::{CheckpointStore, RecordKind, Records, StoreError, ThreadLog};

/// A thread read whole: every record's checksum matched, its records go forward from its start.
/// What [`CheckpointStore::verify`] returns.
///
/// ```
/// use slateflow::checkpoint::{CheckpointStore, MemoryStore, RecordKind, StepRecord};
/// # tokio::runtime::Builder::new_current_thread().build().unwrap().block_on(async {
/// let store = MemoryStore::new();
/// let start = StepRecord::new(0, RecordKind::Start).with_snapshot(serde_json::json!({}));
/// let mut claim = store.create("t-1", "Counter", &[start]).await?;
/// store.append(&mut claim, &StepRecord::new(1, RecordKind::Step)).await?;
/// let verified = store.verify("t-1").await?;
/// assert_eq!((verified.records, verified.last_step, verified.dropped_torn_record), (2, 1, false));
/// # Ok::<(), slateflow::checkpoint::StoreError>(())
/// # }).unwrap();
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct Verified {
    /// The thread.
    pub thread: String,
    /// Its records, all read.
    pub records: usize,
    /// Its last saved step.
    pub last_step: u64,
    /// A torn last record (a write a crash cut short) was found and left out: not damage, the
    /// step it held was not saved, and the thread's next claim removes it.
    pub dropped_torn_record: bool,
}

/// Every thread of a store read whole: what [`CheckpointStore::verify_all`] returns.
///
/// ```
/// use slateflow::checkpoint::{CheckpointStore, MemoryStore, RecordKind, StepRecord};
/// # tokio::runtime::Builder::new_current_thread().build().unwrap().block_on(async {
/// let store = MemoryStore::new();
/// for thread in ["t-1", "t-2"] {
///     let start = StepRecord::new(0, RecordKind::Start).with_snapshot(serde_json::json!({}));
///     store.create(thread, "Counter", &[start]).await?;
/// }
/// let all = store.verify_all().await?;
/// assert!(all.is_sound());
/// assert_eq!(all.sound.len(), 2);
/// # Ok::<(), slateflow::checkpoint::StoreError>(())
/// # }).unwrap();
/// ```
#[derive(Debug, Default)]
#[non_exhaustive]
pub struct Verification {
    /// The threads found whole.
    pub sound: Vec<Verified>,
    /// For each damaged thread, the error naming its first damaged record.
    pub damaged: Vec<StoreError>,
}

impl Verification {
    /// Whether every thread was found whole.
    pub fn is_sound(&self) -> bool {
        self.damaged.is_empty()
    }
}

pub(super) async fn thread<St: CheckpointStore + ?Sized>(
    store: &St,
    thread: &str,
) -> Result<Verified, StoreError> {
    history(thread, &store.load(thread, Records::All).await?)
}

/// Checks a thread's whole history, read with [`Records::All`].
pub(crate) fn history(thread: &str, log: &ThreadLog) -> Result<Verified, StoreError> {
    let corrupt = |index: usize, reason: String| StoreError::Corrupt {
        thread: thread.to_string(),
        what: format!("record {} of its history", index + 1),
        reason,
    };
    match log.records.first() {
        Some(first) if first.kind == RecordKind::Start && first.snapshot.is_some() => {}
        Some(_) => {
            return Err(corrupt(
                0,
                "a history begins with a start record holding the state".into(),
            ));
        }
        None => return Err(corrupt(0, "the history is empty".into())),
    }
    let mut last = 0;
    for (index, record) in log.records.iter().enumerate() {
        if record.step < last {
            return Err(corrupt(
                index,
                format!(
                    "its step {} comes after step {last}: records never go backwards",
                    record.step
                ),
            ));
        }
        last = record.step;
    }
    Ok(Verified {
        thread: thread.to_string(),
        records: log.records.len(),
        last_step: log.last_step,
        dropped_torn_record: log.dropped_torn_record,
    })
}

pub(super) async fn all<St: CheckpointStore + ?Sized>(
    store: &St,
) -> Result<Verification, StoreError> {
    let ids = store.threads().await?.into_iter().map(|info| info.id);
    each(store, ids).await
}

/// Verifies the threads `ids` of `store`, going on past damaged ones.
pub(super) async fn each<St: CheckpointStore + ?Sized>(
    store: &St,
    ids: impl IntoIterator<Item = String>,
) -> Result<Verification, StoreError> {
    let mut verification = Verification::default();
    for id in ids {
        match thread(store, &id).await {
            Ok(verified) => verification.sound.push(verified),
            Err(error @ (StoreError::Corrupt { .. } | StoreError::Io { .. })) => {
                verification.damaged.push(error);
            }
            // Deleted since the list was read: nothing to verify.
            Err(StoreError::UnknownThread { .. }) => {}
            Err(error) => return Err(error),
        }
    }
    Ok(verification)
}
