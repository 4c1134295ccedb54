//! `prompt!(State, "... {field} ...")`: a template whose placeholders are checked against the
//! state's fields while the program compiles.
//!
//! The macro splits the literal into text and placeholders (reporting brace mistakes at the
//! literal) and emits, for each placeholder, a `const` check that rustc evaluates during
//! `cargo check`: a name that is no field fails it with a message naming the placeholder, the
//! state and the nearest field. The pieces become a `'static` slice, so rendering parses nothing.

use proc_macro2::{Span, TokenStream};
use quote::quote;
use syn::parse::{Parse, ParseStream};
use syn::{LitStr, Token, Type};

/// `($crate) State, "template"`.
struct Input {
    krate: TokenStream,
    state: Type,
    template: LitStr,
}

impl Parse for Input {
    fn parse(input: ParseStream<'_>) -> syn::Result<Self> {
        let krate;
        syn::parenthesized!(krate in input);
        let krate: TokenStream = krate.parse()?;
        let state: Type = input.parse().map_err(|error| {
            syn::Error::new(
                error.span(),
                "`prompt!` takes the state type first: `prompt!(State, \"... {field} ...\")`",
            )
        })?;
        input.parse::<Token![,]>()?;
        let template: LitStr = input.parse().map_err(|error| {
            syn::Error::new(
                error.span(),
                "`prompt!` takes a string literal after the state type; for a template read at \
                 run time, use `Prompt::parse`",
            )
        })?;
        if input.peek(Token![,]) {
            input.parse::<Token![,]>()?;
        }
        if !input.is_empty() {
            return Err(input.error("`prompt!` takes the state type and one string literal"));
        }
        Ok(Self {
            krate,
            state,
            template,
        })
    }
}

/// A piece of the template.
#[derive(Debug, PartialEq)]
enum Piece {
    Text(String),
    Field(String),
}

pub(crate) fn expand(input: TokenStream) -> TokenStream {
    let Input {
        krate,
        state,
        template,
    } = match syn::parse2(input) {
        Ok(input) => input,
        Err(error) => return error.to_compile_error(),
    };
    let pieces = match split(&template.value()) {
        Ok(pieces) => pieces,
        Err(message) => {
            // The error, and an empty prompt of the right type: code using it shows no
            // follow-on errors.
            let error = syn::Error::new(template.span(), message).to_compile_error();
            return quote! {{
                #error
                #krate::__private::prompt::<#state>(&[])
            }};
        }
    };
    let span = template.span();
    let state_name = quote!(#state).to_string().replace(' ', "");
    let checks = pieces.iter().filter_map(|piece| match piece {
        // Every token at the literal, so that rustc reports a failed check there.
        Piece::Field(name) => Some(crate::spans::relocate(
            quote! {
                const _: () = #krate::__private::check_placeholder::<#state>(#state_name, #name);
            },
            span,
        )),
        Piece::Text(_) => None,
    });
    let parts = pieces.iter().map(|piece| match piece {
        Piece::Text(text) => {
            quote!(#krate::__private::PromptPart::Text(::std::borrow::Cow::Borrowed(#text)))
        }
        Piece::Field(name) => {
            quote!(#krate::__private::PromptPart::Field(::std::borrow::Cow::Borrowed(#name)))
        }
    });
    let parts_ident = syn::Ident::new("__SLATEFLOW_PROMPT_PARTS", Span::mixed_site());
    quote! {{
        #(#checks)*
        const #parts_ident: &[#krate::__private::PromptPart] = &[#(#parts),*];
        #krate::__private::prompt::<#state>(#parts_ident)
    }}
}

/// Splits a template as `Prompt::parse` does; the error says what is wrong and where.
fn split(template: &str) -> Result<Vec<Piece>, String> {
    let mut pieces = Vec::new();
    let mut text = String::new();
    let mut chars = template.char_indices().peekable();
    while let Some((at, ch)) = chars.next() {
        match ch {
            '{' if chars.peek().map(|&(_, next)| next) == Some('{') => {
                chars.next();
                text.push('{');
            }
            '}' if chars.peek().map(|&(_, next)| next) == Some('}') => {
                chars.next();
                text.push('}');
            }
            '{' => {
                let mut name = String::new();
                let mut closed = false;
                while let Some(&(_, next)) = chars.peek() {
                    if next == '}' {
                        chars.next();
                        closed = true;
                        break;
                    }
                    if !(next.is_ascii_alphanumeric() || next == '_') {
                        break;
                    }
                    name.push(next);
                    chars.next();
                }
                let problem = if !closed && chars.peek().is_none() {
                    Some("a `{` that is never closed")
                } else if !closed {
                    Some("a `{` that does not start a `{field}` placeholder")
                } else if name.is_empty() {
                    Some("an empty placeholder `{}`")
                } else if name.starts_with(|first: char| first.is_ascii_digit()) {
                    Some("a placeholder that starts with a digit")
                } else {
                    None
                };
                if let Some(problem) = problem {
                    let before = &template[..at];
                    return Err(format!(
                        "the template has {problem} after `{}`; write `{{{{` and `}}}}` for \
                         literal braces",
                        tail(before)
                    ));
                }
                if !text.is_empty() {
                    pieces.push(Piece::Text(std::mem::take(&mut text)));
                }
                pieces.push(Piece::Field(name));
            }
            '}' => {
                return Err(format!(
                    "the template has a `}}` that closes no placeholder after `{}`; write `}}}}` \
                     for a literal brace",
                    tail(&template[..at])
                ));
            }
            other => text.push(other),
        }
    }
    if !text.is_empty() {
        pieces.push(Piece::Text(text));
    }
    Ok(pieces)
}

/// The last few characters of `text`, to say where in a template a mistake is.
fn tail(text: &str) -> &str {
    let start = text
        .char_indices()
        .rev()
        .nth(19)
        .map_or(0, |(index, _)| index);
    &text[start..]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn splits_like_the_runtime() {
        assert_eq!(
            split("a {b} {{c}} é{d_1}").unwrap(),
            [
                Piece::Text("a ".into()),
                Piece::Field("b".into()),
                Piece::Text(" {c} é".into()),
                Piece::Field("d_1".into()),
            ]
        );
        for (template, problem) in [
            ("x {b", "never closed"),
            ("{b c}", "does not start"),
            ("{}", "empty placeholder"),
            ("{9}", "starts with a digit"),
            ("a }", "closes no placeholder after `a `"),
        ] {
            let error = split(template).unwrap_err();
            assert!(error.contains(problem), "{template}: {error}");
        }
    }

    #[test]
    fn the_expansion_checks_each_placeholder() {
        let expanded = expand(quote!((::slateflow) Triage, "{a} and {b}")).to_string();
        assert_eq!(expanded.matches("check_placeholder").count(), 2);
        assert!(expanded.contains("__private :: prompt :: < Triage >"));
    }
}
