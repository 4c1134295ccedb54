//! The grammar of `flow!`, read statement by statement.
//!
//! ```text
//! input      := ( "#![exhaustive]" )* statement*
//! statement  := ( "start" ":" node | chain ) ";"
//! chain      := target ( edge target )*
//! edge       := ">>" | "-" string-literal ">>"
//! target     := node | fork
//! fork       := "[" node ( "," node )+ ","? "]"   // parallel branches; joined by the `>>` after
//! node       := identifier            // a local variable holding a node
//! ```
//! A fork is followed by `>>` (its join) or ends the statement: it has no actions to route on.
//! The input is split at top-level `;` first and each statement parsed on its own, so a mistake in
//! one statement does not hide mistakes in the next.

use proc_macro2::{Delimiter, Span, TokenStream, TokenTree};
use syn::ext::IdentExt;
use syn::parse::{ParseStream, Parser};
use syn::spanned::Spanned;
use syn::{Ident, LitStr, Token, bracketed};

use crate::errors::Errors;

/// The parsed input.
pub(crate) struct FlowInput {
    /// The runtime's path (`$crate` from the `flow!` wrapper).
    pub(crate) krate: TokenStream,
    /// `#![exhaustive]`, where written.
    pub(crate) exhaustive: Option<Span>,
    /// `start: node;`, where written.
    pub(crate) start: Option<Ident>,
    pub(crate) chains: Vec<Chain>,
    /// Whether a statement was dropped for a grammar mistake: rules about the whole graph would
    /// then report follow-on errors, so they are skipped.
    pub(crate) dropped_statements: bool,
    /// Where the macro was called, for errors about the whole input.
    pub(crate) call_site: Span,
}

/// `a >> b - "x" >> c`
pub(crate) struct Chain {
    pub(crate) head: Target,
    pub(crate) links: Vec<Link>,
}

/// `>> b` or `- "x" >> b`
pub(crate) struct Link {
    /// The action's literal; `None` for `>>`, the `"default"` action.
    pub(crate) action: Option<LitStr>,
    pub(crate) arrow: Span,
    pub(crate) target: Target,
}

impl Link {
    /// Where errors about this edge's action belong: the literal, or `>>`.
    pub(crate) fn action_span(&self) -> Span {
        self.action.as_ref().map_or(self.arrow, LitStr::span)
    }
}

/// What an edge leads to: a node, or a fork of parallel branches.
pub(crate) enum Target {
    Node(Ident),
    Fork(Fork),
}

/// `[b, c, d]`: two or more branches.
pub(crate) struct Fork {
    pub(crate) branches: Vec<Ident>,
}

impl Target {
    /// The target as written, for messages: `b` or `[b, c]`.
    pub(crate) fn text(&self) -> String {
        match self {
            Self::Node(node) => node.to_string(),
            Self::Fork(fork) => fork_name(&fork.branches),
        }
    }
}

/// `[b, c]`: how a fork is named in messages and in the flow's graph.
pub(crate) fn fork_name(branches: &[Ident]) -> String {
    let names: Vec<String> = branches
        .iter()
        .map(|branch| branch.unraw().to_string())
        .collect();
    format!("[{}]", names.join(", "))
}

/// Reads `($crate) tokens...`; grammar mistakes are recorded and their statements skipped.
pub(crate) fn parse(input: TokenStream, errors: &mut Errors) -> FlowInput {
    let mut tokens = input.into_iter().peekable();
    let krate = match tokens.next() {
        Some(TokenTree::Group(group)) if group.delimiter() == Delimiter::Parenthesis => {
            group.stream()
        }
        _ => quote::quote!(::slateflow),
    };
    let mut input = FlowInput {
        krate,
        exhaustive: None,
        start: None,
        chains: Vec::new(),
        dropped_statements: false,
        call_site: Span::call_site(),
    };
    let mut statement = Vec::new();
    let mut rest: Vec<TokenTree> = tokens.collect();
    rest = take_inner_attributes(rest, &mut input, errors);
    for token in rest {
        match &token {
            TokenTree::Punct(punct) if punct.as_char() == ';' => {
                parse_statement(
                    std::mem::take(&mut statement),
                    punct.span(),
                    &mut input,
                    errors,
                );
            }
            _ => statement.push(token),
        }
    }
    if let Some(last) = statement.last() {
        input.dropped_statements = true;
        errors.push(syn::Error::new(
            last.span(),
            "expected `;` after this statement: every statement of a flow ends with `;`",
        ));
    }
    input
}

/// Removes the leading `#![...]` attributes, reading `#![exhaustive]`.
fn take_inner_attributes(
    tokens: Vec<TokenTree>,
    input: &mut FlowInput,
    errors: &mut Errors,
) -> Vec<TokenTree> {
    let mut index = 0;
    while let [
        TokenTree::Punct(pound),
        TokenTree::Punct(bang),
        TokenTree::Group(group),
        ..,
    ] = &tokens[index..]
    {
        if pound.as_char() != '#'
            || bang.as_char() != '!'
            || group.delimiter() != Delimiter::Bracket
        {
            break;
        }
        let inner: Vec<TokenTree> = group.stream().into_iter().collect();
        match inner.as_slice() {
            [TokenTree::Ident(word)] if word == "exhaustive" => {
                if input.exhaustive.is_some() {
                    errors.at(
                        group,
                        "`#![exhaustive]` is already written above: remove this one",
                    );
                }
                input.exhaustive = Some(word.span());
            }
            _ => errors.push(syn::Error::new(
                group.span(),
                "unknown flow attribute; the one `flow!` accepts is `#![exhaustive]`",
            )),
        }
        index += 3;
    }
    tokens.into_iter().skip(index).collect()
}

/// One statement, without its `;` (whose span is `end`).
fn parse_statement(tokens: Vec<TokenTree>, end: Span, input: &mut FlowInput, errors: &mut Errors) {
    if tokens.is_empty() {
        errors.push(syn::Error::new(end, "empty statement: remove this `;`"));
        return;
    }
    let is_start = matches!(
        tokens.as_slice(),
        [TokenTree::Ident(word), TokenTree::Punct(colon), ..]
            if word == "start" && colon.as_char() == ':'
    );
    let stream: TokenStream = tokens.into_iter().collect();
    if is_start {
        match parse_start.parse2(stream) {
            Ok(node) if input.start.is_some() => errors.at(
                &node,
                "the start node is already set above: a flow has one `start:`",
            ),
            Ok(node) => input.start = Some(node),
            Err(error) => {
                input.dropped_statements = true;
                errors.push(error);
            }
        }
    } else {
        match (|stream: ParseStream| parse_chain(stream)).parse2(stream) {
            Ok(chain) => input.chains.push(chain),
            Err(error) => {
                input.dropped_statements = true;
                errors.push(error);
            }
        }
    }
}

/// `start: node`
fn parse_start(input: ParseStream) -> syn::Result<Ident> {
    input.parse::<Ident>()?;
    input.parse::<Token![:]>()?;
    let node = parse_node(input, "after `start:`")?;
    if !input.is_empty() {
        return Err(input.error("expected `;` after the start node"));
    }
    Ok(node)
}

fn parse_chain(input: ParseStream) -> syn::Result<Chain> {
    let head = parse_target(input, "at the start of a statement")?;
    let mut links = Vec::new();
    let mut last = head.text();
    let mut after_fork = matches!(head, Target::Fork(_));
    while !input.is_empty() {
        let link = parse_link(input, &last, after_fork)?;
        last = link.target.text();
        after_fork = matches!(link.target, Target::Fork(_));
        links.push(link);
    }
    Ok(Chain { head, links })
}

/// `>> target` or `- "action" >> target`, after `from` (a fork when `after_fork`).
fn parse_link(input: ParseStream, from: &str, after_fork: bool) -> syn::Result<Link> {
    let lookahead = input.lookahead1();
    if lookahead.peek(Token![>>]) {
        let arrow: Token![>>] = input.parse()?;
        let target = parse_target(input, "after `>>`")?;
        return Ok(Link {
            action: None,
            arrow: arrow.span(),
            target,
        });
    }
    if lookahead.peek(Token![-]) {
        let minus: Token![-] = input.parse()?;
        if after_fork {
            return Err(syn::Error::new(
                minus.span,
                format_args!(
                    "a fork has no actions: its branches' updates merge, then `>>` leads to the \
                     next node; write `{from} >> next` and route on an action from `next`"
                ),
            ));
        }
        if input.is_empty() {
            return Err(syn::Error::new(
                minus.span,
                format_args!("expected an action after `-`: write `{from} - \"action\" >> next`"),
            ));
        }
        if !input.peek(LitStr) {
            let found: TokenTree = input.parse()?;
            return Err(syn::Error::new(
                found.span(),
                format_args!(
                    "an action is a string literal: write `{from} - \"{}\" >> next`",
                    found.to_string().trim_matches('"')
                ),
            ));
        }
        let action: LitStr = input.parse()?;
        if !input.peek(Token![>>]) {
            let at = if input.is_empty() {
                action.span()
            } else {
                input.span()
            };
            return Err(syn::Error::new(
                at,
                format_args!(
                    "expected `>>` and the node that handles \"{}\": write `{from} - \"{}\" >> next`",
                    action.value(),
                    action.value()
                ),
            ));
        }
        let arrow: Token![>>] = input.parse()?;
        let target = parse_target(input, "after `>>`")?;
        return Ok(Link {
            action: Some(action),
            arrow: arrow.span(),
            target,
        });
    }
    if input.peek(Ident) {
        return Err(input.error(format_args!(
            "expected `;` or `>>` after `{from}`: end the statement with `;` before starting another"
        )));
    }
    Err(lookahead.error())
}

/// A node name, or a fork `[b, c]`.
fn parse_target(input: ParseStream, place: &str) -> syn::Result<Target> {
    if !input.peek(syn::token::Bracket) {
        return parse_node(input, place).map(Target::Node);
    }
    let content;
    let brackets = bracketed!(content in input);
    let span = brackets.span.join();
    let mut branches = Vec::new();
    while !content.is_empty() {
        if content.peek(syn::token::Bracket) {
            return Err(content.error(
                "a branch is a node or a flow, not a fork: to fork inside a branch, build that \
                 branch as its own flow",
            ));
        }
        branches.push(parse_node(&content, "in the fork")?);
        if content.is_empty() {
            break;
        }
        content.parse::<Token![,]>()?;
    }
    match branches.as_slice() {
        [] => Err(syn::Error::new(
            span,
            "a fork needs two or more branches: write `a >> [b, c] >> d`",
        )),
        [only] => Err(syn::Error::new(
            span,
            format_args!(
                "a fork of one branch is just that node: write `>> {only}`, or list two or more \
                 branches"
            ),
        )),
        _ => Ok(Target::Fork(Fork { branches })),
    }
}

/// A node name: a plain identifier.
fn parse_node(input: ParseStream, place: &str) -> syn::Result<Ident> {
    if input.peek(Ident) {
        return input.parse();
    }
    if input.is_empty() {
        return Err(input.error(format_args!("expected a node name {place}")));
    }
    Err(input.error(format_args!(
        "expected a node name {place}: a node is a local variable holding a `Node`"
    )))
}

#[cfg(test)]
mod tests {
    use quote::quote;

    use super::*;

    fn parsed(tokens: &TokenStream) -> (FlowInput, Vec<String>) {
        let mut errors = Errors::default();
        let input = parse(quote!((::slateflow) #tokens), &mut errors);
        (input, errors.messages())
    }

    #[test]
    fn reads_chains_actions_start_and_exhaustive() {
        let (input, errors) = parsed(&quote! {
            #![exhaustive]
            start: b;
            a >> b - "retry" >> a;
            b - "done" >> c;
        });
        assert!(errors.is_empty(), "{errors:?}");
        assert!(input.exhaustive.is_some());
        assert_eq!(input.start.unwrap().to_string(), "b");
        assert_eq!(input.chains.len(), 2);
        let actions: Vec<Option<String>> = input.chains[0]
            .links
            .iter()
            .map(|link| link.action.as_ref().map(LitStr::value))
            .collect();
        assert_eq!(actions, [None, Some("retry".into())]);
        assert_eq!(input.chains[0].links[1].target.text(), "a");
    }

    #[test]
    fn every_bad_statement_is_reported_once() {
        let (input, errors) = parsed(&quote! {
            a >> >> b;
            a - x >> b;
            a - "x";
            a >> b c >> d;
            ok >> fine;
            a >> b
        });
        assert_eq!(input.chains.len(), 1, "only the good statement is kept");
        assert_eq!(errors.len(), 5, "{errors:?}");
        assert!(errors[0].starts_with("expected a node name after `>>`"));
        assert!(errors[1].starts_with("an action is a string literal"));
        assert!(errors[2].starts_with("expected `>>` and the node that handles \"x\""));
        assert!(errors[3].starts_with("expected `;` or `>>` after `b`"));
        assert!(errors[4].starts_with("expected `;` after this statement"));
    }

    #[test]
    fn reads_forks_and_rejects_bad_ones() {
        let (input, errors) = parsed(&quote! {
            a >> [b, c,] >> d;
            [x, y] >> z;
            a >> [];
            a >> [b];
            a >> [b, [c, d]];
            a >> [b, c] - "x" >> d;
            a >> [b, "c"];
        });
        assert_eq!(input.chains.len(), 2, "{errors:?}");
        assert_eq!(input.chains[0].links[0].target.text(), "[b, c]");
        assert_eq!(input.chains[1].head.text(), "[x, y]");
        assert_eq!(errors.len(), 5, "{errors:?}");
        assert!(errors[0].starts_with("a fork needs two or more branches"));
        assert!(errors[1].starts_with("a fork of one branch is just that node: write `>> b`"));
        assert!(errors[2].starts_with("a branch is a node or a flow, not a fork"));
        assert!(errors[3].starts_with("a fork has no actions"));
        assert!(errors[4].starts_with("expected a node name in the fork"));
    }

    #[test]
    fn unknown_attributes_and_second_start_are_errors() {
        let (_, errors) = parsed(&quote! {
            #![exhaustve]
            start: a;
            start: b;
            a >> b;
        });
        assert_eq!(errors.len(), 2, "{errors:?}");
        assert!(errors[0].starts_with("unknown flow attribute"));
        assert!(errors[1].starts_with("the start node is already set"));
    }
}
