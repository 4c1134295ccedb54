//! The studio: a local web page where a person sees a store's threads and steers them (feature
//! `studio`).
//!
//! It shows each hosted flow as a picture (forks and joins, nested flows in groups of their own),
//! the store's threads (filtered by status, paged), and one thread at a time: its timeline (node,
//! action, routing reason, time, the update), the whole state after any step (its conversations
//! drawn as chats), how often each node ran and where the run stands, and the pauses it waits at,
//! each with a form to answer it (an input per plain field, JSON for the rest). From the page a person starts a thread of a hosted flow from
//! an initial state typed as JSON, answers pauses, edits a thread's state, resumes, queues a stopped
//! thread again for workers, cancels, and branches a new thread from an earlier step with an
//! edited state.
//!
//! ```no_run
//! use serde::{Deserialize, Serialize};
//! use slateflow::checkpoint::FileStore;
//! use slateflow::studio::Studio;
//! use slateflow::{Command, SharedState, flow, node};
//!
//! #[derive(SharedState, Debug, Default, Serialize, Deserialize)]
//! struct Refund {
//!     amount: u32,
//!     approved: Option<bool>,
//! }
//!
//! #[node]
//! fn check(refund: &Refund) -> Command<Refund> {
//!     Command::goto("default").ask(format!("Pay back {} EUR?", refund.amount))
//! }
//!
//! #[node]
//! fn pay(_: &Refund) -> Command<Refund> {
//!     Command::goto("default")
//! }
//!
//! #[tokio::main(flavor = "current_thread")]
//! async fn main() -> Result<(), Box<dyn std::error::Error>> {
//!     let refunds = flow! { check >> pay; };
//!     let durable = refunds.durable(FileStore::open("refunds")?).named("refunds");
//!     let server = Studio::of(durable).bind("127.0.0.1:7878").await?;
//!     println!("the studio is at {}", server.url());
//!     server.run().await?;
//!     Ok(())
//! }
//! ```
//!
//! # What it hosts
//! A studio reads threads from one store. The flows it hosts ([`Studio::of`], [`Studio::flow`])
//! are the ones whose threads it can run, answer, edit and rebuild at any step; a thread names its
//! flow by the name it was started with ([`Durable::named`]), or, unnamed, by its state type. A
//! studio over a store alone ([`Studio::new`]) lists every thread, shows its history and pauses,
//! its state at the steps that saved a snapshot, and cancels and branches threads.
//!
//! Runs the studio starts or resumes share its task: they are polled with its connections, not
//! spawned, so the flows need not be `'static`. It needs a tokio runtime with IO and timers
//! (`#[tokio::main]`, or a builder's `enable_all`). The page follows the open thread through
//! its event stream: the events of the runs this studio makes as they happen (the node running
//! now, a log), and the thread's saved changes whoever makes them (this studio, or workers
//! elsewhere), read through the store four times a second.
//!
//! # Safe by default
//! The studio listens where it is told; on an address other than a loopback one it needs a token
//! ([`Studio::token`]). Every change (a `POST`) needs that token, as `Authorization: Bearer
//! <token>`, or must come from the studio's own page (its `Origin` is the studio's). Without a
//! token given, the studio makes one at random ([`Server::token`]), for scripts. On a loopback
//! address, a request whose `Host` is not the studio's own (`127.0.0.1`, `localhost`, or the
//! address it was bound to) is refused, so that another site cannot reach it through a name that
//! resolves to the loopback address. Beyond the loopback, every request, reads included, needs
//! the token: open the page as `http://<host>:<port>/?token=<token>`. The page renders every value from a state as text, never as markup. A
//! malformed request gets a 4xx answer, `{"error": "..."}`, that says what was wrong, and changes
//! nothing.
//!
//! # The API
//! Everything the page does, a script can do, with JSON in and out. With the studio at
//! `127.0.0.1:7878` and its token in `$TOKEN`:
//!
//! | to do this | call |
//! |---|---|
//! | list the hosted flows, their graphs and fields | `curl 127.0.0.1:7878/api/flows` |
//! | list threads (by status, paged) | `curl '127.0.0.1:7878/api/threads?status=paused&offset=0&limit=50'` |
//! | see a thread: status, pauses, node counts, graph | `curl 127.0.0.1:7878/api/threads/refund-1` |
//! | read its timeline (paged) | `curl '127.0.0.1:7878/api/threads/refund-1/history?offset=0&limit=100'` |
//! | follow it as it changes (server-sent events: `changed`, `run`, `gone`) | `curl -N 127.0.0.1:7878/api/threads/refund-1/events` |
//! | read its state after step 3 (the current one without `step`) | `curl '127.0.0.1:7878/api/threads/refund-1/state?step=3'` |
//! | start a thread of a hosted flow | `curl -H "Authorization: Bearer $TOKEN" -d '{"flow": "refunds", "thread": "refund-2", "state": {"amount": 40}}' 127.0.0.1:7878/api/threads` |
//! | answer a pause (and resume when none is left) | `curl -H "Authorization: Bearer $TOKEN" -d '{"key": "asked:check@1", "update": {"approved": true}}' 127.0.0.1:7878/api/threads/refund-1/answer` |
//! | reply to a question asked inside a step (an agent's tool call waiting for approval) | `curl -H "Authorization: Bearer $TOKEN" -d '{"key": "asked:clerk@0:approve:0:c2", "reply": {"decision": "approve"}}' 127.0.0.1:7878/api/threads/invoice-7/answer` |
//! | edit a thread's state (saved as an input) | `curl -H "Authorization: Bearer $TOKEN" -d '{"update": {"amount": 50}}' 127.0.0.1:7878/api/threads/refund-1/update` |
//! | resume a thread (in the studio) | `curl -H "Authorization: Bearer $TOKEN" -X POST 127.0.0.1:7878/api/threads/refund-1/resume` |
//! | queue a stopped thread again, for workers | `curl -H "Authorization: Bearer $TOKEN" -X POST 127.0.0.1:7878/api/threads/refund-1/queue` |
//! | cancel a thread | `curl -H "Authorization: Bearer $TOKEN" -X POST 127.0.0.1:7878/api/threads/refund-1/cancel` |
//! | branch a new thread from step 1, edited | `curl -H "Authorization: Bearer $TOKEN" -d '{"step": 1, "thread": "refund-1b", "update": {"amount": 10}}' 127.0.0.1:7878/api/threads/refund-1/branch` |
//!
//! An update is the JSON of the state's update type: the fields it writes, by name.
//!
//! [`Durable::named`]: crate::durable::Durable::named

mod api;
mod hosted;
mod http;
mod live;

use std::collections::{HashMap, HashSet};
use std::future::Future;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex, PoisonError};

use serde::Serialize;
use serde::de::DeserializeOwned;
use tokio::net::{TcpListener, ToSocketAddrs};
use tokio::sync::{broadcast, mpsc};

use crate::checkpoint::CheckpointStore;
use crate::durable::{Durable, Outcome, ThreadRun};
use crate::error::Error;
use crate::event::Observer;
use crate::flow::FlowGraph;
use crate::state::SharedState;
use hosted::{Boxed, Hosted};

/// A studio over one store and the flows it hosts; see the [module documentation](self).
///
/// ```
/// use serde::{Deserialize, Serialize};
/// use slateflow::checkpoint::MemoryStore;
/// use slateflow::studio::Studio;
/// use slateflow::{Command, SharedState, flow, node};
///
/// #[derive(SharedState, Debug, Default, Serialize, Deserialize)]
/// struct Count {
///     #[reducer(add)]
///     n: u32,
/// }
///
/// #[node]
/// fn bump(_: &Count) -> Command<Count> {
///     Command::new(Count::update().add_n(1))
/// }
///
/// # tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap().block_on(async {
/// let counting = flow! { bump; };
/// let server = Studio::of(counting.durable(MemoryStore::new()).named("count"))
///     .bind("127.0.0.1:0")
///     .await?;
/// assert!(server.url().starts_with("http://127.0.0.1:"));
/// // Serve until the shutdown future completes: here, at once.
/// server.run_until(async {}).await?;
/// # Ok::<(), slateflow::studio::StudioError>(())
/// # }).unwrap();
/// ```
pub struct Studio<'f, St> {
    store: Arc<St>,
    flows: Vec<Box<dyn Hosted + 'f>>,
    token: Option<String>,
}

impl<'f, St: CheckpointStore + 'static> Studio<'f, St> {
    /// A studio over `store` that hosts no flow: it lists and shows threads, cancels and
    /// branches them. Host flows with [`flow`](Self::flow) to run them.
    pub fn new(store: St) -> Self {
        Self {
            store: Arc::new(store),
            flows: Vec::new(),
            token: None,
        }
    }

    /// A studio over `durable`'s store that hosts its flow.
    pub fn of<S, G>(durable: Durable<'f, S, G, St>) -> Self
    where
        S: SharedState + Serialize + DeserializeOwned + Send + Sync + 'static,
        S::Update: Send,
        G: FlowGraph<S> + Sync,
    {
        Self {
            store: durable.shared_store(),
            flows: vec![Box::new(durable)],
            token: None,
        }
    }

    /// Hosts another flow. Its threads are read from the studio's store: give it the same one.
    #[must_use]
    pub fn flow<S, G>(mut self, durable: Durable<'f, S, G, St>) -> Self
    where
        S: SharedState + Serialize + DeserializeOwned + Send + Sync + 'static,
        S::Update: Send,
        G: FlowGraph<S> + Sync,
    {
        self.flows.push(Box::new(durable));
        self
    }

    /// The token a change needs (`Authorization: Bearer <token>`), unless it comes from the
    /// studio's own page. Needed to listen on an address other than a loopback one.
    #[must_use]
    pub fn token(mut self, token: impl Into<String>) -> Self {
        self.token = Some(token.into());
        self
    }

    /// Listens on `address` (`"127.0.0.1:7878"`; port 0 picks a free one). Serve with
    /// [`Server::run`].
    ///
    /// # Errors
    /// [`StudioError::Bind`] when the address cannot be listened on;
    /// [`StudioError::TokenNeeded`] for an address other than a loopback one without a
    /// [`token`](Self::token); [`StudioError::Flows`] when two hosted flows share a name.
    pub async fn bind(self, address: impl ToSocketAddrs) -> Result<Server<'f, St>, StudioError> {
        self.check_flows()?;
        let listener = TcpListener::bind(address)
            .await
            .map_err(|source| StudioError::Bind { source })?;
        let local = listener
            .local_addr()
            .map_err(|source| StudioError::Bind { source })?;
        if !local.ip().is_loopback() && self.token.is_none() {
            return Err(StudioError::TokenNeeded { address: local });
        }
        let token = self.token.clone().unwrap_or_else(random_token);
        Ok(Server {
            studio: self,
            listener,
            local,
            token,
        })
    }

    /// Listens on `address` and serves until the process ends: [`bind`](Self::bind), then
    /// [`Server::run`].
    ///
    /// # Errors
    /// As [`bind`](Self::bind).
    pub async fn serve(self, address: impl ToSocketAddrs) -> Result<(), StudioError> {
        self.bind(address).await?.run().await
    }

    fn check_flows(&self) -> Result<(), StudioError> {
        for (index, flow) in self.flows.iter().enumerate() {
            if self.flows[..index]
                .iter()
                .any(|other| other.name() == flow.name())
            {
                return Err(StudioError::Flows {
                    reason: format!(
                        "two hosted flows are named `{}`: name each with `Durable::named`",
                        flow.name()
                    ),
                });
            }
        }
        Ok(())
    }

    /// The hosted flow of a thread started with `flow_name` for `state_type`: the one of that
    /// name, or, for a thread started unnamed, the only unnamed one of that state type.
    fn hosted(&self, flow_name: &str, state_type: &str) -> Option<&dyn Hosted> {
        self.flows
            .iter()
            .find(|flow| flow.name() == flow_name && flow.state_type() == state_type)
            .map(|flow| &**flow)
    }
}

/// A studio listening on its address; made by [`Studio::bind`].
pub struct Server<'f, St> {
    studio: Studio<'f, St>,
    listener: TcpListener,
    local: SocketAddr,
    token: String,
}

impl<St: CheckpointStore + 'static> Server<'_, St> {
    /// The address it listens on.
    pub fn local_addr(&self) -> SocketAddr {
        self.local
    }

    /// Its page's address, `http://127.0.0.1:7878/`.
    pub fn url(&self) -> String {
        format!("http://{}/", self.local)
    }

    /// The token a change needs, unless it comes from the studio's page: the one given to
    /// [`Studio::token`], or one made at random.
    pub fn token(&self) -> &str {
        &self.token
    }

    /// Serves until the process ends.
    ///
    /// # Errors
    /// None today: a connection's error ends that connection only. The `Result` leaves room for
    /// errors that end the studio.
    pub async fn run(self) -> Result<(), StudioError> {
        self.run_until(std::future::pending()).await
    }

    /// Serves until `shutdown` completes; then stops, dropping open connections and the runs it
    /// started (their threads stop where they were saved, to be resumed).
    ///
    /// # Errors
    /// As [`run`](Self::run).
    pub async fn run_until(self, shutdown: impl Future<Output = ()>) -> Result<(), StudioError> {
        let (runs, started) = mpsc::unbounded_channel();
        let (live, _) = broadcast::channel(live::BACKLOG);
        let host = Host {
            studio: &self.studio,
            runs,
            live,
            running: Mutex::default(),
            errors: Mutex::default(),
            token: &self.token,
            hosts: own_hosts(self.local),
        };
        host.serve(&self.listener, started, shutdown).await;
        Ok(())
    }
}

/// A studio that serves: its connections, and the runs they start.
struct Host<'s, 'f, St> {
    studio: &'s Studio<'f, St>,
    /// Where a request hands the runs it starts, to be polled with the connections.
    runs: mpsc::UnboundedSender<ThreadRun<'s>>,
    /// Where the events of those runs go, for the streams that follow their threads.
    live: broadcast::Sender<live::RunEvent>,
    /// The threads this studio runs now.
    running: Mutex<HashSet<String>>,
    /// The last error of a run this studio made that ended in one, by thread.
    errors: Mutex<HashMap<String, String>>,
    token: &'s str,
    /// The `Host` headers a request may carry; empty beyond the loopback (any, with the token).
    hosts: Vec<String>,
}

impl<'s, St> Host<'s, '_, St> {
    /// Hands `run` of `thread` to the serving loop.
    fn run(&self, thread: &str, run: Boxed<'s, Outcome>) {
        lock(&self.running).insert(thread.to_string());
        lock(&self.errors).remove(thread);
        // The loop outlives every request; a send fails only once it has stopped.
        let _ = self.runs.send(ThreadRun {
            thread: thread.to_string(),
            run,
        });
    }

    /// The observer of a run of `thread` that this studio makes: it relays the run's events to
    /// the streams that follow the thread.
    fn relay(&self, thread: &str) -> Arc<dyn Observer> {
        Arc::new(live::Relay {
            thread: thread.to_string(),
            sender: self.live.clone(),
        })
    }

    /// Records the end of a run.
    fn ended(&self, thread: &str, result: Result<Outcome, Error>) {
        lock(&self.running).remove(thread);
        if let Err(error) = result {
            lock(&self.errors).insert(thread.to_string(), error.to_string());
        }
    }

    fn is_running(&self, thread: &str) -> bool {
        lock(&self.running).contains(thread)
    }

    fn run_error(&self, thread: &str) -> Option<String> {
        lock(&self.errors).get(thread).cloned()
    }
}

fn lock<T>(mutex: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(PoisonError::into_inner)
}

/// The `Host` headers that name the studio itself, on a loopback address; none beyond it, where
/// any name may reach it (and every request needs the token instead).
fn own_hosts(local: SocketAddr) -> Vec<String> {
    if !local.ip().is_loopback() {
        return Vec::new();
    }
    let port = local.port();
    vec![
        local.to_string(),
        format!("127.0.0.1:{port}"),
        format!("localhost:{port}"),
        format!("[::1]:{port}"),
    ]
}

/// A token nobody can guess: 128 bits from the standard library's randomly seeded hasher (seeded
/// from the operating system), mixed with the time and the process.
fn random_token() -> String {
    use std::fmt::Write as _;
    use std::hash::{BuildHasher, Hasher};
    let mut token = String::new();
    for round in 0..2u64 {
        let mut hasher = std::collections::hash_map::RandomState::new().build_hasher();
        hasher.write_u64(round);
        hasher.write_u128(
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map_or(0, |time| time.as_nanos()),
        );
        hasher.write_u32(std::process::id());
        let _ = write!(token, "{:016x}", hasher.finish());
    }
    token
}

/// Why a studio cannot serve.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum StudioError {
    /// The address cannot be listened on.
    #[error("the studio cannot listen: {source}")]
    Bind {
        /// Why.
        source: std::io::Error,
    },
    /// An address other than a loopback one needs a token.
    #[error(
        "the studio would listen on {address}, which is not a loopback address: give it a token \
         with `Studio::token`, so that nobody else on the network can change threads"
    )]
    TokenNeeded {
        /// The address.
        address: SocketAddr,
    },
    /// The hosted flows cannot be told apart.
    #[error("the studio cannot host its flows: {reason}")]
    Flows {
        /// Why.
        reason: String,
    },
}
