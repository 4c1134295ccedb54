//! The checked model of a flow: nodes in order of first mention, forks, edges in source order, the
//! start.

use proc_macro2::Span;
use syn::Ident;

use super::parse::{FlowInput, Target, fork_name};
use crate::errors::Errors;

/// The action `>>` wires.
pub(crate) const DEFAULT_ACTION: &str = "default";

pub(crate) struct Graph {
    /// Each node's first mention: its name and where errors about it belong.
    pub(crate) nodes: Vec<Ident>,
    /// Whether each node runs as a step of its own somewhere (it is named outside a fork), as
    /// opposed to only as a branch.
    pub(crate) steps: Vec<bool>,
    /// The forks, each a distinct list of branches (the same list written twice is one fork).
    pub(crate) forks: Vec<Fork>,
    pub(crate) edges: Vec<Edge>,
    pub(crate) start: Pos,
    pub(crate) exhaustive: Option<Span>,
}

/// A place a run can be at: a node, or a fork.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub(crate) enum Pos {
    Node(usize),
    Fork(usize),
}

pub(crate) struct Fork {
    /// Indices into `nodes`, in written order (the merge order).
    pub(crate) branches: Vec<usize>,
    /// `[b, c]`.
    pub(crate) name: String,
    /// The first mention's first branch, as written there: where errors about the fork go.
    pub(crate) first_branch: Ident,
}

pub(crate) struct Edge {
    pub(crate) from: Pos,
    pub(crate) action: String,
    /// The action's literal, or `>>` for the default action.
    pub(crate) action_span: Span,
    pub(crate) to: Pos,
}

impl Graph {
    /// The actions wired from `from`, in source order.
    #[cfg(test)]
    pub(crate) fn wired_actions(&self, from: Pos) -> Vec<&str> {
        self.edges
            .iter()
            .filter(|edge| edge.from == from)
            .map(|edge| edge.action.as_str())
            .collect()
    }

    /// The actions wired from each position (by [`index`](Self::index)), in source order: one
    /// pass over the edges, so that a large flow costs linear time.
    pub(crate) fn wired_by_position(&self) -> Vec<Vec<&str>> {
        let mut wired = vec![Vec::new(); self.nodes.len() + self.forks.len()];
        for edge in &self.edges {
            wired[self.index(edge.from)].push(edge.action.as_str());
        }
        wired
    }

    /// The position's index in the generated run loop: nodes first, then forks.
    pub(crate) fn index(&self, pos: Pos) -> usize {
        match pos {
            Pos::Node(node) => node,
            Pos::Fork(fork) => self.nodes.len() + fork,
        }
    }
}

/// Resolves names into indices; `None` (with an error) when there is no node at all.
pub(crate) fn build(input: &FlowInput, errors: &mut Errors) -> Option<Graph> {
    let mut graph = Graph {
        nodes: Vec::new(),
        steps: Vec::new(),
        forks: Vec::new(),
        edges: Vec::new(),
        start: Pos::Node(0),
        exhaustive: input.exhaustive,
    };
    let mut first: Option<Pos> = None;
    for chain in &input.chains {
        let mut from = graph.position(&chain.head, errors);
        first.get_or_insert(from);
        for link in &chain.links {
            let to = graph.position(&link.target, errors);
            graph.edges.push(Edge {
                from,
                action: link
                    .action
                    .as_ref()
                    .map_or_else(|| DEFAULT_ACTION.to_string(), syn::LitStr::value),
                action_span: link.action_span(),
                to,
            });
            from = to;
        }
    }
    let Some(first) = first else {
        if !input.dropped_statements {
            errors.push(syn::Error::new(
                input.call_site,
                "a flow needs at least one node: write `flow! { first >> second; }`",
            ));
        }
        // Otherwise the statements had grammar mistakes, already reported.
        return None;
    };
    graph.start = input.start.as_ref().map_or(first, |start| {
        if let Some(node) = graph.nodes.iter().position(|node| node == start) {
            Pos::Node(node)
        } else {
            errors.at(
                start,
                format_args!(
                    "`{start}` is not a node of this flow: name it in a statement, or start \
                     from one of the nodes wired below"
                ),
            );
            first
        }
    });
    if let (Some(_), Pos::Node(node)) = (&input.start, graph.start) {
        graph.steps[node] = true;
    }
    Some(graph)
}

impl Graph {
    fn node(&mut self, ident: &Ident, as_step: bool) -> usize {
        let index = self
            .nodes
            .iter()
            .position(|node| node == ident)
            .unwrap_or_else(|| {
                self.nodes.push(ident.clone());
                self.steps.push(false);
                self.nodes.len() - 1
            });
        self.steps[index] |= as_step;
        index
    }

    fn position(&mut self, target: &Target, errors: &mut Errors) -> Pos {
        match target {
            Target::Node(node) => Pos::Node(self.node(node, true)),
            Target::Fork(fork) => {
                let mut branches: Vec<usize> = Vec::new();
                for branch in &fork.branches {
                    let index = self.node(branch, false);
                    if branches.contains(&index) {
                        errors.at(
                            branch,
                            format_args!(
                                "`{branch}` is already a branch of this fork: each branch runs \
                                 once; remove this one"
                            ),
                        );
                    } else {
                        branches.push(index);
                    }
                }
                let existing = self
                    .forks
                    .iter()
                    .position(|known| known.branches == branches);
                Pos::Fork(existing.unwrap_or_else(|| {
                    self.forks.push(Fork {
                        branches,
                        name: fork_name(&fork.branches),
                        first_branch: fork.branches[0].clone(),
                    });
                    self.forks.len() - 1
                }))
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use quote::quote;

    use super::*;
    use crate::flow::parse::parse;

    fn graph_of(tokens: &proc_macro2::TokenStream) -> (Option<Graph>, Vec<String>) {
        let mut errors = Errors::default();
        let input = parse(quote!((::slateflow) #tokens), &mut errors);
        let graph = build(&input, &mut errors);
        (graph, errors.messages())
    }

    #[test]
    fn nodes_in_first_mention_order_and_chains_continue_from_the_right() {
        let (graph, errors) = graph_of(&quote! {
            classify >> route;
            route - "intrusion" >> investigate >> report;
            report - "revise" >> investigate;
        });
        assert!(errors.is_empty());
        let graph = graph.unwrap();
        let names: Vec<String> = graph.nodes.iter().map(ToString::to_string).collect();
        assert_eq!(names, ["classify", "route", "investigate", "report"]);
        let edges: Vec<(usize, &str, usize)> = graph
            .edges
            .iter()
            .map(|edge| {
                (
                    graph.index(edge.from),
                    edge.action.as_str(),
                    graph.index(edge.to),
                )
            })
            .collect();
        assert_eq!(
            edges,
            [
                (0, "default", 1),
                (1, "intrusion", 2),
                (2, "default", 3),
                (3, "revise", 2)
            ]
        );
        assert_eq!(graph.wired_actions(Pos::Node(3)), ["revise"]);
        assert_eq!(graph.start, Pos::Node(0));
    }

    #[test]
    fn start_must_name_a_node() {
        let (graph, errors) = graph_of(&quote!(start: b; a >> b;));
        assert_eq!(graph.unwrap().start, Pos::Node(1));
        assert!(errors.is_empty());
        let (_, errors) = graph_of(&quote!(start: z; a >> b;));
        assert_eq!(errors.len(), 1);
        assert!(errors[0].starts_with("`z` is not a node of this flow"));
    }

    #[test]
    fn forks_are_positions_named_by_their_branches() {
        let (graph, errors) = graph_of(&quote! {
            a >> [b, c] >> d;
            d - "again" >> [b, c];
            d - "other" >> [c, b];
        });
        assert!(errors.is_empty(), "{errors:?}");
        let graph = graph.unwrap();
        assert_eq!(
            graph.forks.len(),
            2,
            "the same list is the same fork; order matters"
        );
        assert_eq!(graph.forks[0].name, "[b, c]");
        assert_eq!(graph.forks[0].branches, [1, 2]);
        assert_eq!(
            graph.steps,
            [true, false, false, true],
            "b and c only run as branches"
        );
        assert_eq!(graph.wired_actions(Pos::Fork(0)), ["default"]);
        assert_eq!(graph.edges[2].to, Pos::Fork(0));
        assert_eq!(graph.index(Pos::Fork(1)), 5);
    }

    #[test]
    fn a_node_twice_in_one_fork_is_an_error() {
        let (graph, errors) = graph_of(&quote!(a >> [b, c, b];));
        assert_eq!(errors.len(), 1, "{errors:?}");
        assert!(errors[0].starts_with("`b` is already a branch of this fork"));
        assert_eq!(graph.unwrap().forks[0].branches, [1, 2]);
    }

    #[test]
    fn an_empty_flow_is_an_error() {
        let (graph, errors) = graph_of(&quote!());
        assert!(graph.is_none());
        assert_eq!(errors.len(), 1);
    }
}
