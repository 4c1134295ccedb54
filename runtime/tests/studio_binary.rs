//! The `slateflow-studio` binary, run as a user would: over a file store and a SQLite store that
//! a flow's threads were saved to, it serves their threads and draws their flow from what the
//! store kept of it; a bad command line or a missing store is a clear error and an exit status.
//! (The studio's API itself is tested against every store in `tests/studio.rs`.)

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};

use serde::{Deserialize, Serialize};
use serde_json::Value;
use slateflow::checkpoint::{FileStore, SqliteStore};
use slateflow::{Command as Next, SharedState, flow, node};

#[derive(SharedState, Debug, Default, Serialize, Deserialize)]
struct Ticket {
    text: String,
    #[reducer(append)]
    log: Vec<String>,
}

#[node]
fn read(ticket: &Ticket) -> Next<Ticket> {
    Next::new(Ticket::update().push_log(format!("read {}", ticket.text)))
}

#[node]
fn ask(_: &Ticket) -> Next<Ticket> {
    Next::goto("default").ask("Close it?")
}

const BINARY: &str = env!("CARGO_BIN_EXE_slateflow-studio");

fn scratch(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!(
        "slateflow-studio-binary-{name}-{}",
        std::process::id()
    ));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

/// A studio process, killed when dropped.
struct Running {
    child: Child,
    address: String,
    /// Its output, kept open while it runs.
    _output: BufReader<std::process::ChildStdout>,
}

impl Drop for Running {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Starts the binary over `store` on a free port, once it says where it listens.
fn start(store: &str) -> Running {
    let mut child = Command::new(BINARY)
        .args(["--store", store, "--address", "127.0.0.1:0"])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut line = String::new();
    let mut output = BufReader::new(child.stdout.take().unwrap());
    output.read_line(&mut line).unwrap();
    let address = line
        .trim()
        .strip_prefix("the studio is at http://")
        .unwrap_or_else(|| panic!("it printed: {line}"))
        .trim_end_matches('/')
        .to_string();
    Running {
        child,
        address,
        _output: output,
    }
}

/// A plain HTTP/1.1 GET: the status and the body as JSON.
fn get(address: &str, path: &str) -> (u16, Value) {
    let mut stream = TcpStream::connect(address).unwrap();
    write!(
        stream,
        "GET {path} HTTP/1.1\r\nHost: {address}\r\nConnection: close\r\n\r\n"
    )
    .unwrap();
    let mut response = String::new();
    stream.read_to_string(&mut response).unwrap();
    let status = response
        .split(' ')
        .nth(1)
        .and_then(|status| status.parse().ok())
        .unwrap();
    let (_, body) = response.split_once("\r\n\r\n").unwrap();
    (status, serde_json::from_str(body).unwrap())
}

/// What the binary shows of a store with one waiting thread of the flow `tickets`.
fn shows_the_thread_and_its_flow(store: &str) {
    let studio = start(store);
    let (status, threads) = get(&studio.address, "/api/threads");
    assert_eq!(status, 200, "{threads}");
    assert_eq!(threads["threads"][0]["id"], "ticket-1");
    assert_eq!(threads["threads"][0]["status"], "paused");
    let (_, flows) = get(&studio.address, "/api/flows");
    assert_eq!(flows["flows"][0]["name"], "tickets");
    assert_eq!(flows["flows"][0]["hosted"], false);
    let (_, thread) = get(&studio.address, "/api/threads/ticket-1");
    assert_eq!(thread["graph"]["start"], "read");
    assert_eq!(thread["pauses"][0]["asked"], "Close it?");
    let (_, state) = get(&studio.address, "/api/threads/ticket-1/state?step=0");
    assert_eq!(state["state"]["text"], "printer on fire");
}

fn save_a_waiting_thread(store: impl slateflow::checkpoint::CheckpointStore + 'static) {
    let tickets = flow! { read >> ask; };
    let durable = tickets.durable(store).named("tickets").blocking().unwrap();
    let mut ticket = Ticket {
        text: "printer on fire".into(),
        ..Ticket::default()
    };
    let outcome = durable.start("ticket-1", &mut ticket).unwrap();
    assert_eq!(outcome.pauses().len(), 1);
}

#[test]
fn serves_a_file_store() {
    let dir = scratch("file");
    save_a_waiting_thread(FileStore::open(&dir).unwrap());
    shows_the_thread_and_its_flow(&format!("file:{}", dir.display()));
}

#[test]
fn serves_a_sqlite_store() {
    let dir = scratch("sqlite");
    let file = dir.join("threads.db");
    save_a_waiting_thread(SqliteStore::open(&file).unwrap());
    shows_the_thread_and_its_flow(&format!("sqlite:{}", file.display()));
}

/// Runs the binary to its end: its exit status and what it wrote to stderr.
fn fails(arguments: &[&str]) -> (Option<i32>, String) {
    let output = Command::new(BINARY).args(arguments).output().unwrap();
    (
        output.status.code(),
        String::from_utf8(output.stderr).unwrap(),
    )
}

#[test]
fn a_bad_command_line_or_a_missing_store_is_a_clear_error() {
    let (code, said) = fails(&[]);
    assert_eq!(code, Some(2));
    assert!(said.contains("`--store` is needed"), "{said}");
    assert!(said.contains("usage: slateflow-studio --store"), "{said}");
    let (code, said) = fails(&["--store", "mysql://x"]);
    assert_eq!(code, Some(1));
    assert!(said.contains("`mysql://x` names no store"), "{said}");
    let missing = Path::new("/nonexistent/slateflow-threads");
    let (_, said) = fails(&["--store", &format!("file:{}", missing.display())]);
    assert!(
        said.contains("no folder `/nonexistent/slateflow-threads`"),
        "{said}"
    );
    let (_, said) = fails(&["--store", "sqlite:/nonexistent/threads.db"]);
    assert!(said.contains("no file `/nonexistent/threads.db`"), "{said}");
    let (code, said) = fails(&["--stor", "file:x"]);
    assert_eq!(code, Some(2));
    assert!(said.contains("unknown argument `--stor`"), "{said}");
    let dir = scratch("wide");
    let (_, said) = fails(&[
        "--store",
        &format!("file:{}", dir.display()),
        "--address",
        "0.0.0.0:0",
    ]);
    assert!(
        said.contains("not a loopback address: give it a token"),
        "{said}"
    );
}
