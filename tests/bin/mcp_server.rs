//! A small Model Context Protocol server for `mcp.rs`, made with the official SDK: tools that add,
//! fail, and count their calls. `mcp-server stdio` serves over its standard input and output;
//! `mcp-server http` listens on 127.0.0.1 (a port of its own), prints its URL, and serves
//! streamable HTTP there.

use std::convert::Infallible;
use std::sync::Arc;
use std::sync::atomic::{AtomicU32, Ordering};

use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper_util::rt::TokioIo;
use rmcp::model::{
    CallToolRequestParams, CallToolResponse, CallToolResult, ListToolsResult,
    PaginatedRequestParams, ServerConfig,
};
use rmcp::service::RequestContext;
use rmcp::transport::streamable_http_server::session::local::LocalSessionManager;
use rmcp::transport::{StreamableHttpServerConfig, StreamableHttpService};
use rmcp::{ErrorData, RoleServer, ServerHandler, ServiceExt};
use serde_json::{Value, json};

/// The desk's tools; counts the calls of `add` it answered.
#[derive(Clone, Default)]
struct Desk {
    adds: Arc<AtomicU32>,
}

/// Reads protocol JSON as the SDK's type.
fn read<T: serde::de::DeserializeOwned>(value: Value) -> T {
    serde_json::from_value(value).expect("the protocol's JSON")
}

impl ServerHandler for Desk {
    fn get_info(&self) -> ServerConfig {
        let mut info = ServerConfig::default();
        info.capabilities = read(json!({"tools": {}}));
        info
    }

    async fn list_tools(
        &self,
        _: Option<PaginatedRequestParams>,
        _: RequestContext<RoleServer>,
    ) -> Result<ListToolsResult, ErrorData> {
        Ok(read(json!({"tools": [
            {
                "name": "add",
                "description": "Adds two integers",
                "inputSchema": {
                    "type": "object",
                    "properties": {"a": {"type": "integer"}, "b": {"type": "integer"}},
                    "required": ["a", "b"]
                }
            },
            {
                "name": "fail",
                "description": "Always fails",
                "inputSchema": {"type": "object"}
            }
        ]})))
    }

    async fn call_tool(
        &self,
        request: CallToolRequestParams,
        _: RequestContext<RoleServer>,
    ) -> Result<CallToolResponse, ErrorData> {
        let arguments = Value::Object(request.arguments.clone().unwrap_or_default());
        let result: CallToolResult = match &*request.name {
            "add" => {
                let count = self.adds.fetch_add(1, Ordering::SeqCst) + 1;
                let sum =
                    arguments["a"].as_i64().unwrap_or(0) + arguments["b"].as_i64().unwrap_or(0);
                read(json!({"content": [
                    {"type": "text", "text": format!("{sum}")},
                    {"type": "text", "text": format!("(call {count})")}
                ]}))
            }
            "fail" => read(
                json!({"content": [{"type": "text", "text": "the ledger is locked"}], "isError": true}),
            ),
            other => {
                return Err(ErrorData::invalid_params(
                    format!("no tool `{other}`"),
                    None,
                ));
            }
        };
        Ok(result.into())
    }
}

#[tokio::main(flavor = "current_thread")]
async fn main() {
    match std::env::args().nth(1).as_deref() {
        Some("stdio") => {
            let service = Desk::default()
                .serve(rmcp::transport::stdio())
                .await
                .expect("the client's handshake");
            let _ = service.waiting().await;
        }
        Some("http") => {
            let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
            println!("http://{}/mcp", listener.local_addr().unwrap());
            let desk = Desk::default();
            let service = StreamableHttpService::new(
                move || Ok(desk.clone()),
                Arc::new(LocalSessionManager::default()),
                StreamableHttpServerConfig::default(),
            );
            loop {
                let (stream, _) = listener.accept().await.unwrap();
                let service = service.clone();
                tokio::spawn(async move {
                    let handler = service_fn(move |request| {
                        let service = service.clone();
                        async move { Ok::<_, Infallible>(service.handle(request).await) }
                    });
                    let _ = http1::Builder::new()
                        .serve_connection(TokioIo::new(stream), handler)
                        .await;
                });
            }
        }
        _ => {
            eprintln!("usage: mcp-server stdio | http");
            std::process::exit(2);
        }
    }
}
