//! One node step: prep, exec (retried, timed out, with its fallback) and post, then the update
//! applied; plainly, or with what the run's journal says (pauses, commits).

use std::sync::atomic::AtomicU32;
use std::time::Instant;

use super::{After, Here, Journal, Notes, Run, Watch};
use crate::error::{Error, NodeError, Phase};
use crate::event::Event;
use crate::node::dispatch::{PhaseCell, Stepped};
use crate::node::{
    Between, Command, Context, Interrupted, Node, RetriedBody, TimedOut, with_retries,
};
use crate::state::SharedState;

/// Why a run that cannot pause fails when a node asks for input.
pub(super) const CANNOT_PAUSE: &str = "only a durable run (`flow.durable(store)`) pauses";

/// Prep, exec (retried, timed out, with its fallback) and post of one node over a shared borrow
/// of the state, in `context` (built by the caller, where the step's future keeps it once), with
/// its events, each polled within what the watch keeps for the step ([`Watch::within`]); the
/// phase it is in is recorded in `phase`. The command's action is checked against
/// the node's. Its errors return from the function it is written in.
///
/// A macro, not an `async fn`: written into a step's (or a fork branch's) own `async fn`, it adds
/// no future of its own, so its arguments are not copied into a second future and its command not
/// moved out of one. What is rare is out of line: the errors are built by cold functions, and a
/// policy that retries, or a failed attempt, goes through one boxed future ([`exec_rare`]), so
/// that the step's own code, and its future, hold only the common path. Its arguments are the
/// names of the caller's `&N` node, `&S` state, `&W` watch, `&Context` and `&PhaseCell`, then the
/// node's and the watch's types.
macro_rules! node_command {
    ($node:ident, $state:ident, $watch:ident, $context:expr, $phase:ident, $N:ident, $W:ident) => {{
        $phase.set(Phase::Prep);
        let started = $W::OBSERVES.then(Instant::now);
        if $W::OBSERVES {
            $watch.event(&Event::NodeStarted {
                at: $context.at(),
                attempt: 1,
            });
        }
        let prep = match $watch
            .within($context, $node.prep(&*$state, $context))
            .await
        {
            Ok(prep) => prep,
            Err(source) => return Err(failed($context, Phase::Prep, 1, source).into()),
        };
        $phase.set(Phase::Exec);
        let exec = if $node.retry().is_single_attempt() {
            // The common case: one attempt, without the retry loop's timers.
            match $watch
                .within($context, $node.exec_with(&prep, $context))
                .await
            {
                Ok(exec) => Ok((exec, 1)),
                Err(error) => Err(Some(error)),
            }
        } else {
            Err(None)
        };
        let (exec, attempts) = match exec {
            Ok(done) => done,
            Err(failed_once) => {
                let rare = Box::pin(exec_rare::<_, $N, $W>(
                    $node,
                    &prep,
                    failed_once,
                    $context,
                    $phase,
                    $watch,
                ));
                $watch.within($context, rare).await?
            }
        };
        $phase.set(Phase::Post);
        let command = match $watch
            .within($context, $node.post(&*$state, prep, exec, $context))
            .await
        {
            Ok(command) => command,
            Err(source) => return Err(post_failed($context, source).into()),
        };
        if !is_declared($N::ACTIONS, command.action) {
            return Err(undeclared($context, command.action, $N::ACTIONS).into());
        }
        if $W::OBSERVES {
            $watch.event(&Event::NodeFinished {
                at: $context.at(),
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

/// The rare path of a node's `exec`: the attempts of a policy that retries (or times out), or the
/// fallback of a single attempt that failed (`failed_once`); then, if every attempt failed, the
/// node's `exec_fallback`, whose error fails the step. Boxed by its caller: a step's future holds
/// only the common path.
pub(super) async fn exec_rare<S: SharedState, N: Node<S>, W: Watch>(
    node: &N,
    prep: &N::Prep,
    failed_once: Option<NodeError>,
    context: &Context<'_>,
    phase: &PhaseCell,
    watch: &W,
) -> Result<(N::Exec, u32), Error> {
    let (error, attempts) = if let Some(error) = failed_once {
        (error, 1)
    } else {
        let between = |between: Between<'_>| {
            if W::OBSERVES
                && let Some(event) = between.event(context.at(), true)
            {
                watch.event(&event);
            }
        };
        match with_retries(node.retry(), || node.exec_with(prep, context), between).await {
            Ok(done) => return Ok(done),
            Err(failed) => failed,
        }
    };
    phase.set(Phase::Fallback);
    match node.exec_fallback(prep, error).await {
        Ok(exec) => Ok((exec, attempts)),
        Err(source) => Err(fallback_failed(context, attempts, source)),
    }
}

/// The error of a node step's `prep` (or, with `attempts`, `exec`) that failed with `source`;
/// or the pause of one that stopped to ask a question inside ([`Context::interrupt`]).
#[cold]
#[inline(never)]
pub(super) fn failed(
    context: &Context<'_>,
    phase: Phase,
    attempts: u32,
    source: NodeError,
) -> Error {
    if source.is::<Interrupted>() {
        return Error::Paused {
            node: context.node(),
            step: context.step(),
            before: false,
        };
    }
    Error::NodeFailed {
        node: context.node(),
        step: context.step(),
        phase,
        attempts,
        source,
    }
}

/// The error of a node's `exec_fallback` that failed: a timeout when its last attempt timed out.
#[cold]
#[inline(never)]
fn fallback_failed(context: &Context<'_>, attempts: u32, source: NodeError) -> Error {
    match source.downcast::<TimedOut>() {
        Ok(timed_out) => Error::Timeout {
            node: context.node(),
            step: context.step(),
            attempts,
            after: timed_out.0,
        },
        Err(source) => failed(context, Phase::Exec, attempts, source),
    }
}

/// The error of a node's `post` that failed: for a `#[node]` function whose body ran under its
/// retry policy, after that many attempts (a timeout when the last one timed out).
#[cold]
#[inline(never)]
pub(super) fn post_failed(context: &Context<'_>, source: NodeError) -> Error {
    match source.downcast::<RetriedBody>() {
        Ok(retried) => match retried.source.downcast::<TimedOut>() {
            Ok(timed_out) => Error::Timeout {
                node: context.node(),
                step: context.step(),
                attempts: retried.attempts,
                after: timed_out.0,
            },
            Err(source) => failed(context, Phase::Post, retried.attempts, source),
        },
        Err(source) => failed(context, Phase::Post, 1, source),
    }
}

/// The error of a node that returned an action it does not declare.
#[cold]
#[inline(never)]
pub(super) fn undeclared(
    context: &Context<'_>,
    action: &'static str,
    declared: &'static [&'static str],
) -> Error {
    Error::UndeclaredAction {
        node: context.node(),
        step: context.step(),
        action,
        declared,
    }
}
