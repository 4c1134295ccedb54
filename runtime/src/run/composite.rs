//! Composite steps: a node's own step that runs other steps inside it (a batch flow runs its
//! sub-flow once per item), applied and committed as one step.
//!
//! A composite node kind is written once, in its own file, against [`Runner`]'s composite
//! methods; this room implements them: the step's number and events, the runs in place (with
//! their own params, kept as they finish when the journal keeps the step's parts, going on from
//! where one stopped at pauses), the runs on copies, and the end (the step's own update, the
//! commit).
//!
//! [`Runner`]: crate::node::dispatch::Runner

use std::time::Instant;

use super::fork::resolve_kept;
use super::step::{CANNOT_PAUSE, is_declared};
use super::{BranchEnv, Journal, Notes, OpenSteps, PartOf, Run, RunEnd, Trail, Watch};
use crate::error::{Error, Phase};
use crate::event::Event;
use crate::node::dispatch::{Composite, Stepped};
use crate::node::{Command, Node, Params};
use crate::state::{SharedState, StateUpdate};

impl<S: SharedState, W: Watch, J: Journal<S>> Run<S, W, J> {
    /// Starts a composite step for the node `name`.
    pub(super) fn start_composite(&mut self, name: &'static str) -> Composite {
        if J::PAUSES {
            // A pause may stop it in the middle: the run is to stand before it again, and its
            // updates are recorded apart until it ends.
            let record = self.record.as_mut().map(std::mem::take);
            self.opened.push(super::Opened {
                steps: self.steps,
                trail: self.trail,
                composite: self.host.composite,
                record,
            });
        }
        if self.record.is_none() && self.host.journal.commits(self.here(name, self.steps)) {
            // Committed as one: every update applied inside it is composed.
            self.record = Some(S::Update::default());
        }
        self.host.composite += 1;
        self.steps += 1;
        self.node = name;
        self.phase.set(Phase::Prep);
        self.emit(&Event::NodeStarted {
            at: self.at(name, self.steps),
            attempt: 1,
        });
        Composite {
            name,
            step: self.steps,
            started: W::OBSERVES.then(Instant::now),
        }
    }

    /// Where the journal is asked about the composite step's parts: at the step's own level.
    fn composite_here(&self, composite: &Composite) -> super::Here<'_> {
        super::Here {
            flows: self.trail.flows(),
            name: composite.name,
            step: composite.step - 1,
            composite: self.host.composite - 1,
        }
    }

    /// Run `index` of the composite step, `node` in place with `params`.
    pub(super) async fn in_place<N: Node<S>>(
        &mut self,
        composite: &Composite,
        index: usize,
        params: Params,
        node: &N,
        state: &mut S,
    ) -> Stepped {
        if !self.host.journal.keeps(self.composite_here(composite)) {
            let outer = std::mem::replace(&mut self.host.params, params);
            let outcome = node.__run(self, state, composite.name).await;
            self.host.params = outer;
            return outcome;
        }
        // Boxed: only durable runs keep the runs of a batch flow, and a plain run's composite
        // step should not carry this future.
        Box::pin(self.in_place_kept(composite, index, params, node, state)).await
    }

    /// A run in place whose outcome the journal keeps: one an earlier run of the step finished
    /// is applied from what was kept; one that stopped at pauses goes on from where it stood.
    async fn in_place_kept<N: Node<S>>(
        &mut self,
        composite: &Composite,
        index: usize,
        params: Params,
        node: &N,
        state: &mut S,
    ) -> Stepped {
        // Where the composite step is: the trail goes deeper while the run goes, and stays where
        // a pause happened.
        let at: Trail = self.trail;
        let part = PartOf {
            flows: at.flows(),
            container: composite.name,
            before: composite.step - 1,
            index,
            composite: self.host.composite - 1,
        };
        let kept = self.host.journal.kept(part)?;
        let kept = resolve_kept::<S>(kept, Some(N::ACTIONS), part.container, part.before, index)?;
        if let Some(kept) = kept {
            self.node = composite.name;
            self.steps += kept.steps;
            self.apply(state, kept.update);
            return Ok(kept.action);
        }
        let outer = std::mem::replace(&mut self.host.params, params);
        let before = self
            .record
            .replace(S::Update::default())
            .unwrap_or_default();
        let steps_before = self.steps;
        let mark = self.opened.len();
        if let Some((update, steps)) = self.host.journal.run_start(part, at.depth())? {
            // It stopped at pauses in an earlier run of the step: what it had done is applied
            // (and recorded), and it goes on from where it stood.
            self.steps += steps;
            self.apply(state, update);
        }
        let outcome = node.__run(self, state, composite.name).await;
        self.host.params = outer;
        let end = match &outcome {
            Ok(action) => RunEnd::Finished(action),
            Err(error) if matches!(**error, Error::Paused { .. }) => {
                // Steps inside it that stopped in the middle did not happen.
                self.unwind(mark);
                RunEnd::Stopped
            }
            Err(_) => RunEnd::Failed,
        };
        let update = self.record.take().unwrap_or_default();
        let steps = self.steps - steps_before;
        let trail = self.trail;
        let kept = self
            .host
            .journal
            .run_finish(part, end, update, steps, &trail)
            .await?;
        // A run that stopped leaves the step in the middle: the run around it unwinds it.
        self.record = Some(if outcome.is_ok() {
            before.then(kept)
        } else {
            before
        });
        outcome
    }

    /// What runs the composite step's runs on copies of the state, kept as they finish when the
    /// journal keeps the step's parts.
    pub(super) fn copies_of(&self, composite: &Composite) -> BranchEnv<'_, S, W, J> {
        BranchEnv {
            host: &self.host,
            limit: self.limit,
            trail: &self.trail,
            fork: "",
            container: (composite.name, composite.step),
            keeping: self
                .host
                .journal
                .keeps(self.composite_here(composite))
                .then_some((composite.name, composite.step - 1)),
            composite: self.host.composite - 1,
        }
    }

    /// Ends a composite step: applies its own update, then commits the whole step when the
    /// journal commits it on its own.
    pub(super) async fn finish_composite(
        &mut self,
        state: &mut S,
        composite: Composite,
        command: Command<S>,
        declared: &'static [&'static str],
    ) -> Stepped {
        let Composite {
            name,
            step,
            started,
        } = composite;
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
        self.host.composite -= 1;
        if J::PAUSES
            && let Some(opened) = self.opened.pop()
            && let Some(outer) = opened.record
        {
            let own = self.record.take().unwrap_or_default();
            self.record = Some(outer.then(own));
        }
        self.emit(&Event::NodeFinished {
            at: self.at(name, step),
            action: command.action,
            reason: command.reason.as_deref(),
            attempts: 1,
            duration: started.map(|started| started.elapsed()).unwrap_or_default(),
        });
        if self.host.journal.commits(self.here(name, step - 1)) {
            let record = self.record.take().unwrap_or_default();
            self.host.journal.prepare(self.steps, &record)?;
            self.trail.rename(name);
            let notes = Notes {
                reason: command.reason.as_deref(),
                asked: command.asked.as_ref(),
                ..Notes::default()
            };
            let commit = super::Commit {
                step: self.steps,
                trail: &self.trail,
                action: command.action,
                notes,
            };
            if self.host.journal.commit(state, commit).await? {
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
                where_: if J::PAUSES {
                    "a batch flow's own `post` asks only where its step is one of the thread's \
                     own, not inside a fork branch or another batch flow; ask from a node of its \
                     sub-flow instead"
                } else {
                    CANNOT_PAUSE
                },
            }));
        }
        Ok(command.action)
    }
}
