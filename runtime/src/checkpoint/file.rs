//! The default checkpoint store: a directory per thread. The format is on [`FileStore`].

use std::fs::{self, File, OpenOptions};
use std::io::Write;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use super::{CheckpointStore, RunStatus, StepRecord, StoreError, ThreadLog, check_thread_id};

const META: &str = "meta.json";
const STATUS: &str = "status.json";
const LOG: &str = "steps.log";

/// The default checkpoint store: a directory, one folder per thread.
///
/// ```text
/// <root>/<thread>/meta.json     the state type; written once
/// <root>/<thread>/status.json   the run's status; replaced atomically
/// <root>/<thread>/steps.log     one record per line: `<crc32 of the JSON, 8 hex digits> <JSON>`
/// ```
/// Whole files are written to a temporary file, flushed and renamed over the old one, and the
/// directory is flushed, so a crash leaves the old file or the new one. The log is only appended
/// to, and each append is flushed before it returns. A crash in the middle of an append can leave
/// a torn last line: its checksum (or its missing newline) gives it away, and loading the thread
/// drops it and truncates the log there, back to the last whole step. That step's node had not
/// been saved, so it runs again on resume; nothing saved is lost. Damage anywhere else in the log
/// is an error naming the record: the store never guesses.
///
/// The store does its file operations in place, blocking the task briefly: one append and one
/// flush per step.
#[derive(Debug, Clone)]
pub struct FileStore {
    root: PathBuf,
}

#[derive(Serialize, Deserialize)]
struct Meta {
    state_type: String,
    format: u32,
}

impl FileStore {
    /// A store in `root`, created if it does not exist.
    ///
    /// # Errors
    /// [`StoreError::Io`] when the directory cannot be created.
    pub fn open(root: impl Into<PathBuf>) -> Result<Self, StoreError> {
        let root = root.into();
        fs::create_dir_all(&root)
            .map_err(|source| io("", "create the store directory", &root, source))?;
        Ok(Self { root })
    }

    /// The store's directory.
    pub fn root(&self) -> &Path {
        &self.root
    }

    fn thread_dir(&self, thread: &str) -> Result<PathBuf, StoreError> {
        check_thread_id(thread)?;
        Ok(self.root.join(thread))
    }

    /// The thread's directory, which must exist.
    fn existing(&self, thread: &str) -> Result<PathBuf, StoreError> {
        let dir = self.thread_dir(thread)?;
        if dir.join(META).is_file() {
            Ok(dir)
        } else {
            Err(StoreError::UnknownThread {
                thread: thread.to_string(),
            })
        }
    }
}

fn io(thread: &str, action: &'static str, path: &Path, source: std::io::Error) -> StoreError {
    StoreError::Io {
        thread: thread.to_string(),
        action,
        path: path.to_path_buf(),
        source,
    }
}

/// Writes `bytes` to `dir/name` so that a crash leaves the old file or the new one.
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

/// Flushes a directory's entries (a rename or a new file) to disk.
fn sync_dir(thread: &str, dir: &Path) -> Result<(), StoreError> {
    File::open(dir)
        .and_then(|directory| directory.sync_all())
        .map_err(|source| io(thread, "flush", dir, source))
}

/// CRC-32 (IEEE), table-driven; the table is built at compile time.
fn crc32(bytes: &[u8]) -> u32 {
    const TABLE: [u32; 256] = {
        let mut table = [0_u32; 256];
        let mut index = 0;
        while index < 256 {
            #[allow(clippy::cast_possible_truncation)] // index < 256
            let mut value = index as u32;
            let mut bit = 0;
            while bit < 8 {
                value = if value & 1 == 1 {
                    0xEDB8_8320 ^ (value >> 1)
                } else {
                    value >> 1
                };
                bit += 1;
            }
            table[index] = value;
            index += 1;
        }
        table
    };
    !bytes.iter().fold(!0_u32, |crc, &byte| {
        TABLE[((crc ^ u32::from(byte)) & 0xFF) as usize] ^ (crc >> 8)
    })
}

/// One log line: checksum, space, JSON, newline.
fn log_line(record: &StepRecord) -> Vec<u8> {
    let json = serde_json::to_vec(record).unwrap_or_default();
    let mut line = format!("{:08x} ", crc32(&json)).into_bytes();
    line.extend_from_slice(&json);
    line.push(b'\n');
    line
}

/// Reads one log line back.
fn parse_line(line: &[u8]) -> Result<StepRecord, String> {
    let (checksum, json) = match line.split_at_checked(9) {
        Some((checksum, json)) if checksum.ends_with(b" ") => (&checksum[..8], json),
        _ => return Err("the line does not start with a checksum".into()),
    };
    let expected = std::str::from_utf8(checksum)
        .ok()
        .and_then(|hex| u32::from_str_radix(hex, 16).ok())
        .ok_or("the checksum is not 8 hex digits")?;
    if crc32(json) != expected {
        return Err("the checksum does not match the record".into());
    }
    serde_json::from_slice(json).map_err(|error| format!("the record is not valid: {error}"))
}

impl CheckpointStore for FileStore {
    async fn create(
        &self,
        thread: &str,
        state_type: &str,
        first: &StepRecord,
    ) -> Result<(), StoreError> {
        let dir = self.thread_dir(thread)?;
        if dir.join(META).is_file() {
            return Err(StoreError::ThreadExists {
                thread: thread.to_string(),
            });
        }
        // A folder without `meta.json` is a creation cut short by a crash: start it over.
        if dir.exists() {
            fs::remove_dir_all(&dir).map_err(|source| io(thread, "clear", &dir, source))?;
        }
        fs::create_dir(&dir).map_err(|source| io(thread, "create", &dir, source))?;
        let status = serde_json::to_vec(&RunStatus::Running).unwrap_or_default();
        replace_file(thread, &dir, STATUS, &status)?;
        replace_file(thread, &dir, LOG, &log_line(first))?;
        // The meta file goes last: a thread exists once it is there, with its first record.
        let meta = serde_json::to_vec(&Meta {
            state_type: state_type.to_string(),
            format: 1,
        })
        .unwrap_or_default();
        replace_file(thread, &dir, META, &meta)?;
        sync_dir(thread, &self.root)
    }

    async fn append(&self, thread: &str, record: &StepRecord) -> Result<(), StoreError> {
        let path = self.existing(thread)?.join(LOG);
        let mut log = OpenOptions::new()
            .append(true)
            .open(&path)
            .map_err(|source| io(thread, "open", &path, source))?;
        log.write_all(&log_line(record))
            .and_then(|()| log.sync_data())
            .map_err(|source| io(thread, "append to", &path, source))
    }

    async fn set_status(&self, thread: &str, status: &RunStatus) -> Result<(), StoreError> {
        let dir = self.existing(thread)?;
        let status = serde_json::to_vec(status).unwrap_or_default();
        replace_file(thread, &dir, STATUS, &status)
    }

    async fn load(&self, thread: &str) -> Result<ThreadLog, StoreError> {
        let dir = self.existing(thread)?;
        let corrupt = |what: &str, reason: String| StoreError::Corrupt {
            thread: thread.to_string(),
            what: what.to_string(),
            reason,
        };
        let read = |name: &str| {
            let path = dir.join(name);
            fs::read(&path).map_err(|source| io(thread, "read", &path, source))
        };
        let meta: Meta = serde_json::from_slice(&read(META)?)
            .map_err(|error| corrupt(META, error.to_string()))?;
        let status: RunStatus = serde_json::from_slice(&read(STATUS)?)
            .map_err(|error| corrupt(STATUS, error.to_string()))?;
        let bytes = read(LOG)?;
        let mut records = Vec::new();
        let mut good_end = 0;
        let mut dropped_torn_record = false;
        let mut rest = &bytes[..];
        while !rest.is_empty() {
            let number = records.len() + 1;
            let (line, after, complete) = match rest.iter().position(|&byte| byte == b'\n') {
                Some(end) => (&rest[..end], &rest[end + 1..], true),
                None => (rest, &rest[rest.len()..], false),
            };
            let parsed = if complete {
                parse_line(line)
            } else {
                Err("the line has no end".into())
            };
            match parsed {
                Ok(record) => {
                    records.push(record);
                    good_end = bytes.len() - after.len();
                }
                // The last line, cut short by a crash: drop it, recovering the last whole step.
                Err(_) if after.is_empty() => {
                    dropped_torn_record = true;
                }
                Err(reason) => {
                    return Err(corrupt(&format!("record {number} of {LOG}"), reason));
                }
            }
            rest = after;
        }
        if dropped_torn_record {
            let path = dir.join(LOG);
            OpenOptions::new()
                .write(true)
                .open(&path)
                .and_then(|log| log.set_len(good_end as u64).and_then(|()| log.sync_all()))
                .map_err(|source| io(thread, "truncate the torn record of", &path, source))?;
        }
        Ok(ThreadLog {
            state_type: meta.state_type,
            status,
            records,
            dropped_torn_record,
        })
    }

    async fn threads(&self) -> Result<Vec<String>, StoreError> {
        let entries =
            fs::read_dir(&self.root).map_err(|source| io("", "list", &self.root, source))?;
        let mut threads: Vec<String> = entries
            .filter_map(Result::ok)
            .filter(|entry| entry.path().join(META).is_file())
            .filter_map(|entry| entry.file_name().into_string().ok())
            .filter(|name| check_thread_id(name).is_ok())
            .collect();
        threads.sort();
        Ok(threads)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn crc32_matches_the_standard_check_value() {
        assert_eq!(crc32(b"123456789"), 0xCBF4_3926);
        assert_eq!(crc32(b""), 0);
    }

    #[test]
    fn a_line_reads_back_and_a_changed_byte_is_caught() {
        let record = StepRecord {
            step: 3,
            kind: super::super::RecordKind::Step,
            node: "a".into(),
            action: "default".into(),
            position: vec![1],
            update: serde_json::json!({"count": 1}),
            snapshot: None,
            saved_at_ms: 0,
        };
        let line = log_line(&record);
        assert_eq!(parse_line(&line[..line.len() - 1]).unwrap(), record);
        let mut damaged = line.clone();
        let at = damaged.len() - 5;
        damaged[at] ^= 1;
        assert!(parse_line(&damaged[..damaged.len() - 1]).is_err());
    }
}
