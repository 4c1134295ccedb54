#![doc = include_str!("../../README.md")]
#![forbid(unsafe_code)]
//!
//! # Modules
//! - [`state`]: the [`SharedState`] and [`StateUpdate`] traits and field metadata;
//! - [`node`](mod@node): the [`Node`] trait, [`Command`], [`Params`], [`Retry`];
//! - [`flow`](mod@flow): [`Flow`] and how to start a run; [`graph`]: a flow's shape, as JSON or
//!   Mermaid;
//! - `run` (private): the one run loop, node steps, and the hook through which a run is watched
//!   and recorded;
//! - [`event`]: what a run tells its observer; a channel for UIs and a `tracing` adapter;
//! - [`parallel`]: how forks run and merge; [`batch`]: batch nodes and batch flows;
//! - [`reducer`]: how writes combine, and the [`Addable`] and [`Append`] traits;
//! - [`checkpoint`]: where durable runs save their steps ([`checkpoint::FileStore`], ...);
//! - [`durable`]: durable runs: save, resume, pause, history;
//! - `worker` (feature `postgres`): workers on many machines that run the threads of one
//!   PostgreSQL database;
//! - the agent layer: [`message`] (messages, an editable conversation, per-agent histories),
//!   [`template`] (`{field}` prompts, checked by [`prompt!`]), [`model`] (the [`ChatModel`](model::ChatModel)
//!   trait, a scripted model, the OpenAI-compatible client with feature `openai`), [`tool`] (tools
//!   and toolboxes) and [`agent`] (the [`Agent`](agent::Agent) node and its tool loop);
//! - [`error`]: the errors;
//! - `example_generated` (in the documentation only): what the derive generates for an example state.

// Lets the crate's own documentation use the derive, whose output names `::slateflow`.
extern crate self as slateflow;

pub mod agent;
pub mod batch;
pub mod checkpoint;
pub mod durable;
pub mod error;
pub mod event;
pub mod flow;
pub mod graph;
pub mod node;
pub mod parallel;
pub mod reducer;
mod run;
pub mod state;
mod text;
#[cfg(feature = "postgres")]
pub mod worker;

#[cfg(doc)]
pub mod example_generated;

#[doc(hidden)]
#[path = "private/mod.rs"]
pub mod __private;

pub use error::{Error, MergeConflict, Phase};
pub use event::{Event, Observer};
pub use flow::Flow;
pub use graph::Graph;
pub use node::{Command, Context, DEFAULT_ACTION, Node, NodeError, Params, Retry, RetryHint};
pub use reducer::{Addable, Append, Reducer};
pub use state::{Field, SharedState, StateUpdate, UpdateOf};

/// Derives [`SharedState`] for a struct with named fields, and generates its update type.
///
/// See the [crate documentation](crate) for a tour, and [`reducer`] for the field attributes:
/// `#[reducer(add)]`, `#[reducer(append)]` and `#[reducer(with = path)]`; a field without one is
/// last-write-wins.
///
/// # What it generates
/// For `struct Triage`, with the struct's visibility and generics:
/// - `TriageUpdate`: one `Option` slot per field (`None`: not written), with chainable setters named
///   after the reducer: `set_<field>(value)` for last-write-wins fields, `add_<field>(increment)`,
///   `push_<field>(item)`, `extend_<field>(items)` and `append_<field>(collection)` for append fields, `reduce_<field>(value)` for
///   `with` fields; `new()`, `is_empty()`, `Default`, `Debug`, `Clone`, `Serialize`, `Deserialize`;
/// - `impl SharedState for Triage` and `impl StateUpdate for TriageUpdate`.
///
/// Every field must be serializable, or marked `#[serde(skip)]`: updates are logged and checkpointed.
/// A skipped field can still be written by an update; it is just not serialized. An update's JSON keys
/// are the Rust field names (the names templates and metadata use), whatever serde renames the state's
/// own fields to. Each slot has its field's visibility; the setters have the struct's.
///
/// # Container attributes
/// - `#[slateflow(crate = path)]`: where to find this crate, when your `Cargo.toml` renames it
///   (`flowlib = { package = "slateflow", ... }` needs `#[slateflow(crate = flowlib)]`).
/// - `#[slateflow(conversation)]`: implements [`agent::Conversation`] over the fields `messages`
///   and `histories` (both `#[reducer(append)]`), so that [`agent::Agent`] nodes can run on the
///   state; `conversation(messages = chat, histories = agents)` names other fields.
pub use slateflow_macros::SharedState;

/// The traits and the derive, for `use slateflow::prelude::*;`.
pub mod prelude {
    pub use crate::batch::{Batch, BatchNode, BatchPlan, BatchRun};
    pub use crate::{
        Command, Context, Flow, Node, NodeError, Params, Retry, SharedState, StateUpdate,
    };
    pub use crate::{flow, node, prompt};
}

/// Wires nodes into a [`Flow`], checking the graph at compile time.
///
/// ```text
/// flow! {
///     #![exhaustive]              // optional: a node with edges must wire every action it declares
///     start: a;                   // optional; otherwise the first node named starts
///     a >> b >> c;                // "default" edges; chains continue from the right-hand node
///     b - "retry" >> a;           // a named action edge; cycles are fine
///     c - "done" >> d;
///     d >> [e, f, g] >> h;        // parallel branches, merged in written order, then `h`
/// }
/// ```
///
/// Node names are local variables holding a [`Node`] (moved into the flow; share one with `Arc`).
/// A flow is a node too, so flows nest. `flow!{}`, `flow!()` and `flow![]` all work.
///
/// `[e, f, g]` is a fork: its branches (nodes or nested flows) run concurrently on the state as it
/// was before the fork, their updates merge through the reducers in the order written, and the
/// merged update is applied once; `>>` after the list is the join. A fork has no actions of its own
/// to route on (its action is `"default"`) and without a join it ends the flow. A flow with a fork
/// needs a `Clone` state, because a nested flow in a branch runs on its own copy. See
/// [`parallel`] for the rules (conflicts, failures, steps).
///
/// Checked while compiling, each error at the offending token: the grammar (including an empty or
/// one-branch fork, a node twice in a fork, a fork inside a fork, an action after a fork), the same
/// action of a node (or the join of a fork) wired twice, a node unreachable from the start, nodes
/// over different state types and a fork over a state that is not `Clone` (by
/// `cargo check`); an edge whose action the node does not declare (by `cargo check` for a node
/// whose actions the type system knows: a [`#[node]`](macro@node) function or a `Node` impl
/// marked `#[node]`; for other nodes, such as a nested flow, by `cargo build`, `cargo test` and
/// `cargo run`, which read the node's `ACTIONS` constant, a value that Rust evaluates only when it
/// generates code); and with `#![exhaustive]` a declared action without an edge (by
/// `cargo build`, for the same reason).
///
/// The generated code dispatches with a `match` on the node and the action: no boxing, no maps, no
/// state clone and no allocation per step (forks included: their branches are joined in place).
///
/// `#![exhaustive]` turns what PocketFlow warns about at run time ("Flow ends: 'x' not found") into a
/// compile error: every node that has edges must wire every action it declares. Nodes without edges
/// are the flow's exits, and end it with whatever they return.
///
/// A nested flow declares, as its [`ACTIONS`](Node::ACTIONS), the actions its nodes declare but it
/// does not wire: the actions it can end with, which the parent can route on.
#[macro_export]
macro_rules! flow {
    ($($tokens:tt)*) => {
        $crate::__private::flow_impl! { ($crate) $($tokens)* }
    };
}

/// A prompt template over a state, its `{field}` placeholders checked while compiling:
/// `prompt!(State, "... {field} ...")` is a [`template::Prompt<State>`].
///
/// `cargo check` reports a placeholder that names no field of the state, with the nearest field
/// ("the template placeholder `{clasification}` names no field of `Triage`; the nearest field is
/// `classification`"), and a brace that is neither a placeholder nor doubled (`{{`, `}}`). The
/// state must be a concrete type (a `const` checks each placeholder, and cannot see a function's
/// type parameters). See [`template`] for how it renders.
///
/// ```
/// # use serde::{Deserialize, Serialize};
/// use slateflow::{SharedState, prompt};
///
/// #[derive(SharedState, Debug, Default, Serialize, Deserialize)]
/// struct Triage {
///     alert_text: String,
///     severity: Option<String>,
/// }
///
/// let human = prompt!(Triage, "Alert: {alert_text} (severity {severity})");
/// let state = Triage { alert_text: "port scan".into(), severity: None };
/// assert_eq!(human.render(&state), "Alert: port scan (severity {severity})");
/// ```
///
/// ```compile_fail
/// # use serde::{Deserialize, Serialize};
/// # use slateflow::{SharedState, prompt};
/// # #[derive(SharedState, Debug, Default, Serialize, Deserialize)]
/// # struct Triage { alert_text: String }
/// let human = prompt!(Triage, "Alert: {alert}"); // no field `alert`
/// ```
#[macro_export]
macro_rules! prompt {
    ($($tokens:tt)*) => {
        $crate::__private::prompt_impl! { ($crate) $($tokens)* }
    };
}

/// Turns a function into a [`Node`]: `#[node]` or `#[node(actions = ["a", "b"])]`; on a `Node`
/// impl, tells `cargo check` the node's actions.
///
/// The function takes `&State` (and optionally `&Context<'_>` second), may be `async`, and returns
/// `Command<State>`, or `Result<Command<State>, E>` for any `E` that converts into [`NodeError`]. It becomes a unit struct
/// of the same name whose whole body runs as the node's [`post`](Node::post): it reads the state and
/// returns the command.
///
/// Retry options make the body retried and timed out as [`Retry`] does for `exec`:
/// `#[node(attempts = 3, wait = "200ms", backoff = 2.0, max_wait = "5s", timeout = "30s",
/// retry_if = path, max_retry_after = "30s")]`. `attempts` counts every attempt (3 means up to two
/// retries), durations are written `"200ms"`, `"30s"`, `"2m"`, `backoff` multiplies the wait after
/// each attempt (up to `max_wait`), `timeout` bounds each attempt (an `async` body is stopped at its
/// next `.await`), `retry_if` names a `fn(&NodeError) -> bool` that picks the errors worth another
/// attempt (by default all of them, except a [`ModelError`] that says it is permanent), and
/// `max_retry_after` caps the wait an endpoint's `Retry-After` can ask for (a minute by default;
/// see [`Retry::wait_for`]). The body only reads the state, so running it again is as safe as
/// retrying `exec`.
///
/// ```
/// # use serde::{Deserialize, Serialize};
/// use slateflow::agent::ModelError;
/// use slateflow::{Command, SharedState, node};
///
/// # #[derive(SharedState, Debug, Default, Serialize, Deserialize)]
/// # struct Ticket { reply: Option<String> }
/// #[node(attempts = 3, wait = "10ms", timeout = "30s")]
/// async fn draft(ticket: &Ticket) -> Result<Command<Ticket>, ModelError> {
///     // A model call would go here; a 429 or a 503 is tried again, a 400 is not.
///     Ok(Command::new(Ticket::update().set_reply(Some("On it.".into()))))
/// }
/// # let mut ticket = Ticket::default();
/// # slateflow::flow! { draft; }.run_blocking(&mut ticket)?;
/// # assert_eq!(ticket.reply.as_deref(), Some("On it."));
/// # Ok::<(), slateflow::Error>(())
/// ```
///
/// ```
/// use serde::{Deserialize, Serialize};
/// use slateflow::{Command, NodeError, SharedState, node};
///
/// #[derive(SharedState, Debug, Default, Serialize, Deserialize)]
/// struct Ticket {
///     text: String,
///     #[reducer(append)]
///     log: Vec<String>,
/// }
///
/// #[node(actions = ["urgent", "normal"])]
/// async fn route(ticket: &Ticket) -> Result<Command<Ticket>, NodeError> {
///     let urgent = ticket.text.contains("down");
///     let update = Ticket::update().push_log(format!("urgent: {urgent}"));
///     Ok(Command::new(update).with_action(if urgent { "urgent" } else { "normal" }))
/// }
///
/// let mut ticket = Ticket { text: "site is down".into(), ..Ticket::default() };
/// assert_eq!(slateflow::flow! { route; }.run_blocking(&mut ticket)?, "urgent");
/// # Ok::<(), slateflow::Error>(())
/// ```
///
/// # On a `Node` impl
/// `#[node]` on `impl Node<State> for Type` (or on an impl of `BatchNode` or `BatchPlan`, whose
/// batches declare the same actions) leaves the impl as it is and tells the type system its
/// `ACTIONS`, written as a list of string literals (or absent: `"default"`). `flow!` then checks
/// each edge leaving the node while rustc type-checks, so that `cargo check`, and so an editor,
/// reports an action the node does not declare, at the action; without `#[node]`, a node's edges
/// are checked when the flow is built (`cargo build`, `test`, `run`). The same goes for `#[node]`
/// functions, which always declare their actions so. An [`Arc`](std::sync::Arc) of a node
/// declares what the node declares.
/// On an impl, the only option is `crate = path`: the retry policy is the impl's
/// [`retry`](Node::retry).
///
/// ```
/// # use serde::{Deserialize, Serialize};
/// use slateflow::{Command, Context, Node, NodeError, SharedState, flow, node};
///
/// # #[derive(SharedState, Debug, Default, Serialize, Deserialize)]
/// # struct Ticket { text: String }
/// struct Triage;
///
/// #[node]
/// impl Node<Ticket> for Triage {
///     type Prep = bool;
///     type Exec = bool;
///     const ACTIONS: &'static [&'static str] = &["urgent", "normal"];
///
///     async fn prep(&self, ticket: &Ticket, _: &Context<'_>) -> Result<bool, NodeError> {
///         Ok(ticket.text.contains("down"))
///     }
///
///     async fn exec(&self, down: &bool) -> Result<bool, NodeError> {
///         Ok(*down) // a model call in real life
///     }
///
///     async fn post(
///         &self,
///         _: &Ticket,
///         _: bool,
///         urgent: bool,
///         _: &Context<'_>,
///     ) -> Result<Command<Ticket>, NodeError> {
///         Ok(Command::goto(if urgent { "urgent" } else { "normal" }))
///     }
/// }
///
/// # #[node] fn page(_: &Ticket) -> Command<Ticket> { Command::default() }
/// let triage = Triage;
/// // `triage - "urgnet" >> page` would be an error in `cargo check`, at "urgnet".
/// let flow = flow! { triage - "urgent" >> page; };
/// let mut ticket = Ticket { text: "site is down".into() };
/// assert_eq!(flow.run_blocking(&mut ticket)?, "default");
/// # Ok::<(), slateflow::Error>(())
/// ```
pub use slateflow_macros::node;
