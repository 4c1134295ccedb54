//! What `prompt!`'s generated code calls: the check of each placeholder, and the checked
//! template.

use crate::state::{SharedState, field_index, nearest_field};
use crate::text::ConstText;

/// The compile-time check `prompt!` makes for each placeholder: `field` must be a field of `S`.
///
/// # Panics
/// At compile time, with a message naming the placeholder, the state type and the nearest field.
pub const fn check_placeholder<S: SharedState>(state: &str, field: &str) {
    if field_index(S::FIELDS, field).is_some() {
        return;
    }
    let mut message = ConstText::new()
        .push("the template placeholder `{")
        .push(field)
        .push("}` names no field of `")
        .push(state)
        .push("`");
    if let Some(candidate) = nearest_field(S::FIELDS, field) {
        message = message
            .push("; the nearest field is `")
            .push(candidate)
            .push("`");
    } else {
        message = message.push("; its fields are: ");
        let mut index = 0;
        while index < S::FIELDS.len() {
            if index > 0 {
                message = message.push(", ");
            }
            message = message.push(S::FIELDS[index].name());
            index += 1;
        }
    }
    panic!("{}", message.as_str());
}
