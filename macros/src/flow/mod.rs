//! `flow!`: wires nodes into a graph, checks it, and generates a statically dispatched run loop.
//!
//! Built like a small compiler: [`parse`] reads the statements (recovering at each `;`, so one build
//! reports every grammar mistake), [`graph`] resolves them into nodes and edges, [`check`] applies
//! the rules that need the whole graph, and [`codegen`] writes the code. The checks that need the
//! nodes' types (declared actions, state types) are emitted by [`codegen`] for rustc to make.

mod check;
mod codegen;
mod graph;
mod parse;

use proc_macro2::TokenStream;

use crate::errors::Errors;

/// The whole macro: generated code followed by any errors.
pub(crate) fn expand(input: TokenStream) -> TokenStream {
    let mut errors = Errors::default();
    let parsed = parse::parse(input, &mut errors);
    let generated = graph::build(&parsed, &mut errors).map(|graph| {
        if !parsed.dropped_statements {
            check::check(&graph, &mut errors);
        }
        codegen::generate(&parsed.krate, &graph)
    });
    let errors = errors.into_compile_errors();
    // The flow is still generated after rule errors, so that code using it type-checks and shows
    // no follow-on errors.
    let generated = generated.unwrap_or_else(|| quote::quote!(::core::unreachable!()));
    quote::quote! {{ #errors #generated }}
}
