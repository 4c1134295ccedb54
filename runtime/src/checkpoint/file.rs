//! The default checkpoint store: a directory per thread. The format is on [`FileStore`].

use std::fs::{self, File, OpenOptions};
use std::io::Write;
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use serde::{Deserialize, Serialize};

use super::{
    CheckpointStore, FlowInfo, RecordKind, Records, RunStatus, StepRecord, StoreError, ThreadInfo,
    ThreadLog, as_read, check_new, check_order, check_thread_id, crc32, crc32_update, flow_of,
    io_error as io, lock, status_json,
};

const META: &str = "meta.json";
const STATUS: &str = "status.json";
const LOG: &str = "steps.log";
const CLAIM: &str = "claim.lock";
const CANCELLED: &str = "cancelled";
/// The version of the format below.
const FORMAT: u32 = 2;
/// How much of the log a tail read takes at a time.
const CHUNK: u64 = 64 * 1024;
/// How old a hidden folder of a thread being made must be before a sweep takes it for abandoned.
const ABANDONED: Duration = Duration::from_secs(60);
/// The log rewritten without its compacted records, before it replaces the log.
const COMPACTED: &str = ".steps.log.compacted";
/// The least bytes of compacted records that make the log worth rewriting.
const REWRITE_AT_LEAST: u64 = 64 * 1024;
/// The folder of the saved flows, beside the threads (no thread's id starts with a dot).
const FLOWS: &str = ".flows";

/// The default checkpoint store: a directory, one folder per thread.
///
/// ```text
/// <root>/<thread>/meta.json     the state type and the format; written once
/// <root>/<thread>/status.json   the run's status; replaced atomically
/// <root>/<thread>/steps.log     one record per line: `<crc32 of the JSON, 8 hex> <s|-> <JSON>`
/// <root>/<thread>/claim.lock    locked (flock) by the run that holds the thread's claim
/// <root>/<thread>/cancelled     present once the thread is cancelled; empty
/// ```
/// A thread is made whole in a hidden folder, then renamed into place, so after a crash it exists
/// with all its first records or not at all; the hidden folders a crash leaves are swept when the
/// store is next opened. Whole files are written to a temporary file,
/// flushed and renamed over the old one, and the directory is flushed. The log is only appended
/// to through the open file the claim keeps, and each append is flushed (`fdatasync`) before it
/// returns.
///
/// A line's flag is `s` when its record holds a snapshot of the state, so that loading a thread
/// reads the log backwards to its last snapshot and no further.
///
/// Compaction ([`CheckpointStore::compact`]) leaves the log's lines as they are until the
/// records it removes (kept parts of saved steps) make up half of the log and at least 64 KiB;
/// then the claim's holder writes the log again without them, to a temporary file, flushed and
/// renamed over the log. So the bytes written again are at most twice those removed, and the
/// log is replaced whole or not at all. Until then, reads leave those records out: a thread's
/// history is the same as on the other stores.
///
/// A crash in the middle of an append can leave a torn last line: its checksum (or its missing
/// newline) gives it away. Readers leave it out and change nothing; the next claim cuts it off.
/// That step had not been saved, so its node runs again on resume. Damage anywhere else (a
/// flipped byte, a broken line end between two records) is an error naming the byte where the
/// record starts: the store never guesses and never drops a whole good record.
///
/// A cancel ([`CheckpointStore::cancel`]) cannot take the claim of the run it stops, so it leaves
/// the `cancelled` file, which outranks `status.json` for readers and which the claim's holder
/// looks for before each write (one `stat`, beside the write's flush).
///
/// The store does its file operations in place, blocking the task briefly: one append and one
/// flush per step (and, now and then, the log written again, as above).
///
/// ```
/// use slateflow::checkpoint::{CheckpointStore, FileStore, RecordKind, Records, StepRecord};
/// # let folder = std::env::temp_dir().join(format!("slateflow-filestore-{}", std::process::id()));
/// # tokio::runtime::Builder::new_current_thread().build().unwrap().block_on(async {
/// let store = FileStore::open(&folder)?;
/// let start = StepRecord::new(0, RecordKind::Start).with_snapshot(serde_json::json!({}));
/// let claim = store.create("t-1", "Counter", &[start]).await?;
/// // Another process (or this one) cannot claim the thread while `claim` is held.
/// assert!(store.claim("t-1").await.is_err());
/// drop(claim);
/// assert!(store.claim("t-1").await.is_ok());
/// # Ok::<(), slateflow::checkpoint::StoreError>(())
/// # }).unwrap();
/// # std::fs::remove_dir_all(&folder).unwrap();
/// ```
#[derive(Debug, Clone)]
pub struct FileStore {
    root: PathBuf,
}

#[derive(Serialize, Deserialize)]
struct Meta {
    state_type: String,
    format: u32,
    /// The flow named by the start record (absent in threads made before it was kept here).
    #[serde(default, skip_serializing_if = "String::is_empty")]
    flow: String,
}

/// A claim on a thread of a [`FileStore`]: the locked claim file and the open log. Dropping it
/// (or the death of its process) releases the lock.
#[derive(Debug)]
pub struct FileClaim {
    thread: String,
    dir: PathBuf,
    /// The thread's `cancelled` file, looked for before each write.
    cancelled: PathBuf,
    log: File,
    last_step: u64,
    /// The log's length; the bytes of kept parts appended through this claim and not yet
    /// compacted, and of those compacted but still in the log.
    size: u64,
    kept_bytes: u64,
    compacted_bytes: u64,
    _lock: lock::Lock,
}

/// Whether `record` is a kept part (or a void of kept parts) of a step before `last_step`, which
/// is saved: compacted away.
fn compacted(record: &StepRecord, last_step: u64) -> bool {
    matches!(record.kind, RecordKind::Kept | RecordKind::Discard) && record.step < last_step
}

/// `records` without what compaction removed: the kept parts of every step before the last
/// one saved.
fn without_compacted(mut records: Vec<StepRecord>) -> Vec<StepRecord> {
    let last_step = records
        .iter()
        .rev()
        .find(|record| record.kind == RecordKind::Step)
        .map_or(0, |record| record.step);
    records.retain(|record| !compacted(record, last_step));
    records
}

impl FileStore {
    /// A store in `root`, created if it does not exist.
    ///
    /// # Errors
    /// [`StoreError::Io`] when the directory cannot be created.
    ///
    /// Opening sweeps away what crashed processes left behind: hidden folders of threads being
    /// made whose maker is gone (nobody holds their claim, and they are older than a minute), and
    /// of threads being deleted. Both are invisible to every read.
    pub fn open(root: impl Into<PathBuf>) -> Result<Self, StoreError> {
        let root = root.into();
        fs::create_dir_all(&root)
            .map_err(|source| io("", "create the store directory", &root, source))?;
        let store = Self { root };
        store.sweep(ABANDONED);
        Ok(store)
    }

    /// Removes the hidden folders left by crashes: `.deleted-*` always (they were renamed away
    /// whole), `.new-*` when their claim is free and they are older than `age` (their maker
    /// creates the folder, then locks it at once). Best effort: a folder that cannot be read or
    /// removed now is left for the next sweep.
    fn sweep(&self, age: Duration) {
        let Ok(entries) = fs::read_dir(&self.root) else {
            return;
        };
        for entry in entries.filter_map(Result::ok) {
            let name = entry.file_name();
            let name = name.to_string_lossy();
            let path = entry.path();
            let abandoned = if name.starts_with(".deleted-") {
                true
            } else if name.starts_with(".new-") {
                let old = entry
                    .metadata()
                    .and_then(|metadata| metadata.modified())
                    .ok()
                    .and_then(|modified| modified.elapsed().ok())
                    .is_some_and(|elapsed| elapsed >= age);
                old && !lock::is_held(&path.join(CLAIM))
            } else {
                false
            };
            if abandoned {
                let _ = fs::remove_dir_all(&path);
            }
        }
    }

    /// The store's directory.
    pub fn root(&self) -> &Path {
        &self.root
    }

    /// The thread's directory, which must exist and hold a thread.
    fn existing(&self, thread: &str) -> Result<PathBuf, StoreError> {
        check_thread_id(thread)?;
        let dir = self.root.join(thread);
        if dir.join(META).is_file() {
            Ok(dir)
        } else if dir.is_dir() {
            Err(no_meta(thread, &dir))
        } else {
            Err(StoreError::UnknownThread {
                thread: thread.to_string(),
            })
        }
    }

    /// A fresh hidden folder name beside the threads, for `what` (`new`, `deleted`).
    fn hidden(&self, what: &str, thread: &str) -> PathBuf {
        static COUNTER: AtomicU64 = AtomicU64::new(0);
        let count = COUNTER.fetch_add(1, Ordering::Relaxed);
        self.root
            .join(format!(".{what}-{thread}-{}-{count}", std::process::id()))
    }
}

fn no_meta(thread: &str, dir: &Path) -> StoreError {
    StoreError::Corrupt {
        thread: thread.to_string(),
        what: format!("the folder `{}`", dir.display()),
        reason: format!(
            "it has no {META}, so it is not a whole thread; nothing in it was changed (move it \
             away to reuse the id)"
        ),
    }
}

/// Writes `bytes` to `dir/name` so that a crash leaves the old file or the new one. Only the
/// claim's holder (or the creator of a hidden folder) calls it, so the temporary name is its own.
fn replace_file(thread: &str, dir: &Path, name: &str, bytes: &[u8]) -> Result<(), StoreError> {
    let temporary = dir.join(format!(".{name}.tmp"));
    let target = dir.join(name);
    let mut file =
        File::create(&temporary).map_err(|source| io(thread, "create", &temporary, source))?;
    file.write_all(bytes)
        .and_then(|()| file.sync_all())
        .map_err(|source| io(thread, "write", &temporary, source))?;
    fs::rename(&temporary, &target).map_err(|source| io(thread, "replace", &target, source))?;
    sync_dir(thread, dir)
}

/// The file of the flow `name` in the flows' folder: letters, digits, `-` and `_` as they are,
/// every other byte as `%XX`, so that any name is one file name.
fn flow_file(name: &str) -> String {
    use std::fmt::Write as _;
    let mut file = String::with_capacity(name.len() + 5);
    for byte in name.bytes() {
        if byte.is_ascii_alphanumeric() || matches!(byte, b'-' | b'_') {
            file.push(char::from(byte));
        } else {
            let _ = write!(file, "%{byte:02X}");
        }
    }
    file.push_str(".json");
    file
}

/// Flushes a directory's entries (a rename or a new file) to disk.
fn sync_dir(thread: &str, dir: &Path) -> Result<(), StoreError> {
    File::open(dir)
        .and_then(|directory| directory.sync_all())
        .map_err(|source| io(thread, "flush", dir, source))
}

/// One log line: checksum, flag, JSON, newline.
fn log_line(thread: &str, record: &StepRecord) -> Result<Vec<u8>, StoreError> {
    let mut line = Vec::with_capacity(256);
    line.extend_from_slice(b"00000000 - ");
    serde_json::to_writer(&mut line, record).map_err(|error| StoreError::Corrupt {
        thread: thread.to_string(),
        what: format!("the step {} record", record.step),
        reason: format!("it does not serialize: {error}"),
    })?;
    let checksum = format!("{:08x}", crc32(&line[11..]));
    line[..8].copy_from_slice(checksum.as_bytes());
    if record.snapshot.is_some() {
        line[9] = b's';
    }
    line.push(b'\n');
    Ok(line)
}

/// Whether `line` (without its newline) is whole: a checksum that matches its JSON.
fn checksum_matches(line: &[u8]) -> bool {
    header(line).is_some_and(|expected| line.len() >= 11 && crc32(&line[11..]) == expected)
}

/// The checksum a line starts with, when it starts like a line.
fn header(line: &[u8]) -> Option<u32> {
    let (checksum, rest) = line.split_at_checked(8)?;
    if !(rest.starts_with(b" s ") || rest.starts_with(b" - ")) {
        return None;
    }
    let hex = std::str::from_utf8(checksum).ok()?;
    u32::from_str_radix(hex, 16).ok()
}

/// Reads one log line back.
fn parse_line(line: &[u8]) -> Result<StepRecord, String> {
    if header(line).is_none() {
        return Err("the line does not start with a checksum and a flag".into());
    }
    if !checksum_matches(line) {
        return Err("the checksum does not match the record".into());
    }
    serde_json::from_slice(&line[11..]).map_err(|error| format!("the record is not valid: {error}"))
}

/// Whether the bytes after the last whole line hold a whole record whose line end was damaged
/// (rather than a write cut short, which can never hold a whole record followed by more bytes).
fn holds_a_record(junk: &[u8]) -> bool {
    let Some(expected) = header(junk) else {
        return false;
    };
    // The checksum of every prefix of the JSON, in one pass: a whole record is its JSON (not
    // empty), then its broken line end, then more.
    let mut crc = !0_u32;
    for (index, byte) in junk.iter().enumerate().skip(11) {
        crc = crc32_update(crc, std::slice::from_ref(byte));
        if !crc == expected && index + 2 < junk.len() {
            return true;
        }
    }
    false
}

/// The records in `bytes` (whole lines from a line start; `offset` is where they start in the
/// log), the offset where the good records end, and whether a torn last line was left out.
fn parse_records(
    thread: &str,
    bytes: &[u8],
    offset: u64,
) -> Result<(Vec<StepRecord>, u64, bool), StoreError> {
    let mut records = Vec::new();
    let mut at = 0;
    while at < bytes.len() {
        let rest = &bytes[at..];
        let end = rest.iter().position(|&byte| byte == b'\n');
        let parsed = match end {
            Some(end) => parse_line(&rest[..end]),
            None => Err("the line has no end".into()),
        };
        match parsed {
            Ok(record) => {
                records.push(record);
                at += end.unwrap_or(rest.len()) + 1;
            }
            Err(reason) => {
                let last_line = end.is_none_or(|end| end + 1 == rest.len());
                let whole_record = holds_a_record(rest);
                if last_line && !whole_record {
                    // A write cut short by a crash: its step was never saved.
                    return Ok((records, offset + at as u64, true));
                }
                let reason = if whole_record {
                    "the end of its line is damaged, joining it to the next".into()
                } else {
                    reason
                };
                return Err(StoreError::Corrupt {
                    thread: thread.to_string(),
                    what: format!("the record at byte {} of {LOG}", offset + at as u64),
                    reason,
                });
            }
        }
    }
    Ok((records, offset + bytes.len() as u64, false))
}

/// The end of the log from the start of the last line that `wanted` accepts (or from the start
/// of the log), and where that is. Lines are given without their newline, newest first, and only
/// whole ones (followed by a newline).
fn tail(
    thread: &str,
    path: &Path,
    wanted: impl Fn(&[u8]) -> bool,
) -> Result<(u64, Vec<u8>), StoreError> {
    let file = File::open(path).map_err(|source| io(thread, "open", path, source))?;
    let len = file
        .metadata()
        .map_err(|source| io(thread, "read", path, source))?
        .len();
    let mut start = len;
    let mut bytes: Vec<u8> = Vec::new();
    while start > 0 {
        let from = start.saturating_sub(CHUNK);
        let mut chunk = vec![0; usize::try_from(start - from).unwrap_or(0)];
        file.read_exact_at(&mut chunk, from)
            .map_err(|source| io(thread, "read", path, source))?;
        let fresh = chunk.len();
        chunk.extend_from_slice(&bytes);
        bytes = chunk;
        start = from;
        // Line starts in the fresh part, newest first: after a newline, or the log's start.
        for index in (0..=fresh).rev() {
            let starts_line = if index == 0 {
                start == 0
            } else {
                bytes[index - 1] == b'\n'
            };
            if !starts_line || index == bytes.len() {
                continue;
            }
            let line = &bytes[index..];
            if let Some(end) = line.iter().position(|&byte| byte == b'\n')
                && wanted(&line[..end])
            {
                return Ok((start + index as u64, bytes.split_off(index)));
            }
        }
    }
    Ok((0, bytes))
}

/// Reads the log: all of it, or from its last snapshot.
fn read_log(
    thread: &str,
    dir: &Path,
    records: Records,
) -> Result<(Vec<StepRecord>, u64, bool), StoreError> {
    let path = dir.join(LOG);
    let (offset, bytes) = match records {
        Records::All => (
            0,
            fs::read(&path).map_err(|source| io(thread, "read", &path, source))?,
        ),
        Records::SinceSnapshot => tail(thread, &path, |line| {
            line.get(9) == Some(&b's') && checksum_matches(line)
        })?,
    };
    parse_records(thread, &bytes, offset)
}

/// Writes the claimed log again without the kept parts of the steps before `last_step` (each
/// other line as it was), then puts it in the log's place: flushed, renamed over it, the folder
/// flushed, the claim's log reopened.
fn rewrite_log(claim: &mut FileClaim, last_step: u64) -> Result<(), StoreError> {
    let thread = claim.thread.clone();
    let path = claim.dir.join(LOG);
    let bytes = fs::read(&path).map_err(|source| io(&thread, "read", &path, source))?;
    let mut kept = Vec::with_capacity(bytes.len() / 2);
    let mut at = 0;
    for line in bytes.split_inclusive(|&byte| byte == b'\n') {
        let record = parse_line(line.strip_suffix(b"\n").unwrap_or(line)).map_err(|reason| {
            StoreError::Corrupt {
                thread: thread.clone(),
                what: format!("the record at byte {at} of {LOG}"),
                reason,
            }
        })?;
        if !compacted(&record, last_step) {
            kept.extend_from_slice(line);
        }
        at += line.len();
    }
    let temporary = claim.dir.join(COMPACTED);
    let mut file =
        File::create(&temporary).map_err(|source| io(&thread, "create", &temporary, source))?;
    file.write_all(&kept)
        .and_then(|()| file.sync_all())
        .map_err(|source| io(&thread, "write", &temporary, source))?;
    fs::rename(&temporary, &path).map_err(|source| io(&thread, "replace", &path, source))?;
    sync_dir(&thread, &claim.dir)?;
    claim.log = OpenOptions::new()
        .append(true)
        .open(&path)
        .map_err(|source| io(&thread, "open", &path, source))?;
    claim.size = kept.len() as u64;
    claim.compacted_bytes = 0;
    Ok(())
}

fn read_meta(thread: &str, dir: &Path) -> Result<Meta, StoreError> {
    let path = dir.join(META);
    let bytes = fs::read(&path).map_err(|source| io(thread, "read", &path, source))?;
    let meta: Meta = serde_json::from_slice(&bytes).map_err(|error| StoreError::Corrupt {
        thread: thread.to_string(),
        what: META.into(),
        reason: error.to_string(),
    })?;
    if meta.format != FORMAT {
        return Err(StoreError::Corrupt {
            thread: thread.to_string(),
            what: META.into(),
            reason: format!(
                "the thread was written in format {}, and this version reads format {FORMAT}",
                meta.format
            ),
        });
    }
    Ok(meta)
}

/// The saved status, as a reader sees it: `Running` with nobody holding the claim is
/// `Interrupted`.
fn read_status(thread: &str, dir: &Path) -> Result<RunStatus, StoreError> {
    let path = dir.join(STATUS);
    let bytes = fs::read(&path).map_err(|source| io(thread, "read", &path, source))?;
    let status: RunStatus =
        serde_json::from_slice(&bytes).map_err(|error| StoreError::Corrupt {
            thread: thread.to_string(),
            what: STATUS.into(),
            reason: error.to_string(),
        })?;
    if dir.join(CANCELLED).exists() {
        return Ok(RunStatus::Cancelled);
    }
    Ok(as_read(status, lock::is_held(&dir.join(CLAIM))))
}

/// Refuses the writes of a claim whose thread was cancelled since.
fn fenced(claim: &FileClaim) -> Result<(), StoreError> {
    if claim.cancelled.exists() {
        return Err(StoreError::Cancelled {
            thread: claim.thread.clone(),
        });
    }
    Ok(())
}

impl CheckpointStore for FileStore {
    type Claim = FileClaim;

    async fn create(
        &self,
        thread: &str,
        state_type: &str,
        records: &[StepRecord],
    ) -> Result<FileClaim, StoreError> {
        let last_step = check_new(thread, records)?;
        let dir = self.root.join(thread);
        if dir.join(META).is_file() {
            return Err(StoreError::ThreadExists {
                thread: thread.to_string(),
            });
        }
        if dir.exists() {
            return Err(no_meta(thread, &dir));
        }
        // Made whole in a hidden folder, locked, then renamed into place.
        let new = self.hidden("new", thread);
        fs::create_dir(&new).map_err(|source| io(thread, "create", &new, source))?;
        let lock = lock::exclusive(thread, &new.join(CLAIM))?;
        replace_file(
            thread,
            &new,
            STATUS,
            status_json(&RunStatus::Running).as_bytes(),
        )?;
        let mut log = Vec::new();
        for record in records {
            log.extend_from_slice(&log_line(thread, record)?);
        }
        let log_bytes = log.len();
        replace_file(thread, &new, LOG, &log)?;
        let meta = serde_json::to_vec(&Meta {
            state_type: state_type.to_string(),
            format: FORMAT,
            flow: flow_of(records).to_string(),
        })
        .unwrap_or_default();
        replace_file(thread, &new, META, &meta)?;
        if let Err(source) = fs::rename(&new, &dir) {
            let _ = fs::remove_dir_all(&new);
            return Err(if dir.exists() {
                StoreError::ThreadExists {
                    thread: thread.to_string(),
                }
            } else {
                io(thread, "move into place", &dir, source)
            });
        }
        sync_dir(thread, &self.root)?;
        let path = dir.join(LOG);
        let log = OpenOptions::new()
            .append(true)
            .open(&path)
            .map_err(|source| io(thread, "open", &path, source))?;
        Ok(FileClaim {
            thread: thread.to_string(),
            cancelled: dir.join(CANCELLED),
            dir,
            log,
            last_step,
            size: u64::try_from(log_bytes).unwrap_or(u64::MAX),
            kept_bytes: 0,
            compacted_bytes: 0,
            _lock: lock,
        })
    }

    async fn claim(&self, thread: &str) -> Result<FileClaim, StoreError> {
        let dir = self.existing(thread)?;
        read_meta(thread, &dir)?;
        let lock = lock::exclusive(thread, &dir.join(CLAIM))?;
        // Under the claim, nobody else writes: the log as it stands ends with its last whole
        // line and perhaps a torn one. Only that much is read (the run loads the rest once).
        let path = dir.join(LOG);
        let (offset, bytes) = tail(thread, &path, checksum_matches)?;
        let (records, good_end, torn) = parse_records(thread, &bytes, offset)?;
        let log = OpenOptions::new()
            .append(true)
            .open(&path)
            .map_err(|source| io(thread, "open", &path, source))?;
        if torn {
            log.set_len(good_end)
                .and_then(|()| log.sync_all())
                .map_err(|source| io(thread, "cut the torn last record off", &path, source))?;
        }
        // A compaction that died before replacing the log left its rewrite: the log stands.
        let _ = fs::remove_file(dir.join(COMPACTED));
        Ok(FileClaim {
            thread: thread.to_string(),
            cancelled: dir.join(CANCELLED),
            dir,
            log,
            last_step: records.last().map_or(0, |record| record.step),
            size: good_end,
            kept_bytes: 0,
            compacted_bytes: 0,
            _lock: lock,
        })
    }

    async fn append(&self, claim: &mut FileClaim, record: &StepRecord) -> Result<(), StoreError> {
        check_order(&claim.thread, claim.last_step, record)?;
        let line = log_line(&claim.thread, record)?;
        fenced(claim)?;
        claim
            .log
            .write_all(&line)
            .and_then(|()| claim.log.sync_data())
            .map_err(|source| io(&claim.thread, "append to", &claim.dir.join(LOG), source))?;
        claim.last_step = record.step;
        claim.size += line.len() as u64;
        if matches!(record.kind, RecordKind::Kept | RecordKind::Discard) {
            claim.kept_bytes += line.len() as u64;
        }
        Ok(())
    }

    /// One write and one flush for all of `records`: a crash leaves a first part of them whole
    /// (and perhaps a torn line after it).
    async fn append_all(
        &self,
        claim: &mut FileClaim,
        records: &[StepRecord],
    ) -> Result<(), StoreError> {
        let mut last = claim.last_step;
        let mut lines = Vec::new();
        let mut kept_bytes = 0;
        for record in records {
            check_order(&claim.thread, last, record)?;
            last = record.step;
            let line = log_line(&claim.thread, record)?;
            if matches!(record.kind, RecordKind::Kept | RecordKind::Discard) {
                kept_bytes += line.len() as u64;
            }
            lines.extend_from_slice(&line);
        }
        fenced(claim)?;
        claim
            .log
            .write_all(&lines)
            .and_then(|()| claim.log.sync_data())
            .map_err(|source| io(&claim.thread, "append to", &claim.dir.join(LOG), source))?;
        claim.last_step = last;
        claim.size += lines.len() as u64;
        claim.kept_bytes += kept_bytes;
        Ok(())
    }

    /// Counts the kept parts appended through the claim as removed (a reader leaves them out
    /// from now on); once they make up half of the log, writes it again without them. The parts
    /// a crash left before this claim are removed by that rewrite too.
    async fn compact(
        &self,
        claim: &mut FileClaim,
        steps: std::ops::Range<u64>,
    ) -> Result<(), StoreError> {
        if steps.is_empty() {
            return Ok(());
        }
        claim.compacted_bytes += std::mem::take(&mut claim.kept_bytes);
        if claim.compacted_bytes < REWRITE_AT_LEAST || claim.compacted_bytes * 2 < claim.size {
            return Ok(());
        }
        fenced(claim)?;
        rewrite_log(claim, steps.end)
    }

    async fn set_status(
        &self,
        claim: &mut FileClaim,
        status: &RunStatus,
    ) -> Result<(), StoreError> {
        fenced(claim)?;
        replace_file(
            &claim.thread,
            &claim.dir,
            STATUS,
            status_json(status).as_bytes(),
        )
    }

    async fn load(&self, thread: &str, records: Records) -> Result<ThreadLog, StoreError> {
        let dir = self.existing(thread)?;
        let meta = read_meta(thread, &dir)?;
        let status = read_status(thread, &dir)?;
        let (records, _, dropped_torn_record) = read_log(thread, &dir, records)?;
        let records = without_compacted(records);
        Ok(ThreadLog {
            state_type: meta.state_type,
            status,
            last_step: records.last().map_or(0, |record| record.step),
            records,
            dropped_torn_record,
        })
    }

    /// Every thread's folder, whatever its status file holds: a damaged one is reported
    /// with the rest, where [`threads`](CheckpointStore::threads) fails.
    async fn verify_all(&self) -> Result<super::Verification, StoreError> {
        let entries =
            fs::read_dir(&self.root).map_err(|source| io("", "list", &self.root, source))?;
        let mut ids: Vec<String> = entries
            .filter_map(Result::ok)
            .filter_map(|entry| entry.file_name().into_string().ok())
            .filter(|id| check_thread_id(id).is_ok() && self.root.join(id).join(META).is_file())
            .collect();
        ids.sort();
        super::verify::each(self, ids).await
    }

    async fn threads(&self) -> Result<Vec<ThreadInfo>, StoreError> {
        let entries =
            fs::read_dir(&self.root).map_err(|source| io("", "list", &self.root, source))?;
        let mut threads = Vec::new();
        for entry in entries.filter_map(Result::ok) {
            let Ok(id) = entry.file_name().into_string() else {
                continue;
            };
            let dir = entry.path();
            if check_thread_id(&id).is_err() || !dir.join(META).is_file() {
                continue;
            }
            let meta = read_meta(&id, &dir)?;
            let status = read_status(&id, &dir)?;
            let (_, last) = tail(&id, &dir.join(LOG), checksum_matches)?;
            let last = last
                .split(|&byte| byte == b'\n')
                .next()
                .and_then(|line| parse_line(line).ok());
            threads.push(ThreadInfo {
                id,
                state_type: meta.state_type,
                flow: meta.flow,
                status,
                last_step: last.as_ref().map_or(0, |record| record.step),
                updated_at_ms: last.map_or(0, |record| record.saved_at_ms),
            });
        }
        threads.sort_by(|a, b| a.id.cmp(&b.id));
        Ok(threads)
    }

    async fn delete(&self, claim: FileClaim) -> Result<(), StoreError> {
        // Renamed away first, so that the thread disappears at once and whole.
        let gone = self.hidden("deleted", &claim.thread);
        fs::rename(&claim.dir, &gone)
            .map_err(|source| io(&claim.thread, "delete", &claim.dir, source))?;
        sync_dir(&claim.thread, &self.root)?;
        fs::remove_dir_all(&gone).map_err(|source| io(&claim.thread, "delete", &gone, source))
    }

    async fn save_flow(&self, flow: &FlowInfo) -> Result<(), StoreError> {
        static COUNTER: AtomicU64 = AtomicU64::new(0);
        let dir = self.root.join(FLOWS);
        fs::create_dir_all(&dir).map_err(|source| io("", "create", &dir, source))?;
        let bytes = flow.to_json()?;
        // A name of its own per writer: two processes may save one flow at once.
        let count = COUNTER.fetch_add(1, Ordering::Relaxed);
        let temporary = dir.join(format!(".{}-{count}.tmp", std::process::id()));
        let target = dir.join(flow_file(&flow.name));
        let mut file =
            File::create(&temporary).map_err(|source| io("", "create", &temporary, source))?;
        file.write_all(bytes.as_bytes())
            .and_then(|()| file.sync_all())
            .map_err(|source| io("", "write", &temporary, source))?;
        fs::rename(&temporary, &target).map_err(|source| io("", "replace", &target, source))?;
        sync_dir("", &dir)
    }

    async fn flows(&self) -> Result<Vec<FlowInfo>, StoreError> {
        let dir = self.root.join(FLOWS);
        let entries = match fs::read_dir(&dir) {
            Ok(entries) => entries,
            Err(error) if error.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
            Err(source) => return Err(io("", "list", &dir, source)),
        };
        let mut flows = Vec::new();
        for entry in entries.filter_map(Result::ok) {
            let path = entry.path();
            if path.extension().is_none_or(|extension| extension != "json") {
                continue;
            }
            let bytes = fs::read(&path).map_err(|source| io("", "read", &path, source))?;
            flows.push(FlowInfo::from_json(&bytes, || {
                format!("the saved flow `{}`", path.display())
            })?);
        }
        flows.sort_by(|a, b| a.name.cmp(&b.name));
        Ok(flows)
    }

    async fn cancel(&self, thread: &str) -> Result<(), StoreError> {
        let dir = self.existing(thread)?;
        read_meta(thread, &dir)?;
        replace_file(thread, &dir, CANCELLED, b"")
    }
}

#[cfg(test)]
mod tests {
    use super::super::RecordKind;
    use super::*;

    fn record(step: u64) -> StepRecord {
        StepRecord {
            node: "a".into(),
            action: "default".into(),
            position: vec![1],
            update: serde_json::json!({"count": 1}),
            saved_at_ms: 0,
            ..StepRecord::new(step, RecordKind::Step)
        }
    }

    #[test]
    fn a_line_reads_back_and_a_changed_byte_is_caught() {
        let line = log_line("t", &record(3)).unwrap();
        assert_eq!(parse_line(&line[..line.len() - 1]).unwrap(), record(3));
        let mut damaged = line.clone();
        let at = damaged.len() - 5;
        damaged[at] ^= 1;
        assert!(parse_line(&damaged[..damaged.len() - 1]).is_err());
    }

    #[test]
    fn a_torn_line_is_not_a_record_but_a_broken_line_end_is() {
        let mut two = log_line("t", &record(1)).unwrap();
        let first = two.len();
        two.extend_from_slice(&log_line("t", &record(2)).unwrap());
        // Cut short anywhere: never a whole record.
        for end in 0..first {
            assert!(!holds_a_record(&two[..end]), "cut at {end}");
        }
        // The newline between the two damaged: the first record is whole, and more follows.
        two[first - 1] = b'x';
        assert!(holds_a_record(&two));
        let error = parse_records("t", &two, 0).unwrap_err().to_string();
        assert!(error.contains("the end of its line is damaged"), "{error}");
    }

    #[test]
    fn opening_sweeps_what_crashes_left_and_nothing_else() {
        let root = std::env::temp_dir().join(format!("slateflow-sweep-{}", std::process::id()));
        let _ = fs::remove_dir_all(&root);
        let store = FileStore::open(&root).unwrap();
        let make = |name: &str| {
            let dir = root.join(name);
            fs::create_dir_all(&dir).unwrap();
            fs::write(dir.join(LOG), b"x").unwrap();
            dir
        };
        let deleted = make(".deleted-t-1-0");
        let crashed = make(".new-t-2-0");
        let being_made = make(".new-u-3-0");
        let _held = lock::exclusive("u", &being_made.join(CLAIM)).unwrap();
        let thread = make("t");
        // Too young to be taken for abandoned: its maker may not have locked it yet.
        store.sweep(Duration::from_secs(3600));
        assert!(!deleted.exists());
        assert!(crashed.exists());
        store.sweep(Duration::ZERO);
        assert!(!crashed.exists());
        assert!(being_made.exists(), "its maker holds its claim");
        assert!(thread.exists(), "threads are never swept");
        fs::remove_dir_all(&root).unwrap();
    }
}
