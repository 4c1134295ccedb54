//! Agents that route: the actions an [`Agent`](super::Agent) may hand the work on with
//! ([`Routes`], made by [`routes!`](crate::routes)), and what a turn did, for the state that
//! keeps it ([`TurnSummary`], [`Counters`]).

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

use crate::agent::model::ToolSpec;
use crate::reducer::Append;

/// The actions an [`Agent`](super::Agent) may end its turn with, as a type: the model chooses
/// one, with its reason, by calling the tool [`ROUTE_TOOL`]. Declare one with
/// [`routes!`](crate::routes), which also lets `flow!` check the agent's edges in `cargo check`;
/// give it to an agent with [`Agent::routes`](super::Agent::routes).
///
/// ```
/// use slateflow::agent::Routes;
///
/// slateflow::routes! {
///     /// Where the supervisor sends the work next.
///     pub struct Team = ["research", "write", "finish"];
/// }
/// assert_eq!(Team::ACTIONS, ["research", "write", "finish"]);
/// ```
pub trait Routes: Send + Sync + 'static {
    /// The actions, in the order the model is offered them.
    const ACTIONS: &'static [&'static str];
}

/// The routes of an agent that does not route: it answers, and its step ends with `"default"`.
///
/// ```
/// use slateflow::agent::{Answer, Routes};
///
/// assert_eq!(Answer::ACTIONS, ["default"]);
/// ```
#[derive(Debug, Clone, Copy, Default)]
pub struct Answer;

impl Routes for Answer {
    const ACTIONS: &'static [&'static str] = &["default"];
}

impl<S> crate::node::actions::StaticActions<S> for Answer {}
#[diagnostic::do_not_recommend]
impl<S> crate::node::actions::DeclaresAction<S, { crate::text::action_key("default") }> for Answer {}

/// Declares the actions an agent may route to: a unit struct implementing [`Routes`], whose
/// actions `flow!` checks in `cargo check` (a wired action the routes do not hold is an error at
/// the edge).
///
/// ```
/// slateflow::routes! {
///     /// Where a triage agent sends an alert.
///     pub struct Triage = ["escalate", "close"];
/// }
/// ```
///
/// ```compile_fail
/// # use serde::{Deserialize, Serialize};
/// # use slateflow::agent::{Agent, message::{Histories, Message}, model::ScriptedModel};
/// # use slateflow::{Command, SharedState, flow, node};
/// # #[derive(SharedState, Clone, Debug, Default, Serialize, Deserialize)]
/// # #[slateflow(conversation)]
/// # struct Desk { #[reducer(append)] messages: Vec<Message>, #[reducer(append)] histories: Histories }
/// # #[node] fn page(_: &Desk) -> Command<Desk> { Command::default() }
/// slateflow::routes! { struct Triage = ["escalate", "close"]; }
/// let triage = Agent::new(ScriptedModel::new()).routes::<Triage>();
/// // "page" is not one of the routes: an error at the edge.
/// let _ = flow! { triage - "page" >> page; };
/// ```
#[macro_export]
macro_rules! routes {
    ($(#[$meta:meta])* $vis:vis struct $name:ident = [$($action:literal),+ $(,)?];) => {
        $(#[$meta])*
        #[derive(Debug, Clone, Copy, Default)]
        $vis struct $name;

        impl $crate::agent::Routes for $name {
            const ACTIONS: &'static [&'static str] = &[$($action),+];
        }

        impl<__S> $crate::__private::StaticActions<__S> for $name {}

        $(
            #[diagnostic::do_not_recommend]
            impl<__S> $crate::__private::DeclaresAction<__S, { $crate::__private::action_key($action) }>
                for $name {}
        )+
    };
}

/// The name of the tool a routing agent's model calls to hand the work on:
/// `route({"to": <action>, "reason": <text>})`.
///
/// ```
/// assert_eq!(slateflow::agent::ROUTE_TOOL, "route");
/// ```
pub const ROUTE_TOOL: &str = "route";

/// The tool a model of an agent with `actions` calls to choose one.
pub(super) fn route_spec(actions: &[&str]) -> ToolSpec {
    ToolSpec {
        name: ROUTE_TOOL.into(),
        description: "Hand the work on: choose where it goes next, and say why in a sentence. \
                      Call this once you are done."
            .into(),
        parameters: json!({
            "type": "object",
            "properties": {
                "to": {"type": "string", "enum": actions},
                "reason": {"type": "string"},
            },
            "required": ["to", "reason"],
        }),
    }
}

/// The action and reason of a call of [`ROUTE_TOOL`], or what to tell the model about it.
pub(super) fn read_route(
    arguments: &str,
    actions: &'static [&'static str],
) -> Result<(&'static str, String), String> {
    let choices = || {
        actions
            .iter()
            .map(|action| format!("\"{action}\""))
            .collect::<Vec<_>>()
            .join(", ")
    };
    let value: Value = serde_json::from_str(arguments).map_err(|error| {
        format!("the arguments of `{ROUTE_TOOL}` are not valid JSON ({error}); call it again")
    })?;
    let to = value.get("to").and_then(Value::as_str).unwrap_or_default();
    let action = actions
        .iter()
        .find(|action| **action == to)
        .ok_or_else(|| format!("there is no route \"{to}\"; `to` is one of {}", choices()))?;
    let reason = value
        .get("reason")
        .and_then(Value::as_str)
        .unwrap_or_default()
        .to_string();
    Ok((action, reason))
}

/// What one agent turn did, beside its messages: what [`Conversation::record_turn`] reads to
/// write the routing reason and the counters, for a state that keeps them.
///
/// [`Conversation::record_turn`]: super::Conversation::record_turn
///
/// ```
/// use slateflow::agent::TurnSummary;
///
/// let turn = TurnSummary {
///     agent: "supervisor".into(),
///     action: "research",
///     reason: Some("We need sources first.".into()),
///     model_calls: 2,
///     tool_calls: 1,
///     tool_rounds: 1,
/// };
/// assert_eq!(turn.counts().model_calls, 2);
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TurnSummary {
    /// The agent's path in the flow (the key of its history).
    pub agent: String,
    /// The action the turn ends with: the route chosen, or `"default"`.
    pub action: &'static str,
    /// Why the model chose the route, when it routed.
    pub reason: Option<String>,
    /// Model replies the turn used (a reply kept from before a crash counts; its retries do not).
    pub model_calls: u32,
    /// Tool calls answered (not counting the route).
    pub tool_calls: u32,
    /// Rounds of tool calls.
    pub tool_rounds: u32,
}

impl TurnSummary {
    /// The turn's counts, as one agent's entry of [`Counters`].
    pub fn counts(&self) -> AgentCounts {
        AgentCounts {
            turns: 1,
            model_calls: u64::from(self.model_calls),
            tool_calls: u64::from(self.tool_calls),
            tool_rounds: u64::from(self.tool_rounds),
        }
    }
}

/// One agent's counts: turns, model calls, tool calls and tool rounds.
///
/// ```
/// use slateflow::agent::AgentCounts;
///
/// let counts = AgentCounts { turns: 1, model_calls: 3, tool_calls: 2, tool_rounds: 2 };
/// assert_eq!(counts.model_calls, 3);
/// ```
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct AgentCounts {
    /// Turns taken.
    pub turns: u64,
    /// Model replies used.
    pub model_calls: u64,
    /// Tool calls answered.
    pub tool_calls: u64,
    /// Rounds of tool calls.
    pub tool_rounds: u64,
}

/// Per-agent counts, keyed by each agent's path in the flow: a state field with
/// `#[reducer(append)]`, named in `#[slateflow(conversation(counters))]`, which every agent turn
/// adds to. Appending adds the counts (two branches of a fork that both ran agents add up).
///
/// ```
/// use serde::{Deserialize, Serialize};
/// use slateflow::agent::Counters;
/// use slateflow::agent::message::{Histories, Message};
/// use slateflow::SharedState;
///
/// #[derive(SharedState, Clone, Debug, Default, Serialize, Deserialize)]
/// #[slateflow(conversation(routing_reason, counters))]
/// struct Desk {
///     #[reducer(append)]
///     messages: Vec<Message>,
///     #[reducer(append)]
///     histories: Histories,
///     /// Why the last routing agent chose its route.
///     routing_reason: String,
///     #[reducer(append)]
///     counters: Counters,
/// }
///
/// let mut desk = Desk::default();
/// desk.apply(Desk::update().append_counters(Counters::of("writer", slateflow::agent::AgentCounts {
///     turns: 1, model_calls: 2, ..Default::default()
/// })));
/// assert_eq!(desk.counters.get("writer").model_calls, 2);
/// assert_eq!(desk.counters.get("nobody").turns, 0);
/// ```
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(transparent)]
pub struct Counters(BTreeMap<String, AgentCounts>);

impl Counters {
    /// An update that adds `counts` to `agent`'s.
    pub fn of(agent: impl Into<String>, counts: AgentCounts) -> Self {
        Self(BTreeMap::from([(agent.into(), counts)]))
    }

    /// The counts of `agent` (zero when it took no turn).
    pub fn get(&self, agent: &str) -> AgentCounts {
        self.0.get(agent).copied().unwrap_or_default()
    }

    /// Every agent's counts, by path.
    pub fn iter(&self) -> impl Iterator<Item = (&str, &AgentCounts)> {
        self.0
            .iter()
            .map(|(agent, counts)| (agent.as_str(), counts))
    }
}

impl Append for Counters {
    /// An agent's path and counts to add.
    type Item = (String, AgentCounts);

    fn append(&mut self, new: Self) {
        for item in new.0 {
            self.push_item(item);
        }
    }

    fn push_item(&mut self, (agent, counts): (String, AgentCounts)) {
        let entry = self.0.entry(agent).or_default();
        entry.turns += counts.turns;
        entry.model_calls += counts.model_calls;
        entry.tool_calls += counts.tool_calls;
        entry.tool_rounds += counts.tool_rounds;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_route_is_read_or_refused_with_the_choices() {
        const ACTIONS: &[&str] = &["research", "finish"];
        assert_eq!(
            read_route(r#"{"to": "finish", "reason": "done"}"#, ACTIONS),
            Ok(("finish", "done".to_string()))
        );
        let wrong = read_route(r#"{"to": "publish"}"#, ACTIONS).unwrap_err();
        assert_eq!(
            wrong,
            "there is no route \"publish\"; `to` is one of \"research\", \"finish\""
        );
        assert!(
            read_route("{", ACTIONS)
                .unwrap_err()
                .contains("not valid JSON")
        );
    }

    #[test]
    fn counters_add_up() {
        let mut counters = Counters::of(
            "a",
            AgentCounts {
                turns: 1,
                model_calls: 2,
                tool_calls: 1,
                tool_rounds: 1,
            },
        );
        counters.append(Counters::of(
            "a",
            AgentCounts {
                turns: 1,
                model_calls: 1,
                ..AgentCounts::default()
            },
        ));
        counters.append(Counters::of("b", AgentCounts::default()));
        assert_eq!(counters.get("a").turns, 2);
        assert_eq!(counters.get("a").model_calls, 3);
        assert_eq!(counters.iter().count(), 2);
    }
}
