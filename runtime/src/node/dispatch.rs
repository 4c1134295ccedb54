//! How flows and self-running nodes reach the run that runs them: [`Runner`], [`BranchRunner`]
//! and [`FlowGraph`]. Not public API: `flow!` generates implementations of [`FlowGraph`], and the
//! run module implements the runners; generated code reaches them through `slateflow::__private`
//! only. The interface lives here, beside [`Node`], so that the layers stay in one direction:
//! `node` knows no run, hook, store or flow.
use std::future::Future;
use std::marker::PhantomData;
use std::sync::atomic::{AtomicU8, Ordering};

use super::{Context, Node, Params};
use crate::error::{Error, Phase};
use crate::graph::Graph;
use crate::state::SharedState;
use crate::text::ActionSet;

/// The phase a node step is in, where whoever catches its panic can read it: the run's, or a
/// fork branch's (kept by the fork, which catches each branch's panics).
#[derive(Debug)]
pub struct PhaseCell(AtomicU8);

impl PhaseCell {
    /// The phases by their discriminants, in declaration order.
    const PHASES: [Phase; 5] = [
        Phase::Prep,
        Phase::Exec,
        Phase::Fallback,
        Phase::Post,
        Phase::Apply,
    ];

    /// A cell at [`Phase::Prep`].
    pub const fn new() -> Self {
        Self(AtomicU8::new(Phase::Prep as u8))
    }

    /// Records `phase`: one store, on a step's path.
    #[inline]
    pub(crate) fn set(&self, phase: Phase) {
        self.0.store(phase as u8, Ordering::Relaxed);
    }

    /// The phase recorded last.
    pub(crate) fn get(&self) -> Phase {
        let index = usize::from(self.0.load(Ordering::Relaxed));
        Self::PHASES.get(index).copied().unwrap_or(Phase::Prep)
    }
}

impl Default for PhaseCell {
    fn default() -> Self {
        Self::new()
    }
}

/// What a step hands back up through a run's layers (the node, the generated `match`, the
/// flow's loop): its action, or the run's error, boxed. Each layer writes and moves its
/// outcome, which is then two words where an [`Error`] inline would make it ten; errors are
/// rare, and a box is one allocation on the way out.
pub type Stepped = Result<&'static str, Box<Error>>;

/// What `flow!` generates: the static parts of a flow. The run owns the loop and asks only
/// "run the node at this position" and "where does this action lead".
///
/// Positions number the flow's nodes in the order it names them, then its forks.
///
/// ```
/// # use serde::{Deserialize, Serialize};
/// # use slateflow::{Command, SharedState, flow, node};
/// # #[derive(SharedState, Clone, Debug, Default, Serialize, Deserialize)]
/// # struct Counter { #[reducer(add)] count: u32, label: String }
/// # #[node]
/// # fn count(_: &Counter) -> Command<Counter> { Command::new(Counter::update().add_count(1)) }
/// use slateflow::Flow;
/// use slateflow::flow::FlowGraph;
///
/// /// Code that takes any flow over `Counter` names its graph type with `FlowGraph`.
/// fn runs_twice<G: FlowGraph<Counter>>(flow: &Flow<Counter, G>) -> Result<u32, slateflow::Error> {
///     let mut counter = Counter::default();
///     flow.run_blocking(&mut counter)?;
///     flow.run_blocking(&mut counter)?;
///     Ok(counter.count)
/// }
/// assert_eq!(runs_twice(&flow! { count; })?, 2);
/// # Ok::<(), slateflow::Error>(())
/// ```
pub trait FlowGraph<S: SharedState>: Send + Sync {
    /// The actions the flow can end with, computed at compile time.
    const TERMINAL: ActionSet;
    /// The actions the flow can end with: declared by its nodes, not wired.
    const ACTIONS: &'static [&'static str] = Self::TERMINAL.list.split_at(Self::TERMINAL.len).0;
    /// Compile-time checks of the wiring; evaluating it fails the build when one fails.
    const CHECKS: ();
    /// The name of each position (a node, or a fork as `[b, c]`).
    const NAMES: &'static [&'static str];
    /// The start position.
    const START: usize;

    /// Where `action` leads from `position`; `None` ends the flow.
    fn route(position: usize, action: &str) -> Option<usize>;

    /// The actions wired from `position`.
    fn wired(position: usize) -> &'static [&'static str];

    /// The actions the node at `position` declares (`"default"` for a fork).
    fn declared(position: usize) -> &'static [&'static str];

    /// Runs the node (or fork) at `position` as one step of `runner`'s run.
    fn step<'a, R: Runner<S>>(
        &'a self,
        position: usize,
        runner: &'a mut R,
        state: &'a mut S,
    ) -> impl Future<Output = Stepped> + Send + 'a;

    /// The graph, for export.
    fn describe(&self) -> Graph;
}

/// Names the state type of a flow while `flow!` builds it, so that a node over another state
/// is an error at that node.
pub struct StateType<S>(PhantomData<fn(&mut S)>);

impl<S> StateType<S> {
    /// The marker.
    pub const fn new() -> Self {
        Self(PhantomData)
    }
}

impl<S> Default for StateType<S> {
    fn default() -> Self {
        Self::new()
    }
}

/// The future of one branch of a fork, pinned where the generated code keeps it: a borrowed
/// trait object, so a fork joins branches of different node types without allocating.
pub type BranchFuture<'a, S> =
    std::pin::Pin<&'a mut (dyn Future<Output = Result<Branch<S>, Error>> + Send + 'a)>;

/// What a branch of a fork, a run on a copy of the state or a whole fork hands back: its
/// action, its update (not applied yet), the node steps it took, and the questions its
/// branches asked (by branch, in written order), which pause a durable run after the fork.
pub struct Branch<S: SharedState> {
    pub(crate) action: &'static str,
    pub(crate) update: S::Update,
    pub(crate) steps: u64,
    pub(crate) asked: Vec<(&'static str, serde_json::Value)>,
}

impl<S: SharedState> Branch<S> {
    pub(crate) fn new(action: &'static str, update: S::Update, steps: u64) -> Self {
        Self {
            action,
            update,
            steps,
            asked: Vec::new(),
        }
    }

    /// Adds the questions another outcome asked after this one's. None, usually: then
    /// nothing is called, not even the empty list's drop.
    #[inline]
    pub(crate) fn ask(&mut self, asked: Vec<(&'static str, serde_json::Value)>) {
        if !asked.is_empty() {
            self.asked.extend(asked);
        }
    }
}

/// A composite step under way (a batch flow's own step, with its runs of the sub-flow inside):
/// its node, its number, and when it started (when the run is watched).
#[derive(Debug, Clone, Copy)]
pub struct Composite {
    pub(crate) name: &'static str,
    pub(crate) step: u64,
    pub(crate) started: Option<std::time::Instant>,
}

impl Composite {
    /// The step's number.
    pub fn step(&self) -> u64 {
        self.step
    }
}

/// A run, as nodes and generated flows see it. Implemented by the run module only.
///
/// A node step ([`node`](Runner::node)), a nested flow's walk ([`flow`](Runner::flow)), a fork
/// ([`fork_start`](Runner::fork_start), [`branches`](Runner::branches),
/// [`fork_finish`](Runner::fork_finish)), and composite steps, which run other steps inside
/// them: a node kind that does (a batch flow) is written against the `composite_`, `run_` and
/// `runs_` methods alone, in one place.
pub trait Runner<S: SharedState>: Send {
    /// What runs the branches of a fork (or the runs of a composite step on copies of the
    /// state), borrowed from the run.
    type Branches<'b>: BranchRunner<S> + Send
    where
        Self: 'b;

    /// One node step on the state in place: prep, exec, post, the update applied.
    fn node<'a, N: Node<S>>(
        &'a mut self,
        node: &'a N,
        state: &'a mut S,
        name: &'static str,
    ) -> impl Future<Output = Stepped> + Send + 'a;

    /// A nested flow's walk (the node `name` of the flow around it), on the state in place,
    /// bounded by `max_steps` too.
    fn flow<'a, G: FlowGraph<S>>(
        &'a mut self,
        graph: &'a G,
        state: &'a mut S,
        name: &'static str,
        max_steps: u64,
    ) -> impl Future<Output = Stepped> + Send + 'a;

    /// A fork called `name` is about to run `branches`: checks they fit in the step limit and
    /// returns the steps before it (its first branch is the next step).
    ///
    /// # Errors
    /// [`Error::StepLimit`] naming the first branch that does not fit; [`Error::Paused`] when
    /// the run pauses before one of the branches.
    fn fork_start(
        &mut self,
        name: &'static str,
        branches: &'static [&'static str],
    ) -> Result<u64, Error>;

    /// What runs the branches of the fork just started.
    fn branches(&self) -> Self::Branches<'_>;

    /// Applies (and commits) the merged outcome of the fork just started.
    fn fork_finish<'a>(
        &'a mut self,
        state: &'a mut S,
        joined: Branch<S>,
    ) -> impl Future<Output = Result<(), Error>> + Send + 'a;

    /// Starts a composite step for the node `name`: its own step, which the runs inside it
    /// follow, all committed as one.
    fn composite_start(&mut self, name: &'static str) -> Composite;

    /// The context of the composite step's own work in `phase` (its `prep`, its `post`): what
    /// a panic is then attributed to.
    fn composite_context(&mut self, composite: &Composite, phase: Phase) -> Context<'_>;

    /// Run `index` of the composite step: `node` (a sub-flow) in place on the state, with
    /// `params` instead of the run's, its action one of `declared`. A run an earlier attempt of
    /// the step finished (a durable run resumed after a failure or a crash) is not run again:
    /// its kept update is applied instead.
    fn run_in_place<'a, N: Node<S>>(
        &'a mut self,
        composite: &'a Composite,
        index: usize,
        params: Params,
        node: &'a N,
        state: &'a mut S,
    ) -> impl Future<Output = Stepped> + Send + 'a;

    /// What runs the composite step's runs concurrently, each on its own copy of the state
    /// ([`BranchRunner::on_copy`], with the run's index).
    fn runs_on_copies(&self, composite: &Composite) -> Self::Branches<'_>;

    /// Applies the merged outcome of the composite step's runs on copies.
    fn runs_applied(&mut self, state: &mut S, composite: &Composite, merged: Branch<S>);

    /// Ends the composite step: applies its own update and commits it with the runs inside it.
    fn composite_finish<'a>(
        &'a mut self,
        state: &'a mut S,
        composite: Composite,
        command: crate::node::Command<S>,
        declared: &'static [&'static str],
    ) -> impl Future<Output = Stepped> + Send + 'a;
}

/// What runs the branches of a fork (and the items of a concurrent batch flow): on a shared
/// borrow of the state, handing updates back instead of applying them.
pub trait BranchRunner<S: SharedState>: Sync {
    /// A node as a branch, recording its phase in `phase`.
    fn node<'a, N: Node<S>>(
        &'a self,
        node: &'a N,
        state: &'a S,
        name: &'static str,
        step: u64,
        phase: &'a PhaseCell,
    ) -> impl Future<Output = Result<Branch<S>, Error>> + Send + 'a;

    /// A self-running node (a flow) on its own copy of the state, numbering its steps from
    /// `step`, with `params` instead of the run's when given; its update is the composition of
    /// what it applied. `index` is its part of a concurrent batch flow (a fork's branch is
    /// known by its step).
    fn on_copy<'a, N: Node<S>>(
        &'a self,
        node: &'a N,
        state: &'a S,
        params: Option<&'a Params>,
        name: &'static str,
        step: u64,
        index: Option<usize>,
    ) -> impl Future<Output = Result<Branch<S>, Error>> + Send + 'a
    where
        S: Clone;

    /// The outcome of part `index` (a fork's branch, a batch flow's run), kept by an earlier
    /// attempt of the step (a durable run resumed after a failure or a crash). Its action is
    /// looked up in `declared`; a fork, which does not route on its branches' actions, passes
    /// `None` and gets `"default"`.
    ///
    /// # Errors
    /// A kept outcome that does not read back, or whose action is not in `declared`.
    fn kept(
        &self,
        index: usize,
        declared: Option<&'static [&'static str]>,
    ) -> Result<Option<Branch<S>>, Error>;

    /// Whether parts' outcomes are kept as they finish (a durable step): when not,
    /// [`keep`](BranchRunner::keep) hands every outcome back as it is and
    /// [`kept`](BranchRunner::kept) has none, and neither need be called.
    fn keeps(&self) -> bool;

    /// Run `index` of a composite step finished, the `finished`th of `total`: for a progress bar
    /// ([`Event::BatchItemFinished`](crate::event::Event::BatchItemFinished)).
    fn progress(&self, index: usize, finished: usize, total: usize);

    /// Part `index` finished: keeps its outcome until the step is saved (durable runs only),
    /// and hands it back.
    fn keep<'a>(
        &'a self,
        index: usize,
        outcome: Branch<S>,
    ) -> impl Future<Output = Result<Branch<S>, Error>> + Send + 'a
    where
        S: 'a;

    /// The parts' outcomes failed to merge: voids every outcome kept for the step (durable runs
    /// only), so that a resume runs the parts again.
    fn discard(&self) -> impl Future<Output = Result<(), Error>> + Send + '_;
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_phase_cell_gives_back_each_phase_it_is_set_to() {
        let cell = PhaseCell::new();
        assert_eq!(cell.get(), Phase::Prep);
        for phase in [
            Phase::Exec,
            Phase::Fallback,
            Phase::Post,
            Phase::Apply,
            Phase::Prep,
        ] {
            cell.set(phase);
            assert_eq!(cell.get(), phase);
        }
    }
}
