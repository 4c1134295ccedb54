//! The checked model of a flow: nodes in order of first mention, edges in source order, the start.

use proc_macro2::Span;
use syn::Ident;

use super::parse::FlowInput;
use crate::errors::Errors;

/// The action `>>` wires.
pub(crate) const DEFAULT_ACTION: &str = "default";

pub(crate) struct Graph {
    /// Each node's first mention: its name and where errors about it belong.
    pub(crate) nodes: Vec<Ident>,
    pub(crate) edges: Vec<Edge>,
    /// Index into `nodes`.
    pub(crate) start: usize,
    pub(crate) exhaustive: Option<Span>,
}

pub(crate) struct Edge {
    pub(crate) from: usize,
    pub(crate) action: String,
    /// The action's literal, or `>>` for the default action.
    pub(crate) action_span: Span,
    pub(crate) to: usize,
}

impl Graph {
    /// The actions wired from `node`, in source order.
    pub(crate) fn wired_actions(&self, node: usize) -> Vec<&str> {
        self.edges
            .iter()
            .filter(|edge| edge.from == node)
            .map(|edge| edge.action.as_str())
            .collect()
    }
}

/// Resolves names into indices; `None` (with an error) when there is no node at all.
pub(crate) fn build(input: &FlowInput, errors: &mut Errors) -> Option<Graph> {
    let mut nodes: Vec<Ident> = Vec::new();
    let index_of = |ident: &Ident, nodes: &mut Vec<Ident>| {
        nodes
            .iter()
            .position(|node| node == ident)
            .unwrap_or_else(|| {
                nodes.push(ident.clone());
                nodes.len() - 1
            })
    };
    let mut edges = Vec::new();
    for chain in &input.chains {
        let mut from = index_of(&chain.head, &mut nodes);
        for link in &chain.links {
            let to = index_of(&link.target, &mut nodes);
            edges.push(Edge {
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
    if nodes.is_empty() {
        if input.dropped_statements {
            // The statements had grammar mistakes, already reported.
            return None;
        }
        errors.push(syn::Error::new(
            input.call_site,
            "a flow needs at least one node: write `flow! { first >> second; }`",
        ));
        return None;
    }
    let start = input.start.as_ref().map_or(0, |start| {
        nodes
            .iter()
            .position(|node| node == start)
            .unwrap_or_else(|| {
                errors.at(
                start,
                format_args!(
                    "`{start}` is not a node of this flow: name it in a statement, or start from \
                     one of the nodes wired below"
                ),
            );
                0
            })
    });
    Some(Graph {
        nodes,
        edges,
        start,
        exhaustive: input.exhaustive,
    })
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
            .map(|edge| (edge.from, edge.action.as_str(), edge.to))
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
        assert_eq!(graph.wired_actions(3), ["revise"]);
        assert_eq!(graph.start, 0);
    }

    #[test]
    fn start_must_name_a_node() {
        let (graph, errors) = graph_of(&quote!(start: b; a >> b;));
        assert_eq!(graph.unwrap().start, 1);
        assert!(errors.is_empty());
        let (_, errors) = graph_of(&quote!(start: z; a >> b;));
        assert_eq!(errors.len(), 1);
        assert!(errors[0].starts_with("`z` is not a node of this flow"));
    }

    #[test]
    fn an_empty_flow_is_an_error() {
        let (graph, errors) = graph_of(&quote!());
        assert!(graph.is_none());
        assert_eq!(errors.len(), 1);
    }
}
