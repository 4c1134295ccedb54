//! `#[node]`: a function over the state becomes a node.
//!
//! ```text
//! #[node]  |  #[node(actions = ["a", "b"])]  |  #[node(crate = path, actions = [...])]
//! #[node(attempts = 3, wait = "200ms", backoff = 2.0, max_wait = "5s", timeout = "30s",
//!        retry_if = path, max_retry_after = "30s")]
//! [async] fn name(state: &State [, context: &Context<'_>]) -> Command<State> | Result<Command<State>, E>
//! ```
//! The function becomes a unit struct of the same name implementing `Node<State>`, whose `post` runs
//! the body; `prep` and `exec` do nothing. With a retry option, `post` runs the body under the
//! node's `Retry` policy (which `retry()` also returns), through the runtime's retry loop.
//!
//! ```text
//! #[node] | #[node(crate = path)]
//! impl<...> Node<State> for Type { const ACTIONS: &'static [&'static str] = &["a", "b"]; ... }
//! ```
//! On a `Node` (or `BatchNode`, `BatchPlan`) impl, the impl stays as written. Either way, the
//! node's actions are also said as trait impls (see `actions`), so that `flow!` can check its
//! edges in `cargo check`.
//!
//! Built as the derive is, one file a phase: `parse` (the options and a typed view of the item),
//! `check` (the rules between the options) and `expand` (the code).

mod check;
mod expand;
mod parse;

use proc_macro2::TokenStream;
use quote::quote;
use syn::{ItemFn, ItemImpl};

use crate::errors::Errors;

pub(crate) fn expand(attr: TokenStream, item: TokenStream) -> TokenStream {
    let mut errors = Errors::default();
    if let Ok(node_impl) = syn::parse2::<ItemImpl>(item.clone()) {
        let krate = parse::impl_options(attr, &mut errors);
        let generated = parse::impl_state(&node_impl, &mut errors)
            .zip(parse::impl_actions(&node_impl, &mut errors))
            .map_or_else(
                || quote!(#node_impl),
                |(state, actions)| expand::node_impl(&krate, &node_impl, state, &actions),
            );
        let errors = errors.into_compile_errors();
        return quote!(#errors #generated);
    }
    let options = parse::options(attr, &mut errors);
    let function: ItemFn = match syn::parse2(item.clone()) {
        Ok(function) => function,
        Err(error) => {
            errors.push(syn::Error::new(
                error.span(),
                "`#[node]` goes on a function, `fn name(state: &State) -> Result<Command<State>, E>`, \
                 or on an `impl Node<State> for Type`",
            ));
            // The item as written, so that one mistake gives one error (tokio-macros does this).
            let mut output = errors.into_compile_errors();
            output.extend(item);
            return output;
        }
    };
    check::check(&options, &mut errors);
    // A function that cannot be a node stays the function it was, beside the error.
    let generated = parse::NodeFn::from_syn(&function, &mut errors).map_or_else(
        || quote!(#function),
        |node| expand::node_fn(&options, &node),
    );
    let errors = errors.into_compile_errors();
    quote!(#errors #generated)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn messages(attr: TokenStream, item: TokenStream) -> Vec<String> {
        let mut errors = Errors::default();
        let options = parse::options(attr, &mut errors);
        let function: ItemFn = syn::parse2(item).unwrap();
        check::check(&options, &mut errors);
        let _ = parse::NodeFn::from_syn(&function, &mut errors);
        errors.messages()
    }

    #[test]
    fn reads_actions_and_crate() {
        let mut errors = Errors::default();
        let options = parse::options(quote!(crate = flowlib, actions = ["a", "b"]), &mut errors);
        assert!(errors.is_empty());
        assert_eq!(options.krate.to_string(), "flowlib");
        let actions: Vec<String> = options.actions.iter().map(syn::LitStr::value).collect();
        assert_eq!(actions, ["a", "b"]);
    }

    #[test]
    fn signature_mistakes_are_named() {
        let cases = [
            (
                quote!(
                    fn f(&self) {}
                ),
                "not `self`",
            ),
            (
                quote!(
                    fn f<T>(s: &T) {}
                ),
                "cannot be generic",
            ),
            (
                quote!(
                    fn f(s: State) {}
                ),
                "through a shared reference",
            ),
            (
                quote!(
                    fn f() {}
                ),
                "takes the state first",
            ),
            (
                quote!(
                    fn f(s: &S, c: &C, x: u8) {}
                ),
                "nothing more",
            ),
        ];
        for (item, expected) in cases {
            let errors = messages(quote!(), item);
            assert_eq!(errors.len(), 1, "{errors:?}");
            assert!(errors[0].contains(expected), "{errors:?} lacks {expected}");
        }
        let errors = messages(
            quote!(actions = ["a", "a"], colour = 1),
            quote!(
                fn f(s: &S) {}
            ),
        );
        assert_eq!(errors.len(), 2, "{errors:?}");
    }
}
