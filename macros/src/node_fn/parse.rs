//! The parse phase of `#[node]`: the attribute's options, as written, and a typed view of the
//! function (its state type, whether it takes the context, its return type) or of the impl (its
//! state and its `ACTIONS`). A signature that cannot be a node's is an error here, at its token;
//! the rules between options are `check`'s.

use proc_macro2::TokenStream;
use quote::{ToTokens, quote};
use syn::parse::Parser;
use syn::{FnArg, ItemFn, ItemImpl, LitStr, Pat, Token, Type};

use crate::errors::Errors;

/// The attribute's arguments.
pub(super) struct Options {
    pub(super) krate: TokenStream,
    pub(super) actions: Vec<LitStr>,
    pub(super) retry: RetryOptions,
}

/// The retry options, each as written.
#[derive(Default)]
pub(super) struct RetryOptions {
    pub(super) attempts: Option<syn::LitInt>,
    pub(super) wait: Option<(LitStr, u128)>,
    pub(super) backoff: Option<syn::LitFloat>,
    pub(super) max_wait: Option<(LitStr, u128)>,
    pub(super) timeout: Option<(LitStr, u128)>,
    pub(super) retry_if: Option<syn::Path>,
    pub(super) max_retry_after: Option<(LitStr, u128)>,
}

impl RetryOptions {
    pub(super) fn is_empty(&self) -> bool {
        self.attempts.is_none()
            && self.wait.is_none()
            && self.backoff.is_none()
            && self.timeout.is_none()
            && self.retry_if.is_none()
            && self.max_retry_after.is_none()
    }
}

/// A function with `#[node]`, read: what the expansion needs of it.
pub(super) struct NodeFn<'a> {
    pub(super) function: &'a ItemFn,
    /// `State` of its first argument, `&State`.
    pub(super) state_type: &'a Type,
    /// Whether it takes `&Context<'_>` second.
    pub(super) takes_context: bool,
    /// Its return type (`()` when it declares none, which the expansion reports).
    pub(super) output_type: TokenStream,
}

impl<'a> NodeFn<'a> {
    /// Reads `function`; `None` (with the errors recorded) when its signature cannot be a node's.
    pub(super) fn from_syn(function: &'a ItemFn, errors: &mut Errors) -> Option<Self> {
        let signature = &function.sig;
        let state_type = state_type(signature, errors)?;
        let output_type = match &signature.output {
            syn::ReturnType::Default => quote!(()),
            syn::ReturnType::Type(_, ty) => quote!(#ty),
        };
        Some(Self {
            function,
            state_type,
            takes_context: signature.inputs.len() == 2,
            output_type,
        })
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

/// `actions = ["a", "b"]` and `crate = path`, comma-separated, any order.
pub(super) fn options(attr: TokenStream, errors: &mut Errors) -> Options {
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
            options.actions.extend(list);
            Ok(())
        } else if meta.path.is_ident("crate") {
            let path: syn::Path = meta.value()?.parse()?;
            options.krate = quote!(#path);
            Ok(())
        } else if meta.path.is_ident("attempts") {
            options.retry.attempts = Some(meta.value()?.parse()?);
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

/// The options of `#[node]` on an impl: only `crate = path` (the actions are the impl's `ACTIONS`,
/// the retry policy its `retry()`).
pub(super) fn impl_options(attr: TokenStream, errors: &mut Errors) -> TokenStream {
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
    krate
}

/// The state of `impl Node<State> for Type`, or an error at the trait.
pub(super) fn impl_state<'a>(node_impl: &'a ItemImpl, errors: &mut Errors) -> Option<&'a Type> {
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
pub(super) fn impl_actions(node_impl: &ItemImpl, errors: &mut Errors) -> Option<Vec<String>> {
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
