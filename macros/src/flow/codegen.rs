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

    let mut steps: Vec<TokenStream> = (0..graph.nodes.len())
        .filter(|&index| graph.steps[index])
        .map(|index| {
            let node = node_trait(index);
            let field = &fields[index];
            let name = &names[index];
            quote! {
                #index => #node::__run(&self.#field, &mut *__state, &mut *__run, #name).await?,
            }
        })
        .collect();
    steps.extend(graph.forks.iter().enumerate().map(|(fork, definition)| {
        let position = graph.index(Pos::Fork(fork));
        fork_step(krate, definition, position, &fields, &names, &node_trait)
    }));
    let checks = checks(krate, graph, &names, &node_trait);
    let terminal = terminal(krate, graph, &node_trait);
    let position_names: Vec<&str> = names
        .iter()
        .map(String::as_str)
        .chain(graph.forks.iter().map(|fork| fork.name.as_str()))
        .collect();
    let describe = describe(krate, graph, &fields, &names, &position_names, &node_trait);
    let wrapped_nodes = graph.nodes.iter().zip(&fields).map(|(node, field)| {
        // Only the function's path carries the node's span: a node over another state is reported
        // there, while `__state` keeps the macro's hygiene.
        let check = quote_spanned!(node.span()=> #krate::__private::node);
        quote!(#field: #check(&__state, #node),)
    });
    // A fork needs a `Clone` state (a nested flow in a branch runs on a copy): said at the fork.
    // The first branch, as written in the fork, is the argument rustc blames for the bound. The
    // check borrows it before the graph takes it.
    let fork_state_checks = graph.forks.iter().map(|fork| {
        let branch = &fork.first_branch;
        let borrowed = quote_spanned!(branch.span()=> &#branch);
        quote!(#krate::__private::fork_branch(&__state, #borrowed);)
    });
    let fork_bound = (!graph.forks.is_empty()).then(|| quote!(__S: #krate::__private::ForkState,));
    let run_loop = run_loop(krate, graph, &steps, &node_trait);

    quote! {
        /// The nodes of a flow built by `flow!`.
        struct __SlateflowGraph<#(#types),*> {
            #(#fields: #types,)*
        }

        #[automatically_derived]
        impl<__S, #(#types),*> #krate::__private::FlowGraph<__S> for __SlateflowGraph<#(#types),*>
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

            fn run<'__a>(
                &'__a self,
                __state: &'__a mut __S,
                __run: &'__a mut #krate::__private::RunContext<__S>,
                __max_steps: u64,
            ) -> impl ::core::future::Future<
                Output = ::core::result::Result<&'static str, #krate::Error>,
            > + ::core::marker::Send + '__a {
                const NAMES: &[&str] = &[#(#position_names),*];
                async move {
                    let __first_step = __run.steps();
                    #run_loop
                }
            }

            fn describe(&self) -> #krate::Graph {
                #describe
            }
        }

        let __state = #krate::__private::StateType::new();
        #(#fork_state_checks)*
        #krate::Flow::__new(
            __SlateflowGraph {
                #(#wrapped_nodes)*
            },
            __state,
        )
    }
}

/// For `terminal_actions`: each step node's declared and wired actions, and `"default"` for each
/// fork without a join (a fork ends the flow with its action). Nodes that only run as branches do
/// not end the flow.
fn terminal(
    krate: &TokenStream,
    graph: &Graph,
    node_trait: &dyn Fn(usize) -> TokenStream,
) -> Vec<TokenStream> {
    let mut terminal: Vec<TokenStream> = (0..graph.nodes.len())
        .filter(|&index| graph.steps[index])
        .map(|index| {
            let node = node_trait(index);
            let wired = graph.wired_actions(Pos::Node(index));
            quote!((#node::ACTIONS, &[#(#wired),*]))
        })
        .collect();
    terminal.extend(
        (0..graph.forks.len())
            .filter(|&fork| graph.wired_actions(Pos::Fork(fork)).is_empty())
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
            actions: <Self as #krate::__private::FlowGraph<__S>>::ACTIONS,
        }
    }
}

/// The run loop's arm for a fork: its branches run concurrently on a shared borrow of the state,
/// their updates merge in written order and are applied once; the fork's action is "default".
fn fork_step(
    krate: &TokenStream,
    fork: &Fork,
    position: usize,
    fields: &[Ident],
    names: &[String],
    node_trait: &dyn Fn(usize) -> TokenStream,
) -> TokenStream {
    let fork_name = &fork.name;
    let count = fork.branches.len();
    let branch_names: Vec<&String> = fork.branches.iter().map(|&index| &names[index]).collect();
    let futures: Vec<Ident> = (0..count)
        .map(|branch| format_ident!("__branch{}", branch))
        .collect();
    let starts =
        fork.branches
            .iter()
            .zip(&futures)
            .enumerate()
            .map(|(offset, (&index, future))| {
                let node = node_trait(index);
                let (field, name) = (&fields[index], &names[index]);
                let step = offset as u64 + 1;
                quote! {
                    let mut #future = ::core::pin::pin!(#node::__branch(
                        &self.#field,
                        __shared,
                        __params,
                        #name,
                        __before + #step,
                    ));
                }
            });
    quote! {
        #position => {
            const BRANCHES: [&str; #count] = [#(#branch_names),*];
            #krate::__private::fork_fits(
                __run.steps() - __first_step,
                __max_steps,
                __run.steps(),
                &BRANCHES,
            )?;
            let __before = __run.enter_fork(#fork_name);
            let __merged = {
                let __shared: &__S = &*__state;
                let __params = __run.params();
                #(#starts)*
                #krate::__private::fork::<__S, #count>(
                    [#(#futures.as_mut()),*],
                    &BRANCHES,
                    __before + 1,
                )
                .await?
            };
            __run.finish_fork(&mut *__state, __before, __merged).await?;
            #krate::DEFAULT_ACTION
        }
    }
}

/// The body of `run` after `__first_step`: a loop of `match` on the node, then on its action.
fn run_loop(
    krate: &TokenStream,
    graph: &Graph,
    steps: &[TokenStream],
    node_trait: &dyn Fn(usize) -> TokenStream,
) -> TokenStream {
    let start = graph.index(graph.start);
    let routes = graph.edges.iter().map(|edge| {
        let (from, action, to) = (graph.index(edge.from), &edge.action, graph.index(edge.to));
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
    // A resumed durable run enters at the saved position; at the innermost flow it routes on the
    // saved action instead of running the saved step again.
    let declared = (0..graph.nodes.len())
        .map(|index| {
            let node = node_trait(index);
            quote!(#index => #node::ACTIONS,)
        })
        .chain((0..graph.forks.len()).map(|fork| {
            let position = graph.index(Pos::Fork(fork));
            quote!(#position => &[#krate::DEFAULT_ACTION],)
        }));
    let entry = quote! {
        __run.enter_flow();
        let (mut __current, mut __resumed): (usize, ::core::option::Option<::std::string::String>) =
            match __run.resume_entry() {
                ::core::option::Option::Some((__index, __saved)) => (
                    #krate::__private::resume_position(__index, NAMES, __run.steps())?,
                    __saved,
                ),
                ::core::option::Option::None => (#start, ::core::option::Option::None),
            };
    };
    let action = quote! {
        __run.at(__current, NAMES[__current]);
        let __action: &'static str = if let ::core::option::Option::Some(__saved) = __resumed.take() {
            let __declared: &'static [&'static str] = match __current {
                #(#declared)*
                _ => &[],
            };
            #krate::__private::saved_action(__declared, &__saved, NAMES[__current], __run.steps())?
        } else {
            #step_limit_check
            match __current {
                #(#steps)*
                _ => ::core::unreachable!(),
            }
        };
    };
    if graph.edges.is_empty() {
        // One node and no edge: no loop to write (and no unreachable code to warn about).
        quote! {
            #entry
            let _ = &mut __current;
            #action
            __run.leave_flow();
            ::core::result::Result::Ok(__action)
        }
    } else {
        quote! {
            #entry
            loop {
                #action
                __current = match (__current, __action) {
                    #(#routes)*
                    _ => {
                        __run.leave_flow();
                        return ::core::result::Result::Ok(__action);
                    }
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
            .filter(|(index, _)| !graph.wired_actions(Pos::Node(*index)).is_empty());
        checks.extend(routing.map(|(index, ident)| {
            let node = node_trait(index);
            let name = &names[index];
            let wired = graph.wired_actions(Pos::Node(index));
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
