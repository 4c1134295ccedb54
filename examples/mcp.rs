//! Recipe: an agent that uses the tools of a Model Context Protocol server (feature `mcp`).
//!
//! `McpServer::spawn` starts a server as a process and talks to it over stdio (use
//! `McpServer::connect(url)` for one on streamable HTTP); `server.tools()` is a toolbox the
//! agent calls as it calls its own. To stay offline, this program is its own server: run with
//! `serve`, it answers the protocol on stdio with one tool, `lookup_ip`, made with the official
//! SDK (`rmcp`). A `ScriptedModel` plays the model.
//!
//! ```sh
//! cargo run -p slateflow-examples --example mcp
//! ```

use std::sync::Arc;

use rmcp::model::{
    CallToolRequestParams, CallToolResponse, ListToolsResult, PaginatedRequestParams, ServerConfig,
};
use rmcp::service::RequestContext;
use rmcp::{ErrorData, RoleServer, ServerHandler, ServiceExt};
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};
use slateflow::agent::Agent;
use slateflow::agent::mcp::McpServer;
use slateflow::agent::message::{Histories, Message, ToolCall};
use slateflow::agent::model::{ChatResponse, ScriptedModel};
use slateflow::{SharedState, flow, prompt};

#[derive(SharedState, Clone, Debug, Default, Serialize, Deserialize)]
#[slateflow(conversation)]
struct Triage {
    alert: String,
    #[reducer(append)]
    messages: Vec<Message>,
    #[reducer(append)]
    histories: Histories,
}

/// The server side: IP reputations (what a threat-intelligence MCP server would offer).
struct Reputation;

/// Reads the protocol's JSON as the SDK's type.
fn protocol<T: serde::de::DeserializeOwned>(value: Value) -> Result<T, ErrorData> {
    serde_json::from_value(value)
        .map_err(|error| ErrorData::internal_error(error.to_string(), None))
}

impl ServerHandler for Reputation {
    fn get_info(&self) -> ServerConfig {
        let mut info = ServerConfig::default();
        info.capabilities = serde_json::from_value(json!({"tools": {}})).unwrap_or_default();
        info
    }

    async fn list_tools(
        &self,
        _: Option<PaginatedRequestParams>,
        _: RequestContext<RoleServer>,
    ) -> Result<ListToolsResult, ErrorData> {
        protocol(json!({"tools": [{
            "name": "lookup_ip",
            "description": "The reputation of an IP address",
            "inputSchema": {
                "type": "object",
                "properties": {"ip": {"type": "string"}},
                "required": ["ip"]
            }
        }]}))
    }

    async fn call_tool(
        &self,
        request: CallToolRequestParams,
        _: RequestContext<RoleServer>,
    ) -> Result<CallToolResponse, ErrorData> {
        let ip = request
            .arguments
            .as_ref()
            .and_then(|arguments| arguments.get("ip"))
            .and_then(Value::as_str)
            .unwrap_or_default()
            .to_string();
        let verdict = if ip.starts_with("10.") {
            "on the block list since March: 412 failed logins last week"
        } else {
            "no reports"
        };
        let result: rmcp::model::CallToolResult = protocol(json!({
            "content": [{"type": "text", "text": format!("{ip}: {verdict}")}]
        }))?;
        Ok(result.into())
    }
}

/// The model: looks the alert's IP up, then answers with what the tool said.
fn model() -> ScriptedModel {
    ScriptedModel::from_fn(|request| {
        let looked_up = request
            .messages
            .iter()
            .find(|message| matches!(message, Message::Tool { .. }));
        Ok(ChatResponse::new(match looked_up {
            None => Message::ai_calling(
                "",
                vec![ToolCall::new("c1", "lookup_ip", r#"{"ip": "10.0.0.5"}"#)],
            ),
            Some(answer) => Message::ai(format!("Escalate: {}", answer.content())),
        }))
    })
}

#[tokio::main(flavor = "current_thread")]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    if std::env::args().nth(1).as_deref() == Some("serve") {
        // The server's side, on this process's stdin and stdout.
        Reputation
            .serve(rmcp::transport::stdio())
            .await?
            .waiting()
            .await?;
        return Ok(());
    }
    let mut command = tokio::process::Command::new(std::env::current_exe()?);
    command.arg("serve");
    let reputation = McpServer::spawn(command).await?;
    println!(
        "the server offers: {}",
        reputation.tool_names().collect::<Vec<_>>().join(", ")
    );
    let investigate = Agent::new(Arc::new(model()))
        .system(prompt!(Triage, "Investigate this alert: {alert}"))
        .tools(reputation.tools());
    let mut triage = Triage {
        alert: "47 failed logins from 10.0.0.5".into(),
        messages: vec![Message::human("What should we do?")],
        ..Triage::default()
    };
    flow! { investigate; }.run(&mut triage).await?;
    println!(
        "{}",
        triage
            .messages
            .last()
            .map(Message::content)
            .unwrap_or_default()
    );
    reputation.close().await?;
    Ok(())
}
