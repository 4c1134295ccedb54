//! Messages: what people, agents, models and tools say to each other, kept in the shared state.
//!
//! - [`Message`]: system, human, ai (text and [`ToolCall`]s), tool (the answer to one call, maybe an
//!   error). Serialized in the OpenAI chat shape (`role`: `system`, `user`, `assistant`, `tool`);
//!   `LangChain`'s `human` and `ai` are accepted when reading.
//! - A `Vec<Message>` field with `#[reducer(append)]` is an append-only conversation.
//! - [`Messages`] is the opt-in conversation that edits by id: a message whose id is already there
//!   replaces it in place, [`Messages::remove`] and [`Messages::remove_all`] take messages out.
//! - [`Histories`]: one conversation per agent, keyed by the agent's path in the flow.
//! - [`mint_id`]: ids made from the thread, the step, the node and an index; never random, so a
//!   resumed run makes the same ones.
//!
//! This module knows the state's reducers ([`Append`]) and a node's [`Context`]; nothing about
//! models, tools or runs.

use std::collections::BTreeMap;
use std::fmt;
use std::ops::Deref;

use serde::de::Error as _;
use serde::{Deserialize, Deserializer, Serialize, Serializer};
use serde_json::Value;

use crate::node::Context;
use crate::reducer::Append;

/// One message of a conversation.
///
/// ```
/// use slateflow::agent::message::{Message, ToolCall};
///
/// let question = Message::human("Is 10.0.0.5 on the block list?");
/// let call = ToolCall::new("call_1", "lookup_ip", r#"{"ip": "10.0.0.5"}"#);
/// let answer = Message::ai_calling("", vec![call]);
/// let json = serde_json::to_value(&answer)?;
/// assert_eq!(json["role"], "assistant");
/// assert_eq!(json["tool_calls"][0]["function"]["name"], "lookup_ip");
///
/// // LangChain's role names are read too.
/// let read: Message = serde_json::from_str(r#"{"role": "human", "content": "hi"}"#)?;
/// assert_eq!(read, Message::human("hi"));
/// assert_eq!(question.content(), "Is 10.0.0.5 on the block list?");
/// # Ok::<(), serde_json::Error>(())
/// ```
#[derive(Debug, Clone, PartialEq)]
pub enum Message {
    /// Instructions for the model.
    System {
        /// The text.
        content: String,
        /// The message's id, if it has one.
        id: Option<String>,
    },
    /// What a person (or the application, speaking for one) says.
    Human {
        /// The text (of the text parts, joined, when the message has [`parts`](Message::parts)).
        content: String,
        /// The content's parts, in order, when one of them is not text (an image): empty for a
        /// message of text alone. See [`Message::human_parts`].
        parts: Vec<ContentPart>,
        /// The message's id, if it has one.
        id: Option<String>,
    },
    /// What a model says: text, tool calls, or both.
    Ai {
        /// The text (empty when the model only calls tools).
        content: String,
        /// The tools the model asks to call, in order.
        tool_calls: Vec<ToolCall>,
        /// The message's id, if it has one.
        id: Option<String>,
    },
    /// The result of one tool call, for the model to read.
    Tool {
        /// The id of the [`ToolCall`] this answers.
        tool_call_id: String,
        /// The tool's output, or what went wrong (the text parts, joined, when it has
        /// [`parts`](Message::parts)).
        content: String,
        /// The output's parts, in order, when one of them is not text: empty for text alone.
        parts: Vec<ContentPart>,
        /// Whether the call failed (the content then says why).
        is_error: bool,
        /// The message's id, if it has one.
        id: Option<String>,
    },
}

/// How a [`Message`] is written and read: OpenAI's shape, tagged by `role`. `LangChain`'s,
/// tagged by `type` (`{"type": "human", "content": "hi"}`), is turned into it first. A message
/// with [`parts`](Message::parts) is written with its parts as its content (OpenAI's list form),
/// as it was read.
#[derive(Serialize, Deserialize)]
#[serde(remote = "Message", tag = "role")]
enum MessageDef {
    #[serde(rename = "system")]
    System {
        #[serde(deserialize_with = "content_text")]
        content: String,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        id: Option<String>,
    },
    #[serde(rename = "user", alias = "human")]
    Human {
        #[serde(deserialize_with = "content_text")]
        content: String,
        #[serde(default, skip_serializing_if = "Vec::is_empty")]
        parts: Vec<ContentPart>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        id: Option<String>,
    },
    #[serde(rename = "assistant", alias = "ai")]
    Ai {
        #[serde(default, deserialize_with = "content_text")]
        content: String,
        #[serde(default, skip_serializing_if = "Vec::is_empty")]
        tool_calls: Vec<ToolCall>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        id: Option<String>,
    },
    #[serde(rename = "tool")]
    Tool {
        tool_call_id: String,
        #[serde(deserialize_with = "content_text")]
        content: String,
        #[serde(default, skip_serializing_if = "Vec::is_empty")]
        parts: Vec<ContentPart>,
        #[serde(default, skip_serializing_if = "std::ops::Not::not")]
        is_error: bool,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        id: Option<String>,
    },
}

impl Serialize for Message {
    fn serialize<Z: Serializer>(&self, serializer: Z) -> Result<Z::Ok, Z::Error> {
        if self.parts().is_empty() {
            return MessageDef::serialize(self, serializer);
        }
        // The parts are the content, in OpenAI's list form.
        let mut value = MessageDef::serialize(self, serde_json::value::Serializer)
            .map_err(<Z::Error as serde::ser::Error>::custom)?;
        if let Value::Object(fields) = &mut value
            && let Some(parts) = fields.remove("parts")
        {
            fields.insert("content".into(), parts);
        }
        value.serialize(serializer)
    }
}

/// One part of a message's content, in OpenAI's form: `{"type": "text", "text": ...}`,
/// `{"type": "image_url", "image_url": {"url": ...}}`, or any other part a model or a tool
/// uses (`LangChain`'s `{"type": "image", ...}` blocks too), kept as it was read.
///
/// ```
/// use slateflow::agent::message::{ContentPart, Message};
///
/// let question = Message::human_parts(vec![
///     ContentPart::text("What is in this picture?"),
///     ContentPart::image_url("https://example.com/cat.png"),
/// ]);
/// assert_eq!(question.content(), "What is in this picture?");
/// assert_eq!(question.parts()[1].kind(), "image_url");
///
/// // Written in OpenAI's list form, and read back the same.
/// let json = serde_json::to_value(&question)?;
/// assert_eq!(json["content"][1]["image_url"]["url"], "https://example.com/cat.png");
/// assert_eq!(serde_json::from_value::<Message>(json)?, question);
/// # Ok::<(), serde_json::Error>(())
/// ```
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(transparent)]
pub struct ContentPart(Value);

impl ContentPart {
    /// A text part.
    pub fn text(text: impl Into<String>) -> Self {
        Self(serde_json::json!({"type": "text", "text": text.into()}))
    }

    /// An image by its URL (a `data:` URL holds the image itself).
    pub fn image_url(url: impl Into<String>) -> Self {
        Self(serde_json::json!({"type": "image_url", "image_url": {"url": url.into()}}))
    }

    /// A part of any other kind, as its JSON object (with its `type`).
    ///
    /// # Errors
    /// The JSON, handed back, when it is not an object with a text `type`.
    pub fn from_json(part: Value) -> Result<Self, Value> {
        if part.get("type").is_some_and(Value::is_string) {
            Ok(Self(part))
        } else {
            Err(part)
        }
    }

    /// Its kind: `text`, `image_url`, ...
    pub fn kind(&self) -> &str {
        self.0
            .get("type")
            .and_then(Value::as_str)
            .unwrap_or_default()
    }

    /// Its text, for a text part.
    pub fn as_text(&self) -> Option<&str> {
        self.0.get("text").and_then(Value::as_str)
    }

    /// The part as JSON, as a model receives it.
    pub fn as_json(&self) -> &Value {
        &self.0
    }
}

/// The text of `parts`' text parts, joined.
fn text_of(parts: &[ContentPart]) -> String {
    parts.iter().filter_map(ContentPart::as_text).collect()
}

impl<'de> Deserialize<'de> for Message {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let mut value = Value::deserialize(deserializer)?;
        if let Value::Object(fields) = &mut value
            && !fields.contains_key("role")
            && let Some(kind) = fields.remove("type")
        {
            // LangChain's message dicts: `type` names the role, and a tool message's status
            // says whether it failed.
            if fields.get("status").and_then(Value::as_str) == Some("error") {
                fields.insert("is_error".into(), Value::Bool(true));
            }
            fields.remove("status");
            for unused in ["name", "additional_kwargs", "response_metadata", "example"] {
                fields.remove(unused);
            }
            if let Some(Value::Array(calls)) = fields.get("tool_calls")
                && calls.is_empty()
            {
                fields.remove("tool_calls");
            }
            fields.insert("role".into(), kind);
        }
        // A human or tool message whose content has a part that is not text keeps its parts.
        if let Value::Object(fields) = &mut value
            && matches!(
                fields.get("role").and_then(Value::as_str),
                Some("user" | "human" | "tool")
            )
            && let Some(Value::Array(parts)) = fields.get("content")
            && parts
                .iter()
                .any(|part| !part.get("text").is_some_and(Value::is_string))
        {
            let parts = parts.clone();
            let text: String = parts
                .iter()
                .filter_map(|part| part.get("text").and_then(Value::as_str))
                .collect();
            fields.insert("content".into(), Value::String(text));
            fields.insert("parts".into(), Value::Array(parts));
        }
        MessageDef::deserialize(value).map_err(D::Error::custom)
    }
}

impl Message {
    /// Instructions for the model.
    pub fn system(content: impl Into<String>) -> Self {
        Self::System {
            content: content.into(),
            id: None,
        }
    }

    /// What a person says.
    pub fn human(content: impl Into<String>) -> Self {
        Self::Human {
            content: content.into(),
            parts: Vec::new(),
            id: None,
        }
    }

    /// What a person says in parts, some not text (an image with a question): its
    /// [`content`](Message::content) is the text parts, joined.
    pub fn human_parts(parts: Vec<ContentPart>) -> Self {
        Self::Human {
            content: text_of(&parts),
            parts: if parts.iter().all(|part| part.kind() == "text") {
                Vec::new()
            } else {
                parts
            },
            id: None,
        }
    }

    /// A model's text reply.
    pub fn ai(content: impl Into<String>) -> Self {
        Self::ai_calling(content, Vec::new())
    }

    /// A model's reply that calls tools.
    pub fn ai_calling(content: impl Into<String>, tool_calls: Vec<ToolCall>) -> Self {
        Self::Ai {
            content: content.into(),
            tool_calls,
            id: None,
        }
    }

    /// A tool's output, answering the call `tool_call_id`.
    pub fn tool(tool_call_id: impl Into<String>, content: impl Into<String>) -> Self {
        Self::Tool {
            tool_call_id: tool_call_id.into(),
            content: content.into(),
            parts: Vec::new(),
            is_error: false,
            id: None,
        }
    }

    /// A failed tool call, answering the call `tool_call_id`: `content` tells the model what went
    /// wrong, so that it can try again differently.
    pub fn tool_error(tool_call_id: impl Into<String>, content: impl Into<String>) -> Self {
        Self::Tool {
            tool_call_id: tool_call_id.into(),
            content: content.into(),
            parts: Vec::new(),
            is_error: true,
            id: None,
        }
    }

    /// The same message with the id `id`.
    #[must_use]
    pub fn with_id(mut self, id: impl Into<String>) -> Self {
        *self.id_slot() = Some(id.into());
        self
    }

    /// The message's id, if it has one.
    pub fn id(&self) -> Option<&str> {
        match self {
            Self::System { id, .. }
            | Self::Human { id, .. }
            | Self::Ai { id, .. }
            | Self::Tool { id, .. } => id.as_deref(),
        }
    }

    fn id_slot(&mut self) -> &mut Option<String> {
        match self {
            Self::System { id, .. }
            | Self::Human { id, .. }
            | Self::Ai { id, .. }
            | Self::Tool { id, .. } => id,
        }
    }

    /// The text of the message.
    pub fn content(&self) -> &str {
        match self {
            Self::System { content, .. }
            | Self::Human { content, .. }
            | Self::Ai { content, .. }
            | Self::Tool { content, .. } => content,
        }
    }

    /// The role as the OpenAI chat format names it: `system`, `user`, `assistant` or `tool`.
    pub fn role(&self) -> &'static str {
        match self {
            Self::System { .. } => "system",
            Self::Human { .. } => "user",
            Self::Ai { .. } => "assistant",
            Self::Tool { .. } => "tool",
        }
    }

    /// The parts of a human or tool message whose content is not text alone (an image); empty
    /// for text, and for the other roles.
    pub fn parts(&self) -> &[ContentPart] {
        match self {
            Self::Human { parts, .. } | Self::Tool { parts, .. } => parts,
            _ => &[],
        }
    }

    /// The tool calls of an ai message; empty for the others.
    pub fn tool_calls(&self) -> &[ToolCall] {
        match self {
            Self::Ai { tool_calls, .. } => tool_calls,
            _ => &[],
        }
    }

    /// Gives the message an id made by [`mint_id`] when it has none; keeps the one it has.
    pub fn ensure_id(&mut self, context: &Context<'_>, index: usize) {
        let slot = self.id_slot();
        if slot.is_none() {
            *slot = Some(mint_id(context, index));
        }
    }
}

impl fmt::Display for Message {
    /// `role: content`, with an ai message's tool calls after its text and a failed tool call
    /// marked: `assistant: [lookup_ip({"ip": "10.0.0.5"})]`, `tool (failed): no such host`.
    fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        formatter.write_str(self.role())?;
        if let Self::Tool { is_error: true, .. } = self {
            formatter.write_str(" (failed)")?;
        }
        formatter.write_str(":")?;
        if !self.content().is_empty() {
            write!(formatter, " {}", self.content())?;
        }
        for part in self.parts().iter().filter(|part| part.as_text().is_none()) {
            write!(formatter, " [{}]", part.kind())?;
        }
        for call in self.tool_calls() {
            write!(formatter, " [{}({})]", call.name, call.arguments)?;
        }
        Ok(())
    }
}

/// An id for the `index`-th message a node makes at its step: `thread:step:path:index` (`run` for
/// the thread of a run that is not durable). The same run makes the same ids, resumed or not.
///
/// ```
/// use slateflow::{Context, Params};
///
/// let params = Params::new();
/// let context = Context::new(&params, "investigate", 4);
/// assert_eq!(slateflow::agent::message::mint_id(&context, 1), "run:4:investigate:1");
/// ```
pub fn mint_id(context: &Context<'_>, index: usize) -> String {
    format!(
        "{}:{}:{}:{index}",
        context.thread().unwrap_or("run"),
        context.step(),
        context.at()
    )
}

/// Reads `content` as text: a string, `null` (no text), or OpenAI's list of parts (whose text
/// parts are joined).
fn content_text<'de, D: Deserializer<'de>>(deserializer: D) -> Result<String, D::Error> {
    match Value::deserialize(deserializer)? {
        Value::Null => Ok(String::new()),
        Value::String(text) => Ok(text),
        Value::Array(parts) => {
            let mut text = String::new();
            for part in parts {
                match part.get("text").and_then(Value::as_str) {
                    Some(piece) => text.push_str(piece),
                    None => {
                        return Err(D::Error::custom(format!(
                            "a content part without text: {part} (only human and tool messages \
                             hold parts that are not text)"
                        )));
                    }
                }
            }
            Ok(text)
        }
        other => Err(D::Error::custom(format!(
            "content must be text, null or a list of text parts, not {other}"
        ))),
    }
}

/// A model's request to call a tool: the call's id, the tool's name and its arguments as the
/// model wrote them (JSON text, which may not be valid).
///
/// Serialized in the OpenAI shape, `{"id", "type": "function", "function": {"name", "arguments"}}`;
/// a flat `{"id", "name", "arguments"}` (or `LangChain`'s `args`), with arguments as text or as an
/// object, is read too.
///
/// ```
/// use slateflow::agent::message::ToolCall;
///
/// let call = ToolCall::new("call_7", "add", r#"{"a": 2, "b": 3}"#);
/// assert_eq!(call.arguments()?["b"], 3);
/// let broken = ToolCall::new("call_8", "add", r#"{"a": 2,"#);
/// assert!(broken.arguments().unwrap_err().to_string().contains("not valid JSON"));
/// # Ok::<(), slateflow::agent::message::ArgumentsError>(())
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ToolCall {
    /// The call's id, which the tool message answering it repeats.
    pub id: String,
    /// The tool's name.
    pub name: String,
    /// The arguments as JSON text, exactly as the model wrote them.
    pub arguments: String,
}

impl ToolCall {
    /// A call of the tool `name` with `arguments` (JSON text).
    pub fn new(
        id: impl Into<String>,
        name: impl Into<String>,
        arguments: impl Into<String>,
    ) -> Self {
        Self {
            id: id.into(),
            name: name.into(),
            arguments: arguments.into(),
        }
    }

    /// The arguments as JSON (empty text reads as `{}`).
    ///
    /// # Errors
    /// [`ArgumentsError`] when they are not valid JSON, naming the tool and where it broke.
    pub fn arguments(&self) -> Result<Value, ArgumentsError> {
        if self.arguments.trim().is_empty() {
            return Ok(Value::Object(serde_json::Map::new()));
        }
        serde_json::from_str(&self.arguments).map_err(|error| ArgumentsError {
            tool: self.name.clone(),
            message: error.to_string(),
        })
    }
}

/// A tool call's arguments are not valid JSON. Shown to the model as a failed tool call.
///
/// ```
/// use slateflow::agent::message::{ArgumentsError, ToolCall};
///
/// let call = ToolCall::new("call_1", "lookup", r#"{"ip": "10.0.0.5""#);
/// let error: ArgumentsError = call.arguments().unwrap_err();
/// assert_eq!(error.tool, "lookup");
/// assert!(error.to_string().starts_with("the arguments of the call to `lookup` are not valid JSON"));
/// ```
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("the arguments of the call to `{tool}` are not valid JSON: {message}")]
pub struct ArgumentsError {
    /// The tool called.
    pub tool: String,
    /// What the JSON parser said, with the line and column.
    pub message: String,
}

impl Serialize for ToolCall {
    fn serialize<Z: Serializer>(&self, serializer: Z) -> Result<Z::Ok, Z::Error> {
        #[derive(Serialize)]
        struct Function<'a> {
            name: &'a str,
            arguments: &'a str,
        }
        #[derive(Serialize)]
        struct Wire<'a> {
            id: &'a str,
            #[serde(rename = "type")]
            kind: &'static str,
            function: Function<'a>,
        }
        Wire {
            id: &self.id,
            kind: "function",
            function: Function {
                name: &self.name,
                arguments: &self.arguments,
            },
        }
        .serialize(serializer)
    }
}

impl<'de> Deserialize<'de> for ToolCall {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let value = Value::deserialize(deserializer)?;
        let text = |field: &Value, what: &str| -> Result<String, D::Error> {
            match field {
                Value::String(text) => Ok(text.clone()),
                Value::Null => Err(D::Error::custom(format!("a tool call without {what}"))),
                other => Err(D::Error::custom(format!(
                    "a tool call's {what} must be text, not {other}"
                ))),
            }
        };
        let id = text(&value["id"], "an id")?;
        let body = if value["function"].is_object() {
            &value["function"]
        } else {
            &value
        };
        let name = text(&body["name"], "a name")?;
        let arguments = match body.get("arguments").or_else(|| body.get("args")) {
            None | Some(Value::Null) => String::new(),
            Some(Value::String(arguments)) => arguments.clone(),
            Some(other) => other.to_string(),
        };
        Ok(Self {
            id,
            name,
            arguments,
        })
    }
}

/// Removing or replacing a message by an id the conversation does not hold.
///
/// ```
/// use slateflow::Append;
/// use slateflow::agent::message::{Message, Messages, UnknownMessage};
///
/// let mut chat = Messages::new();
/// chat.push_item(Message::human("hi").with_id("q1"));
/// let error: UnknownMessage = chat.remove("q9").unwrap_err();
/// assert_eq!((error.id.as_str(), error.verb), ("q9", "removed"));
/// assert_eq!(error.known, ["q1"]);
/// ```
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("no message has the id `{id}`, so it cannot be {verb}{}", known_ids(.known))]
pub struct UnknownMessage {
    /// The id asked for.
    pub id: String,
    /// What was asked: `removed` or `replaced`.
    pub verb: &'static str,
    /// The ids the conversation holds (the last ten).
    pub known: Vec<String>,
}

fn known_ids(known: &[String]) -> String {
    if known.is_empty() {
        "; no message has an id".to_string()
    } else {
        format!("; the ids are: {}", known.join(", "))
    }
}

/// A conversation that edits by id: the opt-in alternative to an append-only `Vec<Message>`.
///
/// As a field with `#[reducer(append)]`, an update's messages are appended, except that a message
/// whose id is already there replaces that message in place (LangGraph's `add_messages`).
/// [`remove`](Messages::remove) and [`replace`](Messages::replace) build updates from the current
/// conversation and refuse an id it does not hold; [`remove_all`](Messages::remove_all) clears it.
/// Hand such an update to the state update's `append_<field>` setter, which takes it whole.
/// Edits made in parallel branches merge like any append: in the order the branches are written.
///
/// In the state it reads like a slice (`state.messages.last()`, `.len()`, `for m in &state.messages`)
/// and serializes as a JSON array.
///
/// ```
/// use serde::{Deserialize, Serialize};
/// use slateflow::SharedState;
/// use slateflow::agent::message::{Message, Messages};
///
/// #[derive(SharedState, Debug, Default, Serialize, Deserialize)]
/// struct Chat {
///     #[reducer(append)]
///     messages: Messages,
/// }
///
/// let mut chat = Chat::default();
/// chat.apply(Chat::update()
///     .push_messages(Message::human("hi").with_id("q"))
///     .push_messages(Message::ai("draft").with_id("a")));
/// chat.apply(Chat::update().push_messages(Message::ai("final").with_id("a"))); // replaces "a"
/// chat.apply(Chat::update().append_messages(chat.messages.remove("q")?));
/// assert_eq!(chat.messages.len(), 1);
/// assert_eq!(chat.messages[0].content(), "final");
///
/// let error = chat.messages.remove("nope").unwrap_err();
/// assert_eq!(error.to_string(), "no message has the id `nope`, so it cannot be removed; the ids are: a");
/// # Ok::<(), slateflow::agent::message::UnknownMessage>(())
/// ```
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Messages {
    list: Vec<Message>,
    // Edits for the messages before this update's: which ids to take out, and whether to clear
    // everything first. Always empty in a state (applying resolves them).
    removed: Vec<String>,
    remove_all: bool,
}

impl Messages {
    /// An empty conversation.
    pub const fn new() -> Self {
        Self {
            list: Vec::new(),
            removed: Vec::new(),
            remove_all: false,
        }
    }

    /// An update that removes the message `id` from this conversation.
    ///
    /// # Errors
    /// [`UnknownMessage`] when no message has that id.
    pub fn remove(&self, id: &str) -> Result<Messages, UnknownMessage> {
        self.check(id, "removed")?;
        Ok(Self {
            removed: vec![id.to_string()],
            ..Self::new()
        })
    }

    /// An update that replaces the message with `message`'s id, in place.
    ///
    /// # Errors
    /// [`UnknownMessage`] when `message` has no id, or no message here has it.
    pub fn replace(&self, message: Message) -> Result<Messages, UnknownMessage> {
        self.check(message.id().unwrap_or_default(), "replaced")?;
        Ok(Self {
            list: vec![message],
            ..Self::new()
        })
    }

    /// An update that removes every message (the ones it carries itself stay).
    pub fn remove_all() -> Messages {
        Self {
            remove_all: true,
            ..Self::new()
        }
    }

    /// The messages, in order.
    pub fn as_slice(&self) -> &[Message] {
        &self.list
    }

    fn check(&self, id: &str, verb: &'static str) -> Result<(), UnknownMessage> {
        if self.position(id).is_some() {
            return Ok(());
        }
        let known: Vec<String> = self
            .list
            .iter()
            .filter_map(Message::id)
            .map(str::to_string)
            .collect();
        Err(UnknownMessage {
            id: id.to_string(),
            verb,
            known: known[known.len().saturating_sub(10)..].to_vec(),
        })
    }

    fn position(&self, id: &str) -> Option<usize> {
        self.list
            .iter()
            .position(|message| message.id() == Some(id))
    }

    /// Adds `message` at the end, or in place of the message with its id.
    fn put(&mut self, message: Message) {
        match message.id().and_then(|id| self.position(id)) {
            Some(index) => self.list[index] = message,
            None => self.list.push(message),
        }
    }

    fn take_out(&mut self, id: &str) {
        self.list.retain(|message| message.id() != Some(id));
    }
}

impl Append for Messages {
    type Item = Message;

    /// Composes two updates: `new`'s edits apply to `self`'s messages and are kept for the state.
    fn append(&mut self, new: Self) {
        if new.remove_all {
            *self = new;
            return;
        }
        for id in new.removed {
            self.take_out(&id);
            // After a clear, the state holds nothing of this id any more.
            if !self.remove_all && !self.removed.contains(&id) {
                self.removed.push(id);
            }
        }
        for message in new.list {
            self.put(message);
        }
    }

    fn push_item(&mut self, item: Message) {
        self.put(item);
    }

    /// Writes an update into the state: clears, removes, then adds or replaces by id.
    fn apply(&mut self, new: Self) {
        if new.remove_all {
            self.list.clear();
        }
        for id in &new.removed {
            self.take_out(id);
        }
        for message in new.list {
            self.put(message);
        }
    }
}

impl Deref for Messages {
    type Target = [Message];

    fn deref(&self) -> &[Message] {
        &self.list
    }
}

impl<'a> IntoIterator for &'a Messages {
    type Item = &'a Message;
    type IntoIter = std::slice::Iter<'a, Message>;

    fn into_iter(self) -> Self::IntoIter {
        self.list.iter()
    }
}

impl IntoIterator for Messages {
    type Item = Message;
    type IntoIter = std::vec::IntoIter<Message>;

    /// The messages only: an update's removals are not items. Put an update with removals into a
    /// state update whole, with the derive's `append_<field>` setter.
    fn into_iter(self) -> Self::IntoIter {
        self.list.into_iter()
    }
}

impl FromIterator<Message> for Messages {
    fn from_iter<I: IntoIterator<Item = Message>>(messages: I) -> Self {
        let mut collected = Self::new();
        for message in messages {
            collected.put(message);
        }
        collected
    }
}

impl From<Vec<Message>> for Messages {
    fn from(messages: Vec<Message>) -> Self {
        messages.into_iter().collect()
    }
}

impl Serialize for Messages {
    /// A JSON array of messages; an update with edits as `{"remove_all", "remove", "messages"}`.
    fn serialize<Z: Serializer>(&self, serializer: Z) -> Result<Z::Ok, Z::Error> {
        #[derive(Serialize)]
        struct Edit<'a> {
            #[serde(skip_serializing_if = "std::ops::Not::not")]
            remove_all: bool,
            #[serde(skip_serializing_if = "<[String]>::is_empty")]
            remove: &'a [String],
            messages: &'a [Message],
        }
        if self.removed.is_empty() && !self.remove_all {
            self.list.serialize(serializer)
        } else {
            Edit {
                remove_all: self.remove_all,
                remove: &self.removed,
                messages: &self.list,
            }
            .serialize(serializer)
        }
    }
}

impl<'de> Deserialize<'de> for Messages {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        #[derive(Deserialize)]
        #[serde(untagged, deny_unknown_fields)]
        enum Wire {
            List(Vec<Message>),
            Edit {
                #[serde(default)]
                remove_all: bool,
                #[serde(default)]
                remove: Vec<String>,
                #[serde(default)]
                messages: Vec<Message>,
            },
        }
        Ok(match Wire::deserialize(deserializer)? {
            Wire::List(list) => Self {
                list,
                ..Self::new()
            },
            Wire::Edit {
                remove_all,
                remove,
                messages,
            } => Self {
                list: messages,
                removed: remove,
                remove_all,
            },
        })
    }
}

/// One conversation per agent, keyed by the agent's path in the flow (`investigate`,
/// `review/critic`): what each agent said, kept apart from the global messages so that its
/// prompts stay focused.
///
/// As a field with `#[reducer(append)]`, an update's messages are appended to their agent's
/// history. The [`Agent`](crate::agent::Agent) node reads and writes it for you.
///
/// ```
/// use slateflow::reducer::Append;
/// use slateflow::agent::message::{Histories, Message};
///
/// let mut histories = Histories::default();
/// histories.apply(Histories::of("investigate", [Message::ai("47 failed logins")]));
/// histories.apply(Histories::of("investigate", [Message::ai("the IP is on a block list")]));
/// assert_eq!(histories.get("investigate").len(), 2);
/// assert!(histories.get("report").is_empty());
/// ```
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(transparent)]
pub struct Histories(BTreeMap<String, Vec<Message>>);

impl Histories {
    /// An update that appends `messages` to `agent`'s history.
    pub fn of(agent: impl Into<String>, messages: impl IntoIterator<Item = Message>) -> Self {
        Self(BTreeMap::from([(
            agent.into(),
            messages.into_iter().collect(),
        )]))
    }

    /// The history of `agent` (empty when it has none).
    pub fn get(&self, agent: &str) -> &[Message] {
        self.0.get(agent).map_or(&[], Vec::as_slice)
    }

    /// Every agent with a history, and the history, in order of the agents' paths.
    pub fn iter(&self) -> impl Iterator<Item = (&str, &[Message])> {
        self.0
            .iter()
            .map(|(agent, messages)| (agent.as_str(), messages.as_slice()))
    }
}

impl Append for Histories {
    /// An agent's path and one message.
    type Item = (String, Message);

    fn append(&mut self, new: Self) {
        for (agent, mut messages) in new.0 {
            self.0.entry(agent).or_default().append(&mut messages);
        }
    }

    fn push_item(&mut self, (agent, message): (String, Message)) {
        self.0.entry(agent).or_default().push(message);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ids(messages: &Messages) -> Vec<&str> {
        messages.iter().map(|m| m.id().unwrap_or("-")).collect()
    }

    fn m(id: &str, text: &str) -> Message {
        Message::ai(text).with_id(id)
    }

    /// Applying `a` then `b` equals applying `a` composed with `b`, for every pair of updates
    /// drawn from a set of edits, on states that hold the ids or not.
    #[test]
    fn composing_edits_applies_like_applying_them_in_turn() {
        let base: Messages = vec![m("x", "x0"), m("y", "y0"), Message::human("no id")].into();
        let updates = vec![
            Messages::from(vec![m("x", "x1")]),
            Messages::from(vec![m("z", "z1")]),
            base.remove("x").unwrap(),
            base.remove("y").unwrap(),
            Messages::remove_all(),
            {
                let mut u = Messages::remove_all();
                u.push_item(m("x", "x2"));
                u
            },
            {
                let mut u = base.remove("x").unwrap();
                u.push_item(m("x", "x3"));
                u
            },
            Messages::from(vec![Message::human("plain")]),
        ];
        let states = [base.clone(), Messages::new(), vec![m("y", "y9")].into()];
        for state in &states {
            for a in &updates {
                for b in &updates {
                    for c in &updates {
                        let mut stepwise = state.clone();
                        stepwise.apply(a.clone());
                        stepwise.apply(b.clone());
                        stepwise.apply(c.clone());
                        let mut ab = a.clone();
                        ab.append(b.clone());
                        let mut left = ab.clone();
                        left.append(c.clone());
                        let mut bc = b.clone();
                        bc.append(c.clone());
                        let mut right = a.clone();
                        right.append(bc);
                        for composed in [left, right] {
                            let mut at_once = state.clone();
                            at_once.apply(composed);
                            assert_eq!(
                                at_once.as_slice(),
                                stepwise.as_slice(),
                                "{a:?} {b:?} {c:?}"
                            );
                        }
                    }
                }
            }
        }
    }

    #[test]
    fn a_state_never_keeps_edits() {
        let mut state: Messages = vec![m("x", "x0")].into();
        let removal = state.remove("x").unwrap();
        state.apply(removal);
        state.apply(Messages::remove_all());
        assert!(state.removed.is_empty() && !state.remove_all);
        assert_eq!(serde_json::to_string(&state).unwrap(), "[]");
    }

    #[test]
    fn unknown_ids_are_refused_by_name() {
        let state: Messages = vec![m("a", "1"), Message::human("x")].into();
        let error = state.replace(m("b", "2")).unwrap_err();
        assert_eq!(
            error.to_string(),
            "no message has the id `b`, so it cannot be replaced; the ids are: a"
        );
        let error = state.replace(Message::ai("no id")).unwrap_err();
        assert_eq!(error.id, "");
        assert!(state.replace(m("a", "3")).is_ok());
    }

    #[test]
    fn edits_survive_a_round_trip_through_json() {
        let state: Messages = vec![m("a", "1")].into();
        let mut update = state.remove("a").unwrap();
        update.push_item(Message::human("again"));
        let json = serde_json::to_value(&update).unwrap();
        assert_eq!(json["remove"], serde_json::json!(["a"]));
        let back: Messages = serde_json::from_value(json).unwrap();
        assert_eq!(back, update);
        let clear: Messages =
            serde_json::from_str(r#"{"remove_all": true, "messages": []}"#).unwrap();
        assert_eq!(clear, Messages::remove_all());
        assert!(serde_json::from_str::<Messages>(r#"{"drop": ["a"]}"#).is_err());
    }

    #[test]
    fn messages_in_langchains_type_form_read_and_write_back_in_openais() {
        let dicts = serde_json::json!([
            {"type": "system", "content": "be brief", "additional_kwargs": {}, "id": null},
            {"type": "human", "content": "is 10.0.0.5 bad?", "id": "h1", "example": false},
            {"type": "ai", "content": "", "tool_calls": [
                {"name": "lookup", "args": {"ip": "10.0.0.5"}, "id": "c1", "type": "tool_call"}
            ], "response_metadata": {"finish_reason": "tool_calls"}},
            {"type": "tool", "content": "blocked", "tool_call_id": "c1", "status": "error"},
            {"type": "ai", "content": "It is blocked.", "tool_calls": []}
        ]);
        let read: Vec<Message> = serde_json::from_value(dicts).unwrap();
        assert_eq!(read[0], Message::system("be brief"));
        assert_eq!(read[1], Message::human("is 10.0.0.5 bad?").with_id("h1"));
        assert_eq!(read[2].tool_calls()[0].name, "lookup");
        assert_eq!(
            read[2].tool_calls()[0].arguments().unwrap()["ip"],
            "10.0.0.5"
        );
        assert!(
            matches!(&read[3], Message::Tool { is_error: true, content, .. } if content == "blocked")
        );
        assert_eq!(read[4], Message::ai("It is blocked."));
        // Written in OpenAI's shape, and read back the same.
        let written = serde_json::to_value(&read).unwrap();
        assert_eq!(written[1]["role"], "user");
        let again: Vec<Message> = serde_json::from_value(written).unwrap();
        assert_eq!(again, read);
        // A dict with neither names what is missing.
        let error =
            serde_json::from_value::<Message>(serde_json::json!({"content": "hi"})).unwrap_err();
        assert!(error.to_string().contains("role"), "{error}");
    }

    #[test]
    fn parts_that_are_not_text_read_and_write_back_as_they_were() {
        let image = serde_json::json!({"type": "image_url", "image_url": {"url": "data:image/png;base64,iVBOR", "detail": "low"}});
        let block =
            serde_json::json!({"type": "image", "source_type": "url", "url": "https://x/y.png"});
        let dicts = serde_json::json!([
            {"role": "user", "content": [{"type": "text", "text": "What is "}, image, {"type": "text", "text": "this?"}]},
            {"type": "human", "content": [block, {"type": "text", "text": "and this?"}], "id": "h2"},
            {"role": "tool", "tool_call_id": "c1", "content": [{"type": "text", "text": "a chart"}, image]}
        ]);
        let read: Vec<Message> = serde_json::from_value(dicts.clone()).unwrap();
        assert_eq!(read[0].content(), "What is this?", "the text parts, joined");
        let kinds: Vec<&str> = read[0].parts().iter().map(ContentPart::kind).collect();
        assert_eq!(kinds, ["text", "image_url", "text"]);
        assert_eq!(read[0].parts()[1].as_json(), &image);
        assert_eq!(read[1].parts()[0].as_json(), &block);
        assert_eq!(read[1].id(), Some("h2"));
        assert_eq!(read[2].content(), "a chart");
        assert_eq!(read[2].parts().len(), 2);
        assert_eq!(read[0].to_string(), "user: What is this? [image_url]");
        // Written back in OpenAI's list form: the parts exactly, and read back the same.
        let written = serde_json::to_value(&read).unwrap();
        assert_eq!(written[0]["content"], dicts[0]["content"]);
        assert_eq!(written[1]["content"], dicts[1]["content"]);
        assert_eq!(written[1]["role"], "user");
        assert!(written[0].get("parts").is_none());
        let again: Vec<Message> = serde_json::from_value(written).unwrap();
        assert_eq!(again, read);
        // Text parts alone are text.
        let text = Message::human_parts(vec![ContentPart::text("a"), ContentPart::text("b")]);
        assert_eq!(text, Message::human("ab"));
        // Other roles hold text only, and say so.
        let error = serde_json::from_value::<Message>(
            serde_json::json!({"role": "system", "content": [image]}),
        )
        .unwrap_err();
        assert!(
            error.to_string().contains("only human and tool messages"),
            "{error}"
        );
        assert!(ContentPart::from_json(serde_json::json!({"url": "x"})).is_err());
    }

    #[test]
    fn messages_read_the_openai_and_langchain_shapes() {
        let read: Vec<Message> = serde_json::from_str(
            r#"[
                {"role": "system", "content": "be brief"},
                {"role": "user", "content": [{"type": "text", "text": "a"}, {"type": "text", "text": "b"}]},
                {"role": "assistant", "content": null, "tool_calls": [
                    {"id": "c1", "type": "function", "function": {"name": "f", "arguments": "{\"x\":1}"}}
                ]},
                {"role": "tool", "tool_call_id": "c1", "content": "2"},
                {"role": "ai", "content": "done", "tool_calls": [{"id": "c2", "name": "g", "args": {"y": 2}}]}
            ]"#,
        )
        .unwrap();
        assert_eq!(read[0], Message::system("be brief"));
        assert_eq!(read[1], Message::human("ab"));
        assert_eq!(
            read[2].tool_calls()[0],
            ToolCall::new("c1", "f", r#"{"x":1}"#)
        );
        assert_eq!(read[3], Message::tool("c1", "2"));
        assert_eq!(read[4].tool_calls()[0].arguments().unwrap()["y"], 2);
        let written = serde_json::to_value(&read).unwrap();
        assert_eq!(
            written[1],
            serde_json::json!({"role": "user", "content": "ab"})
        );
        assert_eq!(written[2]["content"], "");
        assert_eq!(written[2]["tool_calls"][0]["type"], "function");
        assert_eq!(written[3].get("is_error"), None);
        let error = serde_json::to_value(Message::tool_error("c1", "boom")).unwrap();
        assert_eq!(error["is_error"], true);
        for bad in [
            r#"{"role": "robot", "content": "x"}"#,
            r#"{"role": "user", "content": 3}"#,
            r#"{"role": "assistant", "tool_calls": [{"id": "c", "function": {}}]}"#,
            r#"{"role": "tool", "content": "no call id"}"#,
        ] {
            assert!(serde_json::from_str::<Message>(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn display_shows_the_role_the_text_and_the_calls() {
        let call = ToolCall::new("c", "f", r#"{"x":1}"#);
        assert_eq!(
            Message::ai_calling("", vec![call]).to_string(),
            r#"assistant: [f({"x":1})]"#
        );
        assert_eq!(
            Message::tool_error("c", "boom").to_string(),
            "tool (failed): boom"
        );
        assert_eq!(Message::human("hi").to_string(), "user: hi");
    }

    #[test]
    fn minted_ids_follow_the_context() {
        let params = crate::Params::new();
        let context = Context::new(&params, "writer", 7);
        let mut message = Message::human("x");
        message.ensure_id(&context, 2);
        assert_eq!(message.id(), Some("run:7:writer:2"));
        let mut named = Message::human("y").with_id("mine");
        named.ensure_id(&context, 0);
        assert_eq!(named.id(), Some("mine"));
        assert_eq!(
            ids(&vec![message, named].into()),
            ["run:7:writer:2", "mine"]
        );
    }

    #[test]
    fn histories_append_per_agent() {
        let mut histories = Histories::of("a", [Message::ai("1")]);
        histories.append(Histories::of("b", [Message::ai("2")]));
        histories.append(Histories::of("a", [Message::ai("3")]));
        let texts: Vec<&str> = histories.get("a").iter().map(Message::content).collect();
        assert_eq!(texts, ["1", "3"]);
        let agents: Vec<&str> = histories.iter().map(|(agent, _)| agent).collect();
        assert_eq!(agents, ["a", "b"]);
        let json = serde_json::to_string(&histories).unwrap();
        assert!(json.starts_with(r#"{"a":[{"role":"assistant""#), "{json}");
    }
}
