//! LLM-agent workflows as typed graphs: a shared state whose fields merge by reducer, nodes wired
//! at compile time, runs that survive a crash and pause for a person.
//!
//! Declare the state once with [`#[derive(SharedState)]`](derive@SharedState), write small steps
//! as [`#[node]`](macro@node) functions (or [`Node`] impls: `prep`, `exec`, `post`), wire them with
//! [`flow!`], and run the flow: plainly, watched, over batches, or durably, saving every step to a
//! [`checkpoint`] store so that a killed run resumes where it stopped.
//!
//! # To do this, call that
//!
//! | to do this | call |
//! |---|---|
//! | [declare the state](#declare-the-state) | `#[derive(SharedState)]` on a struct |
//! | [write a step](#write-a-step) | `#[node] fn name(state: &State) -> Command<State>` |
//! | [wire steps into a flow](#wire-steps-into-a-flow) | `flow! { a >> b - "action" >> c; }` |
//! | [run a flow](#run-a-flow) | `flow.run(&mut state).await` |
//! | [run it from synchronous code](#run-it-from-synchronous-code) | `flow.run_blocking(&mut state)` |
//! | [give its nodes params](#give-its-nodes-params) | `flow.with_params(params)` |
//! | [watch its events](#watch-its-events) | `flow.observe(observer).run(&mut state).await` |
//! | [emit an event from a node](#emit-an-event-from-a-node) | `context.emit(name, &data)` |
//! | [retry a node's work](#retry-a-nodes-work) | `#[node(attempts = 3)]`, or `Node::retry` |
//! | [run a node once per item](#run-a-node-once-per-item) | `Batch::items(node).concurrent(8)` |
//! | [run a flow once per params item](#run-a-flow-once-per-params-item) | `Batch::flow(sub_flow, plan)` |
//! | [start a durable run](#start-a-durable-run) | `flow.durable(store).start(thread, &mut state).await` |
//! | [resume it after a crash](#resume-it-after-a-crash) | `durable.resume(thread).await` |
//! | [answer a pause](#answer-a-pause) | `durable.answer(thread, &pause.key, update).await` |
//! | [do all of that from synchronous code](#do-all-of-that-from-synchronous-code) | `durable.blocking()?`, then the same calls |
//! | [let a model answer in a node](#let-a-model-answer-in-a-node) | `Agent::new(model)`, a node |
//!
//! Longer answers (messages between agents, map-reduce with a progress bar, approvals from a
//! command line, a supervisor, a flow's document, clients kept across resumes) are in the
//! [cookbook](_cookbook).
//!
//! Each row, as code:
//!
//! ### Declare the state
//! Fields without a reducer are last-write-wins; `add` fields take increments, `append` fields
//! take new items. The derive writes the update type, `CountUpdate`, with a setter per field.
//! ```
//! use serde::{Deserialize, Serialize};
//! use slateflow::SharedState;
//!
//! #[derive(SharedState, Debug, Default, Serialize, Deserialize)]
//! struct Count {
//!     label: String,
//!     #[reducer(add)]
//!     n: u32,
//!     #[reducer(append)]
//!     log: Vec<String>,
//! }
//!
//! let mut count = Count::default();
//! count.apply(Count::update().set_label("total".into()).add_n(2).push_log("two".into()));
//! count.apply(Count::update().add_n(3));
//! assert_eq!((count.label.as_str(), count.n, count.log.len()), ("total", 5, 1));
//! ```
//!
//! ### Write a step
//! A node reads the state and returns a [`Command`]: the update to apply and the action that picks
//! the next node.
//! ```
//! # use serde::{Deserialize, Serialize};
//! use slateflow::{Command, SharedState, node};
//! # #[derive(SharedState, Debug, Default, Serialize, Deserialize)]
//! # struct Count { #[reducer(add)] n: u32 }
//!
//! #[node(actions = ["again", "done"])]
//! fn bump(count: &Count) -> Command<Count> {
//!     let action = if count.n < 2 { "again" } else { "done" };
//!     Command::new(Count::update().add_n(1)).with_action(action)
//! }
//! ```
//!
//! ### Wire steps into a flow
//! Checked while compiling: an action the node does not declare, a node nobody reaches, two edges
//! for one action are errors at your token.
//! ```
//! # use serde::{Deserialize, Serialize};
//! # use slateflow::{Command, SharedState, flow, node};
//! # #[derive(SharedState, Debug, Default, Serialize, Deserialize)]
//! # struct Count { #[reducer(add)] n: u32 }
//! # #[node(actions = ["again", "done"])]
//! # fn bump(count: &Count) -> Command<Count> {
//! #     Command::new(Count::update().add_n(1)).with_action(if count.n < 2 { "again" } else { "done" })
//! # }
//! # #[node] fn report(_: &Count) -> Command<Count> { Command::default() }
//! let flow = flow! {
//!     bump - "again" >> bump;
//!     bump - "done" >> report;
//! };
//! println!("{}", flow.mermaid());
//! ```
//!
//! ### Run a flow
//! ```
//! # use serde::{Deserialize, Serialize};
//! # use slateflow::{Command, SharedState, flow, node};
//! # #[derive(SharedState, Debug, Default, Serialize, Deserialize)]
//! # struct Count { #[reducer(add)] n: u32 }
//! # #[node] fn bump(_: &Count) -> Command<Count> { Command::new(Count::update().add_n(1)) }
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() -> Result<(), slateflow::Error> {
//! let flow = flow! { bump; };
//! let mut count = Count::default();
//! let action = flow.run(&mut count).await?;
//! assert_eq!((action, count.n), ("default", 1));
//! # Ok(())
//! # }
//! ```
//!
//! ### Run it from synchronous code
//! On a runtime of its own, with IO and timers (any client works inside a node). Inside a tokio
//! runtime it returns [`Error::BlockingInRuntime`]: `.await` [`Flow::run`] there.
//! ```
//! # use serde::{Deserialize, Serialize};
//! # use slateflow::{Command, SharedState, flow, node};
//! # #[derive(SharedState, Debug, Default, Serialize, Deserialize)]
//! # struct Count { #[reducer(add)] n: u32 }
//! # #[node] fn bump(_: &Count) -> Command<Count> { Command::new(Count::update().add_n(1)) }
//! let mut count = Count::default();
//! flow! { bump; }.run_blocking(&mut count)?;
//! assert_eq!(count.n, 1);
//! # Ok::<(), slateflow::Error>(())
//! ```
//!
//! ### Give its nodes params
//! ```
//! # use serde::{Deserialize, Serialize};
//! use slateflow::{Command, Context, Params, SharedState, flow, node};
//! # #[derive(SharedState, Debug, Default, Serialize, Deserialize)]
//! # struct Reply { model: String }
//!
//! #[node]
//! fn answer(_: &Reply, context: &Context<'_>) -> Command<Reply> {
//!     let model = context.params().get_str("model").unwrap_or("none").to_string();
//!     Command::new(Reply::update().set_model(model))
//! }
//!
//! let flow = flow! { answer; }.with_params(Params::new().with("model", "small"));
//! let mut reply = Reply::default();
//! flow.run_blocking(&mut reply)?;
//! assert_eq!(reply.model, "small");
//! # Ok::<(), slateflow::Error>(())
//! ```
//!
//! ### Watch its events
//! An [`Observer`] (here a closure, [`event::from_fn`]) sees every step as it happens; a run
//! nobody watches builds no events at all. The same observer watches durable runs:
//! `flow.observe(observer).durable(store)`.
//! ```
//! # use serde::{Deserialize, Serialize};
//! # use slateflow::{Command, SharedState, flow, node};
//! # #[derive(SharedState, Debug, Default, Serialize, Deserialize)]
//! # struct Count { #[reducer(add)] n: u32 }
//! # #[node] fn bump(_: &Count) -> Command<Count> { Command::new(Count::update().add_n(1)) }
//! use slateflow::event::{self, Event};
//!
//! let printer = event::from_fn(|event: &Event<'_>| println!("{event}"));
//! flow! { bump; }.observe(printer).run_blocking(&mut Count::default())?;
//! # Ok::<(), slateflow::Error>(())
//! ```
//!
//! ### Emit an event from a node
//! ```
//! # use serde::{Deserialize, Serialize};
//! use slateflow::{Command, Context, SharedState, node};
//! # #[derive(SharedState, Debug, Default, Serialize, Deserialize)]
//! # struct Count { #[reducer(add)] n: u32 }
//!
//! #[node]
//! fn bump(_: &Count, context: &Context<'_>) -> Command<Count> {
//!     context.emit("progress", &serde_json::json!({ "done": 1 }));
//!     Command::new(Count::update().add_n(1))
//! }
//! ```
//!
//! ### Retry a node's work
//! `attempts` counts every attempt; a [`RetryHint`] error (a model endpoint's 400, say) that says
//! another attempt cannot help fails at once, and one that says how long to wait is waited for.
//! ```
//! # use serde::{Deserialize, Serialize};
//! use slateflow::agent::ModelError;
//! use slateflow::{Command, SharedState, node};
//! # #[derive(SharedState, Debug, Default, Serialize, Deserialize)]
//! # struct Ticket { reply: Option<String> }
//!
//! #[node(attempts = 3, wait = "200ms", timeout = "30s")]
//! async fn draft(ticket: &Ticket) -> Result<Command<Ticket>, ModelError> {
//!     Ok(Command::new(Ticket::update().set_reply(Some("On it.".into())))) // a model call here
//! }
//! ```
//!
//! ### Run a node once per item
//! See [`batch`] for the [`BatchNode`](batch::BatchNode) it runs; the outputs stay in input
//! order.
//! ```
//! # use serde::{Deserialize, Serialize};
//! use slateflow::batch::{Batch, BatchNode};
//! use slateflow::{Command, Context, NodeError, SharedState, flow};
//! # #[derive(SharedState, Debug, Default, Serialize, Deserialize)]
//! # struct Docs { names: Vec<String>, #[reducer(append)] sizes: Vec<usize> }
//! # struct Measure;
//! # impl BatchNode<Docs> for Measure {
//! #     type Item = String;
//! #     type Output = usize;
//! #     async fn prep(&self, docs: &Docs, _: &Context<'_>) -> Result<Vec<String>, NodeError> { Ok(docs.names.clone()) }
//! #     async fn exec(&self, name: &String) -> Result<usize, NodeError> { Ok(name.len()) }
//! #     async fn post(&self, _: &Docs, _: Vec<String>, sizes: Vec<usize>, _: &Context<'_>) -> Result<Command<Docs>, NodeError> {
//! #         Ok(Command::new(Docs::update().extend_sizes(sizes)))
//! #     }
//! # }
//! let measure = Batch::items(Measure).concurrent(8);
//! let mut docs = Docs { names: vec!["a.md".into(), "notes.txt".into()], ..Docs::default() };
//! flow! { measure; }.run_blocking(&mut docs)?;
//! assert_eq!(docs.sizes, [4, 9]);
//! # Ok::<(), slateflow::Error>(())
//! ```
//!
//! ### Run a flow once per params item
//! ```
//! # use serde::{Deserialize, Serialize};
//! use slateflow::batch::{self, Batch};
//! use slateflow::{Command, Context, Params, SharedState, flow, node};
//! # #[derive(SharedState, Debug, Default, Serialize, Deserialize)]
//! # struct Docs { names: Vec<String>, #[reducer(append)] seen: Vec<String> }
//!
//! #[node]
//! fn read(_: &Docs, context: &Context<'_>) -> Command<Docs> {
//!     let name = context.params().get_str("name").unwrap_or_default().to_string();
//!     Command::new(Docs::update().push_seen(name))
//! }
//!
//! let plan = batch::from_fn(|docs: &Docs| {
//!     docs.names.iter().map(|name| Params::new().with("name", name.as_str())).collect()
//! });
//! let each = Batch::flow(flow! { read; }, plan);
//! let mut docs = Docs { names: vec!["a.md".into(), "b.md".into()], ..Docs::default() };
//! flow! { each; }.run_blocking(&mut docs)?;
//! assert_eq!(docs.seen, ["a.md", "b.md"]);
//! # Ok::<(), slateflow::Error>(())
//! ```
//!
//! ### Start a durable run
//! Every step is saved before the next begins ([`checkpoint::FileStore`] keeps a directory of
//! files; `SqliteStore` and `PostgresStore` come with features `sqlite` and `postgres`).
//! ```
//! # use serde::{Deserialize, Serialize};
//! # use slateflow::{Command, SharedState, flow, node};
//! # #[derive(SharedState, Debug, Default, Serialize, Deserialize)]
//! # struct Count { #[reducer(add)] n: u32 }
//! # #[node] fn bump(_: &Count) -> Command<Count> { Command::new(Count::update().add_n(1)) }
//! use slateflow::checkpoint::FileStore;
//! use slateflow::durable::Outcome;
//!
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() -> Result<(), slateflow::Error> {
//! # let dir = std::env::temp_dir().join(format!("slateflow-doc-start-{}", std::process::id()));
//! let flow = flow! { bump; };
//! let durable = flow.durable(FileStore::open(&dir)?);
//! let outcome = durable.start("count-1", &mut Count::default()).await?;
//! assert_eq!(outcome, Outcome::Finished("default".into()));
//! # std::fs::remove_dir_all(&dir).unwrap();
//! # Ok(())
//! # }
//! ```
//!
//! ### Resume it after a crash
//! The state is rebuilt from the store and the run goes on after the last saved step; no saved
//! step runs again.
//! ```
//! # use serde::{Deserialize, Serialize};
//! # use slateflow::{Command, SharedState, flow, node};
//! # #[derive(SharedState, Debug, Default, Serialize, Deserialize)]
//! # struct Count { #[reducer(add)] n: u32 }
//! # #[node] fn bump(_: &Count) -> Command<Count> { Command::new(Count::update().add_n(1)) }
//! # use slateflow::checkpoint::MemoryStore;
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() -> Result<(), slateflow::Error> {
//! # let flow = flow! { bump; };
//! # let durable = flow.durable(MemoryStore::new()).interrupt_before(&["bump"]);
//! # durable.start("count-1", &mut Count::default()).await?;
//! let (count, outcome) = durable.resume("count-1").await?;
//! assert_eq!(count.n, 1);
//! # Ok(())
//! # }
//! ```
//!
//! ### Answer a pause
//! A node asks with [`Command::ask`]; the run pauses after it, and the answer is an update.
//! ```
//! # use serde::{Deserialize, Serialize};
//! use slateflow::checkpoint::MemoryStore;
//! use slateflow::durable::Outcome;
//! use slateflow::{Command, SharedState, flow, node};
//!
//! # #[derive(SharedState, Debug, Default, Serialize, Deserialize)]
//! # struct Refund { approved: Option<bool>, paid: bool }
//! #[node]
//! fn check(_: &Refund) -> Command<Refund> {
//!     Command::default().ask("Pay back 120 EUR?")
//! }
//!
//! #[node]
//! fn pay(refund: &Refund) -> Command<Refund> {
//!     Command::new(Refund::update().set_paid(refund.approved == Some(true)))
//! }
//!
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() -> Result<(), slateflow::Error> {
//! let flow = flow! { check >> pay; };
//! let durable = flow.durable(MemoryStore::new());
//! let outcome = durable.start("refund-1", &mut Refund::default()).await?;
//! let pause = &outcome.pauses()[0];
//! durable.answer("refund-1", &pause.key, Refund::update().set_approved(Some(true))).await?;
//! let (refund, _) = durable.resume("refund-1").await?;
//! assert!(refund.paid);
//! # Ok(())
//! # }
//! ```
//!
//! ### Do all of that from synchronous code
//! [`Durable::blocking`](durable::Durable::blocking) gives the same calls on a runtime of their
//! own: a command-line tool that asks a person needs no `async`.
//! ```
//! # use serde::{Deserialize, Serialize};
//! # use slateflow::checkpoint::MemoryStore;
//! # use slateflow::{Command, SharedState, flow, node};
//! # #[derive(SharedState, Debug, Default, Serialize, Deserialize)]
//! # struct Refund { approved: Option<bool>, paid: bool }
//! # #[node] fn check(_: &Refund) -> Command<Refund> { Command::default().ask("Pay back 120 EUR?") }
//! # #[node] fn pay(refund: &Refund) -> Command<Refund> { Command::new(Refund::update().set_paid(refund.approved == Some(true))) }
//! let flow = flow! { check >> pay; };
//! let durable = flow.durable(MemoryStore::new()).blocking()?;
//! let outcome = durable.start("refund-1", &mut Refund::default())?;
//! let pause = &outcome.pauses()[0];
//! durable.answer("refund-1", &pause.key, Refund::update().set_approved(Some(true)))?;
//! let (refund, _) = durable.resume("refund-1")?;
//! assert!(refund.paid);
//! # Ok::<(), slateflow::Error>(())
//! ```
//!
//! ### Let a model answer in a node
//! An [`Agent`](agent::Agent) prompts a [`ChatModel`](agent::ChatModel) from the state, runs the
//! tools it calls, and writes the conversation back; [`ScriptedModel`](agent::ScriptedModel)
//! answers offline, `OpenAi` (feature `openai`) over HTTP.
//! ```
//! use serde::{Deserialize, Serialize};
//! use slateflow::agent::{Agent, Histories, Message, ScriptedModel};
//! use slateflow::{SharedState, flow};
//!
//! #[derive(SharedState, Clone, Debug, Default, Serialize, Deserialize)]
//! #[slateflow(conversation)]
//! struct Chat {
//!     #[reducer(append)]
//!     messages: Vec<Message>,
//!     #[reducer(append)]
//!     histories: Histories,
//! }
//!
//! let assistant = Agent::new(ScriptedModel::new().reply("Hello!"));
//! let mut chat = Chat { messages: vec![Message::human("Hi")], ..Chat::default() };
//! flow! { assistant; }.run_blocking(&mut chat)?;
//! assert_eq!(chat.messages[1].content(), "Hello!");
//! # Ok::<(), slateflow::Error>(())
//! ```
//!
//! # Modules
//! - [`state`]: the [`SharedState`] and [`StateUpdate`] traits and field metadata; [`reducer`]: how
//!   writes combine;
//! - [`node`](mod@node): the [`Node`] trait, [`Command`], [`Context`], [`Params`], [`Retry`];
//! - [`flow`](mod@flow): [`Flow`] and how to run it; [`graph`]: a flow's shape, as JSON or Mermaid;
//! - [`parallel`]: how forks run and merge; [`batch`]: batches of items and batch flows;
//! - [`event`]: what a run tells its observer; a channel for UIs and a `tracing` adapter;
//! - [`durable`]: durable runs: save, resume, pause, history; [`checkpoint`]: the stores;
//! - `worker` (feature `postgres`): workers on many machines that run the threads of one
//!   PostgreSQL database;
//! - [`agent`]: messages, `{field}` templates (checked by [`prompt!`]), chat models (recorded and
//!   replayed offline), tools (approved by a person when they must be; an MCP server's, with
//!   feature `mcp`) and the [`Agent`](agent::Agent) node, which may route;
//! - [`error`]: the errors;
//! - `example_generated` (in the documentation only): what the derive generates for an example
//!   state.
//!
//! Inside, the run's loop (`run`) owns steps, forks and composite steps and knows durability only
//! through its journal; generated code reaches the runtime through one hidden module.
#![forbid(unsafe_code)]
// On docs.rs (nightly), each item behind a feature says which feature it needs.
#![cfg_attr(docsrs, feature(doc_cfg))]

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
#[cfg(feature = "studio")]
pub mod studio;
mod text;
#[cfg(feature = "postgres")]
pub mod worker;

#[cfg(doc)]
pub mod example_generated;

#[cfg(doc)]
#[path = "cookbook.rs"]
pub mod _cookbook;

#[doc(hidden)]
#[path = "private/mod.rs"]
pub mod __private;

/// The README's code, tested as the rest of the documentation is, with the feature its worker
/// examples need (`cargo test --workspace` turns it on).
#[cfg(all(doctest, feature = "postgres"))]
#[doc = include_str!("../../README.md")]
struct ReadmeDoctests;

pub use error::{Error, MergeConflict, Phase};
pub use event::{Event, Observer};
pub use flow::Flow;
pub use graph::Graph;
pub use node::{Command, Context, DEFAULT_ACTION, Node, NodeError, Params, Retry, RetryHint};
pub use reducer::{Addable, Append, Reducer};
pub use state::{Field, SharedState, StateUpdate, UpdateOf};

/// Derives [`SharedState`] for a struct with named fields, and generates its update type.
///
/// ```
/// use serde::{Deserialize, Serialize};
/// use slateflow::{SharedState, StateUpdate};
///
/// #[derive(SharedState, Clone, Debug, Default, Serialize, Deserialize)]
/// struct Ticket {
///     text: String,              // last write wins
///     #[reducer(add)]
///     replies: u32,              // an update carries an increment
///     #[reducer(append)]
///     log: Vec<String>,          // an update carries new items
/// }
///
/// fn main() -> Result<(), slateflow::MergeConflict> {
///     let mut ticket = Ticket { text: "site is down".into(), ..Ticket::default() };
///     // What a node returns: only what it writes, through the generated `TicketUpdate`.
///     let update: TicketUpdate = Ticket::update().add_replies(1).push_log("acknowledged".into());
///     ticket.apply(update);
///     // Two branches' updates merge; a last-write-wins field written by both is a conflict.
///     let a = Ticket::update().add_replies(1);
///     let b = Ticket::update().add_replies(2).push_log("escalated".into());
///     ticket.apply(a.merge(b)?);
///     assert_eq!((ticket.replies, ticket.log.len()), (4, 2));
///     Ok(())
/// }
/// ```
///
/// See the [crate documentation](crate) for a tour, and [`reducer`] for the field attributes:
/// `#[reducer(add)]`, `#[reducer(append)]`, `#[reducer(queue)]` (on a [`reducer::Queue`]) and
/// `#[reducer(with = path)]`; a field without one is last-write-wins.
///
/// # What it generates
/// For `struct Triage`, with the struct's visibility and generics:
/// - `TriageUpdate`: one `Option` slot per field (`None`: not written), with chainable setters named
///   after the reducer: `set_<field>(value)` for last-write-wins fields, `add_<field>(increment)`,
///   `push_<field>(item)`, `extend_<field>(items)` and `append_<field>(collection)` for append
///   fields, `push_<field>(item)`, `extend_<field>(items)` and `take_<field>(count)` for queue
///   fields, `reduce_<field>(value)` for `with` fields, and `overwrite_<field>(value)` for every
///   field with a reducer; `new()`, `is_empty()`, `Default`, `Debug`, `Clone`, `Serialize`, `Deserialize`;
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
/// ```
/// use serde::{Deserialize, Serialize};
/// use slateflow::{Command, SharedState, flow, node};
///
/// #[derive(SharedState, Clone, Debug, Default, Serialize, Deserialize)]
/// struct Draft {
///     text: String,
///     #[reducer(add)]
///     revisions: u32,
/// }
///
/// #[node]
/// fn write(draft: &Draft) -> Command<Draft> {
///     Command::new(Draft::update().set_text(format!("{} more", draft.text)).add_revisions(1))
/// }
///
/// /// Sends the draft back until it has two revisions.
/// #[node(actions = ["revise", "done"])]
/// fn review(draft: &Draft) -> Command<Draft> {
///     Command::goto(if draft.revisions < 2 { "revise" } else { "done" })
/// }
///
/// #[node]
/// fn publish(_: &Draft) -> Command<Draft> {
///     Command::new(Draft::update())
/// }
///
/// fn main() -> Result<(), slateflow::Error> {
///     let flow = flow! {
///         write >> review;
///         review - "revise" >> write;   // a cycle
///         review - "done" >> publish;
///     };
///     let mut draft = Draft { text: "draft".into(), ..Draft::default() };
///     flow.run_blocking(&mut draft)?;
///     assert_eq!((draft.text.as_str(), draft.revisions), ("draft more more", 2));
///     Ok(())
/// }
/// ```
///
/// The grammar:
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
/// `prompt!(State, "... {field} ...")` is a [`Prompt<State>`](agent::Prompt).
///
/// `cargo check` reports a placeholder that names no field of the state, with the nearest field
/// ("the template placeholder `{clasification}` names no field of `Triage`; the nearest field is
/// `classification`"), and a brace that is neither a placeholder nor doubled (`{{`, `}}`). The
/// state must be a concrete type (a `const` checks each placeholder, and cannot see a function's
/// type parameters). See [`agent::template`] for how it renders.
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
/// ```
/// use serde::{Deserialize, Serialize};
/// use slateflow::{Command, Context, SharedState, flow, node};
///
/// #[derive(SharedState, Clone, Debug, Default, Serialize, Deserialize)]
/// struct Ticket {
///     text: String,
///     team: Option<String>,
/// }
///
/// /// Routes a ticket; the flow wires each action it declares.
/// #[node(actions = ["urgent", "normal"])]
/// fn triage(ticket: &Ticket, context: &Context<'_>) -> Command<Ticket> {
///     let urgent = ticket.text.contains("down");
///     let action = if urgent { "urgent" } else { "normal" };
///     Command::goto(action).with_reason(format!("step {}: {}", context.step(), ticket.text))
/// }
///
/// #[node]
/// fn page(_: &Ticket) -> Command<Ticket> {
///     Command::new(Ticket::update().set_team(Some("on-call".into())))
/// }
///
/// #[node]
/// async fn queue(_: &Ticket) -> Command<Ticket> {
///     Command::new(Ticket::update().set_team(Some("support".into())))
/// }
///
/// fn main() -> Result<(), slateflow::Error> {
///     let flow = flow! {
///         triage - "urgent" >> page;
///         triage - "normal" >> queue;
///     };
///     let mut ticket = Ticket { text: "site is down".into(), ..Ticket::default() };
///     flow.run_blocking(&mut ticket)?;
///     assert_eq!(ticket.team.as_deref(), Some("on-call"));
///     Ok(())
/// }
/// ```
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
/// attempt, and `max_retry_after` caps the wait an endpoint's `Retry-After` can ask for (a minute
/// by default; see [`Retry::wait_for`]). When the function's error type `E` implements
/// [`RetryHint`] (as [`ModelError`](agent::ModelError) does), its policy reads `E`'s hints
/// ([`Retry::hints`]): an error that says another attempt cannot help fails at once, and the wait
/// it asks for is honoured; otherwise every error is retried. The body only reads the state, so
/// running it again is as safe as retrying `exec`.
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
