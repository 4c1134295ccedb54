//! Recipe: agents that pass messages, two ways.
//!
//! 1. **Through queues in the state** (durable). Each agent has an inbox, a `#[reducer(queue)]`
//!    field: sending pushes to the other's inbox, reading takes from one's own. Taking is an
//!    update, saved with the step, so a run that crashes and resumes never reads a message twice
//!    and never loses one. The run here is durable on a SQLite file, and is interrupted halfway
//!    (a pause) to show that the inboxes are saved with the thread.
//! 2. **Through a live channel** (concurrent). Two branches of a fork run at the same time and
//!    stream to each other through a `tokio::sync::mpsc` channel, kept in a `#[serde(skip)]`
//!    field: it is not saved, and a durable run would get it back from
//!    `Durable::restore` on every resume.
//!
//! ```sh
//! cargo run -p slateflow-examples --example messages
//! ```

use std::sync::{Arc, Mutex};

use serde::{Deserialize, Serialize};
use slateflow::checkpoint::SqliteStore;
use slateflow::durable::Outcome;
use slateflow::reducer::Queue;
use slateflow::{Command, NodeError, SharedState, flow, node};

// ---- 1. Queues in the state --------------------------------------------------------------------

#[derive(SharedState, Clone, Debug, Default, Serialize, Deserialize)]
struct Desk {
    /// What the writer is sent: feedback.
    #[reducer(queue)]
    writer_inbox: Queue<String>,
    /// What the critic is sent: drafts.
    #[reducer(queue)]
    critic_inbox: Queue<String>,
    /// Who said what, in order.
    #[reducer(append)]
    transcript: Vec<String>,
    #[reducer(add)]
    rounds: u32,
}

/// Writes a draft, taking the critic's last feedback from its inbox.
#[node]
fn writer(desk: &Desk) -> Command<Desk> {
    let feedback = desk.writer_inbox.front().cloned();
    let draft = match &feedback {
        None => "Refunds take 30 days.".to_string(),
        Some(note) => format!("Refunds take 5 working days ({note})."),
    };
    let update = Desk::update()
        .take_writer_inbox(usize::from(feedback.is_some()))
        .push_critic_inbox(draft.clone())
        .push_transcript(format!("writer: {draft}"));
    Command::new(update)
}

/// Reads the draft in its inbox; sends feedback back, or approves.
#[node(actions = ["revise", "approved"])]
fn critic(desk: &Desk) -> Command<Desk> {
    let draft = desk.critic_inbox.front().cloned().unwrap_or_default();
    let update = Desk::update().take_critic_inbox(1).add_rounds(1);
    if draft.contains("30 days") {
        let note = "the policy says 5 working days".to_string();
        Command::new(
            update
                .push_writer_inbox(note.clone())
                .push_transcript(format!("critic: {note}")),
        )
        .with_action("revise")
    } else {
        Command::new(update.push_transcript("critic: approved".into())).with_action("approved")
    }
}

fn durable_queues() -> Result<(), Box<dyn std::error::Error>> {
    let flow = flow! {
        writer >> critic;
        critic - "revise" >> writer;
    };
    let folder = std::env::temp_dir().join(format!("slateflow-messages-{}", std::process::id()));
    std::fs::create_dir_all(&folder)?;
    let store = SqliteStore::open(folder.join("threads.db"))?;
    // Paused after the critic's first reply, as a crash or a deploy would stop it.
    let durable = flow.durable(store).interrupt_after(&["critic"]);
    let durable = durable.blocking()?;
    let first = durable.start("refund-policy", &mut Desk::default())?;
    let waiting = durable.state("refund-policy")?;
    println!("paused after: {}", first.pauses()[0].node);
    println!(
        "  saved inboxes: writer {:?}, critic {:?}",
        waiting.writer_inbox.iter().collect::<Vec<_>>(),
        waiting.critic_inbox.iter().collect::<Vec<_>>()
    );
    // Resumed (in another process, it would be the same): each message is read once.
    let mut outcome = durable.resume("refund-policy")?.1;
    while let Outcome::Paused(_) = outcome {
        outcome = durable.resume("refund-policy")?.1;
    }
    let desk = durable.state("refund-policy")?;
    for line in &desk.transcript {
        println!("  {line}");
    }
    println!(
        "  rounds: {}, inboxes empty: {}",
        desk.rounds,
        desk.writer_inbox.is_empty() && desk.critic_inbox.is_empty()
    );
    std::fs::remove_dir_all(&folder)?;
    Ok(())
}

// ---- 2. A live channel between concurrent branches ---------------------------------------------

/// A channel in the state: cloned with it (both ends shared), never saved.
#[derive(Clone, Default)]
struct Channel(Arc<Mutex<Option<Ends>>>);

struct Ends {
    sender: Option<tokio::sync::mpsc::Sender<String>>,
    receiver: Option<tokio::sync::mpsc::Receiver<String>>,
}

impl Channel {
    fn new(capacity: usize) -> Self {
        let (sender, receiver) = tokio::sync::mpsc::channel(capacity);
        Self(Arc::new(Mutex::new(Some(Ends {
            sender: Some(sender),
            receiver: Some(receiver),
        }))))
    }

    fn sender(&self) -> Option<tokio::sync::mpsc::Sender<String>> {
        self.0.lock().ok()?.as_mut()?.sender.take()
    }

    fn receiver(&self) -> Option<tokio::sync::mpsc::Receiver<String>> {
        self.0.lock().ok()?.as_mut()?.receiver.take()
    }
}

impl std::fmt::Debug for Channel {
    fn fmt(&self, formatter: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        formatter.write_str("Channel")
    }
}

#[derive(SharedState, Clone, Debug, Default, Serialize, Deserialize)]
struct Stream {
    /// Not saved: a durable run puts a new one back with `Durable::restore`.
    #[serde(skip)]
    channel: Channel,
    #[reducer(append)]
    heard: Vec<String>,
    #[reducer(add)]
    sent: u32,
}

/// Streams readings to the listener while it is still producing them.
struct Sensor;

impl slateflow::Node<Stream> for Sensor {
    type Prep = Option<tokio::sync::mpsc::Sender<String>>;
    type Exec = u32;

    async fn prep(
        &self,
        stream: &Stream,
        _: &slateflow::Context<'_>,
    ) -> Result<Self::Prep, NodeError> {
        Ok(stream.channel.sender())
    }

    async fn exec(&self, sender: &Self::Prep) -> Result<u32, NodeError> {
        let sender = sender.as_ref().ok_or("the channel's sender was taken")?;
        for reading in 1..=5 {
            sender.send(format!("reading {reading}")).await?;
            tokio::task::yield_now().await;
        }
        Ok(5)
    }

    async fn post(
        &self,
        _: &Stream,
        _: Self::Prep,
        sent: u32,
        _: &slateflow::Context<'_>,
    ) -> Result<Command<Stream>, NodeError> {
        // The sender is dropped here: the listener's loop ends.
        Ok(Command::new(Stream::update().add_sent(sent)))
    }
}

/// Hears every reading as it comes, until the sensor hangs up.
struct Listener;

impl slateflow::Node<Stream> for Listener {
    type Prep = tokio::sync::Mutex<Option<tokio::sync::mpsc::Receiver<String>>>;
    type Exec = Vec<String>;

    async fn prep(
        &self,
        stream: &Stream,
        _: &slateflow::Context<'_>,
    ) -> Result<Self::Prep, NodeError> {
        Ok(tokio::sync::Mutex::new(stream.channel.receiver()))
    }

    async fn exec(&self, receiver: &Self::Prep) -> Result<Vec<String>, NodeError> {
        let mut receiver = receiver.lock().await;
        let receiver = receiver
            .as_mut()
            .ok_or("the channel's receiver was taken")?;
        let mut heard = Vec::new();
        while let Some(reading) = receiver.recv().await {
            heard.push(format!("heard {reading}"));
        }
        Ok(heard)
    }

    async fn post(
        &self,
        _: &Stream,
        _: Self::Prep,
        heard: Vec<String>,
        _: &slateflow::Context<'_>,
    ) -> Result<Command<Stream>, NodeError> {
        Ok(Command::new(Stream::update().extend_heard(heard)))
    }
}

fn live_channel() -> Result<(), Box<dyn std::error::Error>> {
    let (sensor, listener) = (Sensor, Listener);
    let flow = flow! { [sensor, listener]; };
    let mut stream = Stream {
        channel: Channel::new(2),
        ..Stream::default()
    };
    flow.run_blocking(&mut stream)?;
    println!(
        "  sent {}, heard {}: {}",
        stream.sent,
        stream.heard.len(),
        stream.heard.join(", ")
    );
    Ok(())
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    println!("1. Through queues in the state, durable:");
    durable_queues()?;
    println!("2. Through a live channel, concurrent:");
    live_channel()?;
    Ok(())
}
