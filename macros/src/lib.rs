//! Procedural macros for [slateflow](https://docs.rs/slateflow). Use them through the `slateflow`
//! crate, which re-exports them next to the traits they implement; their documentation lives there.
//!
//! Each entry point calls one module function that returns a `proc_macro2::TokenStream`.

mod actions;
mod errors;
mod flow;
mod node_fn;
mod prompt;
mod shared_state;
mod spans;

use proc_macro::TokenStream;

/// Derives `slateflow::SharedState`; documented on the re-export in `slateflow`.
#[proc_macro_derive(SharedState, attributes(reducer, slateflow))]
pub fn derive_shared_state(input: TokenStream) -> TokenStream {
    let input = syn::parse_macro_input!(input as syn::DeriveInput);
    shared_state::derive(&input).into()
}

/// The implementation of `slateflow::flow!`, which passes the runtime's path (`$crate`) first.
#[doc(hidden)]
#[proc_macro]
pub fn flow_impl(input: TokenStream) -> TokenStream {
    flow::expand(input.into()).into()
}

/// `#[slateflow::node]`; documented on the re-export in `slateflow`.
#[proc_macro_attribute]
pub fn node(attr: TokenStream, item: TokenStream) -> TokenStream {
    node_fn::expand(attr.into(), item.into()).into()
}

/// The implementation of `slateflow::prompt!`, which passes the runtime's path (`$crate`) first.
#[doc(hidden)]
#[proc_macro]
pub fn prompt_impl(input: TokenStream) -> TokenStream {
    prompt::expand(input.into()).into()
}
