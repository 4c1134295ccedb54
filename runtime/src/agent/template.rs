//! Prompt templates: `{field}` placeholders filled from the shared state.
//!
//! - [`prompt!`](crate::prompt) checks a template against the state while the program compiles
//!   (`cargo check` names a placeholder that is no field, and the nearest field);
//! - [`Prompt::parse`] checks one that comes from configuration, at run time, with the same rules;
//! - [`Prompt::render`] fills it in: a field's text replaces its placeholder
//!   ([`SharedState::field_text`]); a field that is unset (`None`) leaves the placeholder as it is,
//!   so a prompt can name what an earlier node has not written yet; `{{` and `}}` are literal braces.
//!
//! A placeholder is a field name in braces, `{alert_text}`. Any other `{` or `}` must be doubled:
//! `{"severity": ...}` in a prompt is written `{{"severity": ...}}`, so that a typo such as
//! `{alert text}` is an error rather than text the model sees.
//!
//! This module knows the state's fields, nothing else.

use std::borrow::Cow;
use std::fmt;
use std::marker::PhantomData;

use crate::state::{SharedState, field_index, nearest_field};

/// A template over the state `S`, checked against its fields.
///
/// ```
/// use serde::{Deserialize, Serialize};
/// use slateflow::{SharedState, prompt};
/// use slateflow::agent::template::Prompt;
///
/// #[derive(SharedState, Debug, Default, Serialize, Deserialize)]
/// struct Triage {
///     alert_text: String,
///     classification: Option<String>,
///     investigation: Option<String>,
/// }
///
/// let system = prompt!(Triage, "Investigate this {classification} alert: {alert_text}. \
///                               Earlier findings: {investigation}. Reply as {{\"risk\": ...}}.");
/// let state = Triage {
///     alert_text: "login from 10.0.0.5".into(),
///     classification: Some("intrusion".into()),
///     ..Triage::default()
/// };
/// assert_eq!(
///     system.render(&state),
///     "Investigate this intrusion alert: login from 10.0.0.5. \
///      Earlier findings: {investigation}. Reply as {\"risk\": ...}."
/// );
///
/// // From configuration: the same checks, at run time.
/// let error = Prompt::<Triage>::parse("Summarise {clasification}").unwrap_err();
/// assert_eq!(
///     error.to_string(),
///     "the template placeholder `{clasification}` names no field of the state; the nearest \
///      field is `classification` (the fields are: alert_text, classification, investigation)"
/// );
/// ```
pub struct Prompt<S> {
    parts: Cow<'static, [Part]>,
    state: PhantomData<fn(&S)>,
}

/// A piece of a template.
///
/// ```
/// # use serde::{Deserialize, Serialize};
/// # use slateflow::SharedState;
/// # #[derive(SharedState, Clone, Debug, Default, Serialize, Deserialize)]
/// # struct Ticket { customer: String }
/// use slateflow::agent::template::{Part, Prompt};
///
/// let prompt = Prompt::<Ticket>::parse("Hello {customer}!").unwrap();
/// assert_eq!(
///     prompt.parts(),
///     [Part::Text("Hello ".into()), Part::Field("customer".into()), Part::Text("!".into())]
/// );
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Part {
    /// Text, with `{{` and `}}` already turned into single braces.
    Text(Cow<'static, str>),
    /// A placeholder: the name of a field.
    Field(Cow<'static, str>),
}

impl<S: SharedState> Prompt<S> {
    /// Reads a template whose text comes from configuration, checking it as
    /// [`prompt!`](crate::prompt) does at compile time.
    ///
    /// # Errors
    /// [`TemplateError`]: a brace that is neither a placeholder nor doubled, or a placeholder that
    /// names no field of `S` (with the nearest field).
    pub fn parse(template: &str) -> Result<Self, TemplateError> {
        let parts = parse(template)?;
        for part in &parts {
            if let Part::Field(name) = part
                && field_index(S::FIELDS, name).is_none()
            {
                return Err(TemplateError::UnknownField {
                    name: name.to_string(),
                    nearest: nearest_field(S::FIELDS, name),
                    fields: S::FIELDS.iter().map(crate::state::Field::name).collect(),
                });
            }
        }
        Ok(Self {
            parts: Cow::Owned(parts),
            state: PhantomData,
        })
    }

    /// A template `prompt!` has checked, through `__private`.
    pub(crate) const fn checked(parts: &'static [Part]) -> Self {
        Self {
            parts: Cow::Borrowed(parts),
            state: PhantomData,
        }
    }

    /// The text, with each placeholder replaced by its field's
    /// [`field_text`](SharedState::field_text); a field without text (an unset `Option`) keeps its
    /// placeholder.
    pub fn render(&self, state: &S) -> String {
        let mut text = String::new();
        for part in self.parts.iter() {
            match part {
                Part::Text(literal) => text.push_str(literal),
                Part::Field(name) => {
                    if let Some(value) = state.field_text(name) {
                        text.push_str(&value);
                    } else {
                        text.push('{');
                        text.push_str(name);
                        text.push('}');
                    }
                }
            }
        }
        text
    }

    /// The fields the template names, in order of appearance.
    pub fn placeholders(&self) -> impl Iterator<Item = &str> {
        self.parts.iter().filter_map(|part| match part {
            Part::Field(name) => Some(&**name),
            Part::Text(_) => None,
        })
    }

    /// The pieces of the template.
    pub fn parts(&self) -> &[Part] {
        &self.parts
    }
}

impl<S> Clone for Prompt<S> {
    fn clone(&self) -> Self {
        Self {
            parts: self.parts.clone(),
            state: PhantomData,
        }
    }
}

impl<S> fmt::Debug for Prompt<S> {
    fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        formatter
            .debug_tuple("Prompt")
            .field(&self.to_string())
            .finish()
    }
}

impl<S> fmt::Display for Prompt<S> {
    /// The template as written (placeholders in braces, literal braces doubled).
    fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        for part in self.parts.iter() {
            match part {
                Part::Text(text) => {
                    formatter.write_str(&text.replace('{', "{{").replace('}', "}}"))?;
                }
                Part::Field(name) => write!(formatter, "{{{name}}}")?,
            }
        }
        Ok(())
    }
}

/// A template that cannot be used with its state.
///
/// ```
/// # use serde::{Deserialize, Serialize};
/// # use slateflow::SharedState;
/// # #[derive(SharedState, Clone, Debug, Default, Serialize, Deserialize)]
/// # struct Ticket { customer: String }
/// use slateflow::agent::template::{Prompt, TemplateError};
///
/// let error = Prompt::<Ticket>::parse("Hello {custmer}!").unwrap_err();
/// assert!(matches!(error, TemplateError::UnknownField { .. }));
/// assert!(error.to_string().contains("the nearest field is `customer`"));
/// ```
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum TemplateError {
    /// A brace that is neither part of a `{field}` placeholder nor doubled.
    #[error("the template has {problem} at byte {at}; write `{{{{` and `}}}}` for literal braces")]
    Syntax {
        /// What is wrong.
        problem: &'static str,
        /// Where, as a byte offset into the template.
        at: usize,
    },
    /// A placeholder that names no field of the state.
    #[error(
        "the template placeholder `{{{name}}}` names no field of the state; {}(the fields are: {})",
        nearest.map_or(String::new(), |field| format!("the nearest field is `{field}` ")),
        fields.join(", ")
    )]
    UnknownField {
        /// The name in the placeholder.
        name: String,
        /// The field with the nearest name, if one is near.
        nearest: Option<&'static str>,
        /// The state's fields.
        fields: Vec<&'static str>,
    },
}

/// Splits a template into text and placeholders.
fn parse(template: &str) -> Result<Vec<Part>, TemplateError> {
    let bytes = template.as_bytes();
    let mut parts = Vec::new();
    let mut text = String::new();
    let mut index = 0;
    while index < bytes.len() {
        match bytes[index] {
            b'{' if bytes.get(index + 1) == Some(&b'{') => {
                text.push('{');
                index += 2;
            }
            b'}' if bytes.get(index + 1) == Some(&b'}') => {
                text.push('}');
                index += 2;
            }
            b'{' => {
                let start = index + 1;
                let end = bytes[start..]
                    .iter()
                    .position(|&byte| !(byte.is_ascii_alphanumeric() || byte == b'_'))
                    .map_or(bytes.len(), |length| start + length);
                let problem = if end == bytes.len() {
                    Some("a `{` that is never closed")
                } else if bytes[end] != b'}' {
                    Some("a `{` that does not start a `{field}` placeholder")
                } else if end == start {
                    Some("an empty placeholder `{}`")
                } else if bytes[start].is_ascii_digit() {
                    Some("a placeholder that starts with a digit")
                } else {
                    None
                };
                if let Some(problem) = problem {
                    return Err(TemplateError::Syntax { problem, at: index });
                }
                if !text.is_empty() {
                    parts.push(Part::Text(Cow::Owned(std::mem::take(&mut text))));
                }
                parts.push(Part::Field(Cow::Owned(template[start..end].to_string())));
                index = end + 1;
            }
            b'}' => {
                return Err(TemplateError::Syntax {
                    problem: "a `}` that closes no placeholder",
                    at: index,
                });
            }
            _ => {
                let next = bytes[index..]
                    .iter()
                    .position(|&byte| byte == b'{' || byte == b'}')
                    .map_or(bytes.len(), |length| index + length);
                text.push_str(&template[index..next]);
                index = next;
            }
        }
    }
    if !text.is_empty() {
        parts.push(Part::Text(Cow::Owned(text)));
    }
    Ok(parts)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn texts(template: &str) -> Vec<String> {
        parse(template)
            .unwrap()
            .into_iter()
            .map(|part| match part {
                Part::Text(text) => format!("t:{text}"),
                Part::Field(name) => format!("f:{name}"),
            })
            .collect()
    }

    #[test]
    fn placeholders_and_escapes_split_apart() {
        assert_eq!(texts("a {b} c"), ["t:a ", "f:b", "t: c"]);
        assert_eq!(texts("{{b}} {c_1}{d}"), ["t:{b} ", "f:c_1", "f:d"]);
        assert_eq!(texts("{{\"x\": 1}}"), ["t:{\"x\": 1}"]);
        assert!(texts("").is_empty());
        assert_eq!(texts("é {b}"), ["t:é ", "f:b"]);
    }

    #[test]
    fn stray_braces_are_errors_with_their_offset() {
        let cases = [
            ("abc {b", "never closed", 4),
            ("{b c}", "does not start", 0),
            ("x {}", "empty placeholder", 2),
            ("{1b}", "starts with a digit", 0),
            ("a } b", "closes no placeholder", 2),
            ("{\"k\": 1}", "does not start", 0),
        ];
        for (template, problem, offset) in cases {
            match parse(template).unwrap_err() {
                TemplateError::Syntax { problem: seen, at } => {
                    assert!(seen.contains(problem), "{template}: {seen}");
                    assert_eq!(at, offset, "{template}");
                }
                other => panic!("{other:?}"),
            }
        }
    }
}
