//! The agent layer's own cost: one `Agent` turn on a model that answers at once (so only the
//! framework's work is timed: building the prompt from the state, the turn, recording it), at 10,
//! 100, 1,000 and 10,000 messages of the agent's history; and what one tool call adds. When
//! LangGraph is installed (`pip install langgraph`), its prebuilt `ReAct` agent on a fake model is
//! timed the same way in the same run (`benches/langgraph_react.py`), as the peer.
//!
//! `cargo bench -p slateflow --bench agent`. Each figure is the median of many single turns, each
//! on a fresh copy of the state (the copy is not timed), in microseconds.

use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};
use serde_json::json;
use slateflow::agent::message::{Histories, Message, ToolCall};
use slateflow::agent::model::{ChatModel, ChatRequest, ChatResponse};
use slateflow::agent::tool::{self, Toolbox};
use slateflow::agent::{Agent, ModelError};
use slateflow::{SharedState, flow};

const LENGTHS: [usize; 4] = [10, 100, 1_000, 10_000];

#[derive(SharedState, Clone, Debug, Default, Serialize, Deserialize)]
#[slateflow(conversation)]
struct Chat {
    #[reducer(append)]
    messages: Vec<Message>,
    #[reducer(append)]
    histories: Histories,
}

/// Answers at once, recording nothing: with `tool`, calls the tool once first.
struct AtOnce {
    tool: bool,
}

impl ChatModel for AtOnce {
    async fn chat(&self, request: &ChatRequest) -> Result<ChatResponse, ModelError> {
        let answered = matches!(request.messages.last(), Some(Message::Tool { .. }));
        Ok(ChatResponse::new(if self.tool && !answered {
            Message::ai_calling("", vec![ToolCall::new("c", "noop", "{}")])
        } else {
            Message::ai("ok")
        }))
    }
}

/// A state whose agent `agent` has `length` messages of its own history, and one question.
fn chat(length: usize) -> Chat {
    let history = (0..length).map(|index| {
        if index % 2 == 0 {
            Message::human(format!("question {index}")).with_id(format!("h{index}"))
        } else {
            Message::ai(format!("answer {index}")).with_id(format!("a{index}"))
        }
    });
    Chat {
        messages: vec![Message::human("and now?")],
        histories: Histories::of("agent", history),
    }
}

/// The median time of one turn of `agent` over a fresh copy of `state`, in `samples` samples.
fn turn<M: ChatModel>(agent: &Agent<Chat, M>, state: &Chat, samples: usize) -> Duration {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .build()
        .unwrap();
    let flow = flow! { agent; };
    let mut times: Vec<Duration> = (0..samples)
        .map(|_| {
            let mut copy = state.clone();
            let start = Instant::now();
            runtime.block_on(flow.run(&mut copy)).unwrap();
            let took = start.elapsed();
            assert_eq!(copy.messages.last().map(Message::content), Some("ok"));
            took
        })
        .collect();
    times.sort();
    times[samples / 2]
}

/// LangGraph's prebuilt `ReAct` agent on a fake model, the same turns: microseconds a turn at each
/// length, with and without a tool call; `None` when LangGraph is not installed.
fn langgraph() -> Option<Vec<(usize, f64, f64)>> {
    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/benches/langgraph_react.py");
    let output = std::process::Command::new("python3")
        .arg(script)
        .output()
        .ok()?;
    if !output.status.success() {
        println!(
            "LangGraph not timed: {}",
            String::from_utf8_lossy(&output.stderr)
                .lines()
                .last()
                .unwrap_or("python3 failed")
        );
        return None;
    }
    let rows: Vec<(usize, f64, f64)> = serde_json::from_slice(&output.stdout).ok()?;
    Some(rows)
}

fn main() {
    let noop = tool::from_fn(
        "noop",
        "Does nothing",
        json!({"type": "object"}),
        |_: serde_json::Value| async move { Ok("done") },
    );
    let plain = Agent::new(AtOnce { tool: false });
    let with_tool = Agent::new(AtOnce { tool: true }).tools(Toolbox::new().with(noop));
    // `cargo test --benches` runs this once, small, as a smoke test.
    let smoke = !std::env::args().any(|argument| argument == "--bench");
    let samples = if smoke { 3 } else { 201 };
    let peer = if smoke { None } else { langgraph() };
    let mut first = None;
    println!(
        "{:>8}  {:>12}  {:>14}  {:>12}  {:>14}",
        "history", "turn (us)", "tool call (us)", "vs 10", "vs LangGraph"
    );
    for length in LENGTHS {
        if smoke && length > 100 {
            break;
        }
        let state = chat(length);
        let alone = turn(&plain, &state, samples);
        let called = turn(&with_tool, &state, samples);
        let us = |time: Duration| time.as_secs_f64() * 1e6;
        let base = *first.get_or_insert(us(alone));
        let against = peer
            .as_ref()
            .and_then(|rows| rows.iter().find(|row| row.0 == length))
            .map_or_else(
                || "-".to_string(),
                |row| format!("{:.0}x faster", row.1 / us(alone)),
            );
        println!(
            "{length:>8}  {:>12.1}  {:>14.1}  {:>11.1}x  {against:>14}",
            us(alone),
            us(called) - us(alone),
            us(alone) / base,
        );
    }
    if let Some(rows) = peer {
        for (length, turn, tool) in rows {
            println!(
                "LangGraph {length:>8}: a turn {turn:.0} us, a tool call {:.0} us",
                tool - turn
            );
        }
    }
}
