//! Agents: a node that prompts a chat model from the shared state, runs the tools it calls, and
//! writes what it said to the global conversation and to its own history.
//!
//! The state says where the conversation lives by implementing [`Conversation`]: a global list of
//! messages, which every agent reads and writes, and per-agent [`Histories`], keyed by each agent's
//! path in the flow. An [`Agent`] turn is the seed design's:
//!
//! 1. the prompt is the agent's system prompt (a [`Prompt`] rendered from the state), its own
//!    history, the latest global message (what the agent before it said, given as a human message
//!    when another agent wrote it), and its human prompt, if it has one;
//! 2. the model answers; while it calls tools (and the agent has rounds left) the calls run, their
//!    results go back to the model, and it answers again;
//! 3. the global messages gain the final answer; the agent's own history gains the turn: its
//!    replies and tool results (only its own turns, never other agents').
//!
//! # Tool effects once
//! In a durable run, a turn keeps each model reply and each tool answer as it comes, and records
//! each tool call as started before it runs. A turn run again after a crash (or a failure) goes
//! on from what it kept: no model call whose reply was kept is made again, and no tool call whose
//! answer was kept runs again. A call that started but whose answer was not kept (the crash fell
//! during it) runs again only if its tool is [`repeatable`](Tool::repeatable) (it has no effects,
//! or passes on its idempotency key, [`Tool::call_keyed`]: `thread/step/call id`, the same
//! across retries and resumes); otherwise the model is told that the call may or may not have
//! happened, never a silent second run. A turn that is a fork's branch keeps its calls with the
//! fork's parts; one inside a batch flow's run or a flow nested in a branch is not kept call by
//! call: it runs again whole.
//!
//! This module builds on the state, nodes, messages, templates, models and tools; it knows nothing
//! of how runs are executed or saved, beyond the step's journal a node's context offers.

#[cfg(feature = "mcp")]
pub mod mcp;
pub mod message;
pub mod model;
mod route;
pub mod template;
pub mod tool;

pub use message::{Histories, Message, Messages, ToolCall};
#[cfg(feature = "openai")]
pub use model::OpenAi;
pub use model::{ChatModel, ChatRequest, ChatResponse, ModelError, Recorded, ScriptedModel};
pub use route::{AgentCounts, Answer, Counters, ROUTE_TOOL, Routes, TurnSummary};
pub use template::Prompt;
pub use tool::{Tool, Toolbox};

use std::collections::HashMap;
use std::fmt;
use std::marker::PhantomData;

use serde::Serialize;
use serde::de::DeserializeOwned;
use serde_json::json;

use crate::error::NodeError;
use crate::event::At;
use crate::graph::DEFAULT_ACTION;
use crate::node::actions::{DeclaresAction, StaticActions};
use crate::node::{Between, Command, Context, ItemJournal, Node, Retry, with_retries};
use crate::state::SharedState;
use model::TOKEN_EVENT;

/// A state with a conversation: global messages and per-agent histories.
///
/// `#[slateflow(conversation)]` on the state implements it over the fields `messages` (a
/// `Vec<Message>` or [`Messages`]) and `histories` ([`Histories`]), both
/// with `#[reducer(append)]`; `#[slateflow(conversation(messages = chat, histories = agents))]`
/// names other fields.
///
/// ```
/// use serde::{Deserialize, Serialize};
/// use slateflow::SharedState;
/// use slateflow::agent::Conversation;
/// use slateflow::agent::message::{Histories, Message};
///
/// #[derive(SharedState, Clone, Debug, Default, Serialize, Deserialize)]
/// #[slateflow(conversation)]
/// struct Triage {
///     alert_text: String,
///     #[reducer(append)]
///     messages: Vec<Message>,
///     #[reducer(append)]
///     histories: Histories,
/// }
///
/// let mut state = Triage::default();
/// state.apply(Triage::record(vec![Message::ai("hi")], Histories::of("greet", [Message::ai("hi")])));
/// assert_eq!((state.messages().len(), state.histories().get("greet").len()), (1, 1));
/// ```
///
/// By hand, it is three short methods:
///
/// ```
/// # use serde::{Deserialize, Serialize};
/// # use slateflow::SharedState;
/// # use slateflow::agent::Conversation;
/// # use slateflow::agent::message::{Histories, Message};
/// #[derive(SharedState, Clone, Debug, Default, Serialize, Deserialize)]
/// struct Desk {
///     #[reducer(append)]
///     chat: Vec<Message>,
///     #[reducer(append)]
///     agents: Histories,
/// }
///
/// impl Conversation for Desk {
///     fn messages(&self) -> &[Message] {
///         &self.chat
///     }
///     fn histories(&self) -> &Histories {
///         &self.agents
///     }
///     fn record(messages: Vec<Message>, histories: Histories) -> DeskUpdate {
///         Desk::update().extend_chat(messages).append_agents(histories)
///     }
/// }
/// ```
pub trait Conversation: SharedState {
    /// The global messages, oldest first.
    fn messages(&self) -> &[Message];
    /// The per-agent histories.
    fn histories(&self) -> &Histories;
    /// An update that appends `messages` to the global messages and `histories` to the agents'
    /// histories.
    fn record(messages: Vec<Message>, histories: Histories) -> Self::Update;

    /// The update of an agent's turn: [`record`](Conversation::record), and, for a state that
    /// keeps them, the turn's routing reason and counts (`#[slateflow(conversation(
    /// routing_reason, counters))]` writes them to those fields; see [`Counters`]). The default
    /// keeps neither.
    fn record_turn(
        messages: Vec<Message>,
        histories: Histories,
        turn: &TurnSummary,
    ) -> Self::Update {
        let _ = turn;
        Self::record(messages, histories)
    }
}

/// A node that prompts a chat model, runs the tools it calls, and records the conversation.
///
/// ```
/// # use serde::{Deserialize, Serialize};
/// # use slateflow::SharedState;
/// # use slateflow::agent::message::{Histories, Message};
/// # #[derive(SharedState, Clone, Debug, Default, Serialize, Deserialize)]
/// # #[slateflow(conversation)]
/// # struct Triage {
/// #     alert_text: String,
/// #     classification: Option<String>,
/// #     #[reducer(append)] messages: Vec<Message>,
/// #     #[reducer(append)] histories: Histories,
/// # }
/// use std::sync::Arc;
/// use slateflow::{flow, prompt};
/// use slateflow::agent::Agent;
/// use slateflow::agent::model::ScriptedModel;
///
/// let model = Arc::new(ScriptedModel::new().reply("47 failed logins from 10.0.0.5."));
/// let investigate = Agent::new(model.clone())
///     .system(prompt!(Triage, "You investigate {classification} alerts."))
///     .human(prompt!(Triage, "The alert: {alert_text}"));
/// let triage = flow! { investigate; };
///
/// let mut state = Triage {
///     alert_text: "login failures".into(),
///     classification: Some("intrusion".into()),
///     ..Triage::default()
/// };
/// slateflow::Flow::run_blocking(&triage, &mut state)?;
///
/// let sent = &model.requests()[0].messages;
/// assert_eq!(sent[0], Message::system("You investigate intrusion alerts."));
/// assert_eq!(sent[1], Message::human("The alert: login failures"));
/// assert_eq!(state.messages.last().unwrap().content(), "47 failed logins from 10.0.0.5.");
/// assert_eq!(state.histories.get("investigate").len(), 1);
/// # Ok::<(), slateflow::Error>(())
/// ```
pub struct Agent<S, M, R = Answer> {
    model: M,
    system: Option<Prompt<S>>,
    human: Option<Prompt<S>>,
    tools: Toolbox,
    max_tool_rounds: u32,
    retry: Retry,
    state: PhantomData<fn(&S) -> R>,
}

/// An [`Agent`]'s retry policy for model calls unless told otherwise: see [`Agent::retry`].
fn default_retry() -> Retry {
    Retry::attempts(3)
        .wait(std::time::Duration::from_millis(500))
        .backoff(2.0, std::time::Duration::from_secs(8))
}

/// The most tool rounds an [`Agent`] runs by default before asking for a final answer.
///
/// ```
/// # use serde::{Deserialize, Serialize};
/// # use slateflow::SharedState;
/// # use slateflow::agent::message::{Histories, Message};
/// # #[derive(SharedState, Clone, Debug, Default, Serialize, Deserialize)]
/// # #[slateflow(conversation)]
/// # struct Chat { #[reducer(append)] messages: Vec<Message>, #[reducer(append)] histories: Histories }
/// use slateflow::agent::model::ScriptedModel;
/// use slateflow::agent::{Agent, DEFAULT_TOOL_ROUNDS};
///
/// assert_eq!(DEFAULT_TOOL_ROUNDS, 8);
/// // An agent that may call tools at most 3 times before it must answer.
/// let agent: Agent<Chat, ScriptedModel> = Agent::new(ScriptedModel::new()).max_tool_rounds(3);
/// # let _ = agent;
/// ```
pub const DEFAULT_TOOL_ROUNDS: u32 = 8;

impl<S: Conversation, M: ChatModel> Agent<S, M> {
    /// An agent that talks to `model`, with no prompts and no tools yet.
    pub fn new(model: M) -> Self {
        Self {
            model,
            system: None,
            human: None,
            tools: Toolbox::new(),
            max_tool_rounds: DEFAULT_TOOL_ROUNDS,
            retry: default_retry(),
            state: PhantomData,
        }
    }
}

impl<S: Conversation, M: ChatModel, R: Routes> Agent<S, M, R> {
    /// An agent that routes: its turn ends when its model hands the work on by calling the tool
    /// [`ROUTE_TOOL`] with one of `T`'s actions (declared with [`routes!`](crate::routes)) and a
    /// reason; its step ends with that action, the reason is the step's routing reason, and a
    /// state that keeps one (`#[slateflow(conversation(routing_reason))]`) gets it in that
    /// field, for later nodes and `{routing_reason}` in their prompts. A turn that routes adds
    /// nothing to the global messages (its own history keeps the turn). A model that answers
    /// without routing is asked to route (unless `"default"` is one of the actions, which a
    /// plain answer then takes).
    ///
    /// ```
    /// # use serde::{Deserialize, Serialize};
    /// # use slateflow::{Command, SharedState, flow, node};
    /// # use slateflow::agent::message::{Histories, Message, ToolCall};
    /// use slateflow::agent::Agent;
    /// use slateflow::agent::model::ScriptedModel;
    ///
    /// #[derive(SharedState, Clone, Debug, Default, Serialize, Deserialize)]
    /// #[slateflow(conversation(routing_reason))]
    /// struct Desk {
    ///     #[reducer(append)] messages: Vec<Message>,
    ///     #[reducer(append)] histories: Histories,
    ///     routing_reason: String,
    /// }
    /// # #[node] fn escalate(_: &Desk) -> Command<Desk> { Command::default() }
    /// # #[node] fn close(_: &Desk) -> Command<Desk> { Command::default() }
    ///
    /// slateflow::routes! { struct Triage = ["escalate", "close"]; }
    ///
    /// let model = ScriptedModel::new().call_tools(vec![ToolCall::new(
    ///     "c1", "route", r#"{"to": "escalate", "reason": "root login from a new country"}"#,
    /// )]);
    /// let triage = Agent::new(model).routes::<Triage>();
    /// let flow = flow! {
    ///     triage - "escalate" >> escalate;
    ///     triage - "close" >> close;
    /// };
    /// let mut desk = Desk { messages: vec![Message::human("Root login from Laos")], ..Desk::default() };
    /// flow.run_blocking(&mut desk)?;
    /// assert_eq!(desk.routing_reason, "root login from a new country");
    /// # Ok::<(), slateflow::Error>(())
    /// ```
    ///
    /// # Panics
    /// When the agent's tools already hold one named [`ROUTE_TOOL`].
    #[must_use]
    pub fn routes<T: Routes>(self) -> Agent<S, M, T> {
        assert!(
            T::ACTIONS == ["default"] || self.tools.names().all(|name| name != ROUTE_TOOL),
            "the agent's tools already hold one named `{ROUTE_TOOL}`, which a routing agent's \
             model calls to hand the work on: rename that tool"
        );
        Agent {
            model: self.model,
            system: self.system,
            human: self.human,
            tools: self.tools,
            max_tool_rounds: self.max_tool_rounds,
            retry: self.retry,
            state: PhantomData,
        }
    }

    /// Whether this agent routes (its actions are not `"default"` alone).
    fn routing() -> bool {
        R::ACTIONS != ["default"]
    }

    /// The system prompt, rendered from the state on every turn.
    #[must_use]
    pub fn system(mut self, prompt: Prompt<S>) -> Self {
        self.system = Some(prompt);
        self
    }

    /// A human prompt (the task), rendered from the state and sent after the history on every
    /// turn. It is not kept in the histories.
    #[must_use]
    pub fn human(mut self, prompt: Prompt<S>) -> Self {
        self.human = Some(prompt);
        self
    }

    /// The tools the model may call.
    ///
    /// # Panics
    /// For a routing agent, when `tools` holds one named [`ROUTE_TOOL`].
    #[must_use]
    pub fn tools(mut self, tools: Toolbox) -> Self {
        assert!(
            !Self::routing() || tools.names().all(|name| name != ROUTE_TOOL),
            "the tools hold one named `{ROUTE_TOOL}`, which a routing agent's model calls to \
             hand the work on: rename that tool"
        );
        self.tools = tools;
        self
    }

    /// How many rounds of tool calls one turn may run (8 by default). When they are used up, the
    /// agent tells the model so in a human message and asks for an answer without tools; a model
    /// that still calls tools fails the node.
    #[must_use]
    pub fn max_tool_rounds(mut self, rounds: u32) -> Self {
        self.max_tool_rounds = rounds;
        self
    }

    /// How each model call is retried and timed out. By default, as the official OpenAI SDKs do:
    /// up to two retries, waiting 0.5 s then 1 s (doubling, up to 8 s), without a timeout of its
    /// own. The agent retries each call on its own, so that a retry never runs tools a second
    /// time, and reads the [`ModelError`]'s hints: only the errors that say so are retried (a
    /// rate limit, a server error, a dropped connection, a timeout; never a bad request), after
    /// at least the wait the endpoint asked for (`Retry-After`). `Retry::attempts(1)` turns
    /// retries off.
    #[must_use]
    pub fn retry(mut self, retry: Retry) -> Self {
        self.retry = retry;
        self
    }

    /// One call of the model, retried by the agent's policy; streams when someone watches.
    async fn call(
        &self,
        request: &ChatRequest,
        context: Option<&Context<'_>>,
    ) -> Result<ChatResponse, NodeError> {
        let observed = context.filter(|context| context.is_observed());
        // A retried model call is part of the node's attempt: no `NodeStarted` for it.
        let between = |between: Between<'_>| {
            if let Some(context) = context {
                context.between(between, false);
            }
        };
        let attempt = || async {
            match observed {
                Some(context) => {
                    let on_text = |text: &str| context.emit(TOKEN_EVENT, &json!(text));
                    self.model.stream(request, &on_text).await
                }
                None => self.model.chat(request).await,
            }
            .map_err(NodeError::from)
        };
        with_retries(self.retry.hints::<ModelError>(), attempt, between)
            .await
            .map(|(response, _)| response)
            .map_err(|(error, _)| error)
    }

    /// The model's turn: calls, tool rounds, and the messages it produced, in order, with the
    /// action it ends with. In a durable step, each model reply and each tool result is kept as
    /// it comes (see [`Calls`]), and a turn run again after a crash goes on from them.
    async fn turn(
        &self,
        turn: &Turn,
        context: Option<&Context<'_>>,
    ) -> Result<TurnOutcome, NodeError> {
        let calls_kept = Calls::of(context);
        let mut request = turn.request.clone();
        let first = request.messages.len();
        let routing = Self::routing();
        // The tools are offered as they are until the rounds run out; then only the route.
        request.tools = self.tools.specs();
        if routing {
            request.tools.push(route::route_spec(R::ACTIONS));
        }
        let mut outcome = TurnOutcome {
            messages: Vec::new(),
            action: DEFAULT_ACTION,
            reason: None,
            model_calls: 0,
            tool_calls: 0,
            tool_rounds: 0,
        };
        // Rounds the turn went on for: of tool calls, or of asking a routing model to route.
        let mut rounds = 0;
        loop {
            if rounds == self.max_tool_rounds {
                request
                    .tools
                    .retain(|tool| routing && tool.name == ROUTE_TOOL);
            }
            let reply_key = format!("reply:{rounds}");
            let reply = if let Some(reply) = calls_kept.kept(&reply_key) {
                reply
            } else {
                let reply = self.call(&request, context).await?.message;
                calls_kept.keep(reply_key, &reply).await?;
                reply
            };
            outcome.model_calls += 1;
            let calls = reply.tool_calls().to_vec();
            request.messages.push(reply);
            if calls.is_empty() {
                if !routing || R::ACTIONS.contains(&DEFAULT_ACTION) {
                    break;
                }
                if rounds >= self.max_tool_rounds {
                    return Err(format!(
                        "the model answered without handing the work on (by calling \
                         `{ROUTE_TOOL}`) after {rounds} rounds; tell it to choose one of {}",
                        quoted(R::ACTIONS)
                    )
                    .into());
                }
                // (In the last round, the message that ends the rounds says it.)
                if rounds + 1 < self.max_tool_rounds {
                    request.messages.push(Message::human(format!(
                        "Hand the work on now: call `{ROUTE_TOOL}` with `to` one of {} and \
                         your reason.",
                        quoted(R::ACTIONS)
                    )));
                }
            } else {
                let routed = self
                    .answer_round(
                        &calls,
                        rounds,
                        &calls_kept,
                        context,
                        &mut request,
                        &mut outcome,
                    )
                    .await?;
                if routed {
                    break;
                }
            }
            rounds += 1;
            if rounds == self.max_tool_rounds {
                request.messages.push(Message::human(if routing {
                    format!(
                        "You have used all {rounds} rounds. Hand the work on now: call \
                         `{ROUTE_TOOL}`, without calling other tools."
                    )
                } else {
                    format!(
                        "You have used all {rounds} rounds of tool calls. Answer now with what \
                         you know, without calling tools."
                    )
                }));
            }
        }
        outcome.messages = request.messages.split_off(first);
        Ok(outcome)
    }

    /// Answers the calls of one reply, in order, each with a tool message pushed to `request`:
    /// the route (for a routing agent: the first valid one ends the turn, and says true), and the
    /// tools' calls (a round of them).
    async fn answer_round(
        &self,
        calls: &[ToolCall],
        round: u32,
        calls_kept: &Calls<'_>,
        context: Option<&Context<'_>>,
        request: &mut ChatRequest,
        outcome: &mut TurnOutcome,
    ) -> Result<bool, NodeError> {
        let routing = Self::routing();
        let is_route = |call: &ToolCall| routing && call.name == ROUTE_TOOL;
        if round >= self.max_tool_rounds
            && let Some(call) = calls.iter().find(|call| !is_route(call))
        {
            return Err(format!(
                "the model called `{}` after its {} rounds of tool calls were used up and no \
                 tools were offered; raise `max_tool_rounds` or tell the model to answer",
                call.name, self.max_tool_rounds
            )
            .into());
        }
        let mut routed = false;
        for call in calls {
            let answer = if is_route(call) {
                match route::read_route(&call.arguments, R::ACTIONS) {
                    Ok(_) if routed => {
                        Message::tool_error(&call.id, "only the first route is taken")
                    }
                    Ok((action, reason)) => {
                        routed = true;
                        outcome.action = action;
                        outcome.reason = Some(reason);
                        Message::tool(&call.id, format!("Handed on to \"{action}\"."))
                    }
                    Err(refusal) => Message::tool_error(&call.id, refusal),
                }
            } else {
                outcome.tool_calls += 1;
                self.answer(call, round, calls_kept, context).await?
            };
            request.messages.push(answer);
        }
        if calls.iter().any(|call| !is_route(call)) {
            outcome.tool_rounds += 1;
        }
        Ok(routed)
    }

    /// The answer to one tool call of round `round`: kept by an earlier attempt of the step, or
    /// run now (recorded as started first, its answer kept after). A call that started in an
    /// attempt that stopped before its answer was kept runs again only if its tool is
    /// repeatable; otherwise the model is told it may or may not have happened.
    async fn answer(
        &self,
        call: &ToolCall,
        round: u32,
        calls_kept: &Calls<'_>,
        context: Option<&Context<'_>>,
    ) -> Result<Message, NodeError> {
        let answer_key = format!("call:{round}:{}", call.id);
        if let Some(answer) = calls_kept.kept(&answer_key) {
            return Ok(answer);
        }
        // A call that needs approval waits for a person's decision first.
        let mut edited = None;
        if self.tools.needs_approval(&call.name) {
            match approval(call, round, context).await? {
                Approval::Approve => {}
                Approval::Edit { arguments } => {
                    edited = Some(ToolCall::new(&call.id, &call.name, arguments.to_string()));
                }
                Approval::Reject { message } => {
                    let answer = Message::tool_error(
                        &call.id,
                        format!("a person rejected this call: {message}"),
                    );
                    calls_kept.keep(answer_key, &answer).await?;
                    return Ok(answer);
                }
            }
        }
        let call = edited.as_ref().unwrap_or(call);
        let started_key = format!("started:{round}:{}", call.id);
        // A repeatable call runs again whenever its answer was not kept: it needs no mark.
        let repeatable = self.tools.is_repeatable(&call.name);
        let answer = if !repeatable && calls_kept.kept::<bool>(&started_key).is_some() {
            Message::tool_error(
                &call.id,
                format!(
                    "the call to `{}` may or may not have happened: the run stopped while it ran, \
                     and it was not run again, since the tool is not marked repeatable; find out \
                     whether it took effect before calling it again",
                    call.name
                ),
            )
        } else {
            if !repeatable {
                calls_kept.keep(started_key, &true).await?;
            }
            let answer = self
                .tools
                .call_keyed(call, &idempotency_key(context, &call.id))
                .await;
            if let Some(context) = context.filter(|context| context.is_observed()) {
                let is_error = matches!(answer, Message::Tool { is_error: true, .. });
                context.emit(
                    TOOL_EVENT,
                    &json!({"id": call.id, "name": call.name, "is_error": is_error}),
                );
            }
            answer
        };
        let answer = match (edited.as_ref(), answer) {
            // The model learns that its call ran with other arguments.
            (
                Some(edited),
                Message::Tool {
                    tool_call_id,
                    content,
                    parts,
                    is_error,
                    id,
                },
            ) => Message::Tool {
                tool_call_id,
                content: format!(
                    "(a person changed the arguments to {} before the call ran) {content}",
                    edited.arguments
                ),
                parts,
                is_error,
                id,
            },
            (_, answer) => answer,
        };
        calls_kept.keep(answer_key, &answer).await?;
        Ok(answer)
    }
}

/// A person's decision on a tool call that waits for approval ([`Tool::needs_approval`]): the
/// reply to its pause, given with [`Durable::reply`](crate::durable::Durable::reply). In JSON,
/// `{"decision": "approve"}`, `{"decision": "edit", "arguments": {...}}` or
/// `{"decision": "reject", "message": "..."}`.
///
/// The pause's question ([`Pause::asked`](crate::checkpoint::Pause::asked)) is
/// `{"question", "tool", "arguments", "call_id", "agent"}`; its key ends with
/// `approve:<round>:<call id>`. An agent asks for one call at a time, in order; a reply that
/// edits or rejects is what the model then reads.
///
/// ```
/// use slateflow::agent::Approval;
///
/// let edit: Approval = serde_json::from_str(r#"{"decision": "edit", "arguments": {"amount": 50}}"#)?;
/// assert_eq!(edit, Approval::Edit { arguments: serde_json::json!({"amount": 50}) });
/// let reject = serde_json::to_value(Approval::Reject { message: "not this month".into() })?;
/// assert_eq!(reject["decision"], "reject");
/// # Ok::<(), serde_json::Error>(())
/// ```
#[derive(Debug, Clone, PartialEq, Serialize, serde::Deserialize)]
#[serde(tag = "decision", rename_all = "snake_case")]
pub enum Approval {
    /// Run the call as the model made it.
    Approve,
    /// Run it with these arguments instead (the model is told).
    Edit {
        /// The arguments to run it with.
        arguments: serde_json::Value,
    },
    /// Do not run it: the model reads that a person rejected it, and why.
    Reject {
        /// Why, for the model.
        message: String,
    },
}

/// The decision on `call`, a call of a tool that needs approval: asked inside the step
/// ([`Context::interrupt`]), which pauses the run until a person replies.
async fn approval(
    call: &ToolCall,
    round: u32,
    context: Option<&Context<'_>>,
) -> Result<Approval, NodeError> {
    let context = context.ok_or_else(|| {
        format!(
            "`{}` needs approval, which only a run can ask for (the agent's `exec` was called \
             directly)",
            call.name
        )
    })?;
    let arguments = call
        .arguments()
        .unwrap_or_else(|_| serde_json::Value::String(call.arguments.clone()));
    let question = json!({
        "question": format!("Run `{}` with these arguments?", call.name),
        "tool": call.name,
        "arguments": arguments,
        "call_id": call.id,
        "agent": context.at().path(),
    });
    context
        .interrupt(&format!("approve:{round}:{}", call.id), question)
        .await
}

/// A tool call's idempotency key: `thread/step/call id` in a durable run, the same across retries
/// and resumes; `node@step/call id` otherwise.
fn idempotency_key(context: Option<&Context<'_>>, call: &str) -> String {
    match context {
        Some(context) => match context.thread() {
            Some(thread) => format!("{thread}/{}/{call}", context.step()),
            None => format!("{}@{}/{call}", context.at().path(), context.step()),
        },
        None => call.to_string(),
    }
}

/// Where a turn keeps its model replies and tool answers while its step is not saved: the
/// step's journal in a durable run (a step saved on its own, or a fork's branch, kept with the
/// fork's parts; none elsewhere), each under its own key (`reply:<round>`, `call:<round>:<call>`, and
/// `started:<round>:<call>` before a call that is not repeatable).
struct Calls<'a> {
    journal: Option<(&'a dyn ItemJournal, At<'a>)>,
}

impl<'a> Calls<'a> {
    fn of(context: Option<&'a Context<'a>>) -> Self {
        Self {
            journal: context.and_then(|context| Some((context.item_journal()?, context.at()))),
        }
    }

    /// What was kept under `key`, when it reads back as `T`.
    fn kept<T: DeserializeOwned>(&self, key: &str) -> Option<T> {
        let (journal, at) = self.journal.as_ref()?;
        serde_json::from_value(journal.kept_item(at, key)?).ok()
    }

    /// Keeps `value` under `key`, when there is a journal.
    async fn keep(&self, key: String, value: &impl Serialize) -> Result<(), NodeError> {
        let Some((journal, at)) = self.journal.as_ref() else {
            return Ok(());
        };
        let value = serde_json::to_value(value)
            .map_err(|error| format!("`{key}` of the turn does not serialize: {error}"))?;
        journal.keep_item(*at, key, value).await?;
        Ok(())
    }
}

/// The name of the [`Event::Custom`](crate::Event::Custom) events an [`Agent`] sends after each
/// tool call: `{"id", "name", "is_error"}`.
///
/// ```
/// use slateflow::Event;
/// use slateflow::agent::TOOL_EVENT;
///
/// // An observer that logs every tool call an agent makes.
/// let log_tools = slateflow::event::from_fn(|event: &Event<'_>| {
///     if let Event::Custom { name, data, .. } = event
///         && *name == TOOL_EVENT
///     {
///         println!("called {} ({})", data["name"], data["id"]);
///     }
/// });
/// # let _ = log_tools;
/// ```
pub const TOOL_EVENT: &str = "tool";

/// What an [`Agent`]'s `prep` hands to its model turn.
///
/// ```
/// # use serde::{Deserialize, Serialize};
/// # use slateflow::{SharedState, Node, Context, Params};
/// # use slateflow::agent::message::{Histories, Message};
/// # #[derive(SharedState, Clone, Debug, Default, Serialize, Deserialize)]
/// # #[slateflow(conversation)]
/// # struct Chat { #[reducer(append)] messages: Vec<Message>, #[reducer(append)] histories: Histories }
/// use slateflow::agent::model::ScriptedModel;
/// use slateflow::agent::{Agent, Turn};
///
/// let agent = Agent::new(ScriptedModel::new()).system(slateflow::prompt!(Chat, "Be brief."));
/// let chat = Chat { messages: vec![Message::human("Hi")], ..Chat::default() };
/// # tokio::runtime::Builder::new_current_thread().build().unwrap().block_on(async {
/// # let params = Params::new();
/// # let context = Context::new(&params, "agent", 1);
/// // What the agent's `prep` builds: its request, and the key of its own history.
/// let turn: Turn = agent.prep(&chat, &context).await?;
/// assert_eq!(turn.agent, "agent");
/// assert_eq!(turn.request.messages.len(), 2); // the system prompt and the human's message
/// # Ok::<(), slateflow::NodeError>(())
/// # }).unwrap();
/// ```
#[derive(Debug, Clone)]
pub struct Turn {
    /// The agent's path in the flow: the key of its history.
    pub agent: String,
    /// The request as built from the state.
    pub request: ChatRequest,
}

/// What an agent's turn produced: its messages, in order, the action it ends with, and its
/// counts (the `Exec` of an [`Agent`]).
///
/// ```
/// # use serde::{Deserialize, Serialize};
/// # use slateflow::{SharedState, Node, Context, Params};
/// # use slateflow::agent::message::{Histories, Message};
/// # #[derive(SharedState, Clone, Debug, Default, Serialize, Deserialize)]
/// # #[slateflow(conversation)]
/// # struct Chat { #[reducer(append)] messages: Vec<Message>, #[reducer(append)] histories: Histories }
/// use slateflow::agent::model::ScriptedModel;
/// use slateflow::agent::{Agent, TurnOutcome};
///
/// let agent = Agent::new(ScriptedModel::new().reply("Hello."));
/// let chat = Chat { messages: vec![Message::human("Hi")], ..Chat::default() };
/// # tokio::runtime::Builder::new_current_thread().build().unwrap().block_on(async {
/// # let params = Params::new();
/// # let context = Context::new(&params, "agent", 1);
/// let turn = agent.prep(&chat, &context).await?;
/// let outcome: TurnOutcome = agent.exec(&turn).await?;
/// assert_eq!((outcome.action, outcome.model_calls), ("default", 1));
/// assert_eq!(outcome.messages, [Message::ai("Hello.")]);
/// # Ok::<(), slateflow::NodeError>(())
/// # }).unwrap();
/// ```
#[derive(Debug, Clone, PartialEq)]
pub struct TurnOutcome {
    /// The messages the turn produced: replies, tool answers, and what the agent told the
    /// model.
    pub messages: Vec<Message>,
    /// The action the step ends with: the route chosen, or `"default"`.
    pub action: &'static str,
    /// Why the model chose its route, when it routed.
    pub reason: Option<String>,
    /// Model replies used.
    pub model_calls: u32,
    /// Tool calls answered (not the route).
    pub tool_calls: u32,
    /// Rounds of tool calls.
    pub tool_rounds: u32,
}

/// The actions of a routing agent are its routes' (`cargo check` reads them through its routes'
/// impls, as it reads a `#[node]`'s).
impl<S, M, R: StaticActions<S>> StaticActions<S> for Agent<S, M, R> {}
#[diagnostic::do_not_recommend]
impl<S, M, R: DeclaresAction<S, KEY>, const KEY: u64> DeclaresAction<S, KEY> for Agent<S, M, R> {}

impl<S: Conversation, M: ChatModel, R: Routes> Node<S> for Agent<S, M, R> {
    type Prep = Turn;
    type Exec = TurnOutcome;
    const ACTIONS: &'static [&'static str] = R::ACTIONS;

    async fn prep(&self, state: &S, context: &Context<'_>) -> Result<Turn, NodeError> {
        let agent = context.at().path();
        let own = state.histories().get(&agent);
        let mut messages = Vec::with_capacity(own.len() + 3);
        if let Some(system) = &self.system {
            messages.push(Message::system(system.render(state)));
        }
        // A message of its own that the conversation holds corrected (replaced by id) is read
        // as corrected: the agent builds on what the conversation says it said.
        let corrected = corrections(own, state.messages());
        messages.extend(own.iter().map(|message| {
            message
                .id()
                .and_then(|id| corrected.get(id))
                .map_or_else(|| message.clone(), |&global| global.clone())
        }));
        if let Some(latest) = state.messages().last() {
            let own_answer =
                latest.id().is_some() && own.last().and_then(Message::id) == latest.id();
            if !own_answer {
                messages.push(as_input(latest));
            }
        }
        if let Some(human) = &self.human {
            messages.push(Message::human(human.render(state)));
        }
        Ok(Turn {
            agent,
            request: ChatRequest::new(messages),
        })
    }

    async fn exec(&self, turn: &Turn) -> Result<TurnOutcome, NodeError> {
        self.turn(turn, None).await
    }

    async fn exec_with(
        &self,
        turn: &Turn,
        context: &Context<'_>,
    ) -> Result<TurnOutcome, NodeError> {
        self.turn(turn, Some(context)).await
    }

    async fn post(
        &self,
        _: &S,
        turn: Turn,
        outcome: TurnOutcome,
        context: &Context<'_>,
    ) -> Result<Command<S>, NodeError> {
        let TurnOutcome {
            messages: mut produced,
            action,
            reason,
            model_calls,
            tool_calls,
            tool_rounds,
        } = outcome;
        // The human message that closes the tool rounds is the agent's own doing; it stays in its
        // history so that the replies around it make sense there.
        for (index, message) in produced.iter_mut().enumerate() {
            message.ensure_id(context, index);
        }
        // A turn that routed hands the work on: its history keeps it, the conversation does not.
        let answer = if reason.is_some() {
            Vec::new()
        } else {
            produced
                .iter()
                .rev()
                .find(|message| matches!(message, Message::Ai { .. }))
                .cloned()
                .into_iter()
                .collect()
        };
        let summary = TurnSummary {
            agent: turn.agent,
            action,
            reason,
            model_calls,
            tool_calls,
            tool_rounds,
        };
        let histories = Histories::of(summary.agent.clone(), produced);
        let command = Command::new(S::record_turn(answer, histories, &summary)).with_action(action);
        Ok(match summary.reason {
            Some(reason) => command.with_reason(reason),
            None => command,
        })
    }
}

/// The global messages that share an id with a message of `own` but differ from it: what the
/// conversation corrected of the agent's messages, by id.
fn corrections<'m>(own: &[Message], global: &'m [Message]) -> HashMap<&'m str, &'m Message> {
    let ids: HashMap<&str, &Message> = own
        .iter()
        .filter_map(|message| Some((message.id()?, message)))
        .collect();
    if ids.is_empty() {
        return HashMap::new();
    }
    global
        .iter()
        .filter_map(|message| {
            let id = message.id()?;
            let original = ids.get(id)?;
            (*original != message).then_some((id, message))
        })
        .collect()
}

/// The latest global message as this agent's input: another agent's answer becomes a human
/// message (this model did not write it).
fn as_input(message: &Message) -> Message {
    match message {
        Message::Human { .. } | Message::System { .. } => message.clone(),
        Message::Ai { content, id, .. } | Message::Tool { content, id, .. } => {
            let input = Message::human(content.clone());
            match id {
                Some(id) => input.with_id(id.clone()),
                None => input,
            }
        }
    }
}

/// Actions as a list for the model: `"a", "b"`.
fn quoted(actions: &[&str]) -> String {
    actions
        .iter()
        .map(|action| format!("\"{action}\""))
        .collect::<Vec<_>>()
        .join(", ")
}

impl<S, M: fmt::Debug, R> fmt::Debug for Agent<S, M, R> {
    fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        formatter
            .debug_struct("Agent")
            .field("model", &self.model)
            .field("system", &self.system)
            .field("human", &self.human)
            .field("tools", &self.tools)
            .field("max_tool_rounds", &self.max_tool_rounds)
            .field("retry", &self.retry)
            .finish()
    }
}
