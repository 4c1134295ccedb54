//! Support for the code the macros generate: the one route by which it reaches the runtime. Not
//! public API: no semver guarantees.
//!
//! Generated code names everything through `::slateflow::__private` (or the path given with
//! `#[slateflow(crate = ...)]`) so that it compiles whatever the user has in scope, and nothing
//! inside the runtime imports this module. Its rooms: `reducers` (the derive's update slots),
//! `flow` (`flow!`'s join and checks), `node` (`#[node]`'s return types and retried bodies) and
//! `prompt` (`prompt!`'s placeholder check); the rest are re-exports of what generated code
//! names.

mod flow;
mod node;
mod prompt;
mod reducers;

pub use flow::*;
pub use node::*;
pub use prompt::*;
pub use reducers::*;

pub use serde;
pub use slateflow_macros::{flow_impl, prompt_impl};

pub use crate::agent::message::{Histories, Message as ChatMessage};
pub use crate::agent::template::{Part as PromptPart, Prompt};
pub use crate::agent::{Conversation, Counters, TurnSummary};
pub use crate::error::Error;
pub use crate::error::MergeConflict;
pub use crate::flow::{Flow, FlowGraph};
pub use crate::graph::{DEFAULT_ACTION, Edge as GraphEdge, Fork as GraphFork, Graph, GraphNode};
pub use crate::node::actions::{ConstEdge, DeclaresAction, Edge, StaticActions, TypedEdge};
pub use crate::node::dispatch::{
    Branch, BranchFuture, BranchRunner, Composite, PhaseCell, Runner, StateType, Stepped,
};
pub use crate::node::{Command, Context, Node, NodeError, Retry};
pub use crate::parallel::ForkState;
pub use crate::reducer::{Addable, Append, Reducer};
pub use crate::state::{Field, SharedState, StateUpdate};
pub use crate::text::{
    ActionSet, MAX_FLOW_ACTIONS, action_key, declares, first_unwired, str_eq, terminal_actions,
    terminal_actions_in,
};

/// The flow `flow!` built over `graph`, its wiring checked: evaluating `G::CHECKS` here, in the
/// function the user's `flow!` calls, has rustc name that call when a check fails.
#[inline]
pub fn new_flow<S: SharedState, G: FlowGraph<S>>(graph: G, state: StateType<S>) -> Flow<S, G> {
    let () = G::CHECKS;
    Flow::from_graph(graph, state)
}

/// The metadata of a field: its name, reducer and type.
#[inline]
pub const fn field(name: &'static str, reducer: Reducer, type_name: &'static str) -> Field {
    Field::new(name, reducer, type_name)
}

/// A template `prompt!` has checked.
#[inline]
pub const fn prompt<S: SharedState>(parts: &'static [PromptPart]) -> Prompt<S> {
    Prompt::checked(parts)
}
