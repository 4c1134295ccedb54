//! The errors slateflow returns. Each says what went wrong, where, and what to do about it.

/// Two parallel updates both wrote the same last-write-wins field.
///
/// Returned by [`StateUpdate::merge`](crate::StateUpdate::merge). Which value should win would depend
/// on which branch finished first, so the merge refuses both, even when they are equal (LangGraph's
/// rule). Write the field from one branch only, or give it a reducer that combines writes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, thiserror::Error)]
#[error(
    "conflicting parallel writes to the last-write-wins field `{field}`: write it from one branch \
     only, or give it a reducer such as `#[reducer(append)]` or `#[reducer(with = path)]`"
)]
pub struct MergeConflict {
    field: &'static str,
}

impl MergeConflict {
    /// A conflict on the field called `field`.
    pub const fn new(field: &'static str) -> Self {
        Self { field }
    }

    /// The name of the field both updates wrote.
    pub const fn field(&self) -> &'static str {
        self.field
    }
}
