//! The run's hook, in two sides: [`Watch`], where its events go, and [`Journal`], what records it
//! and steers it (commits, kept parts, resume cursors, pauses).
//!
//! A run is generic over both, so that a plain run (no observer, [`NoJournal`]) pays for neither:
//! every call is inlined into nothing. Events have one implementation here ([`Observe`]); the
//! journal has one that records, the durable run's, which lives in `durable/` and which this
//! module does not know. Store writes go through the journal only, never through the events.

use std::future::{Future, poll_fn};
use std::pin::pin;
use std::task::Poll;

use serde_json::Value;

use super::{Opened, Run, Trail};
use crate::error::Error;
use crate::event::{Event, EventSink, Observer};
use crate::node::dispatch::{Branch, Stepped};
use crate::node::{Context, ItemJournal, Node};
use crate::state::SharedState;

/// The observing side of a run: where its events go. Free when nobody watches.
pub(crate) trait Watch: Send + Sync {
    /// Whether anyone watches; when not, the run builds no event (and reads no clock).
    const OBSERVES: bool = false;

    /// One event.
    fn event(&self, event: &Event<'_>) {
        let _ = event;
    }

    /// `future`, a piece of the node step `context` is for, run inside what the observer keeps
    /// for that step at each poll ([`Observer::in_step`]). Unwatched, `future` itself: a plain
    /// step's future is not made larger.
    fn within<'w, F: Future + Send + 'w>(
        &'w self,
        context: &'w Context<'_>,
        future: F,
    ) -> impl Future<Output = F::Output> + Send + 'w {
        let _ = context;
        future
    }
}

/// What a node's [`Context`](crate::Context) sends its events to.
impl<W: Watch> EventSink for W {
    fn observed(&self) -> bool {
        W::OBSERVES
    }

    fn send(&self, event: &Event<'_>) {
        self.event(event);
    }
}

/// Nobody watches.
#[derive(Debug, Clone, Copy, Default)]
pub(crate) struct NoWatch;

impl Watch for NoWatch {}

/// Events to an [`Observer`].
#[derive(Debug, Clone, Copy)]
pub(crate) struct Observe<O>(pub(crate) O);

impl<O: Observer> Watch for Observe<O> {
    const OBSERVES: bool = true;

    fn event(&self, event: &Event<'_>) {
        self.0.on_event(event);
    }

    async fn within<'w, F: Future + Send + 'w>(
        &'w self,
        context: &'w Context<'_>,
        future: F,
    ) -> F::Output {
        let mut future = pin!(future);
        let at = context.at();
        poll_fn(|waker| {
            let mut polled = Poll::Pending;
            self.0
                .in_step(&at, &mut || polled = future.as_mut().poll(waker));
            polled
        })
        .await
    }
}

/// A run on a copy of the state (a nested flow in a fork's branch) sends its events to the run
/// it is part of.
impl<W: Watch> Watch for &W {
    const OBSERVES: bool = W::OBSERVES;

    fn event(&self, event: &Event<'_>) {
        (**self).event(event);
    }

    fn within<'w, F: Future + Send + 'w>(
        &'w self,
        context: &'w Context<'_>,
        future: F,
    ) -> impl Future<Output = F::Output> + Send + 'w {
        (**self).within(context, future)
    }
}

/// Where a run is when it asks its journal something: the flows around the node, the node (or
/// fork branch), the steps before it, and how many composite steps (batch flows) it is inside.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Here<'a> {
    pub(crate) flows: &'a [&'static str],
    pub(crate) name: &'static str,
    pub(crate) step: u64,
    pub(crate) composite: u32,
}

impl<'a> Here<'a> {
    /// At `name`, after `step` steps, in the flows of `trail`, inside `composite` composite steps.
    #[inline]
    pub(crate) fn of(trail: &'a Trail, composite: u32, name: &'static str, step: u64) -> Self {
        Self {
            flows: trail.flows(),
            name,
            step,
            composite,
        }
    }
}

/// What becomes of a node's step once its command is in, as the journal says.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum After {
    /// Apply the update and go on.
    Apply,
    /// Apply the update, then pause after the node (a part's own pause, kept with the part).
    Pause,
    /// Apply the update and commit the step (which may pause the run after it).
    Commit,
    /// The node asked a question where the run cannot pause.
    CannotAsk,
}

/// Part `index` of `container` (a fork, or a batch flow whose runs are its parts), nested in
/// `flows`, whose step follows step `before`, inside `composite` composite steps.
#[derive(Debug, Clone, Copy)]
pub(crate) struct PartOf<'a> {
    pub(crate) flows: &'a [&'static str],
    pub(crate) container: &'static str,
    pub(crate) before: u64,
    pub(crate) index: usize,
    pub(crate) composite: u32,
}

/// How a batch flow's run in place ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum RunEnd {
    /// With this action.
    Finished(&'static str),
    /// At pauses.
    Stopped,
    /// With an error.
    Failed,
}

/// What a part had done when it stopped at pauses in an earlier run of its step: the composition
/// of the updates it applied, and its node steps.
pub(crate) type Progress<S> = (<S as SharedState>::Update, u64);

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

/// A committed step, as the journal sees it.
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
    pub(crate) asked: Option<&'a Value>,
    /// For a fork, its branches.
    pub(crate) branches: &'static [&'static str],
    /// For a fork, the questions its branches asked, by branch.
    pub(crate) branch_asks: &'a [(&'static str, Value)],
}

/// The journal side of a run: what records its steps and steers it (where a resumed run goes
/// on, where it pauses, which parts of a step were kept). Every method has a default that
/// records nothing and never pauses, which is [`NoJournal`]'s, a plain run's.
///
/// Three groups:
/// - resume and pauses: [`enter_flow`](Journal::enter_flow), [`pause_before`](Journal::pause_before),
///   [`after`](Journal::after);
/// - commits: [`prepare`](Journal::prepare) (the update, before it is applied and consumed) and
///   [`commit`](Journal::commit) (the state after it);
/// - the parts of a step (a fork's branches, a batch flow's runs, a batch's items), kept as they
///   finish: [`keeps`](Journal::keeps), [`kept`](Journal::kept), [`keep`](Journal::keep),
///   [`discard`](Journal::discard) (when they do not merge), the
///   journal of a part on a copy of the state ([`part`](Journal::part),
///   [`keep_stopped`](Journal::keep_stopped)), a batch flow's run in place
///   ([`run_start`](Journal::run_start), [`run_finish`](Journal::run_finish)) and a batch's items
///   ([`items`](Journal::items)).
pub(crate) trait Journal<S: SharedState>: Send + Sync + Sized {
    /// Whether the run may pause (and so runs the journaled step, whose future a plain run never
    /// carries).
    const PAUSES: bool = false;

    /// The journal of a run on a copy of the state that is part of one of this run's steps.
    type Part<'p>: Journal<S>
    where
        Self: 'p;

    /// Where the run keeps the composite steps under way, to stand before them again when a
    /// pause stops one in the middle: a `Vec` for a journal that pauses, `()` for one that does
    /// not.
    type Open: OpenSteps<Opened<S>>;

    /// The durable thread, if any.
    fn thread(&self) -> Option<&str> {
        None
    }

    /// Runs `node` as step `name` of `run`: by default the plain step, whose future holds
    /// nothing for pauses or commits; a journal that pauses runs [`Run::journaled_step`]
    /// instead.
    fn step<'a, W: Watch, N: Node<S>>(
        run: &'a mut Run<S, W, Self>,
        node: &'a N,
        state: &'a mut S,
        name: &'static str,
    ) -> impl Future<Output = Stepped> + Send + 'a {
        run.plain_step(node, state, name)
    }

    /// A flow is entered at nesting `depth` (0 for the outermost) after `steps` steps, inside
    /// `composite` composite steps: for a resumed run, where to go on.
    fn enter_flow(&mut self, depth: usize, steps: u64, composite: u32) -> Option<Entry> {
        let _ = (depth, steps, composite);
        None
    }

    /// Whether to pause before the node (or fork branch) `here`.
    fn pause_before(&mut self, here: Here<'_>) -> bool {
        let _ = here;
        false
    }

    /// The node at `here` ran as step `here.step` with `action`, asking `asked` if it asked:
    /// what to do with its update.
    fn after(&mut self, here: Here<'_>, action: &'static str, asked: Option<&Value>) -> After {
        let _ = (here, action);
        if asked.is_some() {
            After::CannotAsk
        } else {
            After::Apply
        }
    }

    /// The fork at `here` joined its `branches`, the nodes among them that asked saying what
    /// (`asked`): what to do with its merged update.
    fn after_fork(
        &mut self,
        here: Here<'_>,
        branches: &'static [&'static str],
        asked: &[(&'static str, Value)],
    ) -> After {
        let _ = branches;
        if asked.is_empty() {
            self.after(here, crate::graph::DEFAULT_ACTION, None)
        } else {
            After::CannotAsk
        }
    }

    /// A step's update, before it is applied and consumed by a commit.
    ///
    /// # Errors
    /// An update that does not serialize.
    fn prepare(&mut self, step: u64, update: &S::Update) -> Result<(), Error> {
        let _ = (step, update);
        Ok(())
    }

    /// The step [`prepare`](Journal::prepare)d was applied to `state`: commit it. Whether the
    /// run pauses after it.
    fn commit<'a>(
        &'a mut self,
        state: &'a S,
        commit: Commit<'a>,
    ) -> impl Future<Output = Result<bool, Error>> + Send + 'a {
        let _ = (state, commit);
        async { Ok(false) }
    }

    /// Whether the step at `here` (a composite step, at its own level) is committed on its own.
    fn commits(&self, here: Here<'_>) -> bool {
        let _ = here;
        false
    }

    /// Whether the parts of the step at `here` (a fork's branches, or the runs of a batch flow,
    /// at the level of the step) are kept as they finish.
    fn keeps(&self, here: Here<'_>) -> bool {
        let _ = here;
        false
    }

    /// The outcome of `part`, finished and kept by an earlier run of its step: its update, its
    /// steps and its action.
    ///
    /// # Errors
    /// A kept outcome that does not read back.
    #[allow(clippy::type_complexity)]
    fn kept(&self, part: PartOf<'_>) -> Result<Option<(S::Update, u64, &str)>, Error> {
        let _ = part;
        Ok(None)
    }

    /// `part` finished: keep its outcome until its step is committed, and hand it back. Called
    /// from the parts, concurrently.
    fn keep<'a>(
        &'a self,
        part: PartOf<'a>,
        outcome: Branch<S>,
    ) -> impl Future<Output = Result<Branch<S>, Error>> + Send + 'a
    where
        S: 'a,
    {
        let _ = part;
        async { Ok(outcome) }
    }

    /// The parts of the step `part` belongs to failed to merge: void every outcome kept for
    /// them, so that a resume runs them again.
    fn discard<'a>(
        &'a self,
        part: PartOf<'a>,
    ) -> impl Future<Output = Result<(), Error>> + Send + 'a
    where
        S: 'a,
    {
        let _ = part;
        async { Ok(()) }
    }

    /// The journal of `part`'s run on its own copy of the state, whose own flow is entered at
    /// trail depth `depth`; and what the part had done when it stopped at pauses in an earlier
    /// run of its step, to go on from.
    ///
    /// # Errors
    /// A kept update that does not read back.
    fn part(
        &self,
        part: PartOf<'_>,
        depth: usize,
    ) -> Result<(Self::Part<'_>, Option<Progress<S>>), Error>;

    /// `part`'s run on a copy stopped at pauses (its journal, `journal`, knows where), having
    /// applied `update` in `steps` steps; `trail` is where the pause happened: keep where, so
    /// that it goes on from there.
    fn keep_stopped<'a>(
        &'a self,
        part: PartOf<'a>,
        journal: Self::Part<'a>,
        update: S::Update,
        steps: u64,
        trail: &'a Trail,
    ) -> impl Future<Output = Result<(), Error>> + Send + 'a
    where
        S: 'a,
    {
        let _ = (part, journal, update, steps, trail);
        async { Ok(()) }
    }

    /// `part`'s run on a copy failed (not at pauses); its journal, `journal`, says whether what
    /// was kept of it has to change (a merge inside it failed after it had stopped in an
    /// earlier attempt): then keep it again, changed, so that a resume does not fail the same way.
    fn part_failed<'a>(
        &'a self,
        part: PartOf<'a>,
        journal: Self::Part<'a>,
    ) -> impl Future<Output = Result<(), Error>> + Send + 'a
    where
        S: 'a,
    {
        let _ = (part, journal);
        async { Ok(()) }
    }

    /// `part`, a batch flow's run in place on the state, starts at trail depth `depth`: what it
    /// had done when it stopped at pauses in an earlier run of its step.
    ///
    /// # Errors
    /// A kept update that does not read back.
    fn run_start(&mut self, part: PartOf<'_>, depth: usize) -> Result<Option<Progress<S>>, Error> {
        let _ = (part, depth);
        Ok(None)
    }

    /// `part`, a batch flow's run in place, ended, having applied `update` in `steps` steps:
    /// finished (keep its outcome, and hand back its update), stopped at pauses (keep where,
    /// `trail` being where the pause happened), or failed (see
    /// [`part_failed`](Journal::part_failed)).
    fn run_finish<'a>(
        &'a mut self,
        part: PartOf<'a>,
        end: RunEnd,
        update: S::Update,
        steps: u64,
        trail: &'a Trail,
    ) -> impl Future<Output = Result<S::Update, Error>> + Send + 'a
    where
        S: 'a,
    {
        let _ = (part, end, steps, trail);
        async { Ok(update) }
    }

    /// Where the batch node at `here` keeps its items' outputs, when its step keeps them.
    fn items(&self, here: Here<'_>) -> Option<&dyn ItemJournal> {
        let _ = here;
        None
    }
}

/// The composite steps under way in a run (see [`Journal::Open`]), outermost first.
pub(crate) trait OpenSteps<T>: Default + Send {
    /// A step starts.
    fn push(&mut self, step: T);
    /// The innermost step ends.
    fn pop(&mut self) -> Option<T>;
    /// How many are under way.
    fn len(&self) -> usize;
    /// The steps opened since `mark` were under way are gone; the outermost of them, if any.
    fn outermost_since(&mut self, mark: usize) -> Option<T>;
}

/// A run that never pauses keeps nothing.
impl<T> OpenSteps<T> for () {
    fn push(&mut self, _: T) {}

    fn pop(&mut self) -> Option<T> {
        None
    }

    fn len(&self) -> usize {
        0
    }

    fn outermost_since(&mut self, _: usize) -> Option<T> {
        None
    }
}

impl<T: Send> OpenSteps<T> for Vec<T> {
    fn push(&mut self, step: T) {
        Vec::push(self, step);
    }

    fn pop(&mut self) -> Option<T> {
        Vec::pop(self)
    }

    fn len(&self) -> usize {
        Vec::len(self)
    }

    fn outermost_since(&mut self, mark: usize) -> Option<T> {
        if self.len() > mark {
            self.drain(mark..).next()
        } else {
            None
        }
    }
}

/// No journal: a plain run, or a run on a copy of the state whose outcome nobody keeps (it only
/// knows the thread of the run it is part of).
#[derive(Debug, Clone, Copy, Default)]
pub(crate) struct NoJournal<'t> {
    pub(crate) thread: Option<&'t str>,
}

impl<'t, S: SharedState> Journal<S> for NoJournal<'t> {
    type Part<'p>
        = NoJournal<'p>
    where
        't: 'p;

    type Open = ();

    fn thread(&self) -> Option<&str> {
        self.thread
    }

    fn part(&self, _: PartOf<'_>, _: usize) -> Result<(NoJournal<'_>, Option<Progress<S>>), Error> {
        Ok((
            NoJournal {
                thread: self.thread,
            },
            None,
        ))
    }
}
