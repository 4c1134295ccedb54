//! What the derive emits when the input is not a struct with named fields: an empty update type and
//! impls that do nothing, so that code using the type as a state reports no follow-on errors; the real
//! error is emitted next to it.

use proc_macro2::TokenStream;
use quote::quote;

use super::expand::{serde_crate, update_ident};

/// A well-typed stand-in for the expansion; nothing for a generic input, which it cannot stand in for.
pub(crate) fn stub(input: &syn::DeriveInput, krate: &syn::Path) -> TokenStream {
    if !input.generics.params.is_empty() {
        return TokenStream::new();
    }
    let name = &input.ident;
    let vis = &input.vis;
    let update = update_ident(name);
    let serde_crate = serde_crate(krate);
    quote! {
        #[allow(missing_docs)]
        #[derive(
            ::core::default::Default,
            ::core::clone::Clone,
            ::core::fmt::Debug,
            #krate::__private::serde::Serialize,
            #krate::__private::serde::Deserialize
        )]
        #[serde(crate = #serde_crate)]
        #vis struct #update {}

        const _: () = {
            #[automatically_derived]
            impl #krate::__private::SharedState for #name {
                type Update = #update;
                const FIELDS: &'static [#krate::__private::Field] = &[];
                fn apply(&mut self, _: #update) {}
                fn field_text(
                    &self,
                    _: &::core::primitive::str,
                ) -> ::core::option::Option<::std::string::String> {
                    ::core::option::Option::None
                }
            }

            #[automatically_derived]
            impl #krate::__private::StateUpdate for #update {
                type State = #name;
                fn is_empty(&self) -> ::core::primitive::bool {
                    true
                }
                fn then(self, _: Self) -> Self {
                    self
                }
                fn merge(self, _: Self) -> ::core::result::Result<Self, #krate::__private::MergeConflict> {
                    ::core::result::Result::Ok(self)
                }
            }
        };
    }
}
