//! For tests that watch runs: an observer that keeps every event, owned.

use std::sync::{Arc, Mutex};

use slateflow::event::{Event, Observer, OwnedEvent};

/// Keeps every event, owned. Clones share one list.
#[derive(Default, Clone)]
pub(crate) struct Recorder(Arc<Mutex<Vec<OwnedEvent>>>);

impl Observer for Recorder {
    fn on_event(&self, event: &Event<'_>) {
        self.0.lock().unwrap().push(event.to_owned());
    }
}

impl Recorder {
    /// Every event so far, in order.
    pub(crate) fn events(&self) -> Vec<OwnedEvent> {
        self.0.lock().unwrap().clone()
    }

    /// Forgets the events so far.
    pub(crate) fn clear(&self) {
        self.0.lock().unwrap().clear();
    }

    /// Each event's kind, followed by its node when it has one: `"node_started a"`.
    pub(crate) fn kinds(&self) -> Vec<String> {
        self.events()
            .iter()
            .map(|event| match &event.node {
                Some(node) => format!("{} {node}", event.kind),
                None => event.kind.to_string(),
            })
            .collect()
    }

    /// The events of one kind.
    pub(crate) fn of_kind(&self, kind: &str) -> Vec<OwnedEvent> {
        self.events()
            .into_iter()
            .filter(|event| event.kind == kind)
            .collect()
    }

    /// The data of the custom events called `name`.
    pub(crate) fn custom(&self, name: &str) -> Vec<serde_json::Value> {
        self.of_kind("custom")
            .into_iter()
            .filter(|event| event.data["name"] == name)
            .map(|event| event.data["data"].clone())
            .collect()
    }
}
