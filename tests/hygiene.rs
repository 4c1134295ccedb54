//! The macros' expansions compile when the user shadows prelude names, under the strictest lints,
//! and the derive documents every public item it generates.
#![deny(warnings, missing_docs, clippy::pedantic)]

// Shadow the prelude names generated code must not rely on, in both namespaces.
#[allow(dead_code)]
struct Result;
#[allow(dead_code)]
struct Option;
#[allow(dead_code)]
struct Vec;
#[allow(dead_code)]
struct String;
#[allow(dead_code)]
struct Default;
#[allow(dead_code, non_camel_case_types)]
struct bool;
#[allow(dead_code, non_snake_case)]
fn Some() {}
#[allow(dead_code, non_upper_case_globals)]
const None: () = ();
#[allow(dead_code)]
trait Clone {}
#[allow(dead_code)]
trait Debug {}

use serde::{Deserialize, Serialize};
use slateflow::{Command, SharedState, StateUpdate, flow, node};

/// Keeps the larger value.
pub fn keep_max(current: &mut u32, new: u32) {
    *current = (*current).max(new);
}

/// A public state whose expansion must satisfy `missing_docs` and pedantic clippy.
#[derive(
    SharedState,
    ::core::clone::Clone,
    ::core::fmt::Debug,
    ::core::default::Default,
    Serialize,
    Deserialize,
)]
pub struct Strict<T: ::core::clone::Clone> {
    /// Last write wins.
    pub label: ::std::string::String,
    /// Last write wins, optional.
    pub note: ::core::option::Option<::std::string::String>,
    /// Increments.
    #[reducer(add)]
    pub count: u64,
    /// Appended items.
    #[reducer(append)]
    pub items: ::std::vec::Vec<T>,
    /// Combined by `keep_max`.
    #[reducer(with = keep_max)]
    pub best: u32,
    /// Not serialized.
    #[serde(skip)]
    pub scratch: u8,
}

#[test]
fn expansion_works_with_shadowed_prelude_names() {
    let mut state = Strict::<u8>::default();
    let left = Strict::<u8>::update()
        .set_label("x".into())
        .add_count(1)
        .push_items(1)
        .reduce_best(4);
    let right = Strict::<u8>::update()
        .set_note(::core::option::Option::None)
        .add_count(2)
        .extend_items([2, 3])
        .reduce_best(9)
        .set_scratch(5);
    state.apply(left.merge(right).unwrap());
    assert_eq!(state.label, "x");
    assert_eq!(state.count, 3);
    assert_eq!(state.items, [1, 2, 3]);
    assert_eq!(state.best, 9);
    assert_eq!(state.scratch, 5);
    assert_eq!(
        state.field_text("label").as_deref(),
        ::core::option::Option::Some("x")
    );
}

/// Counts up to three, then stops.
#[node(actions = ["again", "stop"])]
pub fn count_up(state: &Strict<u8>) -> Command<Strict<u8>> {
    let action = if state.count + 1 < 3 { "again" } else { "stop" };
    Command::new(Strict::<u8>::update().add_count(1)).with_action(action)
}

/// Records the count, asynchronously.
#[node]
pub async fn record(
    state: &Strict<u8>,
) -> ::core::result::Result<Command<Strict<u8>>, ::std::io::Error> {
    let count = u8::try_from(state.count).map_err(::std::io::Error::other)?;
    ::std::future::ready(()).await;
    ::core::result::Result::Ok(Command::new(Strict::<u8>::update().push_items(count)))
}

/// Records the count plus one.
#[node]
pub fn record_next(state: &Strict<u8>) -> Command<Strict<u8>> {
    let next = u8::try_from(state.count + 1).unwrap_or(u8::MAX);
    Command::new(Strict::<u8>::update().push_items(next))
}

#[test]
fn overwrites_work_on_a_generic_state_and_survive_json() {
    let mut state = Strict::<u8>::default();
    state.apply(Strict::<u8>::update().add_count(5).extend_items([1, 2]));
    let update = Strict::<u8>::update()
        .overwrite_count(1)
        .overwrite_items(::std::vec![9])
        .push_items(10);
    let json = serde_json::to_string(&update).unwrap();
    assert_eq!(
        json,
        r#"{"count":1,"items":[9,10],"$overwrite":["count","items"]}"#
    );
    let back: StrictUpdate<u8> = serde_json::from_str(&json).unwrap();
    state.apply(back);
    assert_eq!(state.count, 1);
    assert_eq!(state.items, [9, 10]);
}

#[test]
fn flow_and_node_expansions_work_with_shadowed_prelude_names() {
    let flow = flow! {
        #![exhaustive]
        count_up - "again" >> count_up;
        count_up - "stop" >> record;
    };
    let mut state = Strict::<u8>::default();
    assert_eq!(flow.run_blocking(&mut state).unwrap(), "default");
    assert_eq!(state.count, 3);
    assert_eq!(state.items, [3]);
    let forked = flow! {
        count_up - "again" >> count_up;
        count_up - "stop" >> [record, record_next];
    };
    let mut state = Strict::<u8>::default();
    assert_eq!(forked.run_blocking(&mut state).unwrap(), "default");
    assert_eq!(state.items, [3, 4]);
}

/// A generic state with a `where` clause and no trailing comma, and a `with` reducer over a
/// nested generic type (which must not trip `clippy::type_complexity` in the user's crate).
#[derive(
    SharedState,
    ::core::clone::Clone,
    ::core::fmt::Debug,
    ::core::default::Default,
    Serialize,
    Deserialize,
)]
pub struct Bounded<T>
where
    T: ::core::clone::Clone + ::core::marker::Send + ::core::marker::Sync + 'static,
{
    /// Appended items.
    #[reducer(append)]
    pub items: ::std::vec::Vec<T>,
    /// Merged by key.
    #[reducer(with = merge_lists)]
    pub lists: ::std::collections::BTreeMap<::std::string::String, ::std::vec::Vec<i64>>,
}

/// Appends each list to the list of the same key.
pub fn merge_lists(
    current: &mut ::std::collections::BTreeMap<::std::string::String, ::std::vec::Vec<i64>>,
    new: ::std::collections::BTreeMap<::std::string::String, ::std::vec::Vec<i64>>,
) {
    for (key, values) in new {
        current.entry(key).or_default().extend(values);
    }
}

#[test]
fn a_where_clause_without_a_trailing_comma_and_a_nested_generic_reducer() {
    let mut state = Bounded::<u8>::default();
    let update = Bounded::<u8>::update()
        .push_items(1)
        .reduce_lists([("a".to_string(), vec![1])].into_iter().collect());
    state.apply(update.then(
        Bounded::<u8>::update().reduce_lists([("a".to_string(), vec![2])].into_iter().collect()),
    ));
    assert_eq!(state.items, [1]);
    assert_eq!(state.lists["a"], [1, 2]);
}

/// A counter. (Defined outside `shadowed_names`: serde's own derive names `u64` bare.)
#[derive(
    SharedState,
    ::core::clone::Clone,
    ::core::fmt::Debug,
    ::core::default::Default,
    Serialize,
    Deserialize,
)]
pub struct Tally {
    /// Increments.
    #[reducer(add)]
    pub count: u64,
}

/// Adds one.
#[node]
pub fn bump(_: &Tally) -> Command<Tally> {
    Command::new(Tally::update().add_count(1))
}

/// Adds one, in a branch.
#[node]
pub fn other(_: &Tally) -> Command<Tally> {
    Command::new(Tally::update().add_count(1))
}

/// Items named like the generated code's locals and primitive types, in the scope of `flow!`.
#[allow(dead_code, non_camel_case_types, non_upper_case_globals)]
mod shadowed_names {
    use slateflow::flow;

    struct u64;
    struct usize;
    struct u32;
    const __state: () = ();
    const __state_type: () = ();
    const __graph: () = ();
    const __slateflow_first_branch: () = ();
    const __run: () = ();
    const __current: () = ();
    const __runner: () = ();
    const __position: () = ();
    const __action: () = ();
    const __before: () = ();
    const __joined: () = ();
    const __context: () = ();
    const __node_output: () = ();
    const __branch0: () = ();

    const __shared: () = ();
    const __branches: () = ();
    fn __new() {}

    use super::{Tally, bump, other};
    use slateflow::{Command, Context, SharedState, node};

    /// Adds one, reading its context; defined beside the items above.
    #[node]
    pub fn near(_: &Tally, context: &Context<'_>) -> Command<Tally> {
        ::core::assert_eq!(context.node(), "near");
        Command::new(Tally::update().add_count(1))
    }

    #[test]
    fn flow_works_beside_items_named_like_its_locals() {
        let flow = flow! { bump >> [near, other]; };
        let mut tally = Tally::default();
        flow.run_blocking(&mut tally).unwrap();
        ::core::assert_eq!(tally.count, 3);
    }
}

/// Items named like the derive's parameters and locals, in the scope of `#[derive(SharedState)]`.
#[allow(dead_code, non_camel_case_types, non_upper_case_globals)]
pub mod shadowed_derive_names {
    use serde::{Deserialize, Serialize};
    use slateflow::{SharedState, StateUpdate};

    struct overwrites;
    struct overwritten;
    struct slot;
    struct later;
    struct other;
    struct value;
    struct update;
    struct serializer;
    struct deserializer;
    const increment: () = ();
    const items: () = ();
    const bits: () = ();

    /// A state derived beside the items above.
    #[derive(SharedState, ::core::default::Default, Serialize, Deserialize)]
    pub struct Near {
        /// Increments.
        #[reducer(add)]
        pub total: u32,
        /// Appended.
        #[reducer(append)]
        pub notes: ::std::vec::Vec<::std::string::String>,
    }

    #[test]
    fn the_derive_works_beside_items_named_like_its_locals() {
        let mut near = Near::default();
        let reset = Near::update().overwrite_total(7).push_notes("a".into());
        let more = Near::update().add_total(1);
        near.apply(reset.clone().merge(more.clone()).unwrap().then(more));
        ::core::assert_eq!(near.total, 9);
        let json = serde_json::to_string(&reset).unwrap();
        let back: NearUpdate = serde_json::from_str(&json).unwrap();
        near.apply(back);
        ::core::assert_eq!((near.total, near.notes.len()), (7, 2));
        // The overwritten `total` (field 0) is claimed; appended `notes` are not.
        ::core::assert_eq!(reset.__contested(), ::core::option::Option::Some(1));
    }
}
