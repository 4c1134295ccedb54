//! Two workers share one PostgreSQL database: a client submits refund requests, the workers run
//! them up to a human's approval, the client answers the pauses, and the workers run them on.
//! Each worker has its own connection pool, as it would in a process (or on a machine) of its
//! own; any of them can take any thread.
//!
//! Needs a PostgreSQL server (see "Many workers" in the README):
//!
//! ```sh
//! DATABASE_URL=postgres://postgres@127.0.0.1:5432/postgres \
//!     cargo run -p slateflow-examples --example workers
//! ```

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use serde::{Deserialize, Serialize};
use slateflow::checkpoint::{PostgresStore, RunStatus};
use slateflow::durable::Durable;
use slateflow::flow::FlowGraph;
use slateflow::worker::{Worker, WorkerReport};
use slateflow::{Command, Context, Flow, SharedState, flow, node};

#[derive(SharedState, Clone, Debug, Default, Serialize, Deserialize)]
struct Refund {
    customer: String,
    amount: u32,
    approved: Option<bool>,
    #[reducer(append)]
    log: Vec<String>,
}

/// Checks the request; the run then pauses for a human before `pay`.
#[node]
fn assess(refund: &Refund, context: &Context<'_>) -> Command<Refund> {
    let worker = context
        .params()
        .get_str("worker")
        .unwrap_or("?")
        .to_string();
    Command::new(Refund::update().push_log(format!(
        "{worker} assessed {} EUR for {}",
        refund.amount, refund.customer
    )))
}

#[node(actions = ["paid", "declined"])]
fn pay(refund: &Refund, context: &Context<'_>) -> Command<Refund> {
    let worker = context
        .params()
        .get_str("worker")
        .unwrap_or("?")
        .to_string();
    if refund.approved == Some(true) {
        Command::new(Refund::update().push_log(format!("{worker} paid"))).with_action("paid")
    } else {
        Command::new(Refund::update().push_log(format!("{worker} declined")))
            .with_action("declined")
    }
}

fn refunds() -> Flow<Refund, impl FlowGraph<Refund>> {
    flow! { assess >> pay; }
}

/// The flow as every process runs it: named, so that workers know it, and paused before `pay`.
fn durable<G: FlowGraph<Refund>>(
    flow: &Flow<Refund, G>,
    store: PostgresStore,
) -> Durable<'_, Refund, G, PostgresStore> {
    flow.durable(store)
        .named("refunds")
        .interrupt_before(&["pay"])
}

/// A worker, as its own process would run it, until `stop`.
fn worker(name: &'static str, url: &str, stop: &AtomicBool) -> WorkerReport {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("a runtime");
    runtime.block_on(async {
        let store = PostgresStore::connect(url).await.expect("the database");
        let flow = refunds().with_params(slateflow::Params::new().with("worker", name));
        Worker::new(store.clone())
            .flow(durable(&flow, store))
            .concurrency(4)
            .poll(Duration::from_millis(200))
            .run(async {
                while !stop.load(Ordering::SeqCst) {
                    tokio::time::sleep(Duration::from_millis(20)).await;
                }
            })
            .await
            .expect("the worker runs")
    })
}

#[tokio::main(flavor = "current_thread")]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let Ok(url) = std::env::var("DATABASE_URL") else {
        eprintln!(
            "set DATABASE_URL to a PostgreSQL database, e.g. \
             DATABASE_URL=postgres://postgres@127.0.0.1:5432/postgres"
        );
        std::process::exit(2);
    };
    let store = PostgresStore::connect(&url).await?;
    let flow = refunds();
    let client = durable(&flow, store.clone());
    // A fresh run of the example: earlier threads go first.
    for info in client.threads().await? {
        if info.id.starts_with("refund-") {
            client.delete(&info.id).await?;
        }
    }

    // The client submits four requests; nothing runs in this process.
    let customers = [("Ada", 120), ("Grace", 80), ("Alan", 4_000), ("Edsger", 35)];
    for (index, (customer, amount)) in customers.iter().enumerate() {
        let refund = Refund {
            customer: (*customer).to_string(),
            amount: *amount,
            ..Refund::default()
        };
        client.submit(&format!("refund-{index}"), &refund).await?;
    }

    // Two workers take them.
    let stop = Arc::new(AtomicBool::new(false));
    let workers: Vec<_> = ["worker-a", "worker-b"]
        .into_iter()
        .map(|name| {
            let (url, stop) = (url.clone(), Arc::clone(&stop));
            std::thread::spawn(move || worker(name, &url, &stop))
        })
        .collect();

    // A human answers each pause as it comes: approve up to 1,000 EUR.
    let mut answered = 0;
    while answered < customers.len() {
        for (index, (_, amount)) in customers.iter().enumerate() {
            let thread = format!("refund-{index}");
            for pause in client.pending(&thread).await? {
                if matches!(client.status(&thread).await?, RunStatus::Paused { .. }) {
                    let approve = Refund::update().set_approved(Some(*amount <= 1_000));
                    client.answer(&thread, &pause.key, approve).await?;
                    println!("answered {} of {thread}", pause.key);
                    answered += 1;
                }
            }
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    // The workers run them on, wherever they were paused.
    loop {
        let threads = client.threads().await?;
        if threads
            .iter()
            .all(|thread| matches!(thread.status, RunStatus::Finished { .. }))
        {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    stop.store(true, Ordering::SeqCst);
    for handle in workers {
        let report = handle.join().expect("a worker");
        println!(
            "a worker finished {} runs and paused {}",
            report.finished, report.paused
        );
    }
    for index in 0..customers.len() {
        let thread = format!("refund-{index}");
        let refund = client.state(&thread).await?;
        println!("{thread}: {}", refund.log.join("; "));
    }
    Ok(())
}
