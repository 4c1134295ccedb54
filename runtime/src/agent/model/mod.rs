//! Chat models: the [`ChatModel`] trait, what goes in ([`ChatRequest`]) and what comes back
//! ([`ChatResponse`]), [`ScriptedModel`], which answers from a script for tests and offline
//! examples, and [`Recorded`], which records a real model's exchanges to a file and replays them
//! offline. The OpenAI-compatible HTTP client is `OpenAi` (feature `openai`).
//!
//! A model is called from a node's `exec`, the step that is retried: a [`ModelError`] says whether
//! another attempt may help, and the node's [`Retry`](crate::Retry) policy reads that.
//!
//! This module knows messages; nothing about the state, nodes or runs.

use std::collections::VecDeque;
use std::future::Future;
use std::sync::{Arc, Mutex, PoisonError};

use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use serde_json::Value;

mod error;
mod record;
use crate::agent::message::{Message, ToolCall};
pub use error::ModelError;
pub use record::{Offline, Recorded, RecordingError};

#[cfg(feature = "openai")]
mod openai;
#[cfg(feature = "openai")]
pub use openai::OpenAi;

/// The name of the [`Event::Custom`](crate::Event::Custom) events that carry a streamed reply's
/// text deltas (the data is the text, a JSON string).
///
/// ```
/// use slateflow::Event;
/// use slateflow::agent::model::TOKEN_EVENT;
///
/// // An observer that prints a streaming model's tokens as they come.
/// let print_tokens = slateflow::event::from_fn(|event: &Event<'_>| {
///     if let Event::Custom { name, data, .. } = event
///         && *name == TOKEN_EVENT
///     {
///         print!("{}", data.as_str().unwrap_or_default());
///     }
/// });
/// # let _ = print_tokens;
/// ```
pub const TOKEN_EVENT: &str = "token";

/// A tool the model may call: its name, what it does, and the JSON schema of its arguments.
///
/// ```
/// use slateflow::agent::model::{ChatRequest, ToolSpec};
/// use slateflow::agent::message::Message;
///
/// let spec = ToolSpec {
///     name: "lookup_ip".into(),
///     description: "Reputation of an IP address".into(),
///     parameters: serde_json::json!({"type": "object", "properties": {"ip": {"type": "string"}}}),
/// };
/// let request = ChatRequest::new(vec![Message::human("Is 10.0.0.5 bad?")]).with_tools(vec![spec]);
/// assert_eq!(request.tools[0].name, "lookup_ip");
/// ```
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ToolSpec {
    /// The name the model calls it by.
    pub name: String,
    /// What it does, for the model.
    pub description: String,
    /// The JSON schema of its arguments (an object schema).
    pub parameters: Value,
}

/// A request for one chat completion.
///
/// ```
/// use slateflow::agent::message::Message;
/// use slateflow::agent::model::ChatRequest;
///
/// let request = ChatRequest::new(vec![Message::system("Be brief."), Message::human("Hi")])
///     .with_temperature(0.0);
/// assert_eq!(request.messages.len(), 2);
/// ```
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct ChatRequest {
    /// The conversation so far, system prompt first.
    pub messages: Vec<Message>,
    /// The tools the model may call.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub tools: Vec<ToolSpec>,
    /// Structured output: the reply must be JSON matching this schema (see
    /// [`with_output`](ChatRequest::with_output)).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub output: Option<OutputSchema>,
    /// Sampling temperature, when set.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub temperature: Option<f32>,
    /// The most tokens to generate, when set.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_tokens: Option<u32>,
}

/// The JSON schema a structured reply must follow.
///
/// ```
/// use slateflow::agent::message::Message;
/// use slateflow::agent::model::ChatRequest;
///
/// let schema = serde_json::json!({
///     "type": "object",
///     "properties": {"severity": {"enum": ["low", "high"]}},
///     "required": ["severity"],
/// });
/// let request = ChatRequest::new(vec![Message::human("Rate this alert.")]).with_output("rating", schema);
/// let output = request.output.as_ref().unwrap();
/// assert_eq!(output.name, "rating");
/// ```
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct OutputSchema {
    /// A name for the schema (OpenAI requires one).
    pub name: String,
    /// The schema.
    pub schema: Value,
}

impl ChatRequest {
    /// A request with these messages and nothing else.
    pub fn new(messages: Vec<Message>) -> Self {
        Self {
            messages,
            ..Self::default()
        }
    }

    /// Offers the model these tools.
    #[must_use]
    pub fn with_tools(mut self, tools: Vec<ToolSpec>) -> Self {
        self.tools = tools;
        self
    }

    /// Asks for a reply that is JSON following `schema`; read it with [`ChatResponse::parse`].
    #[must_use]
    pub fn with_output(mut self, name: impl Into<String>, schema: Value) -> Self {
        self.output = Some(OutputSchema {
            name: name.into(),
            schema,
        });
        self
    }

    /// Sets the sampling temperature.
    #[must_use]
    pub fn with_temperature(mut self, temperature: f32) -> Self {
        self.temperature = Some(temperature);
        self
    }

    /// Caps the tokens generated.
    #[must_use]
    pub fn with_max_tokens(mut self, max_tokens: u32) -> Self {
        self.max_tokens = Some(max_tokens);
        self
    }
}

/// A model's reply.
///
/// ```
/// use slateflow::agent::message::Message;
/// use slateflow::agent::model::{ChatModel, ChatRequest, ChatResponse, ScriptedModel};
///
/// let model = ScriptedModel::new().then(Ok(ChatResponse::new(Message::ai("Hello."))));
/// # tokio::runtime::Builder::new_current_thread().build().unwrap().block_on(async {
/// let response = model.chat(&ChatRequest::new(vec![Message::human("Hi")])).await?;
/// assert_eq!(response.text(), "Hello.");
/// assert!(response.tool_calls().is_empty());
/// # Ok::<(), slateflow::agent::ModelError>(())
/// # }).unwrap();
/// ```
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ChatResponse {
    /// The reply: an ai message with text, tool calls or both.
    pub message: Message,
    /// Tokens used, when the endpoint says.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub usage: Option<Usage>,
    /// Why the model stopped (`stop`, `tool_calls`, `length`), when the endpoint says.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub finish_reason: Option<String>,
}

/// Tokens a call used.
///
/// ```
/// use slateflow::agent::message::Message;
/// use slateflow::agent::model::{ChatResponse, Usage};
///
/// let mut response = ChatResponse::new(Message::ai("Hello."));
/// response.usage = Some(Usage { prompt_tokens: 12, completion_tokens: 3 });
/// let usage = response.usage.unwrap();
/// assert_eq!(usage.prompt_tokens + usage.completion_tokens, 15);
/// ```
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Usage {
    /// Tokens in the prompt.
    pub prompt_tokens: u64,
    /// Tokens in the reply.
    pub completion_tokens: u64,
}

impl ChatResponse {
    /// A reply carrying `message`, without usage or finish reason.
    pub fn new(message: Message) -> Self {
        Self {
            message,
            usage: None,
            finish_reason: None,
        }
    }

    /// The reply's text.
    pub fn text(&self) -> &str {
        self.message.content()
    }

    /// The tools the reply asks to call.
    pub fn tool_calls(&self) -> &[ToolCall] {
        self.message.tool_calls()
    }

    /// Reads the reply's text as JSON into `T` (a Markdown code fence around it is allowed).
    ///
    /// ```
    /// use serde::Deserialize;
    /// use slateflow::agent::message::Message;
    /// use slateflow::agent::model::ChatResponse;
    ///
    /// #[derive(Debug, Deserialize)]
    /// struct Verdict { category: String, severity: u8 }
    ///
    /// let reply = ChatResponse::new(Message::ai("```json\n{\"category\": \"intrusion\", \"severity\": 4}\n```"));
    /// assert_eq!(reply.parse::<Verdict>()?.severity, 4);
    ///
    /// let wrong = ChatResponse::new(Message::ai(r#"{"category": "intrusion", "severity": "high"}"#));
    /// let error = wrong.parse::<Verdict>().unwrap_err();
    /// assert!(error.to_string().contains("Verdict` at `severity`: invalid type: string \"high\""));
    /// # Ok::<(), slateflow::agent::ModelError>(())
    /// ```
    ///
    /// # Errors
    /// [`ModelError::Output`], naming the type, the path where the reply did not fit, and the reply.
    pub fn parse<T: DeserializeOwned>(&self) -> Result<T, ModelError> {
        parse_output(self.text())
    }
}

/// Parses a structured reply; see [`ChatResponse::parse`].
fn parse_output<T: DeserializeOwned>(text: &str) -> Result<T, ModelError> {
    let body = strip_fence(text);
    let mut document = serde_json::Deserializer::from_str(body);
    let failed = |path: String, message: String| ModelError::Output {
        type_name: std::any::type_name::<T>(),
        path,
        message,
        text: text.to_string(),
    };
    let value: T = serde_path_to_error::deserialize(&mut document)
        .map_err(|error| failed(error.path().to_string(), error.inner().to_string()))?;
    document
        .end()
        .map_err(|error| failed(".".to_string(), error.to_string()))?;
    Ok(value)
}

/// The text inside a Markdown code fence (```` ```json ... ``` ````), or the text itself.
fn strip_fence(text: &str) -> &str {
    let trimmed = text.trim();
    let Some(rest) = trimmed.strip_prefix("```") else {
        return trimmed;
    };
    let Some(body) = rest.strip_suffix("```") else {
        return trimmed;
    };
    // Drop the language tag on the opening line.
    body.split_once('\n')
        .map_or(body, |(_, inner)| inner)
        .trim()
}

/// A chat model: messages (and tools) in, one reply out.
///
/// Implement [`chat`](ChatModel::chat); [`stream`](ChatModel::stream) sends the reply's text as
/// it is generated, and by default sends it in one piece after `chat`. Share a model between nodes
/// with `Arc` (an `Arc<M>` is a model too).
///
/// ```
/// use slateflow::agent::message::Message;
/// use slateflow::agent::model::{ChatModel, ChatRequest, ChatResponse};
/// use slateflow::agent::ModelError;
///
/// /// Repeats the last message, shouted.
/// struct Echo;
///
/// impl ChatModel for Echo {
///     async fn chat(&self, request: &ChatRequest) -> Result<ChatResponse, ModelError> {
///         let last = request.messages.last().map(Message::content).unwrap_or_default();
///         Ok(ChatResponse::new(Message::ai(last.to_uppercase())))
///     }
/// }
///
/// # tokio::runtime::Builder::new_current_thread().build().unwrap().block_on(async {
/// let reply = Echo.chat(&ChatRequest::new(vec![Message::human("hi")])).await?;
/// assert_eq!(reply.text(), "HI");
/// # Ok::<(), ModelError>(()) }).unwrap();
/// ```
pub trait ChatModel: Send + Sync {
    /// One completion.
    fn chat(
        &self,
        request: &ChatRequest,
    ) -> impl Future<Output = Result<ChatResponse, ModelError>> + Send;

    /// One completion, calling `on_text` with each piece of the reply's text as it arrives. The
    /// default calls [`chat`](ChatModel::chat) and sends the whole text at once.
    fn stream(
        &self,
        request: &ChatRequest,
        on_text: &(dyn Fn(&str) + Sync),
    ) -> impl Future<Output = Result<ChatResponse, ModelError>> + Send {
        async move {
            let response = self.chat(request).await?;
            if !response.text().is_empty() {
                on_text(response.text());
            }
            Ok(response)
        }
    }

    /// A completion read as JSON into `T` (structured output): sends `request` as it is (set
    /// [`ChatRequest::with_output`] to ask the endpoint for JSON) and parses the reply.
    ///
    /// # Errors
    /// The call's [`ModelError`], or [`ModelError::Output`] naming what did not parse.
    fn chat_into<T: DeserializeOwned>(
        &self,
        request: &ChatRequest,
    ) -> impl Future<Output = Result<T, ModelError>> + Send {
        async move { self.chat(request).await?.parse() }
    }
}

impl<M: ChatModel + ?Sized> ChatModel for Arc<M> {
    fn chat(
        &self,
        request: &ChatRequest,
    ) -> impl Future<Output = Result<ChatResponse, ModelError>> + Send {
        (**self).chat(request)
    }

    fn stream(
        &self,
        request: &ChatRequest,
        on_text: &(dyn Fn(&str) + Sync),
    ) -> impl Future<Output = Result<ChatResponse, ModelError>> + Send {
        (**self).stream(request, on_text)
    }
}

type Responder = dyn Fn(&ChatRequest) -> Result<ChatResponse, ModelError> + Send + Sync;

/// A model that answers from a script: for tests and offline examples.
///
/// Replies are given in order ([`reply`](ScriptedModel::reply),
/// [`call_tools`](ScriptedModel::call_tools), [`fail`](ScriptedModel::fail)), or computed from
/// each request ([`ScriptedModel::from_fn`]). Every request is recorded
/// ([`requests`](ScriptedModel::requests)); [`stream`](ChatModel::stream) sends a reply word by
/// word, as a real endpoint would. When the script runs out, the call fails with a
/// [`ModelError`] that says so.
///
/// ```
/// use slateflow::agent::message::{Message, ToolCall};
/// use slateflow::agent::model::{ChatModel, ChatRequest, ScriptedModel};
/// use slateflow::agent::ModelError;
///
/// let model = ScriptedModel::new()
///     .fail(ModelError::status(503, "overloaded"))
///     .call_tools(vec![ToolCall::new("c1", "lookup_ip", r#"{"ip": "10.0.0.5"}"#)])
///     .reply("10.0.0.5 is on the block list.");
///
/// # tokio::runtime::Builder::new_current_thread().build().unwrap().block_on(async {
/// let request = ChatRequest::new(vec![Message::human("Is 10.0.0.5 bad?")]);
/// assert!(model.chat(&request).await.unwrap_err().is_retryable());
/// assert_eq!(model.chat(&request).await?.tool_calls()[0].name, "lookup_ip");
/// assert_eq!(model.chat(&request).await?.text(), "10.0.0.5 is on the block list.");
/// assert!(model.chat(&request).await.unwrap_err().to_string().contains("no reply left"));
/// assert_eq!(model.requests().len(), 4);
/// # Ok::<(), ModelError>(()) }).unwrap();
/// ```
pub struct ScriptedModel {
    script: Mutex<VecDeque<Result<ChatResponse, ModelError>>>,
    responder: Option<Box<Responder>>,
    requests: Mutex<Vec<ChatRequest>>,
}

impl ScriptedModel {
    /// A model with an empty script.
    pub fn new() -> Self {
        Self {
            script: Mutex::new(VecDeque::new()),
            responder: None,
            requests: Mutex::new(Vec::new()),
        }
    }

    /// A model that computes each reply from the request (once its script, if any, is used up).
    pub fn from_fn(
        respond: impl Fn(&ChatRequest) -> Result<ChatResponse, ModelError> + Send + Sync + 'static,
    ) -> Self {
        Self {
            responder: Some(Box::new(respond)),
            ..Self::new()
        }
    }

    /// Then replies with `text`.
    #[must_use]
    pub fn reply(self, text: impl Into<String>) -> Self {
        self.then(Ok(ChatResponse::new(Message::ai(text))))
    }

    /// Then replies with calls of these tools.
    #[must_use]
    pub fn call_tools(self, calls: Vec<ToolCall>) -> Self {
        self.then(Ok(ChatResponse::new(Message::ai_calling("", calls))))
    }

    /// Then fails with `error`.
    #[must_use]
    pub fn fail(self, error: ModelError) -> Self {
        self.then(Err(error))
    }

    /// Then answers with `response`.
    #[must_use]
    pub fn then(self, response: Result<ChatResponse, ModelError>) -> Self {
        self.script
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .push_back(response);
        self
    }

    /// Every request received so far, in order.
    pub fn requests(&self) -> Vec<ChatRequest> {
        self.requests
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }

    /// How many scripted replies are left.
    pub fn remaining(&self) -> usize {
        self.script
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .len()
    }

    fn answer(&self, request: &ChatRequest) -> Result<ChatResponse, ModelError> {
        let number = {
            let mut requests = self.requests.lock().unwrap_or_else(PoisonError::into_inner);
            requests.push(request.clone());
            requests.len()
        };
        let scripted = self
            .script
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .pop_front();
        match (scripted, &self.responder) {
            (Some(response), _) => response,
            (None, Some(respond)) => respond(request),
            (None, None) => Err(ModelError::permanent(format!(
                "the scripted model has no reply left for request {number}: script one more \
                 reply, or check why the flow called the model more often than expected"
            ))),
        }
    }
}

impl Default for ScriptedModel {
    fn default() -> Self {
        Self::new()
    }
}

impl std::fmt::Debug for ScriptedModel {
    fn fmt(&self, formatter: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        formatter
            .debug_struct("ScriptedModel")
            .field("remaining", &self.remaining())
            .field("responder", &self.responder.is_some())
            .field(
                "requests",
                &self.requests.lock().map_or(0, |requests| requests.len()),
            )
            .finish_non_exhaustive()
    }
}

impl ChatModel for ScriptedModel {
    async fn chat(&self, request: &ChatRequest) -> Result<ChatResponse, ModelError> {
        self.answer(request)
    }

    async fn stream(
        &self,
        request: &ChatRequest,
        on_text: &(dyn Fn(&str) + Sync),
    ) -> Result<ChatResponse, ModelError> {
        let response = self.answer(request)?;
        for piece in response.text().split_inclusive(' ') {
            on_text(piece);
        }
        Ok(response)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fences_are_stripped_only_when_whole() {
        assert_eq!(strip_fence("```json\n{\"a\": 1}\n```"), "{\"a\": 1}");
        assert_eq!(strip_fence("```\n[1]\n```"), "[1]");
        assert_eq!(strip_fence("  {\"a\": 1} "), "{\"a\": 1}");
        assert_eq!(strip_fence("```json {\"a\""), "```json {\"a\"");
    }

    #[test]
    fn output_errors_name_the_type_the_path_and_the_reply() {
        #[derive(Debug, Deserialize)]
        #[allow(dead_code)]
        struct Verdict {
            items: Vec<Item>,
        }
        #[derive(Debug, Deserialize)]
        #[allow(dead_code)]
        struct Item {
            name: String,
        }
        let error =
            parse_output::<Verdict>(r#"{"items": [{"name": "a"}, {"name": 3}]}"#).unwrap_err();
        let ModelError::Output {
            type_name,
            path,
            text,
            ..
        } = &error
        else {
            panic!("{error:?}");
        };
        assert!(type_name.ends_with("Verdict"));
        assert_eq!(path, "items[1].name");
        assert!(text.contains("{\"name\": 3}"));
        assert!(!error.is_retryable());
        let error = parse_output::<Vec<u8>>("[1] and more").unwrap_err();
        assert!(
            matches!(error, ModelError::Output { ref path, .. } if path == "."),
            "{error:?}"
        );
        let error = parse_output::<Vec<u8>>("not json").unwrap_err();
        assert!(
            error.to_string().contains("the reply was: not json"),
            "{error}"
        );
    }
}
