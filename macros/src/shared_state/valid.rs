//! Rules about the state as a whole, one function per rule.

use super::ast::State;
use crate::errors::Errors;

/// Runs every rule; `false` when the state cannot be expanded without follow-on errors.
pub(crate) fn check(state: &State, errors: &mut Errors) -> bool {
    no_lifetime_parameters(state, errors)
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

    #[test]
    fn lifetimes_are_refused_one_error_each() {
        let input: syn::DeriveInput = parse_quote!(
            struct S<'a, 'b, T> {
                x: &'a T,
                y: &'b str,
            }
        );
        let mut errors = Errors::default();
        let state = State::from_syn(&input, parse_quote!(::slateflow), &mut errors).unwrap();
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
        let state = State::from_syn(&input, parse_quote!(::slateflow), &mut errors).unwrap();
        assert!(check(&state, &mut errors));
        assert!(errors.is_empty());
    }
}
