//! Code generation for `flow!`.
//!
//! The flow becomes a struct holding the nodes, generic over their types, whose `FlowGraph` impl
//! gives the runtime only the static parts: the position names and the start, a `match` from
//! `(position, action)` to the next position, the actions wired and declared at each position, and
//! a `match` that runs the node (or fork) at a position. The runtime owns the loop, step limits,
//! resume and pauses. Static dispatch: no boxing, no maps.
//! The checks that need the nodes' types are left to rustc, spanned at the user's tokens: each node
//! passes through a function that requires `Node<S>` of the flow's state, and each edge becomes a
//! `const` assertion that the node declares the action.

use proc_macro2::TokenStream;
use quote::{format_ident, quote, quote_spanned};
use syn::Ident;
use syn::ext::IdentExt;

use super::graph::{Fork, Graph, Pos};

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
    let locals = Locals::new();
    let Locals {
        state,
        runner,
        position,
        ..
    } = &locals;

    let steps = step_arms(krate, graph, &fields, &names, &node_trait, &locals);
    let wired_by_position = graph.wired_by_position();
    let checks = checks(krate, graph, &names, &node_trait, &wired_by_position);
    let terminal = terminal(krate, graph, &node_trait, &wired_by_position);
    let position_names: Vec<&str> = names
        .iter()
        .map(String::as_str)
        .chain(graph.forks.iter().map(|fork| fork.name.as_str()))
        .collect();
    let describe = describe(krate, graph, &fields, &names, &position_names, &node_trait);
    let marker = &locals.marker;
    let wrapped_nodes = graph.nodes.iter().zip(&fields).map(|(node, field)| {
        // Only the function's path carries the node's span: a node over another state is reported
        // there, while the marker keeps the macro's hygiene.
        let check = quote_spanned!(node.span()=> #krate::__private::node);
        quote!(#field: #check(&#marker, #node),)
    });
    // A fork needs a `Clone` state (a nested flow in a branch runs on a copy): said at the fork.
    // The first branch, as written in the fork, is the argument rustc blames for the bound. The
    // check borrows it before the graph takes it.
    let fork_state_checks = graph.forks.iter().map(|fork| {
        let branch = &fork.first_branch;
        let borrowed = quote_spanned!(branch.span()=> &#branch);
        quote!(#krate::__private::fork_branch(&#marker, #borrowed);)
    });
    let fork_bound = (!graph.forks.is_empty()).then(|| quote!(__S: #krate::parallel::ForkState,));
    let usize_ty = quote!(::core::primitive::usize);
    let tables = tables(krate, graph, &node_trait, &wired_by_position, &locals);
    let guards = crate::spans::local_guards(locals.all());
    quote! {
        #guards

        /// The nodes of a flow built by `flow!`.
        struct __SlateflowGraph<#(#types),*> {
            #(#fields: #types,)*
        }

        #[automatically_derived]
        impl<__S, #(#types),*> #krate::flow::FlowGraph<__S> for __SlateflowGraph<#(#types),*>
        where
            __S: #krate::SharedState,
            #fork_bound
            #(#types: #krate::Node<__S>,)*
        {
            const TERMINAL: #krate::__private::ActionSet =
                #krate::__private::terminal_actions(&[#(#terminal),*]);

            const CHECKS: () = {
                #(#checks)*
            };

            const NAMES: &'static [&'static str] = &[#(#position_names),*];

            #tables

            fn step<'__a, __R: #krate::__private::Runner<__S>>(
                &'__a self,
                #position: #usize_ty,
                #runner: &'__a mut __R,
                #state: &'__a mut __S,
            ) -> impl ::core::future::Future<
                Output = ::core::result::Result<&'static str, #krate::Error>,
            > + ::core::marker::Send + '__a {
                async move {
                    match #position {
                        #(#steps)*
                        _ => ::core::unreachable!(),
                    }
                }
            }

            fn describe(&self) -> #krate::Graph {
                #describe
            }
        }

        let #marker = #krate::__private::StateType::new();
        #(#fork_state_checks)*
        #krate::Flow::__new(
            __SlateflowGraph {
                #(#wrapped_nodes)*
            },
            #marker,
        )
    }
}

/// The arms of `step`'s `match`: each node that runs as a step, then each fork.
fn step_arms(
    krate: &TokenStream,
    graph: &Graph,
    fields: &[Ident],
    names: &[String],
    node_trait: &dyn Fn(usize) -> TokenStream,
    locals: &Locals,
) -> Vec<TokenStream> {
    let Locals { state, runner, .. } = locals;
    let mut steps: Vec<TokenStream> = (0..graph.nodes.len())
        .filter(|&index| graph.steps[index])
        .map(|index| {
            let node = node_trait(index);
            let field = &fields[index];
            let name = &names[index];
            quote! {
                #index => #node::__run(&self.#field, #runner, #state, #name).await,
            }
        })
        .collect();
    steps.extend(graph.forks.iter().enumerate().map(|(fork, definition)| {
        let position = graph.index(Pos::Fork(fork));
        fork_step(
            krate, definition, position, fields, names, node_trait, locals,
        )
    }));
    steps
}

/// The routing tables: the start, where each `(position, action)` leads, and the actions wired
/// and declared at each position.
fn tables(
    krate: &TokenStream,
    graph: &Graph,
    node_trait: &dyn Fn(usize) -> TokenStream,
    wired_by_position: &[Vec<&str>],
    locals: &Locals,
) -> TokenStream {
    let Locals {
        position, action, ..
    } = locals;
    let usize_ty = quote!(::core::primitive::usize);
    let start = graph.index(graph.start);
    let routes = graph.edges.iter().map(|edge| {
        let (from, action, to) = (graph.index(edge.from), &edge.action, graph.index(edge.to));
        quote!((#from, #action) => ::core::option::Option::Some(#to),)
    });
    let wired = wired_by_position
        .iter()
        .enumerate()
        .filter(|(_, actions)| !actions.is_empty())
        .map(|(index, actions)| quote!(#index => &[#(#actions),*],));
    let declared = (0..graph.nodes.len())
        .map(|index| {
            let node = node_trait(index);
            quote!(#index => #node::ACTIONS,)
        })
        .chain((0..graph.forks.len()).map(|fork| {
            let position = graph.index(Pos::Fork(fork));
            quote!(#position => &[#krate::DEFAULT_ACTION],)
        }));

    quote! {
            const START: #usize_ty = #start;

            fn route(#position: #usize_ty, #action: &str) -> ::core::option::Option<#usize_ty> {
                match (#position, #action) {
                    #(#routes)*
                    _ => ::core::option::Option::None,
                }
            }

            fn wired(#position: #usize_ty) -> &'static [&'static str] {
                match #position {
                    #(#wired)*
                    _ => &[],
                }
            }

            fn declared(#position: #usize_ty) -> &'static [&'static str] {
                match #position {
                    #(#declared)*
                    _ => &[],
                }
            }
    }
}

/// The generated code's own local names, spanned with mixed-site hygiene (invisible to the user's
/// code) and guarded by [`local_guards`](crate::spans::local_guards) against the user's items of
/// the same name.
struct Locals {
    marker: Ident,
    state: Ident,
    runner: Ident,
    position: Ident,
    action: Ident,
    before: Ident,
    joined: Ident,
    shared: Ident,
    branches: Ident,
}

impl Locals {
    fn all(&self) -> [&Ident; 9] {
        [
            &self.marker,
            &self.state,
            &self.runner,
            &self.position,
            &self.action,
            &self.before,
            &self.joined,
            &self.shared,
            &self.branches,
        ]
    }

    fn new() -> Self {
        let local = |name: &str| Ident::new(name, proc_macro2::Span::mixed_site());
        Self {
            marker: local("__state_type"),
            state: local("__state"),
            runner: local("__runner"),
            position: local("__position"),
            action: local("__action"),
            before: local("__before"),
            joined: local("__joined"),
            shared: local("__shared"),
            branches: local("__branches"),
        }
    }
}

/// For `terminal_actions`: each step node's declared and wired actions, and `"default"` for each
/// fork without a join (a fork ends the flow with its action). Nodes that only run as branches do
/// not end the flow.
fn terminal(
    krate: &TokenStream,
    graph: &Graph,
    node_trait: &dyn Fn(usize) -> TokenStream,
    wired_by_position: &[Vec<&str>],
) -> Vec<TokenStream> {
    let mut terminal: Vec<TokenStream> = (0..graph.nodes.len())
        .filter(|&index| graph.steps[index])
        .map(|index| {
            let node = node_trait(index);
            let wired = &wired_by_position[index];
            quote!((#node::ACTIONS, &[#(#wired),*]))
        })
        .collect();
    terminal.extend(
        (0..graph.forks.len())
            .filter(|&fork| wired_by_position[graph.index(Pos::Fork(fork))].is_empty())
            .map(|_| quote!((&[#krate::DEFAULT_ACTION], &[]))),
    );
    terminal
}

/// The body of `describe`: the graph as the runtime's `Graph`.
fn describe(
    krate: &TokenStream,
    graph: &Graph,
    fields: &[Ident],
    names: &[String],
    position_names: &[&str],
    node_trait: &dyn Fn(usize) -> TokenStream,
) -> TokenStream {
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
    let described_forks = graph.forks.iter().map(|fork| {
        let (name, branches) = (&fork.name, fork.branches.iter().map(|&index| &names[index]));
        quote!(#krate::graph::Fork { name: #name, branches: &[#(#branches),*] },)
    });
    let described_edges = graph.edges.iter().map(|edge| {
        let from = position_names[graph.index(edge.from)];
        let to = position_names[graph.index(edge.to)];
        let action = &edge.action;
        quote!(#krate::graph::Edge { from: #from, action: #action, to: #to },)
    });
    let start_name = position_names[graph.index(graph.start)];
    quote! {
        #krate::Graph {
            start: #start_name,
            nodes: ::std::vec![#(#described_nodes)*],
            forks: ::std::vec![#(#described_forks)*],
            edges: ::std::vec![#(#described_edges)*],
            actions: <Self as #krate::flow::FlowGraph<__S>>::ACTIONS,
        }
    }
}

/// The `step` arm of a fork: the run starts it (step limit, numbering), its branches run
/// concurrently on a shared borrow of the state, their updates merge in written order, and the run
/// applies the result once; the fork's action is "default".
fn fork_step(
    krate: &TokenStream,
    fork: &Fork,
    position: usize,
    fields: &[Ident],
    names: &[String],
    node_trait: &dyn Fn(usize) -> TokenStream,
    locals: &Locals,
) -> TokenStream {
    let Locals {
        state,
        runner,
        before,
        joined,
        shared,
        branches,
        ..
    } = locals;
    let fork_name = &fork.name;
    let count = fork.branches.len();
    let branch_names: Vec<&String> = fork.branches.iter().map(|&index| &names[index]).collect();
    // Pinned in place as temporaries of the statement that joins them: no bindings, so no
    // name of the user's can collide with them.
    let futures = fork.branches.iter().enumerate().map(|(offset, &index)| {
        let node = node_trait(index);
        let (field, name) = (&fields[index], &names[index]);
        let step = offset as u64 + 1;
        quote! {
            ::core::pin::pin!(#node::__branch(
                &self.#field,
                &#branches,
                #shared,
                #name,
                #before + #step,
            ))
        }
    });
    quote! {
        #position => {
            const BRANCHES: &[&str; #count] = &[#(#branch_names),*];
            let #before = #krate::__private::Runner::fork_start(&mut *#runner, #fork_name, BRANCHES)?;
            let #joined = {
                let #shared: &__S = &*#state;
                let #branches = #krate::__private::Runner::branches(&*#runner);
                #krate::__private::join::<__S, #count>(
                    [#(#futures),*],
                    BRANCHES,
                    #before + 1,
                )
                .await?
            };
            #krate::__private::Runner::fork_finish(#runner, #state, #joined).await?;
            ::core::result::Result::Ok(#krate::DEFAULT_ACTION)
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
    wired_by_position: &[Vec<&str>],
) -> Vec<TokenStream> {
    let mut checks: Vec<TokenStream> = graph
        .edges
        .iter()
        .filter_map(|edge| match edge.from {
            Pos::Node(from) => Some((from, edge)),
            Pos::Fork(_) => None,
        })
        .map(|(from, edge)| {
            let node = node_trait(from);
            let (name, action) = (&names[from], &edge.action);
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
            .filter(|(index, _)| !wired_by_position[*index].is_empty());
        checks.extend(routing.map(|(index, ident)| {
            let node = node_trait(index);
            let name = &names[index];
            let wired = &wired_by_position[index];
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
