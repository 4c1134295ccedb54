//! `#[derive(SharedState)]`: the typed state, its update type and its reducers.
//!
//! Phases, one file each: [`ast`] reads the input into a typed model (with [`attr`] for the
//! attributes), [`valid`] checks the rules that span the whole struct, [`expand`] writes the code.
//! Attribute mistakes are collected and the field falls back to last-write-wins, so the expansion
//! still compiles and the user sees only the real errors; input the model cannot hold at all (an enum,
//! a tuple struct) or that breaks a whole-struct rule gets the harmless stub of [`fallback`].

mod ast;
mod attr;
mod expand;
mod fallback;
mod valid;

use proc_macro2::TokenStream;

use crate::errors::Errors;

/// The whole derive: generated code followed by any errors.
pub(crate) fn derive(input: &syn::DeriveInput) -> TokenStream {
    let mut errors = Errors::default();
    let container = attr::container(&input.attrs, &mut errors);
    let crate_path = container.crate_path.clone();
    let generated = match ast::State::from_syn(input, container, &mut errors) {
        Some(state) if valid::check(&state, &mut errors) => expand::expand(&state),
        Some(_) | None => fallback::stub(input, &crate_path),
    };
    let errors = errors.into_compile_errors();
    quote::quote! {
        #generated
        #errors
    }
}
