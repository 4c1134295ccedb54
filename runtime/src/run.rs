//! The run: the one loop that walks a flow, one node step, forks and composite steps, and the
//! [`Hook`] through which a run reports what happens.
//!
//! Generated code supplies only what is static ([`FlowGraph`]: run the node at a position, where
//! an action leads); [`Run`] owns everything else: the loop, step numbers and limits, params,
//! where it is (the trail of positions through nested flows), panic attribution, applying updates
//! and recording them for runs on copies of the state.
//!
//! Whatever watches or records a run does so through one seam, [`Hook`]: flow entered (and where
//! to enter it, for a resumed run), node about to run (a pause point), step committed with its
//! update and action (a pause point after it), and every [`Event`]. Events are one implementation
//! ([`Observe`]); durability is another, in [`durable`](crate::durable), which this module does
//! not know. A hook is a type parameter: statically dispatched, and free when absent ([`NoHook`]
//! turns every call into nothing). It also picks how a node step runs ([`Hook::step`]): plainly,
//! or with the pauses and commits of a durable run, whose future a plain run never carries.
//!
//! A part of a step that runs on its own copy of the state (a nested flow in a fork branch, a run
//! of a concurrent batch flow) gets a [`Part`] hook in a durable run: it pauses where its
//! parent's interrupts say, tells its parent where it stopped ([`Stopped`]), and goes on from
//! there when resumed. A sequential batch flow's run, in place on the run's own state, does the
//! same through the run's [`Item`]; both keep their [`Stops`].
//!
//! This module must not touch storage, serialization or any particular flow: it sees nodes through
//! [`Node`] and flows through [`FlowGraph`].

use std::any::Any;
use std::future::Future;
use std::panic::AssertUnwindSafe;
use std::sync::atomic::AtomicU32;
use std::time::Instant;

use crate::error::{Error, NodeError, Phase};
use crate::event::{At, Event, EventSink, KeepFuture, Observer};
use crate::node::dispatch::{
    Branch, BranchRunner, Composite, FlowGraph, PhaseCell, Runner, Stepped,
};
use crate::node::{
    Between, Command, Context, Limit, Node, Params, RetriedBody, TimedOut, with_retries,
};
use crate::state::{SharedState, StateUpdate};
use serde_json::Value;

/// How deeply flows may nest (a flow in a flow in a flow ...).
pub(crate) const MAX_DEPTH: usize = 16;

/// The part of a [`Hook`] that does not depend on the state: events, and the thread.
pub(crate) trait Watch: Send + Sync {
    /// Whether the hook wants events; when not, the run builds none (and reads no clock).
    const OBSERVES: bool = false;

    /// One event.
    fn event(&self, event: &Event<'_>) {
        let _ = event;
    }

    /// The durable thread, if any.
    fn thread(&self) -> Option<&str> {
        None
    }

    /// See [`EventSink::kept_item`].
    fn kept_item(&self, at: &At<'_>, index: usize) -> Option<Value> {
        let _ = (at, index);
        None
    }

    /// See [`EventSink::keep_item`].
    fn keep_item<'a>(&'a self, at: At<'a>, index: usize, output: Value) -> KeepFuture<'a> {
        let _ = (at, index, output);
        Box::pin(async { Ok(()) })
    }
}

/// Every hook is where events go (and batch items are kept), for the nodes' [`Context`] and
/// [`Emitter`].
impl<W: Watch> EventSink for W {
    fn observed(&self) -> bool {
        W::OBSERVES
    }

    fn send(&self, event: &Event<'_>) {
        self.event(event);
    }

    fn kept_item(&self, at: &At<'_>, index: usize) -> Option<Value> {
        Watch::kept_item(self, at, index)
    }

    fn keep_item<'a>(&'a self, at: At<'a>, index: usize, output: Value) -> KeepFuture<'a> {
        Watch::keep_item(self, at, index, output)
    }
}

/// The seam of a run: what it reports as it goes, and the decisions it leaves to whoever records
/// it (where to enter a flow on resume, whether to pause). Every method has a default that does
/// nothing, so a hook implements only what it needs.
pub(crate) trait Hook<S: SharedState>: Watch {
    /// Whether the hook wants steps committed (saved): when not, the run skips that work.
    const COMMITS: bool = false;

    /// Whether the run may pause at its nodes (before them, after them, at a question): a
    /// committing hook's run, or a [`Part`] of one.
    const PAUSES: bool = Self::COMMITS;

    /// A flow is entered at nesting `depth` (0 for the outermost) after `steps` steps. For a
    /// resumed run: where to go on (see [`Entry`]).
    fn enter_flow(&mut self, depth: usize, steps: u64) -> Option<Entry> {
        let _ = (depth, steps);
        None
    }

    /// The node `name`, nested in `flows`, is about to run after `step` steps (or a fork with it
    /// as a branch): whether to pause before it.
    fn pause_before(&mut self, flows: &[&'static str], name: &'static str, step: u64) -> bool {
        let _ = (flows, name, step);
        false
    }

    /// Whether the step just committed pauses the run (an interrupt after its node, or a
    /// question it asked).
    fn pause_after(&self) -> bool {
        false
    }

    /// For a hook that pauses without committing (a [`Part`]): the node `name` (nested in
    /// `flows`) ran as step `step` with `action`, asking `asked` if it asked; whether to pause
    /// after it.
    fn pause_after_part(
        &mut self,
        flows: &[&'static str],
        name: &'static str,
        step: u64,
        action: &'static str,
        asked: Option<&Value>,
    ) -> bool {
        let _ = (flows, name, step, action, asked);
        false
    }

    /// Whether the run pauses before (or after) the node `name` nested in `flows`, by the
    /// interrupts alone: what a [`Part`] asks its parent.
    fn interrupts(&self, before: bool, flows: &[&'static str], name: &'static str) -> bool {
        let _ = (before, flows, name);
        false
    }

    /// Where part `index` of `container` (nested in `flows`) stopped at a pause in an earlier
    /// run of the step after step `before`, to go on from there.
    ///
    /// # Errors
    /// A kept update that does not read back.
    fn stopped_part(
        &self,
        flows: &[&'static str],
        container: &'static str,
        before: u64,
        index: usize,
    ) -> Result<Option<Stopped<S>>, Error> {
        let _ = (flows, container, before, index);
        Ok(None)
    }

    /// Part `index` of `container` stopped at pauses: keep where, until the step is saved.
    /// Called from the parts, concurrently: `&self`.
    fn keep_stopped<'a>(
        &'a self,
        flows: &'a [&'static str],
        container: &'static str,
        before: u64,
        index: usize,
        stopped: Stopped<S>,
    ) -> impl Future<Output = Result<(), Error>> + Send + 'a
    where
        S: 'a,
    {
        let _ = (flows, container, before, index, stopped);
        async { Ok(()) }
    }

    /// A step's update, before it is applied and consumed.
    ///
    /// # Errors
    /// When the hook cannot keep it (an update that does not serialize).
    fn before_apply(&mut self, step: u64, update: &S::Update) -> Result<(), Error> {
        let _ = (step, update);
        Ok(())
    }

    /// The outcome of part `index` of `container` (a fork or a batch flow, nested in `flows`),
    /// kept by an earlier attempt of the step after step `before`: its update, steps and action.
    ///
    /// # Errors
    /// A kept outcome that does not read back.
    #[allow(clippy::type_complexity)]
    fn kept(
        &self,
        flows: &[&'static str],
        container: &'static str,
        before: u64,
        index: usize,
    ) -> Result<Option<(S::Update, u64, &str)>, Error> {
        let _ = (flows, container, before, index);
        Ok(None)
    }

    /// Part `index` of `container` finished: keep its outcome until the step after `before` is
    /// committed, and hand it back. Called from the parts, concurrently: `&self`.
    fn keep<'a>(
        &'a self,
        flows: &'a [&'static str],
        container: &'static str,
        before: u64,
        index: usize,
        outcome: Branch<S>,
    ) -> impl Future<Output = Result<Branch<S>, Error>> + Send + 'a
    where
        S: 'a,
    {
        let _ = (flows, container, before, index);
        async { Ok(outcome) }
    }

    /// A step was applied to `state`: commit it.
    fn committed<'a>(
        &'a mut self,
        state: &'a S,
        commit: Commit<'a>,
    ) -> impl Future<Output = Result<(), Error>> + Send + 'a {
        let _ = (state, commit);
        async { Ok(()) }
    }

    /// Runs `node` as step `name` of `run`. By default a plain step ([`Run::plain_step`]), whose
    /// future holds nothing for pauses or commits; a hook that pauses or commits runs
    /// [`Run::hooked_step`] instead (`plain_step` refuses to compile for it).
    fn step<'a, N: Node<S>>(
        run: &'a mut Run<S, Self>,
        node: &'a N,
        state: &'a mut S,
        name: &'static str,
    ) -> impl Future<Output = Stepped> + Send + 'a
    where
        Self: Sized,
    {
        run.plain_step(node, state, name)
    }
}

/// Where a resumed run goes on in a flow it enters.
#[derive(Debug)]
pub(crate) struct Entry {
    /// The position to start at.
    pub(crate) position: usize,
    /// At the innermost level, the saved action of the step at `position`: the run routes on it
    /// instead of running the step again.
    pub(crate) action: Option<String>,
    /// The step after which the flow was first entered, when it was saved: the flow's own step
    /// limit counts from there.
    pub(crate) entered: Option<u64>,
}

/// Where a resumed run goes on, level by level (the positions of a saved step, the steps after
/// which its flows were entered, and the action to route on at the innermost level, if any); and
/// the step after which each flow around the current node was entered, to save with a step.
/// Levels count from where the resuming starts: the outermost flow, or a part's own flow.
#[derive(Debug, Default)]
pub(crate) struct Entries {
    cursor: Option<(Vec<u32>, Vec<u64>, Option<String>)>,
    /// How many levels of the cursor were entered.
    level: usize,
    entered: Vec<u64>,
}

impl Entries {
    /// Going on from `positions`, with the flows entered after `entered` steps and `action` to
    /// route on at the innermost level (none: the node there runs).
    pub(crate) fn resuming(positions: Vec<u32>, entered: Vec<u64>, action: Option<String>) -> Self {
        Self {
            cursor: Some((positions, entered, action)),
            ..Self::default()
        }
    }

    /// A flow is entered at level `level` after `steps` steps: where to go on, on resume.
    pub(crate) fn enter(&mut self, level: usize, steps: u64) -> Option<Entry> {
        let entry = self
            .cursor
            .as_mut()
            .and_then(|(positions, entered, action)| {
                let position = *positions.get(self.level)? as usize;
                self.level += 1;
                let innermost = self.level == positions.len();
                Some((
                    Entry {
                        position,
                        action: if innermost { action.take() } else { None },
                        entered: entered.get(level).copied(),
                    },
                    innermost,
                ))
            });
        let entry = entry.map(|(entry, innermost)| {
            if innermost {
                self.cursor = None;
            }
            entry
        });
        self.entered.truncate(level);
        self.entered.push(
            entry
                .as_ref()
                .and_then(|entry| entry.entered)
                .unwrap_or(steps),
        );
        entry
    }

    /// The step after which each flow around the current node was entered, outermost first.
    pub(crate) fn entered(&self) -> &[u64] {
        &self.entered
    }
}

/// A part of a step (a fork's branch, a batch flow's run) that stopped at pauses
/// inside its own flow, or that goes on from them: what it had done and where it stood.
pub(crate) struct Stopped<S: SharedState> {
    /// The composition of the updates it applied.
    pub(crate) update: S::Update,
    /// The node steps it ran.
    pub(crate) steps: u64,
    /// Its position in each of its flows, its own outermost first.
    pub(crate) positions: Vec<u32>,
    /// The step after which each of its flows was entered.
    pub(crate) entered: Vec<u64>,
    /// After a pause after a node: that node's action, to route on; before a node: none (the
    /// node at the last position runs).
    pub(crate) action: Option<String>,
    /// The pauses: where, when, and what a node asked.
    pub(crate) pauses: Vec<PartPause>,
}

/// A pause inside a part.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct PartPause {
    /// The node's path.
    pub(crate) node: String,
    /// The steps before it (for a pause before the node), or its own step.
    pub(crate) step: u64,
    /// Before the node; otherwise after it.
    pub(crate) before: bool,
    /// What the node asked, for a question.
    pub(crate) asked: Option<Value>,
}

/// Where a part of a step pauses and where it goes on from: what a [`Part`] hook keeps, and what
/// a run keeps for a sequential batch flow's run in place.
#[derive(Debug, Default)]
pub(crate) struct Stops {
    /// The trail's depth where the part's own flow is entered.
    base: usize,
    /// Where a stopped part goes on, from the part's own flow down, and where its flows were
    /// entered.
    entries: Entries,
    /// The pauses before nodes that the resumed part goes past: path and step.
    passing: Vec<(String, u64)>,
    pauses: Vec<PartPause>,
    /// The action of the node after which it paused.
    action: Option<&'static str>,
}

impl Stops {
    /// A part whose own flow is entered at trail depth `base`, going on from where it `stopped`
    /// (if it did): and what it had done then, its update and steps.
    fn resuming<S: SharedState>(
        base: usize,
        stopped: Option<Stopped<S>>,
    ) -> (Self, Option<(S::Update, u64)>) {
        let mut stops = Self {
            base,
            ..Self::default()
        };
        let Some(stopped) = stopped else {
            return (stops, None);
        };
        stops.passing = stopped
            .pauses
            .into_iter()
            .filter(|pause| pause.before)
            .map(|pause| (pause.node, pause.step))
            .collect();
        stops.entries = Entries::resuming(stopped.positions, stopped.entered, stopped.action);
        (stops, Some((stopped.update, stopped.steps)))
    }

    /// A flow of the part is entered at trail depth `depth` after `steps` steps.
    fn enter_flow(&mut self, depth: usize, steps: u64) -> Option<Entry> {
        self.entries.enter(depth.checked_sub(self.base)?, steps)
    }

    /// Whether the part pauses before the node `name` nested in `flows`, after `step` steps.
    fn before<S: SharedState, H: Hook<S>>(
        &mut self,
        parent: &H,
        flows: &[&'static str],
        name: &'static str,
        step: u64,
    ) -> bool {
        if pass(&mut self.passing, flows, name, step) {
            return false;
        }
        if parent.interrupts(true, flows, name) {
            self.pauses.push(PartPause {
                node: join_path(flows, name),
                step,
                before: true,
                asked: None,
            });
            return true;
        }
        false
    }

    /// Whether the part pauses after the node `name` ran as step `step` with `action`.
    fn after<S: SharedState, H: Hook<S>>(
        &mut self,
        parent: &H,
        flows: &[&'static str],
        name: &'static str,
        step: u64,
        action: &'static str,
        asked: Option<&Value>,
    ) -> bool {
        if asked.is_none() && !parent.interrupts(false, flows, name) {
            return false;
        }
        self.pauses.push(PartPause {
            node: join_path(flows, name),
            step,
            before: false,
            asked: asked.cloned(),
        });
        self.action = Some(action);
        true
    }

    /// Where the part stopped: its update and steps so far, and the trail at the pause.
    fn stopped<S: SharedState>(
        &mut self,
        update: S::Update,
        steps: u64,
        trail: &Trail,
    ) -> Stopped<S> {
        let positions = trail
            .positions()
            .get(self.base..)
            .unwrap_or_default()
            .to_vec();
        let mut entered = std::mem::take(&mut self.entries.entered);
        entered.truncate(positions.len());
        Stopped {
            update,
            steps,
            positions,
            entered,
            action: self.action.map(str::to_string),
            pauses: std::mem::take(&mut self.pauses),
        }
    }
}

/// The hook of a part's run on its own copy of the state, in a durable run: events go to the
/// parent; it pauses where the parent's interrupts say (or a node asks), and goes on from where a
/// stopped part stood. Nothing is committed: the parent commits the part with its step.
struct Part<'h, H> {
    parent: &'h H,
    stops: Stops,
}

/// Whether `path` (`a/b/c`) names the node `name` nested in `flows`.
pub(crate) fn path_is(path: &str, flows: &[&str], name: &str) -> bool {
    let mut segments = path.split('/');
    flows
        .iter()
        .chain(std::iter::once(&name))
        .all(|level| segments.next() == Some(level))
        && segments.next().is_none()
}

/// Whether a resumed run goes past the pause before the node `name` (nested in `flows`) after
/// `step` steps, as one of `passing` (paths and steps) says; each is passed once.
pub(crate) fn pass(
    passing: &mut Vec<(String, u64)>,
    flows: &[&str],
    name: &str,
    step: u64,
) -> bool {
    let found = passing
        .iter()
        .position(|(node, at)| *at == step && path_is(node, flows, name));
    if let Some(index) = found {
        passing.swap_remove(index);
    }
    found.is_some()
}

/// `flows/name`.
pub(crate) fn join_path(flows: &[&str], name: &str) -> String {
    let mut path = flows.join("/");
    if !path.is_empty() {
        path.push('/');
    }
    path.push_str(name);
    path
}

impl<H: Watch> Watch for Part<'_, H> {
    const OBSERVES: bool = H::OBSERVES;

    fn event(&self, event: &Event<'_>) {
        self.parent.event(event);
    }

    fn thread(&self) -> Option<&str> {
        self.parent.thread()
    }
}

impl<S: SharedState, H: Hook<S>> Hook<S> for Part<'_, H> {
    const PAUSES: bool = true;

    fn step<'a, N: Node<S>>(
        run: &'a mut Run<S, Self>,
        node: &'a N,
        state: &'a mut S,
        name: &'static str,
    ) -> impl Future<Output = Stepped> + Send + 'a {
        run.hooked_step(node, state, name)
    }

    fn enter_flow(&mut self, depth: usize, steps: u64) -> Option<Entry> {
        self.stops.enter_flow(depth, steps)
    }

    fn pause_before(&mut self, flows: &[&'static str], name: &'static str, step: u64) -> bool {
        self.stops.before::<S, H>(self.parent, flows, name, step)
    }

    fn pause_after_part(
        &mut self,
        flows: &[&'static str],
        name: &'static str,
        step: u64,
        action: &'static str,
        asked: Option<&Value>,
    ) -> bool {
        self.stops
            .after::<S, H>(self.parent, flows, name, step, action, asked)
    }
}

/// A committed step, as a hook sees it.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Commit<'a> {
    pub(crate) step: u64,
    pub(crate) trail: &'a Trail,
    pub(crate) action: &'static str,
    pub(crate) notes: Notes<'a>,
}

/// What a committed step says besides its update and action.
#[derive(Debug, Clone, Copy, Default)]
pub(crate) struct Notes<'a> {
    /// Why its node chose the action.
    pub(crate) reason: Option<&'a str>,
    /// The question its node asked.
    pub(crate) asked: Option<&'a serde_json::Value>,
    /// For a fork, its branches.
    pub(crate) branches: &'static [&'static str],
    /// For a fork, the questions its branches asked, by branch.
    pub(crate) branch_asks: &'a [(&'static str, Value)],
}

/// Why a run that cannot pause fails when a node asks for input.
const CANNOT_PAUSE: &str = "only a durable run (`flow.durable(store)`) pauses, and not in a fork \
                            or batch flow nested in a fork branch or a batch flow, yet";

/// No hook: a plain run.
#[derive(Debug, Clone, Copy, Default)]
pub(crate) struct NoHook;

impl Watch for NoHook {}
impl<S: SharedState> Hook<S> for NoHook {}

/// Events to an [`Observer`].
#[derive(Debug, Clone, Copy)]
pub(crate) struct Observe<O>(pub(crate) O);

impl<O: Observer> Watch for Observe<O> {
    const OBSERVES: bool = true;

    fn event(&self, event: &Event<'_>) {
        self.0.on_event(event);
    }
}

impl<S: SharedState, O: Observer> Hook<S> for Observe<O> {}

/// The hook of a run on a copy of the state (a nested flow in a branch): its events go to the
/// parent's hook; nothing is committed or paused on its own, since the parent commits the branch.
struct Forward<'h, W>(&'h W);

impl<W: Watch> Watch for Forward<'_, W> {
    const OBSERVES: bool = W::OBSERVES;

    fn event(&self, event: &Event<'_>) {
        self.0.event(event);
    }

    fn thread(&self) -> Option<&str> {
        self.0.thread()
    }
}

impl<S: SharedState, W: Watch> Hook<S> for Forward<'_, W> {}

/// Where a run is: the position and name at each level of nested flows, outermost first.
/// Fixed-size, so that walking nested flows allocates nothing.
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

    #[inline]
    fn set(&mut self, position: usize, name: &'static str) {
        if let Some(level) = self.depth.checked_sub(1) {
            self.names[level] = name;
            self.positions[level] = u32::try_from(position).unwrap_or(u32::MAX);
        }
    }

    #[inline]
    fn rename(&mut self, name: &'static str) {
        if let Some(level) = self.depth.checked_sub(1) {
            self.names[level] = name;
        }
    }
}

/// The fork a run is in the middle of.
#[derive(Debug, Clone, Copy)]
struct ForkAt {
    name: &'static str,
    branches: &'static [&'static str],
    before: u64,
    started: Option<Instant>,
}

/// A sequential batch flow's run in place, in a durable run: the batch's record before it, the
/// steps before it, and where it pauses (or goes on from). Boxed in [`Run`], whose future every
/// run carries.
struct Item<S: SharedState> {
    batch: S::Update,
    steps_before: u64,
    stops: Stops,
}

/// Prep, exec (retried, timed out, with its fallback) and post of one node over a shared borrow
/// of the state, in `context` (built by the caller, where the step's future keeps it once), with
/// its events; the phase it is in is recorded in `phase`. The command's action is checked against
/// the node's. Its errors return from the function it is written in.
///
/// A macro, not an `async fn`: written into a step's (or a fork branch's) own `async fn`, it adds
/// no future of its own, so its arguments are not copied into a second future and its command not
/// moved out of one (about 20 instructions a step, 100 a branch). Its arguments are the names of
/// the caller's `&N` node, `&S` state, `&H` hook, `&Context` and `&PhaseCell`, then the node's and
/// the hook's types.
macro_rules! node_command {
    ($node:ident, $state:ident, $hook:ident, $context:expr, $phase:ident, $N:ident, $H:ident) => {{
        $phase.set(Phase::Prep);
        // `at` is read from the context where it is needed, not kept in the future beside it.
        let at = || $context.at();
        let started = $H::OBSERVES.then(Instant::now);
        if $H::OBSERVES {
            $hook.event(&Event::NodeStarted {
                at: at(),
                attempt: 1,
            });
        }
        let failed = |phase, attempts, source| Error::NodeFailed {
            node: at().node,
            step: at().step,
            phase,
            attempts,
            source,
        };
        let prep = $node
            .prep(&*$state, $context)
            .await
            .map_err(|source| failed(Phase::Prep, 1, source))?;
        $phase.set(Phase::Exec);
        let emitter = $context.emitter();
        let (exec, attempts) = if $node.retry().is_single_attempt() {
            // The common case, without the retry loop's timers.
            match $node.exec_with(&prep, &emitter).await {
                Ok(exec) => (exec, 1),
                Err(error) => (fallback($node, &prep, error, $phase, at(), 1).await?, 1),
            }
        } else {
            let between = |between: Between<'_>| {
                if $H::OBSERVES
                    && let Some(event) = between.event(at(), true)
                {
                    $hook.event(&event);
                }
            };
            let attempts =
                with_retries($node.retry(), || $node.exec_with(&prep, &emitter), between);
            match attempts.await {
                Ok(done) => done,
                Err((error, attempts)) => (
                    fallback($node, &prep, error, $phase, at(), attempts).await?,
                    attempts,
                ),
            }
        };
        $phase.set(Phase::Post);
        let command = $node
            .post(&*$state, prep, exec, $context)
            .await
            .map_err(|source| match source.downcast::<RetriedBody>() {
                // A `#[node]` function's body, run under its retry policy.
                Ok(retried) => match retried.source.downcast::<TimedOut>() {
                    Ok(timed_out) => Error::Timeout {
                        node: at().node,
                        step: at().step,
                        attempts: retried.attempts,
                        after: timed_out.0,
                    },
                    Err(source) => failed(Phase::Post, retried.attempts, source),
                },
                Err(source) => failed(Phase::Post, 1, source),
            })?;
        if !is_declared($N::ACTIONS, command.action) {
            // `into`: the caller's error is an `Error` or a boxed one.
            return Err(Error::UndeclaredAction {
                node: at().node,
                step: at().step,
                action: command.action,
                declared: $N::ACTIONS,
            }
            .into());
        }
        if $H::OBSERVES {
            $hook.event(&Event::NodeFinished {
                at: at(),
                action: command.action,
                reason: command.reason.as_deref(),
                attempts: attempts.max($context.body_attempts()),
                duration: started.map(|started| started.elapsed()).unwrap_or_default(),
            });
        }
        command
    }};
}

/// One run: what it carries from step to step, and its hook.
pub(crate) struct Run<S: SharedState, H> {
    hook: H,
    params: Params,
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
    /// How many composite steps (batch flows) the run is inside; their inner steps are not
    /// committed one by one.
    composite: u32,
    /// In a sequential batch flow's run whose outcome is kept: the batch's record before the run,
    /// and the steps before it.
    item: Option<Box<Item<S>>>,
    fork: Option<ForkAt>,
    /// For a run on a copy made for a branch of a fork: that fork, for the events.
    branch_of: Option<&'static str>,
    /// Where the outermost flow's step limit counts from, when not from where it is entered (a
    /// resumed thread counts from its start).
    limit_origin: Option<u64>,
}

impl<S: SharedState, H: Hook<S>> Run<S, H> {
    /// A run after `steps` steps (0 for a new one).
    pub(crate) fn new(hook: H, params: Params, steps: u64) -> Self {
        Self {
            hook,
            params,
            steps,
            limit: Limit::NONE,
            trail: Trail::new(),
            node: "",
            phase: PhaseCell::new(),
            record: None,
            composite: 0,
            item: None,
            fork: None,
            branch_of: None,
            limit_origin: None,
        }
    }

    /// Counts the outermost flow's step limit from step `origin` (a thread's start) rather than
    /// from where this run enters it.
    pub(crate) fn count_limit_from(&mut self, origin: u64) {
        self.limit_origin = Some(origin);
    }

    /// Node steps started so far.
    pub(crate) fn steps(&self) -> u64 {
        self.steps
    }

    /// The hook, when the run is over.
    pub(crate) fn into_hook(self) -> H {
        self.hook
    }

    /// Sends an event, when the hook observes.
    #[inline]
    pub(crate) fn emit(&self, event: &Event<'_>) {
        if H::OBSERVES {
            self.hook.event(event);
        }
    }

    /// Runs `node` as the whole run (a flow, or a node alone), catching panics once around it,
    /// with the run's started and ended events.
    pub(crate) async fn run<N: Node<S>>(
        &mut self,
        node: &N,
        state: &mut S,
        name: &'static str,
    ) -> Result<&'static str, Error> {
        self.emit(&Event::RunStarted {
            thread: self.hook.thread(),
            first_step: self.steps + 1,
            max_steps: self.limit.max_steps,
        });
        let outcome = catch_panic(node.__run(self, state, name)).await;
        let result = match outcome {
            Ok(stepped) => stepped.map_err(|error| *error),
            Err(payload) => Err(self.panic_error(payload)),
        };
        if H::OBSERVES {
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

    /// The context of node `name`'s step `step`, built once where the step's future keeps it,
    /// beside the hook and the phase the step moves through. `attempts` counts a retried
    /// `#[node]` body's attempts; `keeps` says whether a kept batch keeps its items.
    fn step_context<'a>(
        &'a self,
        name: &'static str,
        step: u64,
        attempts: &'a AtomicU32,
        keeps: bool,
    ) -> (Context<'a>, &'a H, &'a PhaseCell) {
        let context = self
            .scope()
            .context(name, step, self.branch_of, Some(attempts), keeps);
        (context, &self.hook, &self.phase)
    }

    /// What the contexts of this run's steps are made of.
    fn scope(&self) -> Scope<'_, H> {
        Scope {
            params: &self.params,
            hook: &self.hook,
            limit: self.limit,
            trail: &self.trail,
        }
    }

    /// Whether the runs of the batch flow whose step this is are kept as they finish: in a
    /// durable run, for a batch flow that is a step of its own (not nested in another's run).
    fn keeps_runs(&self) -> bool {
        H::COMMITS && self.composite == 1
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

    /// Applies a step's update and, outside composite steps, commits it through the hook.
    async fn commit(
        &mut self,
        state: &mut S,
        update: S::Update,
        action: &'static str,
        notes: Notes<'_>,
    ) -> Result<(), Error> {
        let commits = H::COMMITS && self.composite == 0;
        if commits {
            self.hook.before_apply(self.steps, &update)?;
        }
        self.apply(state, update);
        if commits {
            self.hand_to_hook(state, action, notes).await?;
        }
        Ok(())
    }

    /// Tells the hook the step just applied is committed, as of the run's step count and trail.
    async fn hand_to_hook(
        &mut self,
        state: &S,
        action: &'static str,
        notes: Notes<'_>,
    ) -> Result<(), Error> {
        let commit = Commit {
            step: self.steps,
            trail: &self.trail,
            action,
            notes,
        };
        self.hook.committed(state, commit).await
    }

    /// Runs `node` as step `name` for a hook that neither pauses nor commits: the node's steps,
    /// then its update applied. Its future holds the context and the node's own futures, and
    /// nothing that needs dropping for a node whose `Prep` needs none.
    pub(crate) async fn plain_step<N: Node<S>>(
        &mut self,
        node: &N,
        state: &mut S,
        name: &'static str,
    ) -> Stepped {
        const {
            assert!(
                !H::PAUSES && !H::COMMITS,
                "a hook that pauses or commits runs `hooked_step`"
            );
        }
        self.steps += 1;
        self.node = name;
        let step = self.steps;
        let body_attempts = AtomicU32::new(0);
        let (context, hook, phase) = self.step_context(name, step, &body_attempts, false);
        let Command {
            update,
            action,
            asked,
            ..
        } = node_command!(node, state, hook, &context, phase, N, H);
        if drop_question(asked) {
            return Err(Box::new(Error::InputRequested {
                node: name,
                step,
                where_: CANNOT_PAUSE,
            }));
        }
        self.apply(state, update);
        Ok(action)
    }

    /// Runs `node` as step `name`, with the pauses and the commit of a hook that pauses or
    /// commits.
    pub(crate) async fn hooked_step<N: Node<S>>(
        &mut self,
        node: &N,
        state: &mut S,
        name: &'static str,
    ) -> Stepped {
        let pauses = H::PAUSES && self.composite == 0;
        if pauses && self.hook.pause_before(self.trail.flows(), name, self.steps) {
            return Err(Box::new(Error::Paused {
                node: name,
                step: self.steps,
                before: true,
            }));
        }
        // In a sequential batch flow's run that a durable run keeps: it pauses on its own.
        let in_item = H::COMMITS && self.composite == 1 && self.item.is_some();
        if in_item
            && let Some(item) = self.item.as_mut()
            && item
                .stops
                .before::<S, H>(&self.hook, self.trail.flows(), name, self.steps)
        {
            return Err(Box::new(Error::Paused {
                node: name,
                step: self.steps,
                before: true,
            }));
        }
        self.steps += 1;
        self.node = name;
        let step = self.steps;
        let body_attempts = AtomicU32::new(0);
        let (context, hook, phase) =
            self.step_context(name, step, &body_attempts, pauses && H::COMMITS);
        let Command {
            update,
            action,
            reason,
            asked,
        } = node_command!(node, state, hook, &context, phase, N, H);
        if in_item && let Some(item) = self.item.as_mut() {
            let pause_here = item.stops.after::<S, H>(
                &self.hook,
                self.trail.flows(),
                name,
                step,
                action,
                asked.as_ref(),
            );
            self.apply(state, update);
            if pause_here {
                return Err(Box::new(Error::Paused {
                    node: name,
                    step,
                    before: false,
                }));
            }
        } else if pauses && !H::COMMITS {
            // A part of a step: nothing to commit, but it may pause after the node.
            let pause_here =
                self.hook
                    .pause_after_part(self.trail.flows(), name, step, action, asked.as_ref());
            self.apply(state, update);
            if pause_here {
                return Err(Box::new(Error::Paused {
                    node: name,
                    step,
                    before: false,
                }));
            }
        } else if pauses {
            let notes = Notes {
                reason: reason.as_deref(),
                asked: asked.as_ref(),
                ..Notes::default()
            };
            self.commit(state, update, action, notes).await?;
            if self.hook.pause_after() {
                return Err(Box::new(Error::Paused {
                    node: name,
                    step,
                    before: false,
                }));
            }
        } else if asked.is_some() {
            return Err(Box::new(Error::InputRequested {
                node: name,
                step,
                where_: CANNOT_PAUSE,
            }));
        } else {
            // Nothing to commit: no future to make.
            self.apply(state, update);
        }
        drop_question(asked);
        Ok(action)
    }
}

impl<S: SharedState, H: Hook<S>> Runner<S> for Run<S, H> {
    type Branches<'b>
        = BranchEnv<'b, H>
    where
        Self: 'b;

    fn node<'a, N: Node<S>>(
        &'a mut self,
        node: &'a N,
        state: &'a mut S,
        name: &'static str,
    ) -> impl Future<Output = Stepped> + Send + 'a {
        H::step(self, node, state, name)
    }

    async fn flow<G: FlowGraph<S>>(&mut self, graph: &G, state: &mut S, max_steps: u64) -> Stepped {
        if self.trail.depth == MAX_DEPTH {
            return Err(Box::new(Error::NestingTooDeep {
                node: self.node,
                limit: MAX_DEPTH,
            }));
        }
        let mut entry = if H::PAUSES {
            self.hook.enter_flow(self.trail.depth, self.steps)
        } else {
            None
        };
        if H::COMMITS
            && self.composite == 1
            && let Some(item) = self.item.as_mut()
        {
            // A sequential batch flow's run goes on from where it stopped.
            entry = item
                .stops
                .enter_flow(self.trail.depth, self.steps)
                .or(entry);
        }
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
        let mut position = G::START;
        if let Some(Entry {
            position: index,
            action: saved,
            ..
        }) = entry
        {
            // A resumed run enters at its saved position; at the innermost flow, the step there
            // already ran: route on its saved action instead of running it again.
            position = resume_position(index, G::NAMES, self.steps)?;
            if let Some(saved) = saved {
                let name = G::NAMES[position];
                self.trail.set(position, name);
                let action = saved_action(G::declared(position), &saved, name, self.steps)?;
                let Some(next) = G::route(position, action) else {
                    self.trail.depth -= 1;
                    self.limit = outer;
                    return Ok(action);
                };
                position = next;
            }
        }
        let action = loop {
            let name = G::NAMES[position];
            self.trail.set(position, name);
            if self.steps >= self.limit.last_step {
                return Err(Box::new(Error::StepLimit {
                    limit: self.limit.max_steps,
                    node: name,
                    step: self.steps + 1,
                }));
            }
            let action = graph.step(position, self, state).await?;
            if let Some(next) = G::route(position, action) {
                position = next;
            } else {
                let wired = G::wired(position);
                if H::OBSERVES && !wired.is_empty() {
                    self.emit(&Event::NoEdge {
                        at: self.at(name, self.steps),
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

    fn fork_start(
        &mut self,
        name: &'static str,
        branches: &'static [&'static str],
    ) -> Result<u64, Error> {
        let left = self.limit.last_step.saturating_sub(self.steps);
        if let Some(node) = usize::try_from(left)
            .ok()
            .and_then(|left| branches.get(left))
        {
            return Err(Error::StepLimit {
                limit: self.limit.max_steps,
                node,
                step: self.steps + left + 1,
            });
        }
        if H::COMMITS && self.composite == 0 {
            // Every branch is asked, so that a pause lists all of them.
            let mut pause = false;
            for branch in branches {
                pause |= self
                    .hook
                    .pause_before(self.trail.flows(), branch, self.steps);
            }
            if pause {
                return Err(Error::Paused {
                    node: name,
                    step: self.steps,
                    before: true,
                });
            }
        }
        let before = self.steps;
        self.fork = Some(ForkAt {
            name,
            branches,
            before,
            started: H::OBSERVES.then(Instant::now),
        });
        // A panic while the branches' updates merge is reported against the fork's first step.
        self.node = name;
        self.phase.set(Phase::Apply);
        self.steps += 1;
        self.emit(&Event::ForkStarted {
            at: self.at(name, before + 1),
            branches,
        });
        Ok(before)
    }

    fn branches(&self) -> BranchEnv<'_, H> {
        // A fork's branches are kept when the fork is a step of its own (not inside a batch
        // flow, whose runs are kept instead).
        let keeping = self
            .fork
            .filter(|_| H::COMMITS && self.composite == 0)
            .map(|fork| (fork.name, fork.before));
        BranchEnv {
            scope: self.scope(),
            fork: self.fork.map_or("", |fork| fork.name),
            keeping,
        }
    }

    fn batch_branches(&self, name: &'static str, step: u64) -> BranchEnv<'_, H> {
        BranchEnv {
            scope: self.scope(),
            fork: "",
            keeping: self.keeps_runs().then_some((name, step - 1)),
        }
    }

    fn kept(
        &self,
        name: &'static str,
        step: u64,
        index: usize,
        declared: &'static [&'static str],
    ) -> Result<Option<Branch<S>>, Error> {
        if !self.keeps_runs() {
            return Ok(None);
        }
        let kept = self.hook.kept(self.trail.flows(), name, step - 1, index)?;
        resolve_kept(kept, Some(declared), name, step - 1, index)
    }

    fn item_start(
        &mut self,
        state: &mut S,
        name: &'static str,
        step: u64,
        index: usize,
    ) -> Result<(), Error> {
        if !self.keeps_runs() {
            return Ok(());
        }
        let batch = self
            .record
            .replace(S::Update::default())
            .unwrap_or_default();
        let steps_before = self.steps;
        let stopped = self
            .hook
            .stopped_part(self.trail.flows(), name, step - 1, index)?;
        let (stops, done) = Stops::resuming(self.trail.depth, stopped);
        if let Some((update, steps)) = done {
            // It stopped at pauses in an earlier run of the step: what it had done is applied
            // (and recorded), and it goes on from where it stood.
            self.steps += steps;
            self.apply(state, update);
        }
        self.item = Some(Box::new(Item {
            batch,
            steps_before,
            stops,
        }));
        Ok(())
    }

    async fn item_finish(
        &mut self,
        name: &'static str,
        step: u64,
        index: usize,
        outcome: Stepped,
    ) -> Stepped {
        let Some(mut item) = self.item.take() else {
            return outcome;
        };
        // The batch flow's level: the run's own flows are below it.
        let flows = &self.trail.names()[..item.stops.base.saturating_sub(1)];
        let update = self.record.take().unwrap_or_default();
        let steps = self.steps - item.steps_before;
        match outcome {
            Ok(action) => {
                let outcome = Branch::new(action, update, steps);
                let outcome = self
                    .hook
                    .keep(flows, name, step - 1, index, outcome)
                    .await?;
                self.record = Some(item.batch.then(outcome.update));
                Ok(action)
            }
            Err(error) if matches!(*error, Error::Paused { .. }) => {
                let stopped = item.stops.stopped(update, steps, &self.trail);
                self.hook
                    .keep_stopped(flows, name, step - 1, index, stopped)
                    .await?;
                Err(error)
            }
            Err(error) => Err(error),
        }
    }

    async fn fork_finish(&mut self, state: &mut S, joined: Branch<S>) -> Result<(), Error> {
        let fork = self.fork.take().unwrap_or(ForkAt {
            name: "",
            branches: &[],
            before: self.steps,
            started: None,
        });
        self.steps = fork.before + joined.steps;
        if H::OBSERVES {
            self.emit(&Event::ForkJoined {
                at: self.at(fork.name, fork.before + 1),
                steps: joined.steps,
                duration: fork
                    .started
                    .map(|started| started.elapsed())
                    .unwrap_or_default(),
            });
        }
        let Branch { update, asked, .. } = joined;
        let notes = Notes {
            branches: fork.branches,
            branch_asks: &asked,
            ..Notes::default()
        };
        self.commit(state, update, crate::graph::DEFAULT_ACTION, notes)
            .await?;
        if H::COMMITS && self.composite == 0 && self.hook.pause_after() {
            return Err(Error::Paused {
                node: fork.name,
                step: self.steps,
                before: false,
            });
        }
        Ok(())
    }

    fn composite_start(&mut self, name: &'static str) -> Composite {
        if H::COMMITS && self.composite == 0 {
            self.record = Some(S::Update::default());
        }
        self.composite += 1;
        self.steps += 1;
        self.node = name;
        self.phase.set(Phase::Prep);
        self.emit(&Event::NodeStarted {
            at: self.at(name, self.steps),
            attempt: 1,
        });
        Composite {
            step: self.steps,
            started: H::OBSERVES.then(Instant::now),
        }
    }

    fn context(&self, name: &'static str, step: u64) -> Context<'_> {
        self.scope()
            .context(name, step, self.branch_of, None, false)
    }

    fn params(&self) -> &Params {
        &self.params
    }

    fn replace_params(&mut self, params: Params) -> Params {
        std::mem::replace(&mut self.params, params)
    }

    fn resume_composite(&mut self, name: &'static str, phase: Phase) {
        self.node = name;
        self.phase.set(phase);
    }

    fn apply_from_copies(&mut self, state: &mut S, update: S::Update, steps: u64) {
        self.steps += steps;
        self.apply(state, update);
    }

    async fn composite_finish(
        &mut self,
        state: &mut S,
        name: &'static str,
        composite: Composite,
        command: Command<S>,
        declared: &'static [&'static str],
    ) -> Stepped {
        let step = composite.step;
        if !is_declared(declared, command.action) {
            return Err(Box::new(Error::UndeclaredAction {
                node: name,
                step,
                action: command.action,
                declared,
            }));
        }
        self.node = name;
        self.apply(state, command.update);
        self.composite -= 1;
        self.emit(&Event::NodeFinished {
            at: self.at(name, step),
            action: command.action,
            reason: command.reason.as_deref(),
            attempts: 1,
            duration: composite
                .started
                .map(|started| started.elapsed())
                .unwrap_or_default(),
        });
        if H::COMMITS && self.composite == 0 {
            let record = self.record.take().unwrap_or_default();
            self.hook.before_apply(self.steps, &record)?;
            let notes = Notes {
                reason: command.reason.as_deref(),
                asked: command.asked.as_ref(),
                ..Notes::default()
            };
            self.hand_to_hook(state, command.action, notes).await?;
            if self.hook.pause_after() {
                return Err(Box::new(Error::Paused {
                    node: name,
                    step,
                    before: false,
                }));
            }
        } else if command.asked.is_some() {
            return Err(Box::new(Error::InputRequested {
                node: name,
                step,
                where_: CANNOT_PAUSE,
            }));
        }
        Ok(command.action)
    }
}

/// What a node step's context is made of, borrowed from the run or from a fork's view of it: the
/// one place a run builds a [`Context`].
struct Scope<'a, H> {
    params: &'a Params,
    hook: &'a H,
    limit: Limit,
    trail: &'a Trail,
}

impl<H> Clone for Scope<'_, H> {
    fn clone(&self) -> Self {
        *self
    }
}

impl<H> Copy for Scope<'_, H> {}

impl<'a, H: Watch> Scope<'a, H> {
    /// The context of node `node`'s step `step` (a branch of `fork`, if any). `attempts` counts
    /// a retried `#[node]` body's attempts; `keeps` says whether a kept batch keeps its items.
    fn context(
        self,
        node: &'static str,
        step: u64,
        fork: Option<&'static str>,
        attempts: Option<&'a AtomicU32>,
        keeps: bool,
    ) -> Context<'a> {
        let at = At {
            flows: self.trail.flows(),
            node,
            step,
            fork,
        };
        let thread = self.hook.thread();
        Context::in_run(
            self.params,
            at,
            self.limit,
            thread,
            self.hook,
            attempts,
            keeps,
        )
    }
}

/// What runs the branches of a fork: shared borrows of the run's params, hook and trail.
pub(crate) struct BranchEnv<'a, H> {
    scope: Scope<'a, H>,
    fork: &'static str,
    /// When the parts are kept: the fork or batch flow, and the steps before its step.
    keeping: Option<(&'static str, u64)>,
}

impl<S: SharedState, H: Hook<S>> BranchRunner<S> for BranchEnv<'_, H> {
    /// The node's steps are written into this future, with no panic guard of its own: the
    /// fork's join catches each branch's panics, naming it with the phase kept in `phase`.
    async fn node<N: Node<S>>(
        &self,
        node: &N,
        state: &S,
        name: &'static str,
        step: u64,
        phase: &PhaseCell,
    ) -> Result<Branch<S>, Error> {
        let body_attempts = AtomicU32::new(0);
        let context = self
            .scope
            .context(name, step, Some(self.fork), Some(&body_attempts), false);
        let hook = self.scope.hook;
        let Command {
            action,
            update,
            asked,
            ..
        } = node_command!(node, state, hook, &context, phase, N, H);
        let Some(asked) = asked else {
            return Ok(Branch::new(action, update, 1));
        };
        // A durable fork of its own pauses after it is saved, with this question.
        if H::COMMITS && self.keeping.is_some() && !self.fork.is_empty() {
            let mut branch = Branch::new(action, update, 1);
            branch.asked.push((name, asked));
            Ok(branch)
        } else {
            Err(Error::InputRequested {
                node: name,
                step,
                where_: CANNOT_PAUSE,
            })
        }
    }

    async fn on_copy<N: Node<S>>(
        &self,
        node: &N,
        state: &S,
        params: Option<&Params>,
        name: &'static str,
        step: u64,
        index: Option<usize>,
    ) -> Result<Branch<S>, Error>
    where
        S: Clone,
    {
        let start = step - 1;
        let params = params.unwrap_or(self.scope.params).clone();
        if H::COMMITS
            && let Some((container, before)) = self.keeping
        {
            // A part of a durable step: it may pause inside its own flow. A fork's branches are
            // numbered in written order after the step before the fork.
            let index = index.unwrap_or_else(|| usize::try_from(start - before).unwrap_or(0));
            let part = PartOf {
                container,
                before,
                index,
            };
            // Boxed: only durable runs take this path, and its future (a whole run on a copy)
            // would otherwise grow every plain run's fork by its size.
            return Box::pin(self.on_copy_as_part(node, state, params, name, start, part)).await;
        }
        let mut copy = state.clone();
        let mut run = Run::new(Forward(self.scope.hook), params, start);
        run.record = Some(S::Update::default());
        run.trail = *self.scope.trail;
        run.trail.rename(name);
        run.branch_of = (!self.fork.is_empty()).then_some(self.fork);
        let outcome = catch_panic(node.__run(&mut run, &mut copy, name)).await;
        match outcome {
            Ok(Ok(action)) => Ok(Branch::new(
                action,
                run.record.take().unwrap_or_default(),
                run.steps - start,
            )),
            Ok(Err(error)) => Err(*error),
            Err(payload) => Err(run.panic_error(payload)),
        }
    }

    fn kept(
        &self,
        index: usize,
        declared: Option<&'static [&'static str]>,
    ) -> Result<Option<Branch<S>>, Error> {
        let Some((container, before)) = self.keeping else {
            return Ok(None);
        };
        let kept = self
            .scope
            .hook
            .kept(self.scope.trail.flows(), container, before, index)?;
        resolve_kept(kept, declared, container, before, index)
    }

    fn keeps(&self) -> bool {
        self.keeping.is_some()
    }

    async fn keep<'a>(&'a self, index: usize, outcome: Branch<S>) -> Result<Branch<S>, Error>
    where
        S: 'a,
    {
        if !outcome.asked.is_empty() {
            // Not kept: a resume before the fork is saved asks again (the question was never
            // reported).
            return Ok(outcome);
        }
        match self.keeping {
            Some((container, before)) => {
                self.scope
                    .hook
                    .keep(self.scope.trail.flows(), container, before, index, outcome)
                    .await
            }
            None => Ok(outcome),
        }
    }
}

/// Which part of which step a run on a copy is: part `index` of `container`, whose step follows
/// step `before`.
#[derive(Debug, Clone, Copy)]
struct PartOf {
    container: &'static str,
    before: u64,
    index: usize,
}

impl<H> BranchEnv<'_, H> {
    /// A part of a durable step on its own copy of the state, after `start` steps: it goes on
    /// from where it stopped at pauses in an earlier run of the step, and when it stops at pauses
    /// again, keeps where before returning [`Error::Paused`].
    async fn on_copy_as_part<S, N>(
        &self,
        node: &N,
        state: &S,
        params: Params,
        name: &'static str,
        start: u64,
        part: PartOf,
    ) -> Result<Branch<S>, Error>
    where
        S: SharedState + Clone,
        N: Node<S>,
        H: Hook<S>,
    {
        let flows = self.scope.trail.flows();
        let mut copy = state.clone();
        let stopped =
            self.scope
                .hook
                .stopped_part(flows, part.container, part.before, part.index)?;
        let (stops, progress) = Stops::resuming(self.scope.trail.depth, stopped);
        let mut record = S::Update::default();
        let mut steps_so_far = start;
        if let Some((update, done)) = progress {
            copy.apply(update.clone());
            record = update;
            steps_so_far += done;
        }
        let hook = Part {
            parent: self.scope.hook,
            stops,
        };
        let mut run = Run::new(hook, params, steps_so_far);
        run.record = Some(record);
        run.trail = *self.scope.trail;
        run.trail.rename(name);
        run.branch_of = (!self.fork.is_empty()).then_some(self.fork);
        let outcome = catch_panic(node.__run(&mut run, &mut copy, name)).await;
        match outcome {
            Ok(Ok(action)) => Ok(Branch::new(
                action,
                run.record.take().unwrap_or_default(),
                run.steps - start,
            )),
            Ok(Err(error)) if matches!(*error, Error::Paused { .. }) => {
                // The trail still holds where the pause happened, from the part's own flow down.
                let update = run.record.take().unwrap_or_default();
                let stopped = run
                    .hook
                    .stops
                    .stopped(update, run.steps - start, &run.trail);
                self.scope
                    .hook
                    .keep_stopped(flows, part.container, part.before, part.index, stopped)
                    .await?;
                Err(*error)
            }
            Ok(Err(error)) => Err(*error),
            Err(payload) => Err(run.panic_error(payload)),
        }
    }
}

/// A kept outcome as a [`Branch`], its action looked up in `declared` (`"default"` when there is
/// no list: a fork's branch, whose action does not route).
fn resolve_kept<S: SharedState>(
    kept: Option<(S::Update, u64, &str)>,
    declared: Option<&'static [&'static str]>,
    container: &'static str,
    before: u64,
    index: usize,
) -> Result<Option<Branch<S>>, Error> {
    let Some((update, steps, action)) = kept else {
        return Ok(None);
    };
    let action = match declared {
        None => crate::graph::DEFAULT_ACTION,
        Some(declared) => declared
            .iter()
            .copied()
            .find(|declared| *declared == action)
            .ok_or_else(|| Error::Resume {
                thread: String::new(),
                step: before,
                reason: format!(
                    "the kept outcome of part {index} of `{container}` has the action \
                     \"{action}\", which is not one of {declared:?}"
                ),
            })?,
    };
    Ok(Some(Branch::new(action, update, steps)))
}

/// Drops a step's question, if any, out of line, and says whether there was one: on the common
/// path (no question) nothing is called, where the drop glue of `Option<Value>` would be a call
/// every step.
#[inline]
fn drop_question(asked: Option<serde_json::Value>) -> bool {
    #[cold]
    #[inline(never)]
    fn drop_asked(_: serde_json::Value) {}
    if let Some(asked) = asked {
        drop_asked(asked);
        true
    } else {
        false
    }
}

/// Whether `action` is one of `declared`. Usually the very same `&'static str`, so the addresses
/// are compared first.
#[inline]
pub(crate) fn is_declared(declared: &[&str], action: &str) -> bool {
    declared
        .iter()
        .any(|candidate| std::ptr::eq(*candidate, action) || *candidate == action)
}

/// Runs `exec_fallback` after the last failed attempt; its error fails the step.
async fn fallback<S: SharedState, N: Node<S>>(
    node: &N,
    prep: &N::Prep,
    error: NodeError,
    phase: &PhaseCell,
    at: At<'_>,
    attempts: u32,
) -> Result<N::Exec, Error> {
    phase.set(Phase::Fallback);
    node.exec_fallback(prep, error)
        .await
        .map_err(|source| match source.downcast::<TimedOut>() {
            Ok(timed_out) => Error::Timeout {
                node: at.node,
                step: at.step,
                attempts,
                after: timed_out.0,
            },
            Err(source) => Error::NodeFailed {
                node: at.node,
                step: at.step,
                phase: Phase::Exec,
                attempts,
                source,
            },
        })
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

/// Runs `future` to the end on a new single-threaded tokio runtime, for synchronous callers.
pub(crate) fn block_on<T>(future: impl Future<Output = Result<T, Error>>) -> Result<T, Error> {
    tokio::runtime::Builder::new_current_thread()
        .enable_time()
        .build()
        .map_err(Error::Runtime)?
        .block_on(future)
}

/// `Summarise` for `my_crate::nodes::Summarise`.
pub(crate) fn short_type_name<T>() -> &'static str {
    let full = std::any::type_name::<T>();
    let generic_start = full.find('<').unwrap_or(full.len());
    let start = full[..generic_start].rfind("::").map_or(0, |at| at + 2);
    &full[start..]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn short_type_names_drop_the_path() {
        struct Summarise;
        assert_eq!(short_type_name::<Summarise>(), "Summarise");
        assert_eq!(short_type_name::<Vec<u8>>(), "Vec<u8>");
    }

    #[test]
    fn a_trail_names_the_flows_above_the_current_node() {
        let mut trail = Trail::new();
        assert!(trail.flows().is_empty());
        trail.depth = 1;
        trail.set(2, "outer");
        trail.depth = 2;
        trail.set(0, "inner");
        assert_eq!(trail.flows(), ["outer"]);
        assert_eq!(trail.names(), ["outer", "inner"]);
        assert_eq!(trail.positions(), [2, 0]);
    }
}
