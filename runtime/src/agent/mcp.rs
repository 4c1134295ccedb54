//! Tools of Model Context Protocol servers (feature `mcp`): [`McpServer`] connects to one, over
//! stdio (a command it starts) or streamable HTTP (a URL), with the official Rust SDK (`rmcp`),
//! and hands its tools over as [`McpTool`]s, which an [`Agent`](super::Agent) calls as it calls
//! its own.
//!
//! This module knows tools and the protocol's client; nothing of runs or the state.

use std::borrow::Cow;
use std::fmt;
use std::future::Future;
use std::sync::Arc;

use rmcp::RoleClient;
use rmcp::model::CallToolRequestParams;
use rmcp::service::{Peer, RunningService, ServiceExt};
use rmcp::transport::{StreamableHttpClientTransport, TokioChildProcess};
use serde_json::{Map, Value};

use super::tool::{Tool, Toolbox};
use crate::node::NodeError;

/// A connection to a Model Context Protocol server, and the tools it offers (feature `mcp`).
///
/// [`spawn`](McpServer::spawn) starts a server as a child process and talks to it over its
/// standard input and output; [`connect`](McpServer::connect) reaches one over streamable HTTP.
/// Either way the server's tools are listed once, and [`tools`](McpServer::tools) gives them as a
/// [`Toolbox`] for an agent. A call goes to the server as it is made; the text of its result (or
/// its structured result) is what the model reads, and a result the server marks as an error is
/// shown to the model as a failed call. Keep the server while its tools are used: dropping it
/// closes the connection (and stops a spawned server), after which calls fail.
///
/// ```no_run
/// # async fn run() -> Result<(), Box<dyn std::error::Error>> {
/// use slateflow::agent::Agent;
/// use slateflow::agent::mcp::McpServer;
/// # use slateflow::agent::model::ScriptedModel;
/// # #[derive(slateflow::SharedState, Clone, Debug, Default, serde::Serialize, serde::Deserialize)]
/// # #[slateflow(conversation)]
/// # struct Desk { #[reducer(append)] messages: Vec<slateflow::agent::Message>, #[reducer(append)] histories: slateflow::agent::Histories }
/// # let model = ScriptedModel::new();
///
/// // A server started as a process, over stdio ...
/// let files = McpServer::spawn(tokio::process::Command::new("mcp-server-files")).await?;
/// // ... or one listening on HTTP.
/// let tickets = McpServer::connect("http://127.0.0.1:8000/mcp").await?;
///
/// let agent: Agent<Desk, _> = Agent::new(model).tools(files.tools().and(tickets.tools()));
/// # Ok(()) }
/// ```
pub struct McpServer {
    /// The command or URL, for errors.
    place: Arc<str>,
    service: RunningService<RoleClient, ()>,
    tools: Vec<McpTool>,
}

/// Why an MCP server could not be reached, or its tools not listed (feature `mcp`).
///
/// ```
/// use slateflow::agent::mcp::McpError;
///
/// let error = McpError::Start {
///     server: "mcp-server-files".into(),
///     message: "No such file or directory".into(),
/// };
/// assert!(error.to_string().starts_with("cannot start the MCP server `mcp-server-files`"));
/// ```
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum McpError {
    /// The server could not be started, reached or initialized.
    #[error("cannot start the MCP server `{server}`: {message}")]
    Start {
        /// The command or URL.
        server: String,
        /// What went wrong.
        message: String,
    },
    /// The server did not list its tools.
    #[error("the MCP server `{server}` did not list its tools: {message}")]
    Tools {
        /// The command or URL.
        server: String,
        /// What went wrong.
        message: String,
    },
}

impl McpServer {
    /// Starts `command` as an MCP server and talks to it over its standard input and output.
    ///
    /// # Errors
    /// [`McpError::Start`] when the command cannot start or does not answer the protocol's
    /// handshake; [`McpError::Tools`] when it does not list its tools.
    pub async fn spawn(command: tokio::process::Command) -> Result<Self, McpError> {
        let place: Arc<str> = command.as_std().get_program().display().to_string().into();
        let transport = TokioChildProcess::new(command).map_err(|error| McpError::Start {
            server: place.to_string(),
            message: error.to_string(),
        })?;
        Self::start(place, ().serve(transport)).await
    }

    /// Connects to the MCP server at `url` over streamable HTTP.
    ///
    /// # Errors
    /// As [`spawn`](Self::spawn).
    pub async fn connect(url: &str) -> Result<Self, McpError> {
        // The SDK's HTTP client takes the process's TLS provider: ring, unless the application
        // installed one (installing fails harmlessly when another got there first).
        if rustls::crypto::CryptoProvider::get_default().is_none() {
            let _ = rustls::crypto::ring::default_provider().install_default();
        }
        let transport = StreamableHttpClientTransport::from_uri(url.to_string());
        Self::start(url.into(), ().serve(transport)).await
    }

    async fn start<E: fmt::Display>(
        place: Arc<str>,
        serving: impl Future<Output = Result<RunningService<RoleClient, ()>, E>>,
    ) -> Result<Self, McpError> {
        let service = serving.await.map_err(|error| McpError::Start {
            server: place.to_string(),
            message: error.to_string(),
        })?;
        let failed = |message: String| McpError::Tools {
            server: place.to_string(),
            message,
        };
        let listed = service
            .peer()
            .list_all_tools()
            .await
            .map_err(|error| failed(error.to_string()))?;
        let mut tools = Vec::with_capacity(listed.len());
        for tool in listed {
            // Read as the protocol's JSON: the fields are the protocol's, whatever the SDK's
            // types look like.
            let tool = serde_json::to_value(&tool).map_err(|error| failed(error.to_string()))?;
            let name = tool["name"]
                .as_str()
                .ok_or_else(|| failed(format!("a tool without a name: {tool}")))?;
            tools.push(McpTool {
                server: Arc::clone(&place),
                peer: service.peer().clone(),
                name: name.to_string(),
                description: tool["description"].as_str().unwrap_or_default().to_string(),
                parameters: tool
                    .get("inputSchema")
                    .cloned()
                    .unwrap_or_else(|| serde_json::json!({"type": "object"})),
                repeatable: false,
                needs_approval: false,
            });
        }
        Ok(Self {
            place,
            service,
            tools,
        })
    }

    /// Every tool the server offers, as a toolbox.
    pub fn tools(&self) -> Toolbox {
        self.tools
            .iter()
            .fold(Toolbox::new(), |tools, tool| tools.with(tool.clone()))
    }

    /// The tool `name`, to mark it ([`McpTool::repeatable`], [`McpTool::needs_approval`]) or to
    /// put it in a toolbox of its own.
    pub fn tool(&self, name: &str) -> Option<McpTool> {
        self.tools.iter().find(|tool| tool.name == name).cloned()
    }

    /// The names of the server's tools.
    pub fn tool_names(&self) -> impl Iterator<Item = &str> {
        self.tools.iter().map(|tool| tool.name.as_str())
    }

    /// Closes the connection (a spawned server is stopped).
    ///
    /// # Errors
    /// [`McpError::Start`] when the connection did not close cleanly.
    pub async fn close(self) -> Result<(), McpError> {
        let place = self.place;
        self.service
            .cancel()
            .await
            .map(drop)
            .map_err(|error| McpError::Start {
                server: place.to_string(),
                message: format!("closing: {error}"),
            })
    }
}

impl fmt::Debug for McpServer {
    fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        formatter
            .debug_struct("McpServer")
            .field("server", &self.place)
            .field(
                "tools",
                &self.tools.iter().map(|tool| &tool.name).collect::<Vec<_>>(),
            )
            .finish_non_exhaustive()
    }
}

/// One tool of an [`McpServer`] (feature `mcp`): called on the server.
///
/// ```no_run
/// # async fn run() -> Result<(), Box<dyn std::error::Error>> {
/// use slateflow::agent::Toolbox;
/// use slateflow::agent::mcp::McpServer;
///
/// let bank = McpServer::connect("http://127.0.0.1:8000/mcp").await?;
/// let pay = bank.tool("pay").expect("the bank offers `pay`").needs_approval();
/// let tools = Toolbox::new().with(pay);
/// # Ok(()) }
/// ```
#[derive(Clone)]
pub struct McpTool {
    server: Arc<str>,
    peer: Peer<RoleClient>,
    name: String,
    description: String,
    parameters: Value,
    repeatable: bool,
    needs_approval: bool,
}

impl McpTool {
    /// Marks the tool safe to run again after a run stopped during a call of it: see
    /// [`Tool::repeatable`].
    #[must_use]
    pub fn repeatable(mut self) -> Self {
        self.repeatable = true;
        self
    }

    /// Marks the tool as one whose every call a person approves first: see
    /// [`Tool::needs_approval`].
    #[must_use]
    pub fn needs_approval(mut self) -> Self {
        self.needs_approval = true;
        self
    }
}

impl fmt::Debug for McpTool {
    fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        formatter
            .debug_struct("McpTool")
            .field("server", &self.server)
            .field("name", &self.name)
            .finish_non_exhaustive()
    }
}

impl Tool for McpTool {
    type Args = Map<String, Value>;
    type Output = String;

    fn name(&self) -> &str {
        &self.name
    }

    fn description(&self) -> &str {
        &self.description
    }

    fn parameters(&self) -> Value {
        self.parameters.clone()
    }

    async fn call(&self, args: Map<String, Value>) -> Result<String, NodeError> {
        let request =
            CallToolRequestParams::new(Cow::Owned(self.name.clone())).with_arguments(args);
        let result = self.peer.call_tool(request).await.map_err(|error| {
            format!(
                "the MCP server `{}` did not answer the call of `{}`: {error}",
                self.server, self.name
            )
        })?;
        let result = serde_json::to_value(&result)
            .map_err(|error| format!("the result of `{}` is not JSON: {error}", self.name))?;
        let text = result_text(&result);
        if result["isError"].as_bool() == Some(true) {
            return Err(text.into());
        }
        Ok(text)
    }

    fn repeatable(&self) -> bool {
        self.repeatable
    }

    fn needs_approval(&self) -> bool {
        self.needs_approval
    }
}

/// What the model reads of a call's result: its text blocks, one per line; its structured
/// result when it has no text; other blocks (an image) named by their kind.
fn result_text(result: &Value) -> String {
    let blocks = result["content"].as_array().map_or(&[][..], Vec::as_slice);
    let lines: Vec<String> = blocks
        .iter()
        .map(|block| match block["text"].as_str() {
            Some(text) => text.to_string(),
            None => format!("[{}]", block["type"].as_str().unwrap_or("content")),
        })
        .collect();
    if lines.is_empty()
        && let Some(structured) = result
            .get("structuredContent")
            .filter(|value| !value.is_null())
    {
        return structured.to_string();
    }
    lines.join("\n")
}

#[cfg(test)]
mod tests {
    use super::result_text;
    use serde_json::json;

    #[test]
    fn a_result_reads_as_its_text_or_its_structured_content() {
        let text = json!({"content": [{"type": "text", "text": "a"}, {"type": "image", "data": "..", "mimeType": "image/png"}, {"type": "text", "text": "b"}]});
        assert_eq!(result_text(&text), "a\n[image]\nb");
        let structured = json!({"content": [], "structuredContent": {"total": 3}});
        assert_eq!(result_text(&structured), r#"{"total":3}"#);
        assert_eq!(result_text(&json!({})), "");
    }
}
