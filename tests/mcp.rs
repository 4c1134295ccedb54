//! An agent using the tools of a Model Context Protocol server (feature `mcp`), over stdio and
//! over streamable HTTP: a small server made with the official SDK (`bin/mcp_server.rs`), started
//! by the tests as a process.

use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;

use serde::{Deserialize, Serialize};
use slateflow::agent::Agent;
use slateflow::agent::mcp::{McpError, McpServer};
use slateflow::agent::message::{Histories, Message, ToolCall};
use slateflow::agent::model::ScriptedModel;
use slateflow::{SharedState, flow};

const SERVER: &str = env!("CARGO_BIN_EXE_mcp-server");

#[derive(SharedState, Clone, Debug, Default, Serialize, Deserialize)]
#[slateflow(conversation)]
struct Desk {
    #[reducer(append)]
    messages: Vec<Message>,
    #[reducer(append)]
    histories: Histories,
}

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap()
}

/// An agent whose model calls the server's `add` twice and `fail` once, then answers with what
/// the tools said: the answers the model read, in order.
async fn the_agent_uses(server: &McpServer) -> Vec<Message> {
    let mut names: Vec<&str> = server.tool_names().collect();
    names.sort_unstable();
    assert_eq!(names, ["add", "fail"]);
    let model = Arc::new(
        ScriptedModel::new()
            .call_tools(vec![
                ToolCall::new("c1", "add", r#"{"a": 2, "b": 3}"#),
                ToolCall::new("c2", "fail", "{}"),
                ToolCall::new("c3", "add", r#"{"a": 40, "b": 2}"#),
            ])
            .reply("done"),
    );
    let agent = Agent::new(model.clone()).tools(server.tools());
    let mut desk = Desk {
        messages: vec![Message::human("Add them up.")],
        ..Desk::default()
    };
    flow! { agent; }.run(&mut desk).await.unwrap();
    let requests = model.requests();
    // The server's tools were offered with their schemas.
    let add = requests[0]
        .tools
        .iter()
        .find(|tool| tool.name == "add")
        .unwrap();
    assert_eq!(add.description, "Adds two integers");
    assert_eq!(add.parameters["required"], serde_json::json!(["a", "b"]));
    requests[1]
        .messages
        .iter()
        .filter(|message| matches!(message, Message::Tool { .. }))
        .cloned()
        .collect()
}

fn check(answers: &[Message]) {
    let read: Vec<(&str, bool)> = answers
        .iter()
        .map(|message| match message {
            Message::Tool {
                content, is_error, ..
            } => (content.as_str(), *is_error),
            other => panic!("{other:?}"),
        })
        .collect();
    assert_eq!(
        read,
        [
            ("5\n(call 1)", false),
            ("the tool `fail` failed: the ledger is locked", true),
            ("42\n(call 2)", false)
        ]
    );
}

#[test]
fn an_agent_calls_the_tools_of_a_server_over_stdio() {
    runtime().block_on(async {
        let mut command = tokio::process::Command::new(SERVER);
        command.arg("stdio");
        let server = McpServer::spawn(command).await.unwrap();
        check(&the_agent_uses(&server).await);
        server.close().await.unwrap();
    });
}

/// The server as a process listening on HTTP: its URL, read from its first line.
fn http_server() -> (Child, String) {
    let mut child = Command::new(SERVER)
        .arg("http")
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let mut line = String::new();
    BufReader::new(child.stdout.as_mut().unwrap())
        .read_line(&mut line)
        .unwrap();
    (child, line.trim().to_string())
}

#[test]
fn an_agent_calls_the_tools_of_a_server_over_streamable_http() {
    let (mut child, url) = http_server();
    runtime().block_on(async {
        let server = McpServer::connect(&url).await.unwrap();
        check(&the_agent_uses(&server).await);
        // A tool kept apart, marked, in a toolbox of its own.
        let add = server.tool("add").unwrap().repeatable();
        assert!(slateflow::agent::Tool::repeatable(&add));
        assert!(server.tool("subtract").is_none());
        server.close().await.unwrap();
    });
    child.kill().unwrap();
    child.wait().unwrap();
}

/// A server that cannot start, or that nothing answers for, is an error naming it.
#[test]
fn a_server_that_cannot_be_reached_says_which() {
    runtime().block_on(async {
        let missing = tokio::process::Command::new("/no/such/mcp-server");
        let error = McpServer::spawn(missing).await.unwrap_err();
        assert!(matches!(error, McpError::Start { .. }), "{error:?}");
        assert!(error.to_string().contains("/no/such/mcp-server"), "{error}");

        let closed = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let url = format!("http://{}/mcp", closed.local_addr().unwrap());
        drop(closed);
        let error = McpServer::connect(&url).await.unwrap_err();
        assert!(
            error
                .to_string()
                .starts_with(&format!("cannot start the MCP server `{url}`")),
            "{error}"
        );
    });
}
