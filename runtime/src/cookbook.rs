//! Recipes: short answers to "how do I ...?", each a whole program, tested with the rest of the
//! documentation. The longer programs they come from are in the repository's
//! [`examples/`](https://github.com/slateflow/slateflow/tree/main/examples), and CI runs them.
//!
//! - [Pass messages between agents](#pass-messages-between-agents)
//! - [Map over many items and reduce, with a progress bar](#map-over-many-items-and-reduce-with-a-progress-bar)
//! - [Ask a person, from a command-line program](#ask-a-person-from-a-command-line-program)
//! - [Route among agents with a supervisor](#route-among-agents-with-a-supervisor)
//! - [Read a flow's document and its initial state](#read-a-flows-document-and-its-initial-state)
//! - [Keep a client or a channel in the state across resumes](#keep-a-client-or-a-channel-in-the-state-across-resumes)
//! - [Test an agent program offline, on a real model's replies](#test-an-agent-program-offline-on-a-real-models-replies)
//!
//! # Pass messages between agents
//!
//! Give each agent an inbox, a [`Queue`](crate::reducer::Queue) with `#[reducer(queue)]`:
//! sending pushes to another's inbox, reading takes from one's own, and both are updates, so a
//! durable run saves them with the step and never reads a message twice. (For branches that
//! talk while they run, use a live channel: see the last recipe, and `examples/messages.rs`.)
//!
//! ```
//! use serde::{Deserialize, Serialize};
//! use slateflow::reducer::Queue;
//! use slateflow::{Command, SharedState, flow, node};
//!
//! #[derive(SharedState, Clone, Debug, Default, Serialize, Deserialize)]
//! struct Desk {
//!     #[reducer(queue)]
//!     to_critic: Queue<String>,
//!     #[reducer(queue)]
//!     to_writer: Queue<String>,
//!     #[reducer(append)]
//!     said: Vec<String>,
//! }
//!
//! #[node]
//! fn writer(desk: &Desk) -> Command<Desk> {
//!     let feedback = desk.to_writer.front().cloned();
//!     let draft = if feedback.is_some() { "refunds take 5 days" } else { "refunds take 30 days" };
//!     Command::new(
//!         Desk::update()
//!             .take_to_writer(usize::from(feedback.is_some()))
//!             .push_to_critic(draft.into())
//!             .push_said(format!("writer: {draft}")),
//!     )
//! }
//!
//! #[node(actions = ["revise", "approved"])]
//! fn critic(desk: &Desk) -> Command<Desk> {
//!     let draft = desk.to_critic.front().cloned().unwrap_or_default();
//!     let update = Desk::update().take_to_critic(1);
//!     if draft.contains("30") {
//!         Command::new(update.push_to_writer("the policy says 5".into())).with_action("revise")
//!     } else {
//!         Command::new(update.push_said("critic: approved".into())).with_action("approved")
//!     }
//! }
//!
//! fn main() -> Result<(), slateflow::Error> {
//!     let flow = flow! {
//!         writer >> critic;
//!         critic - "revise" >> writer;
//!     };
//!     let mut desk = Desk::default();
//!     flow.run_blocking(&mut desk)?;
//!     assert_eq!(desk.said.last().map(String::as_str), Some("critic: approved"));
//!     assert!(desk.to_critic.is_empty() && desk.to_writer.is_empty());
//!     Ok(())
//! }
//! ```
//!
//! # Map over many items and reduce, with a progress bar
//!
//! A [`BatchNode`](crate::batch::BatchNode) maps each item on its own (concurrently, with a
//! limit), and its `post` reduces the outputs into one update. Observe the flow with
//! [`ProgressBar`](crate::event::ProgressBar) to see the items finish.
//!
//! ```
//! use serde::{Deserialize, Serialize};
//! use slateflow::batch::{Batch, BatchNode};
//! use slateflow::event::ProgressBar;
//! use slateflow::{Command, Context, NodeError, SharedState, flow};
//!
//! #[derive(SharedState, Clone, Debug, Default, Serialize, Deserialize)]
//! struct Corpus {
//!     documents: Vec<String>,
//!     longest: usize,
//! }
//!
//! struct Measure;
//!
//! impl BatchNode<Corpus> for Measure {
//!     type Item = String;
//!     type Output = usize;
//!
//!     async fn prep(&self, corpus: &Corpus, _: &Context<'_>) -> Result<Vec<String>, NodeError> {
//!         Ok(corpus.documents.clone())
//!     }
//!
//!     async fn exec(&self, document: &String) -> Result<usize, NodeError> {
//!         Ok(document.split_whitespace().count()) // a model call, in real life
//!     }
//!
//!     async fn post(
//!         &self,
//!         _: &Corpus,
//!         _: Vec<String>,
//!         counts: Vec<usize>,
//!         _: &Context<'_>,
//!     ) -> Result<Command<Corpus>, NodeError> {
//!         let longest = counts.into_iter().max().unwrap_or(0);
//!         Ok(Command::new(Corpus::update().set_longest(longest)))
//!     }
//! }
//!
//! fn main() -> Result<(), slateflow::Error> {
//!     let measure = Batch::items(Measure).concurrent(8);
//!     let flow = flow! { measure; };
//!     let mut corpus = Corpus {
//!         documents: vec!["a b c".into(), "a b".into(), "a b c d".into()],
//!         ..Corpus::default()
//!     };
//!     flow.observe(ProgressBar::stderr()).run_blocking(&mut corpus)?;
//!     assert_eq!(corpus.longest, 4);
//!     Ok(())
//! }
//! ```
//!
//! # Ask a person, from a command-line program
//!
//! A node asks with [`Command::ask`](crate::Command::ask); a durable run pauses there, saved.
//! [`Durable::blocking`](crate::durable::Durable::blocking) gives every call in blocking form,
//! so the program needs no async code: list what waits, ask, [`answer`](crate::durable::Blocking::answer),
//! resume. Here the person's answer is fixed; `examples/approval.rs` reads it from the terminal.
//!
//! ```
//! use serde::{Deserialize, Serialize};
//! use slateflow::checkpoint::MemoryStore;
//! use slateflow::durable::Outcome;
//! use slateflow::{Command, SharedState, flow, node};
//!
//! #[derive(SharedState, Clone, Debug, Default, Serialize, Deserialize)]
//! struct Refund {
//!     amount: u32,
//!     approved: Option<bool>,
//! }
//!
//! #[node]
//! fn check(refund: &Refund) -> Command<Refund> {
//!     Command::new(Refund::update()).ask(serde_json::json!(format!("Refund {} EUR?", refund.amount)))
//! }
//!
//! #[node]
//! fn settle(refund: &Refund) -> Command<Refund> {
//!     println!("approved: {:?}", refund.approved);
//!     Command::new(Refund::update())
//! }
//!
//! fn main() -> Result<(), slateflow::Error> {
//!     let flow = flow! { check >> settle; };
//!     let durable = flow.durable(MemoryStore::new());
//!     let durable = durable.blocking()?;
//!     durable.start("r-1", &mut Refund { amount: 120, ..Refund::default() })?;
//!     for pause in durable.pending("r-1")? {
//!         println!("{}", pause.question().unwrap_or_default()); // "Refund 120 EUR?"
//!         let yes = true; // read from the terminal in a real program
//!         durable.answer("r-1", &pause.key, Refund::update().set_approved(Some(yes)))?;
//!     }
//!     let (refund, outcome) = durable.resume("r-1")?;
//!     assert_eq!(outcome, Outcome::Finished("default".into()));
//!     assert_eq!(refund.approved, Some(true));
//!     Ok(())
//! }
//! ```
//!
//! # Route among agents with a supervisor
//!
//! A supervisor node names the next agent as its action, with the reason why
//! ([`Command::with_reason`](crate::Command::with_reason), kept in events and durable history);
//! each agent goes back to it. With a model, the supervisor is an agent that routes
//! ([`Agent::routes`](crate::agent::Agent::routes): its model picks the action and says why, kept
//! in the state's `routing_reason`; `examples/supervisor.rs`); here it decides from the state. A
//! step limit bounds the loop.
//!
//! ```
//! use serde::{Deserialize, Serialize};
//! use slateflow::{Command, SharedState, flow, node};
//!
//! #[derive(SharedState, Clone, Debug, Default, Serialize, Deserialize)]
//! struct Team {
//!     research: Option<String>,
//!     draft: Option<String>,
//! }
//!
//! #[node(actions = ["researcher", "writer", "finish"])]
//! fn supervisor(team: &Team) -> Command<Team> {
//!     let (next, why) = match (&team.research, &team.draft) {
//!         (None, _) => ("researcher", "nothing is known yet"),
//!         (Some(_), None) => ("writer", "the research is in"),
//!         _ => ("finish", "the draft is done"),
//!     };
//!     Command::goto(next).with_reason(why)
//! }
//!
//! #[node]
//! fn researcher(_: &Team) -> Command<Team> {
//!     Command::new(Team::update().set_research(Some("refunds take 5 days".into())))
//! }
//!
//! #[node]
//! fn writer(team: &Team) -> Command<Team> {
//!     let research = team.research.clone().unwrap_or_default();
//!     Command::new(Team::update().set_draft(Some(format!("Good news: {research}."))))
//! }
//!
//! fn main() -> Result<(), slateflow::Error> {
//!     let flow = flow! {
//!         supervisor - "researcher" >> researcher >> supervisor;
//!         supervisor - "writer" >> writer >> supervisor;
//!     }
//!     .with_max_steps(20);
//!     let mut team = Team::default();
//!     assert_eq!(flow.run_blocking(&mut team)?, "finish");
//!     assert_eq!(team.draft.as_deref(), Some("Good news: refunds take 5 days."));
//!     Ok(())
//! }
//! ```
//!
//! # Read a flow's document and its initial state
//!
//! A flow's [`graph`](crate::Flow::graph) lists its nodes and edges without running anything, and
//! [`state_from_json`](crate::state::state_from_json) reads a state from JSON with errors that
//! name the path of a bad value and refuse keys no field reads. `examples/document.rs` writes
//! and reads a whole `{"nodes", "edges", "initial_state"}` document.
//!
//! ```
//! use serde::{Deserialize, Serialize};
//! use slateflow::state::state_from_json;
//! use slateflow::{Command, SharedState, flow, node};
//!
//! #[derive(SharedState, Clone, Debug, Default, Serialize, Deserialize)]
//! struct Profile {
//!     name: String,
//!     preferences: Vec<String>,
//! }
//!
//! #[node]
//! fn greet(_: &Profile) -> Command<Profile> {
//!     Command::new(Profile::update())
//! }
//!
//! fn main() {
//!     let graph = flow! { greet; }.graph();
//!     assert_eq!(graph.nodes[0].name, "greet");
//!     let read: Profile =
//!         state_from_json(r#"{"name": "Alice", "preferences": ["quick"]}"#).unwrap();
//!     assert_eq!(read.preferences, ["quick"]);
//!     let error = state_from_json::<Profile>(r#"{"name": "Alice", "preferences": [7]}"#)
//!         .unwrap_err();
//!     assert!(error.to_string().contains("`preferences[0]`"), "{error}");
//! }
//! ```
//!
//! # Keep a client or a channel in the state across resumes
//!
//! A value that cannot be saved (an HTTP client, a channel's end) goes in a `#[serde(skip)]`
//! field: it is never written, and a state read back holds its `Default`.
//! [`Durable::restore`](crate::durable::Durable::restore) puts it back before every resumed run
//! (and in every worker).
//!
//! ```
//! use std::sync::Arc;
//!
//! use serde::{Deserialize, Serialize};
//! use slateflow::checkpoint::MemoryStore;
//! use slateflow::{Command, SharedState, flow, node};
//!
//! /// Something that cannot be saved: a client, a channel, a pool.
//! #[derive(Clone, Debug, Default)]
//! struct Client(Option<Arc<String>>);
//!
//! #[derive(SharedState, Clone, Debug, Default, Serialize, Deserialize)]
//! struct Job {
//!     #[serde(skip)]
//!     client: Client,
//!     #[reducer(append)]
//!     used: Vec<String>,
//! }
//!
//! #[node]
//! fn call(job: &Job) -> Command<Job> {
//!     let endpoint = job.client.0.as_deref().cloned().unwrap_or_else(|| "none".into());
//!     Command::new(Job::update().push_used(endpoint))
//! }
//!
//! fn main() -> Result<(), slateflow::Error> {
//!     let flow = flow! { call >> call; };
//!     let client = Client(Some(Arc::new("https://api.example".into())));
//!     let restore = {
//!         let client = client.clone();
//!         move |job: &mut Job| job.client = client.clone()
//!     };
//!     let durable = flow
//!         .durable(MemoryStore::new())
//!         .interrupt_before(&["call"])
//!         .restore(restore);
//!     let durable = durable.blocking()?;
//!     durable.start("j-1", &mut Job { client, ..Job::default() })?;
//!     // The resumed run's state was read back: the client is put back before it goes on.
//!     let (job, _) = durable.resume("j-1")?;
//!     assert!(job.used.iter().all(|used| used == "https://api.example"));
//!     Ok(())
//! }
//! ```
//!
//! # Test an agent program offline, on a real model's replies
//!
//! [`Recorded`](crate::agent::model::Recorded) wraps a model: the first run (with a key and a
//! network) records each exchange to a file; every later run replays it, with no network and no
//! key, and fails at the first request that the recording does not hold (the prompt or the
//! program changed), saying where it differs. Keep the file with the tests; delete it to record
//! again. (Here a scripted model stands in for the real one, to stay offline.)
//!
//! ```
//! use serde::{Deserialize, Serialize};
//! use slateflow::agent::Agent;
//! use slateflow::agent::message::{Histories, Message};
//! use slateflow::agent::model::{Recorded, ScriptedModel};
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
//! fn main() -> Result<(), Box<dyn std::error::Error>> {
//!     let path = std::env::temp_dir().join(format!("cookbook-{}.jsonl", std::process::id()));
//!     # let _ = std::fs::remove_file(&path);
//!     let mut answers = Vec::new();
//!     for _ in 0..2 {
//!         // In a real test: `Recorded::replay_or_record(path, OpenAi::from_env)?`.
//!         let model = Recorded::replay_or_record(&path, || Ok(ScriptedModel::new().reply("Hi!")))?;
//!         let agent = Agent::new(model);
//!         let mut chat = Chat { messages: vec![Message::human("Hello")], ..Chat::default() };
//!         flow! { agent; }.run_blocking(&mut chat)?;
//!         answers.push(chat.messages[1].content().to_string());
//!     }
//!     // The first run recorded (the scripted model had one reply); the second replayed.
//!     assert_eq!(answers, ["Hi!", "Hi!"]);
//!     # std::fs::remove_file(&path)?;
//!     Ok(())
//! }
//! ```
