#![doc = include_str!("../../README.md")]
//!
//! # Modules
//! - [`state`]: the [`SharedState`] and [`StateUpdate`] traits and field metadata;
//! - [`reducer`]: how writes combine, and the [`Addable`] and [`Append`] traits;
//! - [`error`]: the errors;
//! - `example_generated` (in the documentation only): what the derive generates for an example state.

// Lets the crate's own documentation use the derive, whose output names `::slateflow`.
extern crate self as slateflow;

pub mod error;
pub mod reducer;
pub mod state;

#[cfg(doc)]
pub mod example_generated;

#[doc(hidden)]
#[path = "private.rs"]
pub mod __private;

pub use error::MergeConflict;
pub use reducer::{Addable, Append, Reducer};
pub use state::{Field, SharedState, StateUpdate, UpdateOf};

/// Derives [`SharedState`] for a struct with named fields, and generates its update type.
///
/// See the [crate documentation](crate) for a tour, and [`reducer`] for the field attributes:
/// `#[reducer(add)]`, `#[reducer(append)]` and `#[reducer(with = path)]`; a field without one is
/// last-write-wins.
///
/// # What it generates
/// For `struct Triage`, with the struct's visibility and generics:
/// - `TriageUpdate`: one `Option` slot per field (`None`: not written), with chainable setters named
///   after the reducer: `set_<field>(value)` for last-write-wins fields, `add_<field>(increment)`,
///   `push_<field>(item)` and `extend_<field>(items)` for append fields, `reduce_<field>(value)` for
///   `with` fields; `new()`, `is_empty()`, `Default`, `Debug`, `Clone`, `Serialize`, `Deserialize`;
/// - `impl SharedState for Triage` and `impl StateUpdate for TriageUpdate`.
///
/// Every field must be serializable, or marked `#[serde(skip)]`: updates are logged and checkpointed.
/// A skipped field can still be written by an update; it is just not serialized. An update's JSON keys
/// are the Rust field names (the names templates and metadata use), whatever serde renames the state's
/// own fields to. Each slot has its field's visibility; the setters have the struct's.
///
/// # Container attribute
/// `#[slateflow(crate = path)]`: where to find this crate, when your `Cargo.toml` renames it
/// (`flowlib = { package = "slateflow", ... }` needs `#[slateflow(crate = flowlib)]`).
pub use slateflow_macros::SharedState;

/// The traits and the derive, for `use slateflow::prelude::*;`.
pub mod prelude {
    pub use crate::{SharedState, StateUpdate};
}
