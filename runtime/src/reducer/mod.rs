//! Reducers: how a write to a field combines with the value already there.
//!
//! A field of a [`SharedState`](crate::SharedState) picks its reducer with an attribute:
//!
//! | attribute | the update carries | applying it | bound on the field type |
//! |---|---|---|---|
//! | none | the new value | replaces the value (last write wins) | none |
//! | `#[reducer(add)]` | an increment | `field += increment` | [`AddAssign`] (see [`Addable`]) |
//! | `#[reducer(append)]` | the new items | appends them after the existing ones | [`Append`] |
//! | `#[reducer(queue)]` | items taken from the front, items pushed at the back | takes, then pushes, in order | a [`Queue`] |
//! | `#[reducer(with = path)]` | a value | calls `path(&mut field, value)` | `path: fn(&mut T, T)` |
//!
//! Every reducer field can also be replaced instead of reduced, with the update's
//! `overwrite_<field>(value)`: trim a message history to fit a context window, reset a counter.
//! In a fork, the other branches' writes land on the overwrite, and two overwrites of one field
//! are a conflict ([`Error::ParallelOverwrite`](crate::Error::ParallelOverwrite)).
//!
//! With `add`, a node returns the delta, never the total. A `with` function must be associative
//! (`f(f(x, a), b) == f(x, f(a, b))`), like `max`, a keyed map merge or a sum; two updates to the field
//! are composed with the same function before they reach the state.
//!
//! This module owns the metadata enum, the [`Addable`] and [`Append`] traits and the [`Queue`]
//! type. It does not know about nodes or flows.

use std::collections::{BTreeMap, BTreeSet, BinaryHeap, HashMap, HashSet, LinkedList, VecDeque};

mod queue;

pub use queue::Queue;
use std::fmt;
use std::hash::{BuildHasher, Hash};
use std::ops::AddAssign;

/// How writes to a field are combined, as recorded in the field metadata.
///
/// ```
/// use serde::{Deserialize, Serialize};
/// use slateflow::{Reducer, SharedState};
///
/// #[derive(SharedState, Clone, Debug, Default, Serialize, Deserialize)]
/// struct Stats {
///     name: String,
///     #[reducer(add)]
///     runs: u32,
/// }
///
/// let reducers: Vec<Reducer> = Stats::FIELDS.iter().map(|field| field.reducer()).collect();
/// assert_eq!(reducers, [Reducer::LastWrite, Reducer::Add]);
/// assert_eq!(Reducer::Add.to_string(), "add");
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Reducer {
    /// The default: a write replaces the value. Two parallel writes are a conflict.
    LastWrite,
    /// `#[reducer(add)]`: a write is an increment, added with `+=`.
    Add,
    /// `#[reducer(append)]`: a write is a collection of new items, appended in order.
    Append,
    /// `#[reducer(queue)]`: a write pushes items at the back of a [`Queue`] and takes items from
    /// its front, in order.
    Queue,
    /// `#[reducer(with = path)]`: a write is combined with the value by a user function.
    With {
        /// The function's path as written in the attribute, e.g. `keep_max`.
        path: &'static str,
    },
}

impl fmt::Display for Reducer {
    fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::LastWrite => formatter.write_str("last write wins"),
            Self::Add => formatter.write_str("add"),
            Self::Append => formatter.write_str("append"),
            Self::Queue => formatter.write_str("queue"),
            Self::With { path } => write!(formatter, "with `{path}`"),
        }
    }
}

/// A type that `#[reducer(add)]` can sum: every type that implements `AddAssign<Self>` (integers,
/// floats, `Duration`, your own types).
///
/// There is nothing to implement: it exists so that a type without `+=` gets an error that names the
/// reducer.
///
/// ```
/// use serde::{Deserialize, Serialize};
/// use slateflow::{Addable, SharedState};
///
/// #[derive(SharedState, Clone, Debug, Default, Serialize, Deserialize)]
/// struct Usage {
///     #[reducer(add)]
///     seconds: f64,                       // any type with `+=`
///     #[reducer(add)]
///     waited: std::time::Duration,
/// }
///
/// let mut usage = Usage::default();
/// usage.apply(Usage::update().add_seconds(1.5).add_waited(std::time::Duration::from_millis(200)));
/// usage.apply(Usage::update().add_seconds(0.5));
/// assert_eq!(usage.seconds, 2.0);
/// let mut total = 1_u32;
/// total.add_increment(2);
/// assert_eq!(total, 3);
/// ```
#[diagnostic::on_unimplemented(
    message = "`#[reducer(add)]` needs a type that supports `+=` with itself; `{Self}` does not",
    label = "`{Self}` does not implement `AddAssign<{Self}>`",
    note = "use a number or a `Duration`, implement `AddAssign` for this type, or choose another reducer"
)]
pub trait Addable {
    /// `*self += increment`.
    fn add_increment(&mut self, increment: Self);
}

#[diagnostic::do_not_recommend]
impl<T: AddAssign> Addable for T {
    #[inline]
    fn add_increment(&mut self, increment: Self) {
        *self += increment;
    }
}

/// A collection that `#[reducer(append)]` can extend with another collection of its own kind.
///
/// Implemented for `Vec`, `VecDeque`, `LinkedList`, `BinaryHeap`, `String` (whose items are text
/// chunks), `BTreeSet`, `HashSet`, `BTreeMap` and `HashMap` (whose items are key-value pairs; a key
/// written again takes the new value). Implement it for your own collections.
///
/// ```
/// use serde::{Deserialize, Serialize};
/// use slateflow::{Append, SharedState};
///
/// /// A log that keeps its last three lines: a collection of your own.
/// #[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
/// struct Recent(Vec<String>);
///
/// impl Append for Recent {
///     type Item = String;
///
///     fn append(&mut self, new: Self) {
///         self.0.extend(new.0);
///         let extra = self.0.len().saturating_sub(3);
///         self.0.drain(..extra);
///     }
///
///     fn push_item(&mut self, item: String) {
///         self.append(Recent(vec![item]));
///     }
/// }
///
/// #[derive(SharedState, Clone, Debug, Default, Serialize, Deserialize)]
/// struct Job {
///     #[reducer(append)]
///     log: Recent,
/// }
///
/// let mut job = Job::default();
/// job.apply(Job::update().extend_log(["a", "b", "c", "d"].map(String::from)));
/// assert_eq!(job.log, Recent(vec!["b".into(), "c".into(), "d".into()]));
/// ```
#[diagnostic::on_unimplemented(
    message = "`#[reducer(append)]` needs a collection that can be extended with its own items; `{Self}` is not one",
    label = "`{Self}` does not implement `slateflow::reducer::Append`",
    note = "use a `Vec`, `VecDeque`, `String`, set or map, implement `Append` for this type, or choose another reducer"
)]
pub trait Append: Default {
    /// One item, as pushed by the update's `push_<field>` setter.
    type Item;

    /// Appends every item of `new` after the existing ones, keeping their order.
    fn append(&mut self, new: Self);

    /// Appends one item.
    fn push_item(&mut self, item: Self::Item);

    /// Applies an update's items to the state's collection. By default the same as
    /// [`append`](Append::append).
    ///
    /// `append` composes two updates; `apply` writes one into the state. They differ for a
    /// collection whose items edit earlier ones by id ([`Messages`](crate::agent::message::Messages)):
    /// composing keeps the edits that the earlier update cannot resolve (they are for the state),
    /// applying resolves them. The law: applying `a` then `b` equals applying `a` appended with `b`.
    fn apply(&mut self, new: Self) {
        self.append(new);
    }

    /// Whether this update, as one branch's in a fork, may not be merged with another branch's
    /// update that does the same: two such branches are a conflict that names the field. By
    /// default never; a [`Queue`] update that takes from the front does (both branches would
    /// have handled the same items).
    fn contests(&self) -> bool {
        false
    }
}

impl<T> Append for Vec<T> {
    type Item = T;

    fn append(&mut self, mut new: Self) {
        Vec::append(self, &mut new);
    }

    fn push_item(&mut self, item: T) {
        self.push(item);
    }
}

impl<T> Append for VecDeque<T> {
    type Item = T;

    fn append(&mut self, mut new: Self) {
        VecDeque::append(self, &mut new);
    }

    fn push_item(&mut self, item: T) {
        self.push_back(item);
    }
}

impl<T> Append for LinkedList<T> {
    type Item = T;

    fn append(&mut self, mut new: Self) {
        LinkedList::append(self, &mut new);
    }

    fn push_item(&mut self, item: T) {
        self.push_back(item);
    }
}

impl<T: Ord> Append for BinaryHeap<T> {
    type Item = T;

    fn append(&mut self, mut new: Self) {
        BinaryHeap::append(self, &mut new);
    }

    fn push_item(&mut self, item: T) {
        self.push(item);
    }
}

impl Append for String {
    type Item = String;

    fn append(&mut self, new: Self) {
        self.push_str(&new);
    }

    fn push_item(&mut self, item: String) {
        self.push_str(&item);
    }
}

impl<T: Ord> Append for BTreeSet<T> {
    type Item = T;

    fn append(&mut self, mut new: Self) {
        BTreeSet::append(self, &mut new);
    }

    fn push_item(&mut self, item: T) {
        self.insert(item);
    }
}

impl<T: Eq + Hash, S: BuildHasher + Default> Append for HashSet<T, S> {
    type Item = T;

    fn append(&mut self, new: Self) {
        self.extend(new);
    }

    fn push_item(&mut self, item: T) {
        self.insert(item);
    }
}

impl<K: Ord, V> Append for BTreeMap<K, V> {
    type Item = (K, V);

    fn append(&mut self, mut new: Self) {
        BTreeMap::append(self, &mut new);
    }

    fn push_item(&mut self, (key, value): (K, V)) {
        self.insert(key, value);
    }
}

impl<K: Eq + Hash, V, S: BuildHasher + Default> Append for HashMap<K, V, S> {
    type Item = (K, V);

    fn append(&mut self, new: Self) {
        self.extend(new);
    }

    fn push_item(&mut self, (key, value): (K, V)) {
        self.insert(key, value);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn appended<C: Append>(mut first: C, second: C) -> C {
        first.append(second);
        first
    }

    #[test]
    fn sequences_keep_order() {
        assert_eq!(appended(vec![1, 2], vec![3]), vec![1, 2, 3]);
        assert_eq!(
            appended(VecDeque::from([1]), VecDeque::from([2, 3])),
            VecDeque::from([1, 2, 3])
        );
        assert_eq!(
            appended(LinkedList::from([1]), LinkedList::from([2])),
            LinkedList::from([1, 2])
        );
        assert_eq!(appended("ab".to_string(), "c".to_string()), "abc");
    }

    #[test]
    fn maps_let_the_appended_key_win() {
        let map = appended(
            BTreeMap::from([(1, "a"), (2, "b")]),
            BTreeMap::from([(2, "c")]),
        );
        assert_eq!(map, BTreeMap::from([(1, "a"), (2, "c")]));
        let map = appended(HashMap::from([(1, "a")]), HashMap::from([(1, "z")]));
        assert_eq!(map, HashMap::from([(1, "z")]));
    }

    #[test]
    fn sets_and_heaps_take_every_item() {
        let set = appended(BTreeSet::from([1, 3]), BTreeSet::from([2, 3]));
        assert_eq!(set, BTreeSet::from([1, 2, 3]));
        let set = appended(HashSet::from([1]), HashSet::from([2]));
        assert_eq!(set, HashSet::from([1, 2]));
        let heap = appended(BinaryHeap::from([1, 5]), BinaryHeap::from([3]));
        assert_eq!(heap.into_sorted_vec(), vec![1, 3, 5]);
    }

    #[test]
    fn push_item_adds_one() {
        let mut log = String::from("a");
        log.push_item("b".to_string());
        assert_eq!(log, "ab");
        let mut map = BTreeMap::new();
        map.push_item(("k", 1));
        assert_eq!(map, BTreeMap::from([("k", 1)]));
    }

    #[test]
    fn display_names_the_reducer() {
        assert_eq!(Reducer::LastWrite.to_string(), "last write wins");
        assert_eq!(Reducer::Add.to_string(), "add");
        assert_eq!(Reducer::Append.to_string(), "append");
        assert_eq!(
            Reducer::With { path: "keep_max" }.to_string(),
            "with `keep_max`"
        );
    }
}
