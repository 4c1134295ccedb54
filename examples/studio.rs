//! The studio: a local page where a person sees a flow's threads and steers them.
//!
//! Expense claims go through two checks that run at once, then are routed by amount: a small
//! claim is paid at once, a large one waits for a person to approve it. The program starts one of
//! each, then serves the studio: open the address it prints, pick the waiting thread, and answer
//! its question with `{"approved": true}` (or `false`) to see it finish.
//!
//! Run it with `cargo run -p slateflow-examples --example studio` (Ctrl-C stops it). With
//! `-- --once`, it starts the two threads, checks that the page and its API answer, and exits.

use serde::{Deserialize, Serialize};
use slateflow::checkpoint::MemoryStore;
use slateflow::studio::Studio;
use slateflow::{Command, SharedState, flow, node};

/// An expense claim.
#[derive(SharedState, Clone, Debug, Default, Serialize, Deserialize)]
#[serde(default)]
struct Claim {
    employee: String,
    amount_eur: u32,
    purpose: String,
    /// What the checks found, in the order they are wired.
    #[reducer(append)]
    checks: Vec<String>,
    /// A person's decision, for a large claim.
    approved: Option<bool>,
    /// How it ended.
    outcome: String,
}

/// Claims up to this amount are paid without asking anyone.
const ASK_ABOVE_EUR: u32 = 500;

#[node]
fn receive(claim: &Claim) -> Command<Claim> {
    Command::new(Claim::update().set_purpose(claim.purpose.trim().to_string()))
}

/// Checks the claim against the expense policy (scripted).
#[node]
fn policy(claim: &Claim) -> Command<Claim> {
    let found = if claim.purpose.is_empty() {
        "policy: no purpose given".to_string()
    } else {
        format!("policy: `{}` is an allowed purpose", claim.purpose)
    };
    Command::new(Claim::update().push_checks(found))
}

/// Checks what is left of the team's budget (scripted).
#[node]
fn budget(claim: &Claim) -> Command<Claim> {
    let left = 4_000u32.saturating_sub(claim.amount_eur);
    Command::new(Claim::update().push_checks(format!("budget: {left} EUR left after this")))
}

/// Routes by amount, and says why.
#[node(actions = ["small", "large"])]
fn route(claim: &Claim) -> Command<Claim> {
    if claim.amount_eur > ASK_ABOVE_EUR {
        Command::goto("large").with_reason(format!(
            "{} EUR is above the {ASK_ABOVE_EUR} EUR a claim may be paid without approval",
            claim.amount_eur
        ))
    } else {
        Command::goto("small").with_reason(format!("{} EUR is small", claim.amount_eur))
    }
}

/// Asks a person; the answer (`{"approved": true}`) is applied before the run goes on.
#[node]
fn review(claim: &Claim) -> Command<Claim> {
    Command::goto("default").ask(format!(
        "Approve {} EUR for {} ({})?",
        claim.amount_eur, claim.employee, claim.purpose
    ))
}

/// Routes on the person's answer.
#[node(actions = ["pay", "refuse"])]
fn decide(claim: &Claim) -> Command<Claim> {
    if claim.approved == Some(true) {
        Command::goto("pay").with_reason("approved by a person")
    } else {
        Command::goto("refuse").with_reason("not approved")
    }
}

#[node]
fn pay(claim: &Claim) -> Command<Claim> {
    Command::new(Claim::update().set_outcome(format!(
        "paid {} EUR to {}",
        claim.amount_eur, claim.employee
    )))
}

#[node]
fn refuse(claim: &Claim) -> Command<Claim> {
    Command::new(Claim::update().set_outcome(format!("refused the claim of {}", claim.employee)))
}

#[tokio::main(flavor = "current_thread")]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let once = std::env::args().any(|argument| argument == "--once");
    let claims = flow! {
        receive >> [policy, budget] >> route;
        route - "small" >> pay;
        route - "large" >> review >> decide;
        decide - "pay" >> pay;
        decide - "refuse" >> refuse;
    };
    let durable = claims.durable(MemoryStore::new()).named("claims");
    let taxi = Claim {
        employee: "Ada".into(),
        amount_eur: 42,
        purpose: "taxi to the airport".into(),
        ..Claim::default()
    };
    let laptop = Claim {
        employee: "Grace".into(),
        amount_eur: 1_900,
        purpose: "a laptop".into(),
        ..Claim::default()
    };
    let finished = durable.start("claim-taxi", &mut taxi.clone()).await?;
    let waiting = durable.start("claim-laptop", &mut laptop.clone()).await?;
    println!("claim-taxi: {finished:?}");
    println!("claim-laptop waits: {}", waiting.pauses()[0]);

    let address = if once {
        "127.0.0.1:0"
    } else {
        "127.0.0.1:7878"
    };
    let server = Studio::of(durable).bind(address).await?;
    println!("the studio is at {}", server.url());
    println!(
        "(scripts change threads with `Authorization: Bearer {}`)",
        server.token()
    );
    if once {
        let local = server.local_addr();
        server
            .run_until(async move {
                for path in ["/", "/api/threads/claim-laptop"] {
                    let (status, body) = get(local, path).await;
                    assert_eq!(status, 200, "{path}: {body}");
                }
                println!("the page and the API answer");
            })
            .await?;
    } else {
        server
            .run_until(async {
                let _ = tokio::signal::ctrl_c().await;
            })
            .await?;
    }
    Ok(())
}

/// A plain HTTP/1.1 GET: its status and body.
async fn get(address: std::net::SocketAddr, path: &str) -> (u16, String) {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut stream = tokio::net::TcpStream::connect(address).await.unwrap();
    let request = format!("GET {path} HTTP/1.1\r\nHost: {address}\r\nConnection: close\r\n\r\n");
    stream.write_all(request.as_bytes()).await.unwrap();
    let mut response = String::new();
    stream.read_to_string(&mut response).await.unwrap();
    let status = response
        .split(' ')
        .nth(1)
        .and_then(|status| status.parse().ok())
        .unwrap_or(0);
    let body = response
        .split_once("\r\n\r\n")
        .map_or(String::new(), |(_, body)| body.to_string());
    (status, body)
}
