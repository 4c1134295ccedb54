//! The run: the one loop that walks a flow, and everything a run carries from step to step.
//!
//! Generated code supplies only what is static ([`FlowGraph`]: run the node at a position, where
//! an action leads); [`Run`] owns everything else: the loop (here), step numbers and limits,
//! params, where it is (the [`Trail`] of positions through nested flows), panic attribution,
//! applying updates and recording them for runs on copies of the state. Its rooms:
//! - `step`: one node step, plain or journaled;
//! - `fork`: a fork's start and join, and the runner of its branches (and of runs on copies);
//! - `composite`: steps that run other steps inside them (a batch flow's);
//! - `hook`: what watches ([`Watch`]: events) and what records and steers a run ([`Journal`]:
//!   commits, kept parts, resume cursors, pauses).
//!
//! A run is generic over its watch and its journal, statically dispatched: a plain run with no
//! observer pays for neither. Durability is the one journal that records, in `durable/`, which
//! this module does not know.
//!
//! This module must not touch storage, the saved form of steps, or any particular flow or node
//! kind: it sees nodes through [`Node`], flows through [`FlowGraph`] and composite node kinds
//! through their calls of [`Runner`].

mod composite;
mod fork;
pub(crate) mod hook;
mod step;

use std::any::Any;
use std::future::Future;
use std::marker::PhantomData;
use std::panic::AssertUnwindSafe;
use std::sync::atomic::AtomicU32;
use std::time::Instant;

pub(crate) use fork::BranchEnv;
pub(crate) use hook::{
    After, Commit, Entry, Here, Journal, NoJournal, NoWatch, Notes, Observe, OpenSteps, PartOf,
    Progress, RunEnd, Watch,
};

use crate::error::{Error, Phase};
use crate::event::{At, Event, EventSink};
use crate::node::dispatch::{Branch, Composite, FlowGraph, PhaseCell, Runner, Stepped};
use crate::node::{Command, Context, ItemJournal, Limit, Node, Params, RunScope};
use crate::state::{SharedState, StateUpdate};

/// How deeply flows may nest (a flow in a flow in a flow ...).
pub(crate) const MAX_DEPTH: usize = 8;

/// Where a run is: the position and name at each level of nested flows, outermost first.
/// Fixed-size, so that walking nested flows allocates nothing.
///
/// A step sets only its position: a level's name is written when something reads it, which is
/// when a flow nested at that level is entered (the levels above a node are its flows), and when
/// a step is committed or a part of one keeps where it stopped (the whole path is saved).
#[derive(Debug, Clone, Copy)]
pub(crate) struct Trail {
    names: [&'static str; MAX_DEPTH],
    positions: [u32; MAX_DEPTH],
    depth: usize,
}

impl Trail {
    const fn new() -> Self {
        Self {
            names: [""; MAX_DEPTH],
            positions: [0; MAX_DEPTH],
            depth: 0,
        }
    }

    /// The names of the flows the current node is nested in (the levels above it).
    #[inline]
    pub(crate) fn flows(&self) -> &[&'static str] {
        &self.names[..self.depth.saturating_sub(1)]
    }

    /// The names at every level, the current node last.
    #[inline]
    pub(crate) fn names(&self) -> &[&'static str] {
        &self.names[..self.depth]
    }

    /// The positions at every level.
    #[inline]
    pub(crate) fn positions(&self) -> &[u32] {
        &self.positions[..self.depth]
    }

    /// How many levels deep the current node is.
    #[inline]
    pub(crate) fn depth(&self) -> usize {
        self.depth
    }

    /// The current level is at `position`.
    #[inline]
    fn set(&mut self, position: usize) {
        if let Some(level) = self.depth.checked_sub(1) {
            self.positions[level] = u32::try_from(position).unwrap_or(u32::MAX);
        }
    }

    /// The current level's node is `name`.
    #[inline]
    fn rename(&mut self, name: &'static str) {
        if let Some(level) = self.depth.checked_sub(1) {
            self.names[level] = name;
        }
    }
}

/// A composite step under way in a run whose journal pauses: where the run stood before it, so
/// that, when a pause stops the step in the middle, the run stands there again
/// ([`Run::unwind`]).
pub(crate) struct Opened<S: SharedState> {
    steps: u64,
    trail: Trail,
    composite: u32,
    /// The run's record before the step, whose own updates are recorded apart until it ends.
    record: Option<S::Update>,
}

/// The fork a run is in the middle of.
#[derive(Debug, Clone, Copy)]
struct ForkAt {
    name: &'static str,
    branches: &'static [&'static str],
    before: u64,
    started: Option<Instant>,
}

/// What a run's steps read while they run (through their [`Context`]): its params, its watch,
/// its journal, and how many composite steps it is inside. Apart from the rest of the run, so
/// that a step's context points at it with one shared borrow while the step holds the run.
pub(crate) struct Host<S, W, J> {
    params: Params,
    watch: W,
    journal: J,
    /// How many composite steps (batch flows) the run is inside; their inner steps are not
    /// committed one by one.
    composite: u32,
    state: PhantomData<fn() -> S>,
}

impl<S: SharedState, W: Watch, J: Journal<S>> RunScope for Host<S, W, J> {
    fn params(&self) -> &Params {
        &self.params
    }

    fn thread(&self) -> Option<&str> {
        self.journal.thread()
    }

    fn events(&self) -> &dyn EventSink {
        &self.watch
    }

    fn items(&self, at: &At<'_>) -> Option<&dyn ItemJournal> {
        // A fork's branch is not saved on its own: what its step keeps goes with the fork's parts
        // (`fork::BranchScope`); a context of one that reaches here keeps nothing.
        if at.fork.is_some() {
            return None;
        }
        let here = Here {
            flows: at.flows,
            name: at.node,
            step: at.step.saturating_sub(1),
            composite: self.composite,
        };
        self.journal.items(here)
    }
}

/// One run: what it carries from step to step, with its watch and its journal.
pub(crate) struct Run<S: SharedState, W, J: Journal<S>> {
    host: Host<S, W, J>,
    /// Node steps started so far (in a resumed run, counted from the thread's start).
    steps: u64,
    limit: Limit,
    trail: Trail,
    /// The node running now and its phase: what a caught panic is attributed to.
    node: &'static str,
    phase: PhaseCell,
    /// When set, every update applied is also composed into it: a run on a copy of the state
    /// hands it back to be merged; a composite step commits it as one.
    record: Option<S::Update>,
    fork: Option<ForkAt>,
    /// For a run on a copy made for a branch of a fork: that fork, for the events.
    branch_of: Option<&'static str>,
    /// Where the outermost flow's step limit counts from, when not from where it is entered (a
    /// resumed thread counts from its start).
    limit_origin: Option<u64>,
    /// The composite steps under way, outermost first, in a run whose journal pauses; nothing
    /// (`()`) in one whose journal does not, so that a plain run's future carries none of it.
    opened: J::Open,
}

impl<S: SharedState, W: Watch, J: Journal<S>> Run<S, W, J> {
    /// A run after `steps` steps (0 for a new one).
    pub(crate) fn new(watch: W, journal: J, params: Params, steps: u64) -> Self {
        Self {
            host: Host {
                params,
                watch,
                journal,
                composite: 0,
                state: PhantomData,
            },
            steps,
            limit: Limit::NONE,
            trail: Trail::new(),
            node: "",
            phase: PhaseCell::new(),
            record: None,
            fork: None,
            branch_of: None,
            limit_origin: None,
            opened: J::Open::default(),
        }
    }

    /// Counts the outermost flow's step limit from step `origin` (a thread's start) rather than
    /// from where this run enters it.
    pub(crate) fn count_limit_from(&mut self, origin: u64) {
        self.limit_origin = Some(origin);
    }

    /// The steps opened since `mark` composite steps were under way (composite steps, or a
    /// fork) stopped at pauses inside their parts: they did not happen, and the run stands
    /// before the outermost of them again: its steps, where it is, its record.
    fn unwind(&mut self, mark: usize) {
        if let Some(fork) = self.fork.take() {
            self.steps = fork.before;
        }
        if let Some(outermost) = self.opened.outermost_since(mark) {
            self.steps = outermost.steps;
            self.trail = outermost.trail;
            self.host.composite = outermost.composite;
            self.record = outermost.record;
        }
    }

    /// Node steps started so far.
    pub(crate) fn steps(&self) -> u64 {
        self.steps
    }

    /// The journal, when the run is over.
    pub(crate) fn into_journal(self) -> J {
        self.host.journal
    }

    /// Sends an event, when the run is watched.
    #[inline]
    pub(crate) fn emit(&self, event: &Event<'_>) {
        if W::OBSERVES {
            self.host.watch.event(event);
        }
    }

    /// Runs `node` as the whole run (a flow, or a node alone) under a step limit of
    /// `max_steps`, catching panics once around it, with the run's started and ended events; hands
    /// the run back with its outcome. The run is the future's own, not borrowed by it: a parked
    /// run is one future, with nothing around it.
    pub(crate) async fn run<N: Node<S>>(
        &mut self,
        node: &N,
        state: &mut S,
        name: &'static str,
        max_steps: u64,
    ) -> Result<&'static str, Error> {
        self.emit(&Event::RunStarted {
            thread: self.host.journal.thread(),
            first_step: self.steps + 1,
            max_steps,
        });
        let outcome = catch_panic(node.__run(self, state, name)).await;
        let result = match outcome {
            Ok(stepped) => stepped.map_err(|error| *error),
            Err(payload) => Err(self.panic_error(payload)),
        };
        if W::OBSERVES {
            match &result {
                Ok(action) => self.emit(&Event::RunFinished {
                    action,
                    steps: self.steps,
                }),
                // A pause is the durable run's to report, with the thread's path.
                Err(Error::Paused { .. }) => {}
                Err(error) => self.emit(&Event::RunFailed {
                    error,
                    steps: self.steps,
                }),
            }
        }
        result
    }

    /// The error for a panic caught while this run was going: the node, step and phase recorded
    /// when it panicked.
    pub(crate) fn panic_error(&self, payload: Box<dyn Any + Send>) -> Error {
        Error::Panic {
            node: self.node,
            step: self.steps,
            phase: self.phase.get(),
            message: panic_message(payload),
        }
    }

    fn at(&self, node: &'static str, step: u64) -> At<'_> {
        At {
            flows: self.trail.flows(),
            node,
            step,
            fork: self.branch_of,
        }
    }

    /// Where the run is, for its journal: at `name` after `step` steps.
    fn here(&self, name: &'static str, step: u64) -> Here<'_> {
        Here::of(&self.trail, self.host.composite, name, step)
    }

    /// The context of node `name`'s step `step`: the one place a run builds a [`Context`] (a
    /// fork's branches build theirs from the same host). `attempts` counts a retried `#[node]`
    /// body's attempts.
    fn context<'a>(
        &'a self,
        name: &'static str,
        step: u64,
        attempts: Option<&'a AtomicU32>,
    ) -> Context<'a> {
        let at = At {
            flows: self.trail.flows(),
            node: name,
            step,
            fork: self.branch_of,
        };
        Context::in_run(&self.host, at, self.limit, attempts)
    }

    /// Applies `update`, recording it when this run records.
    #[inline]
    fn apply(&mut self, state: &mut S, update: S::Update) {
        self.phase.set(Phase::Apply);
        if self.record.is_some() {
            self.record(&update);
        }
        state.apply(update);
    }

    #[cold]
    fn record(&mut self, update: &S::Update) {
        if let Some(record) = &mut self.record {
            *record = std::mem::take(record).then(update.clone());
        }
    }

    /// Applies a step's update and commits it through the journal, as of the run's step count
    /// and trail: whether the run pauses after it.
    async fn commit(
        &mut self,
        state: &mut S,
        update: S::Update,
        action: &'static str,
        notes: Notes<'_>,
    ) -> Result<bool, Error> {
        self.host.journal.prepare(self.steps, &update)?;
        self.apply(state, update);
        let commit = Commit {
            step: self.steps,
            trail: &self.trail,
            action,
            notes,
        };
        self.host.journal.commit(state, commit).await
    }

    /// Walks the flow `G`, the node `name` of the flow around it, on `state` from its start (or,
    /// for a resumed run, from where its journal says), bounded by `max_steps` within the limit
    /// of the flows around it.
    async fn walk<G: FlowGraph<S>>(
        &mut self,
        graph: &G,
        state: &mut S,
        name: &'static str,
        max_steps: u64,
    ) -> Stepped {
        if self.trail.depth == MAX_DEPTH {
            return Err(Box::new(Error::NestingTooDeep {
                node: self.node,
                limit: MAX_DEPTH,
            }));
        }
        let entry = if J::PAUSES {
            self.host
                .journal
                .enter_flow(self.trail.depth, self.steps, self.host.composite)
        } else {
            None
        };
        // The flow is the node `name` of the level around it: its nodes' flows end with it.
        self.trail.rename(name);
        self.trail.depth += 1;
        let outer = self.limit;
        let mut origin = self.limit_origin.take().unwrap_or(self.steps);
        if let Some(entered) = entry.as_ref().and_then(|entry| entry.entered) {
            origin = entered;
        }
        let last_step = origin.saturating_add(max_steps);
        if last_step < outer.last_step {
            self.limit = Limit {
                max_steps,
                last_step,
            };
        }
        // The entry is consumed here, in a function of its own, so that the walk's future does not
        // keep it beside every step's.
        let mut position = match self.start_at::<G>(entry)? {
            Ok(position) => position,
            Err(action) => {
                self.trail.depth -= 1;
                self.limit = outer;
                return Ok(action);
            }
        };
        let action = loop {
            self.trail.set(position);
            if self.steps >= self.limit.last_step {
                return Err(Box::new(Error::StepLimit {
                    limit: self.limit.max_steps,
                    node: G::NAMES[position],
                    step: self.steps + 1,
                }));
            }
            let action = graph.step(position, self, state).await?;
            if let Some(next) = G::route(position, action) {
                position = next;
            } else {
                let wired = G::wired(position);
                if W::OBSERVES && !wired.is_empty() {
                    self.emit(&Event::NoEdge {
                        at: self.at(G::NAMES[position], self.steps),
                        action,
                        wired,
                    });
                }
                break action;
            }
        };
        self.trail.depth -= 1;
        self.limit = outer;
        Ok(action)
    }
}

impl<S: SharedState, W: Watch, J: Journal<S>> Run<S, W, J> {
    /// Where the flow `G`, just entered, starts: its start position, or, for a resumed run, its
    /// saved position; at the innermost flow, the step there already ran, and the run routes on
    /// its saved action instead of running it again (`Err`: that action has no edge, and the
    /// flow ends with it).
    fn start_at<G: FlowGraph<S>>(
        &mut self,
        entry: Option<Entry>,
    ) -> Result<Result<usize, &'static str>, Box<Error>> {
        let Some(Entry {
            position: index,
            action: saved,
            ..
        }) = entry
        else {
            return Ok(Ok(G::START));
        };
        let position = resume_position(index, G::NAMES, self.steps)?;
        let Some(saved) = saved else {
            return Ok(Ok(position));
        };
        let name = G::NAMES[position];
        self.trail.set(position);
        let action = saved_action(G::declared(position), &saved, name, self.steps)?;
        Ok(G::route(position, action).ok_or(action))
    }
}

/// What generated flows and self-running nodes see of a run. Each method's work is in the room
/// of its kind: `step`, `fork`, `composite`; the walk is above.
impl<S: SharedState, W: Watch, J: Journal<S>> Runner<S> for Run<S, W, J> {
    type Branches<'b>
        = BranchEnv<'b, S, W, J>
    where
        Self: 'b;

    fn node<'a, N: Node<S>>(
        &'a mut self,
        node: &'a N,
        state: &'a mut S,
        name: &'static str,
    ) -> impl Future<Output = Stepped> + Send + 'a {
        J::step(self, node, state, name)
    }

    fn flow<'a, G: FlowGraph<S>>(
        &'a mut self,
        graph: &'a G,
        state: &'a mut S,
        name: &'static str,
        max_steps: u64,
    ) -> impl Future<Output = Stepped> + Send + 'a {
        self.walk(graph, state, name, max_steps)
    }

    fn fork_start(
        &mut self,
        name: &'static str,
        branches: &'static [&'static str],
    ) -> Result<u64, Error> {
        self.start_fork(name, branches)
    }

    fn branches(&self) -> BranchEnv<'_, S, W, J> {
        self.fork_branches()
    }

    fn fork_finish<'a>(
        &'a mut self,
        state: &'a mut S,
        joined: Branch<S>,
    ) -> impl Future<Output = Result<(), Error>> + Send + 'a {
        self.finish_fork(state, joined)
    }

    fn composite_start(&mut self, name: &'static str) -> Composite {
        self.start_composite(name)
    }

    fn composite_context(&mut self, composite: &Composite, phase: Phase) -> Context<'_> {
        self.node = composite.name;
        self.phase.set(phase);
        self.context(composite.name, composite.step, None)
    }

    fn run_in_place<'a, N: Node<S>>(
        &'a mut self,
        composite: &'a Composite,
        index: usize,
        params: Params,
        node: &'a N,
        state: &'a mut S,
    ) -> impl Future<Output = Stepped> + Send + 'a {
        self.in_place(composite, index, params, node, state)
    }

    fn runs_on_copies(&self, composite: &Composite) -> BranchEnv<'_, S, W, J> {
        self.copies_of(composite)
    }

    fn runs_applied(&mut self, state: &mut S, composite: &Composite, merged: Branch<S>) {
        self.node = composite.name;
        self.steps += merged.steps;
        self.apply(state, merged.update);
    }

    fn composite_finish<'a>(
        &'a mut self,
        state: &'a mut S,
        composite: Composite,
        command: Command<S>,
        declared: &'static [&'static str],
    ) -> impl Future<Output = Stepped> + Send + 'a {
        self.finish_composite(state, composite, command, declared)
    }
}

/// The position a resumed run goes to in a flow with `names`, checked.
fn resume_position(index: usize, names: &[&str], step: u64) -> Result<usize, Error> {
    if index < names.len() {
        Ok(index)
    } else {
        Err(Error::Resume {
            thread: String::new(),
            step,
            reason: format!(
                "the saved position {index} is not in this flow (it has {}): the thread was saved \
                 by another flow",
                names.len()
            ),
        })
    }
}

/// The saved action of a resumed step, as the node's own `&'static str`.
fn saved_action(
    declared: &'static [&'static str],
    saved: &str,
    node: &str,
    step: u64,
) -> Result<&'static str, Error> {
    declared
        .iter()
        .find(|action| **action == saved)
        .copied()
        .ok_or_else(|| Error::Resume {
            thread: String::new(),
            step,
            reason: format!(
                "the saved action \"{saved}\" is not one that `{node}` declares: the thread was \
                 saved by another flow"
            ),
        })
}

/// Runs `future`, turning a panic while it is polled into an error value. The future is held once,
/// in place (a guard written as an `async fn` would keep a second copy of it).
pub(crate) fn catch_panic<F: Future>(
    future: F,
) -> impl Future<Output = Result<F::Output, Box<dyn Any + Send>>> {
    futures_util::FutureExt::catch_unwind(AssertUnwindSafe(future))
}

pub(crate) fn panic_message(payload: Box<dyn Any + Send>) -> String {
    match payload.downcast::<String>() {
        Ok(message) => *message,
        Err(payload) => payload.downcast_ref::<&str>().map_or_else(
            || "a panic with a non-text payload".into(),
            |text| (*text).into(),
        ),
    }
}

/// A new single-threaded tokio runtime with IO and timers, for a blocking entry point: `call`,
/// whose async form is `instead`.
///
/// # Errors
/// [`Error::BlockingInRuntime`] when called inside a tokio runtime, which a blocking call would
/// stall (tokio refuses to start one inside another); [`Error::Runtime`] when the runtime cannot
/// start.
pub(crate) fn blocking_runtime(
    call: &'static str,
    instead: &'static str,
) -> Result<tokio::runtime::Runtime, Error> {
    if tokio::runtime::Handle::try_current().is_ok() {
        return Err(Error::BlockingInRuntime { call, instead });
    }
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(Error::Runtime)
}

/// Runs `future` to the end on a new single-threaded tokio runtime: see [`blocking_runtime`].
pub(crate) fn block_on<T>(
    call: &'static str,
    instead: &'static str,
    future: impl Future<Output = Result<T, Error>>,
) -> Result<T, Error> {
    blocking_runtime(call, instead)?.block_on(future)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_trail_names_the_flows_above_the_current_node() {
        let mut trail = Trail::new();
        assert!(trail.flows().is_empty());
        trail.depth = 1;
        trail.set(2);
        trail.rename("outer");
        trail.depth = 2;
        trail.set(0);
        trail.rename("inner");
        assert_eq!(trail.flows(), ["outer"]);
        assert_eq!(trail.names(), ["outer", "inner"]);
        assert_eq!(trail.positions(), [2, 0]);
    }

    #[test]
    fn a_blocking_call_inside_a_runtime_is_refused_with_what_to_do() {
        let runtime = blocking_runtime("Flow::run_blocking", "flow.run(&mut state).await")
            .expect("outside a runtime, one starts");
        let inside = runtime.block_on(async {
            block_on("Flow::run_blocking", "flow.run(&mut state).await", async {
                Ok(())
            })
        });
        let error = inside.unwrap_err();
        assert!(matches!(error, Error::BlockingInRuntime { .. }), "{error}");
        assert!(error.to_string().contains("flow.run(&mut state).await"));
    }
}
