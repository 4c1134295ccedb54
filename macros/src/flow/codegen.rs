//! Code generation for `flow!`.
//!
//! The flow becomes a struct holding the nodes, generic over their types, whose `FlowGraph` impl runs
//! a `match` on the current node and then on `(node, action)`: static dispatch, no boxing, no maps.
//! The checks that need the nodes' types are left to rustc, spanned at the user's tokens: each node
//! passes through a function that requires `Node<S>` of the flow's state, and each edge becomes a
//! `const` assertion that the node declares the action.

use proc_macro2::TokenStream;
use quote::{format_ident, quote, quote_spanned};
use syn::Ident;
use syn::ext::IdentExt;

use super::graph::Graph;

/// The statements and final expression of the flow's block.
pub(crate) fn generate(krate: &TokenStream, graph: &Graph) -> TokenStream {
    let types: Vec<Ident> = (0..graph.nodes.len())
        .map(|index| format_ident!("__N{}", index))
        .collect();
    let fields: Vec<Ident> = (0..graph.nodes.len())
        .map(|index| format_ident!("__node{}", index))
        .collect();
    let names: Vec<String> = graph
        .nodes
        .iter()
        .map(|node| node.unraw().to_string())
        .collect();
    let node_trait = |index: usize| {
        let ty = &types[index];
        quote!(<#ty as #krate::Node<__S>>)
    };

    let steps: Vec<TokenStream> = (0..graph.nodes.len())
        .map(|index| {
            let node = node_trait(index);
            let field = &fields[index];
            let name = &names[index];
            quote! {
                #index => #node::__run(&self.#field, &mut *__state, &mut *__run, #name).await?,
            }
        })
        .collect();
    let checks = checks(krate, graph, &names, &node_trait);
    let terminal = (0..graph.nodes.len()).map(|index| {
        let node = node_trait(index);
        let wired = graph.wired_actions(index);
        quote!((#node::ACTIONS, &[#(#wired),*]))
    });
    let described_nodes = (0..graph.nodes.len()).map(|index| {
        let node = node_trait(index);
        let (field, name) = (&fields[index], &names[index]);
        quote! {
            #krate::graph::GraphNode {
                name: #name,
                actions: #node::ACTIONS,
                flow: #node::__graph(&self.#field),
            },
        }
    });
    let described_edges = graph.edges.iter().map(|edge| {
        let (from, action, to) = (&names[edge.from], &edge.action, &names[edge.to]);
        quote!(#krate::graph::Edge { from: #from, action: #action, to: #to },)
    });
    let wrapped_nodes = graph.nodes.iter().zip(&fields).map(|(node, field)| {
        // Only the function's path carries the node's span: a node over another state is reported
        // there, while `__state` keeps the macro's hygiene.
        let check = quote_spanned!(node.span()=> #krate::__private::node);
        quote!(#field: #check(&__state, #node),)
    });
    let start_name = &names[graph.start];
    let run_loop = run_loop(krate, graph, &steps);

    quote! {
        /// The nodes of a flow built by `flow!`.
        struct __SlateflowGraph<#(#types),*> {
            #(#fields: #types,)*
        }

        #[automatically_derived]
        impl<__S, #(#types),*> #krate::__private::FlowGraph<__S> for __SlateflowGraph<#(#types),*>
        where
            __S: #krate::SharedState,
            #(#types: #krate::Node<__S>,)*
        {
            const TERMINAL: #krate::__private::ActionSet =
                #krate::__private::terminal_actions(&[#(#terminal),*]);

            const CHECKS: () = {
                #(#checks)*
            };

            fn run<'__a>(
                &'__a self,
                __state: &'__a mut __S,
                __run: &'__a mut #krate::__private::RunContext,
                __max_steps: u64,
            ) -> impl ::core::future::Future<
                Output = ::core::result::Result<&'static str, #krate::Error>,
            > + ::core::marker::Send + '__a {
                const NAMES: &[&str] = &[#(#names),*];
                async move {
                    let __first_step = __run.steps();
                    #run_loop
                }
            }

            fn describe(&self) -> #krate::Graph {
                #krate::Graph {
                    start: #start_name,
                    nodes: ::std::vec![#(#described_nodes)*],
                    edges: ::std::vec![#(#described_edges)*],
                    actions: <Self as #krate::__private::FlowGraph<__S>>::ACTIONS,
                }
            }
        }

        let __state = #krate::__private::StateType::new();
        #krate::Flow::__new(
            __SlateflowGraph {
                #(#wrapped_nodes)*
            },
            __state,
        )
    }
}

/// The body of `run` after `__first_step`: a loop of `match` on the node, then on its action.
fn run_loop(krate: &TokenStream, graph: &Graph, steps: &[TokenStream]) -> TokenStream {
    let start = graph.start;
    let routes = graph.edges.iter().map(|edge| {
        let (from, action, to) = (edge.from, &edge.action, edge.to);
        quote!((#from, #action) => #to,)
    });
    let step_limit_check = quote! {
        if __run.steps() - __first_step >= __max_steps {
            return ::core::result::Result::Err(#krate::__private::step_limit(
                __max_steps,
                NAMES[__current],
                __run.steps() + 1,
            ));
        }
    };
    if graph.edges.is_empty() {
        // One node and no edge: no loop to write (and no unreachable code to warn about).
        quote! {
            let __current: usize = #start;
            #step_limit_check
            let __action: &'static str = match __current {
                #(#steps)*
                _ => ::core::unreachable!(),
            };
            ::core::result::Result::Ok(__action)
        }
    } else {
        quote! {
            let mut __current: usize = #start;
            loop {
                #step_limit_check
                let __action: &'static str = match __current {
                    #(#steps)*
                    _ => ::core::unreachable!(),
                };
                __current = match (__current, __action) {
                    #(#routes)*
                    _ => return ::core::result::Result::Ok(__action),
                };
            }
        }
    }
}

/// The `const` assertions: every edge's action is declared by its node and, in an exhaustive flow,
/// every declared action has an edge. Each panics, at compile time, at the offending token.
fn checks(
    krate: &TokenStream,
    graph: &Graph,
    names: &[String],
    node_trait: &dyn Fn(usize) -> TokenStream,
) -> Vec<TokenStream> {
    let mut checks: Vec<TokenStream> = graph
        .edges
        .iter()
        .map(|edge| {
            let node = node_trait(edge.from);
            let (name, action) = (&names[edge.from], &edge.action);
            quote_spanned! {edge.action_span=>
                if !#krate::__private::declares(#node::ACTIONS, #action) {
                    ::core::panic!(
                        "{}",
                        #krate::__private::undeclared_action(#name, #action, #node::ACTIONS).as_str()
                    );
                }
            }
        })
        .collect();
    if graph.exhaustive.is_some() {
        // Nodes without edges are the flow's exits (PocketFlow ends there silently); a node with
        // edges must wire every action it declares (where PocketFlow would warn at run time).
        let routing = graph
            .nodes
            .iter()
            .enumerate()
            .filter(|(index, _)| !graph.wired_actions(*index).is_empty());
        checks.extend(routing.map(|(index, ident)| {
            let node = node_trait(index);
            let name = &names[index];
            let wired = graph.wired_actions(index);
            quote_spanned! {ident.span()=>
                if let ::core::option::Option::Some(__action) =
                    #krate::__private::first_unwired(#node::ACTIONS, &[#(#wired),*])
                {
                    ::core::panic!(
                        "{}",
                        #krate::__private::unwired_action(#name, __action).as_str()
                    );
                }
            }
        }));
    }
    checks
}
