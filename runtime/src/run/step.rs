//! One node step: prep, exec (retried, timed out, with its fallback) and post, then the update
//! applied; plainly, or with what the run's journal says (pauses, commits).

use std::sync::atomic::AtomicU32;
use std::time::Instant;

use super::{After, Here, Journal, Notes, Run, Watch};
use crate::error::{Error, NodeError, Phase};
use crate::event::{At, Event};
use crate::node::dispatch::{PhaseCell, Stepped};
use crate::node::{Between, Command, Node, RetriedBody, TimedOut, with_retries};
use crate::state::SharedState;

/// Why a run that cannot pause fails when a node asks for input.
pub(super) const CANNOT_PAUSE: &str = "only a durable run (`flow.durable(store)`) pauses, and not \
                                       in a fork or batch flow nested in a fork branch or a \
                                       batch flow, yet";

/// Prep, exec (retried, timed out, with its fallback) and post of one node over a shared borrow
/// of the state, in `context` (built by the caller, where the step's future keeps it once), with
/// its events; the phase it is in is recorded in `phase`. The command's action is checked against
/// the node's. Its errors return from the function it is written in.
///
/// A macro, not an `async fn`: written into a step's (or a fork branch's) own `async fn`, it adds
/// no future of its own, so its arguments are not copied into a second future and its command not
/// moved out of one (about 20 instructions a step, 100 a branch). Its arguments are the names of
/// the caller's `&N` node, `&S` state, `&W` watch, `&Context` and `&PhaseCell`, then the node's and
/// the watch's types.
macro_rules! node_command {
    ($node:ident, $state:ident, $watch:ident, $context:expr, $phase:ident, $N:ident, $W:ident) => {{
        $phase.set(Phase::Prep);
        // `at` is read from the context where it is needed, not kept in the future beside it.
        let at = || $context.at();
        let started = $W::OBSERVES.then(Instant::now);
        if $W::OBSERVES {
            $watch.event(&Event::NodeStarted {
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
        // The retry loop and the fallback are boxed: rare paths (a policy that retries or times
        // out; a failed attempt), whose futures would otherwise make every step's future, and so
        // every run's and every fork branch's, hundreds of bytes larger.
        let (exec, attempts) = if $node.retry().is_single_attempt() {
            // The common case, without the retry loop's timers.
            match $node.exec_with(&prep, $context).await {
                Ok(exec) => (exec, 1),
                Err(error) => (
                    Box::pin(fallback($node, &prep, error, $phase, at(), 1)).await?,
                    1,
                ),
            }
        } else {
            let between = |between: Between<'_>| {
                if $W::OBSERVES
                    && let Some(event) = between.event(at(), true)
                {
                    $watch.event(&event);
                }
            };
            let attempts =
                with_retries($node.retry(), || $node.exec_with(&prep, $context), between);
            match Box::pin(attempts).await {
                Ok(done) => done,
                Err((error, attempts)) => (
                    Box::pin(fallback($node, &prep, error, $phase, at(), attempts)).await?,
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
        if $W::OBSERVES {
            $watch.event(&Event::NodeFinished {
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
pub(super) use node_command;

impl<S: SharedState, W: Watch, J: Journal<S>> Run<S, W, J> {
    /// Runs `node` as step `name` for a journal that never pauses: the node's steps, then its
    /// update applied. Its future holds the context and the node's own futures, and nothing that
    /// needs dropping for a node whose `Prep` needs none.
    pub(crate) async fn plain_step<N: Node<S>>(
        &mut self,
        node: &N,
        state: &mut S,
        name: &'static str,
    ) -> Stepped {
        const {
            assert!(!J::PAUSES, "a journal that pauses runs `journaled_step`");
        }
        self.steps += 1;
        self.node = name;
        let step = self.steps;
        let body_attempts = AtomicU32::new(0);
        let context = self.context(name, step, Some(&body_attempts));
        let (watch, phase) = (&self.host.watch, &self.phase);
        let Command {
            update,
            action,
            asked,
            ..
        } = node_command!(node, state, watch, &context, phase, N, W);
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

    /// Runs `node` as step `name`, with the pauses and the commit its journal asks for.
    pub(crate) async fn journaled_step<N: Node<S>>(
        &mut self,
        node: &N,
        state: &mut S,
        name: &'static str,
    ) -> Stepped {
        if self.host.journal.pause_before(Here::of(
            &self.trail,
            self.host.composite,
            name,
            self.steps,
        )) {
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
        let context = self.context(name, step, Some(&body_attempts));
        let (watch, phase) = (&self.host.watch, &self.phase);
        let Command {
            update,
            action,
            reason,
            asked,
        } = node_command!(node, state, watch, &context, phase, N, W);
        let here = Here::of(&self.trail, self.host.composite, name, step);
        let paused = match self.host.journal.after(here, action, asked.as_ref()) {
            After::Apply => {
                self.apply(state, update);
                false
            }
            After::Pause => {
                self.apply(state, update);
                true
            }
            After::Commit => {
                self.trail.rename(name);
                let notes = Notes {
                    reason: reason.as_deref(),
                    asked: asked.as_ref(),
                    ..Notes::default()
                };
                self.commit(state, update, action, notes).await?
            }
            After::CannotAsk => {
                return Err(Box::new(Error::InputRequested {
                    node: name,
                    step,
                    where_: CANNOT_PAUSE,
                }));
            }
        };
        drop_question(asked);
        if paused {
            return Err(Box::new(Error::Paused {
                node: name,
                step,
                before: false,
            }));
        }
        Ok(action)
    }
}

/// Drops a step's question, if any, out of line, and says whether there was one: on the common
/// path (no question) nothing is called, where the drop glue of `Option<Value>` would be a call
/// every step.
#[inline]
pub(super) fn drop_question(asked: Option<serde_json::Value>) -> bool {
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
pub(super) async fn fallback<S: SharedState, N: Node<S>>(
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
