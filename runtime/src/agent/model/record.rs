//! Record a real model's exchanges to a file, and replay them offline: [`Recorded`].

use std::fmt;
use std::fs::File;
use std::io::{BufRead, BufReader, Write};
use std::path::{Path, PathBuf};
use std::sync::{Mutex, PoisonError};

use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::{ChatModel, ChatRequest, ChatResponse, ModelError};

/// A model that records another's exchanges to a file, or replays a recording offline: tests of
/// agent programs that run without a network or a key, on real replies.
///
/// - [`Recorded::record`] wraps a real model: each request it answers is written with its reply
///   as one line of JSON (request and response) to the file, as it comes.
/// - [`Recorded::replay`] answers from such a file and calls nothing. Each request must be one
///   of the recording's, exactly (messages, tools, settings); each recorded exchange answers
///   once. Requests may come in another order (the branches of a fork race), but the first one
///   that is not in the recording fails the call with an error that names the file, the request
///   and where it differs from the next unused recorded one: the prompt, the state or the code
///   changed, and the recording should be made again.
/// - [`Recorded::replay_or_record`] replays when the file exists, and records when it does not
///   (the model is made only then, so a replay needs no key): delete the file to record anew.
///
/// Failed calls are not recorded (the model's retries are not part of the conversation).
///
/// ```
/// use slateflow::agent::message::Message;
/// use slateflow::agent::model::{ChatModel, ChatRequest, Recorded, ScriptedModel};
///
/// # tokio::runtime::Builder::new_current_thread().build().unwrap().block_on(async {
/// let path = std::env::temp_dir().join(format!("slateflow-doc-{}.jsonl", std::process::id()));
/// let ask = |text: &str| ChatRequest::new(vec![Message::human(text)]);
///
/// // Recording: a real model in a real program (here a scripted one, to stay offline).
/// let recording = Recorded::record(ScriptedModel::new().reply("Paris."), &path)?;
/// assert_eq!(recording.chat(&ask("Capital of France?")).await?.text(), "Paris.");
///
/// // Replaying: no model at all.
/// let replay = Recorded::replay(&path)?;
/// assert_eq!(replay.chat(&ask("Capital of France?")).await?.text(), "Paris.");
///
/// // A request the recording does not hold fails, saying where it differs.
/// let replay = Recorded::replay(&path)?;
/// let error = replay.chat(&ask("Capital of Spain?")).await.unwrap_err();
/// assert!(error.to_string().contains("at `messages[0].content`"), "{error}");
/// # std::fs::remove_file(&path).unwrap();
/// # Ok::<(), Box<dyn std::error::Error>>(()) }).unwrap();
/// ```
pub struct Recorded<M = Offline> {
    path: PathBuf,
    mode: Mode<M>,
}

enum Mode<M> {
    Record {
        model: M,
        file: Mutex<File>,
    },
    Replay {
        exchanges: Vec<Exchange>,
        /// Which exchanges have answered, and how many requests came.
        served: Mutex<(Vec<bool>, usize)>,
    },
}

/// One line of a recording.
#[derive(Serialize, Deserialize)]
struct Exchange {
    /// The request, as the model received it (compared as JSON).
    request: Value,
    response: ChatResponse,
}

/// The model of a replay-only [`Recorded`]: there is none, and nothing calls it.
///
/// ```
/// use slateflow::agent::model::{Offline, Recorded};
///
/// // A replay's type, named: `Recorded` is `Recorded<Offline>`.
/// fn replay(path: &str) -> Result<Recorded<Offline>, slateflow::agent::model::RecordingError> {
///     Recorded::replay(path)
/// }
/// assert!(replay("no/such/recording.jsonl").is_err());
/// ```
#[derive(Debug, Clone, Copy)]
pub enum Offline {}

impl ChatModel for Offline {
    async fn chat(&self, _: &ChatRequest) -> Result<ChatResponse, ModelError> {
        match *self {}
    }
}

/// Why a recording could not be opened, read or made.
///
/// ```
/// use slateflow::agent::model::{Recorded, RecordingError};
///
/// let path = std::env::temp_dir().join(format!("slateflow-doc-bad-{}.jsonl", std::process::id()));
/// std::fs::write(&path, "{\"request\": {}}\n").unwrap();
/// let error = Recorded::replay(&path).unwrap_err();
/// assert!(matches!(error, RecordingError::Malformed { line: 1, .. }));
/// assert!(error.to_string().contains("missing field `response`"), "{error}");
/// # std::fs::remove_file(&path).unwrap();
/// ```
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum RecordingError {
    /// The file could not be read or written.
    #[error("cannot {action} the model recording {}: {source}", path.display())]
    Io {
        /// `read`, `create` or `write`.
        action: &'static str,
        /// The recording.
        path: PathBuf,
        /// What the system said.
        source: std::io::Error,
    },
    /// A line of the file is not an exchange.
    #[error(
        "line {line} of the model recording {} is not an exchange ({{\"request\": ..., \
         \"response\": ...}}): {message}",
        path.display()
    )]
    Malformed {
        /// The recording.
        path: PathBuf,
        /// The line, from 1.
        line: usize,
        /// What the JSON parser said.
        message: String,
    },
    /// The model to record could not be made.
    #[error("the model to record could not be made: {0}")]
    Model(#[source] ModelError),
}

impl Recorded<Offline> {
    /// Replays the recording at `path`, offline.
    ///
    /// # Errors
    /// [`RecordingError::Io`] when the file cannot be read, [`RecordingError::Malformed`] naming
    /// the first line that is not an exchange.
    pub fn replay(path: impl AsRef<Path>) -> Result<Self, RecordingError> {
        let path = path.as_ref().to_path_buf();
        let mode = read(&path)?;
        Ok(Self { path, mode })
    }
}

impl<M: ChatModel> Recorded<M> {
    /// Records `model`'s exchanges to `path` (a new file, or the old one emptied).
    ///
    /// # Errors
    /// [`RecordingError::Io`] when the file cannot be created.
    pub fn record(model: M, path: impl AsRef<Path>) -> Result<Self, RecordingError> {
        let path = path.as_ref().to_path_buf();
        if let Some(folder) = path
            .parent()
            .filter(|folder| !folder.as_os_str().is_empty())
        {
            std::fs::create_dir_all(folder).map_err(|source| RecordingError::Io {
                action: "create",
                path: path.clone(),
                source,
            })?;
        }
        let file = File::create(&path).map_err(|source| RecordingError::Io {
            action: "create",
            path: path.clone(),
            source,
        })?;
        Ok(Self {
            path,
            mode: Mode::Record {
                model,
                file: Mutex::new(file),
            },
        })
    }

    /// Replays `path` when it exists; otherwise records to it the model `make` returns (called
    /// only then: a replay needs no key).
    ///
    /// ```no_run
    /// # #[cfg(feature = "openai")] {
    /// use slateflow::agent::OpenAi;
    /// use slateflow::agent::model::Recorded;
    ///
    /// // In a test: the first run (with a key) records; every later one replays offline.
    /// let model = Recorded::replay_or_record("tests/recordings/triage.jsonl", OpenAi::from_env)?;
    /// # }
    /// # Ok::<(), slateflow::agent::model::RecordingError>(())
    /// ```
    ///
    /// # Errors
    /// Those of [`replay`](Recorded::replay) and [`record`](Recorded::record), and
    /// [`RecordingError::Model`] when `make` fails.
    pub fn replay_or_record(
        path: impl AsRef<Path>,
        make: impl FnOnce() -> Result<M, ModelError>,
    ) -> Result<Self, RecordingError> {
        let path = path.as_ref();
        if path.exists() {
            Ok(Self {
                path: path.to_path_buf(),
                mode: read(path)?,
            })
        } else {
            Self::record(make().map_err(RecordingError::Model)?, path)
        }
    }
}

impl<M> Recorded<M> {
    /// The recording's file.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Whether this replays (rather than records).
    pub fn is_replay(&self) -> bool {
        matches!(self.mode, Mode::Replay { .. })
    }

    /// How many recorded exchanges have not answered yet (0 when recording): a test can check
    /// that its program asked everything the recording holds.
    pub fn remaining(&self) -> usize {
        match &self.mode {
            Mode::Record { .. } => 0,
            Mode::Replay { served, .. } => {
                let served = served.lock().unwrap_or_else(PoisonError::into_inner);
                served.0.iter().filter(|used| !**used).count()
            }
        }
    }

    /// The recorded answer to `request`, or the error that says where it left the recording.
    fn replayed(
        &self,
        exchanges: &[Exchange],
        served: &Mutex<(Vec<bool>, usize)>,
        request: &ChatRequest,
    ) -> Result<ChatResponse, ModelError> {
        let asked = serde_json::to_value(request)
            .map_err(|error| ModelError::permanent(format!("the request is not JSON: {error}")))?;
        let mut served = served.lock().unwrap_or_else(PoisonError::into_inner);
        served.1 += 1;
        let number = served.1;
        let unused = || (0..exchanges.len()).filter(|index| !served.0[*index]);
        if let Some(index) = unused().find(|index| exchanges[*index].request == asked) {
            served.0[index] = true;
            return Ok(exchanges[index].response.clone());
        }
        let place = format!(
            "request {number} to the model is not in the recording {}",
            self.path.display()
        );
        let fix = "the prompt, the state or the program changed since it was recorded: record it \
                   again (delete the file, for `Recorded::replay_or_record`)";
        Err(ModelError::permanent(match unused().next() {
            None => format!(
                "{place}: all its {} exchanges have answered; {fix}",
                exchanges.len()
            ),
            Some(next) => {
                let (path, recorded, now) = first_difference(&exchanges[next].request, &asked)
                    .unwrap_or_else(|| (String::new(), Value::Null, Value::Null));
                format!(
                    "{place}: at `{path}` its next exchange (line {}) has {} where this request \
                     has {}; {fix}",
                    next + 1,
                    shown(&recorded),
                    shown(&now)
                )
            }
        }))
    }

    /// Writes one exchange as a line.
    fn write(
        &self,
        file: &Mutex<File>,
        request: &ChatRequest,
        response: &ChatResponse,
    ) -> Result<(), ModelError> {
        let failed = |message: String| {
            ModelError::permanent(format!(
                "cannot write the model recording {}: {message}",
                self.path.display()
            ))
        };
        let exchange = Exchange {
            request: serde_json::to_value(request).map_err(|error| failed(error.to_string()))?,
            response: response.clone(),
        };
        let mut line = serde_json::to_vec(&exchange).map_err(|error| failed(error.to_string()))?;
        line.push(b'\n');
        // One write per line: a run killed mid-write leaves at most its last line cut.
        let mut file = file.lock().unwrap_or_else(PoisonError::into_inner);
        file.write_all(&line)
            .and_then(|()| file.flush())
            .map_err(|error| failed(error.to_string()))
    }
}

impl<M: ChatModel> ChatModel for Recorded<M> {
    async fn chat(&self, request: &ChatRequest) -> Result<ChatResponse, ModelError> {
        match &self.mode {
            Mode::Replay { exchanges, served } => self.replayed(exchanges, served, request),
            Mode::Record { model, file } => {
                let response = model.chat(request).await?;
                self.write(file, request, &response)?;
                Ok(response)
            }
        }
    }

    async fn stream(
        &self,
        request: &ChatRequest,
        on_text: &(dyn Fn(&str) + Sync),
    ) -> Result<ChatResponse, ModelError> {
        match &self.mode {
            Mode::Replay { exchanges, served } => {
                let response = self.replayed(exchanges, served, request)?;
                if !response.text().is_empty() {
                    on_text(response.text());
                }
                Ok(response)
            }
            Mode::Record { model, file } => {
                let response = model.stream(request, on_text).await?;
                self.write(file, request, &response)?;
                Ok(response)
            }
        }
    }
}

impl<M> fmt::Debug for Recorded<M> {
    fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        formatter
            .debug_struct("Recorded")
            .field("path", &self.path)
            .field("replay", &self.is_replay())
            .field("remaining", &self.remaining())
            .finish_non_exhaustive()
    }
}

/// The exchanges of the recording at `path`, to replay.
fn read<M>(path: &Path) -> Result<Mode<M>, RecordingError> {
    let file = File::open(path).map_err(|source| RecordingError::Io {
        action: "read",
        path: path.to_path_buf(),
        source,
    })?;
    let mut exchanges = Vec::new();
    for (index, line) in BufReader::new(file).lines().enumerate() {
        let line = line.map_err(|source| RecordingError::Io {
            action: "read",
            path: path.to_path_buf(),
            source,
        })?;
        if line.trim().is_empty() {
            continue;
        }
        let exchange =
            serde_json::from_str::<Exchange>(&line).map_err(|error| RecordingError::Malformed {
                path: path.to_path_buf(),
                line: index + 1,
                message: error.to_string(),
            })?;
        exchanges.push(exchange);
    }
    let served = Mutex::new((vec![false; exchanges.len()], 0));
    Ok(Mode::Replay { exchanges, served })
}

/// The first place where `recorded` and `now` differ: its path (`messages[2].content`), and the
/// value each has there (`null` where one has nothing).
fn first_difference(recorded: &Value, now: &Value) -> Option<(String, Value, Value)> {
    if recorded == now {
        return None;
    }
    match (recorded, now) {
        (Value::Object(left), Value::Object(right)) => {
            let mut keys: Vec<&String> = left.keys().chain(right.keys()).collect();
            keys.sort();
            keys.dedup();
            keys.into_iter().find_map(|key| {
                let (one, other) = (
                    left.get(key).unwrap_or(&Value::Null),
                    right.get(key).unwrap_or(&Value::Null),
                );
                first_difference(one, other).map(|(path, one, other)| {
                    let path = if path.is_empty() || path.starts_with('[') {
                        format!("{key}{path}")
                    } else {
                        format!("{key}.{path}")
                    };
                    (path, one, other)
                })
            })
        }
        (Value::Array(left), Value::Array(right)) => {
            (0..left.len().max(right.len())).find_map(|index| {
                let (one, other) = (
                    left.get(index).unwrap_or(&Value::Null),
                    right.get(index).unwrap_or(&Value::Null),
                );
                first_difference(one, other).map(|(path, one, other)| {
                    let path = if path.is_empty() || path.starts_with('[') {
                        format!("[{index}]{path}")
                    } else {
                        format!("[{index}].{path}")
                    };
                    (path, one, other)
                })
            })
        }
        _ => Some((String::new(), recorded.clone(), now.clone())),
    }
}

/// A value for an error message, cut short when long.
fn shown(value: &Value) -> String {
    const MOST: usize = 160;
    let text = if value.is_null() {
        "nothing".to_string()
    } else {
        value.to_string()
    };
    if text.chars().count() <= MOST {
        text
    } else {
        let cut: String = text.chars().take(MOST).collect();
        format!("{cut}...")
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn the_first_difference_is_named_by_its_path() {
        let recorded = json!({"messages": [{"role": "user", "content": "a"}], "temperature": 0.5});
        let now = json!({"messages": [{"role": "user", "content": "b"}], "temperature": 0.5});
        let (path, one, other) = first_difference(&recorded, &now).unwrap();
        assert_eq!(path, "messages[0].content");
        assert_eq!((one, other), (json!("a"), json!("b")));

        let longer = json!({"messages": [{"role": "user", "content": "a"}, {"role": "ai"}]});
        let (path, one, other) = first_difference(&recorded, &longer).unwrap();
        assert_eq!(path, "messages[1]");
        assert_eq!((one, other), (Value::Null, json!({"role": "ai"})));

        let (path, ..) = first_difference(&recorded, &json!({"messages": []})).unwrap();
        assert_eq!(path, "messages[0]");
        assert!(first_difference(&recorded, &recorded.clone()).is_none());
        let (path, ..) = first_difference(&json!([[1, 2]]), &json!([[1, 3]])).unwrap();
        assert_eq!(path, "[0][1]");
    }

    #[test]
    fn long_values_are_cut_short() {
        let long = Value::String("x".repeat(500));
        let text = shown(&long);
        assert!(text.len() < 200 && text.ends_with("..."), "{text}");
        assert_eq!(shown(&Value::Null), "nothing");
    }
}
