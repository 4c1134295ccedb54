//! Parallel branches: a fork (`a >> [b, c] >> d` in [`flow!`](crate::flow!)) runs its branches
//! concurrently, then merges their updates through the reducers and applies the result once.
//!
//! The rules, after LangGraph's supersteps:
//! - every branch reads the state as it was before the fork: plain nodes borrow it (no copy); a
//!   nested flow in a branch runs on its own copy and hands back the composition of its updates;
//! - the branches' updates merge in the order the branches are written, never in the order they
//!   finish, so a run's result does not depend on timing;
//! - a last-write-wins field written by two branches is a conflict ([`Error::ParallelConflict`]),
//!   even when both write the same value; `add` fields sum and `append` fields concatenate;
//! - a reducer field overwritten by one branch (`overwrite_<field>`) takes the overwrite as its
//!   base, and the other branches' writes to it land on top, in written order, wherever the
//!   overwriting branch is written; two branches overwriting one field are a conflict
//!   ([`Error::ParallelOverwrite`]);
//! - the first branch to fail fails the fork: the other branches are cancelled (dropped) and
//!   nothing of the fork is applied. A branch that panics fails it too, with [`Error::Panic`]
//!   naming the branch, its step and the phase it was in. Retries apply to each branch on its own;
//! - in a durable run, a branch that pauses inside its nested flow does not stop the others: it
//!   keeps where it stood, they finish, and the fork pauses; on resume it goes on from there. A
//!   node that is itself a branch and asks a question pauses the run after the fork is saved,
//!   with every branch's question;
//! - the fork's action is `"default"`, which the `>>` after the list follows (the join). A
//!   branch's own action is checked against the actions it declares and does not route;
//! - each branch is a step, numbered in written order after the step before the fork, and a fork
//!   that does not fit in the flow's step limit fails before any branch starts. A nested flow in
//!   a branch numbers its steps on from its branch's number, is bounded by its own step limit, and
//!   its steps count toward the run once the fork is done.
//!
//! The branches run inside the run's task (no spawn, no `'static` bound): they are concurrent, not
//! parallel on several threads. Model calls are I/O, so that is where the time goes.
//!
//! This module owns joining branches (catching their panics; in durable runs, keeping each
//! outcome as it finishes) and merging outcomes in order, which concurrent batch flows share
//! (`Conflicts` says how each treats a field written twice). Starting a fork, numbering its steps
//! and applying the merged update are the run's; this module applies nothing.

use std::future::{Future, poll_fn};
use std::panic::AssertUnwindSafe;
use std::task::Poll;

use crate::error::{Error, MergeConflict};
use crate::graph::DEFAULT_ACTION;
use crate::node::dispatch::{Branch, BranchFuture, BranchRunner, PhaseCell};
use crate::run::panic_message;
use crate::state::{SharedState, StateUpdate};

/// A state that a flow with parallel branches can run on.
///
/// A nested flow in a branch runs on its own copy of the state, so a flow with a fork needs its
/// state to be `Clone`. Plain nodes in branches only borrow it.
///
/// ```
/// # use serde::{Deserialize, Serialize};
/// # use slateflow::{Command, SharedState, flow, node};
/// # #[derive(SharedState, Clone, Debug, Default, Serialize, Deserialize)]
/// # struct Counter { #[reducer(add)] count: u32, label: String }
/// # #[node]
/// # fn count(_: &Counter) -> Command<Counter> { Command::new(Counter::update().add_count(1)) }
/// // `Counter` derives `Clone`, so a fork whose branch is a nested flow can copy it.
/// let inner = flow! { count; };
/// let flow = flow! { [inner, count]; };
/// let mut counter = Counter::default();
/// flow.run_blocking(&mut counter)?;
/// assert_eq!(counter.count, 2);
/// # Ok::<(), slateflow::Error>(())
/// ```
#[diagnostic::on_unimplemented(
    message = "a flow with parallel branches needs its state `{Self}` to be `Clone`",
    label = "this fork needs `{Self}: Clone`",
    note = "a nested flow in a branch runs on its own copy of the state: add `#[derive(Clone)]` \
            to `{Self}`"
)]
pub trait ForkState: SharedState + Clone {}

#[diagnostic::do_not_recommend]
impl<S: SharedState + Clone> ForkState for S {}

/// Keeping a branch's outcome in a durable run.
type KeepFuture<'a, S> =
    std::pin::Pin<Box<dyn Future<Output = Result<Branch<S>, Error>> + Send + 'a>>;

/// Runs the branches of a fork concurrently and merges their updates in written order.
///
/// `names` are the branches' names and `first_step` the step number of the first branch, for the
/// errors. The branches are polled inside a panic guard: a branch that panics fails the fork with
/// [`Error::Panic`] naming it, its step and the phase it recorded in `phases`. A branch whose
/// outcome an earlier attempt of the fork kept (a durable run resumed after a failure or a crash)
/// does not run: its future is dropped unpolled. In a durable run, each branch's outcome is kept as
/// soon as it finishes, while its siblings are still running: a crash loses only the branches that
/// had not finished. Returns at the first branch error, dropping (cancelling) the others; the
/// outcomes kept of the finished ones stay kept.
///
/// Outcomes that do not merge (a conflict) are not kept: in a durable run, the join voids every
/// outcome kept for the fork before it fails, so that a resume runs the branches again (with the
/// code it has then). When some of the outcomes merged were kept by an earlier attempt, their
/// branches run again at once (their futures were never polled) and the fork merges once more
/// before it fails: the conflict may be theirs, made by code fixed since, or the earlier attempt
/// may have failed on it and been killed before it could void them.
///
/// # Errors
/// The first branch error (or keeping's, or voiding's), or [`Error::ParallelConflict`] or
/// [`Error::ParallelOverwrite`].
pub(crate) async fn join<S: SharedState, B: BranchRunner<S>, const N: usize>(
    runner: &B,
    branches: [BranchFuture<'_, S>; N],
    phases: &[PhaseCell; N],
    names: &'static [&'static str; N],
    first_step: u64,
) -> Result<Branch<S>, Error> {
    // Only a durable run keeps outcomes, and has kept ones to ask for.
    let keeps = runner.keeps();
    let mut outcomes: [Option<Branch<S>>; N] = std::array::from_fn(|_| None);
    let mut replayed = [false; N];
    if keeps {
        for (index, outcome) in outcomes.iter_mut().enumerate() {
            *outcome = runner.kept(index, None)?;
            replayed[index] = outcome.is_some();
        }
    }
    let mut branches = branches;
    let joined = Joined {
        runner,
        phases,
        names,
        first_step,
    };
    // In a durable run, a finished branch's outcome is kept while the others still run: keeping
    // may wait on the store, which a sibling may hold. Boxed, since only durable runs keep (a
    // write to the store each), and a plain run's fork should not grow by their futures.
    let mut keeping: [Option<KeepFuture<'_, S>>; N] = std::array::from_fn(|_| None);
    // Whether the replayed branches ran again, after their outcomes conflicted.
    let mut again = false;
    loop {
        joined
            .drive(&mut branches, &mut outcomes, &mut keeping)
            .await?;
        let conflict = match merge_in_order(&mut outcomes, joined.conflicts()) {
            Ok(merged) => {
                // Every branch finished and its keeping with it, and a merge that succeeds takes
                // every outcome: no slot holds anything, and dropping the arrays would only look
                // at each to find it empty.
                debug_assert!(
                    keeping.iter().all(Option::is_none),
                    "a keeping outlived the join"
                );
                debug_assert!(
                    outcomes.iter().all(Option::is_none),
                    "an outcome was not merged"
                );
                std::mem::forget(keeping);
                std::mem::forget(outcomes);
                return Ok(merged);
            }
            Err(conflict) if keeps => conflict,
            Err(conflict) => return Err(conflict),
        };
        // Boxed: only a durable run keeps outcomes, and a plain run's fork should not grow by
        // this rare path's future.
        Box::pin(runner.discard()).await?;
        // The check before the merge consumes nothing; only an update whose `conflict` and
        // `merge` disagree leaves a slot empty, and then no branch runs again.
        let whole = outcomes.iter().all(Option::is_some);
        if again || !whole || !replayed.contains(&true) {
            return Err(conflict);
        }
        // The replayed branches' futures were never polled: they run now.
        again = true;
        for (outcome, replayed) in outcomes.iter_mut().zip(replayed) {
            if replayed {
                *outcome = None;
            }
        }
    }
}

/// What a fork's join polls its branches with, and names them by.
struct Joined<'r, B, const N: usize> {
    runner: &'r B,
    phases: &'r [PhaseCell; N],
    names: &'static [&'static str; N],
    first_step: u64,
}

impl<B, const N: usize> Joined<'_, B, N> {
    fn conflicts(&self) -> Conflicts<'static> {
        Conflicts::Fail {
            names: self.names,
            step: self.first_step,
        }
    }

    /// Polls the branches that have no outcome yet until all are done, keeping each outcome as it
    /// finishes when the runner keeps them. A branch that pauses (in a durable run) has kept where
    /// it stopped; the others go on, and the fork pauses once all are done.
    ///
    /// # Errors
    /// The first branch error (or keeping's, or a panic), or, once every branch is done, the first
    /// pause.
    fn drive<'d, 'r: 'd, S: SharedState + 'r>(
        &'r self,
        branches: &'d mut [BranchFuture<'_, S>; N],
        outcomes: &'d mut [Option<Branch<S>>; N],
        keeping: &'d mut [Option<KeepFuture<'r, S>>; N],
    ) -> impl Future<Output = Result<(), Error>> + 'd
    where
        B: BranchRunner<S>,
    {
        let runner = self.runner;
        let keeps = runner.keeps();
        let mut stopped = [false; N];
        let mut paused = None;
        // The join's own future, with no `async` layer around it.
        poll_fn(move |context| {
            // One panic guard around the round, not one per branch: `current` says which branch
            // (or its keeping) was being polled when one panicked.
            let mut current = 0;
            let round = std::panic::catch_unwind(AssertUnwindSafe(|| {
                let mut pending = false;
                for (index, branch) in branches.iter_mut().enumerate() {
                    current = index;
                    let running =
                        keeping[index].is_none() && outcomes[index].is_none() && !stopped[index];
                    if running {
                        match branch.as_mut().poll(context) {
                            Poll::Ready(Ok(done)) if keeps => {
                                keeping[index] = Some(Box::pin(runner.keep(index, done)));
                            }
                            Poll::Ready(Ok(done)) => outcomes[index] = Some(done),
                            Poll::Ready(Err(error @ Error::Paused { .. })) => {
                                stopped[index] = true;
                                paused.get_or_insert(error);
                            }
                            Poll::Ready(Err(error)) => return Poll::Ready(Err(error)),
                            Poll::Pending => pending = true,
                        }
                    }
                    // A branch that just finished is kept at once; one still keeping goes on.
                    if let Some(keep) = keeping[index].as_mut() {
                        match keep.as_mut().poll(context) {
                            Poll::Ready(Ok(kept)) => {
                                keeping[index] = None;
                                outcomes[index] = Some(kept);
                            }
                            Poll::Ready(Err(error)) => return Poll::Ready(Err(error)),
                            Poll::Pending => pending = true,
                        }
                    }
                }
                if pending {
                    Poll::Pending
                } else {
                    // Every branch finished, and its keeping with it.
                    Poll::Ready(paused.take().map_or(Ok(()), Err))
                }
            }));
            round.unwrap_or_else(|payload| {
                Poll::Ready(Err(Error::Panic {
                    node: self.names[current],
                    step: self.first_step + current as u64,
                    phase: self.phases[current].get(),
                    message: panic_message(payload),
                }))
            })
        })
    }
}

/// What merging does with a last-write-wins field written by more than one outcome.
#[derive(Debug, Clone, Copy)]
pub(crate) enum Conflicts<'a> {
    /// Fail with [`Error::ParallelConflict`] naming both (a fork's branches, by `names`, at the
    /// fork's first `step`).
    Fail {
        names: &'a [&'static str],
        step: u64,
    },
    /// The later write wins, as if the outcomes had run one after another (a batch flow's runs).
    LaterWins,
}

/// Merges outcomes in the order given, through the reducers, into one outcome whose steps are
/// their sum and whose action is `"default"`; `None`s are skipped. With [`Conflicts::Fail`], the
/// updates are checked for conflicts before any is consumed: in one pass over the fields each
/// claims alone ([`StateUpdate::__contested`]), and pair by pair where that finds a conflict (to
/// name both branches and the field) or an update cannot say.
///
/// # Errors
/// [`Error::ParallelConflict`] or [`Error::ParallelOverwrite`], with [`Conflicts::Fail`] only.
pub(crate) fn merge_in_order<S: SharedState>(
    outcomes: &mut [Option<Branch<S>>],
    conflicts: Conflicts<'_>,
) -> Result<Branch<S>, Error> {
    let mut merged: Branch<S> = Branch::new(DEFAULT_ACTION, S::Update::default(), 0);
    let Conflicts::Fail { names, step } = conflicts else {
        // As if the runs had happened one after another: `then`, and the later write wins.
        for outcome in outcomes.iter_mut().filter_map(Option::take) {
            merged.steps += outcome.steps;
            merged.ask(outcome.asked);
            merged.update = merged.update.then(outcome.update);
        }
        return Ok(merged);
    };
    let conflict_error = |conflict: MergeConflict, first: usize, second: usize| {
        let (field, first, second) = (conflict.field(), names[first], names[second]);
        if conflict.is_overwrite() {
            Error::ParallelOverwrite {
                field,
                first,
                second,
                step,
            }
        } else {
            Error::ParallelConflict {
                field,
                first,
                second,
                step,
            }
        }
    };
    // One pass while the updates say which fields they claim alone: the bits claimed so far.
    // An update whose bits meet them (or that cannot say) is compared with each earlier one, to
    // name the pair and the field; from then on, every later one is too.
    let mut claimed = Some(0_u64);
    for later in 0..outcomes.len() {
        let Some(second) = &outcomes[later] else {
            continue;
        };
        if let (Some(bits), Some(contested)) = (claimed, second.update.__contested())
            && bits & contested == 0
        {
            claimed = Some(bits | contested);
            continue;
        }
        claimed = None;
        for (earlier, first) in outcomes[..later].iter().enumerate() {
            if let Some(first) = first
                && let Some(conflict) = first.update.conflict(&second.update)
            {
                return Err(conflict_error(conflict, earlier, later));
            }
        }
    }
    for (index, outcome) in outcomes.iter_mut().enumerate() {
        let Some(outcome) = outcome.take() else {
            continue;
        };
        merged.steps += outcome.steps;
        merged.ask(outcome.asked);
        // `merge`, not `then`: an overwrite in any branch is the base the others' writes land on.
        // The check above found no conflict, so a failure here is an update whose `conflict` and
        // `merge` disagree; it is still reported, against the first branch.
        merged.update = std::mem::take(&mut merged.update)
            .merge(outcome.update)
            .map_err(|conflict| conflict_error(conflict, 0, index))?;
    }
    Ok(merged)
}
