//! Code generation for `#[derive(SharedState)]`.
//!
//! Generated code names only `::core`, `::std` and `#krate::__private` paths, so it compiles whatever
//! the user has in scope. Reducer bounds (`AddAssign`, `Append`) are where-clauses spanned at the
//! field's type, so rustc's error lands there and carries the runtime trait's own message.

use proc_macro2::{Span, TokenStream};
use quote::{ToTokens, format_ident, quote, quote_spanned};
use syn::ext::IdentExt;
use syn::{Ident, LitStr};

use super::ast::{Field, State};
use super::attr::Reducer;

/// The update type, its inherent methods and the two trait impls.
pub(crate) fn expand(state: &State) -> TokenStream {
    let update_type = update_type(state);
    let update_methods = update_methods(state);
    let state_impl = state_impl(state);
    let update_impl = update_impl(state);
    let conversation_impl = conversation_impl(state);
    let guards = crate::spans::local_guards(&local_names(state));
    let checks = reducer_checks(state);
    quote! {
        #update_type
        const _: () = {
            #guards
            const _: () = {
                #checks
            };
            #update_methods
            #state_impl
            #update_impl
            #conversation_impl
        };
    }
}

/// `impl Conversation` for `#[slateflow(conversation)]`: the agent layer reads the two fields and
/// writes them through the update's setters. A field of the wrong type is reported at its type.
fn conversation_impl(state: &State) -> TokenStream {
    let Some(conversation) = &state.conversation else {
        return TokenStream::new();
    };
    let krate = &state.crate_path;
    let name = &state.input.ident;
    let (impl_generics, type_generics, where_clause) = state.input.generics.split_for_impl();
    // Every token at the field's type, where a type mismatch belongs.
    let at_type = |name: &Ident| {
        let span = state
            .fields
            .iter()
            .find(|field| field.ident == name)
            .map_or(name.span(), Field::ty_span);
        Ident::new(&name.to_string(), span)
    };
    let (messages, histories) = (
        at_type(&conversation.messages),
        at_type(&conversation.histories),
    );
    let extend = format_ident!("extend_{}", messages.unraw(), span = messages.span());
    let append = format_ident!("append_{}", histories.unraw(), span = histories.span());
    let read_messages = quote_spanned!(messages.span()=> &self.#messages);
    let read_histories = quote_spanned!(histories.span()=> &self.#histories);
    let record_messages = quote_spanned!(messages.span()=> .#extend(messages));
    let record_histories = quote_spanned!(histories.span()=> .#append(histories));
    let record_turn = record_turn(state, conversation, &at_type);
    quote! {
        #[automatically_derived]
        impl #impl_generics #krate::__private::Conversation for #name #type_generics #where_clause {
            fn messages(&self) -> &[#krate::__private::ChatMessage] {
                #read_messages
            }

            fn histories(&self) -> &#krate::__private::Histories {
                #read_histories
            }

            fn record(
                messages: ::std::vec::Vec<#krate::__private::ChatMessage>,
                histories: #krate::__private::Histories,
            ) -> <Self as #krate::__private::SharedState>::Update {
                <Self as #krate::__private::SharedState>::update()
                    #record_messages
                    #record_histories
            }

            #record_turn
        }
    }
}

/// `Conversation::record_turn` for a state that keeps its agents' routing reason or counts: the
/// turn's messages, then the reason (only of a turn that routed) and the counts.
fn record_turn(
    state: &State,
    conversation: &crate::shared_state::attr::Conversation,
    at_type: &dyn Fn(&Ident) -> Ident,
) -> TokenStream {
    if conversation.routing_reason.is_none() && conversation.counters.is_none() {
        return TokenStream::new();
    }
    let krate = &state.crate_path;
    let reason = conversation.routing_reason.as_ref().map(|field| {
        let field = at_type(field);
        let set = format_ident!("set_{}", field.unraw(), span = field.span());
        quote_spanned! {field.span()=>
            let update = match &turn.reason {
                ::core::option::Option::Some(reason) => {
                    update.#set(::core::convert::Into::into(::core::clone::Clone::clone(reason)))
                }
                ::core::option::Option::None => update,
            };
        }
    });
    let counters = conversation.counters.as_ref().map(|field| {
        let field = at_type(field);
        let append = format_ident!("append_{}", field.unraw(), span = field.span());
        quote_spanned! {field.span()=>
            let update = update.#append(#krate::__private::Counters::of(
                ::core::clone::Clone::clone(&turn.agent),
                turn.counts(),
            ));
        }
    });
    quote! {
        fn record_turn(
            messages: ::std::vec::Vec<#krate::__private::ChatMessage>,
            histories: #krate::__private::Histories,
            turn: &#krate::__private::TurnSummary,
        ) -> <Self as #krate::__private::SharedState>::Update {
            let update = <Self as #krate::__private::Conversation>::record(messages, histories);
            #reason
            #counters
            update
        }
    }
}

/// The names the generated methods bind (parameters and locals): a unit struct or `const` of the
/// user's with one of these names must not capture them.
fn local_names(state: &State) -> Vec<Ident> {
    let fixed = [
        "field",
        "value",
        "reduce",
        "increment",
        "item",
        "items",
        "update",
        "name",
        "later",
        "other",
        "messages",
        "histories",
        "turn",
        "reason",
        "overwrites",
        "overwritten",
        "slot",
        "serializer",
        "deserializer",
        "bits",
    ];
    fixed
        .iter()
        .map(|name| Ident::new(name, proc_macro2::Span::call_site()))
        .chain(
            state
                .fields
                .iter()
                .map(|field| format_ident!("__{}", field.ident.unraw())),
        )
        .collect()
}

/// `TriageUpdate`, named after the state and spanned at its name.
pub(crate) fn update_ident(state_ident: &Ident) -> Ident {
    format_ident!("{}Update", state_ident)
}

/// The update's hidden field that marks overwritten reducer fields (`__private::Overwrites`).
pub(crate) const OVERWRITES_FIELD: &str = "__slateflow_overwrites";

fn overwrites_field() -> Ident {
    Ident::new(OVERWRITES_FIELD, Span::call_site())
}

/// The type of the update's overwrites: one bit per reducer field, in words of 64.
fn overwrites_type(state: &State) -> TokenStream {
    let krate = &state.crate_path;
    let fields = state
        .fields
        .iter()
        .filter(|field| !matches!(field.reducer, Reducer::LastWrite))
        .count();
    let words = proc_macro2::Literal::usize_unsuffixed(fields.div_ceil(64).max(1));
    quote!(#krate::__private::Overwrites<#words>)
}

/// The field's position among the reducer fields: its bit in the update's overwrites.
fn reducer_index(state: &State, field: &Field) -> Option<usize> {
    if matches!(field.reducer, Reducer::LastWrite) {
        return None;
    }
    state
        .fields
        .iter()
        .filter(|other| !matches!(other.reducer, Reducer::LastWrite))
        .position(|other| other.ident == field.ident)
}

/// The names of the reducer fields, in order: what the overwrites serialize as.
fn reducer_names(state: &State) -> Vec<String> {
    state
        .fields
        .iter()
        .filter(|field| !matches!(field.reducer, Reducer::LastWrite))
        .map(field_name)
        .collect()
}

/// The path of the runtime's serde re-export, as text: serde's attributes take paths as strings.
fn serde_path(krate: &syn::Path) -> String {
    format!("{}::__private::serde", tokens_text(krate))
}

/// The string serde's `crate = "..."` attribute wants.
pub(crate) fn serde_crate(krate: &syn::Path) -> LitStr {
    LitStr::new(&serde_path(krate), Span::call_site())
}

/// The field's name as users write it in templates and see it in errors: without `r#`.
fn field_name(field: &Field) -> String {
    field.ident.unraw().to_string()
}

fn update_type(state: &State) -> TokenStream {
    let krate = &state.crate_path;
    let name = &state.input.ident;
    let vis = &state.input.vis;
    let update = update_ident(name);
    let generics = &state.input.generics;
    let where_clause = &generics.where_clause;
    let serde_crate = serde_crate(krate);
    let doc = format!(
        "The writes one node makes to a [`{name}`]: one slot per field, `None` when the field is not \
         written.\n\nGenerated by `#[derive(SharedState)]`. Start one with `{update}::new()` or \
         `{name}::update()` and chain the setters; the state applies it through each field's \
         reducer. Serializes as a JSON object holding only the written fields."
    );
    // Serde's inferred bounds would miss the slots read through `deserialize_with` and add
    // `T: Default` for generics; the exact ones are the serialized field types.
    let serialized: Vec<String> = state
        .fields
        .iter()
        .filter(|field| field.serialized)
        .map(|field| tokens_text(field.ty))
        .collect();
    let serde_path = serde_path(krate);
    let serialize_bounds = LitStr::new(
        &serialized
            .iter()
            .map(|ty| format!("{ty}: {serde_path}::Serialize"))
            .collect::<Vec<_>>()
            .join(", "),
        Span::call_site(),
    );
    let deserialize_bounds = LitStr::new(
        &serialized
            .iter()
            .map(|ty| format!("{ty}: {serde_path}::Deserialize<'de>"))
            .collect::<Vec<_>>()
            .join(", "),
        Span::call_site(),
    );
    let slots = state.fields.iter().map(|field| {
        let ident = field.ident;
        let vis = field.vis;
        let ty = field.ty;
        let doc = format!(
            "`{}`: {} `None`: not written.",
            field_name(field),
            slot_meaning(&field.reducer)
        );
        let field_docs = &field.docs;
        let separator = (!field_docs.is_empty()).then(|| quote!(#[doc = ""]));
        let serde = if field.serialized {
            let deserialize_with = LitStr::new(
                &format!("{}::__private::deserialize_written", tokens_text(krate)),
                Span::call_site(),
            );
            quote! {
                #[serde(
                    skip_serializing_if = "::core::option::Option::is_none",
                    deserialize_with = #deserialize_with
                )]
            }
        } else {
            quote!(#[serde(skip)])
        };
        quote! {
            #[doc = #doc]
            #separator
            #(#field_docs)*
            #serde
            #vis #ident: ::core::option::Option<#ty>
        }
    });
    let overwrites = overwrites_slot(state);
    quote! {
        #[doc = #doc]
        #[derive(
            ::core::clone::Clone,
            ::core::fmt::Debug,
            #krate::__private::serde::Serialize,
            #krate::__private::serde::Deserialize
        )]
        #[serde(
            crate = #serde_crate,
            default,
            deny_unknown_fields,
            bound(serialize = #serialize_bounds, deserialize = #deserialize_bounds)
        )]
        #[allow(clippy::type_complexity)]
        #vis struct #update #generics #where_clause {
            #(#slots,)*
            #overwrites
        }
    }
}

/// The update's hidden field that marks overwrites, serialized as the overwritten fields' names
/// through the update's own functions (which know the names).
fn overwrites_slot(state: &State) -> TokenStream {
    let krate = &state.crate_path;
    let vis = &state.input.vis;
    let field = overwrites_field();
    let (_, type_generics, _) = state.input.generics.split_for_impl();
    let update = update_ident(&state.input.ident);
    let turbofish = type_generics.as_turbofish();
    let update_path = tokens_text(&quote!(#update #turbofish));
    let text = |path: String| LitStr::new(&path, Span::call_site());
    let is_none = text(format!(
        "{}::__private::Overwrites::is_none",
        tokens_text(krate)
    ));
    let serialize_with = text(format!("{update_path}::__serialize_overwrites"));
    let deserialize_with = text(format!("{update_path}::__deserialize_overwrites"));
    let overwrites_type = overwrites_type(state);
    quote! {
        /// Which reducer fields are overwritten rather than reduced (`overwrite_<field>`).
        #[doc(hidden)]
        #[serde(
            rename = "$overwrite",
            skip_serializing_if = #is_none,
            serialize_with = #serialize_with,
            deserialize_with = #deserialize_with
        )]
        #vis #field: #overwrites_type,
    }
}

/// What a written slot holds, for its doc comment.
fn slot_meaning(reducer: &Reducer) -> String {
    match reducer {
        Reducer::LastWrite => "the new value, which replaces the old one (last write wins).".into(),
        Reducer::Add => "the increment, added with `+=` (`#[reducer(add)]`).".into(),
        Reducer::Append => {
            "the new items, appended after the existing ones (`#[reducer(append)]`).".into()
        }
        Reducer::Queue => "what it takes from the front and pushes at the back, in order \
                           (`#[reducer(queue)]`)."
            .into(),
        Reducer::With(path) => format!(
            "a value combined with the current one by `{}` (`#[reducer(with = ...)]`).",
            tokens_text(path)
        ),
    }
}

fn update_methods(state: &State) -> TokenStream {
    let name = &state.input.ident;
    let vis = &state.input.vis;
    let update = update_ident(name);
    let (impl_generics, type_generics, where_clause) = state.input.generics.split_for_impl();
    let idents: Vec<&Ident> = state.fields.iter().map(|field| field.ident).collect();
    let setters = state.fields.iter().map(|field| setters(state, field));
    let reducer_helpers = state.fields.iter().filter_map(|field| {
        let Reducer::With(path) = &field.reducer else {
            return None;
        };
        let helper = with_helper(field);
        let ty = field.ty;
        // The one place the user's function is named. The coercion states the signature it needs,
        // so a wrong one gets a single error at the path that shows expected and found.
        let reduce = quote_spanned!(path_span(path)=> let reduce: fn(&mut #ty, #ty) = #path;);
        Some(quote! {
            #[inline]
            fn #helper(field: &mut #ty, value: #ty) {
                #reduce
                reduce(field, value);
            }
        })
    });
    let empty = if idents.is_empty() {
        quote!(true)
    } else {
        quote!(#(self.#idents.is_none())&&*)
    };
    let krate = &state.crate_path;
    let overwrites = overwrites_field();
    let names = reducer_names(state);
    let state_name = name.to_string();
    let overwrites_type = overwrites_type(state);
    quote! {
        #[allow(clippy::type_complexity)]
        impl #impl_generics #update #type_generics #where_clause {
            /// An empty update: no field written.
            #[must_use]
            #vis const fn new() -> Self {
                Self {
                    #(#idents: ::core::option::Option::None,)*
                    #overwrites: #krate::__private::Overwrites::NONE,
                }
            }

            fn __serialize_overwrites<__S: #krate::__private::serde::Serializer>(
                overwrites: &#overwrites_type,
                serializer: __S,
            ) -> ::core::result::Result<__S::Ok, __S::Error> {
                overwrites.write_names(&[#(#names),*], serializer)
            }

            fn __deserialize_overwrites<'de, __D: #krate::__private::serde::Deserializer<'de>>(
                deserializer: __D,
            ) -> ::core::result::Result<#overwrites_type, __D::Error> {
                <#overwrites_type>::read_names(&[#(#names),*], #state_name, deserializer)
            }

            /// Whether no field is written.
            #[must_use]
            #vis const fn is_empty(&self) -> ::core::primitive::bool {
                #empty
            }

            #(#setters)*
            #(#reducer_helpers)*
        }

        #[automatically_derived]
        impl #impl_generics ::core::default::Default for #update #type_generics #where_clause {
            fn default() -> Self {
                Self::new()
            }
        }
    }
}

/// `set_<field>` for a reducer field: not a setter, but a method whose bound (`requirement`, a
/// `__private` trait that nothing implements) makes calling it an error that says what to call
/// instead. Without it, rustc suggests a setter that compiles and double-counts.
fn refusing_setter(state: &State, field: &Field, requirement: &str) -> TokenStream {
    let krate = &state.crate_path;
    let vis = &state.input.vis;
    let name = format_ident!("set_{}", field.ident.unraw());
    let requirement = Ident::new(requirement, proc_macro2::Span::call_site());
    quote! {
        /// Not a setter: a reducer field takes what its reducer combines. Calling it is an error
        /// that says what to call instead.
        #[doc(hidden)]
        #vis fn #name<__T: #krate::__private::#requirement>(self, _value: __T) -> Self {
            self
        }
    }
}

/// `__reduce_score`: the private function that calls a `with = path` reducer.
fn with_helper(field: &Field) -> Ident {
    format_ident!("__reduce_{}", field.ident.unraw())
}

/// `push_<field>(item)` and `extend_<field>(items)`, which an `append` and a `queue` field share,
/// with their docs.
fn item_setters(
    state: &State,
    field: &Field,
    bound: &TokenStream,
    (push_doc, extend_doc): (String, String),
) -> TokenStream {
    let krate = &state.crate_path;
    let vis = &state.input.vis;
    let ident = field.ident;
    let ty = field.ty;
    let push = format_ident!("push_{}", ident.unraw());
    let extend = format_ident!("extend_{}", ident.unraw());
    quote! {
        #[doc = #push_doc]
        #[must_use]
        #vis fn #push(
            mut self,
            item: <#ty as #krate::__private::Append>::Item,
        ) -> Self where #bound {
            #krate::__private::push_item(&mut self.#ident, item);
            self
        }

        #[doc = #extend_doc]
        #[must_use]
        #vis fn #extend(
            mut self,
            items: impl ::core::iter::IntoIterator<
                Item = <#ty as #krate::__private::Append>::Item,
            >,
        ) -> Self where #bound {
            #krate::__private::extend_items(&mut self.#ident, items);
            self
        }
    }
}

/// The setters of an `append` field: one item, many items, a whole collection.
fn append_setters(state: &State, field: &Field, bound: &TokenStream) -> TokenStream {
    let krate = &state.crate_path;
    let vis = &state.input.vis;
    let ident = field.ident;
    let ty = field.ty;
    let name = field_name(field);
    let items = item_setters(
        state,
        field,
        bound,
        (
            format!("Appends one item to `{name}` (`#[reducer(append)]`)."),
            format!("Appends `items` to `{name}`, in order (`#[reducer(append)]`)."),
        ),
    );
    let append = format_ident!("append_{}", ident.unraw());
    let append_doc = format!(
        "Appends the collection `new` to `{name}`, as the reducer appends (for \
             collections whose updates carry edits as well as items, such as \
             `slateflow::agent::message::Messages`)."
    );
    let refusal = refusing_setter(state, field, "AppendFieldTakesItems");
    let overwrites = overwrites_field();
    let index = reducer_index(state, field);
    quote! {
        #refusal
        #items

        #[doc = #append_doc]
        #[must_use]
        #vis fn #append(mut self, new: #ty) -> Self where #bound {
            let overwritten = self.#overwrites.has(#index);
            #krate::__private::append_collection(&mut self.#ident, new, overwritten);
            self
        }
    }
}

/// The setters of a `queue` field: push one item, push many, take from the front.
fn queue_setters(state: &State, field: &Field, bound: &TokenStream) -> TokenStream {
    let krate = &state.crate_path;
    let vis = &state.input.vis;
    let ident = field.ident;
    let name = field_name(field);
    let items = item_setters(
        state,
        field,
        bound,
        (
            format!("Pushes one item at the back of `{name}` (`#[reducer(queue)]`)."),
            format!("Pushes `items` at the back of `{name}`, in order."),
        ),
    );
    let take = format_ident!("take_{}", ident.unraw());
    let take_doc = format!(
        "Takes `count` items from the front of `{name}` (all it holds, if fewer), when the \
         update is applied, after what the update does to it already. Read them from the state \
         first. In a fork, two branches that take from `{name}` are a conflict."
    );
    let refusal = refusing_setter(state, field, "QueueFieldTakesItems");
    quote! {
        #refusal
        #items

        #[doc = #take_doc]
        #[must_use]
        #vis fn #take(mut self, count: ::core::primitive::usize) -> Self where #bound {
            #krate::__private::take_items(&mut self.#ident, count);
            self
        }
    }
}

/// `overwrite_<field>` for a reducer field: replaces the value instead of reducing it.
fn overwrite_setter(state: &State, field: &Field, index: usize) -> TokenStream {
    let vis = &state.input.vis;
    let ident = field.ident;
    let ty = field.ty;
    let name = field_name(field);
    let setter = format_ident!("overwrite_{}", ident.unraw());
    let overwrites = overwrites_field();
    let doc = format!(
        "Replaces `{name}` with `value` instead of reducing it ({}): trim a history, reset a \
         counter. Later writes to `{name}` in this update land on the new value. In a fork, the \
         other branches' writes to `{name}` land on it too, and two branches overwriting it are a \
         conflict.",
        reducer_attribute(&field.reducer)
    );
    quote! {
        #[doc = #doc]
        #[must_use]
        #vis fn #setter(mut self, value: #ty) -> Self {
            self.#ident = ::core::option::Option::Some(value);
            self.#overwrites.put(#index, true);
            self
        }
    }
}

/// The attribute that chose a reducer, for docs.
fn reducer_attribute(reducer: &Reducer) -> String {
    match reducer {
        Reducer::LastWrite => "last write wins".into(),
        Reducer::Add => "`#[reducer(add)]`".into(),
        Reducer::Append => "`#[reducer(append)]`".into(),
        Reducer::Queue => "`#[reducer(queue)]`".into(),
        Reducer::With(path) => format!("`#[reducer(with = {})]`", tokens_text(path)),
    }
}

/// The chainable setters of one field, named after what they do.
fn setters(state: &State, field: &Field) -> TokenStream {
    let reducing = reducing_setters(state, field);
    let overwrite = reducer_index(state, field).map(|index| overwrite_setter(state, field, index));
    quote!(#reducing #overwrite)
}

/// The setters that write a field through its reducer.
fn reducing_setters(state: &State, field: &Field) -> TokenStream {
    let krate = &state.crate_path;
    let vis = &state.input.vis;
    let ident = field.ident;
    let ty = field.ty;
    let name = field_name(field);
    let bound = reducer_bound(state, field);
    match &field.reducer {
        Reducer::LastWrite => {
            let setter = format_ident!("set_{}", ident.unraw());
            let doc = format!("Writes `{name}`: the value replaces the current one.");
            quote! {
                #[doc = #doc]
                #[must_use]
                #vis fn #setter(mut self, value: #ty) -> Self {
                    self.#ident = ::core::option::Option::Some(value);
                    self
                }
            }
        }
        Reducer::Add => {
            let setter = format_ident!("add_{}", ident.unraw());
            let doc = format!(
                "Adds `increment` to `{name}` (`#[reducer(add)]`): pass the change, not the new \
                 total. Calling it again adds again."
            );
            let refusal = refusing_setter(state, field, "AddFieldTakesIncrement");
            quote! {
                #[doc = #doc]
                #[must_use]
                #vis fn #setter(mut self, increment: #ty) -> Self where #bound {
                    self.#ident = #krate::__private::combine(
                        self.#ident.take(),
                        ::core::option::Option::Some(increment),
                        #krate::__private::add,
                    );
                    self
                }

                #refusal
            }
        }
        Reducer::Append => append_setters(state, field, &bound),
        Reducer::Queue => queue_setters(state, field, &bound),
        Reducer::With(path) => {
            let setter = format_ident!("reduce_{}", ident.unraw());
            let helper = with_helper(field);
            let doc = format!(
                "Writes `value` to `{name}`, combined with the current value by `{}`. Calling it \
                 again combines again.",
                tokens_text(path)
            );
            quote! {
                #[doc = #doc]
                #[must_use]
                #vis fn #setter(mut self, value: #ty) -> Self {
                    self.#ident = #krate::__private::combine(
                        self.#ident.take(),
                        ::core::option::Option::Some(value),
                        Self::#helper,
                    );
                    self
                }
            }
        }
    }
}

/// The trait a field's reducer needs of its type, with one of its methods (for
/// [`reducer_checks`]); `None` when it needs none.
fn reducer_trait(field: &Field) -> Option<(&'static str, &'static str)> {
    match field.reducer {
        Reducer::Add => Some(("Addable", "add_increment")),
        Reducer::Append => Some(("Append", "append")),
        Reducer::Queue => Some(("QueueField", "take_front")),
        Reducer::LastWrite | Reducer::With(_) => None,
    }
}

/// The bound a field's reducer puts on its type, spanned at the type; empty when there is none.
///
/// A bound on a type that names none of the struct's parameters (`u64: Append`) is written
/// higher-ranked (`for<'__r> u64: Append`): rustc checks such a bound where the impl is used,
/// not where it is written, so a type that fails it is reported once, by [`reducer_checks`],
/// rather than at every impl and setter with "see issue #48214" (trivial bounds). The bodies
/// still rely on it.
fn reducer_bound(state: &State, field: &Field) -> TokenStream {
    let Some((name, _)) = reducer_trait(field) else {
        return TokenStream::new();
    };
    let ty = field.ty;
    let span = ty_span(field);
    // Every token of the bound carries the type's span: rustc points at the bound's path.
    let krate = crate::spans::respan(state.crate_path.to_token_stream(), span);
    let bound = Ident::new(name, span);
    if names_a_parameter(state, ty) {
        quote_spanned!(span=> #ty: #krate::__private::#bound)
    } else {
        quote_spanned!(span=> for<'__r> #ty: #krate::__private::#bound)
    }
}

/// One check per field whose reducer needs a trait of a type that names none of the struct's
/// parameters: a path to one of the trait's methods, which fails at the field's type with the
/// trait's own message when the type lacks it.
fn reducer_checks(state: &State) -> TokenStream {
    let checks = state.fields.iter().filter_map(|field| {
        let (name, method) = reducer_trait(field)?;
        if names_a_parameter(state, field.ty) {
            return None;
        }
        let (ty, span) = (field.ty, ty_span(field));
        let krate = crate::spans::respan(state.crate_path.to_token_stream(), span);
        let (bound, method) = (Ident::new(name, span), Ident::new(method, span));
        Some(quote_spanned!(span=> let _ = <#ty as #krate::__private::#bound>::#method;))
    });
    quote!(#(#checks)*)
}

/// Whether `ty` names one of the struct's type parameters.
fn names_a_parameter(state: &State, ty: &syn::Type) -> bool {
    fn names(tokens: TokenStream, parameters: &[&Ident]) -> bool {
        tokens.into_iter().any(|token| match token {
            proc_macro2::TokenTree::Ident(ident) => parameters.contains(&&ident),
            proc_macro2::TokenTree::Group(group) => names(group.stream(), parameters),
            _ => false,
        })
    }
    let parameters: Vec<&Ident> = state
        .input
        .generics
        .type_params()
        .map(|parameter| &parameter.ident)
        .collect();
    !parameters.is_empty() && names(ty.to_token_stream(), &parameters)
}

/// The where-clause of a trait impl: the struct's own predicates plus every reducer bound.
fn where_with_reducer_bounds(state: &State) -> TokenStream {
    let krate = &state.crate_path;
    let own = state.input.generics.where_clause.as_ref().map(|clause| {
        // `where T: A` without a trailing comma must still be followed by more predicates.
        let mut predicates = clause.predicates.clone();
        if !predicates.empty_or_trailing() {
            predicates.push_punct(syn::Token![,](proc_macro2::Span::call_site()));
        }
        predicates.to_token_stream()
    });
    let bounds = state
        .fields
        .iter()
        .map(|field| reducer_bound(state, field))
        .filter(|bound| !bound.is_empty());
    // With type parameters, the update meets `StateUpdate`'s supertraits, and `field_text` can
    // serialize the fields, only for some arguments: say which.
    let generic_bounds = state
        .input
        .generics
        .type_params()
        .next()
        .is_some()
        .then(|| {
            let update = update_ident(&state.input.ident);
            let (_, type_generics, _) = state.input.generics.split_for_impl();
            let serialized = state
                .fields
                .iter()
                .filter(|field| field.serialized)
                .map(|field| field.ty);
            let name = &state.input.ident;
            quote! {
                #name #type_generics: ::core::marker::Send + ::core::marker::Sync,
                #update #type_generics: ::core::clone::Clone
                    + ::core::fmt::Debug
                    + ::core::marker::Send
                    + #krate::__private::serde::Serialize
                    + #krate::__private::serde::de::DeserializeOwned,
                #(#serialized: #krate::__private::serde::Serialize,)*
            }
        });
    quote!(where #own #(#bounds,)* #generic_bounds)
}

/// How a written slot is applied to the state's field: replaced when it is an overwrite, else
/// through the reducer.
fn apply_slot(state: &State, field: &Field, value: &Ident) -> TokenStream {
    let krate = &state.crate_path;
    let ident = field.ident;
    let Some((index, _, apply)) = reducer_parts(state, field) else {
        return quote!(self.#ident = #value;);
    };
    let replace = if matches!(field.reducer, Reducer::Append | Reducer::Queue) {
        quote!(#krate::__private::overwrite_collection(&mut self.#ident, #value);)
    } else {
        quote!(self.#ident = #value;)
    };
    quote! {
        if overwrites.has(#index) {
            #replace
        } else {
            #apply(&mut self.#ident, #value);
        }
    }
}

/// A reducer field's bit and its two functions; `None` for a last-write-wins field.
fn reducer_parts(state: &State, field: &Field) -> Option<(usize, TokenStream, TokenStream)> {
    let index = reducer_index(state, field)?;
    let (compose, apply) = reducer_fns(state, field)?;
    Some((index, compose, apply))
}

/// A reducer field's two functions `fn(&mut T, T)`: composing two updates, and writing an update
/// into the state. They differ only for `append` (collections that edit by id).
/// `None` for a last-write-wins field.
fn reducer_fns(state: &State, field: &Field) -> Option<(TokenStream, TokenStream)> {
    let krate = &state.crate_path;
    let update = update_ident(&state.input.ident);
    Some(match &field.reducer {
        Reducer::LastWrite => return None,
        Reducer::Add => (
            quote!(#krate::__private::add),
            quote!(#krate::__private::add),
        ),
        Reducer::Append | Reducer::Queue => (
            quote!(#krate::__private::append),
            quote!(#krate::__private::append_to_state),
        ),
        Reducer::With(_) => {
            let helper = with_helper(field);
            let (_, type_generics, _) = state.input.generics.split_for_impl();
            let path = quote!(<#update #type_generics>::#helper);
            (path.clone(), path)
        }
    })
}

fn state_impl(state: &State) -> TokenStream {
    let krate = &state.crate_path;
    let name = &state.input.ident;
    let update = update_ident(name);
    let (impl_generics, type_generics, _) = state.input.generics.split_for_impl();
    let where_clause = where_with_reducer_bounds(state);
    let idents: Vec<&Ident> = state.fields.iter().map(|field| field.ident).collect();
    let values: Vec<Ident> = state
        .fields
        .iter()
        .map(|field| format_ident!("__{}", field.ident.unraw()))
        .collect();
    let overwrites_field = overwrites_field();
    let overwrites_binding = if reducer_names(state).is_empty() {
        quote!(_)
    } else {
        quote!(overwrites)
    };
    let applies = state.fields.iter().zip(&values).map(|(field, value)| {
        let apply = apply_slot(state, field, value);
        quote! {
            if let ::core::option::Option::Some(#value) = #value {
                #apply
            }
        }
    });
    let metadata = state.fields.iter().map(|field| {
        let name = field_name(field);
        let type_name = tokens_text(field.ty);
        let reducer = match &field.reducer {
            Reducer::LastWrite => quote!(LastWrite),
            Reducer::Add => quote!(Add),
            Reducer::Append => quote!(Append),
            Reducer::Queue => quote!(Queue),
            Reducer::With(path) => {
                let path = tokens_text(path);
                quote!(With { path: #path })
            }
        };
        quote! {
            #krate::__private::field(#name, #krate::__private::Reducer::#reducer, #type_name)
        }
    });
    let texts = state.fields.iter().map(|field| {
        let name = field_name(field);
        let ident = field.ident;
        if field.serialized {
            let text = quote_spanned!(ty_span(field)=> #krate::__private::field_text(&self.#ident));
            quote!(#name => #text,)
        } else {
            quote!(#name => ::core::option::Option::None,)
        }
    });
    quote! {
        #[automatically_derived]
        impl #impl_generics #krate::__private::SharedState for #name #type_generics #where_clause {
            type Update = #update #type_generics;

            const FIELDS: &'static [#krate::__private::Field] = &[#(#metadata),*];

            #[inline]
            fn apply(&mut self, update: Self::Update) {
                let #update { #(#idents: #values,)* #overwrites_field: #overwrites_binding } = update;
                #(#applies)*
            }

            fn field_text(
                &self,
                name: &::core::primitive::str,
            ) -> ::core::option::Option<::std::string::String> {
                match name {
                    #(#texts)*
                    _ => ::core::option::Option::None,
                }
            }
        }
    }
}

/// `conflict`'s checks, in declaration order: a last-write-wins field written by both updates, a
/// reducer field overwritten by both.
fn conflict_checks(state: &State) -> Vec<TokenStream> {
    let krate = &state.crate_path;
    let overwrites = overwrites_field();
    state.fields.iter().map(|field| {
        let ident = field.ident;
        let name = field_name(field);
        match reducer_index(state, field) {
            None => quote! {
                if self.#ident.is_some() && other.#ident.is_some() {
                    return ::core::option::Option::Some(#krate::__private::MergeConflict::new(#name));
                }
            },
            Some(index) if matches!(field.reducer, Reducer::Queue) => quote! {
                if self.#ident.is_some()
                    && other.#ident.is_some()
                    && (self.#overwrites.has(#index)
                        || #krate::__private::contests(&self.#ident))
                    && (other.#overwrites.has(#index)
                        || #krate::__private::contests(&other.#ident))
                {
                    return ::core::option::Option::Some(
                        if self.#overwrites.has(#index) && other.#overwrites.has(#index) {
                            #krate::__private::MergeConflict::overwrite(#name)
                        } else {
                            #krate::__private::MergeConflict::new(#name)
                        },
                    );
                }
            },
            Some(index) => quote! {
                if self.#ident.is_some()
                    && other.#ident.is_some()
                    && self.#overwrites.has(#index)
                    && other.#overwrites.has(#index)
                {
                    return ::core::option::Option::Some(#krate::__private::MergeConflict::overwrite(#name));
                }
            },
        }
    })
    .collect()
}

/// The body of `__contested`: a bit per field (in declaration order) that this update writes last
/// write wins or overwrites, which no other branch's update may also do. `None` for a state with
/// more fields than bits: a fork then checks its branches pair by pair.
fn contested_bits(state: &State) -> TokenStream {
    if state.fields.len() > 64 {
        return quote!(::core::option::Option::None);
    }
    let overwrites = overwrites_field();
    // Guarded, as the other locals: see `local_names`.
    let bits = Ident::new("bits", Span::call_site());
    let set = state.fields.iter().enumerate().map(|(bit, field)| {
        let ident = field.ident;
        let contested = match reducer_index(state, field) {
            None => quote!(self.#ident.is_some()),
            Some(index) if matches!(field.reducer, Reducer::Queue) => {
                let krate = &state.crate_path;
                quote! {
                    self.#ident.is_some()
                        && (self.#overwrites.has(#index)
                            || #krate::__private::contests(&self.#ident))
                }
            }
            Some(index) => quote!(self.#ident.is_some() && self.#overwrites.has(#index)),
        };
        quote! {
            if #contested {
                #bits |= 1 << #bit;
            }
        }
    });
    quote! {{
        #[allow(unused_mut)] // no field sets a bit in a state without fields
        let mut #bits: ::core::primitive::u64 = 0;
        #(#set)*
        ::core::option::Option::Some(#bits)
    }}
}

fn update_impl(state: &State) -> TokenStream {
    let krate = &state.crate_path;
    let name = &state.input.ident;
    let update = update_ident(name);
    let (impl_generics, type_generics, _) = state.input.generics.split_for_impl();
    let where_clause = where_with_reducer_bounds(state);
    let overwrites = overwrites_field();
    let then = state.fields.iter().map(|field| {
        let ident = field.ident;
        let slot = if let Some((index, compose, apply)) = reducer_parts(state, field) {
            quote! {{
                let (slot, overwritten) = #krate::__private::then_reducer(
                    (self.#ident, self.#overwrites.has(#index)),
                    (later.#ident, later.#overwrites.has(#index)),
                    #compose,
                    #apply,
                );
                overwrites.put(#index, overwritten);
                slot
            }}
        } else {
            quote!(#krate::__private::then_last_write(self.#ident, later.#ident))
        };
        quote!(#ident: #slot,)
    });
    let merge = state.fields.iter().map(|field| {
        let ident = field.ident;
        let name = field_name(field);
        let slot = if let Some((index, compose, apply)) = reducer_parts(state, field) {
            quote! {{
                let (slot, overwritten) = #krate::__private::merge_reducer(
                    (self.#ident, self.#overwrites.has(#index)),
                    (other.#ident, other.#overwrites.has(#index)),
                    #name,
                    #compose,
                    #apply,
                )?;
                overwrites.put(#index, overwritten);
                slot
            }}
        } else {
            quote!(#krate::__private::merge_last_write(self.#ident, other.#ident, #name)?)
        };
        quote!(#ident: #slot,)
    });
    let conflicts = conflict_checks(state);
    let contested = contested_bits(state);
    // Each reducer slot records whether the result is an overwrite; with none, nothing does.
    let overwrites_start = if reducer_names(state).is_empty() {
        quote!(let overwrites = #krate::__private::Overwrites::NONE;)
    } else {
        quote!(let mut overwrites = #krate::__private::Overwrites::NONE;)
    };
    quote! {
        #[automatically_derived]
        impl #impl_generics #krate::__private::StateUpdate for #update #type_generics #where_clause {
            type State = #name #type_generics;

            #[inline]
            fn is_empty(&self) -> ::core::primitive::bool {
                #update::is_empty(self)
            }

            #[inline]
            fn then(self, later: Self) -> Self {
                #overwrites_start
                Self { #(#then)* #overwrites: overwrites }
            }

            #[inline]
            fn merge(
                self,
                other: Self,
            ) -> ::core::result::Result<Self, #krate::__private::MergeConflict> {
                #overwrites_start
                ::core::result::Result::Ok(Self { #(#merge)* #overwrites: overwrites })
            }

            #[inline]
            fn conflict(
                &self,
                other: &Self,
            ) -> ::core::option::Option<#krate::__private::MergeConflict> {
                let _ = other; // unused when the state has no fields
                #(#conflicts)*
                ::core::option::Option::None
            }

            #[inline]
            fn __contested(&self) -> ::core::option::Option<::core::primitive::u64> {
                #contested
            }
        }
    }
}

fn ty_span(field: &Field) -> Span {
    field.ty_span()
}

fn path_span(path: &syn::ExprPath) -> Span {
    syn::spanned::Spanned::span(path)
}

/// Tokens as a person writes them: `Vec<Message>`, `std::collections::BTreeMap<String, u32>`.
pub(crate) fn tokens_text(tokens: &impl ToTokens) -> String {
    let spaced = tokens.to_token_stream().to_string();
    let mut text = String::with_capacity(spaced.len());
    let mut chars = spaced.chars().peekable();
    while let Some(current) = chars.next() {
        if current == ' ' {
            let previous = text.chars().last();
            let next = chars.peek().copied();
            let glued_after = matches!(previous, Some('<' | ':' | '&' | '(' | '[' | '\'' | '!'));
            let glued_before = matches!(next, Some('<' | '>' | ':' | ',' | ';' | ')' | ']' | '('));
            if glued_after || glued_before || previous.is_none() {
                continue;
            }
        }
        text.push(current);
    }
    text
}

#[cfg(test)]
mod tests {
    use syn::parse_quote;

    use super::*;
    use crate::errors::Errors;
    use crate::shared_state::attr::Container;

    #[test]
    fn tokens_text_reads_like_source() {
        let cases: [(syn::Type, &str); 6] = [
            (parse_quote!(Vec<Message>), "Vec<Message>"),
            (parse_quote!(Option<String>), "Option<String>"),
            (
                parse_quote!(std::collections::BTreeMap<String, u32>),
                "std::collections::BTreeMap<String, u32>",
            ),
            (parse_quote!(&'static str), "&'static str"),
            (parse_quote!([u8; 4]), "[u8; 4]"),
            (parse_quote!((u8, Vec<u8>)), "(u8, Vec<u8>)"),
        ];
        for (ty, expected) in cases {
            assert_eq!(tokens_text(&ty), expected);
        }
        let path: syn::Path = parse_quote!(crate::reducers::keep_max);
        assert_eq!(tokens_text(&path), "crate::reducers::keep_max");
    }

    fn expand_text(input: &syn::DeriveInput) -> String {
        let mut errors = Errors::default();
        let state = State::from_syn(
            input,
            Container::plain(parse_quote!(::slateflow)),
            &mut errors,
        )
        .unwrap();
        assert!(errors.is_empty());
        expand(&state).to_string()
    }

    #[test]
    fn setters_are_named_after_the_reducer() {
        let input: syn::DeriveInput = parse_quote! {
            pub struct Triage {
                r#type: String,
                #[reducer(add)] count: u64,
                #[reducer(append)] log: Vec<String>,
                #[reducer(with = keep_max)] score: f64,
            }
        };
        let text = expand_text(&input);
        for setter in [
            "fn set_type",
            "fn add_count",
            "fn push_log",
            "fn extend_log",
            "fn reduce_score",
        ] {
            assert!(text.contains(setter), "missing {setter}");
        }
        assert!(text.contains("pub struct TriageUpdate"));
        assert!(text.contains("\"type\""), "metadata uses the unraw name");
        assert!(text.contains("for < '__r > u64 : :: slateflow :: __private :: Addable"));
        assert!(text.contains("< u64 as :: slateflow :: __private :: Addable > :: add_increment"));
        assert!(text.contains("Vec < String > : :: slateflow :: __private :: Append"));
    }

    #[test]
    fn serde_skipped_fields_are_skipped_in_the_update() {
        let input: syn::DeriveInput = parse_quote! {
            struct S { #[serde(skip)] handle: Handle, kept: u8 }
        };
        let text = expand_text(&input);
        assert_eq!(text.matches("# [serde (skip)]").count(), 1);
        assert!(text.contains("\"handle\" => :: core :: option :: Option :: None"));
    }

    #[test]
    fn renamed_crate_reaches_every_path() {
        let input: syn::DeriveInput = parse_quote!(
            struct S {
                #[reducer(add)]
                n: u8,
            }
        );
        let mut errors = Errors::default();
        let state =
            State::from_syn(&input, Container::plain(parse_quote!(flowlib)), &mut errors).unwrap();
        let text = expand(&state).to_string();
        // No path starts at `slateflow` (the hidden field's name `__slateflow_overwrites` is no path).
        assert!(!text.contains("slateflow ::"), "{text}");
        assert!(!text.contains("slateflow::"), "{text}");
        assert!(text.contains("\"flowlib::__private::serde\""));
    }
}
