//! Span helpers shared by the macros.

use proc_macro2::{Group, Ident, Span, TokenStream, TokenTree};
use quote::quote;

/// `tokens` with every span, inside groups too, set to `span`.
pub(crate) fn respan(tokens: TokenStream, span: Span) -> TokenStream {
    tokens
        .into_iter()
        .map(|mut token| {
            if let TokenTree::Group(group) = &token {
                let mut respanned = Group::new(group.delimiter(), respan(group.stream(), span));
                respanned.set_span(span);
                token = TokenTree::Group(respanned);
            }
            token.set_span(span);
            token
        })
        .collect()
}

/// `tokens` shown at `span`, each keeping its own hygiene (so that `$crate` still resolves).
pub(crate) fn relocate(tokens: TokenStream, span: Span) -> TokenStream {
    tokens
        .into_iter()
        .map(|mut token| {
            if let TokenTree::Group(group) = &token {
                let mut relocated = Group::new(group.delimiter(), relocate(group.stream(), span));
                relocated.set_span(group.span().located_at(span));
                token = TokenTree::Group(relocated);
            }
            token.set_span(token.span().located_at(span));
            token
        })
        .collect()
}

/// Functions named like the generated code's locals, to put in the scope that holds the generated
/// code. A user's `const` of such a name would turn a binding into a pattern (hygiene does not
/// stop that); a function of the same name, nearer, shadows the `const`, and a binding may
/// shadow a function.
pub(crate) fn local_guards<'a>(locals: impl IntoIterator<Item = &'a Ident>) -> TokenStream {
    let guards = locals.into_iter().map(|local| {
        quote! {
            #[allow(dead_code, non_snake_case, clippy::all, clippy::pedantic)]
            fn #local() {}
        }
    });
    quote!(#(#guards)*)
}
