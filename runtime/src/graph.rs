//! The shape of a flow, for UIs and documentation: nodes, edges, start, nested flows.
//!
//! Built by [`Flow::graph`](crate::Flow::graph) without running anything. It serializes to JSON and
//! renders as a Mermaid flowchart. This module knows nothing about running.

use std::fmt::Write as _;

use serde::Serialize;

use crate::node::DEFAULT_ACTION;

/// A flow's graph.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Graph {
    /// The node a run starts from.
    pub start: &'static str,
    /// The nodes, in the order the flow first names them.
    pub nodes: Vec<GraphNode>,
    /// The edges, in the order they are written.
    pub edges: Vec<Edge>,
    /// The actions the flow can end with (declared by its nodes, not wired).
    pub actions: &'static [&'static str],
}

/// A node of a [`Graph`].
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

/// An edge of a [`Graph`]: `from - "action" >> to`.
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
        for edge in &self.edges {
            let label = if edge.action == DEFAULT_ACTION {
                String::new()
            } else {
                format!("|\"{}\"|", edge.action)
            };
            let _ = writeln!(
                out,
                "{indent}{prefix}{} -->{label} {prefix}{}",
                edge.from, edge.to
            );
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
            edges: vec![Edge {
                from: "a",
                action: "default",
                to: "b",
            }],
            actions: &["done"],
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
            edges: vec![Edge {
                from: "route",
                action: "x",
                to: "sub",
            }],
            actions: &["done"],
        };
        assert_eq!(
            outer.mermaid(),
            "flowchart TD\n    route([\"route\"])\n    subgraph sub[\"sub\"]\n        \
             sub__a([\"a\"])\n        sub__b[\"b\"]\n        sub__a --> sub__b\n    end\n    \
             route -->|\"x\"| sub\n"
        );
    }
}
