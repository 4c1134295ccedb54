//! Support for the code the macros generate. Not public API: no semver guarantees.
//!
//! Generated code names everything through `::slateflow::__private` (or the path given with
//! `#[slateflow(crate = ...)]`) so that it compiles whatever the user has in scope. Each helper takes
//! the update slots (`Option<T>`: `None` means "not written") and hides one reducer rule.

use std::marker::PhantomData;

use serde::{Deserialize, Deserializer, Serialize};

use crate::error::MergeConflict;
use crate::reducer::{Addable, Append};

pub use serde;
pub use slateflow_macros::{flow_impl, prompt_impl};

/// Sequential composition of a last-write-wins slot: the later write wins.
#[inline]
pub fn then_last_write<T>(earlier: Option<T>, later: Option<T>) -> Option<T> {
    later.or(earlier)
}

/// Parallel merge of a last-write-wins slot: a write on both sides is a conflict.
///
/// # Errors
/// [`MergeConflict`] when both slots are written.
#[inline]
pub fn merge_last_write<T>(
    left: Option<T>,
    right: Option<T>,
    field: &'static str,
) -> Result<Option<T>, MergeConflict> {
    match (left, right) {
        (Some(_), Some(_)) => Err(MergeConflict::new(field)),
        (left, right) => Ok(left.or(right)),
    }
}

/// Composition (sequential or parallel) of a reducer slot: `reduce(first, second)` when both are written.
#[inline]
pub fn combine<T>(
    first: Option<T>,
    second: Option<T>,
    reduce: impl FnOnce(&mut T, T),
) -> Option<T> {
    match (first, second) {
        (Some(mut first), Some(second)) => {
            reduce(&mut first, second);
            Some(first)
        }
        (first, second) => first.or(second),
    }
}

/// Sequential composition of a reducer slot that may be an overwrite: `(slot, overwrites)` pairs.
///
/// A later overwrite replaces whatever came before; a later reduction lands on an earlier
/// overwrite as it would on the state (`apply`), and on an earlier reduction by composing
/// (`compose`). `apply` and `compose` differ only for collections that edit by id.
#[inline]
pub fn then_reducer<T>(
    (first, first_overwrites): (Option<T>, bool),
    (second, second_overwrites): (Option<T>, bool),
    compose: impl FnOnce(&mut T, T),
    apply: impl FnOnce(&mut T, T),
) -> (Option<T>, bool) {
    match (first, second) {
        (_, Some(second)) if second_overwrites => (Some(second), true),
        (Some(mut first), Some(second)) => {
            if first_overwrites {
                apply(&mut first, second);
            } else {
                compose(&mut first, second);
            }
            (Some(first), first_overwrites)
        }
        (Some(first), None) => (Some(first), first_overwrites),
        (None, second) => (second, false),
    }
}

/// Parallel merge of a reducer slot that may be an overwrite (a fork's branches, in written
/// order): an overwrite on one side becomes the base, and the other side's reduction is applied
/// on top of it, whichever side comes first. Nothing is lost, and the result does not depend on
/// where the overwriting branch is written.
///
/// # Errors
/// [`MergeConflict`] when both sides overwrite the field.
#[inline]
pub fn merge_reducer<T>(
    (left, left_overwrites): (Option<T>, bool),
    (right, right_overwrites): (Option<T>, bool),
    field: &'static str,
    compose: impl FnOnce(&mut T, T),
    apply: impl FnOnce(&mut T, T),
) -> Result<(Option<T>, bool), MergeConflict> {
    match (left, right) {
        (Some(_), Some(_)) if left_overwrites && right_overwrites => {
            Err(MergeConflict::overwrite(field))
        }
        (Some(left), Some(mut right)) if right_overwrites => {
            apply(&mut right, left);
            Ok((Some(right), true))
        }
        (left, right) => Ok(then_reducer(
            (left, left_overwrites),
            (right, right_overwrites),
            compose,
            apply,
        )),
    }
}

/// The fields of an update that are overwrites, not reductions: bit `k` is the `k`-th reducer
/// field (`add`, `append`, `with`) in declaration order.
///
/// Serialized under [`OVERWRITE_KEY`](crate::state::OVERWRITE_KEY) as the list of the fields'
/// names, beside their values: `{"history": [...], "$overwrite": ["history"]}`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub struct Overwrites(u64);

impl Overwrites {
    /// No field overwritten.
    pub const NONE: Self = Self(0);

    /// The most reducer fields a state may have: one bit each.
    pub const MAX_FIELDS: usize = 64;

    /// Whether the `index`-th reducer field is overwritten.
    #[inline]
    #[must_use]
    pub const fn has(self, index: usize) -> bool {
        self.0 & (1 << index) != 0
    }

    /// Marks the `index`-th reducer field as overwritten (`true`) or reduced (`false`).
    #[inline]
    pub fn put(&mut self, index: usize, overwrites: bool) {
        if overwrites {
            self.0 |= 1 << index;
        } else {
            self.0 &= !(1 << index);
        }
    }

    /// Whether no field is overwritten: the key is left out of the JSON.
    #[inline]
    #[must_use]
    pub const fn is_none(&self) -> bool {
        self.0 == 0
    }

    /// Writes the overwritten fields' names, given the reducer fields' names in order.
    ///
    /// # Errors
    /// Whatever the serializer reports.
    pub fn write_names<S: serde::Serializer>(
        self,
        names: &[&str],
        serializer: S,
    ) -> Result<S::Ok, S::Error> {
        serializer.collect_seq(
            names
                .iter()
                .enumerate()
                .filter(|&(index, _)| self.has(index))
                .map(|(_, name)| name),
        )
    }

    /// Reads a list of field names back, given the reducer fields' names in order.
    ///
    /// # Errors
    /// A name that is not one of `names`, naming the state and listing the reducer fields.
    pub fn read_names<'de, D: Deserializer<'de>>(
        names: &[&str],
        state: &str,
        deserializer: D,
    ) -> Result<Self, D::Error> {
        let listed = Vec::<String>::deserialize(deserializer)?;
        let mut overwrites = Self::NONE;
        for name in &listed {
            let Some(index) = names.iter().position(|field| field == name) else {
                return Err(serde::de::Error::custom(format_args!(
                    "`{key}` names `{name}`, which is not a reducer field of `{state}` (only \
                     `add`, `append` and `with` fields can be overwritten; {state}'s are: {fields})",
                    key = crate::state::OVERWRITE_KEY,
                    fields = if names.is_empty() {
                        "none".to_string()
                    } else {
                        names.join(", ")
                    }
                )));
            };
            overwrites.put(index, true);
        }
        Ok(overwrites)
    }
}

/// Writes an overwrite into an `append` field: the field becomes the collection, in the state's
/// form (edits by id resolved).
#[inline]
pub fn overwrite_collection<C: Append>(field: &mut C, value: C) {
    *field = C::default();
    field.apply(value);
}

/// The `add` reducer.
#[inline]
pub fn add<T: Addable>(field: &mut T, increment: T) {
    field.add_increment(increment);
}

/// The `append` reducer.
#[inline]
pub fn append<C: Append>(field: &mut C, new: C) {
    field.append(new);
}

/// The `append` reducer, writing an update into the state.
#[inline]
pub fn append_to_state<C: Append>(field: &mut C, new: C) {
    field.apply(new);
}

/// Adds one item to an `append` slot.
#[inline]
pub fn push_item<C: Append>(slot: &mut Option<C>, item: C::Item) {
    slot.get_or_insert_with(C::default).push_item(item);
}

/// Appends a whole collection to an `append` slot; onto an overwrite, as onto the state.
#[inline]
pub fn append_collection<C: Append>(slot: &mut Option<C>, new: C, overwrites: bool) {
    match slot {
        Some(collection) if overwrites => collection.apply(new),
        Some(collection) => collection.append(new),
        None => *slot = Some(new),
    }
}

/// Adds many items to an `append` slot.
#[inline]
pub fn extend_items<C: Append>(slot: &mut Option<C>, items: impl IntoIterator<Item = C::Item>) {
    let collection = slot.get_or_insert_with(C::default);
    for item in items {
        collection.push_item(item);
    }
}

/// Implemented by nothing: what `set_<field>` of an `add` field requires, so that calling it is
/// an error that says what to call instead.
#[diagnostic::on_unimplemented(
    message = "an `add` field takes the increment, not the new total",
    label = "this would be taken as the total",
    note = "call `add_<field>(change)` with the change (`add_revisions(1)`): writes to an `add` \
            field are summed, so passing the total would count twice; to replace the value \
            (reset a counter), call `overwrite_<field>(value)`"
)]
pub trait AddFieldTakesIncrement {}

/// Implemented by nothing: what `set_<field>` of an `append` field requires, so that calling it
/// is an error that says what to call instead.
#[diagnostic::on_unimplemented(
    message = "an `append` field takes the new items, not the whole list",
    label = "this would be taken as the whole list",
    note = "call `push_<field>(item)` or `extend_<field>(items)` with the new items only: writes \
            to an `append` field are appended; to replace the whole list (trim a history), call \
            `overwrite_<field>(list)`"
)]
pub trait AppendFieldTakesItems {}

/// A field's value as template text; see [`SharedState::field_text`](crate::SharedState::field_text).
pub fn field_text<T: Serialize + ?Sized>(value: &T) -> Option<String> {
    match serde_json::to_value(value).ok()? {
        serde_json::Value::Null => None,
        serde_json::Value::String(text) => Some(text),
        other => Some(other.to_string()),
    }
}

/// Reads a present slot as written, so that `null` means "written `None`", not "not written".
///
/// # Errors
/// Whatever `T`'s deserializer reports.
pub fn deserialize_written<'de, T, D>(deserializer: D) -> Result<Option<T>, D::Error>
where
    T: Deserialize<'de>,
    D: Deserializer<'de>,
{
    T::deserialize(deserializer).map(Some)
}

// ---- flow! support -------------------------------------------------------------------------------

pub use crate::node::dispatch::{
    Branch, BranchFuture, BranchRunner, Composite, PhaseCell, Runner, StateType, Stepped,
};
pub use crate::text::{
    ActionSet, MAX_FLOW_ACTIONS, declares, first_unwired, str_eq, terminal_actions,
    terminal_actions_in,
};

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

/// What a `#[node]` function may return: a command, or a result of one.
#[diagnostic::on_unimplemented(
    message = "a `#[node]` function returns `Command<{S}>` or `Result<Command<{S}>, E>`, not `{Self}`",
    label = "this return type is not a node's",
    note = "`E` can be any error that converts into `slateflow::NodeError`"
)]
pub trait NodeOutput<S: crate::SharedState> {
    /// The command, or the error as a [`NodeError`](crate::NodeError).
    ///
    /// # Errors
    /// The function's error.
    fn into_result(self) -> Result<crate::Command<S>, crate::NodeError>;
}

impl<S: crate::SharedState> NodeOutput<S> for crate::Command<S> {
    #[inline]
    fn into_result(self) -> Result<crate::Command<S>, crate::NodeError> {
        Ok(self)
    }
}

impl<S: crate::SharedState, E: Into<crate::NodeError>> NodeOutput<S>
    for Result<crate::Command<S>, E>
{
    #[inline]
    fn into_result(self) -> Result<crate::Command<S>, crate::NodeError> {
        self.map_err(Into::into)
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
    note = "every node of a flow works on the same state type; implement `Node<{S}>`, use \
            `#[slateflow::node]` on a function, or wrap a closure with `slateflow::node::from_fn`"
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

// ---- Actions known to the type system --------------------------------------------------------------
//
// A node's `ACTIONS` is a value, which rustc reads only when it builds (monomorphizes) the flow, so
// that `flow!`'s `const` check of an edge's action is reported by `cargo build` and not by
// `cargo check` (nor by an editor). A `#[node]` also says its node's actions as trait impls, keyed
// by a hash of the action that the macros compute (`DeclaresAction<S, KEY>`), and `flow!` probes
// each edge with `(&&Edge::<_, _, KEY>::of(&state, &node)).__slateflow_declared()`: for a node
// that is `StaticActions<S>`, the method is `TypedEdge`'s, which requires `DeclaresAction<S, KEY>`,
// a trait bound that `cargo check` reports at the edge's action; for any other node (a `Node` impl
// without `#[node]`, a flow, a batch) it is `ConstEdge`'s, which requires nothing, and the `const`
// check remains.

/// A node over `S` that declares the action whose key is `KEY` (a hash of the action's text,
/// computed by the macros). Implemented by `#[node]`.
#[diagnostic::on_unimplemented(
    message = "the node `{Self}` does not declare this action",
    label = "`{Self}` never returns this action",
    note = "wire one of the actions the node declares (`a >> b` wires \"default\"), or add this \
            one to them: `#[node(actions = [...])]` on a function, `ACTIONS` in an impl"
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

// The runtime's wrappers declare what the node they wrap declares.
impl<S, N: StaticActions<S>> StaticActions<S> for std::sync::Arc<N> {}
#[diagnostic::do_not_recommend]
impl<S, N: DeclaresAction<S, KEY>, const KEY: u64> DeclaresAction<S, KEY> for std::sync::Arc<N> {}
impl<S, B: StaticActions<S>> StaticActions<S> for crate::batch::Batch<B> {}
#[diagnostic::do_not_recommend]
impl<S, B: DeclaresAction<S, KEY>, const KEY: u64> DeclaresAction<S, KEY>
    for crate::batch::Batch<B>
{
}
impl<S, F, P: StaticActions<S>> StaticActions<S> for crate::batch::BatchFlow<F, P> {}
#[diagnostic::do_not_recommend]
impl<S, F, P: DeclaresAction<S, KEY>, const KEY: u64> DeclaresAction<S, KEY>
    for crate::batch::BatchFlow<F, P>
{
}
impl<S, F, P: StaticActions<S>> StaticActions<S> for crate::batch::ConcurrentBatchFlow<F, P> {}
#[diagnostic::do_not_recommend]
impl<S, F, P: DeclaresAction<S, KEY>, const KEY: u64> DeclaresAction<S, KEY>
    for crate::batch::ConcurrentBatchFlow<F, P>
{
}
impl<S, B: StaticActions<S>> StaticActions<S> for crate::batch::KeptBatch<B> {}
#[diagnostic::do_not_recommend]
impl<S, B: DeclaresAction<S, KEY>, const KEY: u64> DeclaresAction<S, KEY>
    for crate::batch::KeptBatch<B>
{
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

// ---- #[node] support ---------------------------------------------------------------------------------

use std::future::Future;

use crate::node::{Command, Context, NodeError, RetriedBody, Retry, with_retries};

/// Runs a `#[node]` function's body under `retry`, sending a retry event before each wait and a
/// node-started event as each later attempt starts.
///
/// # Errors
/// The body's last error, with the number of attempts, for the run to report.
pub async fn retry_body<S, F, Fut>(
    retry: Retry,
    context: &Context<'_>,
    body: F,
) -> Result<Command<S>, NodeError>
where
    S: SharedState,
    F: FnMut() -> Fut,
    Fut: Future<Output = Result<Command<S>, NodeError>>,
{
    let emitter = context.emitter();
    with_retries(retry, body, |between| emitter.between(between, true))
        .await
        .map(|(command, attempts)| {
            context.record_attempts(attempts);
            command
        })
        .map_err(|(source, attempts)| Box::new(RetriedBody { attempts, source }) as NodeError)
}

// ---- prompt! support -----------------------------------------------------------------------------

use crate::state::{SharedState, field_index, nearest_field};
use crate::text::ConstText;

/// The compile-time check `prompt!` makes for each placeholder: `field` must be a field of `S`.
///
/// # Panics
/// At compile time, with a message naming the placeholder, the state type and the nearest field.
pub const fn check_placeholder<S: SharedState>(state: &str, field: &str) {
    if field_index(S::FIELDS, field).is_some() {
        return;
    }
    let mut message = ConstText::new()
        .push("the template placeholder `{")
        .push(field)
        .push("}` names no field of `")
        .push(state)
        .push("`");
    if let Some(candidate) = nearest_field(S::FIELDS, field) {
        message = message
            .push("; the nearest field is `")
            .push(candidate)
            .push("`");
    } else {
        message = message.push("; its fields are: ");
        let mut index = 0;
        while index < S::FIELDS.len() {
            if index > 0 {
                message = message.push(", ");
            }
            message = message.push(S::FIELDS[index].name());
            index += 1;
        }
    }
    panic!("{}", message.as_str());
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn last_write_slots() {
        assert_eq!(then_last_write(Some(1), Some(2)), Some(2));
        assert_eq!(then_last_write(Some(1), None), Some(1));
        assert_eq!(then_last_write(None::<i32>, None), None);
        assert_eq!(merge_last_write(Some(1), None, "x"), Ok(Some(1)));
        assert_eq!(merge_last_write(None, Some(2), "x"), Ok(Some(2)));
        assert_eq!(
            merge_last_write(Some(1), Some(1), "x"),
            Err(MergeConflict::new("x"))
        );
    }

    #[test]
    fn combine_reduces_only_when_both_are_written() {
        assert_eq!(combine(Some(1), Some(2), add), Some(3));
        assert_eq!(combine(None, Some(2), add), Some(2));
        assert_eq!(combine(Some(1), None, add), Some(1));
        assert_eq!(combine(None::<i32>, None, add), None);
    }

    #[test]
    fn field_text_renders_by_json_kind() {
        assert_eq!(field_text("plain"), Some("plain".to_string()));
        assert_eq!(field_text(&Some("inner")), Some("inner".to_string()));
        assert_eq!(field_text(&None::<String>), None);
        assert_eq!(field_text(&3_u8), Some("3".to_string()));
        assert_eq!(field_text(&0.5_f64), Some("0.5".to_string()));
        assert_eq!(field_text(&true), Some("true".to_string()));
        assert_eq!(
            field_text(&vec!["a", "b"]),
            Some(r#"["a","b"]"#.to_string())
        );
        // A map with non-string keys cannot become JSON: no text rather than a wrong one.
        let map = std::collections::BTreeMap::from([(vec![1], 2)]);
        assert_eq!(field_text(&map), None);
    }

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
