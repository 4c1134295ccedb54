//! Code generation for `flow!`.
//!
//! The flow's `FlowGraph` impl gives the runtime only the static parts: the position names and the
//! start, a `match` from `(position, action)` to the next position, the actions wired and declared
//! at each position, and a `match` that runs the node (or fork) at a position. The runtime owns the
//! loop, step limits, resume and pauses. Static dispatch: no boxing, no maps.
//!
//! The nodes are held in chunks of [`CHUNK`]: each chunk is a struct generic over its nodes' types,
//! with its own impl of a trait local to the expansion (`__SlateflowNodes`) that runs, describes and
//! checks its nodes; the graph is generic over its chunks. rustc's work on an impl grows faster than
//! its number of type parameters and `await` points, so chunks keep a large flow's compile time
//! growing with its size.
//! The checks that need the nodes' types are left to rustc, spanned at the user's tokens: each node
//! passes through a check that requires `Node<S>` of the flow's state, the graph through one that
//! requires a `Clone` state when it has forks, and each edge becomes a `const` assertion that the
//! node declares the action, and a probe that requires the same as a trait bound of a node whose
//! actions are types (`#[node]`), which `cargo check` reports too (the `const` only a build
//! evaluates). A failed check leaves rustc unable to name what passed through it,
//! so that the graph and the flow built on it are not reported again: one mistake, one error.

use proc_macro2::TokenStream;
use std::ops::Range;

use quote::{ToTokens, format_ident, quote, quote_spanned};
use syn::Ident;
use syn::ext::IdentExt;

use super::graph::{Fork, Graph, Pos};

/// How many nodes a chunk holds.
const CHUNK: usize = 64;

/// The statements and final expression of the flow's block.
pub(crate) fn generate(krate: &TokenStream, graph: &Graph) -> TokenStream {
    let names: Vec<String> = graph
        .nodes
        .iter()
        .map(|node| node.unraw().to_string())
        .collect();
    let locals = Locals::new();
    let wired_by_position = graph.wired_by_position();
    let mut checks = checks(
        krate,
        graph,
        &names,
        &|index| node_trait(krate, index),
        &wired_by_position,
    );
    let chunks: Vec<Range<usize>> = (0..graph.nodes.len())
        .step_by(CHUNK)
        .map(|start| start..(start + CHUNK).min(graph.nodes.len()))
        .collect();
    let chunk_items = chunks.iter().enumerate().map(|(chunk, nodes)| {
        let chunk_checks: Vec<TokenStream> = checks
            .iter_mut()
            .filter(|(node, _)| nodes.contains(node))
            .map(|(_, check)| std::mem::take(check))
            .collect();
        let context = ChunkContext {
            krate,
            graph,
            names: &names,
            wired_by_position: &wired_by_position,
            locals: &locals,
        };
        chunk_item(&context, chunk, nodes.clone(), &chunk_checks)
    });
    let trait_item = nodes_trait(krate, graph);
    let graph_item = graph_item(krate, graph, &names, &chunks, &wired_by_position, &locals);
    let construction = construction(krate, graph, &chunks, &locals);
    let guards = crate::spans::local_guards(
        locals
            .all()
            .into_iter()
            .chain(&graph.forks.first().map(first_branch)),
    );
    quote! {
        #guards
        #trait_item
        #(#chunk_items)*
        #graph_item
        #construction
    }
}

/// `<__N3 as Node<__S>>`.
fn node_trait(krate: &TokenStream, index: usize) -> TokenStream {
    let ty = format_ident!("__N{}", index);
    quote!(<#ty as #krate::__private::Node<__S>>)
}

fn node_field(index: usize) -> Ident {
    format_ident!("__node{}", index)
}

fn chunk_type(chunk: usize) -> Ident {
    format_ident!("__C{}", chunk)
}

fn chunk_struct(chunk: usize) -> Ident {
    format_ident!("__SlateflowChunk{}", chunk)
}

fn chunk_field(chunk: usize) -> Ident {
    format_ident!("__chunk{}", chunk)
}

/// `fn step(...)`'s signature, with `params` as the patterns of the position, runner and state
/// (`_` in the trait's declaration): the same in the chunks' trait, their impls and the graph's.
fn step_signature(krate: &TokenStream, params: [&dyn ToTokens; 3]) -> TokenStream {
    let [position, runner, state] = params;
    quote! {
        fn step<'__a, __R: #krate::__private::Runner<__S>>(
            &'__a self,
            #position: ::core::primitive::usize,
            #runner: &'__a mut __R,
            #state: &'__a mut __S,
        ) -> impl ::core::future::Future<Output = #krate::__private::Stepped>
            + ::core::marker::Send + '__a
    }
}

/// The signature and bound of the method that runs the node at `index` as a branch of a fork,
/// as [`step_signature`]: the branch runner, the shared state, the step number and the cell of
/// the branch's phase. One method per node in a fork, so that a branch's future is its node's
/// own, with no future around it.
fn branch_signature(krate: &TokenStream, index: usize, params: [&dyn ToTokens; 4]) -> TokenStream {
    let [branches, shared, step, phase] = params;
    let method = branch_method(index);
    quote! {
        fn #method<'__a, __B: #krate::__private::BranchRunner<__S>>(
            &'__a self,
            #branches: &'__a __B,
            #shared: &'__a __S,
            #step: ::core::primitive::u64,
            #phase: &'__a #krate::__private::PhaseCell,
        ) -> impl ::core::future::Future<
            Output = ::core::result::Result<#krate::__private::Branch<__S>, #krate::__private::Error>,
        > + ::core::marker::Send + '__a
        where
            __S: ::core::clone::Clone
    }
}

/// The method of the chunks' trait that runs node `index` as a branch.
fn branch_method(index: usize) -> Ident {
    format_ident!("__branch_{}", index)
}

/// The nodes that are branches of forks, in order.
fn in_forks(graph: &Graph) -> impl Iterator<Item = usize> + '_ {
    (0..graph.nodes.len())
        .filter(|index| graph.forks.iter().any(|fork| fork.branches.contains(index)))
}

/// The trait through which the graph reaches a chunk of its nodes. Its parameters are `_`: a
/// declaration's parameter names would be patterns too.
fn nodes_trait(krate: &TokenStream, graph: &Graph) -> TokenStream {
    let usize_ty = quote!(::core::primitive::usize);
    let anonymous = quote!(_);
    let step_signature = step_signature(krate, [&anonymous; 3]);
    // Each chunk runs its own nodes' branches; the others' are never called on it.
    let branch_methods = in_forks(graph).map(|index| {
        let signature = branch_signature(krate, index, [&anonymous; 4]);
        quote! {
            #signature {
                async { ::core::unreachable!() }
            }
        }
    });
    quote! {
        /// A chunk of the nodes of a flow built by `flow!`.
        trait __SlateflowNodes<__S: #krate::__private::SharedState>:
            ::core::marker::Send + ::core::marker::Sync
        {
            /// The compile-time checks of the chunk's nodes' edges.
            const CHECKS: ();
            /// For each node that runs as a step: its declared and its wired actions.
            const TERMINAL: &'static [(&'static [&'static str], &'static [&'static str])];

            /// The actions the node at a position declares.
            fn declared(_: #usize_ty) -> &'static [&'static str];

            /// Runs the node at a position as a step.
            #step_signature;

            #(
                /// Runs a node of the chunk as a branch of a fork.
                #branch_methods
            )*

            /// Appends the chunk's nodes, in order.
            fn describe(&self, _: &mut ::std::vec::Vec<#krate::__private::GraphNode>);
        }
    }
}

/// What every chunk is generated from.
struct ChunkContext<'a> {
    krate: &'a TokenStream,
    graph: &'a Graph,
    names: &'a [String],
    wired_by_position: &'a [Vec<&'a str>],
    locals: &'a Locals,
}

/// One chunk: its struct and its impl of `__SlateflowNodes`.
fn chunk_item(
    context: &ChunkContext<'_>,
    chunk: usize,
    nodes: Range<usize>,
    checks: &[TokenStream],
) -> TokenStream {
    let ChunkContext { krate, locals, .. } = context;
    let Locals {
        state,
        runner,
        position,
        nodes: described,
        ..
    } = locals;
    let usize_ty = quote!(::core::primitive::usize);
    let step_signature = step_signature(krate, [position, runner, state]);
    let name = chunk_struct(chunk);
    let types: Vec<Ident> = nodes
        .clone()
        .map(|index| format_ident!("__N{}", index))
        .collect();
    let fields: Vec<Ident> = nodes.clone().map(node_field).collect();
    let ChunkArms {
        steps,
        branches: branch_arms,
        terminal,
        declared,
        describe,
    } = chunk_arms(context, nodes.clone());
    quote! {
        /// Nodes of a flow built by `flow!`.
        struct #name<#(#types),*> {
            #(#fields: #types,)*
        }

        #[automatically_derived]
        impl<__S, #(#types),*> __SlateflowNodes<__S> for #name<#(#types),*>
        where
            __S: #krate::__private::SharedState,
            #(#types: #krate::__private::Node<__S>,)*
        {
            const CHECKS: () = {
                #(#checks)*
            };

            const TERMINAL: &'static [(&'static [&'static str], &'static [&'static str])] =
                &[#(#terminal),*];

            fn declared(#position: #usize_ty) -> &'static [&'static str] {
                match #position {
                    #(#declared)*
                    _ => &[],
                }
            }

            #step_signature {
                async move {
                    let _ = (&#runner, &#state);
                    match #position {
                        #(#steps)*
                        _ => ::core::unreachable!(),
                    }
                }
            }

            #(#branch_arms)*

            fn describe(&self, #described: &mut ::std::vec::Vec<#krate::__private::GraphNode>) {
                #(#describe)*
            }
        }
    }
}

/// The per-node parts of a chunk's impl.
struct ChunkArms {
    steps: Vec<TokenStream>,
    branches: Vec<TokenStream>,
    terminal: Vec<TokenStream>,
    declared: Vec<TokenStream>,
    describe: Vec<TokenStream>,
}

fn chunk_arms(context: &ChunkContext<'_>, nodes: Range<usize>) -> ChunkArms {
    let ChunkContext {
        krate,
        graph,
        names,
        wired_by_position,
        locals,
    } = context;
    let Locals {
        state,
        runner,
        branches,
        shared,
        step,
        phase,
        nodes: described,
        ..
    } = locals;
    let node = |index: usize| node_trait(krate, index);
    let steps = nodes
        .clone()
        .filter(|&index| graph.steps[index])
        .map(|index| {
            let (node, field, name) = (node(index), node_field(index), &names[index]);
            quote!(#index => #node::__run(&self.#field, #runner, #state, #name).await,)
        });
    let branch_arms = in_forks(graph)
        .filter(|index| nodes.contains(index))
        .map(|index| {
            let (node, field, name) = (node(index), node_field(index), &names[index]);
            let signature = branch_signature(krate, index, [branches, shared, step, phase]);
            quote! {
                #signature {
                    #node::__branch(&self.#field, #branches, #shared, #name, #step, #phase)
                }
            }
        });
    let terminal = nodes
        .clone()
        .filter(|&index| graph.steps[index])
        .map(|index| {
            let (node, wired) = (node(index), &wired_by_position[index]);
            quote!((#node::ACTIONS, &[#(#wired),*]))
        });
    let declared = nodes.clone().map(|index| {
        let node = node(index);
        quote!(#index => #node::ACTIONS,)
    });
    let describe = nodes.clone().map(|index| {
        let (node, field, name) = (node(index), node_field(index), &names[index]);
        quote! {
            #described.push(#krate::__private::GraphNode {
                name: #name,
                actions: #node::ACTIONS,
                flow: #node::__graph(&self.#field),
            });
        }
    });
    ChunkArms {
        steps: steps.collect(),
        branches: branch_arms.collect(),
        terminal: terminal.collect(),
        declared: declared.collect(),
        describe: describe.collect(),
    }
}

/// The graph: its chunks, and its impl of `FlowGraph`.
fn graph_item(
    krate: &TokenStream,
    graph: &Graph,
    names: &[String],
    chunks: &[Range<usize>],
    wired_by_position: &[Vec<&str>],
    locals: &Locals,
) -> TokenStream {
    let Locals {
        state,
        runner,
        position,
        ..
    } = locals;
    let usize_ty = quote!(::core::primitive::usize);
    let step_signature = step_signature(krate, [position, runner, state]);
    let types: Vec<Ident> = (0..chunks.len()).map(chunk_type).collect();
    let fields: Vec<Ident> = (0..chunks.len()).map(chunk_field).collect();
    let as_nodes = |chunk: usize| {
        let ty = chunk_type(chunk);
        quote!(<#ty as __SlateflowNodes<__S>>)
    };
    let chunk_terminals = (0..chunks.len()).map(|chunk| {
        let nodes = as_nodes(chunk);
        quote!(#nodes::TERMINAL)
    });
    // A fork without a join ends the flow with its "default".
    let fork_ends = (0..graph.forks.len())
        .filter(|&fork| wired_by_position[graph.index(Pos::Fork(fork))].is_empty())
        .map(|_| quote!((&[#krate::__private::DEFAULT_ACTION], &[])));
    let chunk_checks = (0..chunks.len()).map(|chunk| {
        let nodes = as_nodes(chunk);
        quote!(let () = #nodes::CHECKS;)
    });
    let position_names: Vec<&str> = names
        .iter()
        .map(String::as_str)
        .chain(graph.forks.iter().map(|fork| fork.name.as_str()))
        .collect();
    let tables = tables(graph, wired_by_position, locals);
    let fork_positions: Vec<usize> = (0..graph.forks.len())
        .map(|fork| graph.index(Pos::Fork(fork)))
        .collect();
    let fork_declared = (!fork_positions.is_empty())
        .then(|| quote!(#(#fork_positions)|* => &[#krate::__private::DEFAULT_ACTION],));
    let declared_chunks = (0..chunks.len()).map(|chunk| {
        let nodes = as_nodes(chunk);
        quote!(#chunk => #nodes::declared(#position),)
    });
    let step_body = graph_step(krate, graph, names, chunks, locals);
    let describe = describe(krate, graph, chunks, &position_names, &locals.nodes);
    let fork_bound = (!graph.forks.is_empty()).then(|| quote!(__S: #krate::__private::ForkState,));
    quote! {
        /// The nodes of a flow built by `flow!`, in chunks.
        struct __SlateflowGraph<#(#types),*> {
            #(#fields: #types,)*
        }

        #[automatically_derived]
        impl<__S, #(#types),*> #krate::__private::FlowGraph<__S> for __SlateflowGraph<#(#types),*>
        where
            __S: #krate::__private::SharedState,
            #fork_bound
            #(#types: __SlateflowNodes<__S>,)*
        {
            const TERMINAL: #krate::__private::ActionSet =
                #krate::__private::terminal_actions_in(&[#(#chunk_terminals,)* &[#(#fork_ends),*]]);

            const CHECKS: () = {
                #(#chunk_checks)*
            };

            const NAMES: &'static [&'static str] = &[#(#position_names),*];

            #tables

            fn declared(#position: #usize_ty) -> &'static [&'static str] {
                match #position {
                    #fork_declared
                    _ => match #position / #CHUNK {
                        #(#declared_chunks)*
                        _ => &[],
                    },
                }
            }

            #step_signature {
                #step_body
            }

            fn describe(&self) -> #krate::__private::Graph {
                #describe
            }
        }
    }
}

/// The body of the graph's `step`: a fork, or the chunk that holds the node.
fn graph_step(
    krate: &TokenStream,
    graph: &Graph,
    names: &[String],
    chunks: &[Range<usize>],
    locals: &Locals,
) -> TokenStream {
    let Locals {
        state,
        runner,
        position,
        ..
    } = locals;
    if chunks.len() == 1 && graph.forks.is_empty() {
        // One chunk and no fork: its step is the flow's, with no future around it.
        quote!(self.__chunk0.step(#position, #runner, #state))
    } else {
        let chunk_steps = (0..chunks.len()).map(|chunk| {
            let field = chunk_field(chunk);
            quote!(#chunk => self.#field.step(#position, #runner, #state).await,)
        });
        let forks = graph.forks.iter().enumerate().map(|(fork, definition)| {
            fork_step(
                krate,
                definition,
                graph.index(Pos::Fork(fork)),
                names,
                locals,
            )
        });
        quote! {
            async move {
                match #position {
                    #(#forks)*
                    _ => match #position / #CHUNK {
                        #(#chunk_steps)*
                        _ => ::core::unreachable!(),
                    },
                }
            }
        }
    }
}

/// Building the flow: each node checked against the state and moved into its chunk.
fn construction(
    krate: &TokenStream,
    graph: &Graph,
    chunks: &[Range<usize>],
    locals: &Locals,
) -> TokenStream {
    let marker = &locals.marker;
    let chunk_values = chunks.iter().enumerate().map(|(chunk, nodes)| {
        let (field, name) = (chunk_field(chunk), chunk_struct(chunk));
        let wrapped = nodes.clone().map(|index| {
            let node = &graph.nodes[index];
            let field = node_field(index);
            // Only the check's path carries the node's span: a node over another state is
            // reported there, while the marker keeps the macro's hygiene.
            let check = quote_spanned!(node.span()=> #krate::__private::NodeOver::node);
            quote!(#field: #check(&#marker, #node),)
        });
        quote!(#field: #name { #(#wrapped)* },)
    });
    // A fork needs a `Clone` state (a nested flow in a branch runs on a copy): said once, at the
    // first fork, whose first branch, as written there, is the argument rustc blames for the
    // bound. Checked once the nodes have made the state known (with the state unknown, rustc would
    // take the check for passed and report the graph instead); the graph passes through it.
    let built = &locals.graph;
    let fork_state_check = graph.forks.first().map(|fork| {
        let node = fork.branches[0];
        let (chunk, field) = (chunk_field(node / CHUNK), node_field(node));
        let first = first_branch(fork);
        quote! {
            let #first = &#built.#chunk.#field;
            let #built = #krate::__private::Forks::graph(
                #krate::__private::BranchOf::fork(&#marker, #first),
                #built,
            );
        }
    });
    let probes = action_probes(krate, graph, locals);
    quote! {
        let #marker = #krate::__private::StateType::new();
        let #built = __SlateflowGraph {
            #(#chunk_values)*
        };
        #probes
        #fork_state_check
        #krate::__private::new_flow(#built, #marker)
    }
}

/// Each edge leaving a node, probed for its action as a trait bound, which `cargo check` reports
/// at the action (the `const` checks are evaluated only by a build). Only a node whose actions the
/// type system knows (a `#[node]`) is held to it; see `__private::DeclaresAction`.
fn action_probes(krate: &TokenStream, graph: &Graph, locals: &Locals) -> TokenStream {
    let Locals {
        marker,
        graph: built,
        ..
    } = locals;
    let probes = graph.edges.iter().filter_map(|edge| {
        let Pos::Node(from) = edge.from else {
            return None;
        };
        let (chunk, field) = (chunk_field(from / CHUNK), node_field(from));
        let key = crate::actions::key(&edge.action);
        Some(quote_spanned! {edge.action_span=>
            (&&#krate::__private::Edge::<_, _, #key>::of(&#marker, &#built.#chunk.#field))
                .__slateflow_declared();
        })
    });
    quote! {
        {
            use #krate::__private::{ConstEdge as _, TypedEdge as _};
            #(#probes)*
        }
    }
}

/// The local that borrows a fork's first branch for its check. It is the argument rustc blames, so
/// it carries the branch's span, user's hygiene included: for a token of the macro's own hygiene,
/// rustc would point at the whole macro. Being in the user's hygiene, it is guarded as the others
/// are, under a name that no user's node has.
fn first_branch(fork: &Fork) -> Ident {
    Ident::new("__slateflow_first_branch", fork.first_branch.span())
}

/// The routing tables: the start, where each `(position, action)` leads, and the actions wired at
/// each position.
fn tables(graph: &Graph, wired_by_position: &[Vec<&str>], locals: &Locals) -> TokenStream {
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
    }
}

/// The generated code's own local names, spanned with mixed-site hygiene (invisible to the user's
/// code) and guarded by [`local_guards`](crate::spans::local_guards) against the user's items of
/// the same name.
struct Locals {
    marker: Ident,
    graph: Ident,
    state: Ident,
    runner: Ident,
    position: Ident,
    action: Ident,
    before: Ident,
    joined: Ident,
    shared: Ident,
    branches: Ident,
    step: Ident,
    phase: Ident,
    phases: Ident,
    nodes: Ident,
}

impl Locals {
    fn all(&self) -> [&Ident; 14] {
        [
            &self.marker,
            &self.graph,
            &self.state,
            &self.runner,
            &self.position,
            &self.action,
            &self.before,
            &self.joined,
            &self.shared,
            &self.branches,
            &self.step,
            &self.phase,
            &self.phases,
            &self.nodes,
        ]
    }

    fn new() -> Self {
        let local = |name: &str| Ident::new(name, proc_macro2::Span::mixed_site());
        Self {
            marker: local("__state_type"),
            graph: local("__graph"),
            state: local("__state"),
            runner: local("__runner"),
            position: local("__position"),
            action: local("__action"),
            before: local("__before"),
            joined: local("__joined"),
            shared: local("__shared"),
            branches: local("__branches"),
            step: local("__step"),
            phase: local("__phase"),
            phases: local("__phases"),
            nodes: local("__nodes"),
        }
    }
}

/// The body of `describe`: the graph as the runtime's `Graph`.
fn describe(
    krate: &TokenStream,
    graph: &Graph,
    chunks: &[Range<usize>],
    position_names: &[&str],
    nodes: &Ident,
) -> TokenStream {
    let node_count = graph.nodes.len();
    let chunk_fields = (0..chunks.len()).map(chunk_field);
    let described_forks = graph.forks.iter().map(|fork| {
        let branches = fork.branches.iter().map(|&index| position_names[index]);
        let name = &fork.name;
        quote!(#krate::__private::GraphFork { name: #name, branches: &[#(#branches),*] },)
    });
    let described_edges = graph.edges.iter().map(|edge| {
        let from = position_names[graph.index(edge.from)];
        let to = position_names[graph.index(edge.to)];
        let action = &edge.action;
        quote!(#krate::__private::GraphEdge { from: #from, action: #action, to: #to },)
    });
    let start_name = position_names[graph.index(graph.start)];
    quote! {
        let mut #nodes = ::std::vec::Vec::with_capacity(#node_count);
        #(__SlateflowNodes::<__S>::describe(&self.#chunk_fields, &mut #nodes);)*
        #krate::__private::Graph {
            start: #start_name,
            nodes: #nodes,
            forks: ::std::vec![#(#described_forks)*],
            edges: ::std::vec![#(#described_edges)*],
            actions: <Self as #krate::__private::FlowGraph<__S>>::ACTIONS,
            batch: false,
            concurrent: false,
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
    names: &[String],
    locals: &Locals,
) -> TokenStream {
    let Locals {
        state,
        runner,
        before,
        joined,
        shared,
        branches,
        phases,
        ..
    } = locals;
    let fork_name = &fork.name;
    let count = fork.branches.len();
    let branch_names: Vec<&String> = fork.branches.iter().map(|&index| &names[index]).collect();
    // Pinned in place as temporaries of the statement that joins them: no bindings, so no
    // name of the user's can collide with them.
    let futures = fork.branches.iter().enumerate().map(|(offset, &index)| {
        let chunk = index / CHUNK;
        let (field, ty) = (chunk_field(chunk), chunk_type(chunk));
        let step = offset as u64 + 1;
        let method = branch_method(index);
        quote! {
            ::core::pin::pin!(<#ty as __SlateflowNodes<__S>>::#method(
                &self.#field,
                &#branches,
                #shared,
                #before + #step,
                &#phases[#offset],
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
                // Each branch's phase, where the join reads it when the branch panics.
                let #phases: [#krate::__private::PhaseCell; #count] =
                    ::core::array::from_fn(|_| #krate::__private::PhaseCell::new());
                #krate::__private::join::<__S, _, #count>(
                    &#branches,
                    [#(#futures),*],
                    &#phases,
                    BRANCHES,
                    #before + 1,
                )
                .await?
            };
            #krate::__private::Runner::fork_finish(#runner, #state, #joined).await?;
            ::core::result::Result::Ok(#krate::__private::DEFAULT_ACTION)
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
) -> Vec<(usize, TokenStream)> {
    let mut checks: Vec<(usize, TokenStream)> = graph
        .edges
        .iter()
        .filter_map(|edge| match edge.from {
            Pos::Node(from) => Some((from, edge)),
            Pos::Fork(_) => None,
        })
        .map(|(from, edge)| {
            let node = node_trait(from);
            let (name, action) = (&names[from], &edge.action);
            let check = quote_spanned! {edge.action_span=>
                if !#krate::__private::declares(#node::ACTIONS, #action) {
                    ::core::panic!(
                        "{}",
                        #krate::__private::undeclared_action(#name, #action, #node::ACTIONS).as_str()
                    );
                }
            };
            (from, check)
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
            let check = quote_spanned! {ident.span()=>
                if let ::core::option::Option::Some(__action) =
                    #krate::__private::first_unwired(#node::ACTIONS, &[#(#wired),*])
                {
                    ::core::panic!(
                        "{}",
                        #krate::__private::unwired_action(#name, __action).as_str()
                    );
                }
            };
            (index, check)
        }));
    }
    checks
}
