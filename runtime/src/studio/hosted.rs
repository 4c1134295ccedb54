//! A durable flow the studio hosts, whatever its state type: its name and graph, its threads'
//! state as JSON, and the runs it starts, answers and resumes, read from and written as JSON.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;

use serde::Serialize;
use serde::de::DeserializeOwned;
use serde_json::Value;

use crate::checkpoint::CheckpointStore;
use crate::durable::{Durable, Outcome, state_type_of};
use crate::error::Error;
use crate::event::Observer;
use crate::flow::FlowGraph;
use crate::graph::Graph;
use crate::state::{SharedState, state_from_json};

/// A future the studio polls in its own task, borrowing the flow it runs.
pub(super) type Boxed<'a, T> = Pin<Box<dyn Future<Output = Result<T, Error>> + Send + 'a>>;

/// A flow the studio hosts. Implemented by [`Durable`] only.
pub(super) trait Hosted: Send + Sync {
    /// The name its threads record ([`Durable::named`]).
    fn name(&self) -> &str;

    /// The state type its threads are created for.
    fn state_type(&self) -> &'static str;

    /// The flow's graph.
    fn graph(&self) -> Graph;

    /// The names and types of the state's fields, for the page's forms.
    fn fields(&self) -> Vec<(&'static str, &'static str)>;

    /// The thread's state after `step` (the current one when `None`), as JSON.
    fn state(&self, thread: String, step: Option<u64>) -> Boxed<'_, Value>;

    /// Reads `state` as the flow's state (an error names the path of a bad value), then returns
    /// what creates `thread` from it, which returns the run of the thread, its events sent to
    /// `also` too.
    fn start(
        &self,
        thread: String,
        state: &Value,
        also: Arc<dyn Observer>,
    ) -> Result<Boxed<'_, Boxed<'_, Outcome>>, Error>;

    /// Reads `update` as the state's update, then returns what answers the pause `key`.
    fn answer(&self, thread: String, key: String, update: &Value) -> Result<Boxed<'_, ()>, Error>;

    /// Saves `reply` as the reply to the question `key` asked inside a step.
    fn reply(&self, thread: String, key: String, reply: Value) -> Boxed<'_, ()>;

    /// Reads `update` as the state's update, then returns what saves it as an input.
    fn update(&self, thread: String, update: &Value) -> Result<Boxed<'_, ()>, Error>;

    /// The run that resumes `thread`, its events sent to `also` too.
    fn resume(&self, thread: String, also: Arc<dyn Observer>) -> Boxed<'_, Outcome>;
}

impl<S, G, St> Hosted for Durable<'_, S, G, St>
where
    S: SharedState + Serialize + DeserializeOwned + Send + Sync + 'static,
    S::Update: Send,
    G: FlowGraph<S> + Sync,
    St: CheckpointStore + 'static,
{
    fn name(&self) -> &str {
        Durable::name(self)
    }

    fn state_type(&self) -> &'static str {
        state_type_of::<S>()
    }

    fn graph(&self) -> Graph {
        Durable::graph(self)
    }

    fn fields(&self) -> Vec<(&'static str, &'static str)> {
        S::FIELDS
            .iter()
            .map(|field| (field.name(), field.type_name()))
            .collect()
    }

    fn state(&self, thread: String, step: Option<u64>) -> Boxed<'_, Value> {
        Box::pin(async move {
            let state = match step {
                Some(step) => self.state_at(&thread, step).await?,
                None => Durable::state(self, &thread).await?,
            };
            serde_json::to_value(&state).map_err(|error| Error::Save {
                thread: thread.clone(),
                step: step.unwrap_or_default(),
                reason: format!("the state does not serialize: {error}"),
            })
        })
    }

    fn start(
        &self,
        thread: String,
        state: &Value,
        also: Arc<dyn Observer>,
    ) -> Result<Boxed<'_, Boxed<'_, Outcome>>, Error> {
        let state: S = state_from_json(&state.to_string())?;
        Ok(Box::pin(async move {
            let run = self.create_then_run(thread, state, also).await?;
            Ok(Box::pin(run) as Boxed<'_, Outcome>)
        }))
    }

    fn answer(&self, thread: String, key: String, update: &Value) -> Result<Boxed<'_, ()>, Error> {
        let update = read_update::<S>(update)?;
        Ok(Box::pin(async move {
            Durable::answer(self, &thread, &key, update).await
        }))
    }

    fn reply(&self, thread: String, key: String, reply: Value) -> Boxed<'_, ()> {
        Box::pin(async move { Durable::reply(self, &thread, &key, &reply).await })
    }

    fn update(&self, thread: String, update: &Value) -> Result<Boxed<'_, ()>, Error> {
        let update = read_update::<S>(update)?;
        Ok(Box::pin(async move {
            Durable::update(self, &thread, update).await
        }))
    }

    fn resume(&self, thread: String, also: Arc<dyn Observer>) -> Boxed<'_, Outcome> {
        Box::pin(async move {
            let (_, outcome) = self.resume_watched(&thread, &*also).await?;
            Ok(outcome)
        })
    }
}

/// Reads an update of `S` from JSON; an error ([`Error::InvalidState`], which the API reports as
/// an update's) names the path of the bad value.
fn read_update<S: SharedState>(update: &Value) -> Result<S::Update, Error> {
    serde_path_to_error::deserialize(update).map_err(|error| Error::InvalidState {
        path: error.path().to_string(),
        message: error.inner().to_string(),
    })
}
