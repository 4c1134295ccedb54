//! The studio's API over HTTP on 127.0.0.1, against every store: a thread started, watched,
//! answered, branched with an edited state and cancelled through it; every kind of bad request
//! refused with a 4xx that names what was wrong, leaving the thread as it was; a studio over a
//! store alone; threads paged and filtered.

use std::time::Duration;

use serde::{Deserialize, Serialize};
use serde_json::{Value, json};
use slateflow::checkpoint::{CheckpointStore, FileStore, MemoryStore, PostgresStore, SqliteStore};
use slateflow::studio::{Server, Studio, StudioError};
use slateflow::{Command, SharedState, flow, node};

/// Helpers shared by test files; each uses part of them.
#[allow(dead_code)]
mod support {
    pub(crate) mod postgres;
}

/// A refund waiting for a person's approval.
#[derive(SharedState, Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
struct Refund {
    amount: u32,
    approved: Option<bool>,
    #[reducer(append)]
    log: Vec<String>,
    /// Text typed by a customer: it may hold markup.
    note: String,
    /// What the customer and the desk said.
    chat: Vec<slateflow::agent::Message>,
}

#[node]
fn check(refund: &Refund) -> Command<Refund> {
    Command::new(Refund::update().push_log("check".into()))
        .ask(format!("Pay back {} EUR?", refund.amount))
}

#[node(actions = ["pay", "refuse"])]
fn decide(refund: &Refund) -> Command<Refund> {
    let (action, reason) = if refund.approved == Some(true) {
        ("pay", "a person approved it")
    } else {
        ("refuse", "nobody approved it")
    };
    Command::goto(action).with_reason(reason)
}

#[node]
fn pay(refund: &Refund) -> Command<Refund> {
    Command::new(Refund::update().push_log(format!("paid {}", refund.amount)))
}

#[node]
fn refuse(_: &Refund) -> Command<Refund> {
    Command::new(Refund::update().push_log("refused".into()))
}

macro_rules! refunds {
    () => {
        flow! {
            check >> decide;
            decide - "pay" >> pay;
            decide - "refuse" >> refuse;
        }
    };
}

/// An HTTP client of one studio.
#[derive(Clone)]
struct Client {
    http: reqwest::Client,
    base: String,
    token: String,
}

/// A response: its status, its body read as JSON, and its headers.
struct Answer {
    status: u16,
    body: Value,
    headers: reqwest::header::HeaderMap,
}

impl Answer {
    /// The error the body names.
    fn error(&self) -> &str {
        self.body["error"]
            .as_str()
            .unwrap_or_else(|| panic!("no error in a {} answer: {}", self.status, self.body))
    }
}

impl Client {
    fn of<St: CheckpointStore + 'static>(server: &Server<'_, St>) -> Self {
        Self {
            http: reqwest::Client::new(),
            base: format!("http://{}", server.local_addr()),
            token: server.token().to_string(),
        }
    }

    async fn send(&self, request: reqwest::RequestBuilder) -> Answer {
        let response = request.send().await.unwrap();
        let status = response.status().as_u16();
        let headers = response.headers().clone();
        let bytes = response.bytes().await.unwrap();
        let body = serde_json::from_slice(&bytes).unwrap_or_else(|error| {
            panic!(
                "a {status} answer that is not JSON ({error}): {}",
                String::from_utf8_lossy(&bytes)
            )
        });
        Answer {
            status,
            body,
            headers,
        }
    }

    async fn get(&self, path: &str) -> Answer {
        self.send(self.http.get(format!("{}{path}", self.base)))
            .await
    }

    /// A change, with the token.
    async fn post(&self, path: &str, body: &Value) -> Answer {
        self.post_raw(path, body.to_string()).await
    }

    async fn post_raw(&self, path: &str, body: impl Into<reqwest::Body>) -> Answer {
        self.send(
            self.http
                .post(format!("{}{path}", self.base))
                .bearer_auth(&self.token)
                .body(body),
        )
        .await
    }

    /// The thread, once its status is `status` (within ten seconds).
    async fn wait(&self, thread: &str, status: &str) -> Value {
        let mut seen = Value::Null;
        for _ in 0..1000 {
            let answer = self.get(&format!("/api/threads/{thread}")).await;
            assert_eq!(answer.status, 200, "{}", answer.body);
            if answer.body["status"] == status {
                return answer.body;
            }
            seen = answer.body;
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        panic!("thread `{thread}` never became {status}: {seen}");
    }

    async fn state(&self, thread: &str, step: Option<u64>) -> Value {
        let query = step.map_or(String::new(), |step| format!("?step={step}"));
        let answer = self
            .get(&format!("/api/threads/{thread}/state{query}"))
            .await;
        assert_eq!(answer.status, 200, "{}", answer.body);
        answer.body["state"].clone()
    }
}

const SCRIPT: &str = "<script>window.pwned = true</script>";

/// A thread through its whole life over `store`: started from JSON, paused at a question, read,
/// refused bad requests, answered from the page's origin, finished; then branched with an edited
/// state, and from its start; then a third cancelled.
async fn a_thread_runs_through_the_studio(store: impl CheckpointStore + 'static, test: &str) {
    let flow = refunds!();
    let server = Studio::of(flow.durable(store).named("refunds"))
        .bind("127.0.0.1:0")
        .await
        .unwrap();
    let client = Client::of(&server);
    let thread = format!("{test}-1");
    server
        .run_until(async {
            hosted_flows_are_listed(&client).await;
            a_thread_starts_and_waits(&client, &thread).await;
            bad_reads_are_refused(&client, &thread).await;
            bad_changes_are_refused(&client, &thread).await;
            changes_need_the_token_or_the_page(&client, &thread).await;
            the_answer_finishes_it(&client, &thread).await;
            branches_go_on_from_earlier_steps(&client, &thread, test).await;
            a_cancelled_thread_stays_cancelled(&client, test).await;
        })
        .await
        .unwrap();
}

/// The hosted flow, its graph and its state's fields.
async fn hosted_flows_are_listed(client: &Client) {
    let flows = client.get("/api/flows").await;
    assert_eq!(flows.status, 200);
    let refunds = &flows.body["flows"][0];
    assert_eq!(refunds["name"], "refunds");
    let nodes: Vec<&str> = refunds["graph"]["nodes"]
        .as_array()
        .unwrap()
        .iter()
        .map(|node| node["name"].as_str().unwrap())
        .collect();
    assert_eq!(nodes, ["check", "decide", "pay", "refuse"]);
    assert!(
        refunds["graph"]["edges"]
            .as_array()
            .unwrap()
            .contains(&json!({"from": "decide", "action": "pay", "to": "pay"}))
    );
    assert_eq!(
        refunds["fields"][0],
        json!({"name": "amount", "type": "u32"})
    );
}

/// Started from JSON, a thread runs in the studio and waits at its question; its history and
/// its state at each step read back.
async fn a_thread_starts_and_waits(client: &Client, thread: &str) {
    let started = client
        .post(
            "/api/threads",
            &json!({
                "flow": "refunds",
                "thread": thread,
                "state": { "amount": 120, "note": SCRIPT },
            }),
        )
        .await;
    assert_eq!(started.status, 202, "{}", started.body);
    let paused = client.wait(thread, "paused").await;
    assert_eq!(paused["flow"], "refunds");
    assert_eq!(paused["hosted"], true);
    assert_eq!(paused["pauses"][0]["key"], "asked:check@1");
    assert_eq!(paused["pauses"][0]["asked"], "Pay back 120 EUR?");
    assert_eq!(paused["runs"], json!({ "check": 1 }));
    assert_eq!(paused["graph"]["start"], "check");

    let history = client.get(&format!("/api/threads/{thread}/history")).await;
    assert_eq!(history.status, 200);
    let records = history.body["records"].as_array().unwrap();
    assert_eq!(records[0]["kind"], "start");
    assert_eq!(records[1]["kind"], "step");
    assert_eq!(records[1]["node"], "check");
    assert_eq!(records[1]["update"]["log"], json!(["check"]));
    assert!(records[1]["took_ms"].is_u64());
    // The state before and after the step; the markup in it comes back as the text it is.
    let before = client.state(thread, Some(0)).await;
    assert_eq!(
        (before["amount"].clone(), before["log"].clone()),
        (json!(120), json!([]))
    );
    assert_eq!(before["note"], SCRIPT);
    assert_eq!(client.state(thread, None).await["log"], json!(["check"]));
}

/// Answered from the page (its origin, no token), the thread runs on to its end.
async fn the_answer_finishes_it(client: &Client, thread: &str) {
    // Its event stream says where it stands at once, and each change as it comes.
    let mut events = client
        .http
        .get(format!("{}/api/threads/{thread}/events", client.base))
        .send()
        .await
        .unwrap();
    assert_eq!(events.headers()["content-type"], "text/event-stream");
    let first = next_event(&mut events).await;
    assert!(first.starts_with("event: changed\ndata: {"), "{first}");
    assert!(first.contains(r#""status":"paused""#), "{first}");
    let answered = client
        .send(
            client
                .http
                .post(format!("{}/api/threads/{thread}/answer", client.base))
                .header("Origin", &client.base)
                .body(json!({"key": "asked:check@1", "update": {"approved": true}}).to_string()),
        )
        .await;
    assert_eq!(answered.status, 200, "{}", answered.body);
    assert_eq!(answered.body["pauses_left"], 0);
    // The run the answer made sends its events as they happen; the store's changes come too.
    let mut seen: Vec<String> = Vec::new();
    while !seen.iter().any(|event| {
        event.starts_with("event: changed") && event.contains(r#""status":"finished""#)
    }) {
        let chunk = next_event(&mut events).await;
        seen.extend(chunk.split_terminator("\n\n").map(str::to_string));
    }
    let run: Vec<Value> = seen
        .iter()
        .filter_map(|event| event.strip_prefix("event: run\ndata: "))
        .map(|data| serde_json::from_str(data).unwrap())
        .collect();
    let kinds: Vec<(&str, &str)> = run
        .iter()
        .map(|event| {
            (
                event["kind"].as_str().unwrap(),
                event["node"].as_str().unwrap_or(""),
            )
        })
        .collect();
    for expected in [
        ("node_started", "decide"),
        ("node_finished", "decide"),
        ("node_started", "pay"),
        ("step_saved", "pay"),
        ("run_finished", ""),
    ] {
        assert!(kinds.contains(&expected), "no {expected:?} in {kinds:?}");
    }
    drop(events);
    let finished = client.wait(thread, "finished").await;
    assert_eq!(finished["detail"], "default");
    assert_eq!(
        finished["runs"],
        json!({ "check": 1, "decide": 1, "pay": 1 })
    );
    assert_eq!(
        client.state(thread, None).await["log"],
        json!(["check", "paid 120"])
    );
    let history = client
        .get(&format!("/api/threads/{thread}/history?offset=0&limit=500"))
        .await;
    let reasons: Vec<&Value> = history.body["records"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|record| record["node"] == "decide")
        .map(|record| &record["reason"])
        .collect();
    assert_eq!(reasons, [&json!("a person approved it")]);
    let resumed = client
        .post(&format!("/api/threads/{thread}/resume"), &json!({}))
        .await;
    assert_eq!(resumed.status, 409);
    assert!(
        resumed.error().contains("is finished"),
        "{}",
        resumed.error()
    );
}

/// Branched from the answered question with a smaller amount and resumed, a new thread pays that
/// amount; branched from the start, it asks again. The old thread is as it was.
async fn branches_go_on_from_earlier_steps(client: &Client, thread: &str, test: &str) {
    let branch = format!("{test}-1b");
    let branched = client
        .post(
            &format!("/api/threads/{thread}/branch"),
            &json!({"step": 1, "thread": branch, "update": {"amount": 30}}),
        )
        .await;
    assert_eq!(branched.status, 201, "{}", branched.body);
    let waiting = client.get(&format!("/api/threads/{branch}")).await.body;
    assert_eq!(waiting["pauses"], json!([]));
    assert_eq!(waiting["answered"], json!(["asked:check@1"]));
    assert_eq!(client.state(&branch, None).await["amount"], 30);
    let resumed = client
        .post(&format!("/api/threads/{branch}/resume"), &json!({}))
        .await;
    assert_eq!(resumed.status, 202, "{}", resumed.body);
    client.wait(&branch, "finished").await;
    let branch_state = client.state(&branch, None).await;
    assert_eq!(branch_state["log"], json!(["check", "paid 30"]));
    assert_eq!(client.state(thread, None).await["amount"], 120);
    // Branched from the start, it asks again; refused, it ends the other way.
    let again = format!("{test}-1c");
    let branched = client
        .post(
            &format!("/api/threads/{thread}/branch"),
            &json!({"step": 0, "thread": again}),
        )
        .await;
    assert_eq!(branched.status, 201, "{}", branched.body);
    client
        .post(&format!("/api/threads/{again}/resume"), &json!({}))
        .await;
    let asked = client.wait(&again, "paused").await;
    assert_eq!(asked["pauses"][0]["key"], "asked:check@1");
    let answered = client
        .post(
            &format!("/api/threads/{again}/answer"),
            &json!({"key": "asked:check@1", "update": {"approved": false}}),
        )
        .await;
    assert_eq!(answered.status, 200, "{}", answered.body);
    client.wait(&again, "finished").await;
    assert_eq!(
        client.state(&again, None).await["log"],
        json!(["check", "refused"])
    );
}

/// A thread cancelled while it waits does not run again.
async fn a_cancelled_thread_stays_cancelled(client: &Client, test: &str) {
    let third = format!("{test}-3");
    let started = client
        .post(
            "/api/threads",
            &json!({"flow": "refunds", "thread": third, "state": {"amount": 5}}),
        )
        .await;
    assert_eq!(started.status, 202);
    client.wait(&third, "paused").await;
    let cancelled = client
        .post(&format!("/api/threads/{third}/cancel"), &json!({}))
        .await;
    assert_eq!(cancelled.status, 200, "{}", cancelled.body);
    client.wait(&third, "cancelled").await;
    let resumed = client
        .post(&format!("/api/threads/{third}/resume"), &json!({}))
        .await;
    assert_eq!(resumed.status, 409);

    let listed = client.get("/api/threads?status=finished").await;
    assert_eq!(listed.body["total"], 3);
}

/// The next event of a stream (within ten seconds).
async fn next_event(events: &mut reqwest::Response) -> String {
    let chunk = tokio::time::timeout(Duration::from_secs(10), events.chunk())
        .await
        .expect("an event within ten seconds")
        .unwrap()
        .expect("the stream goes on");
    String::from_utf8(chunk.to_vec()).unwrap()
}

/// What a refused request should be: its status, and an error that says `says`.
fn refused(answer: &Answer, status: u16, says: &str) {
    assert_eq!(answer.status, status, "{}", answer.body);
    assert!(
        answer.error().contains(says),
        "`{}` does not say `{says}`",
        answer.error()
    );
}

/// Bad reads get a 4xx whose error says what was wrong; the answers are JSON.
async fn bad_reads_are_refused(client: &Client, thread: &str) {
    refused(
        &client.get("/api/threads/nobody").await,
        404,
        "unknown thread `nobody`",
    );
    refused(
        &client.get("/api/threads/nobody/events").await,
        404,
        "unknown thread `nobody`",
    );
    refused(&client.get("/api/threads/..%2Fetc").await, 400, "`../etc`");
    refused(
        &client.get("/api/threads?limit=0").await,
        400,
        "`limit` must be from 1 to 500, not 0",
    );
    refused(
        &client.get("/api/threads?status=sleeping").await,
        400,
        "unknown status `sleeping`",
    );
    refused(
        &client
            .get(&format!("/api/threads/{thread}/state?step=first"))
            .await,
        400,
        "`step` must be a step number, not `first`",
    );
    refused(
        &client
            .get(&format!("/api/threads/{thread}/state?step=99"))
            .await,
        404,
        "has no step 99",
    );
    // A request addressed to another name (DNS rebinding) is refused, reads included.
    refused(
        &client
            .send(
                client
                    .http
                    .get(format!("{}/api/threads", client.base))
                    .header("Host", "evil.example"),
            )
            .await,
        421,
        "not to `evil.example`",
    );
    refused(
        &client.get("/nowhere").await,
        404,
        "no such page: `/nowhere`",
    );
    // The answers are JSON, never sniffed as markup.
    let answer = client.get(&format!("/api/threads/{thread}")).await;
    assert_eq!(answer.headers["content-type"], "application/json");
    assert_eq!(answer.headers["x-content-type-options"], "nosniff");
    assert_eq!(answer.body["status"], "paused");
    assert_eq!(answer.body["pauses"].as_array().unwrap().len(), 1);
}

/// Bad changes, on a thread waiting at its question: each gets a 4xx whose error says what was
/// wrong, and the thread is as it was.
async fn bad_changes_are_refused(client: &Client, thread: &str) {
    let records = |answer: Answer| answer.body["total"].as_u64().unwrap();
    let before = records(client.get(&format!("/api/threads/{thread}/history")).await);
    refused(
        &client
            .post_raw("/api/threads", r#"{"flow": "refunds", "thread": "x""#)
            .await,
        400,
        "the body is not JSON: EOF while parsing an object at line 1 column 33",
    );
    refused(
        &client.post_raw("/api/threads", "[1]").await,
        400,
        "must be a JSON object",
    );
    refused(
        &client
            .post(
                "/api/threads",
                &json!({"flow": "nope", "thread": "x", "state": {}}),
            )
            .await,
        404,
        "no hosted flow is named `nope`; the hosted flows: `refunds`",
    );
    // A bad initial state names the path of the bad value, and starts no thread.
    refused(
        &client
            .post(
                "/api/threads",
                &json!({"flow": "refunds", "thread": "bad-state", "state": {"amount": "lots"}}),
            )
            .await,
        422,
        "the state is not valid at `amount`: invalid type: string \"lots\", expected u32",
    );
    refused(
        &client.get("/api/threads/bad-state").await,
        404,
        "unknown thread",
    );
    refused(
        &client
            .post(
                "/api/threads",
                &json!({"flow": "refunds", "thread": thread, "state": {}}),
            )
            .await,
        409,
        "already exists",
    );
    refused(
        &client
            .post(
                &format!("/api/threads/{thread}/answer"),
                &json!({"key": "asked:pay@9", "update": {}}),
            )
            .await,
        409,
        "waits at no pause `asked:pay@9`; it waits at `asked:check@1`",
    );
    refused(
        &client
            .post(
                &format!("/api/threads/{thread}/answer"),
                &json!({"key": "asked:check@1", "update": {"approved": "yes"}}),
            )
            .await,
        422,
        "the update is not valid at `approved`",
    );
    refused(
        &client
            .post(
                &format!("/api/threads/{thread}/answer"),
                &json!({"key": "asked:check@1"}),
            )
            .await,
        400,
        "the body has no `update`",
    );
    refused(
        &client
            .post(&format!("/api/threads/{thread}/explode"), &json!({}))
            .await,
        404,
        "no such action on a thread: `explode`",
    );
    refused(
        &client.post_raw("/api/threads", vec![b' '; 5 << 20]).await,
        413,
        "larger than 4 MiB",
    );
    let after = records(client.get(&format!("/api/threads/{thread}/history")).await);
    assert_eq!(after, before, "a bad request wrote a record");
}

/// A path's wrong method is refused with the ones it takes; a change without the token, with a
/// wrong one, or from another site's page is refused, and changes nothing.
async fn changes_need_the_token_or_the_page(client: &Client, thread: &str) {
    let read_of_a_change = client.get(&format!("/api/threads/{thread}/answer")).await;
    assert_eq!(read_of_a_change.headers["allow"], "POST");
    refused(&read_of_a_change, 405, "takes only POST");
    let wrong_method = client
        .send(client.http.delete(format!("{}/api/threads", client.base)))
        .await;
    assert_eq!(wrong_method.headers["allow"], "GET, POST");
    refused(&wrong_method, 405, "takes only GET, POST");
    // Changes without the token, with a wrong one, or from another site's page are refused.
    let cancel = format!("{}/api/threads/{thread}/cancel", client.base);
    for request in [
        client.http.post(&cancel),
        client.http.post(&cancel).bearer_auth("guess"),
        client
            .http
            .post(&cancel)
            .header("Origin", "http://evil.example"),
    ] {
        refused(&client.send(request).await, 403, "needs the studio's token");
    }
    let answer = client.get(&format!("/api/threads/{thread}")).await;
    assert_eq!(answer.body["status"], "paused");
}

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap()
}

fn scratch(test: &str) -> std::path::PathBuf {
    let dir = std::env::temp_dir().join(format!("slateflow-studio-{test}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

#[test]
fn a_thread_runs_through_the_studio_on_the_memory_store() {
    runtime().block_on(a_thread_runs_through_the_studio(
        MemoryStore::new(),
        "memory",
    ));
}

#[test]
fn a_thread_runs_through_the_studio_on_the_file_store() {
    let dir = scratch("file");
    runtime().block_on(a_thread_runs_through_the_studio(
        FileStore::open(&dir).unwrap(),
        "file",
    ));
}

#[test]
fn a_thread_runs_through_the_studio_on_the_sqlite_store() {
    let dir = scratch("sqlite");
    runtime().block_on(a_thread_runs_through_the_studio(
        SqliteStore::open(dir.join("threads.db")).unwrap(),
        "sqlite",
    ));
}

#[test]
fn a_thread_runs_through_the_studio_on_the_postgres_store() {
    let Some(url) = support::postgres::database("studio") else {
        return;
    };
    support::postgres::runtime().block_on(async {
        let store = PostgresStore::connect(&url).await.unwrap();
        a_thread_runs_through_the_studio(store, "postgres").await;
    });
}

/// A studio over a store alone lists and shows threads, draws their flow from what the store
/// kept of it, shows their state where a snapshot was saved, and cancels them; it says why it
/// cannot run or answer them.
#[test]
fn a_studio_over_a_store_alone_shows_threads_it_cannot_run() {
    runtime().block_on(async {
        let store = MemoryStore::new();
        let flow = refunds!();
        let durable = flow.durable(store.clone()).named("refunds");
        durable
            .start(
                "alone",
                &mut Refund {
                    amount: 7,
                    ..Refund::default()
                },
            )
            .await
            .unwrap();
        let server = Studio::new(store).bind("127.0.0.1:0").await.unwrap();
        let client = Client::of(&server);
        server
            .run_until(async {
                // The flow is not hosted, but the store kept its graph and fields.
                let flows = client.get("/api/flows").await.body;
                assert_eq!(flows["flows"][0]["name"], "refunds");
                assert_eq!(flows["flows"][0]["hosted"], false);
                assert_eq!(
                    flows["flows"][0]["fields"][0],
                    json!({"name": "amount", "type": "u32"})
                );
                let thread = client.get("/api/threads/alone").await.body;
                assert_eq!(thread["hosted"], false);
                assert_eq!(thread["flow"], "refunds");
                assert_eq!(thread["graph"]["start"], "check");
                assert_eq!(thread["runs"], json!({ "check": 1 }));
                assert_eq!(thread["pauses"][0]["key"], "asked:check@1");
                // Step 0 saved a snapshot; step 1 did not, and rebuilding it needs the flow.
                assert_eq!(client.state("alone", Some(0)).await["amount"], 7);
                let current = client.get("/api/threads/alone/state").await;
                assert_eq!(current.status, 409);
                assert!(current.error().contains("flow `refunds` is not hosted"));
                let answered = client
                    .post(
                        "/api/threads/alone/answer",
                        &json!({"key": "asked:check@1", "update": {"approved": true}}),
                    )
                    .await;
                assert_eq!(answered.status, 409);
                assert!(
                    answered
                        .error()
                        .contains("belongs to a flow named `refunds` this studio does not host"),
                    "{}",
                    answered.error()
                );
                // A waiting thread is not queued for workers; a branch of it, interrupted, is.
                let queued = client.post("/api/threads/alone/queue", &json!({})).await;
                refused(
                    &queued,
                    409,
                    "cannot be queued: it waits for an answer first",
                );
                let branched = client
                    .post(
                        "/api/threads/alone/branch",
                        &json!({"step": 0, "thread": "alone-again"}),
                    )
                    .await;
                assert_eq!(branched.status, 201, "{}", branched.body);
                let status = |thread: &'static str| {
                    let client = client.clone();
                    async move {
                        client.get(&format!("/api/threads/{thread}")).await.body["status"].clone()
                    }
                };
                assert_eq!(status("alone-again").await, "interrupted");
                let queued = client
                    .post("/api/threads/alone-again/queue", &json!({}))
                    .await;
                assert_eq!(queued.status, 200, "{}", queued.body);
                assert_eq!(status("alone-again").await, "queued");
                let again = client
                    .post("/api/threads/alone-again/queue", &json!({}))
                    .await;
                refused(&again, 409, "it is queued already");
                let cancelled = client.post("/api/threads/alone/cancel", &json!({})).await;
                assert_eq!(cancelled.status, 200);
                assert_eq!(
                    client.get("/api/threads/alone").await.body["status"],
                    "cancelled"
                );
            })
            .await
            .unwrap();
    });
}

/// Threads come in pages, last written first, and filter by status.
#[test]
fn threads_are_paged_and_filtered() {
    runtime().block_on(async {
        let store = MemoryStore::new();
        let flow = refunds!();
        let durable = flow.durable(store.clone()).named("refunds");
        for index in 0..120 {
            if index == 119 {
                // Written last: later than the others, whatever the clock's grain.
                tokio::time::sleep(Duration::from_millis(5)).await;
            }
            durable
                .start(&format!("page-{index:03}"), &mut Refund::default())
                .await
                .unwrap();
        }
        durable.cancel("page-000").await.unwrap();
        let server = Studio::of(durable).bind("127.0.0.1:0").await.unwrap();
        let client = Client::of(&server);
        server
            .run_until(async {
                let first = client.get("/api/threads?limit=50").await.body;
                assert_eq!(first["total"], 120);
                assert_eq!(first["threads"].as_array().unwrap().len(), 50);
                assert_eq!(first["threads"][0]["id"], "page-119");
                let last = client.get("/api/threads?offset=100&limit=50").await.body;
                assert_eq!(last["threads"].as_array().unwrap().len(), 20);
                let paused = client
                    .get("/api/threads?status=paused&limit=500")
                    .await
                    .body;
                assert_eq!(paused["total"], 119);
                assert!(paused["threads"].as_array().unwrap().iter().all(
                    |thread| thread["status"] == "paused"
                        && thread["step"] == 1
                        && thread["pauses"] == 1
                        && thread["flow"] == "refunds"
                ));
                let cancelled = client.get("/api/threads?status=cancelled").await.body;
                assert_eq!(cancelled["total"], 1);
            })
            .await
            .unwrap();
    });
}

/// Listening beyond the loopback needs a token, and then every request needs it; a token given
/// is the one changes need.
#[test]
fn another_address_needs_a_token() {
    runtime().block_on(async {
        let flow = refunds!();
        let error = Studio::of(flow.durable(MemoryStore::new()).named("refunds"))
            .bind("0.0.0.0:0")
            .await
            .err()
            .unwrap();
        assert!(matches!(error, StudioError::TokenNeeded { .. }), "{error}");
        assert!(
            error
                .to_string()
                .contains("give it a token with `Studio::token`")
        );
        // With a token, beyond the loopback: any name reaches it, and every request needs the
        // token, reads and the page included.
        let wide = Studio::of(flow.durable(MemoryStore::new()).named("refunds"))
            .token("wide-token")
            .bind("0.0.0.0:0")
            .await
            .unwrap();
        let base = format!("http://127.0.0.1:{}", wide.local_addr().port());
        let http = reqwest::Client::new();
        wide.run_until(async {
            let status = |request: reqwest::RequestBuilder| async move {
                request.send().await.unwrap().status().as_u16()
            };
            let threads = format!("{base}/api/threads");
            assert_eq!(status(http.get(&threads)).await, 401);
            assert_eq!(status(http.get(&threads).bearer_auth("guess")).await, 401);
            assert_eq!(
                status(http.get(&threads).bearer_auth("wide-token")).await,
                200
            );
            assert_eq!(
                status(http.get(format!("{threads}?token=wide-token"))).await,
                200
            );
            assert_eq!(status(http.get(format!("{base}/"))).await, 401);
            assert_eq!(
                status(http.get(format!("{base}/?token=wide-token"))).await,
                200
            );
            // Addressed by another name, as on a network.
            let named = http
                .get(&threads)
                .header("Host", "studio.internal:7878")
                .bearer_auth("wide-token");
            assert_eq!(status(named).await, 200);
        })
        .await
        .unwrap();
        let server = Studio::of(flow.durable(MemoryStore::new()).named("refunds"))
            .token("s3cret-token")
            .bind("127.0.0.1:0")
            .await
            .unwrap();
        assert_eq!(server.token(), "s3cret-token");
        let named_twice = Studio::of(flow.durable(MemoryStore::new()).named("refunds"))
            .flow(flow.durable(MemoryStore::new()).named("refunds"))
            .bind("127.0.0.1:0")
            .await
            .err()
            .unwrap();
        assert!(
            named_twice
                .to_string()
                .contains("two hosted flows are named `refunds`")
        );
    });
}

/// The page in a real headless browser (Debian's `chromium`, driven through `chromedriver`): it
/// opens the studio on a waiting thread, sees the graph and the question, answers it in the form
/// and sees the thread finish. A state field holding markup shows as text and runs nothing. The
/// screenshot it takes of the waiting thread is the README's (`SLATEFLOW_SCREENSHOT=path` writes
/// it there; it is always written to the target folder).
#[test]
fn the_page_answers_a_pause_in_a_real_browser() {
    let Some(driver) = browser::Driver::start() else {
        return;
    };
    runtime().block_on(async {
        let flow = refunds!();
        let durable = flow.durable(MemoryStore::new()).named("refunds");
        let mut refund = Refund {
            amount: 120,
            note: SCRIPT.into(),
            chat: vec![
                slateflow::agent::Message::human("The blender broke in a week."),
                slateflow::agent::Message::ai("Sorry! I asked for a refund of 120 EUR."),
            ],
            ..Refund::default()
        };
        durable.start("refund-7", &mut refund).await.unwrap();
        let (inner, outer) = (flow! { pay >> refuse; }, check);
        let nested = flow! { outer >> inner; };
        let server = Studio::of(durable)
            .flow(nested.durable(MemoryStore::new()).named("nested"))
            .bind("127.0.0.1:0")
            .await
            .unwrap();
        let url = format!("{}#/threads/refund-7", server.url());
        let client = Client::of(&server);
        server
            .run_until(async {
                let page = driver.open(&url).await;
                // The graph, the thread's status and its question.
                page.wait_for(
                    "document.querySelectorAll('#graph svg')[0]?.querySelectorAll('g[data-node]').length === 4",
                )
                .await;
                page.wait_for("document.querySelector('#status [data-status]')?.dataset.status === 'paused'")
                    .await;
                let question = page.text("form.pause .question").await;
                assert_eq!(question, "Pay back 120 EUR?");
                page.wait_for("document.getElementById('state').textContent.includes('note')")
                    .await;
                // The conversation in the state is drawn as a chat.
                page.wait_for("document.querySelectorAll('.chat .message').length === 2")
                    .await;
                assert!(page.text(".chat .message").await.contains("The blender broke"));
                // The markup in the state is text on the page, and ran nothing.
                assert!(page.text("#state").await.contains(SCRIPT));
                assert_eq!(page.script("return window.pwned === undefined").await, true);
                let shot = page.screenshot().await;
                assert_eq!(&shot[..8], b"\x89PNG\r\n\x1a\n");
                let target = std::path::Path::new(env!("CARGO_TARGET_TMPDIR"));
                std::fs::write(target.join("studio.png"), &shot).unwrap();
                if let Some(path) = std::env::var_os("SLATEFLOW_SCREENSHOT") {
                    std::fs::write(path, &shot).unwrap();
                }
                // Answered in the form (a choice for the flag, a text for the note, no JSON typed),
                // the thread runs to its end, and the page shows it.
                page.click("form.pause select[name=approved] option[value=true]")
                    .await;
                page.clear_and_type("form.pause input[name=note]", "approved by phone")
                    .await;
                page.click("form.pause button[type=submit]").await;
                page.wait_for("document.querySelector('#status [data-status]')?.dataset.status === 'finished'")
                    .await;
                page.wait_for("document.getElementById('state').textContent.includes('paid 120')")
                    .await;
                assert!(page.text("#state").await.contains(r#""note": "approved by phone""#));
                // The run's events showed on the page as they happened.
                page.wait_for("[...document.querySelectorAll('#live li')].some(li => li.textContent.includes('pay'))")
                    .await;
                assert_eq!(page.text("#graph g[data-node=pay] .badge").await, "×1");
                // A thread changed by someone else (a script here) changes on the page by itself.
                let started = client
                    .post(
                        "/api/threads",
                        &json!({"flow": "refunds", "thread": "refund-8", "state": {"amount": 9}}),
                    )
                    .await;
                assert_eq!(started.status, 202);
                client.wait("refund-8", "paused").await;
                page.script("location.hash = '#/threads/refund-8'").await;
                page.wait_for("document.getElementById('thread-id')?.textContent === 'refund-8'")
                    .await;
                page.wait_for("document.querySelector('#status [data-status]')?.dataset.status === 'paused'")
                    .await;
                let cancelled = client
                    .post("/api/threads/refund-8/cancel", &json!({}))
                    .await;
                assert_eq!(cancelled.status, 200);
                page.wait_for("document.querySelector('#status [data-status]')?.dataset.status === 'cancelled'")
                    .await;
                // A flow nested in another is drawn in a group of its own.
                page.script("location.hash = '#/flows/nested'").await;
                page.wait_for(
                    "document.querySelector('#graph .nested-graph[data-flow=inner] g[data-node=refuse]')",
                )
                .await;
                page.close().await;
            })
            .await
            .unwrap();
    });
}

/// A desk whose clerk agent pays invoices, each payment approved by a person first.
#[derive(SharedState, Clone, Debug, Default, Serialize, Deserialize)]
#[serde(default)]
#[slateflow(conversation)]
struct Desk {
    #[reducer(append)]
    messages: Vec<slateflow::agent::Message>,
    #[reducer(append)]
    histories: slateflow::agent::Histories,
}

/// The clerk: its model calls `pay` once, then reports what the tool said.
fn clerk() -> slateflow::agent::Agent<Desk, slateflow::agent::ScriptedModel> {
    use slateflow::agent::message::{Message, ToolCall};
    use slateflow::agent::model::{ChatResponse, ScriptedModel};
    use slateflow::agent::tool::{self, Toolbox};
    let model = ScriptedModel::from_fn(|request| {
        let paid: Vec<&str> = request
            .messages
            .iter()
            .filter(|message| matches!(message, Message::Tool { .. }))
            .map(Message::content)
            .collect();
        Ok(ChatResponse::new(if paid.is_empty() {
            Message::ai_calling("", vec![ToolCall::new("c1", "pay", r#"{"amount": 120}"#)])
        } else {
            Message::ai(paid.join(" "))
        }))
    });
    let payment = tool::from_fn(
        "pay",
        "Pays an invoice",
        json!({"type": "object", "properties": {"amount": {"type": "integer"}}}),
        |args: Value| async move { Ok(format!("paid {}", args["amount"])) },
    )
    .needs_approval();
    slateflow::agent::Agent::new(model).tools(Toolbox::new().with(payment))
}

/// A tool call waiting for approval, over HTTP: the thread says its pause takes a reply; an
/// update is refused; an edit is replied and the thread runs on with it. Then, in a real browser
/// when there is one, another is approved with the page's button.
#[test]
fn a_tool_call_waiting_for_approval_is_replied_over_http_and_on_the_page() {
    runtime().block_on(async {
        let clerk = clerk();
        let flow = flow! { clerk; };
        let server = Studio::of(flow.durable(MemoryStore::new()).named("desk"))
            .bind("127.0.0.1:0")
            .await
            .unwrap();
        let client = Client::of(&server);
        let url = server.url().clone();
        server
            .run_until(async {
                let start = |thread: &str| {
                    json!({"flow": "desk", "thread": thread, "state": {
                        "messages": [{"role": "user", "content": "Pay invoice 7."}]
                    }})
                };
                let started = client.post("/api/threads", &start("invoice-7")).await;
                assert_eq!(started.status, 202, "{}", started.body);
                let thread = client.wait("invoice-7", "paused").await;
                let pause = &thread["pauses"][0];
                let key = pause["key"].as_str().unwrap();
                assert_eq!(thread["inside"], json!([key]), "{thread}");
                assert_eq!(pause["asked"]["tool"], "pay");
                assert_eq!(pause["asked"]["arguments"], json!({"amount": 120}));

                let path = "/api/threads/invoice-7/answer";
                let update = client.post(path, &json!({"key": key, "update": {}})).await;
                refused(&update, 422, "send `reply` (any JSON), not `update`");
                let edit = json!({"decision": "edit", "arguments": {"amount": 100}});
                let replied = client.post(path, &json!({"key": key, "reply": edit})).await;
                assert_eq!(replied.status, 200, "{}", replied.body);
                client.wait("invoice-7", "finished").await;
                let state = client.state("invoice-7", None).await;
                let said = state["messages"][1]["content"].as_str().unwrap();
                assert!(said.ends_with("paid 100"), "{said}");

                let Some(driver) = browser::Driver::start() else {
                    return;
                };
                let started = client.post("/api/threads", &start("invoice-8")).await;
                assert_eq!(started.status, 202, "{}", started.body);
                client.wait("invoice-8", "paused").await;
                let page = driver
                    .open(&format!("{url}#/threads/invoice-8"))
                    .await;
                page.wait_for("document.querySelector('form.approval button.approve')")
                    .await;
                assert!(page.text("form.approval .question").await.contains("wants to call pay"));
                page.click("form.approval button.approve").await;
                page.wait_for("document.querySelector('#status [data-status]')?.dataset.status === 'finished'")
                    .await;
                page.wait_for("document.getElementById('state').textContent.includes('paid 120')")
                    .await;
                page.close().await;
            })
            .await
            .unwrap();
    });
}

/// A `WebDriver` client of Debian's `chromedriver`, headless, over HTTP.
mod browser {
    use std::process::{Child, Command, Stdio};
    use std::time::Duration;

    use serde_json::{Value, json};

    /// The key under which `WebDriver` names an element.
    const ELEMENT: &str = "element-6066-11e4-a52e-4f735466cecf";

    /// A `chromedriver` process, stopped when dropped.
    pub(crate) struct Driver {
        process: Child,
        base: String,
        http: reqwest::Client,
    }

    impl Drop for Driver {
        fn drop(&mut self) {
            let _ = self.process.kill();
            let _ = self.process.wait();
        }
    }

    /// One browser session on one page.
    pub(crate) struct Page<'d> {
        driver: &'d Driver,
        session: String,
    }

    impl Driver {
        /// Starts `chromedriver`; `None` (the test skipped, saying why) when it is not installed,
        /// unless `SLATEFLOW_REQUIRE_BROWSER=1` (as CI sets): then the test fails.
        pub(crate) fn start() -> Option<Self> {
            let port = std::net::TcpListener::bind("127.0.0.1:0")
                .unwrap()
                .local_addr()
                .unwrap()
                .port();
            let spawned = Command::new("chromedriver")
                .arg(format!("--port={port}"))
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .spawn();
            let process = match spawned {
                Ok(process) => process,
                Err(error) => {
                    assert!(
                        std::env::var_os("SLATEFLOW_REQUIRE_BROWSER").is_none(),
                        "chromedriver cannot start: {error}"
                    );
                    eprintln!(
                        "SKIPPED: chromedriver cannot start ({error}); install Debian's \
                         `chromium` and `chromium-driver` to run the browser test"
                    );
                    return None;
                }
            };
            Some(Self {
                process,
                base: format!("http://127.0.0.1:{port}"),
                http: reqwest::Client::new(),
            })
        }

        async fn call(&self, method: reqwest::Method, path: &str, body: Option<Value>) -> Value {
            let mut request = self.http.request(method, format!("{}{path}", self.base));
            if let Some(body) = body {
                request = request
                    .header("Content-Type", "application/json")
                    .body(body.to_string());
            }
            let response = request.send().await.unwrap();
            let status = response.status();
            let answer: Value = serde_json::from_slice(&response.bytes().await.unwrap()).unwrap();
            assert!(status.is_success(), "WebDriver {path}: {answer}");
            answer["value"].clone()
        }

        /// A headless Chromium on `url`.
        pub(crate) async fn open(&self, url: &str) -> Page<'_> {
            // The driver listens a moment after it starts.
            for _ in 0..200 {
                let ready = self.http.get(format!("{}/status", self.base)).send().await;
                if ready.is_ok() {
                    break;
                }
                tokio::time::sleep(Duration::from_millis(25)).await;
            }
            let session = self
                .call(
                    reqwest::Method::POST,
                    "/session",
                    Some(json!({"capabilities": {"alwaysMatch": {
                        "browserName": "chrome",
                        "goog:chromeOptions": {
                            "binary": "/usr/bin/chromium",
                            "args": ["--headless=new", "--no-sandbox", "--disable-gpu",
                                     "--disable-dev-shm-usage", "--window-size=1400,1250"],
                        },
                    }}})),
                )
                .await;
            let page = Page {
                driver: self,
                session: session["sessionId"].as_str().unwrap().to_string(),
            };
            page.post("/url", json!({ "url": url })).await;
            page
        }
    }

    impl Page<'_> {
        async fn post(&self, path: &str, body: Value) -> Value {
            self.driver
                .call(
                    reqwest::Method::POST,
                    &format!("/session/{}{path}", self.session),
                    Some(body),
                )
                .await
        }

        async fn element(&self, selector: &str) -> String {
            let found = self
                .post(
                    "/element",
                    json!({"using": "css selector", "value": selector}),
                )
                .await;
            found[ELEMENT]
                .as_str()
                .unwrap_or_else(|| panic!("no element `{selector}`: {found}"))
                .to_string()
        }

        /// Runs `script` in the page; its return value.
        pub(crate) async fn script(&self, script: &str) -> Value {
            self.post("/execute/sync", json!({"script": script, "args": []}))
                .await
        }

        /// Waits (up to 15 seconds) until the JavaScript `condition` holds.
        pub(crate) async fn wait_for(&self, condition: &str) {
            for _ in 0..300 {
                if self.script(&format!("return !!({condition})")).await == Value::Bool(true) {
                    return;
                }
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
            panic!("the page never showed: {condition}");
        }

        /// The text of the first element `selector` matches.
        /// The text of the first element `selector` matches, read in one call: the page draws
        /// a thread again as it changes, so an element found in one call may be gone by the next.
        pub(crate) async fn text(&self, selector: &str) -> String {
            let selector = serde_json::to_string(selector).unwrap();
            self.script(&format!(
                "const e = document.querySelector({selector}); return e ? (e.innerText ?? e.textContent) : null"
            ))
            .await
            .as_str()
            .unwrap_or_else(|| panic!("no element {selector}"))
            .to_string()
        }

        /// Runs `act` on the element `selector` matches, finding it again when the page drew it
        /// anew in between.
        async fn on_element(&self, selector: &str, act: &[(&str, Value)]) {
            'found: for _ in 0..20 {
                let element = self.element(selector).await;
                for (action, body) in act {
                    let path = format!("/session/{}/element/{element}/{action}", self.session);
                    let response = self
                        .driver
                        .http
                        .post(format!("{}{path}", self.driver.base))
                        .header("Content-Type", "application/json")
                        .body(body.to_string())
                        .send()
                        .await
                        .unwrap();
                    if !response.status().is_success() {
                        let answer = response.text().await.unwrap();
                        assert!(
                            answer.contains("stale element"),
                            "WebDriver {path}: {answer}"
                        );
                        continue 'found;
                    }
                }
                return;
            }
            panic!("the element {selector} kept being drawn anew");
        }

        pub(crate) async fn clear_and_type(&self, selector: &str, text: &str) {
            self.on_element(
                selector,
                &[("clear", json!({})), ("value", json!({ "text": text }))],
            )
            .await;
        }

        pub(crate) async fn click(&self, selector: &str) {
            self.on_element(selector, &[("click", json!({}))]).await;
        }

        /// The page as a PNG.
        pub(crate) async fn screenshot(&self) -> Vec<u8> {
            let encoded = self
                .driver
                .call(
                    reqwest::Method::GET,
                    &format!("/session/{}/screenshot", self.session),
                    None,
                )
                .await;
            decode_base64(encoded.as_str().unwrap())
        }

        pub(crate) async fn close(self) {
            self.driver
                .call(
                    reqwest::Method::DELETE,
                    &format!("/session/{}", self.session),
                    None,
                )
                .await;
        }
    }

    /// Standard base64, as `WebDriver` sends a screenshot.
    fn decode_base64(text: &str) -> Vec<u8> {
        const ALPHABET: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
        let mut bytes = Vec::with_capacity(text.len() * 3 / 4);
        let (mut buffer, mut bits) = (0u32, 0);
        for symbol in text.bytes().filter(|&symbol| symbol != b'=') {
            let value = ALPHABET
                .iter()
                .position(|&letter| letter == symbol)
                .unwrap_or_else(|| panic!("`{}` is not base64", symbol as char));
            buffer = (buffer << 6) | u32::try_from(value).unwrap();
            bits += 6;
            if bits >= 8 {
                bits -= 8;
                bytes.push(u8::try_from((buffer >> bits) & 0xff).unwrap());
            }
        }
        bytes
    }
}
