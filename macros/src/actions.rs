//! Actions as the type system sees them: `#[node]` says each action its node declares as an impl
//! of `DeclaresAction<State, KEY>`, and `flow!` probes each edge for the impl of its action's key,
//! so that `cargo check` reports an undeclared action (see `__private::DeclaresAction` in the
//! runtime).

use proc_macro2::TokenStream;
use quote::quote;

/// The key of `action`: its 64-bit FNV-1a hash. Both macros compute it here, so they agree. A
/// collision between a declared and an undeclared action would only let the probe pass the
/// undeclared one on to the `const` check that a build still runs.
pub(crate) fn key(action: &str) -> u64 {
    const OFFSET: u64 = 0xcbf2_9ce4_8422_2325;
    const PRIME: u64 = 0x0000_0100_0000_01b3;
    action.bytes().fold(OFFSET, |hash, byte| {
        (hash ^ u64::from(byte)).wrapping_mul(PRIME)
    })
}

/// The impls that say the node `ty` over `state` declares `actions` and no other, under the
/// generics of `generics` (those of a `Node` impl; none for a function).
pub(crate) fn declare(
    krate: &TokenStream,
    generics: &syn::Generics,
    ty: &TokenStream,
    state: &TokenStream,
    actions: &[String],
) -> TokenStream {
    let (impl_generics, _, where_clause) = generics.split_for_impl();
    // One impl per key: a list that repeats an action (or two actions of one key) is no conflict.
    let mut keys: Vec<u64> = actions.iter().map(|action| key(action)).collect();
    keys.sort_unstable();
    keys.dedup();
    quote! {
        #[automatically_derived]
        impl #impl_generics #krate::__private::StaticActions<#state> for #ty #where_clause {}
        #(
            // Not listed by rustc as the impls that exist when an action is missing: their keys
            // would say nothing to the reader.
            #[automatically_derived]
            #[diagnostic::do_not_recommend]
            impl #impl_generics #krate::__private::DeclaresAction<#state, #keys> for #ty
                #where_clause {}
        )*
    }
}

#[cfg(test)]
mod tests {
    use super::{declare, key};
    use quote::quote;

    #[test]
    fn an_action_listed_twice_is_declared_once() {
        let impls = declare(
            &quote!(::slateflow),
            &syn::Generics::default(),
            &quote!(Route),
            &quote!(Triage),
            &["a".to_owned(), "b".to_owned(), "a".to_owned()],
        )
        .to_string();
        assert_eq!(impls.matches("DeclaresAction").count(), 2, "{impls}");
        assert_eq!(impls.matches("StaticActions").count(), 1, "{impls}");
    }

    #[test]
    fn keys_are_fnv_1a_and_tell_actions_apart() {
        // The published FNV-1a 64 values of "" (the offset basis) and "a".
        assert_eq!(key(""), 0xcbf2_9ce4_8422_2325);
        assert_eq!(key("a"), 0xaf63_dc4c_8601_ec8c);
        assert_ne!(key("approve"), key("revise"));
        assert_ne!(key("ab"), key("ba"));
    }
}
