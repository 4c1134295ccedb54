//! The shape of a flow, for UIs and documentation: nodes, edges, start, nested flows.
//!
//! Built by [`Flow::graph`](crate::Flow::graph) without running anything. It serializes to JSON and
//! renders as a Mermaid flowchart. This module knows nothing about running.

use std::fmt::Write as _;

use serde::Serialize;

/// The action a node returns when it does not choose one; `a >> b` wires it.
///
/// ```
/// # use serde::{Deserialize, Serialize};
/// # use slateflow::{Command, SharedState, flow, node};
/// # #[derive(SharedState, Clone, Debug, Default, Serialize, Deserialize)]
/// # struct Counter { #[reducer(add)] count: u32, label: String }
/// # #[node]
/// # fn count(_: &Counter) -> Command<Counter> { Command::new(Counter::update().add_count(1)) }
/// use slateflow::DEFAULT_ACTION;
///
/// let flow = flow! { count; };
/// // A node that names no action follows "default", which `a >> b` wires.
/// assert_eq!(flow.run_blocking(&mut Counter::default())?, DEFAULT_ACTION);
/// # Ok::<(), slateflow::Error>(())
/// ```
pub const DEFAULT_ACTION: &str = "default";

/// A flow's graph.
///
/// ```
/// # use serde::{Deserialize, Serialize};
/// # use slateflow::{Command, SharedState, flow, node};
/// # #[derive(SharedState, Clone, Debug, Default, Serialize, Deserialize)]
/// # struct Counter { #[reducer(add)] count: u32, label: String }
/// # #[node]
/// # fn count(_: &Counter) -> Command<Counter> { Command::new(Counter::update().add_count(1)) }
/// let (a, b, c) = (count, count, count);
/// let graph = flow! { a >> [b, c]; }.graph();
/// assert_eq!(graph.start, "a");
/// assert_eq!(graph.nodes.iter().map(|node| node.name).collect::<Vec<_>>(), ["a", "b", "c"]);
/// assert_eq!(graph.forks[0].branches, ["b", "c"]);
/// assert!(graph.mermaid().starts_with("flowchart TD"));
/// assert_eq!(serde_json::to_value(&graph).unwrap()["start"], "a");
/// ```
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Graph {
    /// The node a run starts from (or the fork, `[a, b]`).
    pub start: &'static str,
    /// The nodes, in the order the flow first names them.
    pub nodes: Vec<GraphNode>,
    /// The forks: lists of branches that run in parallel. Edges lead to and from a fork by its
    /// name, `[b, c]`.
    pub forks: Vec<Fork>,
    /// The edges, in the order they are written.
    pub edges: Vec<Edge>,
    /// The actions the flow can end with (declared by its nodes, not wired).
    pub actions: &'static [&'static str],
    /// Whether this is the sub-flow of a batch flow, run once per item.
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub batch: bool,
    /// For a batch flow's sub-flow: whether its runs go concurrently, each on its own copy of
    /// the state.
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub concurrent: bool,
}

/// A node of a [`Graph`].
///
/// ```
/// # use serde::{Deserialize, Serialize};
/// # use slateflow::{Command, SharedState, flow, node};
/// # #[derive(SharedState, Clone, Debug, Default, Serialize, Deserialize)]
/// # struct Counter { #[reducer(add)] count: u32, label: String }
/// # #[node]
/// # fn count(_: &Counter) -> Command<Counter> { Command::new(Counter::update().add_count(1)) }
/// let inner = flow! { count; };
/// let graph = flow! { inner; }.graph();
/// let node = &graph.nodes[0];
/// assert_eq!(node.name, "inner");
/// assert_eq!(node.flow.as_ref().map(|inner| inner.nodes[0].name), Some("count"));
/// ```
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct GraphNode {
    /// Its name in the flow.
    pub name: &'static str,
    /// The actions it declares.
    pub actions: &'static [&'static str],
    /// Its own graph, when the node is a nested flow.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub flow: Option<Graph>,
}

/// A fork of a [`Graph`]: branches that run concurrently on the same snapshot of the state, then
/// merge. The edge leaving it (its `"default"` action) is the join.
///
/// ```
/// # use serde::{Deserialize, Serialize};
/// # use slateflow::{Command, SharedState, flow, node};
/// # #[derive(SharedState, Clone, Debug, Default, Serialize, Deserialize)]
/// # struct Counter { #[reducer(add)] count: u32, label: String }
/// # #[node]
/// # fn count(_: &Counter) -> Command<Counter> { Command::new(Counter::update().add_count(1)) }
/// let (b, c, d) = (count, count, count);
/// let graph = flow! { [b, c] >> d; }.graph();
/// assert_eq!((graph.forks[0].name, graph.forks[0].branches), ("[b, c]", &["b", "c"][..]));
/// ```
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Fork {
    /// `[b, c]`: how edges name the fork.
    pub name: &'static str,
    /// The branches, in written order, which is the order their updates merge in.
    pub branches: &'static [&'static str],
}

/// An edge of a [`Graph`]: `from - "action" >> to`.
///
/// ```
/// # use serde::{Deserialize, Serialize};
/// # use slateflow::{Command, SharedState, flow, node};
/// # #[derive(SharedState, Clone, Debug, Default, Serialize, Deserialize)]
/// # struct Counter { #[reducer(add)] count: u32, label: String }
/// # #[node]
/// # fn count(_: &Counter) -> Command<Counter> { Command::new(Counter::update().add_count(1)) }
/// let (a, b) = (count, count);
/// let graph = flow! { a >> b; }.graph();
/// let edge = graph.edges[0];
/// assert_eq!((edge.from, edge.action, edge.to), ("a", "default", "b"));
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
pub struct Edge {
    /// The node the edge leaves.
    pub from: &'static str,
    /// The action that follows it.
    pub action: &'static str,
    /// The node it leads to.
    pub to: &'static str,
}

impl Graph {
    /// The graph as a Mermaid flowchart (`flowchart TD`). Nested flows are subgraphs; `"default"`
    /// edges carry no label; the start node has a rounded shape.
    pub fn mermaid(&self) -> String {
        let mut out = String::from("flowchart TD\n");
        self.write_mermaid(&mut out, "", 1);
        out
    }

    fn write_mermaid(&self, out: &mut String, prefix: &str, depth: usize) {
        let indent = "    ".repeat(depth);
        for node in &self.nodes {
            let id = format!("{prefix}{}", node.name);
            match &node.flow {
                Some(inner) => {
                    let _ = writeln!(out, "{indent}subgraph {id}[\"{}\"]", node.name);
                    inner.write_mermaid(out, &format!("{id}__"), depth + 1);
                    let _ = writeln!(out, "{indent}end");
                }
                None if node.name == self.start => {
                    let _ = writeln!(out, "{indent}{id}([\"{}\"])", node.name);
                }
                None => {
                    let _ = writeln!(out, "{indent}{id}[\"{}\"]", node.name);
                }
            }
        }
        // A fork is drawn as a hexagon with thick edges to its branches, which meet again in a
        // join circle that the fork's own edges leave from.
        let fork_id = |name: &str| {
            self.forks
                .iter()
                .position(|fork| fork.name == name)
                .map(|index| format!("{prefix}fork{}__", index + 1))
        };
        for (index, fork) in self.forks.iter().enumerate() {
            let id = format!("{prefix}fork{}__", index + 1);
            let _ = writeln!(out, "{indent}{id}{{{{\"fork\"}}}}");
            let _ = writeln!(out, "{indent}{id}join((\"join\"))");
            for branch in fork.branches {
                let _ = writeln!(out, "{indent}{id} ==> {prefix}{branch}");
                let _ = writeln!(out, "{indent}{prefix}{branch} ==> {id}join");
            }
        }
        for edge in &self.edges {
            let label = if edge.action == DEFAULT_ACTION {
                String::new()
            } else {
                format!("|\"{}\"|", edge.action)
            };
            let from = fork_id(edge.from).map_or_else(
                || format!("{prefix}{}", edge.from),
                |id| format!("{id}join"),
            );
            let to = fork_id(edge.to).unwrap_or_else(|| format!("{prefix}{}", edge.to));
            let _ = writeln!(out, "{indent}{from} -->{label} {to}");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn node(name: &'static str, actions: &'static [&'static str]) -> GraphNode {
        GraphNode {
            name,
            actions,
            flow: None,
        }
    }

    #[test]
    fn mermaid_labels_named_actions_and_nests_flows() {
        let inner = Graph {
            start: "a",
            nodes: vec![node("a", &["default"]), node("b", &["done"])],
            forks: Vec::new(),
            edges: vec![Edge {
                from: "a",
                action: "default",
                to: "b",
            }],
            actions: &["done"],
            batch: false,
            concurrent: false,
        };
        let outer = Graph {
            start: "route",
            nodes: vec![
                node("route", &["x"]),
                GraphNode {
                    name: "sub",
                    actions: &["done"],
                    flow: Some(inner),
                },
            ],
            forks: Vec::new(),
            edges: vec![Edge {
                from: "route",
                action: "x",
                to: "sub",
            }],
            actions: &["done"],
            batch: false,
            concurrent: false,
        };
        assert_eq!(
            outer.mermaid(),
            "flowchart TD\n    route([\"route\"])\n    subgraph sub[\"sub\"]\n        \
             sub__a([\"a\"])\n        sub__b[\"b\"]\n        sub__a --> sub__b\n    end\n    \
             route -->|\"x\"| sub\n"
        );
    }
}
