//! What the derive's generated code calls to combine update slots: each helper takes the slots
//! (`Option<T>`: `None` means "not written") and hides one reducer rule.

use serde::{Deserialize, Deserializer, Serialize};

use crate::error::MergeConflict;
use crate::reducer::{Addable, Append};

/// Sequential composition of a last-write-wins slot: the later write wins.
#[inline]
pub fn then_last_write<T>(earlier: Option<T>, later: Option<T>) -> Option<T> {
    later.or(earlier)
}

/// Parallel merge of a last-write-wins slot: a write on both sides is a conflict.
///
/// # Errors
/// [`MergeConflict`] when both slots are written.
#[inline]
pub fn merge_last_write<T>(
    left: Option<T>,
    right: Option<T>,
    field: &'static str,
) -> Result<Option<T>, MergeConflict> {
    match (left, right) {
        (Some(_), Some(_)) => Err(MergeConflict::new(field)),
        (left, right) => Ok(left.or(right)),
    }
}

/// Composition (sequential or parallel) of a reducer slot: `reduce(first, second)` when both are written.
#[inline]
pub fn combine<T>(
    first: Option<T>,
    second: Option<T>,
    reduce: impl FnOnce(&mut T, T),
) -> Option<T> {
    match (first, second) {
        (Some(mut first), Some(second)) => {
            reduce(&mut first, second);
            Some(first)
        }
        (first, second) => first.or(second),
    }
}

/// Sequential composition of a reducer slot that may be an overwrite: `(slot, overwrites)` pairs.
///
/// A later overwrite replaces whatever came before; a later reduction lands on an earlier
/// overwrite as it would on the state (`apply`), and on an earlier reduction by composing
/// (`compose`). `apply` and `compose` differ only for collections that edit by id.
#[inline]
pub fn then_reducer<T>(
    (first, first_overwrites): (Option<T>, bool),
    (second, second_overwrites): (Option<T>, bool),
    compose: impl FnOnce(&mut T, T),
    apply: impl FnOnce(&mut T, T),
) -> (Option<T>, bool) {
    match (first, second) {
        (_, Some(second)) if second_overwrites => (Some(second), true),
        (Some(mut first), Some(second)) => {
            if first_overwrites {
                apply(&mut first, second);
            } else {
                compose(&mut first, second);
            }
            (Some(first), first_overwrites)
        }
        (Some(first), None) => (Some(first), first_overwrites),
        (None, second) => (second, false),
    }
}

/// Parallel merge of a reducer slot that may be an overwrite (a fork's branches, in written
/// order): an overwrite on one side becomes the base, and the other side's reduction is applied
/// on top of it, whichever side comes first. Nothing is lost, and the result does not depend on
/// where the overwriting branch is written.
///
/// # Errors
/// [`MergeConflict`] when both sides overwrite the field.
#[inline]
pub fn merge_reducer<T>(
    (left, left_overwrites): (Option<T>, bool),
    (right, right_overwrites): (Option<T>, bool),
    field: &'static str,
    compose: impl FnOnce(&mut T, T),
    apply: impl FnOnce(&mut T, T),
) -> Result<(Option<T>, bool), MergeConflict> {
    match (left, right) {
        (Some(_), Some(_)) if left_overwrites && right_overwrites => {
            Err(MergeConflict::overwrite(field))
        }
        (Some(left), Some(mut right)) if right_overwrites => {
            apply(&mut right, left);
            Ok((Some(right), true))
        }
        (left, right) => Ok(then_reducer(
            (left, left_overwrites),
            (right, right_overwrites),
            compose,
            apply,
        )),
    }
}

/// The fields of an update that are overwrites, not reductions: bit `k` is the `k`-th reducer
/// field (`add`, `append`, `with`) in declaration order, in `WORDS` words of 64 bits (the derive
/// gives a state as many as its reducer fields need, one for up to 64).
///
/// Serialized under [`OVERWRITE_KEY`](crate::state::OVERWRITE_KEY) as the list of the fields'
/// names, beside their values: `{"history": [...], "$overwrite": ["history"]}`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Overwrites<const WORDS: usize>([u64; WORDS]);

impl<const WORDS: usize> Default for Overwrites<WORDS> {
    fn default() -> Self {
        Self::NONE
    }
}

impl<const WORDS: usize> Overwrites<WORDS> {
    /// No field overwritten.
    pub const NONE: Self = Self([0; WORDS]);

    /// Whether the `index`-th reducer field is overwritten.
    #[inline]
    #[must_use]
    pub const fn has(self, index: usize) -> bool {
        self.0[index / 64] & (1 << (index % 64)) != 0
    }

    /// Marks the `index`-th reducer field as overwritten (`true`) or reduced (`false`).
    #[inline]
    pub fn put(&mut self, index: usize, overwrites: bool) {
        let (word, bit) = (index / 64, 1 << (index % 64));
        if overwrites {
            self.0[word] |= bit;
        } else {
            self.0[word] &= !bit;
        }
    }

    /// Whether no field is overwritten: the key is left out of the JSON.
    #[inline]
    #[must_use]
    pub fn is_none(&self) -> bool {
        self.0.iter().all(|word| *word == 0)
    }

    /// Writes the overwritten fields' names, given the reducer fields' names in order.
    ///
    /// # Errors
    /// Whatever the serializer reports.
    pub fn write_names<S: serde::Serializer>(
        self,
        names: &[&str],
        serializer: S,
    ) -> Result<S::Ok, S::Error> {
        serializer.collect_seq(
            names
                .iter()
                .enumerate()
                .filter(|&(index, _)| self.has(index))
                .map(|(_, name)| name),
        )
    }

    /// Reads a list of field names back, given the reducer fields' names in order.
    ///
    /// # Errors
    /// A name that is not one of `names`, naming the state and listing the reducer fields.
    pub fn read_names<'de, D: Deserializer<'de>>(
        names: &[&str],
        state: &str,
        deserializer: D,
    ) -> Result<Self, D::Error> {
        let listed = Vec::<String>::deserialize(deserializer)?;
        let mut overwrites = Self::NONE;
        for name in &listed {
            let Some(index) = names.iter().position(|field| field == name) else {
                return Err(serde::de::Error::custom(format_args!(
                    "`{key}` names `{name}`, which is not a reducer field of `{state}` (only \
                     `add`, `append` and `with` fields can be overwritten; {state}'s are: {fields})",
                    key = crate::state::OVERWRITE_KEY,
                    fields = if names.is_empty() {
                        "none".to_string()
                    } else {
                        names.join(", ")
                    }
                )));
            };
            overwrites.put(index, true);
        }
        Ok(overwrites)
    }
}

/// Writes an overwrite into an `append` field: the field becomes the collection, in the state's
/// form (edits by id resolved).
#[inline]
pub fn overwrite_collection<C: Append>(field: &mut C, value: C) {
    *field = C::default();
    field.apply(value);
}

/// The `add` reducer.
#[inline]
pub fn add<T: Addable>(field: &mut T, increment: T) {
    field.add_increment(increment);
}

/// The `append` reducer.
#[inline]
pub fn append<C: Append>(field: &mut C, new: C) {
    field.append(new);
}

/// The `append` reducer, writing an update into the state.
#[inline]
pub fn append_to_state<C: Append>(field: &mut C, new: C) {
    field.apply(new);
}

/// Adds one item to an `append` slot.
#[inline]
pub fn push_item<C: Append>(slot: &mut Option<C>, item: C::Item) {
    slot.get_or_insert_with(C::default).push_item(item);
}

/// Appends a whole collection to an `append` slot; onto an overwrite, as onto the state.
#[inline]
pub fn append_collection<C: Append>(slot: &mut Option<C>, new: C, overwrites: bool) {
    match slot {
        Some(collection) if overwrites => collection.apply(new),
        Some(collection) => collection.append(new),
        None => *slot = Some(new),
    }
}

/// Takes `count` items from the front of a `queue` slot's queue, after what it does already.
#[inline]
pub fn take_items<Q: QueueField>(slot: &mut Option<Q>, count: usize) {
    slot.get_or_insert_with(Q::default).take_front(count);
}

/// Whether a reducer slot's update contests its field in a fork ([`Append::contests`]).
#[inline]
pub fn contests<C: Append>(slot: &Option<C>) -> bool {
    slot.as_ref().is_some_and(Append::contests)
}

/// The type of a `#[reducer(queue)]` field: a [`Queue`](crate::reducer::Queue).
#[diagnostic::on_unimplemented(
    message = "`#[reducer(queue)]` needs a `slateflow::reducer::Queue<T>`; `{Self}` is not one",
    label = "not a `slateflow::reducer::Queue`",
    note = "declare the field as `Queue<T>`, or use `#[reducer(append)]` for a collection that is only appended to"
)]
pub trait QueueField: Append {
    /// Takes `count` items from the front, after what it does already.
    fn take_front(&mut self, count: usize);
}

impl<T> QueueField for crate::reducer::Queue<T> {
    fn take_front(&mut self, count: usize) {
        self.take(count);
    }
}

/// Adds many items to an `append` slot.
#[inline]
pub fn extend_items<C: Append>(slot: &mut Option<C>, items: impl IntoIterator<Item = C::Item>) {
    let collection = slot.get_or_insert_with(C::default);
    for item in items {
        collection.push_item(item);
    }
}

/// Implemented by nothing: what `set_<field>` of an `add` field requires, so that calling it is
/// an error that says what to call instead.
#[diagnostic::on_unimplemented(
    message = "an `add` field takes the increment, not the new total",
    label = "this would be taken as the total",
    note = "call `add_<field>(change)` with the change (`add_revisions(1)`): writes to an `add` \
            field are summed, so passing the total would count twice; to replace the value \
            (reset a counter), call `overwrite_<field>(value)`"
)]
pub trait AddFieldTakesIncrement {}

/// Implemented by nothing: what `set_<field>` of an `append` field requires, so that calling it
/// is an error that says what to call instead.
#[diagnostic::on_unimplemented(
    message = "an `append` field takes the new items, not the whole list",
    label = "this would be taken as the whole list",
    note = "call `push_<field>(item)` or `extend_<field>(items)` with the new items only: writes \
            to an `append` field are appended; to replace the whole list (trim a history), call \
            `overwrite_<field>(list)`"
)]
pub trait AppendFieldTakesItems {}

/// Implemented by nothing: what `set_<field>` of a `queue` field requires, so that calling it is
/// an error that says what to call instead.
#[diagnostic::on_unimplemented(
    message = "a `queue` field takes what is pushed and taken, not the whole queue",
    label = "this would be taken as the whole queue",
    note = "call `push_<field>(item)` to push at the back and `take_<field>(count)` to take from \
            the front; to replace the whole queue, call `overwrite_<field>(queue)`"
)]
pub trait QueueFieldTakesItems {}

/// A field's value as template text; see [`SharedState::field_text`](crate::SharedState::field_text).
pub fn field_text<T: Serialize + ?Sized>(value: &T) -> Option<String> {
    match serde_json::to_value(value).ok()? {
        serde_json::Value::Null => None,
        serde_json::Value::String(text) => Some(text),
        other => Some(other.to_string()),
    }
}

/// Reads a present slot as written, so that `null` means "written `None`", not "not written".
///
/// # Errors
/// Whatever `T`'s deserializer reports.
pub fn deserialize_written<'de, T, D>(deserializer: D) -> Result<Option<T>, D::Error>
where
    T: Deserialize<'de>,
    D: Deserializer<'de>,
{
    T::deserialize(deserializer).map(Some)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn last_write_slots() {
        assert_eq!(then_last_write(Some(1), Some(2)), Some(2));
        assert_eq!(then_last_write(Some(1), None), Some(1));
        assert_eq!(then_last_write(None::<i32>, None), None);
        assert_eq!(merge_last_write(Some(1), None, "x"), Ok(Some(1)));
        assert_eq!(merge_last_write(None, Some(2), "x"), Ok(Some(2)));
        assert_eq!(
            merge_last_write(Some(1), Some(1), "x"),
            Err(MergeConflict::new("x"))
        );
    }

    #[test]
    fn combine_reduces_only_when_both_are_written() {
        assert_eq!(combine(Some(1), Some(2), add), Some(3));
        assert_eq!(combine(None, Some(2), add), Some(2));
        assert_eq!(combine(Some(1), None, add), Some(1));
        assert_eq!(combine(None::<i32>, None, add), None);
    }

    #[test]
    fn field_text_renders_by_json_kind() {
        assert_eq!(field_text("plain"), Some("plain".to_string()));
        assert_eq!(field_text(&Some("inner")), Some("inner".to_string()));
        assert_eq!(field_text(&None::<String>), None);
        assert_eq!(field_text(&3_u8), Some("3".to_string()));
        assert_eq!(field_text(&0.5_f64), Some("0.5".to_string()));
        assert_eq!(field_text(&true), Some("true".to_string()));
        assert_eq!(
            field_text(&vec!["a", "b"]),
            Some(r#"["a","b"]"#.to_string())
        );
        // A map with non-string keys cannot become JSON: no text rather than a wrong one.
        let map = std::collections::BTreeMap::from([(vec![1], 2)]);
        assert_eq!(field_text(&map), None);
    }
}
