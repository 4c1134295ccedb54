//! The typed model of a `#[derive(SharedState)]` input. It keeps references to the original tokens,
//! so that later phases can point errors at them.

use proc_macro2::Span;
use syn::spanned::Spanned;
use syn::{Attribute, Data, DeriveInput, Fields, Ident, Type, Visibility};

use super::attr::{self, Reducer};
use crate::errors::Errors;

/// A state struct with named fields.
pub(crate) struct State<'a> {
    pub(crate) input: &'a DeriveInput,
    pub(crate) fields: Vec<Field<'a>>,
    /// Where generated code finds the runtime: `::slateflow` unless `#[slateflow(crate = ...)]`.
    pub(crate) crate_path: syn::Path,
    /// `#[slateflow(conversation)]`: the fields of the agent layer's `Conversation`.
    pub(crate) conversation: Option<attr::Conversation>,
}

/// One field of the state.
pub(crate) struct Field<'a> {
    pub(crate) ident: &'a Ident,
    pub(crate) vis: &'a Visibility,
    pub(crate) ty: &'a Type,
    pub(crate) reducer: Reducer,
    /// `false` when serde skips the field: its update slot is not serialized either.
    pub(crate) serialized: bool,
    /// The field's own `#[doc]` attributes, repeated on its update slot.
    pub(crate) docs: Vec<&'a Attribute>,
}

impl<'a> State<'a> {
    /// Reads `input`; `None` when it is not a struct with named fields (the error is recorded).
    pub(crate) fn from_syn(
        input: &'a DeriveInput,
        container: attr::Container,
        errors: &mut Errors,
    ) -> Option<Self> {
        let named = match &input.data {
            Data::Struct(data) => match &data.fields {
                Fields::Named(named) => named,
                Fields::Unnamed(unnamed) => {
                    errors.at(
                        unnamed,
                        "`SharedState` needs named fields: their names key updates, templates and \
                         checkpoints; write `struct Name { field: Type }`",
                    );
                    return None;
                }
                Fields::Unit => {
                    let at = data.semi_token.map_or(input.ident.span(), |semi| semi.span);
                    errors.push(syn::Error::new(
                        at,
                        "`SharedState` needs a struct with named fields, not a unit struct; write \
                         `struct Name { field: Type }`",
                    ));
                    return None;
                }
            },
            Data::Enum(data) => {
                errors.at(
                    data.enum_token,
                    "`SharedState` can only be derived for a struct with named fields, not an enum; \
                     put the enum in a field of a state struct",
                );
                return None;
            }
            Data::Union(data) => {
                errors.at(
                    data.union_token,
                    "`SharedState` can only be derived for a struct with named fields, not a union",
                );
                return None;
            }
        };
        let fields = named
            .named
            .iter()
            .map(|field| Field {
                ident: field.ident.as_ref().expect("named fields have identifiers"),
                vis: &field.vis,
                ty: &field.ty,
                reducer: attr::field_reducer(&field.attrs, errors),
                serialized: !attr::serde_skips(&field.attrs),
                docs: field
                    .attrs
                    .iter()
                    .filter(|attribute| attribute.path().is_ident("doc"))
                    .collect(),
            })
            .collect();
        Some(Self {
            input,
            fields,
            crate_path: container.crate_path,
            conversation: container.conversation,
        })
    }
}

impl Field<'_> {
    /// The span of the field's type, where reducer bound errors belong.
    pub(crate) fn ty_span(&self) -> Span {
        self.ty.span()
    }
}
