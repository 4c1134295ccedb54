//! A client for OpenAI-compatible chat completion endpoints (OpenAI, Azure's compatible API,
//! vLLM, Ollama, `llama.cpp`'s server, `LiteLLM`, ...), with streaming over server-sent events.

use std::collections::BTreeMap;
use std::fmt;
use std::time::Duration;

use futures_util::StreamExt;
use serde_json::{Map, Value, json};

use super::{ChatModel, ChatRequest, ChatResponse, ModelError, Usage};
use crate::agent::message::{Message, ToolCall};

/// The endpoint used when none is configured.
const OPENAI_BASE_URL: &str = "https://api.openai.com/v1";
/// The model used when none is configured.
const DEFAULT_MODEL: &str = "gpt-4o-mini";
/// How long one call may take by default, streaming included.
const DEFAULT_TIMEOUT: Duration = Duration::from_secs(120);
/// How much of a body an error quotes.
const QUOTED: usize = 300;

/// A [`ChatModel`] that calls an OpenAI-compatible `/chat/completions` endpoint.
///
/// Configure it in code, or from the environment with [`from_env`](OpenAi::from_env):
/// `OPENAI_BASE_URL` (default `https://api.openai.com/v1`), `OPENAI_API_KEY` (required for the
/// default endpoint; local servers often need none) and `OPENAI_MODEL` (default `gpt-4o-mini`).
///
/// Rate limits (429), server errors (5xx), timeouts and broken connections are retryable
/// [`ModelError`]s; other 4xx are not. The wait an error answer asks for (its `Retry-After` or
/// `retry-after-ms` header) is kept on the error, and a node's [`Retry`](crate::Retry) policy
/// waits at least that long before its next attempt. [`stream`](ChatModel::stream) reads
/// server-sent events and hands each text delta on as it arrives (an
/// [`Agent`](crate::agent::Agent) emits them as [`TOKEN_EVENT`](super::TOKEN_EVENT) events).
///
/// ```no_run
/// use std::time::Duration;
/// use slateflow::agent::message::Message;
/// use slateflow::agent::model::{ChatModel, ChatRequest, OpenAi};
///
/// # async fn example() -> Result<(), slateflow::agent::ModelError> {
/// let model = OpenAi::new("gpt-4o-mini")
///     .with_api_key(std::env::var("OPENAI_API_KEY").unwrap_or_default())
///     .with_timeout(Duration::from_secs(30));
/// let reply = model.chat(&ChatRequest::new(vec![Message::human("Say hi")])).await?;
/// println!("{}", reply.text());
/// # Ok(()) }
/// ```
#[derive(Clone)]
pub struct OpenAi {
    http: reqwest::Client,
    base_url: String,
    api_key: Option<String>,
    model: String,
    timeout: Duration,
}

impl OpenAi {
    /// A client for `model` on OpenAI's endpoint, without a key.
    pub fn new(model: impl Into<String>) -> Self {
        Self {
            http: reqwest::Client::new(),
            base_url: OPENAI_BASE_URL.to_string(),
            api_key: None,
            model: model.into(),
            timeout: DEFAULT_TIMEOUT,
        }
    }

    /// A client configured from `OPENAI_BASE_URL`, `OPENAI_API_KEY` and `OPENAI_MODEL`.
    ///
    /// # Errors
    /// [`ModelError::Config`] when no key is set for OpenAI's own endpoint, or the base URL is not
    /// an `http(s)://` URL.
    pub fn from_env() -> Result<Self, ModelError> {
        Self::from_lookup(|name| std::env::var(name).ok().filter(|value| !value.is_empty()))
    }

    /// [`from_env`](OpenAi::from_env) reading the variables through `lookup` (a configuration
    /// system, a test).
    ///
    /// # Errors
    /// As [`from_env`](OpenAi::from_env).
    pub fn from_lookup(lookup: impl Fn(&str) -> Option<String>) -> Result<Self, ModelError> {
        let base_url = lookup("OPENAI_BASE_URL");
        let api_key = lookup("OPENAI_API_KEY");
        if base_url.is_none() && api_key.is_none() {
            return Err(ModelError::Config(
                "set OPENAI_API_KEY for OpenAI's endpoint, or OPENAI_BASE_URL for another \
                 OpenAI-compatible server"
                    .to_string(),
            ));
        }
        let mut client = Self::new(lookup("OPENAI_MODEL").unwrap_or_else(|| DEFAULT_MODEL.into()));
        if let Some(base_url) = base_url {
            client = client.with_base_url(base_url);
        }
        if !(client.base_url.starts_with("http://") || client.base_url.starts_with("https://")) {
            return Err(ModelError::Config(format!(
                "OPENAI_BASE_URL must be an http:// or https:// URL such as \
                 `http://127.0.0.1:11434/v1`, not `{}`",
                client.base_url
            )));
        }
        if let Some(api_key) = api_key {
            client = client.with_api_key(api_key);
        }
        Ok(client)
    }

    /// Calls the endpoint at `base_url` (up to `/v1`; `/chat/completions` is added).
    #[must_use]
    pub fn with_base_url(mut self, base_url: impl Into<String>) -> Self {
        self.base_url = base_url.into().trim_end_matches('/').to_string();
        self
    }

    /// Sends `api_key` as a bearer token.
    #[must_use]
    pub fn with_api_key(mut self, api_key: impl Into<String>) -> Self {
        self.api_key = Some(api_key.into());
        self
    }

    /// Asks for `model`.
    #[must_use]
    pub fn with_model(mut self, model: impl Into<String>) -> Self {
        self.model = model.into();
        self
    }

    /// Gives up on a call after `timeout` (120 s by default), streaming included.
    #[must_use]
    pub fn with_timeout(mut self, timeout: Duration) -> Self {
        self.timeout = timeout;
        self
    }

    /// The model asked for.
    pub fn model(&self) -> &str {
        &self.model
    }

    /// The endpoint's base URL.
    pub fn base_url(&self) -> &str {
        &self.base_url
    }

    /// The request body in the OpenAI wire format.
    fn body(&self, request: &ChatRequest, stream: bool) -> Value {
        let mut body = Map::new();
        body.insert("model".into(), Value::from(self.model.as_str()));
        body.insert(
            "messages".into(),
            request.messages.iter().map(wire_message).collect(),
        );
        if !request.tools.is_empty() {
            let tools = request
                .tools
                .iter()
                .map(|tool| {
                    json!({
                        "type": "function",
                        "function": {
                            "name": tool.name,
                            "description": tool.description,
                            "parameters": tool.parameters,
                        }
                    })
                })
                .collect();
            body.insert("tools".into(), tools);
        }
        if let Some(output) = &request.output {
            body.insert(
                "response_format".into(),
                json!({
                    "type": "json_schema",
                    "json_schema": {"name": output.name, "schema": output.schema},
                }),
            );
        }
        if let Some(temperature) = request.temperature {
            body.insert("temperature".into(), Value::from(temperature));
        }
        if let Some(max_tokens) = request.max_tokens {
            body.insert("max_tokens".into(), Value::from(max_tokens));
        }
        if stream {
            body.insert("stream".into(), Value::Bool(true));
            body.insert("stream_options".into(), json!({"include_usage": true}));
        }
        Value::Object(body)
    }

    /// Sends the request; an HTTP error status becomes a [`ModelError::Status`].
    async fn send(&self, body: &Value) -> Result<reqwest::Response, ModelError> {
        let url = format!("{}/chat/completions", self.base_url);
        let mut builder = self
            .http
            .post(&url)
            .timeout(self.timeout)
            .header(reqwest::header::CONTENT_TYPE, "application/json")
            .body(body.to_string());
        if let Some(key) = &self.api_key {
            builder = builder.bearer_auth(key);
        }
        let response = builder
            .send()
            .await
            .map_err(|error| self.transport(&error))?;
        let status = response.status();
        if status.is_success() {
            return Ok(response);
        }
        let retry_after = retry_after(response.headers());
        let text = response.text().await.unwrap_or_default();
        let message = serde_json::from_str::<Value>(&text)
            .ok()
            .and_then(|body| body["error"]["message"].as_str().map(str::to_string))
            .unwrap_or_else(|| quote(&text));
        Err(ModelError::Status {
            status: status.as_u16(),
            message,
            retry_after,
        })
    }

    /// A failure to talk to the endpoint.
    fn transport(&self, error: &reqwest::Error) -> ModelError {
        if error.is_timeout() {
            ModelError::Timeout {
                after: self.timeout,
            }
        } else {
            ModelError::Connection {
                message: format!("{}/chat/completions: {}", self.base_url, describe(error)),
            }
        }
    }
}

impl fmt::Debug for OpenAi {
    fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        formatter
            .debug_struct("OpenAi")
            .field("base_url", &self.base_url)
            .field("model", &self.model)
            .field("api_key", &self.api_key.as_ref().map(|_| "<set>"))
            .field("timeout", &self.timeout)
            .finish_non_exhaustive()
    }
}

impl ChatModel for OpenAi {
    async fn chat(&self, request: &ChatRequest) -> Result<ChatResponse, ModelError> {
        let response = self.send(&self.body(request, false)).await?;
        let text = response
            .text()
            .await
            .map_err(|error| self.transport(&error))?;
        let body: Value =
            serde_json::from_str(&text).map_err(|error| ModelError::InvalidResponse {
                message: format!("the body is not JSON ({error})"),
                body: quote(&text),
            })?;
        read_completion(&body).map_err(|message| ModelError::InvalidResponse {
            message,
            body: quote(&text),
        })
    }

    async fn stream(
        &self,
        request: &ChatRequest,
        on_text: &(dyn Fn(&str) + Sync),
    ) -> Result<ChatResponse, ModelError> {
        let response = self.send(&self.body(request, true)).await?;
        let mut chunks = response.bytes_stream();
        let mut reader = Events::default();
        let mut reply = Reply::default();
        while let Some(chunk) = chunks.next().await {
            let chunk = chunk.map_err(|error| self.transport(&error))?;
            for data in reader.push(&chunk) {
                if data == "[DONE]" {
                    return Ok(reply.finish());
                }
                let event: Value =
                    serde_json::from_str(&data).map_err(|error| ModelError::InvalidResponse {
                        message: format!("a streamed event is not JSON ({error})"),
                        body: quote(&data),
                    })?;
                reply
                    .add(&event, on_text)
                    .map_err(|message| ModelError::InvalidResponse {
                        message,
                        body: quote(&data),
                    })?;
            }
        }
        Err(ModelError::Connection {
            message: format!(
                "{}/chat/completions: the stream ended before `data: [DONE]`",
                self.base_url
            ),
        })
    }
}

/// A message in the OpenAI wire format: no ids, and a failed tool call says so in its text. A
/// tool's output goes as its text (the endpoint takes no images from tools).
fn wire_message(message: &Message) -> Value {
    match message {
        Message::System { content, .. } => json!({"role": "system", "content": content}),
        Message::Human { content, parts, .. } if parts.is_empty() => {
            json!({"role": "user", "content": content})
        }
        // A question with an image: the parts, in OpenAI's list form.
        Message::Human { parts, .. } => json!({"role": "user", "content": parts}),
        Message::Ai {
            content,
            tool_calls,
            ..
        } => {
            let mut wire = json!({"role": "assistant", "content": content});
            if !tool_calls.is_empty() {
                if content.is_empty() {
                    wire["content"] = Value::Null;
                }
                wire["tool_calls"] = serde_json::to_value(tool_calls).unwrap_or_default();
            }
            wire
        }
        Message::Tool {
            tool_call_id,
            content,
            is_error,
            ..
        } => {
            let content = if *is_error {
                format!("Error: {content}")
            } else {
                content.clone()
            };
            json!({"role": "tool", "tool_call_id": tool_call_id, "content": content})
        }
    }
}

/// A non-streamed completion: `choices[0].message`, `finish_reason` and `usage`.
fn read_completion(body: &Value) -> Result<ChatResponse, String> {
    let choice = body["choices"].get(0).ok_or("it has no `choices[0]`")?;
    let message = &choice["message"];
    if !message.is_object() {
        return Err("`choices[0]` has no `message`".into());
    }
    let content = match &message["content"] {
        Value::Null => String::new(),
        Value::String(text) => text.clone(),
        other => return Err(format!("`choices[0].message.content` is {other}, not text")),
    };
    let tool_calls: Vec<ToolCall> = match &message["tool_calls"] {
        Value::Null => Vec::new(),
        calls => serde_json::from_value(calls.clone())
            .map_err(|error| format!("`choices[0].message.tool_calls` do not read: {error}"))?,
    };
    Ok(ChatResponse {
        message: Message::ai_calling(content, tool_calls),
        usage: read_usage(&body["usage"]),
        finish_reason: choice["finish_reason"].as_str().map(str::to_string),
    })
}

fn read_usage(usage: &Value) -> Option<Usage> {
    Some(Usage {
        prompt_tokens: usage["prompt_tokens"].as_u64()?,
        completion_tokens: usage["completion_tokens"].as_u64()?,
    })
}

/// Splits a byte stream into the `data:` payloads of server-sent events.
#[derive(Default)]
struct Events {
    pending: Vec<u8>,
    data: String,
}

impl Events {
    /// The events completed by `chunk`.
    fn push(&mut self, chunk: &[u8]) -> Vec<String> {
        self.pending.extend_from_slice(chunk);
        let mut complete = Vec::new();
        while let Some(end) = self.pending.iter().position(|&byte| byte == b'\n') {
            let line: Vec<u8> = self.pending.drain(..=end).collect();
            let line = String::from_utf8_lossy(&line);
            let line = line.trim_end_matches(['\n', '\r']);
            if line.is_empty() {
                if !self.data.is_empty() {
                    complete.push(std::mem::take(&mut self.data));
                }
            } else if let Some(data) = line.strip_prefix("data:") {
                if !self.data.is_empty() {
                    self.data.push('\n');
                }
                self.data.push_str(data.strip_prefix(' ').unwrap_or(data));
            }
            // Comments (`: keep-alive`), `event:`, `id:` and `retry:` lines carry nothing here.
        }
        complete
    }
}

/// A streamed reply being put together from its deltas.
#[derive(Default)]
struct Reply {
    content: String,
    /// Tool calls by their index in the stream: id, name, arguments so far.
    calls: BTreeMap<u64, (String, String, String)>,
    finish_reason: Option<String>,
    usage: Option<Usage>,
}

impl Reply {
    fn add(&mut self, event: &Value, on_text: &(dyn Fn(&str) + Sync)) -> Result<(), String> {
        if let Some(message) = event["error"]["message"].as_str() {
            return Err(format!(
                "the endpoint sent an error in the stream: {message}"
            ));
        }
        if let Some(usage) = read_usage(&event["usage"]) {
            self.usage = Some(usage);
        }
        let Some(choice) = event["choices"].get(0) else {
            // The last event of `include_usage` has no choices.
            return Ok(());
        };
        if let Some(reason) = choice["finish_reason"].as_str() {
            self.finish_reason = Some(reason.to_string());
        }
        let delta = &choice["delta"];
        if let Some(text) = delta["content"].as_str()
            && !text.is_empty()
        {
            self.content.push_str(text);
            on_text(text);
        }
        if let Some(calls) = delta["tool_calls"].as_array() {
            for call in calls {
                let index = call["index"]
                    .as_u64()
                    .ok_or("a streamed tool call has no `index`")?;
                let entry = self.calls.entry(index).or_default();
                if let Some(id) = call["id"].as_str() {
                    entry.0.push_str(id);
                }
                if let Some(name) = call["function"]["name"].as_str() {
                    entry.1.push_str(name);
                }
                if let Some(arguments) = call["function"]["arguments"].as_str() {
                    entry.2.push_str(arguments);
                }
            }
        }
        Ok(())
    }

    fn finish(self) -> ChatResponse {
        let calls = self
            .calls
            .into_values()
            .map(|(id, name, arguments)| ToolCall::new(id, name, arguments))
            .collect();
        ChatResponse {
            message: Message::ai_calling(self.content, calls),
            usage: self.usage,
            finish_reason: self.finish_reason,
        }
    }
}

/// How long an error answer asks the client to wait: OpenAI's `retry-after-ms` (milliseconds),
/// else the standard `Retry-After`, in seconds or as an HTTP date (the time until then, zero for
/// a date past). A value that is neither, or a negative number, says nothing.
fn retry_after(headers: &reqwest::header::HeaderMap) -> Option<Duration> {
    let text = |name| Some(headers.get(name)?.to_str().ok()?.trim());
    // A finite, non-negative number of seconds.
    let seconds = |text: &str| {
        text.parse::<f64>()
            .ok()
            .and_then(|seconds| Duration::try_from_secs_f64(seconds).ok())
    };
    if let Some(thousand_times) = text("retry-after-ms").and_then(seconds) {
        return Some(thousand_times / 1000);
    }
    let text = text("retry-after")?;
    seconds(text).or_else(|| {
        let date = httpdate::parse_http_date(text).ok()?;
        Some(
            date.duration_since(std::time::SystemTime::now())
                .unwrap_or_default(),
        )
    })
}

/// The start of `text`, for an error message.
fn quote(text: &str) -> String {
    match text.char_indices().nth(QUOTED) {
        Some((end, _)) => format!("{}...", &text[..end]),
        None => text.to_string(),
    }
}

/// A reqwest error with its causes (reqwest's own text often only says "error sending request").
fn describe(error: &reqwest::Error) -> String {
    let mut text = error.to_string();
    let mut source = std::error::Error::source(error);
    while let Some(cause) = source {
        text.push_str(": ");
        text.push_str(&cause.to_string());
        source = cause.source();
    }
    text
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn events_are_split_across_chunks_and_lines() {
        let mut events = Events::default();
        assert!(events.push(b"data: {\"a\"").is_empty());
        assert_eq!(
            events.push(b": 1}\r\n\r\n: keep-alive\n\ndata: [DONE]\n\n"),
            ["{\"a\": 1}", "[DONE]"]
        );
        assert_eq!(
            events.push(b"event: x\ndata: one\ndata: two\n\n"),
            ["one\ntwo"]
        );
    }

    #[test]
    fn wire_messages_drop_ids_and_mark_failed_calls() {
        let call = ToolCall::new("c1", "f", "{}");
        let messages = [
            Message::human("hi").with_id("m1"),
            Message::ai_calling("", vec![call]),
            Message::tool_error("c1", "boom"),
        ];
        let wire: Vec<Value> = messages.iter().map(wire_message).collect();
        assert_eq!(wire[0], json!({"role": "user", "content": "hi"}));
        assert_eq!(wire[1]["content"], Value::Null);
        assert_eq!(wire[1]["tool_calls"][0]["function"]["name"], "f");
        assert_eq!(
            wire[2],
            json!({"role": "tool", "tool_call_id": "c1", "content": "Error: boom"})
        );
    }

    #[test]
    fn configuration_comes_from_the_variables() {
        let vars = |pairs: &'static [(&'static str, &'static str)]| {
            move |name: &str| {
                pairs
                    .iter()
                    .find(|(key, _)| *key == name)
                    .map(|(_, value)| (*value).to_string())
            }
        };
        let error = OpenAi::from_lookup(vars(&[])).unwrap_err();
        assert!(error.to_string().contains("set OPENAI_API_KEY"), "{error}");
        let client =
            OpenAi::from_lookup(vars(&[("OPENAI_BASE_URL", "http://127.0.0.1:9/v1/")])).unwrap();
        assert_eq!(
            (client.base_url(), client.model()),
            ("http://127.0.0.1:9/v1", "gpt-4o-mini")
        );
        assert!(client.api_key.is_none());
        let client =
            OpenAi::from_lookup(vars(&[("OPENAI_API_KEY", "k"), ("OPENAI_MODEL", "m")])).unwrap();
        assert_eq!((client.base_url(), client.model()), (OPENAI_BASE_URL, "m"));
        assert!(
            !format!("{client:?}").contains("\"k\""),
            "the key is not printed"
        );
        let error =
            OpenAi::from_lookup(vars(&[("OPENAI_BASE_URL", "localhost:8080")])).unwrap_err();
        assert!(
            error
                .to_string()
                .contains("must be an http:// or https:// URL"),
            "{error}"
        );
    }
}
