//! The JSON API under `/api`, which the page uses: routes, and each route's reading of the
//! request and answer. Knows the store and the hosted flows; knows nothing of HTTP's wire (the
//! [`http`](super::http) room turns requests into [`Request`] and [`Reply`] into responses).

use std::collections::BTreeMap;
use std::sync::Arc;

use serde::Serialize;
use serde_json::{Value, json};

use super::Host;
use super::hosted::Hosted;
use super::live::{self, Events};
use crate::checkpoint::{
    CheckpointStore, Pause, RecordKind, Records, RunStatus, StepRecord, StoreError, ThreadLog,
    check_thread_id,
};
use crate::durable::{asked_inside, branch_log, pending_in};
use crate::error::Error;

/// The most threads or steps one page of a list holds.
const MAX_PAGE: usize = 500;
/// A page's size when the request names none.
const DEFAULT_PAGE: usize = 50;

/// A request, as the API reads it.
pub(super) struct Request {
    pub(super) method: Method,
    /// The path's segments, without the leading `/` (`["api", "threads", "t-1"]`).
    pub(super) segments: Vec<String>,
    /// The query's pairs, decoded.
    pub(super) query: Vec<(String, String)>,
    pub(super) body: Vec<u8>,
    /// Whether the request may change something: it carries the token, or comes from the page.
    pub(super) may_change: bool,
}

/// The methods the API answers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Method {
    Get,
    Post,
    /// Any other: refused with the methods the path allows.
    Other,
}

/// An answer: its status, content type and body.
pub(super) struct Reply {
    pub(super) status: u16,
    pub(super) content_type: &'static str,
    pub(super) body: Vec<u8>,
    /// The methods a path allows, for a 405.
    pub(super) allow: Option<&'static str>,
    /// For an event stream, its events, sent as they come, after `body`.
    pub(super) events: Option<Events>,
}

impl Reply {
    pub(super) fn json(status: u16, value: &impl Serialize) -> Self {
        Self {
            status,
            content_type: "application/json",
            body: serde_json::to_vec(value).unwrap_or_else(|_| b"null".to_vec()),
            allow: None,
            events: None,
        }
    }

    /// An error: `{"error": message}`.
    pub(super) fn error(status: u16, message: impl Into<String>) -> Self {
        Self::json(status, &json!({ "error": message.into() }))
    }

    pub(super) fn page(html: &'static str) -> Self {
        Self {
            status: 200,
            content_type: "text/html; charset=utf-8",
            body: html.as_bytes().to_vec(),
            allow: None,
            events: None,
        }
    }

    fn not_allowed(allow: &'static str) -> Self {
        let mut reply = Self::error(405, format!("this path takes only {allow}"));
        reply.allow = Some(allow);
        reply
    }
}

/// Why a request is refused: its status and what was wrong.
struct Refusal {
    status: u16,
    message: String,
}

impl Refusal {
    fn new(status: u16, message: impl Into<String>) -> Self {
        Self {
            status,
            message: message.into(),
        }
    }
}

impl From<StoreError> for Refusal {
    fn from(error: StoreError) -> Self {
        let status = match &error {
            StoreError::UnknownThread { .. } => 404,
            StoreError::InvalidThreadId { .. } => 400,
            StoreError::ThreadExists { .. }
            | StoreError::Claimed { .. }
            | StoreError::Cancelled { .. } => 409,
            _ => 500,
        };
        Self::new(status, error.to_string())
    }
}

impl From<Error> for Refusal {
    fn from(error: Error) -> Self {
        match error {
            Error::Store(error) => error.into(),
            Error::InvalidState { .. } => Self::new(422, error.to_string()),
            Error::Resume { .. } | Error::Interrupt { .. } => Self::new(409, error.to_string()),
            error => Self::new(500, error.to_string()),
        }
    }
}

type Answer = Result<Reply, Refusal>;

impl<'s, St: CheckpointStore + 'static> Host<'s, '_, St> {
    /// Answers `request`.
    pub(super) async fn api(&self, request: Request) -> Reply {
        let segments: Vec<&str> = request.segments.iter().map(String::as_str).collect();
        let answer = match (request.method, segments.as_slice()) {
            (Method::Get, ["api", "flows"]) => self.flows().await,
            (Method::Get, ["api", "threads"]) => self.threads(&request).await,
            (Method::Post, ["api", "threads"]) => self.start(&request).await,
            (Method::Get, ["api", "threads", thread]) => self.thread(thread).await,
            (Method::Get, ["api", "threads", thread, "history"]) => {
                self.history(thread, &request).await
            }
            (Method::Get, ["api", "threads", thread, "state"]) => {
                self.state(thread, &request).await
            }
            (Method::Get, ["api", "threads", thread, "events"]) => self.events(thread).await,
            (Method::Post, ["api", "threads", thread, action]) => {
                self.act(thread, action, &request).await
            }
            (_, ["api", "flows" | "threads"]) => return Reply::not_allowed(allowed(&segments)),
            (_, ["api", "threads", _, "history" | "state" | "events"] | ["api", "threads", _]) => {
                return Reply::not_allowed("GET");
            }
            // A thread's actions are changes.
            (_, ["api", "threads", _, _]) => return Reply::not_allowed("POST"),
            _ => Err(Refusal::new(
                404,
                format!(
                    "no such path: `/{}`; the API's paths are listed in the studio's docs",
                    request.segments.join("/")
                ),
            )),
        };
        answer.unwrap_or_else(|refusal| Reply::error(refusal.status, refusal.message))
    }

    /// `GET /api/flows`: the hosted flows, their graphs and their states' fields; then the flows
    /// the store keeps that this studio does not host (`"hosted": false`), drawn, not run.
    async fn flows(&self) -> Answer {
        let mut flows: Vec<Value> = self
            .studio
            .flows
            .iter()
            .map(|flow| {
                let fields: Vec<Value> = flow
                    .fields()
                    .into_iter()
                    .map(|(name, ty)| json!({ "name": name, "type": ty }))
                    .collect();
                json!({
                    "name": flow.name(),
                    "state_type": flow.state_type(),
                    "graph": flow.graph(),
                    "fields": fields,
                    "hosted": true,
                })
            })
            .collect();
        for saved in self.studio.store.flows().await? {
            if self.studio.hosted(&saved.name, &saved.state_type).is_none() {
                let mut flow = json!(saved);
                flow["hosted"] = json!(false);
                flows.push(flow);
            }
        }
        Ok(Reply::json(200, &json!({ "flows": flows })))
    }

    /// `GET /api/threads?status=&offset=&limit=`: a page of the store's threads, last written
    /// first.
    async fn threads(&self, request: &Request) -> Answer {
        let status = query(request, "status");
        let (offset, limit) = page(request)?;
        let mut threads = self.studio.store.threads().await?;
        if let Some(status) = status {
            if !STATUSES.contains(&status) {
                return Err(Refusal::new(
                    400,
                    format!(
                        "unknown status `{status}`: one of {}",
                        STATUSES
                            .iter()
                            .map(|status| format!("`{status}`"))
                            .collect::<Vec<_>>()
                            .join(", ")
                    ),
                ));
            }
            threads.retain(|thread| thread.status.name() == status);
        }
        threads.sort_by(|a, b| {
            b.updated_at_ms
                .cmp(&a.updated_at_ms)
                .then_with(|| a.id.cmp(&b.id))
        });
        let total = threads.len();
        let page: Vec<Value> = threads
            .into_iter()
            .skip(offset)
            .take(limit)
            .map(|thread| {
                let pauses = match &thread.status {
                    RunStatus::Paused { pauses } => pauses.len(),
                    _ => 0,
                };
                let mut line = json!({
                    "id": thread.id,
                    "flow": thread.flow,
                    "state_type": thread.state_type,
                    "step": thread.last_step,
                    "updated_at_ms": thread.updated_at_ms,
                    "pauses": pauses,
                });
                status_fields(&mut line, &thread.status);
                line
            })
            .collect();
        Ok(Reply::json(
            200,
            &json!({ "total": total, "offset": offset, "threads": page }),
        ))
    }

    /// `GET /api/threads/{id}`: where the thread stands, its flow and graph (when hosted), its
    /// pending pauses, and how often each node ran.
    async fn thread(&self, thread: &str) -> Answer {
        check_thread_id(thread)?;
        let log = self.studio.store.load(thread, Records::All).await?;
        let flow_name = log
            .records
            .first()
            .filter(|record| record.kind == RecordKind::Start)
            .map_or("", |record| record.node.as_str());
        let hosted = self.studio.hosted(flow_name, &log.state_type);
        // The hosted flow's graph, or the one the store keeps for the thread's flow.
        let graph = match hosted {
            Some(flow) => Some(json!(flow.graph())),
            None if flow_name.is_empty() => None,
            None => self
                .studio
                .store
                .flows()
                .await?
                .into_iter()
                .find(|saved| saved.name == flow_name && saved.state_type == log.state_type)
                .map(|saved| saved.graph),
        };
        let forks = graph
            .as_ref()
            .and_then(|graph| graph["forks"].as_array())
            .map_or(&[][..], Vec::as_slice);
        let mut runs: BTreeMap<&str, u64> = BTreeMap::new();
        for record in &log.records {
            if record.kind == RecordKind::Step && !record.node.is_empty() {
                let top = record.node.split('/').next().unwrap_or_default();
                *runs.entry(top).or_default() += 1;
                // A fork is saved as one step: each of its branches ran in it.
                for fork in forks.iter().filter(|fork| fork["name"] == top) {
                    let branches = fork["branches"].as_array().map_or(&[][..], Vec::as_slice);
                    for branch in branches.iter().filter_map(Value::as_str) {
                        *runs.entry(branch).or_default() += 1;
                    }
                }
            }
        }
        let last_node = log
            .records
            .iter()
            .rev()
            .find(|record| record.kind == RecordKind::Step)
            .map(|record| record.node.split('/').next().unwrap_or_default());
        let (pauses, answered): (Vec<Pause>, _) = pending_in(&log.records);
        let mut view = json!({
            "id": thread,
            "flow": flow_name,
            "hosted": hosted.is_some(),
            "state_type": log.state_type,
            "step": log.last_step,
            "updated_at_ms": log.records.last().map_or(0, |record| record.saved_at_ms),
            "records": log.records.len(),
            "pauses": pauses,
            "answered": answered,
            // The pauses asked inside a step, which take a reply (any JSON) rather than an update.
            "inside": asked_inside(&log.records),
            "runs": runs,
            "last_node": last_node,
            "running_here": self.is_running(thread),
            "studio_error": self.run_error(thread),
            "graph": graph,
        });
        status_fields(&mut view, &log.status);
        Ok(Reply::json(200, &view))
    }

    /// `GET /api/threads/{id}/history?offset=&limit=`: a page of the thread's records, oldest
    /// first.
    async fn history(&self, thread: &str, request: &Request) -> Answer {
        check_thread_id(thread)?;
        let (offset, limit) = page(request)?;
        let log = self.studio.store.load(thread, Records::All).await?;
        let total = log.records.len();
        let records: Vec<Value> = log
            .records
            .iter()
            .enumerate()
            .skip(offset)
            .take(limit)
            .map(|(index, record)| {
                let previous = index
                    .checked_sub(1)
                    .and_then(|previous| log.records.get(previous));
                record_view(record, previous)
            })
            .collect();
        Ok(Reply::json(
            200,
            &json!({ "total": total, "offset": offset, "records": records }),
        ))
    }

    /// `GET /api/threads/{id}/state?step=`: the whole state after a step (the current one when
    /// no step is named). Without the thread's flow hosted, only a step with a saved snapshot
    /// can be shown.
    async fn state(&self, thread: &str, request: &Request) -> Answer {
        check_thread_id(thread)?;
        let step = match query(request, "step") {
            Some(step) => Some(step.parse::<u64>().map_err(|_| {
                Refusal::new(400, format!("`step` must be a step number, not `{step}`"))
            })?),
            None => None,
        };
        let log = self.studio.store.load(thread, Records::All).await?;
        if let Some(step) = step
            && step > log.last_step
        {
            return Err(Refusal::new(
                404,
                format!(
                    "thread `{thread}` has no step {step}: its last step is {}",
                    log.last_step
                ),
            ));
        }
        let flow_name = start_flow(&log.records);
        if let Some(flow) = self.studio.hosted(flow_name, &log.state_type) {
            let state = flow.state(thread.to_string(), step).await?;
            return Ok(Reply::json(
                200,
                &json!({ "step": step.unwrap_or(log.last_step), "state": state }),
            ));
        }
        let wanted = step.unwrap_or(log.last_step);
        let snapshot = log
            .records
            .iter()
            .rev()
            .filter(|record| record.step == wanted)
            .find_map(|record| record.snapshot.as_ref());
        match snapshot {
            Some(state) => Ok(Reply::json(200, &json!({ "step": wanted, "state": state }))),
            None => Err(Refusal::new(
                409,
                format!(
                    "thread `{thread}`'s flow{} is not hosted by this studio, and step {wanted} \
                     has no saved snapshot: host the flow (`Studio::flow`) to rebuild any step",
                    if flow_name.is_empty() {
                        String::new()
                    } else {
                        format!(" `{flow_name}`")
                    }
                ),
            )),
        }
    }

    /// `GET /api/threads/{id}/events`: server-sent events; see [`live`](super::live).
    async fn events(&self, thread: &str) -> Answer {
        check_thread_id(thread)?;
        let store = Arc::clone(&self.studio.store);
        // An unknown thread is a 404 now, not an empty stream.
        store.load(thread, Records::SinceSnapshot).await?;
        Ok(Reply {
            status: 200,
            content_type: "text/event-stream",
            body: Vec::new(),
            allow: None,
            events: Some(live::events(store, thread, self.live.subscribe())),
        })
    }

    /// `POST /api/threads` with `{"flow", "thread", "state"}`: starts a thread of a hosted flow,
    /// run by the studio.
    async fn start(&self, request: &Request) -> Answer {
        Self::check_may_change(request)?;
        let body = body(request)?;
        let flow_name = text_field(&body, "flow")?;
        let thread = text_field(&body, "thread")?;
        check_thread_id(thread)?;
        let state = body
            .get("state")
            .ok_or_else(|| Refusal::new(400, "the body has no `state`: the initial state"))?;
        let studio = self.studio;
        let flow = studio
            .flows
            .iter()
            .find(|flow| flow.name() == flow_name)
            .ok_or_else(|| {
                Refusal::new(
                    404,
                    format!(
                        "no hosted flow is named `{flow_name}`; the hosted flows: {}",
                        self.flow_names()
                    ),
                )
            })?;
        // The thread is created before the answer, so that it can be read at once; a thread of
        // that id already there is refused here.
        let run = flow
            .start(thread.to_string(), state, self.relay(thread))?
            .await?;
        self.run(thread, run);
        Ok(Reply::json(
            202,
            &json!({ "thread": thread, "flow": flow_name, "running": true }),
        ))
    }

    /// `POST /api/threads/{id}/{answer | update | resume | cancel | branch}`.
    async fn act(&self, thread: &str, action: &str, request: &Request) -> Answer {
        if !matches!(
            action,
            "answer" | "update" | "resume" | "queue" | "cancel" | "branch"
        ) {
            return Err(Refusal::new(
                404,
                format!(
                    "no such action on a thread: `{action}`; the actions are `answer`, `update`, \
                     `resume`, `queue`, `cancel` and `branch`"
                ),
            ));
        }
        Self::check_may_change(request)?;
        check_thread_id(thread)?;
        match action {
            "cancel" => {
                self.studio.store.cancel(thread).await?;
                Ok(Reply::json(
                    200,
                    &json!({ "thread": thread, "cancelled": true }),
                ))
            }
            "branch" => self.branch(thread, request).await,
            "queue" => self.queue(thread).await,
            _ => self.change(thread, action, request).await,
        }
    }

    /// `answer` (`{"key", "update", "resume"?}`, or `{"key", "reply", "resume"?}` for a question
    /// asked inside a step), `update` (`{"update"}`) and `resume` (`{}`), which need the thread's
    /// flow hosted.
    async fn change(&self, thread: &str, action: &str, request: &Request) -> Answer {
        let body = if action == "resume" && request.body.is_empty() {
            json!({})
        } else {
            body(request)?
        };
        let log = self
            .studio
            .store
            .load(thread, Records::SinceSnapshot)
            .await?;
        let flow = self.hosted_for(thread).await?;
        if self.is_running(thread) {
            return Err(Refusal::new(
                409,
                format!("thread `{thread}` is running in this studio: wait for it to stop"),
            ));
        }
        let resume = match body.get("resume") {
            None => true,
            Some(Value::Bool(resume)) => *resume,
            Some(_) => return Err(Refusal::new(400, "`resume` must be true or false")),
        };
        match action {
            "answer" => self.answer(thread, &log, flow, &body, resume).await,
            "update" => {
                let update = update_field(&body)?;
                flow.update(thread.to_string(), update)
                    .map_err(as_update)?
                    .await?;
                Ok(Reply::json(
                    200,
                    &json!({ "thread": thread, "updated": true }),
                ))
            }
            _ => {
                if let RunStatus::Finished { .. } | RunStatus::Cancelled = log.status {
                    return Err(Refusal::new(
                        409,
                        format!(
                            "thread `{thread}` is {}: it does not run again; branch it to go on",
                            log.status.name()
                        ),
                    ));
                }
                self.run(thread, flow.resume(thread.to_string(), self.relay(thread)));
                Ok(Reply::json(
                    202,
                    &json!({ "thread": thread, "running": true }),
                ))
            }
        }
    }

    /// `answer`: the pause `key` answered with an update, or replied to (a question asked inside
    /// a step); the thread resumes here when none is left and `resume` is true.
    async fn answer(
        &self,
        thread: &str,
        log: &ThreadLog,
        flow: &'s dyn Hosted,
        body: &Value,
        resume: bool,
    ) -> Answer {
        let key = text_field(body, "key")?;
        let (pending, _) = pending_in(&log.records);
        if !pending.iter().any(|pause| pause.key == key) {
            let keys: Vec<String> = pending
                .iter()
                .map(|pause| format!("`{}`", pause.key))
                .collect();
            return Err(Refusal::new(
                409,
                if keys.is_empty() {
                    format!("thread `{thread}` waits at no pause, so none has the key `{key}`")
                } else {
                    format!(
                        "thread `{thread}` waits at no pause `{key}`; it waits at {}",
                        keys.join(", ")
                    )
                },
            ));
        }
        let inside = asked_inside(&log.records).iter().any(|asked| asked == key);
        match (inside, body.get("reply")) {
            (true, Some(reply)) => {
                flow.reply(thread.to_string(), key.to_string(), reply.clone())
                    .await?;
            }
            (true, None) => {
                return Err(Refusal::new(
                    422,
                    format!(
                        "pause `{key}` was asked inside a step, whose node reads the \
                         reply: send `reply` (any JSON), not `update`"
                    ),
                ));
            }
            (false, Some(_)) => {
                return Err(Refusal::new(
                    422,
                    format!(
                        "pause `{key}` waits for an update to the state: send `update`, \
                         not `reply`"
                    ),
                ));
            }
            (false, None) => {
                let update = update_field(body)?;
                flow.answer(thread.to_string(), key.to_string(), update)
                    .map_err(as_update)?
                    .await?;
            }
        }
        let left = pending.len() - 1;
        if resume && left == 0 {
            self.run(thread, flow.resume(thread.to_string(), self.relay(thread)));
        }
        Ok(Reply::json(
            200,
            &json!({
                "thread": thread,
                "answered": key,
                "pauses_left": left,
                "running": resume && left == 0,
            }),
        ))
    }

    /// `POST /api/threads/{id}/queue`: marks a thread that stopped (interrupted, failed, or
    /// paused with every pause answered) as queued, for a worker to take.
    async fn queue(&self, thread: &str) -> Answer {
        let store = &self.studio.store;
        let log = store.load(thread, Records::SinceSnapshot).await?;
        let (pending, _) = pending_in(&log.records);
        let refusal = match &log.status {
            RunStatus::Interrupted | RunStatus::Failed { .. } => None,
            RunStatus::Paused { .. } if pending.is_empty() => None,
            RunStatus::Paused { .. } => Some("it waits for an answer first".to_string()),
            RunStatus::Queued => Some("it is queued already".to_string()),
            status => Some(format!("it is {}", status.name())),
        };
        if let Some(why) = refusal {
            return Err(Refusal::new(
                409,
                format!("thread `{thread}` cannot be queued: {why}"),
            ));
        }
        let mut claim = store.claim(thread).await?;
        store.set_status(&mut claim, &RunStatus::Queued).await?;
        Ok(Reply::json(
            200,
            &json!({ "thread": thread, "queued": true }),
        ))
    }

    /// `POST /api/threads/{id}/branch` with `{"step", "thread", "update"?}`: a new thread from
    /// the old one as it was after `step`, with an update saved as an input (its state edited),
    /// left to be resumed.
    async fn branch(&self, thread: &str, request: &Request) -> Answer {
        let body = body(request)?;
        let new_thread = text_field(&body, "thread")?;
        check_thread_id(new_thread)?;
        let step = body.get("step").and_then(Value::as_u64).ok_or_else(|| {
            Refusal::new(400, "the body needs `step`: the step number to branch from")
        })?;
        let update = body.get("update").filter(|update| !update.is_null());
        // The update is read before anything is written: a bad one leaves no new thread behind.
        // Reading it needs the flow; a branch without one does not.
        let input = match update {
            Some(update) => Some(
                self.hosted_for(thread)
                    .await?
                    .update(new_thread.to_string(), update)
                    .map_err(as_update)?,
            ),
            None => None,
        };
        let log = self.studio.store.load(thread, Records::All).await?;
        if step > log.last_step {
            return Err(Refusal::new(
                404,
                format!(
                    "thread `{thread}` has no step {step}: its last step is {}",
                    log.last_step
                ),
            ));
        }
        branch_log(&*self.studio.store, thread, log, step, new_thread).await?;
        if let Some(input) = input {
            input.await?;
        }
        Ok(Reply::json(
            201,
            &json!({ "thread": new_thread, "from": thread, "step": step }),
        ))
    }

    /// The hosted flow of `thread`, or why there is none.
    async fn hosted_for(&self, thread: &str) -> Result<&'s dyn Hosted, Refusal> {
        let studio = self.studio;
        let log = studio.store.load(thread, Records::All).await?;
        let flow_name = start_flow(&log.records);
        studio.hosted(flow_name, &log.state_type).ok_or_else(|| {
            Refusal::new(
                409,
                format!(
                    "thread `{thread}` belongs to a flow{} this studio does not host (state \
                         type `{}`): host it with `Studio::flow` to answer, update, resume or \
                         branch its threads",
                    if flow_name.is_empty() {
                        String::new()
                    } else {
                        format!(" named `{flow_name}`")
                    },
                    log.state_type
                ),
            )
        })
    }

    fn flow_names(&self) -> String {
        if self.studio.flows.is_empty() {
            return "none".into();
        }
        self.studio
            .flows
            .iter()
            .map(|flow| format!("`{}`", flow.name()))
            .collect::<Vec<_>>()
            .join(", ")
    }

    fn check_may_change(request: &Request) -> Result<(), Refusal> {
        if request.may_change {
            Ok(())
        } else {
            Err(Refusal::new(
                403,
                "a change needs the studio's token (`Authorization: Bearer <token>`) or a request \
                 from the studio's own page",
            ))
        }
    }
}

/// The statuses a thread list filters by.
const STATUSES: [&str; 7] = [
    "running",
    "queued",
    "interrupted",
    "paused",
    "finished",
    "failed",
    "cancelled",
];

/// Writes `status` (its name) and `detail` (the action it finished with, or its error) into
/// `view`.
fn status_fields(view: &mut Value, status: &RunStatus) {
    let detail = match status {
        RunStatus::Finished { action } => Some(action.clone()),
        RunStatus::Failed { error } => Some(error.clone()),
        _ => None,
    };
    view["status"] = json!(status.name());
    view["detail"] = json!(detail);
}

/// The flow a thread's start record names (empty when none).
fn start_flow(records: &[StepRecord]) -> &str {
    records
        .first()
        .filter(|record| record.kind == RecordKind::Start)
        .map_or("", |record| record.node.as_str())
}

/// One record for the timeline: what it is, where it ran, what it changed and how long it took
/// (since the record before it).
fn record_view(record: &StepRecord, previous: Option<&StepRecord>) -> Value {
    json!({
        "step": record.step,
        "kind": record.kind,
        "node": record.node,
        "action": record.action,
        "reason": record.reason,
        "update": record.update,
        "key": record.key,
        "pauses": record.pauses,
        "snapshot": record.snapshot.is_some(),
        "saved_at_ms": record.saved_at_ms,
        "took_ms": previous.map(|previous| record.saved_at_ms.saturating_sub(previous.saved_at_ms)),
    })
}

/// The paths that take several methods, and which.
fn allowed(segments: &[&str]) -> &'static str {
    match segments {
        ["api", "threads"] => "GET, POST",
        _ => "GET",
    }
}

fn query<'r>(request: &'r Request, name: &str) -> Option<&'r str> {
    request
        .query
        .iter()
        .find(|(key, _)| key == name)
        .map(|(_, value)| value.as_str())
        .filter(|value| !value.is_empty())
}

/// `offset` and `limit` from the query.
fn page(request: &Request) -> Result<(usize, usize), Refusal> {
    let number = |name: &str, default: usize| match query(request, name) {
        None => Ok(default),
        Some(text) => text
            .parse::<usize>()
            .map_err(|_| Refusal::new(400, format!("`{name}` must be a number, not `{text}`"))),
    };
    let offset = number("offset", 0)?;
    let limit = number("limit", DEFAULT_PAGE)?;
    if limit == 0 || limit > MAX_PAGE {
        return Err(Refusal::new(
            400,
            format!("`limit` must be from 1 to {MAX_PAGE}, not {limit}"),
        ));
    }
    Ok((offset, limit))
}

/// The body, read as a JSON object.
fn body(request: &Request) -> Result<Value, Refusal> {
    if request.body.is_empty() {
        return Err(Refusal::new(
            400,
            "the request has no body: send a JSON object",
        ));
    }
    let value: Value = serde_json::from_slice(&request.body)
        .map_err(|error| Refusal::new(400, format!("the body is not JSON: {error}")))?;
    if !value.is_object() {
        return Err(Refusal::new(400, "the body must be a JSON object"));
    }
    Ok(value)
}

fn text_field<'b>(body: &'b Value, name: &str) -> Result<&'b str, Refusal> {
    match body.get(name) {
        Some(Value::String(text)) if !text.is_empty() => Ok(text),
        Some(Value::String(_)) => Err(Refusal::new(400, format!("`{name}` is empty"))),
        Some(_) => Err(Refusal::new(400, format!("`{name}` must be a string"))),
        None => Err(Refusal::new(400, format!("the body has no `{name}`"))),
    }
}

fn update_field(body: &Value) -> Result<&Value, Refusal> {
    body.get("update")
        .ok_or_else(|| Refusal::new(400, "the body has no `update`: the state's update, as JSON"))
}

/// A bad update's error: it names the path in the update.
fn as_update(error: Error) -> Refusal {
    match error {
        Error::InvalidState { path, message } => Refusal::new(
            422,
            format!("the update is not valid at `{path}`: {message}"),
        ),
        error => error.into(),
    }
}
