//! Pauses inside the parts of a step: a node in a flow nested in a fork branch, or in a batch
//! flow's sub-flow, pauses its part, which keeps what it had done and where it stood, and goes on
//! from there when resumed.
//!
//! [`Stops`] is what a part keeps while it runs; [`Part`] is the journal of a part's run on its
//! own copy of the state (the recorder keeps a [`Stops`] for a batch flow's run in place on the
//! run's own state); [`Stopped`] is what is kept of a part that stopped.

use serde_json::Value;

use super::interrupts::{Interrupts, join_path, pass};
use super::resume::Entries;
use crate::error::Error;
use crate::node::Node;
use crate::node::dispatch::Stepped;
use crate::run::{After, Entry, Here, Journal, NoJournal, PartOf, Progress, Run, Trail, Watch};
use crate::state::SharedState;

/// A part of a step (a fork's branch, a batch flow's run) that stopped at pauses inside its own
/// flow, or that goes on from them: what it had done and where it stood.
pub(super) struct Stopped<S: SharedState> {
    /// The composition of the updates it applied.
    pub(super) update: S::Update,
    /// The node steps it ran.
    pub(super) steps: u64,
    /// Its position in each of its flows, its own outermost first.
    pub(super) positions: Vec<u32>,
    /// The step after which each of its flows was entered.
    pub(super) entered: Vec<u64>,
    /// After a pause after a node: that node's action, to route on; before a node: none (the
    /// node at the last position runs).
    pub(super) action: Option<String>,
    /// The pauses: where, when, and what a node asked.
    pub(super) pauses: Vec<PartPause>,
}

/// A pause inside a part.
#[derive(Debug, Clone, PartialEq)]
pub(super) struct PartPause {
    /// The node's path.
    pub(super) node: String,
    /// The steps before it (for a pause before the node), or its own step.
    pub(super) step: u64,
    /// Before the node; otherwise after it.
    pub(super) before: bool,
    /// What the node asked, for a question.
    pub(super) asked: Option<Value>,
}

/// Where a part of a step pauses and where it goes on from.
#[derive(Debug, Default)]
pub(super) struct Stops {
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
    pub(super) fn resuming<S: SharedState>(
        base: usize,
        stopped: Option<Stopped<S>>,
    ) -> (Self, Option<Progress<S>>) {
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
    pub(super) fn enter_flow(&mut self, depth: usize, steps: u64) -> Option<Entry> {
        self.entries.enter(depth.checked_sub(self.base)?, steps)
    }

    /// Whether the part pauses before the node `name` nested in `flows`, after `step` steps.
    pub(super) fn before(
        &mut self,
        interrupts: &Interrupts,
        flows: &[&'static str],
        name: &'static str,
        step: u64,
    ) -> bool {
        if pass(&mut self.passing, flows, name, step) {
            return false;
        }
        if interrupts.before(flows, name) {
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
    pub(super) fn after(
        &mut self,
        interrupts: &Interrupts,
        flows: &[&'static str],
        name: &'static str,
        step: u64,
        action: &'static str,
        asked: Option<&Value>,
    ) -> bool {
        if asked.is_none() && !interrupts.after(flows, name) {
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
    pub(super) fn stopped<S: SharedState>(
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
        let mut entered = self.entries.take_entered();
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

    /// The pause after the node at `here` asked for by an interrupt or a question, as the journal
    /// of a part says it.
    fn after_step(
        &mut self,
        interrupts: &Interrupts,
        here: Here<'_>,
        action: &'static str,
        asked: Option<&Value>,
    ) -> After {
        if self.after(interrupts, here.flows, here.name, here.step, action, asked) {
            After::Pause
        } else {
            After::Apply
        }
    }
}

/// What a step does with a node's update inside a part, at the part's own level: pauses where
/// its interrupts say or a node asks; deeper inside (a batch flow nested in the part), it cannot
/// pause yet.
pub(super) fn after_in_part(
    stops: &mut Stops,
    interrupts: &Interrupts,
    here: Here<'_>,
    action: &'static str,
    asked: Option<&Value>,
) -> After {
    if here.composite == 0 {
        stops.after_step(interrupts, here, action, asked)
    } else if asked.is_some() {
        After::CannotAsk
    } else {
        After::Apply
    }
}

/// The journal of a part's run on its own copy of the state, in a durable run: it pauses where
/// the run's interrupts say (or a node asks), and goes on from where a stopped part stood.
/// Nothing is committed: the run commits the part with its step.
pub(super) struct Part<'p> {
    pub(super) thread: &'p str,
    pub(super) interrupts: &'p Interrupts,
    pub(super) stops: Stops,
}

impl<S: SharedState> Journal<S> for Part<'_> {
    const PAUSES: bool = true;

    type Part<'q>
        = NoJournal<'q>
    where
        Self: 'q;

    fn thread(&self) -> Option<&str> {
        Some(self.thread)
    }

    fn step<'a, W: Watch, N: Node<S>>(
        run: &'a mut Run<S, W, Self>,
        node: &'a N,
        state: &'a mut S,
        name: &'static str,
    ) -> impl Future<Output = Stepped> + Send + 'a {
        run.journaled_step(node, state, name)
    }

    fn enter_flow(&mut self, depth: usize, steps: u64, _: u32) -> Option<Entry> {
        self.stops.enter_flow(depth, steps)
    }

    fn pause_before(&mut self, here: Here<'_>) -> bool {
        here.composite == 0
            && self
                .stops
                .before(self.interrupts, here.flows, here.name, here.step)
    }

    fn after(&mut self, here: Here<'_>, action: &'static str, asked: Option<&Value>) -> After {
        after_in_part(&mut self.stops, self.interrupts, here, action, asked)
    }

    /// A run on a copy inside a part (a fork or batch flow nested in it) cannot pause yet.
    fn part(&self, _: PartOf<'_>, _: usize) -> Result<(NoJournal<'_>, Option<Progress<S>>), Error> {
        Ok((
            NoJournal {
                thread: Some(self.thread),
            },
            None,
        ))
    }
}
