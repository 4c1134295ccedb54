//! [`Blocking`]: every call of a [`Durable`] for synchronous programs, on one runtime of its own.

use serde::Serialize;
use serde::de::DeserializeOwned;

use super::{Durable, Outcome, Pause, ThreadInfo};
use crate::checkpoint::{CheckpointStore, RunStatus, StepRecord};
use crate::error::Error;
use crate::flow::FlowGraph;
use crate::run::blocking_runtime;
use crate::state::SharedState;

/// The calls of a [`Durable`] for synchronous programs: the same calls with the same arguments,
/// each returning when its work is done. Made by [`Durable::blocking`], it owns one
/// single-threaded tokio runtime (with IO and timers, so any client works inside a node) that
/// every call uses in turn.
///
/// An approval tool, start to finish, with no `async` in sight:
///
/// ```
/// use serde::{Deserialize, Serialize};
/// use slateflow::checkpoint::MemoryStore;
/// use slateflow::durable::Outcome;
/// use slateflow::{Command, SharedState, flow, node};
///
/// #[derive(SharedState, Clone, Debug, Default, Serialize, Deserialize)]
/// struct Refund {
///     amount: u32,
///     approved: Option<bool>,
///     paid: bool,
/// }
///
/// #[node]
/// fn check(refund: &Refund) -> Command<Refund> {
///     Command::goto("default").ask(format!("Pay back {} EUR?", refund.amount))
/// }
///
/// #[node]
/// fn pay(refund: &Refund) -> Command<Refund> {
///     Command::new(Refund::update().set_paid(refund.approved == Some(true)))
/// }
///
/// let refunds = flow! { check >> pay; };
/// let durable = refunds.durable(MemoryStore::new()).blocking()?;
/// let mut refund = Refund { amount: 120, ..Refund::default() };
/// let Outcome::Paused(pauses) = durable.start("refund-1", &mut refund)? else {
///     panic!("the question pauses the run");
/// };
/// // Ask a person (here, the answer is yes), then go on.
/// durable.answer("refund-1", &pauses[0].key, Refund::update().set_approved(Some(true)))?;
/// let (refund, outcome) = durable.resume("refund-1")?;
/// assert!(refund.paid);
/// assert_eq!(outcome, Outcome::Finished("default".into()));
/// # Ok::<(), slateflow::Error>(())
/// ```
pub struct Blocking<'f, S, G, St> {
    durable: Durable<'f, S, G, St>,
    runtime: tokio::runtime::Runtime,
}

impl<'f, S, G, St> Durable<'f, S, G, St>
where
    S: SharedState + Serialize + DeserializeOwned + 'static,
    G: FlowGraph<S>,
    St: CheckpointStore + 'static,
{
    /// These durable runs for a synchronous program: see [`Blocking`].
    ///
    /// # Errors
    /// [`Error::BlockingInRuntime`] when called inside a tokio runtime (use the async calls
    /// there); [`Error::Runtime`] when the runtime cannot start.
    pub fn blocking(self) -> Result<Blocking<'f, S, G, St>, Error> {
        let runtime = blocking_runtime(
            "Durable::blocking",
            "durable.start(thread, &mut state).await",
        )?;
        Ok(Blocking {
            durable: self,
            runtime,
        })
    }
}

impl<'f, S, G, St> Blocking<'f, S, G, St>
where
    S: SharedState + Serialize + DeserializeOwned + 'static,
    G: FlowGraph<S>,
    St: CheckpointStore + 'static,
{
    /// The durable runs these calls make.
    pub fn durable(&self) -> &Durable<'f, S, G, St> {
        &self.durable
    }

    /// [`Durable::start`].
    ///
    /// # Errors
    /// As [`Durable::start`].
    pub fn start(&self, thread: &str, state: &mut S) -> Result<Outcome, Error> {
        self.runtime.block_on(self.durable.start(thread, state))
    }

    /// [`Durable::submit`].
    ///
    /// # Errors
    /// As [`Durable::submit`].
    pub fn submit(&self, thread: &str, state: &S) -> Result<(), Error> {
        self.runtime.block_on(self.durable.submit(thread, state))
    }

    /// [`Durable::resume`].
    ///
    /// # Errors
    /// As [`Durable::resume`].
    pub fn resume(&self, thread: &str) -> Result<(S, Outcome), Error> {
        self.runtime.block_on(self.durable.resume(thread))
    }

    /// [`Durable::answer`].
    ///
    /// # Errors
    /// As [`Durable::answer`].
    pub fn answer(&self, thread: &str, key: &str, update: S::Update) -> Result<(), Error> {
        self.runtime
            .block_on(self.durable.answer(thread, key, update))
    }

    /// [`Durable::reply`].
    ///
    /// # Errors
    /// As [`Durable::reply`].
    pub fn reply(
        &self,
        thread: &str,
        key: &str,
        reply: &impl serde::Serialize,
    ) -> Result<(), Error> {
        self.runtime
            .block_on(self.durable.reply(thread, key, reply))
    }

    /// [`Durable::update`].
    ///
    /// # Errors
    /// As [`Durable::update`].
    pub fn update(&self, thread: &str, update: S::Update) -> Result<(), Error> {
        self.runtime.block_on(self.durable.update(thread, update))
    }

    /// [`Durable::pending`].
    ///
    /// # Errors
    /// As [`Durable::pending`].
    pub fn pending(&self, thread: &str) -> Result<Vec<Pause>, Error> {
        self.runtime.block_on(self.durable.pending(thread))
    }

    /// [`Durable::state`].
    ///
    /// # Errors
    /// As [`Durable::state`].
    pub fn state(&self, thread: &str) -> Result<S, Error> {
        self.runtime.block_on(self.durable.state(thread))
    }

    /// [`Durable::state_at`].
    ///
    /// # Errors
    /// As [`Durable::state_at`].
    pub fn state_at(&self, thread: &str, step: u64) -> Result<S, Error> {
        self.runtime.block_on(self.durable.state_at(thread, step))
    }

    /// [`Durable::history`].
    ///
    /// # Errors
    /// As [`Durable::history`].
    pub fn history(&self, thread: &str) -> Result<Vec<StepRecord>, Error> {
        self.runtime.block_on(self.durable.history(thread))
    }

    /// [`Durable::verify`].
    ///
    /// # Errors
    /// As [`Durable::verify`].
    pub fn verify(&self, thread: &str) -> Result<crate::checkpoint::Verified, Error> {
        self.runtime.block_on(self.durable.verify(thread))
    }

    /// [`Durable::cancel`].
    ///
    /// # Errors
    /// As [`Durable::cancel`].
    pub fn cancel(&self, thread: &str) -> Result<(), Error> {
        self.runtime.block_on(self.durable.cancel(thread))
    }

    /// [`Durable::status`].
    ///
    /// # Errors
    /// As [`Durable::status`].
    pub fn status(&self, thread: &str) -> Result<RunStatus, Error> {
        self.runtime.block_on(self.durable.status(thread))
    }

    /// [`Durable::threads`].
    ///
    /// # Errors
    /// As [`Durable::threads`].
    pub fn threads(&self) -> Result<Vec<ThreadInfo>, Error> {
        self.runtime.block_on(self.durable.threads())
    }

    /// [`Durable::delete`].
    ///
    /// # Errors
    /// As [`Durable::delete`].
    pub fn delete(&self, thread: &str) -> Result<(), Error> {
        self.runtime.block_on(self.durable.delete(thread))
    }

    /// [`Durable::branch`].
    ///
    /// # Errors
    /// As [`Durable::branch`].
    pub fn branch(&self, thread: &str, step: u64, new_thread: &str) -> Result<(), Error> {
        self.runtime
            .block_on(self.durable.branch(thread, step, new_thread))
    }
}

impl<S, G, St> std::fmt::Debug for Blocking<'_, S, G, St> {
    fn fmt(&self, formatter: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        formatter
            .debug_struct("Blocking")
            .field("durable", &self.durable)
            .finish_non_exhaustive()
    }
}
