//! Actions known to the type system, for `flow!`'s checks of its edges in `cargo check`.
//!
//! A node's `ACTIONS` is a value, which rustc reads only when it builds (monomorphizes) the flow, so
//! that `flow!`'s `const` check of an edge's action is reported by `cargo build` and not by
//! `cargo check` (nor by an editor). A `#[node]` also says its node's actions as trait impls, keyed
//! by a hash of the action that the macros compute (`DeclaresAction<S, KEY>`), and `flow!` probes
//! each edge with `(&&Edge::<_, _, KEY>::of(&state, &node)).__slateflow_declared()`: for a node
//! that is `StaticActions<S>`, the method is `TypedEdge`'s, which requires `DeclaresAction<S, KEY>`,
//! a trait bound that `cargo check` reports at the edge's action; for any other node (a `Node` impl
//! without `#[node]`, a flow, a batch) it is `ConstEdge`'s, which requires nothing, and the `const`
//! check remains.
//!
//! Not public API: generated code reaches these through `slateflow::__private`. A node kind of
//! the runtime that wraps another (an `Arc` here, the batches in theirs) says that it declares what
//! the node it wraps declares.

use std::marker::PhantomData;

use super::dispatch::StateType;

/// A node over `S` that declares the action whose key is `KEY` (a hash of the action's text,
/// computed by the macros). Implemented by `#[node]`.
#[diagnostic::on_unimplemented(
    message = "the node `{Self}` does not declare this action",
    label = "`{Self}` never returns this action",
    note = "wire one of the actions the node declares (`a >> b` wires \"default\"), or add this \
            one to them: `#[node(actions = [...])]` on a function, `ACTIONS` in an impl, the \
            list in `routes!` for a routing agent"
)]
pub trait DeclaresAction<S, const KEY: u64> {}

/// A node over `S` whose actions are all said by [`DeclaresAction`] impls. Implemented by
/// `#[node]`.
pub trait StaticActions<S> {}

/// An edge leaving a node of type `N` over `S` on the action keyed `KEY`, probed by `flow!`.
pub struct Edge<S, N, const KEY: u64>(PhantomData<(StateType<S>, N)>);

impl<S, N, const KEY: u64> Edge<S, N, KEY> {
    /// The edge leaving `node` in a flow over `S`.
    #[inline]
    pub fn of(_state: &StateType<S>, _node: &N) -> Self {
        Self(PhantomData)
    }
}

/// The probe of an edge whose node is [`StaticActions`]: chosen first (its receiver is one more
/// reference away), it requires the action to be declared.
pub trait TypedEdge<S, N, const KEY: u64> {
    /// Requires `N` to declare the action.
    #[inline]
    fn __slateflow_declared(&self)
    where
        N: DeclaresAction<S, KEY>,
    {
    }
}

impl<S, N: StaticActions<S>, const KEY: u64> TypedEdge<S, N, KEY> for &Edge<S, N, KEY> {}

/// The probe of any other edge: requires nothing (the flow's `const` check reads `ACTIONS`).
pub trait ConstEdge {
    /// Requires nothing.
    #[inline]
    fn __slateflow_declared(&self) {}
}

impl<S, N, const KEY: u64> ConstEdge for Edge<S, N, KEY> {}

impl<S, N: StaticActions<S>> StaticActions<S> for std::sync::Arc<N> {}
#[diagnostic::do_not_recommend]
impl<S, N: DeclaresAction<S, KEY>, const KEY: u64> DeclaresAction<S, KEY> for std::sync::Arc<N> {}
impl<S, N: StaticActions<S>> StaticActions<S> for &N {}
#[diagnostic::do_not_recommend]
impl<S, N: DeclaresAction<S, KEY>, const KEY: u64> DeclaresAction<S, KEY> for &N {}
