//! [`channel`]: a run's events, owned, through a bounded queue to a reader that may be slow.

use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::task::{Context as TaskContext, Poll};

use super::{Event, Observer, OwnedEvent};

/// A bounded queue of events from a run to a reader that may be slow (a UI): the run never waits.
///
/// ```
/// # tokio::runtime::Builder::new_current_thread().build().unwrap().block_on(async {
/// use futures_util::StreamExt;
/// use slateflow::event::{Event, Observer, channel};
///
/// let (sender, mut events) = channel(2);
/// let event = Event::RunFinished { action: "default", steps: 1 };
/// for _ in 0..3 {
///     sender.on_event(&event); // the third does not fit: dropped, counted
/// }
/// drop(sender);
/// assert_eq!(events.next().await.unwrap().kind, "run_finished");
/// assert_eq!(events.next().await.unwrap().kind, "run_finished");
/// assert!(events.next().await.is_none());
/// assert_eq!(events.dropped(), 1);
/// # });
/// ```
pub fn channel(capacity: usize) -> (EventSender, EventStream) {
    let (sender, receiver) = tokio::sync::mpsc::channel(capacity.max(1));
    let dropped = Arc::new(AtomicU64::new(0));
    (
        EventSender {
            sender,
            dropped: Arc::clone(&dropped),
        },
        EventStream { receiver, dropped },
    )
}

/// The observer half of [`channel`]: pass it to [`Flow::observe`](crate::Flow::observe).
///
/// ```
/// # use serde::{Deserialize, Serialize};
/// # use slateflow::{Command, SharedState, flow, node};
/// # #[derive(SharedState, Clone, Debug, Default, Serialize, Deserialize)]
/// # struct Counter { #[reducer(add)] count: u32, label: String }
/// # #[node]
/// # fn count(_: &Counter) -> Command<Counter> { Command::new(Counter::update().add_count(1)) }
/// use slateflow::event;
///
/// # tokio::runtime::Builder::new_current_thread().build().unwrap().block_on(async {
/// // A channel of 1: a run never waits for its reader, it drops what does not fit and counts it.
/// let (sender, mut events) = event::channel(1);
/// let flow = flow! { count; };
/// let observed = flow.observe(sender);
/// observed.run(&mut Counter::default()).await?;
/// assert_eq!(events.recv().await.unwrap().kind, "run_started");
/// assert_eq!(events.dropped(), 3);
/// # Ok::<(), slateflow::Error>(())
/// # }).unwrap();
/// ```
#[derive(Debug, Clone)]
pub struct EventSender {
    sender: tokio::sync::mpsc::Sender<OwnedEvent>,
    dropped: Arc<AtomicU64>,
}

impl EventSender {
    /// How many events were dropped because the queue was full (or the reader gone).
    pub fn dropped(&self) -> u64 {
        self.dropped.load(Ordering::Relaxed)
    }
}

impl Observer for EventSender {
    fn on_event(&self, event: &Event<'_>) {
        if self.sender.try_send(event.to_owned()).is_err() {
            self.dropped.fetch_add(1, Ordering::Relaxed);
        }
    }
}

/// The reader half of [`channel`]: a [`Stream`](futures_util::Stream) of events that ends when
/// every [`EventSender`] is gone (the run is over and its flow dropped the observer).
///
/// ```
/// # use serde::{Deserialize, Serialize};
/// # use slateflow::{Command, SharedState, flow, node};
/// # #[derive(SharedState, Clone, Debug, Default, Serialize, Deserialize)]
/// # struct Counter { #[reducer(add)] count: u32, label: String }
/// # #[node]
/// # fn count(_: &Counter) -> Command<Counter> { Command::new(Counter::update().add_count(1)) }
/// use slateflow::event;
///
/// # tokio::runtime::Builder::new_current_thread().build().unwrap().block_on(async {
/// let (sender, mut events) = event::channel(64);
/// let flow = flow! { count; };
/// flow.observe(sender).run(&mut Counter::default()).await?;
/// // The run dropped its sender: the stream ends after the last event.
/// let mut texts = Vec::new();
/// while let Some(event) = events.recv().await {
///     texts.push(event.text);
/// }
/// assert_eq!(texts.last().map(String::as_str), Some("run finished with \"default\" after 1 steps"));
/// # Ok::<(), slateflow::Error>(())
/// # }).unwrap();
/// ```
#[derive(Debug)]
pub struct EventStream {
    receiver: tokio::sync::mpsc::Receiver<OwnedEvent>,
    dropped: Arc<AtomicU64>,
}

impl EventStream {
    /// How many events the run dropped because this reader was behind.
    pub fn dropped(&self) -> u64 {
        self.dropped.load(Ordering::Relaxed)
    }

    /// The next event, or `None` once the senders are gone.
    pub async fn recv(&mut self) -> Option<OwnedEvent> {
        self.receiver.recv().await
    }
}

impl futures_util::Stream for EventStream {
    type Item = OwnedEvent;

    fn poll_next(
        mut self: Pin<&mut Self>,
        context: &mut TaskContext<'_>,
    ) -> Poll<Option<Self::Item>> {
        self.receiver.poll_recv(context)
    }
}
