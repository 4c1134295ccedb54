//! Rules about the state as a whole, one function per rule.

use super::ast::State;
use super::attr::Reducer;
use crate::errors::Errors;

/// Runs every rule; `false` when the state cannot be expanded without follow-on errors.
pub(crate) fn check(state: &State, errors: &mut Errors) -> bool {
    let owned = no_lifetime_parameters(state, errors);
    let conversation = conversation_fields(state, errors);
    let overwrites = overwritable_fields(state, errors);
    owned && conversation && overwrites
}

/// The update's hidden field must not collide with a state field.
fn overwritable_fields(state: &State, errors: &mut Errors) -> bool {
    let mut fine = true;
    if let Some(field) = state
        .fields
        .iter()
        .find(|field| field.ident == super::expand::OVERWRITES_FIELD)
    {
        errors.at(
            field.ident,
            format!(
                "the field name `{}` is reserved: the generated update uses it to mark \
                 overwritten fields; rename this field",
                super::expand::OVERWRITES_FIELD
            ),
        );
        fine = false;
    }
    fine
}

/// `#[slateflow(conversation)]` needs its two fields, each appended to.
fn conversation_fields(state: &State, errors: &mut Errors) -> bool {
    let Some(conversation) = &state.conversation else {
        return true;
    };
    let mut found = true;
    for (name, kind) in [
        (
            &conversation.messages,
            "the global messages (`Vec<Message>` or `Messages`)",
        ),
        (
            &conversation.histories,
            "the per-agent histories (`Histories`)",
        ),
    ] {
        match state.fields.iter().find(|field| field.ident == name) {
            None => {
                found = false;
                errors.at(
                    &conversation.at,
                    format_args!(
                        "`conversation` needs a field `{name}` for {kind} with \
                         `#[reducer(append)]`; add it, or name the field: \
                         `conversation(messages = field, histories = field)`"
                    ),
                );
            }
            Some(field) if !matches!(field.reducer, Reducer::Append) => {
                found = false;
                errors.at(
                    field.ident,
                    format_args!(
                        "`{name}` holds {kind} for `#[slateflow(conversation)]`, which only \
                         appends to it: give it `#[reducer(append)]`"
                    ),
                );
            }
            Some(_) => {}
        }
    }
    let kept = [
        (
            conversation.routing_reason.as_ref(),
            "routing_reason",
            "the routing reason, which each turn overwrites: leave it without a reducer",
        ),
        (
            conversation.counters.as_ref(),
            "counters",
            "the agents' counts (`Counters`), which each turn adds to: give it \
             `#[reducer(append)]`",
        ),
    ];
    for (name, option, needs) in kept {
        let Some(name) = name else { continue };
        let wanted = |reducer: &Reducer| match option {
            "counters" => matches!(reducer, Reducer::Append),
            _ => matches!(reducer, Reducer::LastWrite),
        };
        match state.fields.iter().find(|field| field.ident == name) {
            None => {
                found = false;
                errors.at(
                    name,
                    format_args!(
                        "`conversation({option})` names the field `{name}`, which the state does \
                         not have; add it, or name another: `{option} = field`"
                    ),
                );
            }
            Some(field) if !wanted(&field.reducer) => {
                found = false;
                errors.at(field.ident, format_args!("`{name}` holds {needs}"));
            }
            Some(_) => {}
        }
    }
    found
}

/// A state is saved and restored across runs (`DeserializeOwned`), so it cannot borrow.
fn no_lifetime_parameters(state: &State, errors: &mut Errors) -> bool {
    let mut owned = true;
    for lifetime in state.input.generics.lifetimes() {
        owned = false;
        errors.at(
            &lifetime.lifetime,
            "a shared state owns its data, because runs save and restore it: remove this lifetime \
             and use owned types (`String`, `Arc<str>`) in the fields",
        );
    }
    owned
}

#[cfg(test)]
mod tests {
    use syn::parse_quote;

    use super::*;
    use crate::shared_state::attr::Container;

    #[test]
    fn lifetimes_are_refused_one_error_each() {
        let input: syn::DeriveInput = parse_quote!(
            struct S<'a, 'b, T> {
                x: &'a T,
                y: &'b str,
            }
        );
        let mut errors = Errors::default();
        let state = State::from_syn(
            &input,
            Container::plain(parse_quote!(::slateflow)),
            &mut errors,
        )
        .unwrap();
        assert!(!check(&state, &mut errors));
        let messages = errors.messages();
        assert_eq!(messages.len(), 2);
        assert!(messages[0].starts_with("a shared state owns its data"));
    }

    #[test]
    fn owned_generic_state_passes() {
        let input: syn::DeriveInput = parse_quote!(
            struct S<T: Clone> {
                x: Vec<T>,
            }
        );
        let mut errors = Errors::default();
        let state = State::from_syn(
            &input,
            Container::plain(parse_quote!(::slateflow)),
            &mut errors,
        )
        .unwrap();
        assert!(check(&state, &mut errors));
        assert!(errors.is_empty());
    }
}
