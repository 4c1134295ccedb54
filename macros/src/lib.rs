//! Procedural macros for [slateflow](https://docs.rs/slateflow). Use them through the `slateflow`
//! crate, which re-exports them next to the traits they implement; their documentation lives there.
//!
//! Each entry point calls one module function that returns a `proc_macro2::TokenStream`.

mod errors;
mod shared_state;

use proc_macro::TokenStream;

/// Derives `slateflow::SharedState`; documented on the re-export in `slateflow`.
#[proc_macro_derive(SharedState, attributes(reducer, slateflow))]
pub fn derive_shared_state(input: TokenStream) -> TokenStream {
    let input = syn::parse_macro_input!(input as syn::DeriveInput);
    shared_state::derive(&input).into()
}
