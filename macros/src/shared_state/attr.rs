//! The attributes `#[derive(SharedState)]` reads.
//!
//! ```text
//! field attribute:      #[reducer(add)] | #[reducer(append)] | #[reducer(queue)]
//!                       | #[reducer(with = path)]
//! container attribute:  #[slateflow(crate = path)]
//!                       #[slateflow(conversation)] | #[slateflow(conversation(messages = f, histories = g))]
//!                       #[slateflow(conversation(routing_reason [= f], counters [= g]))]
//! ```
//! It also looks at `#[serde(skip)]` (and `skip_serializing`, `skip_deserializing`) on fields, so that
//! update slots skip the same fields serde skips.

use proc_macro2::{TokenStream, TokenTree};
use syn::ext::IdentExt;
use syn::parse::ParseStream;
use syn::{Attribute, Ident, Meta, Token};

use crate::errors::Errors;

const REDUCER_FORMS: &str =
    "`#[reducer(add)]`, `#[reducer(append)]`, `#[reducer(queue)]` or `#[reducer(with = path)]`";

/// How writes to a field combine.
#[cfg_attr(test, derive(Debug, PartialEq))]
pub(crate) enum Reducer {
    LastWrite,
    Add,
    Append,
    /// A first-in, first-out `Queue`: appended to, and taken from at the front.
    Queue,
    With(syn::ExprPath),
}

/// The field's reducer; `LastWrite` without a `#[reducer]`, and after a mistake (which is recorded).
pub(crate) fn field_reducer(attrs: &[Attribute], errors: &mut Errors) -> Reducer {
    let mut reducer_attrs = attrs.iter().filter(|attr| attr.path().is_ident("reducer"));
    let Some(first) = reducer_attrs.next() else {
        return Reducer::LastWrite;
    };
    let mut duplicated = false;
    for duplicate in reducer_attrs {
        errors.at(
            duplicate,
            "a field has one reducer: remove this second `#[reducer]` attribute",
        );
        errors.at(first, "first `#[reducer]` attribute here");
        duplicated = true;
    }
    if duplicated {
        // Either choice could cause follow-on bound errors; the user must pick one.
        return Reducer::LastWrite;
    }
    match parse_reducer(first) {
        Ok(reducer) => reducer,
        Err(error) => {
            errors.push(error);
            Reducer::LastWrite
        }
    }
}

fn parse_reducer(attr: &Attribute) -> syn::Result<Reducer> {
    let list = match &attr.meta {
        Meta::List(list) if !list.tokens.is_empty() => list,
        Meta::List(list) => {
            return Err(syn::Error::new(
                list.delimiter.span().join(),
                format_args!("expected a reducer: {REDUCER_FORMS}"),
            ));
        }
        Meta::Path(_) | Meta::NameValue(_) => {
            return Err(syn::Error::new_spanned(
                attr,
                format_args!("expected a reducer: {REDUCER_FORMS}"),
            ));
        }
    };
    list.parse_args_with(|input: ParseStream| {
        let reducer = parse_reducer_word(input)?;
        if input.peek(Token![,]) {
            input.parse::<Token![,]>()?;
        }
        if !input.is_empty() {
            let rest: TokenStream = input.parse()?;
            return Err(syn::Error::new_spanned(
                rest,
                "a field has one reducer: remove this second one",
            ));
        }
        Ok(reducer)
    })
}

/// `add` | `append` | `queue` | `with = path`
fn parse_reducer_word(input: ParseStream) -> syn::Result<Reducer> {
    if !input.peek(Ident) {
        if input.peek(syn::LitStr) {
            return Err(input.error(format_args!(
                "write the reducer without quotes: {REDUCER_FORMS}"
            )));
        }
        return Err(input.error(format_args!("expected a reducer: {REDUCER_FORMS}")));
    }
    let word: Ident = input.parse()?;
    match word.to_string().as_str() {
        "add" => Ok(Reducer::Add),
        "append" => Ok(Reducer::Append),
        "queue" => Ok(Reducer::Queue),
        "with" => parse_with(&word, input),
        other => Err(syn::Error::new(
            word.span(),
            format_args!(
                "unknown reducer `{other}`; expected {REDUCER_FORMS}{}",
                synonym_hint(other)
            ),
        )),
    }
}

/// The rest of `with = path`, after `with`.
fn parse_with(with: &Ident, input: ParseStream) -> syn::Result<Reducer> {
    const FORM: &str = "`with = path`, where `path` names a `fn(&mut T, T)`";
    if !input.peek(Token![=]) {
        return Err(syn::Error::new(
            with.span(),
            format_args!("expected `=` after `with`: write {FORM}"),
        ));
    }
    let equals: Token![=] = input.parse()?;
    if input.is_empty() {
        return Err(syn::Error::new(
            equals.span,
            format_args!("expected a function path after `with =`: write {FORM}"),
        ));
    }
    if input.peek(syn::LitStr) {
        return Err(input.error(format_args!(
            "write the function path without quotes: {FORM}"
        )));
    }
    if !(input.peek(Ident::peek_any) || input.peek(Token![::]) || input.peek(Token![<])) {
        return Err(input.error(format_args!("expected a function path: write {FORM}")));
    }
    input.parse().map(Reducer::With)
}

/// Names other libraries use for our reducers.
fn synonym_hint(word: &str) -> &'static str {
    match word {
        "sum" | "plus" | "increment" | "add_assign" => "; did you mean `add`?",
        "push" | "extend" | "concat" | "concatenate" | "list" => "; did you mean `append`?",
        "fifo" | "deque" | "channel" | "inbox" | "mailbox" => "; did you mean `queue`?",
        "last" | "last_value" | "replace" | "overwrite" | "lww" => {
            "; last write wins is the default: remove the attribute"
        }
        "custom" | "func" | "function" | "fn" => "; did you mean `with = path`?",
        _ => "",
    }
}

/// What the container attribute says.
pub(crate) struct Container {
    /// `#[slateflow(crate = path)]`, or `::slateflow`.
    pub(crate) crate_path: syn::Path,
    /// `#[slateflow(conversation ...)]`: the fields that hold the global messages and the
    /// per-agent histories, and the attribute's word, for errors.
    pub(crate) conversation: Option<Conversation>,
}

#[cfg(test)]
impl Container {
    /// A container attribute that names only the crate.
    pub(crate) fn plain(crate_path: syn::Path) -> Self {
        Self {
            crate_path,
            conversation: None,
        }
    }
}

/// The fields of `#[slateflow(conversation)]`.
pub(crate) struct Conversation {
    pub(crate) messages: Ident,
    pub(crate) histories: Ident,
    /// The field an agent's turn writes its routing reason to, when named.
    pub(crate) routing_reason: Option<Ident>,
    /// The field an agent's turn adds its counts to, when named.
    pub(crate) counters: Option<Ident>,
    pub(crate) at: Ident,
}

/// `#[slateflow(crate = path, conversation(...))]`.
pub(crate) fn container(attrs: &[Attribute], errors: &mut Errors) -> Container {
    let mut container = Container {
        crate_path: syn::parse_quote!(::slateflow),
        conversation: None,
    };
    for attr in attrs
        .iter()
        .filter(|attr| attr.path().is_ident("slateflow"))
    {
        let parsed = attr.parse_nested_meta(|meta| {
            if meta.path.is_ident("crate") {
                container.crate_path = meta.value()?.parse()?;
                Ok(())
            } else if meta.path.is_ident("conversation") {
                let at = meta.path.require_ident()?.clone();
                let mut messages = Ident::new("messages", at.span());
                let mut histories = Ident::new("histories", at.span());
                let (mut routing_reason, mut counters) = (None, None);
                if meta.input.peek(syn::token::Paren) {
                    meta.parse_nested_meta(|field| {
                        // `routing_reason` alone names the field of that name.
                        let named = |word: &str| -> syn::Result<Ident> {
                            if field.input.peek(Token![=]) {
                                field.value()?.parse()
                            } else {
                                Ok(Ident::new(word, field.path.segments[0].ident.span()))
                            }
                        };
                        if field.path.is_ident("messages") {
                            messages = field.value()?.parse()?;
                            Ok(())
                        } else if field.path.is_ident("histories") {
                            histories = field.value()?.parse()?;
                            Ok(())
                        } else if field.path.is_ident("routing_reason") {
                            routing_reason = Some(named("routing_reason")?);
                            Ok(())
                        } else if field.path.is_ident("counters") {
                            counters = Some(named("counters")?);
                            Ok(())
                        } else {
                            Err(field.error(
                                "`conversation` names its fields: `conversation(messages = \
                                 field, histories = field)`, and to keep what agents' turns \
                                 did, `routing_reason [= field]` and `counters [= field]`",
                            ))
                        }
                    })?;
                }
                container.conversation = Some(Conversation {
                    messages,
                    histories,
                    routing_reason,
                    counters,
                    at,
                });
                Ok(())
            } else {
                Err(meta.error(
                    "unknown `slateflow` option; the derive accepts `#[slateflow(crate = path)]` \
                     and `#[slateflow(conversation)]`",
                ))
            }
        });
        if let Err(error) = parsed {
            errors.push(error);
        }
    }
    container
}

/// Whether a `#[serde(...)]` attribute skips the field in either direction.
///
/// Only reads: serde itself reports mistakes in its attributes.
pub(crate) fn serde_skips(attrs: &[Attribute]) -> bool {
    attrs
        .iter()
        .filter(|attr| attr.path().is_ident("serde"))
        .filter_map(|attr| match &attr.meta {
            Meta::List(list) => Some(list.tokens.clone()),
            _ => None,
        })
        .any(|tokens| {
            let mut at_key = true;
            tokens.into_iter().any(|token| {
                let skips = at_key
                    && matches!(&token, TokenTree::Ident(ident)
                        if ident == "skip" || ident == "skip_serializing" || ident == "skip_deserializing");
                at_key = matches!(&token, TokenTree::Punct(punct) if punct.as_char() == ',');
                skips
            })
        })
}

#[cfg(test)]
mod tests {
    use syn::parse_quote;

    use super::*;

    fn reducer_of(field: &syn::Field) -> (Reducer, Vec<String>) {
        let mut errors = Errors::default();
        let reducer = field_reducer(&field.attrs, &mut errors);
        (reducer, errors.messages())
    }

    #[test]
    fn reads_each_reducer() {
        assert_eq!(
            reducer_of(&parse_quote!(x: u8)),
            (Reducer::LastWrite, vec![])
        );
        assert_eq!(
            reducer_of(&parse_quote!(#[reducer(add)] x: u8)),
            (Reducer::Add, vec![])
        );
        assert_eq!(
            reducer_of(&parse_quote!(#[reducer(append,)] x: Vec<u8>)),
            (Reducer::Append, vec![])
        );
        assert_eq!(
            reducer_of(&parse_quote!(#[reducer(with = crate::max::<u8>)] x: u8)),
            (Reducer::With(parse_quote!(crate::max::<u8>)), vec![])
        );
    }

    #[test]
    fn mistakes_fall_back_to_last_write_with_one_error_each() {
        let cases: [(syn::Field, &str); 8] = [
            (parse_quote!(#[reducer] x: u8), "expected a reducer"),
            (parse_quote!(#[reducer()] x: u8), "expected a reducer"),
            (parse_quote!(#[reducer(sum)] x: u8), "did you mean `add`?"),
            (parse_quote!(#[reducer("add")] x: u8), "without quotes"),
            (
                parse_quote!(#[reducer(with)] x: u8),
                "expected `=` after `with`",
            ),
            (
                parse_quote!(#[reducer(with = )] x: u8),
                "expected a function path after",
            ),
            (
                parse_quote!(#[reducer(with = "f")] x: u8),
                "path without quotes",
            ),
            (
                parse_quote!(#[reducer(add, append)] x: u8),
                "a field has one reducer",
            ),
        ];
        for (field, expected) in cases {
            let (reducer, messages) = reducer_of(&field);
            assert_eq!(reducer, Reducer::LastWrite);
            assert_eq!(messages.len(), 1, "{messages:?}");
            assert!(
                messages[0].contains(expected),
                "{messages:?} lacks {expected:?}"
            );
        }
    }

    #[test]
    fn two_reducer_attributes_point_at_both() {
        let (reducer, messages) =
            reducer_of(&parse_quote!(#[reducer(add)] #[reducer(append)] x: u8));
        assert_eq!(reducer, Reducer::LastWrite);
        assert_eq!(
            messages,
            [
                "a field has one reducer: remove this second `#[reducer]` attribute",
                "first `#[reducer]` attribute here"
            ]
        );
    }

    #[test]
    fn crate_path_defaults_and_overrides() {
        let mut errors = Errors::default();
        let default: syn::Path = parse_quote!(::slateflow);
        assert_eq!(container(&[], &mut errors).crate_path, default);
        let attrs: Vec<Attribute> = vec![parse_quote!(#[slateflow(crate = flowlib)])];
        let renamed: syn::Path = parse_quote!(flowlib);
        assert_eq!(container(&attrs, &mut errors).crate_path, renamed);
        assert!(errors.is_empty());
        let attrs: Vec<Attribute> = vec![parse_quote!(#[slateflow(krate = flowlib)])];
        container(&attrs, &mut errors);
        assert_eq!(errors.messages().len(), 1);
    }

    #[test]
    fn conversation_names_its_fields_or_takes_the_usual_ones() {
        let mut errors = Errors::default();
        let attrs: Vec<Attribute> = vec![parse_quote!(#[slateflow(conversation)])];
        let conversation = container(&attrs, &mut errors).conversation.unwrap();
        assert_eq!(
            (
                conversation.messages.to_string(),
                conversation.histories.to_string()
            ),
            ("messages".into(), "histories".into())
        );
        let attrs: Vec<Attribute> = vec![
            parse_quote!(#[slateflow(crate = x, conversation(histories = agents, messages = chat))]),
        ];
        let conversation = container(&attrs, &mut errors).conversation.unwrap();
        assert_eq!(
            (
                conversation.messages.to_string(),
                conversation.histories.to_string()
            ),
            ("chat".into(), "agents".into())
        );
        assert!(conversation.routing_reason.is_none() && conversation.counters.is_none());
        // What agents' turns did: a field of the option's name, or the one named.
        let attrs: Vec<Attribute> =
            vec![parse_quote!(#[slateflow(conversation(routing_reason, counters = work))])];
        let conversation = container(&attrs, &mut errors).conversation.unwrap();
        assert_eq!(
            (
                conversation.routing_reason.map(|field| field.to_string()),
                conversation.counters.map(|field| field.to_string())
            ),
            (Some("routing_reason".into()), Some("work".into()))
        );
        assert!(errors.is_empty());
        let attrs: Vec<Attribute> = vec![parse_quote!(#[slateflow(conversation(log = x))])];
        container(&attrs, &mut errors);
        assert!(errors.messages()[0].contains("`conversation` names its fields"));
    }

    #[test]
    fn serde_skip_is_read_as_a_key_only() {
        let skips = |field: syn::Field| serde_skips(&field.attrs);
        assert!(skips(parse_quote!(#[serde(skip)] x: u8)));
        assert!(skips(
            parse_quote!(#[serde(rename = "y", skip_serializing)] x: u8)
        ));
        assert!(skips(parse_quote!(#[serde(skip_deserializing)] x: u8)));
        assert!(!skips(
            parse_quote!(#[serde(skip_serializing_if = "skip")] x: u8)
        ));
        assert!(!skips(parse_quote!(#[serde(default)] x: u8)));
        assert!(!skips(parse_quote!(x: u8)));
    }
}
