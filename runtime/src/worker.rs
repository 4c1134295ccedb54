//! Workers: processes on any number of machines that take runnable threads from one PostgreSQL
//! database and run them (feature `postgres`).
//!
//! A thread is runnable when it was submitted ([`Durable::submit`]), when every pause it waited
//! at was answered ([`Durable::answer`], from any process), or when its last run stopped without
//! ending: its worker shut down, died, or hung. A [`Worker`] takes such threads
//! one at a time with `SELECT ... FOR UPDATE SKIP LOCKED` (workers never wait on each other nor
//! take the same thread), runs up to its concurrency limit at once, and is woken by
//! `LISTEN/NOTIFY` when a thread becomes runnable; it also looks every
//! [`poll`](Worker::poll) interval, which finds threads whose lease lapsed. Each run resumes from
//! the thread's last saved step, so a thread taken over from a dead worker applies no step twice,
//! and the dead worker's late writes are refused by the store's fencing.
//!
//! A worker killed outright (SIGKILL, a crashed machine whose connections the server drops) gives
//! up its threads at once: every store holds an advisory lock on a connection of its own for as
//! long as it lives, and every worker looks twice a second for owners whose lock is free. A
//! killed worker's threads are run on by another within about a second of its death, whatever
//! the lease. The lease is the guard against a process that hangs with its connections open: its
//! threads are taken over when it stops renewing them.
//!
//! This module owns the loop that takes and runs threads; it runs them through [`Durable`] and
//! stores through [`PostgresStore`], and knows nothing of nodes.

use std::future::Future;
use std::pin::{Pin, pin};
use std::sync::Arc;
use std::time::Duration;

use futures_util::stream::FuturesUnordered;
use futures_util::{StreamExt, stream};
use serde::Serialize;
use serde::de::DeserializeOwned;
use tokio::sync::Notify;
use tokio_postgres::AsyncMessage;

use crate::checkpoint::{CHANNEL, DatabaseError, PostgresStore, StoreError, Taken};
use crate::durable::{Durable, Outcome, ThreadRun};
use crate::error::Error;
use crate::flow::FlowGraph;
use crate::state::SharedState;

/// How often a worker looks for stores whose process died.
const REAP_EVERY: Duration = Duration::from_millis(500);

/// Takes runnable threads of the flows it knows from a [`PostgresStore`] and runs them, until its
/// shutdown signal; see the [module documentation](self).
///
/// Runs share the worker's task (they are polled together, not spawned), so a worker needs no
/// `'static` flows; start several workers, or several processes, to use more cores.
///
/// ```no_run
/// use serde::{Deserialize, Serialize};
/// use slateflow::checkpoint::PostgresStore;
/// use slateflow::worker::Worker;
/// use slateflow::{Command, SharedState, flow, node};
///
/// #[derive(SharedState, Debug, Default, Serialize, Deserialize)]
/// struct Ticket {
///     text: String,
///     answer: String,
/// }
///
/// #[node]
/// fn reply(ticket: &Ticket) -> Command<Ticket> {
///     Command::new(Ticket::update().set_answer(format!("Re: {}", ticket.text)))
/// }
///
/// # async fn run(shutdown: impl Future<Output = ()>) -> Result<(), slateflow::Error> {
/// let store = PostgresStore::connect("postgres://slateflow@127.0.0.1/runs").await?;
/// let support = flow! { reply; };
///
/// // Any process: submit a run of the flow named `support`.
/// let durable = support.durable(store.clone()).named("support");
/// durable.submit("ticket-7", &Ticket { text: "Refund?".into(), ..Ticket::default() }).await?;
///
/// // Worker processes: run the submitted threads, 8 at a time, until shut down
/// // (`shutdown` completes: Ctrl-C, say, with `tokio::signal::ctrl_c`).
/// let worker = Worker::new(store.clone())
///     .flow(support.durable(store.clone()).named("support"))
///     .concurrency(8);
/// let report = worker.run(shutdown).await?;
/// println!("{} runs finished", report.finished);
/// # Ok(()) }
/// ```
pub struct Worker<'f> {
    store: PostgresStore,
    flows: Vec<Box<dyn Runs + 'f>>,
    concurrency: usize,
    poll: Duration,
    grace: Duration,
}

/// What a worker did, returned when it stops.
///
/// ```
/// use slateflow::worker::WorkerReport;
///
/// // What `Worker::run` returns when its shutdown future completes.
/// let report = WorkerReport::default();
/// assert_eq!((report.finished, report.paused), (0, 0));
/// ```
#[derive(Debug, Clone, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct WorkerReport {
    /// Runs that ended.
    pub finished: u64,
    /// Runs that stopped at pauses.
    pub paused: u64,
    /// Runs that failed (the thread is marked failed and can be resumed), with the thread and
    /// the error's text.
    pub failed: Vec<(String, String)>,
    /// Runs stopped because another worker took the thread over, or it was cancelled: the store
    /// refused their writes.
    pub lost: Vec<String>,
    /// Runs given up at shutdown after the grace period, unfinished: their threads are runnable
    /// again, from their last saved step.
    pub released: Vec<String>,
    /// Times the worker could not look for runnable threads (the database was away); it looked
    /// again at its next poll. With feature `tracing`, each is also a warning.
    pub take_errors: u64,
}

impl<'f> Worker<'f> {
    /// A worker on `store` that knows no flow yet; its [`poll`](Self::poll) interval is half the
    /// store's lease.
    pub fn new(store: PostgresStore) -> Self {
        let poll = store.lease() / 2;
        Self {
            store,
            flows: Vec::new(),
            concurrency: 8,
            poll,
            grace: Duration::from_secs(10),
        }
    }

    /// Runs the threads submitted for this flow: those whose start record names it
    /// ([`Durable::named`]). Interrupts, the observer ([`Flow::observe`]) and the
    /// [`restore`](Durable::restore) set on `durable` apply to every run: a worker rebuilds each
    /// run's state from the store, so `restore` is where the fields that are `#[serde(skip)]`
    /// (a model client, a channel) are put back.
    ///
    /// ```no_run
    /// use std::sync::Arc;
    /// use serde::{Deserialize, Serialize};
    /// use slateflow::checkpoint::PostgresStore;
    /// use slateflow::worker::Worker;
    /// use slateflow::{Command, SharedState, flow, node};
    ///
    /// /// A client that each worker makes once and shares between its runs.
    /// #[derive(Debug)]
    /// struct Crm {
    ///     url: String,
    /// }
    ///
    /// #[derive(SharedState, Default, Serialize, Deserialize)]
    /// struct Ticket {
    ///     text: String,
    ///     /// Never saved: each worker puts its own back.
    ///     #[serde(skip)]
    ///     crm: Option<Arc<Crm>>,
    /// }
    ///
    /// #[node]
    /// fn reply(ticket: &Ticket) -> Command<Ticket> {
    ///     let crm = ticket.crm.as_ref().expect("put back by the worker");
    ///     Command::new(Ticket::update().set_text(format!("logged at {}", crm.url)))
    /// }
    ///
    /// # async fn run(shutdown: impl Future<Output = ()>) -> Result<(), slateflow::Error> {
    /// let store = PostgresStore::connect("postgres://slateflow@127.0.0.1/runs").await?;
    /// let support = flow! { reply; };
    /// let crm = Arc::new(Crm { url: "https://crm.internal".into() });
    /// let durable = support
    ///     .durable(store.clone())
    ///     .named("support")
    ///     .restore(move |ticket: &mut Ticket| ticket.crm = Some(Arc::clone(&crm)));
    /// let worker = Worker::new(store.clone()).flow(durable);
    /// worker.run(shutdown).await?;
    /// # Ok(()) }
    /// ```
    ///
    /// [`Flow::observe`]: crate::Flow::observe
    #[must_use]
    pub fn flow<S, G>(mut self, durable: Durable<'f, S, G, PostgresStore>) -> Self
    where
        S: SharedState + Serialize + DeserializeOwned + Send + 'static,
        G: FlowGraph<S> + Sync,
        S::Update: Send,
    {
        self.flows.push(Box::new(durable));
        self
    }

    /// Runs at most `runs` threads at once (at least 1; 8 by default).
    #[must_use]
    pub fn concurrency(mut self, runs: usize) -> Self {
        self.concurrency = runs.max(1);
        self
    }

    /// Looks for runnable threads at least this often (at least 10 ms), besides when woken: how
    /// soon a dead worker's threads are taken over once their lease lapsed.
    #[must_use]
    pub fn poll(mut self, every: Duration) -> Self {
        self.poll = every.max(Duration::from_millis(10));
        self
    }

    /// At shutdown, how long runs in flight may go on to their end or next pause (10 s by
    /// default) before they are dropped and their threads given up, to be resumed from their last
    /// saved step by another worker.
    #[must_use]
    pub fn grace(mut self, grace: Duration) -> Self {
        self.grace = grace;
        self
    }

    /// Takes and runs threads until `shutdown` completes; then takes no more, lets the runs in
    /// flight go on for the [`grace`](Self::grace) period, and gives up the rest.
    ///
    /// A run's own error (a node's failure, a lost claim) is counted in the report and the worker
    /// goes on; a database that cannot be reached is retried at the next poll.
    ///
    /// # Errors
    /// [`Error::Worker`] when a flow has no name or two flows share one; [`Error::Interrupt`] when
    /// a flow's interrupts name a node it cannot pause at;
    /// [`Error::Store`] when the worker cannot open its listening connection.
    pub async fn run(&self, shutdown: impl Future<Output = ()>) -> Result<WorkerReport, Error> {
        let names = self.names()?;
        // Once here, not per run: a flow that cannot run would otherwise fail every thread it
        // takes, and give each up to be taken again.
        for flow in &self.flows {
            flow.check()?;
        }
        let listener = Listener::start(&self.store).await?;
        let mut report = WorkerReport::default();
        let mut running = FuturesUnordered::new();
        let mut shutdown = pin!(shutdown);
        let mut reaping = tokio::time::interval(REAP_EVERY);
        reaping.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            // The worker's own work races `shutdown` at every await, taking threads included: a
            // shutdown future that uses the same store (a reply from the same process) may wait
            // on what the worker's next call waits on, and must be polled meanwhile.
            let work = async {
                let mut take_errors = 0;
                while running.len() < self.concurrency {
                    match self.store.take_runnable(&names).await {
                        Ok(Some(taken)) => running.push(self.start(taken)),
                        Ok(None) => break,
                        // The database is away: look again at the next poll.
                        Err(error) => {
                            take_errors += 1;
                            #[cfg(feature = "tracing")]
                            tracing::warn!(%error, "a worker could not look for runnable threads");
                            #[cfg(not(feature = "tracing"))]
                            let _ = error;
                            break;
                        }
                    }
                }
                let finished = tokio::select! {
                    Some(finished) = running.next(), if !running.is_empty() => Some(finished),
                    () = listener.wake.notified() => None,
                    _ = reaping.tick() => {
                        // The threads of dead workers are made runnable (and the workers
                        // woken); an error is the database being away, which the next take
                        // reports.
                        let _ = self.store.reap().await;
                        None
                    }
                    () = tokio::time::sleep(self.poll) => None,
                };
                (take_errors, finished)
            };
            tokio::select! {
                () = &mut shutdown => break,
                (take_errors, finished) = work => {
                    report.take_errors += take_errors;
                    if let Some((thread, result)) = finished {
                        report.count(thread, result);
                    }
                }
            }
        }
        // Shutting down: no new threads; the runs in flight get the grace period.
        let drained = tokio::time::timeout(self.grace, async {
            while let Some((thread, result)) = running.next().await {
                report.count(thread, result);
            }
        })
        .await;
        if drained.is_err() {
            report.released = running
                .iter()
                .map(|run: &ThreadRun<'_>| run.thread.clone())
                .collect();
        }
        drop(running);
        // The dropped runs' claims are given up now, so other workers take them at once.
        self.store.settle().await?;
        Ok(report)
    }

    fn names(&self) -> Result<Vec<&str>, Error> {
        let mut names: Vec<&str> = Vec::with_capacity(self.flows.len());
        for flow in &self.flows {
            let name = flow.name();
            if name.is_empty() {
                return Err(Error::Worker {
                    reason: "a flow has no name: give each flow a name with `Durable::named`, the \
                             same one its threads are submitted with"
                        .into(),
                });
            }
            if names.contains(&name) {
                return Err(Error::Worker {
                    reason: format!("two flows are named `{name}`: a thread must name one flow"),
                });
            }
            names.push(name);
        }
        if names.is_empty() {
            return Err(Error::Worker {
                reason: "the worker knows no flow: add one with `Worker::flow`".into(),
            });
        }
        Ok(names)
    }

    fn start(&self, taken: Taken) -> ThreadRun<'_> {
        let flow = self
            .flows
            .iter()
            .find(|flow| flow.name() == taken.flow)
            .expect("only threads of known flows are taken");
        ThreadRun {
            thread: taken.thread.clone(),
            run: flow.run(taken),
        }
    }
}

impl WorkerReport {
    fn count(&mut self, thread: String, result: Result<Outcome, Error>) {
        match result {
            Ok(Outcome::Finished(_)) => self.finished += 1,
            Ok(Outcome::Paused(_)) => self.paused += 1,
            Err(Error::Store(StoreError::Claimed { .. } | StoreError::Cancelled { .. })) => {
                self.lost.push(thread);
            }
            Err(error) => self.failed.push((thread, error.to_string())),
        }
    }
}

/// A durable flow a worker can run, whatever its state type.
trait Runs: Send + Sync {
    fn name(&self) -> &str;

    /// Checks what can be checked before any thread is taken: the interrupts.
    fn check(&self) -> Result<(), Error>;

    fn run(
        &self,
        taken: Taken,
    ) -> Pin<Box<dyn Future<Output = Result<Outcome, Error>> + Send + '_>>;
}

impl<S, G> Runs for Durable<'_, S, G, PostgresStore>
where
    S: SharedState + Serialize + DeserializeOwned + Send + 'static,
    G: FlowGraph<S> + Sync,
    S::Update: Send,
{
    fn name(&self) -> &str {
        Durable::name(self)
    }

    fn check(&self) -> Result<(), Error> {
        self.check_interrupts()
    }

    fn run(
        &self,
        taken: Taken,
    ) -> Pin<Box<dyn Future<Output = Result<Outcome, Error>> + Send + '_>> {
        Box::pin(async move {
            let (_, outcome) = self.resume_claimed(taken.claim, &taken.thread).await?;
            Ok(outcome)
        })
    }
}

/// A connection of its own that listens for runnable threads and wakes the worker.
struct Listener {
    wake: Arc<Notify>,
    /// Keeps the connection open; dropped with the worker's run.
    _client: tokio_postgres::Client,
}

impl Listener {
    async fn start(store: &PostgresStore) -> Result<Self, StoreError> {
        let failed = |error: tokio_postgres::Error| StoreError::Backend {
            thread: String::new(),
            action: "listen for runnable threads",
            path: store.database().to_path_buf(),
            source: Box::new(DatabaseError::from(&error)),
        };
        let (config, tls) = store.config();
        let (client, mut connection) = config.connect(tls).await.map_err(failed)?;
        let wake = Arc::new(Notify::new());
        let woken = Arc::clone(&wake);
        tokio::spawn(async move {
            let mut messages = stream::poll_fn(move |cx| connection.poll_message(cx));
            while let Some(Ok(message)) = messages.next().await {
                if let AsyncMessage::Notification(_) = message {
                    woken.notify_one();
                }
            }
        });
        client
            .batch_execute(&format!("LISTEN {CHANNEL}"))
            .await
            .map_err(failed)?;
        Ok(Self {
            wake,
            _client: client,
        })
    }
}
