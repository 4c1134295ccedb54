//! Worker processes and their clients for the many-workers tests (`tests/workers.rs`), on one
//! PostgreSQL database given by URL. Two flows:
//! - `count`: 20 steps, each adding 1 to an `add`-reducer counter and appending its number, after
//!   25 ms of (async) work: a step applied twice or skipped would show;
//! - `review`: `draft`, then a pause before `publish` for a human's approval;
//! - `crawl`: steps that never end, each adding 1 to a counter after 20 ms of work, until the
//!   thread is cancelled.
//!
//! Commands (`<url>` first):
//! - `work <url> <concurrency> [<lease ms>]`: a worker until its standard input closes; then it
//!   shuts down gracefully and prints its report as JSON. Its lease is 1 s and its poll 100 ms,
//!   or with a lease given, that lease and the default poll (half of it);
//! - `submit <url> <flow> <count>`: submits threads `<flow>-0` ... of that flow;
//! - `answer <url> <thread>`: answers every pause `thread` waits at, approving it;
//! - `cancel <url> <thread>`: cancels the thread;
//! - `report <url>`: prints every thread with its status, state and step numbers, as JSON lines.

use std::io::Read;
use std::time::Duration;

use serde::{Deserialize, Serialize};
use slateflow::checkpoint::{PostgresStore, RecordKind, RunStatus};
use slateflow::worker::Worker;
use slateflow::{Command, NodeError, SharedState, flow, node};

/// Steps of a `count` run.
const STEPS: u64 = 20;

#[derive(SharedState, Clone, Debug, Default, Serialize, Deserialize)]
struct Counter {
    #[reducer(add)]
    count: u64,
    #[reducer(append)]
    seen: Vec<u64>,
}

#[node(actions = ["again", "done"])]
async fn tick(counter: &Counter) -> Result<Command<Counter>, NodeError> {
    tokio::time::sleep(Duration::from_millis(25)).await;
    let next = counter.count + 1;
    let action = if next < STEPS { "again" } else { "done" };
    Ok(Command::new(Counter::update().add_count(1).push_seen(next)).with_action(action))
}

#[derive(SharedState, Clone, Debug, Default, Serialize, Deserialize)]
struct Review {
    draft: String,
    approved: bool,
    published: bool,
}

#[node]
fn draft(_: &Review) -> Command<Review> {
    Command::new(Review::update().set_draft("A reply".to_string()))
}

#[node]
fn publish(review: &Review) -> Result<Command<Review>, NodeError> {
    if !review.approved {
        return Err("published without approval".into());
    }
    Ok(Command::new(Review::update().set_published(true)))
}

#[derive(SharedState, Clone, Debug, Default, Serialize, Deserialize)]
struct Crawl {
    #[reducer(add)]
    count: u64,
}

#[node(actions = ["again"])]
async fn crawl(_: &Crawl) -> Command<Crawl> {
    tokio::time::sleep(Duration::from_millis(20)).await;
    Command::new(Crawl::update().add_count(1)).with_action("again")
}

fn main() {
    let arguments: Vec<String> = std::env::args().skip(1).collect();
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    runtime.block_on(run(&arguments));
}

async fn run(arguments: &[String]) {
    let [command, url, rest @ ..] = arguments else {
        panic!("usage: pg-worker <work|submit|answer|report> <url> ...");
    };
    let lease = match (command.as_str(), rest) {
        ("work", [_, lease]) => Some(Duration::from_millis(lease.parse().unwrap())),
        _ => None,
    };
    let store = PostgresStore::options()
        .lease(lease.unwrap_or(Duration::from_secs(1)))
        .connect(url)
        .await
        .unwrap();
    let counting = flow! { tick - "again" >> tick; };
    let crawling = flow! { crawl - "again" >> crawl; };
    let crawls = crawling.durable(store.clone()).named("crawl");
    let reviewing = flow! { draft >> publish; };
    let count = counting.durable(store.clone()).named("count");
    let review = reviewing
        .durable(store.clone())
        .named("review")
        .interrupt_before(&["publish"]);
    match (command.as_str(), rest) {
        ("work", [concurrency, ..]) => {
            let mut worker = Worker::new(store.clone())
                .flow(count)
                .flow(review)
                .flow(crawls)
                .concurrency(concurrency.parse().unwrap());
            if lease.is_none() {
                worker = worker.poll(Duration::from_millis(100));
            }
            // Shuts down when the test closes the standard input.
            let closed = async {
                tokio::task::spawn_blocking(|| {
                    let _ = std::io::stdin().read_to_end(&mut Vec::new());
                })
                .await
                .unwrap();
            };
            let report = worker.run(closed).await.unwrap();
            println!(
                "{}",
                serde_json::json!({
                    "finished": report.finished,
                    "paused": report.paused,
                    "failed": report.failed,
                    "lost": report.lost,
                    "released": report.released,
                })
            );
        }
        ("submit", [flow, how_many]) => {
            for index in 0..how_many.parse::<u32>().unwrap() {
                let thread = format!("{flow}-{index}");
                match flow.as_str() {
                    "count" => count.submit(&thread, &Counter::default()).await.unwrap(),
                    "review" => review.submit(&thread, &Review::default()).await.unwrap(),
                    "crawl" => crawls.submit(&thread, &Crawl::default()).await.unwrap(),
                    other => panic!("no flow `{other}`"),
                }
            }
        }
        ("answer", [thread]) => {
            for pause in review.pending(thread).await.unwrap() {
                review
                    .answer(thread, &pause.key, Review::update().set_approved(true))
                    .await
                    .unwrap();
                println!("{}", pause.key);
            }
        }
        ("cancel", [thread]) => count.cancel(thread).await.unwrap(),
        ("report", []) => {
            for info in count.threads().await.unwrap() {
                let history = if info.id.starts_with("crawl") {
                    (
                        serde_json::to_value(crawls.state(&info.id).await.unwrap()).unwrap(),
                        steps(&crawls.history(&info.id).await.unwrap()),
                    )
                } else {
                    store_history(&count, &review, &info.id).await
                };
                let status = match &info.status {
                    RunStatus::Finished { .. } => "finished".to_string(),
                    other => format!("{other:?}"),
                };
                println!(
                    "{}",
                    serde_json::json!({
                        "thread": info.id,
                        "status": status,
                        "state": history.0,
                        "steps": history.1,
                    })
                );
            }
        }
        _ => panic!("unknown command {arguments:?}"),
    }
}

/// A thread's state as JSON and the step numbers of its saved steps.
async fn store_history<G1, G2>(
    count: &slateflow::durable::Durable<'_, Counter, G1, PostgresStore>,
    review: &slateflow::durable::Durable<'_, Review, G2, PostgresStore>,
    thread: &str,
) -> (serde_json::Value, Vec<u64>)
where
    G1: slateflow::flow::FlowGraph<Counter>,
    G2: slateflow::flow::FlowGraph<Review>,
{
    let (state, history) = if thread.starts_with("count") {
        (
            serde_json::to_value(count.state(thread).await.unwrap()).unwrap(),
            count.history(thread).await.unwrap(),
        )
    } else {
        (
            serde_json::to_value(review.state(thread).await.unwrap()).unwrap(),
            review.history(thread).await.unwrap(),
        )
    };
    (state, steps(&history))
}

/// The step numbers of a history's saved steps.
fn steps(history: &[slateflow::checkpoint::StepRecord]) -> Vec<u64> {
    history
        .iter()
        .filter(|record| record.kind == RecordKind::Step)
        .map(|record| record.step)
        .collect()
}
