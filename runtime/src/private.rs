//! Support for the code the macros generate. Not public API: no semver guarantees.
//!
//! Generated code names everything through `::slateflow::__private` (or the path given with
//! `#[slateflow(crate = ...)]`) so that it compiles whatever the user has in scope. Each helper takes
//! the update slots (`Option<T>`: `None` means "not written") and hides one reducer rule.

use serde::{Deserialize, Deserializer, Serialize};

use crate::error::MergeConflict;
use crate::reducer::{Addable, Append};

pub use serde;

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

/// Adds one item to an `append` slot.
#[inline]
pub fn push_item<C: Append>(slot: &mut Option<C>, item: C::Item) {
    slot.get_or_insert_with(C::default).push_item(item);
}

/// Adds many items to an `append` slot.
#[inline]
pub fn extend_items<C: Append>(slot: &mut Option<C>, items: impl IntoIterator<Item = C::Item>) {
    let collection = slot.get_or_insert_with(C::default);
    for item in items {
        collection.push_item(item);
    }
}

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
