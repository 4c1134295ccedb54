//! Forks, as the run sees them: a fork's start (step limit, pauses before its branches) and its
//! end (the merged update applied and committed), and [`BranchEnv`], what runs its branches and
//! any run on a copy of the state (a nested flow in a branch, a concurrent batch flow's run).
//! Joining the branches and merging their outcomes is `parallel`'s.

use std::sync::atomic::AtomicU32;
use std::time::Instant;

use super::step::{
    CANNOT_PAUSE, exec_rare, failed, is_declared, node_command, post_failed, undeclared,
};
use super::{
    After, ForkAt, Here, Host, Journal, NoJournal, Notes, PartOf, Run, Trail, Watch, catch_panic,
};
use crate::error::{Error, Phase};
use crate::event::{At, Event};
use crate::graph::DEFAULT_ACTION;
use crate::node::dispatch::{Branch, BranchRunner, PhaseCell};
use crate::node::{Command, Context, ItemJournal, KeepItem, Limit, Node, Params, RunScope};
use crate::state::SharedState;

impl<S: SharedState, W: Watch, J: Journal<S>> Run<S, W, J> {
    /// A fork called `name` is about to run `branches`: checks they fit in the step limit, asks
    /// the journal whether to pause before them (every branch is asked, so that a pause lists
    /// all of them), and returns the steps before the fork.
    pub(super) fn start_fork(
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
        if J::PAUSES {
            let mut pause = false;
            for branch in branches {
                let here = Here::of(&self.trail, self.host.composite, branch, self.steps);
                pause |= self.host.journal.pause_before(here);
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
            started: W::OBSERVES.then(Instant::now),
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

    /// What runs the branches of the fork just started; their outcomes are kept as they finish
    /// when the journal keeps the fork's parts.
    pub(super) fn fork_branches(&self) -> BranchEnv<'_, S, W, J> {
        let keeping = self
            .fork
            .filter(|fork| self.host.journal.keeps(self.here(fork.name, fork.before)))
            .map(|fork| (fork.name, fork.before));
        BranchEnv {
            host: &self.host,
            limit: self.limit,
            trail: &self.trail,
            fork: self.fork.map_or("", |fork| fork.name),
            container: self
                .fork
                .map_or(("", 0), |fork| (fork.name, fork.before + 1)),
            keeping,
            composite: self.host.composite,
        }
    }

    /// Applies the merged outcome of the fork just started, as one step, and commits it when the
    /// journal says.
    pub(super) async fn finish_fork(
        &mut self,
        state: &mut S,
        joined: Branch<S>,
    ) -> Result<(), Error> {
        let fork = self.fork.take().unwrap_or(ForkAt {
            name: "",
            branches: &[],
            before: self.steps,
            started: None,
        });
        self.steps = fork.before + joined.steps;
        if W::OBSERVES {
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
        let here = Here::of(&self.trail, self.host.composite, fork.name, self.steps);
        let paused = match self.host.journal.after_fork(here, fork.branches, &asked) {
            After::Commit => {
                self.trail.rename(fork.name);
                let notes = Notes {
                    branches: fork.branches,
                    branch_asks: &asked,
                    ..Notes::default()
                };
                self.commit(state, update, DEFAULT_ACTION, notes).await?
            }
            After::Pause => {
                self.apply(state, update);
                true
            }
            After::Apply => {
                self.apply(state, update);
                false
            }
            After::CannotAsk => {
                let node = asked.first().map_or(fork.name, |(branch, _)| branch);
                return Err(Error::InputRequested {
                    node,
                    step: self.steps,
                    where_: CANNOT_PAUSE,
                });
            }
        };
        if paused {
            return Err(Error::Paused {
                node: fork.name,
                step: self.steps,
                before: false,
            });
        }
        Ok(())
    }
}

/// What runs the branches of a fork, and runs on copies of the state: shared borrows of the
/// run's host (params, watch, journal) and trail, and the limit in force.
pub(crate) struct BranchEnv<'a, S, W, J> {
    pub(super) host: &'a Host<S, W, J>,
    pub(super) limit: Limit,
    pub(super) trail: &'a Trail,
    /// The fork, or empty for the runs of a composite step.
    pub(super) fork: &'static str,
    /// The fork or composite step and its step number, for the events about it.
    pub(super) container: (&'static str, u64),
    /// When the parts are kept: the fork or batch flow, and the steps before its step.
    pub(super) keeping: Option<(&'static str, u64)>,
    /// How many composite steps the fork or batch flow is inside.
    pub(super) composite: u32,
}

impl<'a, S, W, J> BranchEnv<'a, S, W, J> {
    /// Part `index` of what this runs the parts of (kept ones only).
    fn part(&self, container: &'static str, before: u64, index: usize) -> PartOf<'a> {
        PartOf {
            flows: self.trail.flows(),
            container,
            before,
            index,
            composite: self.composite,
        }
    }
}

/// What the step of a branch of a kept fork reads from its run: the run's, except that what
/// it keeps goes with the fork's parts, at the step before the fork (a branch's own step number
/// is past the last one saved).
struct BranchScope<'a, S, W, J> {
    host: &'a Host<S, W, J>,
    before: u64,
}

impl<S: SharedState, W: Watch, J: Journal<S>> BranchScope<'_, S, W, J> {
    /// `at`, as the fork's step: what the journal keeps for the fork's parts.
    fn as_fork_step<'b>(&self, at: &At<'b>) -> At<'b> {
        At {
            step: self.before + 1,
            ..*at
        }
    }

    fn journal(&self, at: &At<'_>) -> Option<&dyn ItemJournal> {
        self.host.journal.items(Here {
            flows: at.flows,
            name: at.node,
            step: self.before,
            composite: self.host.composite,
        })
    }
}

impl<S: SharedState, W: Watch, J: Journal<S>> RunScope for BranchScope<'_, S, W, J> {
    fn params(&self) -> &Params {
        self.host.params()
    }

    fn thread(&self) -> Option<&str> {
        self.host.thread()
    }

    fn events(&self) -> &dyn crate::event::EventSink {
        self.host.events()
    }

    fn items(&self, at: &At<'_>) -> Option<&dyn ItemJournal> {
        self.journal(at).map(|_| self as &dyn ItemJournal)
    }
}

impl<S: SharedState, W: Watch, J: Journal<S>> ItemJournal for BranchScope<'_, S, W, J> {
    fn kept_item(&self, at: &At<'_>, key: &str) -> Option<serde_json::Value> {
        self.journal(at)?.kept_item(&self.as_fork_step(at), key)
    }

    fn keep_item<'a>(&'a self, at: At<'a>, key: String, output: serde_json::Value) -> KeepItem<'a> {
        match self.journal(&at) {
            Some(journal) => journal.keep_item(self.as_fork_step(&at), key, output),
            None => Box::pin(std::future::ready(Ok(()))),
        }
    }

    fn ask_item<'a>(
        &'a self,
        at: At<'a>,
        key: &'a str,
        question: serde_json::Value,
    ) -> KeepItem<'a> {
        match self.journal(&at) {
            Some(journal) => journal.ask_item(self.as_fork_step(&at), key, question),
            None => Box::pin(std::future::ready(Ok(()))),
        }
    }
}

impl<S: SharedState, W: Watch, J: Journal<S>> BranchRunner<S> for BranchEnv<'_, S, W, J> {
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
        let at = At {
            flows: self.trail.flows(),
            node: name,
            step,
            fork: Some(self.fork),
        };
        // A branch of a kept fork keeps what its step produces (an agent's replies, a question
        // asked inside) with the fork's parts, at the step before the fork.
        // (Decided at compile time for a journal that never keeps: a plain fork pays nothing.)
        let kept_scope;
        let scope: &dyn RunScope = if J::PAUSES
            && let Some((_, before)) = self.keeping
            && !self.fork.is_empty()
        {
            kept_scope = BranchScope {
                host: self.host,
                before,
            };
            &kept_scope
        } else {
            self.host
        };
        let context = Context::in_run(scope, at, self.limit, Some(&body_attempts));
        let watch = &self.host.watch;
        let Command {
            action,
            update,
            asked,
            ..
        } = node_command!(node, state, watch, &context, phase, N, W);
        let Some(asked) = asked else {
            return Ok(Branch::new(action, update, 1));
        };
        // A fork that is a kept step of a durable run pauses after it is saved, with this
        // question.
        if self.keeping.is_some() && !self.fork.is_empty() {
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
        let params = params.unwrap_or(&self.host.params).clone();
        if let Some((container, before)) = self.keeping {
            // A part of a kept step: it may pause inside its own flow. A fork's branches are
            // numbered in written order after the step before the fork.
            let index = index.unwrap_or_else(|| usize::try_from(start - before).unwrap_or(0));
            let part = self.part(container, before, index);
            // Boxed: only durable runs take this path, and its future (a whole run on a copy)
            // would otherwise grow every plain run's fork by its size.
            return Box::pin(self.on_copy_as_part(node, state, params, name, start, part)).await;
        }
        let mut copy = state.clone();
        let journal = NoJournal {
            thread: self.host.journal.thread(),
        };
        let mut run = Run::new(&self.host.watch, journal, params, start);
        run.record = Some(S::Update::default());
        run.trail = *self.trail;
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
            .host
            .journal
            .kept(self.part(container, before, index))?;
        resolve_kept(kept, declared, container, before, index)
    }

    fn keeps(&self) -> bool {
        self.keeping.is_some()
    }

    fn progress(&self, index: usize, finished: usize, total: usize) {
        if W::OBSERVES {
            let (node, step) = self.container;
            self.host.watch.event(&Event::BatchItemFinished {
                at: At {
                    flows: self.trail.flows(),
                    node,
                    step,
                    fork: None,
                },
                index,
                finished,
                total,
            });
        }
    }

    async fn keep<'k>(&'k self, index: usize, outcome: Branch<S>) -> Result<Branch<S>, Error>
    where
        S: 'k,
    {
        if !outcome.asked.is_empty() {
            // Not kept: a resume before the fork is saved asks again (the question was never
            // reported).
            return Ok(outcome);
        }
        match self.keeping {
            Some((container, before)) => {
                let part = self.part(container, before, index);
                self.host.journal.keep(part, outcome).await
            }
            None => Ok(outcome),
        }
    }

    async fn discard(&self) -> Result<(), Error> {
        match self.keeping {
            Some((container, before)) => {
                let part = self.part(container, before, 0);
                self.host.journal.discard(part).await
            }
            None => Ok(()),
        }
    }
}

impl<'a, S: SharedState, W: Watch, J: Journal<S>> BranchEnv<'a, S, W, J> {
    /// A part of a kept step on its own copy of the state, after `start` steps: it goes on from
    /// where it stopped at pauses in an earlier run of the step, and when it stops at pauses
    /// again, keeps where before returning [`Error::Paused`].
    async fn on_copy_as_part<N>(
        &self,
        node: &N,
        state: &S,
        params: Params,
        name: &'static str,
        start: u64,
        part: PartOf<'a>,
    ) -> Result<Branch<S>, Error>
    where
        S: Clone,
        N: Node<S>,
    {
        let mut copy = state.clone();
        let (journal, progress) = self.host.journal.part(part, self.trail.depth())?;
        let mut record = S::Update::default();
        let mut steps_so_far = start;
        if let Some((update, done)) = progress {
            copy.apply(update.clone());
            record = update;
            steps_so_far += done;
        }
        let mut run = Run::new(&self.host.watch, journal, params, steps_so_far);
        run.record = Some(record);
        run.trail = *self.trail;
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
                // The trail holds where the pause happened, from the part's own flow down; a fork
                // or batch flow that stopped in its parts did not happen, and the part stands
                // before it.
                run.unwind(0);
                let update = run.record.take().unwrap_or_default();
                let steps = run.steps - start;
                let trail = run.trail;
                let journal = run.into_journal();
                self.host
                    .journal
                    .keep_stopped(part, journal, update, steps, &trail)
                    .await?;
                Err(*error)
            }
            Ok(Err(error)) => {
                self.host
                    .journal
                    .part_failed(part, run.into_journal())
                    .await?;
                Err(*error)
            }
            Err(payload) => Err(run.panic_error(payload)),
        }
    }
}

/// A kept outcome as a [`Branch`], its action looked up in `declared` (`"default"` when there is
/// no list: a fork's branch, whose action does not route).
pub(super) fn resolve_kept<S: SharedState>(
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
        None => DEFAULT_ACTION,
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
