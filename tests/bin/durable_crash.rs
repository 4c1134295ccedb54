//! A durable flow for the crash and race tests (`tests/crash.rs`), which kill this process with
//! SIGKILL at random instants, or start two of it at once, and run it again until the thread
//! finishes.
//!
//! `durable-crash <file|sqlite|postgres> <store path> <thread> <scenario>` starts the thread, or
//! resumes it when it exists, and prints the final state as JSON. With `postgres`, the store is
//! the database at the URL in `SLATEFLOW_CRASH_DATABASE` (the path only holds `runs.log`), and a
//! thread whose claim is held is waited for a few seconds: a killed process's claim is void once
//! the server has seen its connections close, a moment after its death. Each step adds 1 to an `add`-reducer
//! counter and appends its number: a step applied twice or skipped would show. Scenarios:
//! - `chain`: 100 steps, then the end, each step logging its number to `<store path>/runs.log`
//!   as its node runs; `chain-batched` is the same with steps written 8 at a time
//!   (`Durability::batched(8)`);
//! - `questions`: every 10th step asks a question; the program answers each pending pause (again
//!   after a restart) with its key, and an answer counted twice would show;
//! - `branch-questions`: a loop over a fork whose first branch is a nested flow; its node asks a
//!   question every tenth round, so the fork pauses inside a branch (the other branch finishes
//!   first) and goes on from there after the answer;
//! - `batch-questions`: a sequential batch flow of 100 one-step runs whose node asks every tenth
//!   run, so the batch pauses inside a run and goes on from there;
//! - `limit`: the steps never end, and the step limit of 100 stops the thread;
//! - `paused`: starts the thread and stops at a pause after its first node (for the race);
//! - `batch`: one concurrent batch flow of 100 runs, 4 at a time, each run one step; every run
//!   that executes appends a line to `<store path>/runs.log`, so a kept run executed again shows.
//! - `conflict`: a loop over a fork of two branches, `left` doing the work and writing the
//!   last-write-wins `winner`, `right` idle; `conflict-buggy` is the same before a fix: its
//!   `right` writes `winner` too in round 50, and the fork's merge fails there;
//! - `items`: the same with a kept batch node (`Batch::items(..).concurrent(..).kept()`) of 100 items: each
//!   item's `exec` logs to `runs.log`, so a kept item executed again shows.
//!
//! - `agent`: ten turns of an agent whose model calls two tools each turn, `lookup` (repeatable)
//!   and `pay` (not); each call logs `<tool> <idempotency key>` to `runs.log` when its effect
//!   happens, so a call run twice shows. Prints the conversation's state instead of the counter.
//!
//! Exits with 3 when another process holds the thread's claim.

use serde::{Deserialize, Serialize};
use slateflow::agent::Agent;
use slateflow::agent::message::{Histories, Message, ToolCall};
use slateflow::agent::model::{ChatResponse, ScriptedModel};
use slateflow::agent::tool::{Tool, Toolbox};
use slateflow::batch::{self, Batch, BatchNode};
use slateflow::checkpoint::{CheckpointStore, FileStore, PostgresStore, SqliteStore, StoreError};
use slateflow::durable::{Durability, Outcome};
use slateflow::{Command, Context, Error, NodeError, Params, SharedState, flow, node};

/// Steps in a whole run.
const STEPS: u64 = 100;
/// Steps per write in `chain-batched`.
const BATCHED: u32 = 8;

#[derive(SharedState, Clone, Debug, Default, Serialize, Deserialize)]
struct Counter {
    #[reducer(add)]
    count: u64,
    #[reducer(append)]
    seen: Vec<u64>,
    #[reducer(append)]
    answers: Vec<String>,
    /// Last write wins: written by one branch of the `conflict` fork (and, in the buggy build, by
    /// its sibling once). Left out of the JSON while unset, as in the other scenarios.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    winner: Option<u64>,
}

#[node]
fn begin(_: &Counter) -> Command<Counter> {
    Command::new(Counter::update())
}

#[node(actions = ["again", "done"])]
fn tick(counter: &Counter) -> Command<Counter> {
    tick_command(counter)
}

/// As `tick`, logging each step it runs to the `runs` file of its params first.
#[node(actions = ["again", "done"])]
fn logged(counter: &Counter, context: &Context<'_>) -> Result<Command<Counter>, NodeError> {
    use std::io::Write;
    let log = context.params().get_str("runs").unwrap_or_default();
    let mut file = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(log)?;
    writeln!(file, "{}", counter.count + 1)?;
    Ok(tick_command(counter))
}

/// As `tick`, asking a question every tenth step.
#[node(actions = ["again", "done"])]
fn ask(counter: &Counter) -> Command<Counter> {
    let command = tick_command(counter);
    if counter.count % 10 == 9 {
        command.ask(format!("go on after {}?", counter.count + 1))
    } else {
        command
    }
}

/// One step of work: a millisecond, so that kills land mid-run.
fn tick_command(counter: &Counter) -> Command<Counter> {
    std::thread::sleep(std::time::Duration::from_millis(1));
    let next = counter.count + 1;
    let action = if next < STEPS { "again" } else { "done" };
    Command::new(Counter::update().add_count(1).push_seen(next)).with_action(action)
}

/// A branch's work in the `branch-questions` loop: as `tick`, asking every tenth time.
#[node]
fn ask_in(counter: &Counter) -> Command<Counter> {
    std::thread::sleep(std::time::Duration::from_millis(1));
    let command = Command::new(Counter::update().add_count(1).push_seen(counter.count + 1));
    if counter.count % 10 == 9 {
        command.ask(format!("go on after {}?", counter.count + 1))
    } else {
        command
    }
}

/// The other branch: a step that changes nothing.
#[node]
fn idle(_: &Counter) -> Command<Counter> {
    Command::new(Counter::update())
}

/// The work of a `conflict` round: as `tick`, and the step's number is the winner.
#[node]
fn left(counter: &Counter) -> Command<Counter> {
    std::thread::sleep(std::time::Duration::from_millis(1));
    let next = counter.count + 1;
    Command::new(
        Counter::update()
            .add_count(1)
            .push_seen(next)
            .set_winner(Some(next)),
    )
}

/// The other branch of a `conflict` round: changes nothing, in a millisecond.
#[node]
fn right(_: &Counter) -> Command<Counter> {
    std::thread::sleep(std::time::Duration::from_millis(1));
    Command::new(Counter::update())
}

/// The `conflict` loop's nodes as they were before a fix.
mod buggy {
    use super::{Command, Counter, SharedState, node};

    /// As `right`, but in round 50 it writes the winner too, which `left` writes, and the fork's
    /// merge fails.
    #[node]
    pub(super) fn right(counter: &Counter) -> Command<Counter> {
        std::thread::sleep(std::time::Duration::from_millis(1));
        let update = Counter::update();
        Command::new(if counter.count == 49 {
            update.set_winner(Some(0))
        } else {
            update
        })
    }
}

/// Loops until 100 steps of work are done.
#[node(actions = ["again", "done"])]
fn check(counter: &Counter) -> Command<Counter> {
    Command::goto(if counter.count < STEPS {
        "again"
    } else {
        "done"
    })
}

/// Never done: only the step limit stops it.
#[node(actions = ["again"])]
fn spin(counter: &Counter) -> Command<Counter> {
    std::thread::sleep(std::time::Duration::from_millis(1));
    Command::new(Counter::update().add_count(1).push_seen(counter.count + 1)).with_action("again")
}

/// How many runs of the batch flow are in flight at once.
const BATCH_LIMIT: usize = 4;

/// One run of the batch: a millisecond of work, logged to the file named in the params.
#[node]
fn item(_: &Counter, context: &Context<'_>) -> Command<Counter> {
    use std::io::Write;
    std::thread::sleep(std::time::Duration::from_millis(1));
    let number = context
        .params()
        .get("item")
        .and_then(serde_json::Value::as_u64)
        .unwrap();
    let log = context.params().get_str("runs").unwrap();
    let mut file = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(log)
        .unwrap();
    writeln!(file, "{number}").unwrap();
    Command::new(Counter::update().add_count(1).push_seen(number))
}

/// A map-reduce over the numbers 1 to 100: each item a millisecond of work (a model call in real
/// life), logged to `runs.log`.
struct Calls {
    log: std::path::PathBuf,
}

impl BatchNode<Counter> for Calls {
    type Item = u64;
    type Output = u64;

    async fn prep(&self, _: &Counter, _: &Context<'_>) -> Result<Vec<u64>, NodeError> {
        Ok((1..=STEPS).collect())
    }

    async fn exec(&self, number: &u64) -> Result<u64, NodeError> {
        use std::io::Write;
        tokio::time::sleep(std::time::Duration::from_millis(1)).await;
        let mut file = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&self.log)?;
        writeln!(file, "{number}")?;
        Ok(*number)
    }

    async fn post(
        &self,
        _: &Counter,
        _: Vec<u64>,
        outputs: Vec<u64>,
        _: &Context<'_>,
    ) -> Result<Command<Counter>, NodeError> {
        let count = outputs.len() as u64;
        Ok(Command::new(
            Counter::update().add_count(count).extend_seen(outputs),
        ))
    }
}

async fn run<St: CheckpointStore + 'static>(
    store: St,
    path: &str,
    thread: &str,
    scenario: &str,
) -> Result<Counter, Error> {
    let chain = flow! { begin >> tick; tick - "again" >> tick; };
    let questions = flow! { begin >> ask; ask - "again" >> ask; };
    let limit = flow! { begin >> spin; spin - "again" >> spin; }.with_max_steps(STEPS + 1);
    match scenario {
        "chain" | "chain-batched" => {
            let log = std::path::Path::new(path).join("runs.log");
            let counting = flow! { begin >> logged; logged - "again" >> logged; }
                .with_params(Params::new().with("runs", log.to_str().unwrap()));
            let durable = counting.durable(store).snapshot_every(10);
            let durable = if scenario == "chain-batched" {
                durable.durability(Durability::batched(BATCHED))
            } else {
                durable
            };
            drive(&durable, thread).await
        }
        "paused" => {
            let durable = chain.durable(store).interrupt_after(&["begin"]);
            let mut state = Counter::default();
            durable.start(thread, &mut state).await?;
            Ok(state)
        }
        "questions" => drive(&questions.durable(store).snapshot_every(10), thread).await,
        "batch-questions" => {
            let runs = batch::from_fn(|_: &Counter| (0..STEPS).map(|_| Params::new()).collect());
            let batch = Batch::flow(flow! { ask_in; }, runs);
            drive(&flow! { begin >> batch; }.durable(store), thread).await
        }
        "branch-questions" => {
            let inner = flow! { ask_in; };
            let rounds = flow! {
                begin >> [inner, idle] >> check;
                check - "again" >> [inner, idle];
            }
            .with_max_steps(1_000);
            drive(&rounds.durable(store), thread).await
        }
        "conflict" => {
            let rounds = flow! {
                begin >> [left, right] >> check;
                check - "again" >> [left, right];
            }
            .with_max_steps(1_000);
            drive(&rounds.durable(store), thread).await
        }
        "conflict-buggy" => {
            use buggy::right;
            let rounds = flow! {
                begin >> [left, right] >> check;
                check - "again" >> [left, right];
            }
            .with_max_steps(1_000);
            drive(&rounds.durable(store), thread).await
        }
        "limit" => {
            let durable = limit.durable(store).snapshot_every(10);
            match drive(&durable, thread).await {
                Err(Error::StepLimit { .. }) => durable.state(thread).await,
                other => other,
            }
        }
        "batch" => {
            let runs = batch::from_fn(|_: &Counter| {
                (1..=STEPS)
                    .map(|number| Params::new().with("item", number))
                    .collect()
            });
            let batch = Batch::flow(flow! { item; }, runs).concurrent(BATCH_LIMIT);
            let log = std::path::Path::new(path).join("runs.log");
            let flow = flow! { begin >> batch; }
                .with_params(Params::new().with("runs", log.to_str().unwrap()));
            drive(&flow.durable(store), thread).await
        }
        "items" => {
            let calls = Batch::items(Calls {
                log: std::path::Path::new(path).join("runs.log"),
            })
            .concurrent(BATCH_LIMIT)
            .kept();
            let flow = flow! { begin >> calls; };
            drive(&flow.durable(store), thread).await
        }
        other => panic!("unknown scenario {other}"),
    }
}

/// Starts or resumes the thread, answering every pending pause with its key, until it ends.
async fn drive<G, St>(
    durable: &slateflow::durable::Durable<'_, Counter, G, St>,
    thread: &str,
) -> Result<Counter, Error>
where
    G: slateflow::flow::FlowGraph<Counter>,
    St: CheckpointStore + 'static,
{
    let exists = durable
        .threads()
        .await?
        .iter()
        .any(|info| info.id == thread);
    let mut outcome = if exists {
        answer_all(durable, thread).await?;
        durable.resume(thread).await?
    } else {
        let mut state = Counter::default();
        let outcome = durable.start(thread, &mut state).await?;
        (state, outcome)
    };
    loop {
        match outcome {
            (state, Outcome::Finished(_)) => return Ok(state),
            (_, Outcome::Paused(_)) => {
                answer_all(durable, thread).await?;
                outcome = durable.resume(thread).await?;
            }
        }
    }
}

/// Answers each pending pause with its own key; one answered before a crash is refused and left.
async fn answer_all<G, St>(
    durable: &slateflow::durable::Durable<'_, Counter, G, St>,
    thread: &str,
) -> Result<(), Error>
where
    G: slateflow::flow::FlowGraph<Counter>,
    St: CheckpointStore + 'static,
{
    for pause in durable.pending(thread).await? {
        let update = Counter::update().push_answers(pause.key.clone());
        match durable.answer(thread, &pause.key, update).await {
            Err(Error::Resume { reason, .. }) if reason.contains("answered already") => {}
            other => other?,
        }
    }
    Ok(())
}

/// The `agent` scenario's state: a conversation, and the turns taken.
#[derive(SharedState, Clone, Debug, Default, Serialize, Deserialize)]
#[slateflow(conversation)]
struct Desk {
    #[reducer(add)]
    turns: u64,
    #[reducer(append)]
    messages: Vec<Message>,
    #[reducer(append)]
    histories: Histories,
}

/// Turns of the `agent` scenario.
const TURNS: u64 = 10;

/// Counts a turn and asks for the next, until the last.
#[node(actions = ["again", "done"])]
fn next_turn(desk: &Desk) -> Command<Desk> {
    let turn = desk.turns + 1;
    let update = Desk::update().add_turns(1);
    if turn < TURNS {
        let asking =
            Message::human(format!("turn {}", turn + 1)).with_id(format!("turn-{}", turn + 1));
        Command::new(update.push_messages(asking)).with_action("again")
    } else {
        Command::new(update).with_action("done")
    }
}

/// A tool whose effect is a line in `runs.log`, written with its key and flushed, a millisecond
/// after it starts and a millisecond before it ends, so that kills land on both sides of it.
struct Effect {
    name: &'static str,
    log: std::path::PathBuf,
}

impl Tool for Effect {
    type Args = serde_json::Value;
    type Output = String;

    fn name(&self) -> &str {
        self.name
    }

    fn description(&self) -> &'static str {
        "An effect"
    }

    fn parameters(&self) -> serde_json::Value {
        serde_json::json!({"type": "object"})
    }

    async fn call(&self, _: serde_json::Value) -> Result<String, NodeError> {
        Err("call `call_keyed`".into())
    }

    async fn call_keyed(&self, _: serde_json::Value, key: &str) -> Result<String, NodeError> {
        use std::io::Write;
        std::thread::sleep(std::time::Duration::from_millis(1));
        let mut file = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&self.log)?;
        // One write of the whole line: a kill cannot leave half of it for the next to join.
        file.write_all(format!("{} {key}\n", self.name).as_bytes())?;
        file.sync_data()?;
        std::thread::sleep(std::time::Duration::from_millis(1));
        Ok(format!("{} done", self.name))
    }

    fn repeatable(&self) -> bool {
        self.name == "lookup"
    }
}

/// The model: for the turn the latest human message names, it calls both tools, then answers
/// with what they said.
fn desk_model() -> ScriptedModel {
    ScriptedModel::from_fn(|request| {
        std::thread::sleep(std::time::Duration::from_millis(1));
        let asked = request
            .messages
            .iter()
            .rposition(|message| matches!(message, Message::Human { .. }))
            .unwrap();
        let turn = request.messages[asked]
            .content()
            .trim_start_matches("turn ")
            .to_string();
        let answers: Vec<&str> = request.messages[asked..]
            .iter()
            .filter(|message| matches!(message, Message::Tool { .. }))
            .map(Message::content)
            .collect();
        Ok(ChatResponse::new(if answers.is_empty() {
            Message::ai_calling(
                "",
                vec![
                    ToolCall::new(format!("l{turn}"), "lookup", "{}"),
                    ToolCall::new(format!("p{turn}"), "pay", "{}"),
                ],
            )
        } else {
            Message::ai(format!("turn {turn}: {}", answers.join(" | ")))
        }))
    })
}

async fn run_agent<St: CheckpointStore + 'static>(
    store: St,
    path: &str,
    thread: &str,
) -> Result<Desk, Error> {
    let log = std::path::Path::new(path).join("runs.log");
    let tools = Toolbox::new()
        .with(Effect {
            name: "lookup",
            log: log.clone(),
        })
        .with(Effect { name: "pay", log });
    let desk = Agent::new(desk_model()).tools(tools);
    let turns = flow! { desk >> next_turn; next_turn - "again" >> desk; };
    let durable = turns.durable(store);
    if durable
        .threads()
        .await?
        .iter()
        .any(|info| info.id == thread)
    {
        return Ok(durable.resume(thread).await?.0);
    }
    let mut state = Desk {
        messages: vec![Message::human("turn 1").with_id("turn-1")],
        ..Desk::default()
    };
    durable.start(thread, &mut state).await?;
    Ok(state)
}

/// The scenario's final state, as JSON.
async fn run_any<St: CheckpointStore + 'static>(
    store: St,
    path: &str,
    thread: &str,
    scenario: &str,
) -> Result<serde_json::Value, Error> {
    let state = if scenario == "agent" {
        serde_json::to_value(run_agent(store, path, thread).await?)
    } else {
        serde_json::to_value(run(store, path, thread, scenario).await?)
    };
    Ok(state.unwrap())
}

fn main() {
    let arguments: Vec<String> = std::env::args().collect();
    let [_, kind, path, thread, scenario] = arguments.as_slice() else {
        panic!("usage: durable-crash <file|sqlite|postgres> <store path> <thread> <scenario>");
    };
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let state = runtime.block_on(async {
        match kind.as_str() {
            "file" => run_any(FileStore::open(path).unwrap(), path, thread, scenario).await,
            "sqlite" => {
                std::fs::create_dir_all(path).unwrap();
                let database = std::path::Path::new(path).join("runs.db");
                run_any(SqliteStore::open(database).unwrap(), path, thread, scenario).await
            }
            "postgres" => {
                std::fs::create_dir_all(path).unwrap();
                let url = std::env::var("SLATEFLOW_CRASH_DATABASE").unwrap();
                let store = PostgresStore::connect(&url).await.unwrap();
                let deadline = std::time::Instant::now() + std::time::Duration::from_secs(5);
                loop {
                    match run_any(store.clone(), path, thread, scenario).await {
                        Err(Error::Store(StoreError::Claimed { .. }))
                            if std::time::Instant::now() < deadline =>
                        {
                            tokio::time::sleep(std::time::Duration::from_millis(20)).await;
                        }
                        other => break other,
                    }
                }
            }
            other => panic!("unknown store kind {other}"),
        }
    });
    match state {
        Ok(state) => println!("{}", serde_json::to_string(&state).unwrap()),
        Err(Error::Store(StoreError::Claimed { .. })) => {
            eprintln!("claimed by another process");
            std::process::exit(3);
        }
        Err(error) => panic!("{error}"),
    }
}
