//! Rules about the whole graph, one function per rule. The rules that need the nodes' types
//! (declared actions, state types) are rustc's: see `codegen`.

use super::graph::{Graph, Pos};
use crate::errors::Errors;

/// Runs every rule; errors are sorted by position within each rule.
pub(crate) fn check(graph: &Graph, errors: &mut Errors) {
    no_action_wired_twice(graph, errors);
    every_node_reachable(graph, errors);
}

/// A node's action leads to one place: the same action of the same node (or the join of the same
/// fork) wired twice is an error on the second edge, with "first wired here" on the first.
fn no_action_wired_twice(graph: &Graph, errors: &mut Errors) {
    for (index, edge) in graph.edges.iter().enumerate() {
        let first = graph.edges[..index]
            .iter()
            .find(|earlier| earlier.from == edge.from && earlier.action == edge.action);
        if let Some(first) = first {
            let message = match edge.from {
                Pos::Node(node) => format!(
                    "the action \"{}\" of `{}` is already wired: an action leads to one node; \
                     remove this edge or use another action",
                    edge.action, graph.nodes[node]
                ),
                Pos::Fork(fork) => format!(
                    "the fork `{}` already joins into a node: a fork has one join; remove this edge",
                    graph.forks[fork].name
                ),
            };
            errors.push(syn::Error::new(edge.action_span, message));
            errors.push(syn::Error::new(first.action_span, "first wired here"));
        }
    }
}

/// Every node can be reached from the start, or it could never run. Reaching a fork reaches its
/// branches, but not their own edges: those are followed only where the node runs as a step.
fn every_node_reachable(graph: &Graph, errors: &mut Errors) {
    let mut reached = vec![false; graph.nodes.len()];
    let mut reached_forks = vec![false; graph.forks.len()];
    let mut visit = |pos: Pos, pending: &mut Vec<Pos>| {
        let seen = match pos {
            Pos::Node(node) => std::mem::replace(&mut reached[node], true),
            Pos::Fork(fork) => {
                for &branch in &graph.forks[fork].branches {
                    reached[branch] = true;
                }
                std::mem::replace(&mut reached_forks[fork], true)
            }
        };
        if !seen {
            pending.push(pos);
        }
    };
    let mut queue = Vec::new();
    visit(graph.start, &mut queue);
    while let Some(pos) = queue.pop() {
        for edge in graph.edges.iter().filter(|edge| edge.from == pos) {
            visit(edge.to, &mut queue);
        }
    }
    let start = match graph.start {
        Pos::Node(node) => format!("node `{}`", graph.nodes[node]),
        Pos::Fork(fork) => format!("fork `{}`", graph.forks[fork].name),
    };
    for (node, reached) in graph.nodes.iter().zip(reached) {
        if !reached {
            errors.at(
                node,
                format_args!(
                    "`{node}` is unreachable from the start {start}, so it would never run: \
                     wire an edge to it, or remove it"
                ),
            );
        }
    }
}

#[cfg(test)]
mod tests {
    use quote::quote;

    use super::*;
    use crate::flow::graph::build;
    use crate::flow::parse::parse;

    fn errors_of(tokens: &proc_macro2::TokenStream) -> Vec<String> {
        let mut errors = Errors::default();
        let input = parse(quote!((::slateflow) #tokens), &mut errors);
        let graph = build(&input, &mut errors).unwrap();
        check(&graph, &mut errors);
        errors.messages()
    }

    #[test]
    fn a_second_edge_for_an_action_points_at_both() {
        let errors = errors_of(&quote! {
            a - "x" >> b;
            a - "x" >> c;
            a >> b;
            a >> c;
        });
        assert_eq!(errors.len(), 4, "{errors:?}");
        assert!(errors[0].starts_with("the action \"x\" of `a` is already wired"));
        assert_eq!(errors[1], "first wired here");
        assert!(errors[2].starts_with("the action \"default\" of `a` is already wired"));
    }

    #[test]
    fn unreachable_nodes_are_named() {
        let errors = errors_of(&quote! {
            a >> b;
            c >> d;
            d >> a;
        });
        assert_eq!(errors.len(), 2, "{errors:?}");
        assert!(errors[0].starts_with("`c` is unreachable from the start node `a`"));
        assert!(errors[1].starts_with("`d` is unreachable"));
    }

    #[test]
    fn reaching_a_fork_reaches_its_branches_but_not_their_edges() {
        assert!(errors_of(&quote!(a >> [b, c] >> d;)).is_empty());
        let errors = errors_of(&quote! {
            a >> [b, c] >> d;
            b >> e;
        });
        assert_eq!(errors.len(), 1, "{errors:?}");
        assert!(errors[0].starts_with("`e` is unreachable from the start node `a`"));
        let errors = errors_of(&quote!([a, b] >> c; d >> a;));
        assert!(errors[0].starts_with("`d` is unreachable from the start fork `[a, b]`"));
    }

    #[test]
    fn a_fork_joins_once() {
        let errors = errors_of(&quote! {
            a >> [b, c] >> d;
            [b, c] >> e;
        });
        assert_eq!(errors.len(), 2, "{errors:?}");
        assert!(errors[0].starts_with("the fork `[b, c]` already joins into a node"));
    }

    #[test]
    fn cycles_and_start_override_are_fine() {
        assert!(errors_of(&quote!(a >> b; b - "again" >> a;)).is_empty());
        assert!(errors_of(&quote!(start: c; a >> b; c >> a;)).is_empty());
    }
}
