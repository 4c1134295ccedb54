//! Claims as operating-system file locks: held while a run writes to a thread, and released by
//! the kernel when the holder's file is closed, which includes the death of its process (so a
//! thread whose run was killed is free at once, with no timer to wait for).
//!
//! A lock belongs to the open file, not to the descriptor: a child process forked by any thread
//! of ours (`std::process::Command`, a tool running a program) shares it until the child execs.
//! Closing our descriptor alone would leave the lock held for that while, so a claim released
//! at that moment would still read as held. Locks are therefore let go explicitly
//! ([`File::unlock`]), which frees them for every copy of the descriptor at once.

use std::fs::{File, OpenOptions, TryLockError};
use std::path::Path;
use std::time::Duration;

use super::{StoreError, io_error as io};

/// How long a claim waits for a lock that a reader may be holding for an instant.
const TRIES: u32 = 10;
const PAUSE: Duration = Duration::from_millis(5);

/// A held exclusive lock, let go when dropped (see the module's doc for why explicitly).
#[derive(Debug)]
pub(super) struct Lock(File);

impl Drop for Lock {
    fn drop(&mut self) {
        // Closing the file right after would let go as well, unless a copy of the descriptor
        // lives on in a forked child; an error here leaves that closing to do it.
        let _ = self.0.unlock();
    }
}

/// Takes the exclusive lock on `path` (created if missing) for `thread`.
///
/// A reader probing a lock ([`is_held`]) holds it shared for an instant, so a busy lock is tried a
/// few times over some 50 ms before the claim is refused.
///
/// # Errors
/// [`StoreError::Claimed`] when another holder keeps it; [`StoreError::Io`].
pub(super) fn exclusive(thread: &str, path: &Path) -> Result<Lock, StoreError> {
    let file = OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open(path)
        .map_err(|source| io(thread, "open the claim lock", path, source))?;
    for attempt in 1..=TRIES {
        match file.try_lock() {
            Ok(()) => return Ok(Lock(file)),
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
    match file.try_lock_shared() {
        Ok(()) => {
            // Let go at once, for every copy of the descriptor (see the module's doc).
            let _ = file.unlock();
            false
        }
        Err(TryLockError::WouldBlock) => true,
        Err(TryLockError::Error(_)) => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A copy of the descriptor is what a child forked at that moment holds until it execs.
    #[test]
    fn a_dropped_lock_is_free_while_a_copy_of_its_descriptor_lives() {
        let dir = std::env::temp_dir().join(format!("slateflow-lock-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("claim.lock");
        let held = exclusive("t", &path).unwrap();
        let copy = held.0.try_clone().unwrap();
        assert!(is_held(&path));
        assert!(matches!(
            exclusive("t", &path),
            Err(StoreError::Claimed { thread }) if thread == "t"
        ));
        drop(held);
        assert!(!is_held(&path), "the copy kept the lock");
        let again = exclusive("t", &path).unwrap();
        drop((again, copy));
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
