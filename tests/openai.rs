//! The OpenAI-compatible client against a real HTTP server on 127.0.0.1 (hyper), serving
//! canned responses: plain, streamed, tool calls, error statuses, malformed bodies, a stall; and
//! its exchanges recorded to a file and replayed offline.

use std::convert::Infallible;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use futures_util::StreamExt;
use http_body_util::combinators::BoxBody;
use http_body_util::{BodyExt, Full, StreamBody};
use hyper::body::{Bytes, Frame, Incoming};
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper::{Request, Response};
use hyper_util::rt::TokioIo;
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};
use slateflow::agent::Agent;
use slateflow::agent::ModelError;
use slateflow::agent::message::{Histories, Message, ToolCall};
use slateflow::agent::model::{ChatModel, ChatRequest, OpenAi, ToolSpec};
use slateflow::event::Event;
use slateflow::{SharedState, flow};
use tokio::net::TcpListener;
use tokio::sync::Notify;

/// One canned response: status, content type, body chunks, and what to wait for first.
#[derive(Clone)]
struct Canned {
    status: u16,
    content_type: &'static str,
    chunks: Vec<String>,
    /// Wait for this before sending the chunks after the first.
    gate: Option<Arc<Notify>>,
    /// Wait this long before answering at all.
    stall: Duration,
    /// Headers besides the content type, as names and values.
    headers: Vec<(String, String)>,
}

/// Response headers, as names and values.
type Headers<'a> = &'a [(&'a str, &'a str)];

impl Canned {
    fn json(status: u16, body: &str) -> Self {
        Self {
            status,
            content_type: "application/json",
            chunks: vec![body.to_string()],
            gate: None,
            stall: Duration::ZERO,
            headers: Vec::new(),
        }
    }

    fn with_headers(mut self, headers: Headers<'_>) -> Self {
        self.headers = headers
            .iter()
            .map(|(name, value)| ((*name).to_string(), (*value).to_string()))
            .collect();
        self
    }

    fn events(events: &[&str]) -> Self {
        Self {
            status: 200,
            content_type: "text/event-stream",
            chunks: events
                .iter()
                .map(|event| format!("data: {event}\n\n"))
                .collect(),
            gate: None,
            stall: Duration::ZERO,
            headers: Vec::new(),
        }
    }
}

/// What the server received: the path, the authorization header and the JSON body.
#[derive(Debug, Clone)]
struct Received {
    path: String,
    authorization: Option<String>,
    body: Value,
}

/// An HTTP server on 127.0.0.1 that answers each request with the next recorded response.
struct Server {
    url: String,
    received: Arc<Mutex<Vec<Received>>>,
}

impl Server {
    async fn start(responses: Vec<Canned>) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}/v1", listener.local_addr().unwrap());
        let received = Arc::new(Mutex::new(Vec::new()));
        let queue = Arc::new(Mutex::new(responses.into_iter()));
        let log = received.clone();
        tokio::spawn(async move {
            loop {
                let Ok((stream, _)) = listener.accept().await else {
                    return;
                };
                let (queue, log) = (queue.clone(), log.clone());
                tokio::spawn(async move {
                    let service = service_fn(move |request: Request<Incoming>| {
                        let (queue, log) = (queue.clone(), log.clone());
                        async move {
                            let path = request.uri().path().to_string();
                            let authorization = request
                                .headers()
                                .get("authorization")
                                .map(|value| value.to_str().unwrap().to_string());
                            let bytes = request.into_body().collect().await?.to_bytes();
                            let body = serde_json::from_slice(&bytes).unwrap_or(Value::Null);
                            log.lock().unwrap().push(Received {
                                path,
                                authorization,
                                body,
                            });
                            let next = queue.lock().unwrap().next();
                            let recorded = next.unwrap_or_else(|| {
                                Canned::json(500, r#"{"error": {"message": "no response left"}}"#)
                            });
                            Ok::<_, hyper::Error>(respond(recorded).await)
                        }
                    });
                    let _ = http1::Builder::new()
                        .serve_connection(TokioIo::new(stream), service)
                        .await;
                });
            }
        });
        Self { url, received }
    }

    fn received(&self) -> Vec<Received> {
        self.received.lock().unwrap().clone()
    }

    fn client(&self) -> OpenAi {
        OpenAi::new("test-model")
            .with_base_url(&self.url)
            .with_api_key("sk-test")
    }
}

async fn respond(recorded: Canned) -> Response<BoxBody<Bytes, Infallible>> {
    tokio::time::sleep(recorded.stall).await;
    let body = match recorded.gate {
        None => Full::new(Bytes::from(recorded.chunks.concat())).boxed(),
        Some(gate) => {
            let mut chunks = recorded.chunks.into_iter();
            let first = chunks.next().unwrap_or_default();
            let rest: Vec<String> = chunks.collect();
            let frames = futures_util::stream::once(async move { first })
                .chain(
                    futures_util::stream::once(async move {
                        gate.notified().await;
                        futures_util::stream::iter(rest)
                    })
                    .flatten(),
                )
                .map(|chunk| Ok::<_, Infallible>(Frame::data(Bytes::from(chunk))));
            BodyExt::boxed(StreamBody::new(frames))
        }
    };
    let mut response = Response::builder()
        .status(recorded.status)
        .header("content-type", recorded.content_type);
    for (name, value) in recorded.headers {
        response = response.header(name, value);
    }
    response.body(body).unwrap()
}

fn ask(text: &str) -> ChatRequest {
    ChatRequest::new(vec![
        Message::system("Be brief.").with_id("s"),
        Message::human(text),
    ])
}

const PLAIN: &str = r#"{
  "id": "chatcmpl-abc123",
  "object": "chat.completion",
  "created": 1741569952,
  "model": "gpt-4o-mini-2024-07-18",
  "choices": [{
    "index": 0,
    "message": {"role": "assistant", "content": "Hello! How can I help?", "refusal": null, "annotations": []},
    "logprobs": null,
    "finish_reason": "stop"
  }],
  "usage": {"prompt_tokens": 19, "completion_tokens": 8, "total_tokens": 27},
  "service_tier": "default"
}"#;

const TOOL_CALLS: &str = r#"{
  "id": "chatcmpl-def456",
  "object": "chat.completion",
  "model": "gpt-4o-mini",
  "choices": [{
    "index": 0,
    "message": {
      "role": "assistant",
      "content": null,
      "tool_calls": [
        {"id": "call_a", "type": "function", "function": {"name": "lookup_ip", "arguments": "{\"ip\":\"10.0.0.5\"}"}},
        {"id": "call_b", "type": "function", "function": {"name": "whois", "arguments": "{\"domain\":\"example.com\"}"}}
      ]
    },
    "finish_reason": "tool_calls"
  }],
  "usage": {"prompt_tokens": 80, "completion_tokens": 40, "total_tokens": 120}
}"#;

#[tokio::test]
async fn a_plain_reply_is_read_and_the_request_is_in_the_openai_shape() {
    let server = Server::start(vec![Canned::json(200, PLAIN)]).await;
    let request = ask("Hi")
        .with_tools(vec![ToolSpec {
            name: "lookup_ip".into(),
            description: "Reputation of an IP".into(),
            parameters: json!({"type": "object"}),
        }])
        .with_temperature(0.5)
        .with_output("verdict", json!({"type": "object"}));
    let reply = server.client().chat(&request).await.unwrap();
    assert_eq!(reply.text(), "Hello! How can I help?");
    assert_eq!(reply.finish_reason.as_deref(), Some("stop"));
    let usage = reply.usage.unwrap();
    assert_eq!((usage.prompt_tokens, usage.completion_tokens), (19, 8));

    let received = server.received();
    assert_eq!(received.len(), 1);
    assert_eq!(received[0].path, "/v1/chat/completions");
    assert_eq!(received[0].authorization.as_deref(), Some("Bearer sk-test"));
    let body = &received[0].body;
    assert_eq!(body["model"], "test-model");
    assert_eq!(
        body["messages"],
        json!([{"role": "system", "content": "Be brief."}, {"role": "user", "content": "Hi"}])
    );
    assert_eq!(body["tools"][0]["type"], "function");
    assert_eq!(body["tools"][0]["function"]["name"], "lookup_ip");
    assert_eq!(body["temperature"], 0.5);
    assert_eq!(body["response_format"]["json_schema"]["name"], "verdict");
    assert_eq!(body.get("stream"), None);
}

/// A question with an image goes as OpenAI's list of parts; a tool's output with an image goes
/// as its text (the endpoint takes no images from tools).
#[tokio::test]
async fn a_question_with_an_image_is_sent_as_its_parts() {
    use slateflow::agent::message::ContentPart;
    let server = Server::start(vec![Canned::json(200, PLAIN)]).await;
    let question = Message::human_parts(vec![
        ContentPart::text("What is this?"),
        ContentPart::image_url("data:image/png;base64,iVBOR"),
    ]);
    let chart: Message = serde_json::from_value(json!({
        "role": "tool", "tool_call_id": "c1",
        "content": [{"type": "text", "text": "a chart"}, {"type": "image_url", "image_url": {"url": "u"}}]
    }))
    .unwrap();
    let request = ChatRequest::new(vec![question, chart]);
    server.client().chat(&request).await.unwrap();
    let body = &server.received()[0].body;
    assert_eq!(
        body["messages"][0],
        json!({"role": "user", "content": [
            {"type": "text", "text": "What is this?"},
            {"type": "image_url", "image_url": {"url": "data:image/png;base64,iVBOR"}}
        ]})
    );
    assert_eq!(body["messages"][1]["content"], "a chart");
}

#[tokio::test]
async fn tool_calls_are_read_with_their_arguments() {
    let server = Server::start(vec![Canned::json(200, TOOL_CALLS)]).await;
    let reply = server.client().chat(&ask("Check 10.0.0.5")).await.unwrap();
    assert_eq!(reply.text(), "");
    assert_eq!(
        reply.tool_calls(),
        [
            ToolCall::new("call_a", "lookup_ip", r#"{"ip":"10.0.0.5"}"#),
            ToolCall::new("call_b", "whois", r#"{"domain":"example.com"}"#),
        ]
    );
    assert_eq!(reply.finish_reason.as_deref(), Some("tool_calls"));
}

#[tokio::test]
async fn a_stream_hands_on_each_delta_as_it_arrives() {
    let gate = Arc::new(Notify::new());
    let mut recorded = Canned::events(&[
        r#"{"id":"c","object":"chat.completion.chunk","choices":[{"index":0,"delta":{"role":"assistant","content":""},"finish_reason":null}]}"#,
        r#"{"id":"c","object":"chat.completion.chunk","choices":[{"index":0,"delta":{"content":"Hel"},"finish_reason":null}]}"#,
        r#"{"id":"c","object":"chat.completion.chunk","choices":[{"index":0,"delta":{"content":"lo!"},"finish_reason":null}]}"#,
        r#"{"id":"c","object":"chat.completion.chunk","choices":[{"index":0,"delta":{},"finish_reason":"stop"}]}"#,
        r#"{"id":"c","object":"chat.completion.chunk","choices":[],"usage":{"prompt_tokens":9,"completion_tokens":2,"total_tokens":11}}"#,
        "[DONE]",
    ]);
    // The first two events go out at once; the rest only once the client has handed on "Hel".
    recorded.chunks = vec![recorded.chunks[..2].concat(), recorded.chunks[2..].concat()];
    recorded.gate = Some(gate.clone());
    let server = Server::start(vec![recorded]).await;
    let deltas = Mutex::new(Vec::new());
    let on_text = |text: &str| {
        deltas.lock().unwrap().push(text.to_string());
        gate.notify_one();
    };
    let reply = tokio::time::timeout(
        Duration::from_secs(10),
        server.client().stream(&ask("Hi"), &on_text),
    )
    .await
    .expect("the first delta was handed on before the stream ended")
    .unwrap();
    assert_eq!(*deltas.lock().unwrap(), ["Hel", "lo!"]);
    assert_eq!(reply.text(), "Hello!");
    assert_eq!(reply.finish_reason.as_deref(), Some("stop"));
    assert_eq!(reply.usage.unwrap().completion_tokens, 2);
    let body = &server.received()[0].body;
    assert_eq!(body["stream"], true);
    assert_eq!(body["stream_options"]["include_usage"], true);
}

#[tokio::test]
async fn streamed_tool_calls_are_put_together_from_their_pieces() {
    let server = Server::start(vec![Canned::events(&[
        r#"{"choices":[{"index":0,"delta":{"role":"assistant","content":null,"tool_calls":[{"index":0,"id":"call_a","type":"function","function":{"name":"lookup_ip","arguments":""}}]}}]}"#,
        r#"{"choices":[{"index":0,"delta":{"tool_calls":[{"index":0,"function":{"arguments":"{\"ip\":"}}]}}]}"#,
        r#"{"choices":[{"index":0,"delta":{"tool_calls":[{"index":1,"id":"call_b","type":"function","function":{"name":"whois","arguments":"{}"}}]}}]}"#,
        r#"{"choices":[{"index":0,"delta":{"tool_calls":[{"index":0,"function":{"arguments":"\"10.0.0.5\"}"}}]}}]}"#,
        r#"{"choices":[{"index":0,"delta":{},"finish_reason":"tool_calls"}]}"#,
        "[DONE]",
    ])])
    .await;
    let reply = server
        .client()
        .stream(&ask("Check"), &|_| {})
        .await
        .unwrap();
    assert_eq!(
        reply.tool_calls(),
        [
            ToolCall::new("call_a", "lookup_ip", r#"{"ip":"10.0.0.5"}"#),
            ToolCall::new("call_b", "whois", "{}"),
        ]
    );
}

/// The errors of a plain call and of a streamed one, each answered with `recorded`.
async fn errors_of(recorded: Canned) -> [ModelError; 2] {
    let server = Server::start(vec![recorded.clone(), recorded]).await;
    let client = server.client();
    [
        client.chat(&ask("Hi")).await.unwrap_err(),
        client.stream(&ask("Hi"), &|_| {}).await.unwrap_err(),
    ]
}

#[tokio::test]
async fn error_statuses_say_whether_to_retry() {
    let cases = [
        (
            Canned::json(
                429,
                r#"{"error": {"message": "Rate limit reached for gpt-4o-mini", "type": "requests", "code": "rate_limit_exceeded"}}"#,
            ),
            true,
            "answered 429: Rate limit reached for gpt-4o-mini (retryable)",
        ),
        (
            Canned::json(503, "upstream connect error"),
            true,
            "answered 503: upstream connect error (retryable)",
        ),
        (
            Canned::json(
                400,
                r#"{"error": {"message": "Invalid value for 'temperature'", "type": "invalid_request_error"}}"#,
            ),
            false,
            "answered 400: Invalid value for 'temperature' (not retried",
        ),
        (
            Canned::json(
                401,
                r#"{"error": {"message": "Incorrect API key provided"}}"#,
            ),
            false,
            "answered 401: Incorrect API key provided",
        ),
    ];
    for (recorded, retryable, text) in cases {
        for error in errors_of(recorded).await {
            assert_eq!(error.is_retryable(), retryable, "{error}");
            assert!(error.to_string().contains(text), "{error}");
        }
    }
}

#[tokio::test]
async fn the_wait_an_error_answer_asks_for_is_read_from_its_headers() {
    // A date half a minute ahead: the wait is the time until then, read to the second.
    let ahead = httpdate::fmt_http_date(std::time::SystemTime::now() + Duration::from_secs(30));
    let cases: [(Headers<'_>, Option<Duration>); 9] = [
        (&[("retry-after", "2")], Some(Duration::from_secs(2))),
        (
            &[("retry-after", " 1.5 ")],
            Some(Duration::from_millis(1500)),
        ),
        (
            &[("retry-after-ms", "250")],
            Some(Duration::from_millis(250)),
        ),
        // OpenAI's milliseconds are the finer figure when both are sent.
        (
            &[("retry-after-ms", "250"), ("retry-after", "1")],
            Some(Duration::from_millis(250)),
        ),
        (
            &[("retry-after", "Wed, 21 Oct 2015 07:28:00 GMT")],
            Some(Duration::ZERO),
        ),
        (&[("retry-after", &ahead)], Some(Duration::from_secs(30))),
        // A number that is not a wait, and text that is not a date, say nothing.
        (&[("retry-after", "-3"), ("retry-after-ms", "NaN")], None),
        (&[("retry-after", "soon")], None),
        (&[], None),
    ];
    for (headers, expected) in cases {
        let recorded =
            Canned::json(429, r#"{"error": {"message": "slow down"}}"#).with_headers(headers);
        for error in errors_of(recorded).await {
            let read = error.retry_after();
            if *headers == [("retry-after", ahead.as_str())] {
                // Dates are whole seconds, and the test's own time passes meanwhile: at most
                // 30 s, and far more than the cases before it take.
                let read = read.unwrap();
                assert!(read <= Duration::from_secs(30), "{read:?}");
                assert!(read >= Duration::from_secs(20), "{read:?}");
                continue;
            }
            assert_eq!(read, expected, "{headers:?}");
            assert!(error.is_retryable());
            let said = match expected {
                Some(wait) => format!("answered 429: slow down (retryable, after the {wait:?} it"),
                None => "answered 429: slow down (retryable)".to_string(),
            };
            assert!(error.to_string().contains(&said), "{error}");
        }
    }
}

#[tokio::test]
async fn malformed_bodies_are_invalid_responses_that_quote_the_body() {
    let cases = [
        (
            Canned::json(200, "<html>gateway</html>"),
            false,
            "the body is not JSON",
        ),
        (
            Canned::json(200, r#"{"choices": []}"#),
            false,
            "it has no `choices[0]`",
        ),
        (
            Canned::json(200, r#"{"choices": [{"message": {"content": 7}}]}"#),
            false,
            "`choices[0].message.content` is 7, not text",
        ),
        (
            Canned::events(&[
                r#"{"choices":[{"index":0,"delta":{"content":"Hi"}}]}"#,
                "{oops",
            ]),
            true,
            "a streamed event is not JSON",
        ),
        (
            Canned::events(&[r#"{"error":{"message":"The server had an error"}}"#]),
            true,
            "the endpoint sent an error in the stream: The server had an error",
        ),
    ];
    for (recorded, streaming, text) in cases {
        let server = Server::start(vec![recorded]).await;
        let client = server.client();
        let error = if streaming {
            client.stream(&ask("Hi"), &|_| {}).await.unwrap_err()
        } else {
            client.chat(&ask("Hi")).await.unwrap_err()
        };
        assert!(
            matches!(error, ModelError::InvalidResponse { .. }),
            "{error:?}"
        );
        assert!(!error.is_retryable());
        assert!(error.to_string().contains(text), "{error}");
    }
}

#[tokio::test]
async fn a_cut_stream_a_stall_and_a_closed_port_are_retryable() {
    let cut = Canned::events(&[r#"{"choices":[{"index":0,"delta":{"content":"Hi"}}]}"#]);
    let server = Server::start(vec![cut]).await;
    let error = server
        .client()
        .stream(&ask("Hi"), &|_| {})
        .await
        .unwrap_err();
    assert!(matches!(error, ModelError::Connection { .. }), "{error:?}");
    assert!(
        error.to_string().contains("ended before `data: [DONE]`"),
        "{error}"
    );
    assert!(error.is_retryable());

    let mut stall = Canned::json(200, PLAIN);
    stall.stall = Duration::from_secs(5);
    let server = Server::start(vec![stall]).await;
    let client = server.client().with_timeout(Duration::from_millis(200));
    let error = client.chat(&ask("Hi")).await.unwrap_err();
    assert_eq!(
        error,
        ModelError::Timeout {
            after: Duration::from_millis(200)
        }
    );
    assert!(error.is_retryable());

    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let closed = format!("http://{}/v1", listener.local_addr().unwrap());
    drop(listener);
    let error = OpenAi::new("m")
        .with_base_url(&closed)
        .chat(&ask("Hi"))
        .await
        .unwrap_err();
    assert!(matches!(error, ModelError::Connection { .. }), "{error:?}");
    assert!(error.to_string().contains(&closed), "{error}");
    assert!(error.is_retryable());
}

#[derive(SharedState, Clone, Debug, Default, Serialize, Deserialize)]
#[slateflow(conversation)]
struct Desk {
    #[reducer(append)]
    messages: Vec<Message>,
    #[reducer(append)]
    histories: Histories,
}

#[tokio::test]
async fn an_agent_over_http_streams_tokens_as_events_and_retries_a_rate_limit() {
    let server = Server::start(vec![
        Canned::json(429, r#"{"error": {"message": "slow down"}}"#)
            .with_headers(&[("retry-after-ms", "20")]),
        Canned::events(&[
            r#"{"choices":[{"index":0,"delta":{"content":"Blocked "}}]}"#,
            r#"{"choices":[{"index":0,"delta":{"content":"IP."},"finish_reason":"stop"}]}"#,
            "[DONE]",
        ]),
    ])
    .await;
    let agent = Agent::new(server.client())
        .retry(slateflow::Retry::attempts(2).wait(Duration::from_millis(1)));
    let flow = flow! { agent; };
    let tokens = Arc::new(Mutex::new(Vec::new()));
    let waits = Arc::new(Mutex::new(Vec::new()));
    let (seen, waited) = (tokens.clone(), waits.clone());
    let observer = slateflow::event::from_fn(move |event: &Event<'_>| match event {
        Event::Custom {
            name: "token",
            data,
            ..
        } => seen
            .lock()
            .unwrap()
            .push(data.as_str().unwrap().to_string()),
        Event::Retry { wait, .. } => waited.lock().unwrap().push(*wait),
        _ => {}
    });
    let mut desk = Desk {
        messages: vec![Message::human("Is 10.0.0.5 bad?")],
        ..Desk::default()
    };
    flow.observe(observer).run(&mut desk).await.unwrap();
    assert_eq!(*tokens.lock().unwrap(), ["Blocked ", "IP."]);
    assert_eq!(
        *waits.lock().unwrap(),
        [Duration::from_millis(20)],
        "the endpoint's 20 ms, not the policy's 1 ms"
    );
    assert_eq!(desk.messages.last().unwrap().content(), "Blocked IP.");
    assert_eq!(server.received().len(), 2);
}

/// The README's agent, run from synchronous code: `run_blocking` gives its runtime IO as well as
/// timers, so an HTTP client works inside a node (a runtime with timers alone failed every call
/// with "IO is disabled").
#[test]
fn a_blocking_run_calls_the_model_over_http() {
    // The server runs on a runtime of its own, on its own threads, while this one blocks.
    let serving = tokio::runtime::Runtime::new().unwrap();
    let server = serving.block_on(Server::start(vec![Canned::json(200, PLAIN)]));
    let agent = Agent::new(server.client());
    let flow = flow! { agent; };
    let mut desk = Desk {
        messages: vec![Message::human("Hello?")],
        ..Desk::default()
    };
    assert_eq!(flow.run_blocking(&mut desk).unwrap(), "default");
    assert_eq!(
        desk.messages.last().unwrap().content(),
        "Hello! How can I help?"
    );
    let received = server.received();
    assert_eq!(received.len(), 1);
    assert_eq!(received[0].body["messages"][0]["content"], "Hello?");
}

/// Inside a tokio runtime a blocking run would stall the runtime's thread: it is refused with an
/// error that names the async call to use, never tokio's panic.
#[tokio::test]
async fn a_blocking_run_inside_a_runtime_says_to_await_instead() {
    let agent = Agent::new(OpenAi::new("unused"));
    let flow = flow! { agent; };
    let error = flow.run_blocking(&mut Desk::default()).unwrap_err();
    assert!(
        matches!(
            error,
            slateflow::Error::BlockingInRuntime {
                call: "Flow::run_blocking",
                ..
            }
        ),
        "{error:?}"
    );
    assert_eq!(
        error.to_string(),
        "`Flow::run_blocking` blocks its thread until the work is done, and was called inside a \
         tokio runtime, which it would stall: use `flow.run(&mut state).await` there, or call it \
         from `tokio::task::spawn_blocking`"
    );
    // The async form works in the same place.
    let server = Server::start(vec![Canned::json(200, PLAIN)]).await;
    let agent = Agent::new(server.client());
    let mut desk = Desk {
        messages: vec![Message::human("Hello?")],
        ..Desk::default()
    };
    flow! { agent; }.run(&mut desk).await.unwrap();
    assert_eq!(desk.messages.len(), 2);
}

/// With default settings, an agent retries a rate limit and a server error, as the official
/// SDKs do (twice), waiting what the endpoint asks; a bad request is not retried.
#[tokio::test]
async fn an_agent_with_default_settings_retries_rate_limits_and_server_errors() {
    let server = Server::start(vec![
        Canned::json(429, r#"{"error": {"message": "slow down"}}"#)
            .with_headers(&[("retry-after-ms", "10")]),
        Canned::json(503, r#"{"error": {"message": "overloaded"}}"#)
            .with_headers(&[("retry-after-ms", "10")]),
        Canned::json(200, PLAIN),
    ])
    .await;
    let agent = Agent::new(server.client());
    let flow = flow! { agent; };
    let mut desk = Desk {
        messages: vec![Message::human("Hello?")],
        ..Desk::default()
    };
    flow.run(&mut desk).await.unwrap();
    assert_eq!(server.received().len(), 3);
    assert_eq!(
        desk.messages.last().unwrap().content(),
        "Hello! How can I help?"
    );

    let server = Server::start(vec![
        Canned::json(400, r#"{"error": {"message": "bad request"}}"#),
        Canned::json(200, PLAIN),
    ])
    .await;
    let agent = Agent::new(server.client());
    let flow = flow! { agent; };
    let error = flow.run(&mut desk.clone()).await.unwrap_err();
    assert!(error.to_string().contains("bad request"), "{error}");
    assert_eq!(
        server.received().len(),
        1,
        "a bad request is not sent again"
    );
}

/// A tool-calling response with one call of `lookup_ip`.
const ONE_LOOKUP: &str = r#"{
  "choices": [{
    "index": 0,
    "message": {
      "role": "assistant",
      "content": null,
      "tool_calls": [
        {"id": "call_a", "type": "function", "function": {"name": "lookup_ip", "arguments": "{\"ip\":\"10.0.0.5\"}"}}
      ]
    },
    "finish_reason": "tool_calls"
  }]
}"#;

/// An agent with a tool, whose model is `model`, asked whether 10.0.0.5 is bad: its answer.
async fn triage_with<M: ChatModel>(
    model: M,
    system: &'static str,
) -> Result<Desk, slateflow::Error> {
    use slateflow::agent::Toolbox;
    use slateflow::agent::tool;
    #[derive(Deserialize)]
    struct Ip {
        ip: String,
    }
    let lookup = tool::from_fn(
        "lookup_ip",
        "Reputation of an IP address",
        json!({"type": "object", "properties": {"ip": {"type": "string"}}}),
        |args: Ip| async move { Ok(json!({"ip": args.ip, "blocked": true})) },
    );
    let agent = Agent::new(model)
        .system(slateflow::agent::Prompt::parse(system).unwrap())
        .tools(Toolbox::new().with(lookup));
    let mut desk = Desk {
        messages: vec![Message::human("Is 10.0.0.5 bad?")],
        ..Desk::default()
    };
    flow! { agent; }.run(&mut desk).await?;
    Ok(desk)
}

/// A real model's exchanges (the client against the server) recorded to a file, then replayed
/// with no server at all: the same conversation, every exchange used. A changed prompt fails at
/// its first request, with the file, the place and both texts.
#[tokio::test]
async fn a_recorded_agent_replays_offline_and_a_changed_prompt_says_where() {
    use slateflow::agent::model::Recorded as Recording;
    let folder = std::path::PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("openai-recording");
    let _ = std::fs::remove_dir_all(&folder);
    let path = folder.join("recordings").join("triage.jsonl");
    let server = Server::start(vec![
        Canned::json(200, ONE_LOOKUP),
        Canned::json(200, PLAIN),
    ])
    .await;
    let recorded = triage_with(
        Recording::record(server.client(), &path).unwrap(),
        "Be brief.",
    )
    .await
    .unwrap();
    assert_eq!(server.received().len(), 2);
    let lines = std::fs::read_to_string(&path).unwrap();
    assert_eq!(lines.lines().count(), 2, "one line per exchange:\n{lines}");

    // Replayed: the client is never made, and nothing listens.
    let replay = Arc::new(
        Recording::replay_or_record(&path, || -> Result<OpenAi, ModelError> {
            panic!("a replay makes no model")
        })
        .unwrap(),
    );
    assert!(replay.is_replay());
    let replayed = triage_with(replay.clone(), "Be brief.").await.unwrap();
    assert_eq!(replayed.messages, recorded.messages);
    assert_eq!(replayed.histories, recorded.histories);
    assert_eq!(replay.remaining(), 0);
    assert_eq!(server.received().len(), 2, "the server saw nothing more");

    let error = triage_with(Recording::replay(&path).unwrap(), "Be thorough.")
        .await
        .unwrap_err();
    let text = error.to_string();
    assert!(
        text.contains("request 1 to the model is not in the recording"),
        "{text}"
    );
    assert!(text.contains("triage.jsonl"), "{text}");
    assert!(
        text.contains(r#"at `messages[0].content` its next exchange (line 1) has "Be brief." where this request has "Be thorough.""#),
        "{text}"
    );
    assert!(
        text.contains("(not retryable)"),
        "a replay that left the recording is not retried: {text}"
    );

    // A cut or edited file is refused when opened, naming the line.
    std::fs::write(
        &path,
        format!("{}\n{{\"request\": 1", lines.lines().next().unwrap()),
    )
    .unwrap();
    let error = Recording::replay(&path).unwrap_err();
    assert!(
        error
            .to_string()
            .starts_with("line 2 of the model recording"),
        "{error}"
    );
    let missing = Recording::replay(folder.join("none.jsonl")).unwrap_err();
    assert!(
        missing
            .to_string()
            .starts_with("cannot read the model recording"),
        "{missing}"
    );
}
