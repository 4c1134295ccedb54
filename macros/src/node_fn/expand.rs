//! The expand phase of `#[node]`: the code of a node function (a unit struct and its `Node` impl,
//! the body run as its `post`, under its retry policy when it has one) and of a `Node` impl (the
//! impl as written, and the impls that say its actions). Pure: every error was reported by the
//! earlier phases.

use proc_macro2::{Span, TokenStream};
use quote::{quote, quote_spanned};
use syn::spanned::Spanned;
use syn::{Ident, ItemImpl, LitStr, Type};

use super::parse::{NodeFn, Options, RetryOptions};

/// `#[node]` on `impl Node<State> for Type`: the impl as written, and the impls that say its
/// `ACTIONS` to the type system, so that `flow!`'s check of its edges is seen by `cargo check`.
pub(super) fn node_impl(
    krate: &TokenStream,
    node_impl: &ItemImpl,
    state: &Type,
    actions: &[String],
) -> TokenStream {
    let self_ty = &node_impl.self_ty;
    let declared = crate::actions::declare(
        krate,
        &node_impl.generics,
        &quote!(#self_ty),
        &quote!(#state),
        actions,
    );
    quote! {
        #node_impl
        const _: () = { #declared };
    }
}

/// A node function's unit struct and its `Node` impl.
pub(super) fn node_fn(options: &Options, node: &NodeFn<'_>) -> TokenStream {
    let NodeFn {
        function,
        state_type,
        takes_context,
        output_type,
    } = node;
    let (function, takes_context) = (*function, *takes_context);
    let signature = &function.sig;
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
    let (retry_fn, result) = retried(options, state_type, output_type, &context, result);
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
) -> (TokenStream, TokenStream) {
    let krate = &options.krate;
    if options.retry.is_empty() {
        (TokenStream::new(), result)
    } else {
        let policy = retry_policy(krate, &options.retry);
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
fn retry_policy(krate: &TokenStream, retry: &RetryOptions) -> TokenStream {
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
    if let Some(factor) = &retry.backoff {
        let max_wait = retry.max_wait.as_ref().map_or_else(
            || quote!(::core::time::Duration::MAX),
            |(_, max)| nanos(*max),
        );
        policy = quote!(#policy.backoff(#factor, #max_wait));
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
