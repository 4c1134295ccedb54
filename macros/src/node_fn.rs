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

use proc_macro2::{Span, TokenStream};
use quote::{ToTokens, quote, quote_spanned};
use syn::Ident;
use syn::parse::Parser;
use syn::spanned::Spanned;
use syn::{FnArg, ItemFn, ItemImpl, LitStr, Pat, Token, Type};

use crate::errors::Errors;

/// The attribute's arguments.
struct Options {
    krate: TokenStream,
    actions: Vec<LitStr>,
    retry: RetryOptions,
}

/// The retry options, each as written.
#[derive(Default)]
struct RetryOptions {
    attempts: Option<syn::LitInt>,
    wait: Option<(LitStr, u128)>,
    backoff: Option<syn::LitFloat>,
    max_wait: Option<(LitStr, u128)>,
    timeout: Option<(LitStr, u128)>,
    retry_if: Option<syn::Path>,
    max_retry_after: Option<(LitStr, u128)>,
}

impl RetryOptions {
    fn is_empty(&self) -> bool {
        self.attempts.is_none()
            && self.wait.is_none()
            && self.backoff.is_none()
            && self.timeout.is_none()
            && self.retry_if.is_none()
            && self.max_retry_after.is_none()
    }
}

/// A duration written as `"200ms"`, `"30s"`, `"2m"`, `"1.5s"` or `"1h"`, in nanoseconds.
fn parse_duration(literal: &LitStr) -> syn::Result<u128> {
    let text = literal.value();
    let text = text.trim();
    let split = text
        .find(|ch: char| !(ch.is_ascii_digit() || ch == '.'))
        .unwrap_or(text.len());
    let (number, unit) = text.split_at(split);
    let scale: f64 = match unit.trim() {
        "ns" => 1.0,
        "us" | "µs" => 1e3,
        "ms" => 1e6,
        "s" => 1e9,
        "m" | "min" => 60e9,
        "h" => 3600e9,
        _ => {
            return Err(syn::Error::new(
                literal.span(),
                "write a duration as a number and a unit: \"200ms\", \"30s\", \"2m\" (units: \
                 ns, us, ms, s, m, h)",
            ));
        }
    };
    let number: f64 = number.parse().map_err(|_| {
        syn::Error::new(
            literal.span(),
            "write a duration as a number and a unit: \"200ms\", \"30s\", \"2m\"",
        )
    })?;
    // Whole nanoseconds: the cast cannot lose anything a timer could tell apart.
    #[allow(clippy::cast_possible_truncation, clippy::cast_sign_loss)]
    Ok((number * scale).round() as u128)
}

pub(crate) fn expand(attr: TokenStream, item: TokenStream) -> TokenStream {
    let mut errors = Errors::default();
    if let Ok(node_impl) = syn::parse2::<ItemImpl>(item.clone()) {
        return expand_impl(attr, &node_impl, errors);
    }
    let options = parse_options(attr, &mut errors);
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
    let generated = generate(&options, &function, &mut errors);
    let errors = errors.into_compile_errors();
    // A function that cannot be a node stays the function it was, beside the error.
    let generated = if generated.is_empty() {
        quote!(#function)
    } else {
        generated
    };
    quote!(#errors #generated)
}

/// `#[node]` on `impl Node<State> for Type`: the impl as written, and the impls that say its
/// `ACTIONS` to the type system, so that `flow!`'s check of its edges is seen by `cargo check`.
fn expand_impl(attr: TokenStream, node_impl: &ItemImpl, mut errors: Errors) -> TokenStream {
    let mut krate = quote!(::slateflow);
    let parser = syn::meta::parser(|meta| {
        if meta.path.is_ident("crate") {
            let path: syn::Path = meta.value()?.parse()?;
            krate = quote!(#path);
            Ok(())
        } else {
            Err(meta.error(
                "on a `Node` impl, `#[node]` takes only `crate = path`: the actions are the \
                 impl's `ACTIONS`, the retry policy its `retry()`",
            ))
        }
    });
    if let Err(error) = parser.parse2(attr) {
        errors.push(error);
    }
    let declared = impl_state(node_impl, &mut errors).and_then(|state| {
        let actions = impl_actions(node_impl, &mut errors)?;
        let self_ty = &node_impl.self_ty;
        Some(crate::actions::declare(
            &krate,
            &node_impl.generics,
            &quote!(#self_ty),
            &quote!(#state),
            &actions,
        ))
    });
    let errors = errors.into_compile_errors();
    quote! {
        #errors
        #node_impl
        const _: () = { #declared };
    }
}

/// The state of `impl Node<State> for Type`, or an error at the trait.
fn impl_state<'a>(node_impl: &'a ItemImpl, errors: &mut Errors) -> Option<&'a Type> {
    let state = node_impl.trait_.as_ref().and_then(|(.., path, _)| {
        let last = path.segments.last()?;
        let syn::PathArguments::AngleBracketed(arguments) = &last.arguments else {
            return None;
        };
        let node = ["Node", "BatchNode", "BatchPlan"]
            .iter()
            .any(|name| last.ident == name);
        match (node, arguments.args.first(), arguments.args.len()) {
            (true, Some(syn::GenericArgument::Type(state)), 1) => Some(state),
            _ => None,
        }
    });
    if state.is_none() {
        let at = node_impl.trait_.as_ref().map_or_else(
            || node_impl.self_ty.to_token_stream(),
            |(.., path, _)| path.to_token_stream(),
        );
        errors.at(
            at,
            "`#[node]` goes on an impl of `Node<State>`, `BatchNode<State>` or `BatchPlan<State>`, \
             or on a function over the state",
        );
    }
    state
}

/// The impl's `ACTIONS` (`"default"` when it has none), which must be a list of string literals
/// (or `DEFAULT_ACTION`); otherwise an error at it.
fn impl_actions(node_impl: &ItemImpl, errors: &mut Errors) -> Option<Vec<String>> {
    let actions = node_impl.items.iter().find_map(|item| match item {
        syn::ImplItem::Const(constant) if constant.ident == "ACTIONS" => Some(&constant.expr),
        _ => None,
    });
    let Some(actions) = actions else {
        return Some(vec!["default".to_owned()]);
    };
    let list = match actions {
        syn::Expr::Reference(reference) => match &*reference.expr {
            syn::Expr::Array(array) => Some(&array.elems),
            _ => None,
        },
        _ => None,
    };
    let action = |element: &syn::Expr| match element {
        syn::Expr::Lit(syn::ExprLit {
            lit: syn::Lit::Str(action),
            ..
        }) => Some(action.value()),
        syn::Expr::Path(path)
            if path
                .path
                .segments
                .last()
                .is_some_and(|last| last.ident == "DEFAULT_ACTION") =>
        {
            Some("default".to_owned())
        }
        _ => None,
    };
    let declared = list.and_then(|list| list.iter().map(action).collect::<Option<Vec<_>>>());
    if declared.is_none() {
        errors.at(
            actions,
            "`#[node]` reads a node's actions from a list of string literals: \
             `const ACTIONS: &'static [&'static str] = &[\"a\", \"b\"];`",
        );
    }
    declared
}

/// `actions = ["a", "b"]` and `crate = path`, comma-separated, any order.
fn parse_options(attr: TokenStream, errors: &mut Errors) -> Options {
    let mut options = Options {
        krate: quote!(::slateflow),
        actions: Vec::new(),
        retry: RetryOptions::default(),
    };
    let parser = syn::meta::parser(|meta| {
        if meta.path.is_ident("actions") {
            let value = meta.value()?;
            let content;
            syn::bracketed!(content in value);
            let list = content.parse_terminated(<LitStr as syn::parse::Parse>::parse, Token![,])?;
            for action in list {
                if options
                    .actions
                    .iter()
                    .any(|seen| seen.value() == action.value())
                {
                    errors.at(
                        &action,
                        format_args!("the action \"{}\" is listed twice", action.value()),
                    );
                } else {
                    options.actions.push(action);
                }
            }
            Ok(())
        } else if meta.path.is_ident("crate") {
            let path: syn::Path = meta.value()?.parse()?;
            options.krate = quote!(#path);
            Ok(())
        } else if meta.path.is_ident("attempts") {
            let attempts: syn::LitInt = meta.value()?.parse()?;
            if attempts.base10_parse::<u32>().map_or(true, |n| n == 0) {
                errors.at(
                    &attempts,
                    "`attempts` counts every attempt: write 1 or more",
                );
            }
            options.retry.attempts = Some(attempts);
            Ok(())
        } else if meta.path.is_ident("wait")
            || meta.path.is_ident("max_wait")
            || meta.path.is_ident("timeout")
            || meta.path.is_ident("max_retry_after")
        {
            let literal: LitStr = meta.value()?.parse()?;
            let nanos = parse_duration(&literal)?;
            let slot = if meta.path.is_ident("wait") {
                &mut options.retry.wait
            } else if meta.path.is_ident("max_wait") {
                &mut options.retry.max_wait
            } else if meta.path.is_ident("max_retry_after") {
                &mut options.retry.max_retry_after
            } else {
                &mut options.retry.timeout
            };
            *slot = Some((literal, nanos));
            Ok(())
        } else if meta.path.is_ident("backoff") {
            options.retry.backoff = Some(meta.value()?.parse()?);
            Ok(())
        } else if meta.path.is_ident("retry_if") {
            options.retry.retry_if = Some(meta.value()?.parse()?);
            Ok(())
        } else if meta.path.is_ident("retry") {
            Err(meta.error(
                "write `attempts = n` for how many attempts the body gets in all (as \
                 `Retry::attempts` counts them)",
            ))
        } else {
            Err(meta.error(
                "unknown `node` option; write `#[node(actions = [\"a\", \"b\"])]`, the retry \
                 options `attempts = 3, wait = \"200ms\", backoff = 2.0, max_wait = \"5s\", \
                 timeout = \"30s\", retry_if = path, max_retry_after = \"30s\"`, and `crate = \
                 path` when slateflow is renamed",
            ))
        }
    });
    if let Err(error) = parser.parse2(attr) {
        errors.push(error);
    }
    options
}

fn generate(options: &Options, function: &ItemFn, errors: &mut Errors) -> TokenStream {
    let signature = &function.sig;
    let Some(state_type) = state_type(signature, errors) else {
        return TokenStream::new();
    };
    let takes_context = signature.inputs.len() == 2;
    let krate = &options.krate;
    let name = &signature.ident;
    let vis = &function.vis;
    let docs = function
        .attrs
        .iter()
        .filter(|attr| attr.path().is_ident("doc"));
    let actions: Vec<&LitStr> = options.actions.iter().collect();
    let declared = if actions.is_empty() {
        vec!["default".to_owned()]
    } else {
        actions.iter().map(|action| action.value()).collect()
    };
    let declared = crate::actions::declare(
        krate,
        &syn::Generics::default(),
        &quote!(#name),
        &quote!(#state_type),
        &declared,
    );
    let actions = if actions.is_empty() {
        quote!(&[#krate::__private::DEFAULT_ACTION])
    } else {
        quote!(&[#(#actions),*])
    };
    let mut body_fn = function.clone();
    body_fn.sig.ident = syn::Ident::new("__node_body", Span::call_site());
    body_fn.attrs.retain(|attr| !attr.path().is_ident("doc"));
    body_fn.vis = syn::Visibility::Inherited;
    // The generated locals have mixed-site hygiene: items of the same name in the user's scope
    // cannot capture them.
    let state = Ident::new("__state", Span::mixed_site());
    let context = Ident::new("__context", Span::mixed_site());
    let context_argument = takes_context.then(|| quote!(, #context));
    let call = quote!(__node_body(#state #context_argument));
    let call = if signature.asyncness.is_some() {
        quote!(#call.await)
    } else {
        call
    };
    let output_span = match &signature.output {
        syn::ReturnType::Default => signature.ident.span(),
        syn::ReturnType::Type(_, ty) => ty.span(),
    };
    // The body's command or result, as the node's result; a wrong return type is reported at it.
    let krate_at_output = crate::spans::respan(krate.clone(), output_span);
    let convert = quote_spanned! {output_span=>
        #krate_at_output::__private::NodeOutput::<#state_type>::into_result
    };
    // rustc points at the argument: name it at the return type.
    let output = Ident::new("__node_output", output_span);
    let guards = crate::spans::local_guards([&state, &context, &output]);
    let result = quote! {
        let #output = #call;
        #convert(#output)
    };
    let output_type = match &signature.output {
        syn::ReturnType::Default => quote!(()),
        syn::ReturnType::Type(_, ty) => quote!(#ty),
    };
    let (retry_fn, result) = retried(options, state_type, &output_type, &context, result, errors);
    quote! {
        #(#docs)*
        #[allow(non_camel_case_types)]
        #[derive(::core::clone::Clone, ::core::marker::Copy, ::core::fmt::Debug, ::core::default::Default)]
        #vis struct #name;

        const _: () = {
        #guards
        #declared

        #[automatically_derived]
        impl #krate::__private::Node<#state_type> for #name {
            type Prep = ();
            type Exec = ();
            const ACTIONS: &'static [&'static str] = #actions;

            #retry_fn

            async fn prep(
                &self,
                _: &#state_type,
                _: &#krate::__private::Context<'_>,
            ) -> ::core::result::Result<(), #krate::__private::NodeError> {
                ::core::result::Result::Ok(())
            }

            async fn exec(&self, (): &()) -> ::core::result::Result<(), #krate::__private::NodeError> {
                ::core::result::Result::Ok(())
            }

            async fn post(
                &self,
                #state: &#state_type,
                (): (),
                (): (),
                #context: &#krate::__private::Context<'_>,
            ) -> ::core::result::Result<#krate::__private::Command<#state_type>, #krate::__private::NodeError> {
                #body_fn
                let _ = #context;
                #result
            }
        }
        };
    }
}

/// With retry options, the node's `retry()` and its result run under it; otherwise nothing and
/// the result as it is.
fn retried(
    options: &Options,
    state_type: &Type,
    output_type: &TokenStream,
    context: &Ident,
    result: TokenStream,
    errors: &mut Errors,
) -> (TokenStream, TokenStream) {
    let krate = &options.krate;
    if options.retry.is_empty() {
        if let Some((literal, _)) = &options.retry.max_wait {
            errors.at(
                literal,
                "`max_wait` caps the waits that `backoff` grows: add `backoff = 2.0`",
            );
        }
        (TokenStream::new(), result)
    } else {
        let policy = retry_policy(krate, &options.retry, errors);
        // The policy reads the retry hints of the function's error type, when it has them.
        let retry_fn = quote! {
            fn retry(&self) -> #krate::__private::Retry {
                use #krate::__private::{HintsRead as _, NoHintsRead as _};
                (&&#krate::__private::HintsOf::<
                    <#output_type as #krate::__private::NodeOutput<#state_type>>::Error,
                >::new())
                    .__slateflow_hints(#policy)
            }
        };
        let result = quote! {
            #krate::__private::retry_body(
                <Self as #krate::__private::Node<#state_type>>::retry(self),
                #context,
                || async { #result },
            )
            .await
        };
        (retry_fn, result)
    }
}

/// The `Retry` the options describe.
fn retry_policy(krate: &TokenStream, retry: &RetryOptions, errors: &mut Errors) -> TokenStream {
    let nanos = |nanos: u128| {
        let nanos = u64::try_from(nanos).unwrap_or(u64::MAX);
        quote!(::core::time::Duration::from_nanos(#nanos))
    };
    let attempts = retry
        .attempts
        .as_ref()
        .map_or_else(|| quote!(1), |attempts| quote!(#attempts));
    let mut policy = quote!(#krate::__private::Retry::attempts(#attempts));
    if let Some((_, wait)) = retry.wait {
        let wait = nanos(wait);
        policy = quote!(#policy.wait(#wait));
    }
    match (&retry.backoff, &retry.max_wait) {
        (Some(factor), max_wait) => {
            if factor
                .base10_parse::<f64>()
                .map_or(true, |factor| factor < 1.0)
            {
                errors.at(
                    factor,
                    "`backoff` multiplies the wait: write a factor of 1.0 or more",
                );
            }
            let max_wait = max_wait.as_ref().map_or_else(
                || quote!(::core::time::Duration::MAX),
                |(_, max)| nanos(*max),
            );
            policy = quote!(#policy.backoff(#factor, #max_wait));
        }
        (None, Some((literal, _))) => {
            errors.at(
                literal,
                "`max_wait` caps the waits that `backoff` grows: add `backoff = 2.0`",
            );
        }
        (None, None) => {}
    }
    if let Some((_, timeout)) = retry.timeout {
        let timeout = nanos(timeout);
        policy = quote!(#policy.timeout(#timeout));
    }
    if let Some(path) = &retry.retry_if {
        policy = quote!(#policy.retry_if(#path));
    }
    if let Some((_, limit)) = retry.max_retry_after {
        let limit = nanos(limit);
        policy = quote!(#policy.max_retry_after(#limit));
    }
    policy
}

/// The state type, from the first argument `&State`; `None` (with an error) when the signature
/// cannot be a node's.
fn state_type<'a>(signature: &'a syn::Signature, errors: &mut Errors) -> Option<&'a Type> {
    if let Some(receiver) = signature.receiver() {
        errors.at(
            receiver,
            "a node function takes the state, not `self`: `fn name(state: &State)`",
        );
        return None;
    }
    if !signature.generics.params.is_empty() {
        errors.at(
            &signature.generics,
            "a node function cannot be generic: a node works on one state type",
        );
        return None;
    }
    let inputs: Vec<&FnArg> = signature.inputs.iter().collect();
    let Some(FnArg::Typed(first)) = inputs.first() else {
        errors.push(syn::Error::new(
            signature.paren_token.span.join(),
            "a node function takes the state first: `fn name(state: &State) -> Result<Command<State>, E>`",
        ));
        return None;
    };
    let Type::Reference(reference) = &*first.ty else {
        errors.at(
            &first.ty,
            "a node function reads the state through a shared reference: `state: &State`",
        );
        return None;
    };
    if reference.mutability.is_some() {
        errors.at(
            reference,
            "a node function reads the state through a shared reference: `state: &State`; it \
             writes through the update it returns",
        );
        return None;
    }
    let state_type = &*reference.elem;
    if inputs.len() > 2 {
        errors.at(
            inputs[2],
            "a node function takes the state and, optionally, `&Context<'_>`; nothing more",
        );
        return None;
    }
    if let Some(FnArg::Typed(argument)) = inputs.get(1)
        && !matches!(&*argument.pat, Pat::Ident(_) | Pat::Wild(_))
    {
        errors.at(
            &argument.pat,
            "name the context argument with a plain name or `_`",
        );
    }
    Some(state_type)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn messages(attr: TokenStream, item: TokenStream) -> Vec<String> {
        let mut errors = Errors::default();
        let options = parse_options(attr, &mut errors);
        let function: ItemFn = syn::parse2(item).unwrap();
        let _ = generate(&options, &function, &mut errors);
        errors.messages()
    }

    #[test]
    fn reads_actions_and_crate() {
        let mut errors = Errors::default();
        let options = parse_options(quote!(crate = flowlib, actions = ["a", "b"]), &mut errors);
        assert!(errors.is_empty());
        assert_eq!(options.krate.to_string(), "flowlib");
        let actions: Vec<String> = options.actions.iter().map(LitStr::value).collect();
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
