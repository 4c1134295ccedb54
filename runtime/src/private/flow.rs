//! What `flow!`'s generated code calls: the fork's join, the checks that a node is over the
//! flow's state and that a fork's state is `Clone`, and the compile-time messages of its checks.

use std::future::Future;

use crate::node::dispatch::{Branch, BranchFuture, BranchRunner, PhaseCell, StateType};

/// Runs the branches of a fork concurrently and merges their updates in written order; see
/// [`parallel`](crate::parallel).
///
/// # Errors
/// The first branch error, or [`Error::ParallelConflict`](crate::Error::ParallelConflict).
// A plain function handing back the runtime's future: an `async fn` wrapper would be one more
// future layer, holding its arguments beside the future it awaits.
#[inline]
pub fn join<'a, S: crate::SharedState, B: BranchRunner<S>, const N: usize>(
    runner: &'a B,
    branches: [BranchFuture<'a, S>; N],
    phases: &'a [PhaseCell; N],
    names: &'static [&'static str; N],
    first_step: u64,
) -> impl Future<Output = Result<Branch<S>, crate::Error>> + 'a {
    crate::parallel::join(runner, branches, phases, names, first_step)
}

/// A branch of a fork in a flow over `S`: `flow!` passes its first fork's first branch through
/// [`BranchOf::fork`], so that a state that is not `Clone` is reported at the fork, and then its
/// graph through the [`Forks`] handed back. `M` tells the impls apart, and is inferred.
///
/// `Forks` is unknown to rustc when the bound does not hold, for the reason given at
/// [`NodeOver`]; so are the graph that passes through it and the flow built on that graph, which
/// are then not reported again.
#[diagnostic::on_unimplemented(
    message = "a flow with parallel branches needs its state `{S}` to be `Clone`",
    label = "this fork needs `{S}: Clone`",
    note = "a nested flow in a branch runs on its own copy of the state: add `#[derive(Clone)]` \
            to `{S}`"
)]
pub trait BranchOf<S, M> {
    /// What the graph passes through.
    type Forks: Forks;

    /// Requires `S` to be a fork's state.
    fn fork(state: &StateType<S>, branch: &Self) -> Self::Forks;
}

/// A flow's forks, checked: see [`BranchOf`].
pub trait Forks {
    /// The graph's own type.
    type Graph<G>;

    /// Hands `graph` back.
    fn graph<G>(self, graph: G) -> Self::Graph<G>;
}

/// The forks of a flow over a state that is `Clone`.
pub struct Checked;

impl Forks for Checked {
    type Graph<G> = G;

    #[inline]
    fn graph<G>(self, graph: G) -> G {
        graph
    }
}

impl<S: crate::parallel::ForkState, N> BranchOf<S, over::Holds> for N {
    type Forks = Checked;

    #[inline]
    fn fork(_: &StateType<S>, _: &N) -> Checked {
        Checked
    }
}

impl<S, N: over::Never> BranchOf<S, over::Unreachable> for N {
    type Forks = Checked;

    #[inline]
    fn fork(_: &StateType<S>, _: &N) -> Checked {
        Checked
    }
}

/// A node over `S`: `flow!` passes each node through [`NodeOver::node`], so that a node over
/// another state is an error at the node's name. `M` tells the impls apart, and is inferred.
///
/// The node comes back as [`NodeOver::Node`], and the trait has a second impl that never applies,
/// so that rustc must look at `Node<S>` to choose between them. When it does not hold, neither
/// impl applies, and rustc reports this one error and cannot name the node's type: it stays
/// unknown to the graph, the flow and its uses, which are then not reported again (with one impl,
/// rustc would take the type from it and report the graph's `Node<S>` bound a second time, and
/// every method called on the flow a third).
#[diagnostic::on_unimplemented(
    message = "`{Self}` is not a node over the state `{S}`",
    label = "this is not a `Node<{S}>`",
    note = "every node of a flow works on the one state type `{S}`: a `#[node]` function takes \
            `&{S}` as its first argument, a hand-written node implements `Node<{S}>`, and a \
            closure over `&{S}` becomes a node with `slateflow::node::from_fn`"
)]
pub trait NodeOver<S, M> {
    /// The node's own type.
    type Node;

    /// Hands the node back. The state comes first, so that it is known (from the nodes before)
    /// when the node is checked.
    fn node(state: &StateType<S>, node: Self) -> Self::Node;
}

/// The markers of [`NodeOver`] and [`BranchOf`], and the trait that keeps their second impls from
/// ever applying: public in a private module, so that no other crate can name them (let alone
/// implement `Never`).
mod over {
    /// `M` of the impl that applies when the bound holds.
    pub enum Holds {}

    /// `M` of the impl that never applies, for a type that is [`Never`].
    pub enum Unreachable {}

    /// Implemented by no type.
    pub trait Never {}
}

impl<S: crate::SharedState, N: crate::Node<S>> NodeOver<S, over::Holds> for N {
    type Node = N;

    #[inline]
    fn node(_: &StateType<S>, node: N) -> N {
        node
    }
}

impl<S, N: over::Never> NodeOver<S, over::Unreachable> for N {
    type Node = N;

    #[inline]
    fn node(_: &StateType<S>, node: N) -> N {
        node
    }
}

/// A compile-time error message, built in a fixed buffer (`const fn` cannot allocate).
pub struct Message {
    bytes: [u8; 1024],
    len: usize,
    truncated: bool,
}

impl Message {
    pub const fn new() -> Self {
        Self {
            bytes: [0; 1024],
            len: 0,
            truncated: false,
        }
    }

    /// Appends `text` whole; once something does not fit, appends `...` and ignores the rest.
    #[must_use]
    pub const fn push(mut self, text: &str) -> Self {
        if self.truncated {
            return self;
        }
        let (text, truncated) = if self.len + text.len() + 3 <= self.bytes.len() {
            (text.as_bytes(), false)
        } else {
            ("...".as_bytes(), true)
        };
        let mut index = 0;
        while index < text.len() {
            self.bytes[self.len] = text[index];
            self.len += 1;
            index += 1;
        }
        self.truncated = truncated;
        self
    }

    /// Appends the actions as `"a", "b"`.
    #[must_use]
    pub const fn push_list(mut self, actions: &[&str]) -> Self {
        let mut index = 0;
        while index < actions.len() {
            if index > 0 {
                self = self.push(", ");
            }
            self = self.push("\"").push(actions[index]).push("\"");
            index += 1;
        }
        self
    }

    pub const fn as_str(&self) -> &str {
        match core::str::from_utf8(self.bytes.split_at(self.len).0) {
            Ok(text) => text,
            Err(_) => "(message not valid UTF-8)",
        }
    }
}

impl Default for Message {
    fn default() -> Self {
        Self::new()
    }
}

/// The message for an edge whose label the node does not declare.
pub const fn undeclared_action(node: &str, action: &str, declared: &[&str]) -> Message {
    Message::new()
        .push("node `")
        .push(node)
        .push("` does not declare the action \"")
        .push(action)
        .push("\"; it declares ")
        .push_list(declared)
        .push(": wire one of those, or add \"")
        .push(action)
        .push("\" to the node's `ACTIONS`")
}

/// The message for an exhaustive flow whose node leaves an action unwired.
pub const fn unwired_action(node: &str, action: &str) -> Message {
    Message::new()
        .push("node `")
        .push(node)
        .push("` declares the action \"")
        .push(action)
        .push("\" but this `#![exhaustive]` flow has no edge for it: add `")
        .push(node)
        .push(" - \"")
        .push(action)
        .push("\" >> ...`")
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::text::{first_unwired, terminal_actions};

    #[test]
    fn terminal_actions_are_the_unwired_ones_each_once() {
        let set = terminal_actions(&[
            (&["intrusion", "phishing"], &["intrusion"]),
            (&["done", "phishing"], &[]),
        ]);
        assert_eq!(set.list.split_at(set.len).0, ["phishing", "done"]);
    }

    #[test]
    fn compile_time_messages_read_well_and_stop_at_the_buffer() {
        let message = undeclared_action("route", "spam", &["intrusion", "phishing"]);
        assert_eq!(
            message.as_str(),
            "node `route` does not declare the action \"spam\"; it declares \"intrusion\", \
             \"phishing\": wire one of those, or add \"spam\" to the node's `ACTIONS`"
        );
        let long = "x".repeat(2000);
        let message = Message::new().push("start ").push(&long).push(" end");
        assert_eq!(message.as_str(), "start ...", "nothing after the cut");
        assert_eq!(first_unwired(&["a", "b"], &["a"]), Some("b"));
        assert_eq!(first_unwired(&["a"], &["a"]), None);
    }
}
