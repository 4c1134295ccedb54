//! Claims as operating-system file locks: held while a run writes to a thread, and released by
//! the kernel when the holder's file is closed, which includes the death of its process (so a
//! thread whose run was killed is free at once, with no timer to wait for).

use std::fs::{File, OpenOptions, TryLockError};
use std::path::Path;
use std::time::Duration;

use super::{StoreError, io_error as io};

/// How long a claim waits for a lock that a reader may be holding for an instant.
const TRIES: u32 = 10;
const PAUSE: Duration = Duration::from_millis(5);

/// Takes the exclusive lock on `path` (created if missing) for `thread`.
///
/// A reader probing a lock ([`is_held`]) holds it shared for an instant, so a busy lock is tried a
/// few times over some 50 ms before the claim is refused.
///
/// # Errors
/// [`StoreError::Claimed`] when another holder keeps it; [`StoreError::Io`].
pub(super) fn exclusive(thread: &str, path: &Path) -> Result<File, StoreError> {
    let file = OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open(path)
        .map_err(|source| io(thread, "open the claim lock", path, source))?;
    for attempt in 1..=TRIES {
        match file.try_lock() {
            Ok(()) => return Ok(file),
            Err(TryLockError::WouldBlock) if attempt < TRIES => std::thread::sleep(PAUSE),
            Err(TryLockError::WouldBlock) => break,
            Err(TryLockError::Error(source)) => {
                return Err(io(thread, "lock", path, source));
            }
        }
    }
    Err(StoreError::Claimed {
        thread: thread.to_string(),
    })
}

/// Whether someone holds the exclusive lock on `path` (a missing file is not held).
pub(super) fn is_held(path: &Path) -> bool {
    let Ok(file) = File::open(path) else {
        return false;
    };
    matches!(file.try_lock_shared(), Err(TryLockError::WouldBlock))
}
