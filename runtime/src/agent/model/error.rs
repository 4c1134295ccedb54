//! [`ModelError`]: how a chat model's call failed, and what that says about trying again.

use std::time::Duration;

use crate::node::RetryHint;

/// A chat model's call failed: what the endpoint said, and whether trying again may help.
///
/// Returned by [`ChatModel`](crate::agent::model::ChatModel) implementations. Inside a node's `exec` it
/// becomes a [`NodeError`](crate::NodeError) with `?`, and a [`Retry`](crate::Retry) policy
/// told of it ([`Retry::hints`](crate::Retry::hints); an [`Agent`](crate::agent::Agent)'s model
/// calls and `#[node]` functions that return it are) reads its [`RetryHint`]: only errors whose
/// [`is_retryable`](ModelError::is_retryable) is true are retried (rate limits, server errors,
/// timeouts, dropped connections), so a bad request or a wrong key fails at once instead of after
/// every attempt, and the wait an endpoint asks for is honoured.
///
/// ```
/// use std::time::Duration;
/// use slateflow::agent::model::ModelError;
///
/// let limited = ModelError::status(429, "slow down").with_retry_after(Duration::from_secs(2));
/// assert!(limited.is_retryable());
/// assert_eq!(limited.retry_after(), Some(Duration::from_secs(2)));
/// assert_eq!(
///     limited.to_string(),
///     "the model endpoint answered 429: slow down (retryable, after the 2s it asked for)"
/// );
/// let refused = ModelError::status(401, "bad key");
/// assert!(!refused.is_retryable());
/// assert_eq!(
///     refused.to_string(),
///     "the model endpoint answered 401: bad key (not retried: fix the request or the configuration)"
/// );
/// ```
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[non_exhaustive]
pub enum ModelError {
    /// The endpoint answered with an HTTP error status. 429 and 5xx are retryable; other 4xx are not.
    #[error("the model endpoint answered {status}: {message}{}", status_text(*.status, *.retry_after))]
    Status {
        /// The HTTP status code.
        status: u16,
        /// The error message from the body, or the body itself.
        message: String,
        /// How long the endpoint asked to be left alone before the next call (its `Retry-After`
        /// or `retry-after-ms` header), if it said. A [`Retry`](crate::Retry) policy waits at
        /// least this long before the next attempt, up to its
        /// [`max_retry_after`](crate::Retry::max_retry_after).
        retry_after: Option<Duration>,
    },
    /// No answer within the time allowed. Retryable.
    #[error("the model call timed out after {after:?} (retryable)")]
    Timeout {
        /// The time allowed.
        after: Duration,
    },
    /// The endpoint could not be reached, or the connection broke off. Retryable.
    #[error("could not reach the model endpoint: {message} (retryable)")]
    Connection {
        /// What went wrong, with the address.
        message: String,
    },
    /// The endpoint answered, but not with a chat response this client can read. Not retryable.
    #[error(
        "the model endpoint's answer is not a chat response: {message}; the answer began: {body}"
    )]
    InvalidResponse {
        /// What did not fit.
        message: String,
        /// The start of the body, for the log.
        body: String,
    },
    /// The reply did not parse into the type asked for (structured output). Not retryable by
    /// default; a node that wants another try can retry it with
    /// [`Retry::retry_if`](crate::Retry::retry_if).
    #[error(
        "the model's reply does not parse as `{type_name}` at `{path}`: {message}; the reply was: {text}"
    )]
    Output {
        /// The Rust type asked for.
        type_name: &'static str,
        /// Where in the reply it failed (`severity`, `items[2].name`; `.` for the whole reply).
        path: String,
        /// What serde said.
        message: String,
        /// The reply's text.
        text: String,
    },
    /// The client is not configured to make the call (no key, no model, a bad base URL).
    #[error("the model client is not configured: {0}")]
    Config(String),
    /// Any other failure, saying whether it is worth another attempt (what a test's
    /// [`ScriptedModel`](crate::agent::model::ScriptedModel) or your own model returns).
    #[error("{message}{}", retry_text(*.retryable))]
    Failed {
        /// What went wrong.
        message: String,
        /// Whether another attempt may succeed.
        retryable: bool,
    },
}

impl ModelError {
    /// An HTTP error status from the endpoint, with its message and no `Retry-After`.
    pub fn status(status: u16, message: impl Into<String>) -> Self {
        Self::Status {
            status,
            message: message.into(),
            retry_after: None,
        }
    }

    /// The same error, saying the endpoint asked for `wait` before the next call (for a
    /// [`Status`](ModelError::Status); other errors are returned as they are).
    #[must_use]
    pub fn with_retry_after(mut self, wait: Duration) -> Self {
        if let Self::Status { retry_after, .. } = &mut self {
            *retry_after = Some(wait);
        }
        self
    }

    /// How long the endpoint asked to be left alone before the next call, if it said.
    pub fn retry_after(&self) -> Option<Duration> {
        match self {
            Self::Status { retry_after, .. } => *retry_after,
            _ => None,
        }
    }

    /// A failure that another attempt may get past.
    pub fn retryable(message: impl Into<String>) -> Self {
        Self::Failed {
            message: message.into(),
            retryable: true,
        }
    }

    /// A failure that another attempt will not get past.
    pub fn permanent(message: impl Into<String>) -> Self {
        Self::Failed {
            message: message.into(),
            retryable: false,
        }
    }

    /// Whether another attempt may succeed: rate limits (429), server errors (5xx), timeouts,
    /// broken connections and failures made with [`retryable`](ModelError::retryable).
    pub fn is_retryable(&self) -> bool {
        match self {
            Self::Status { status, .. } => is_retryable_status(*status),
            Self::Timeout { .. } | Self::Connection { .. } => true,
            Self::Failed { retryable, .. } => *retryable,
            Self::InvalidResponse { .. } | Self::Output { .. } | Self::Config(_) => false,
        }
    }
}

fn is_retryable_status(status: u16) -> bool {
    status == 429 || status >= 500
}

fn status_text(status: u16, retry_after: Option<Duration>) -> String {
    match (is_retryable_status(status), retry_after) {
        (true, Some(wait)) => format!(" (retryable, after the {wait:?} it asked for)"),
        (true, None) => " (retryable)".into(),
        (false, _) => " (not retried: fix the request or the configuration)".into(),
    }
}

fn retry_text(retryable: bool) -> &'static str {
    if retryable {
        " (retryable)"
    } else {
        " (not retryable)"
    }
}

/// What a [`Retry`](crate::Retry) policy told about `ModelError` with
/// [`Retry::hints`](crate::Retry::hints) reads from it: whether the call is worth another
/// attempt, and the wait the endpoint asked for.
impl RetryHint for ModelError {
    fn is_retryable(&self) -> bool {
        ModelError::is_retryable(self)
    }

    fn retry_after(&self) -> Option<Duration> {
        ModelError::retry_after(self)
    }
}
