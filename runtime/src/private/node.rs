//! What `#[node]`'s generated code calls: the return types a node function may have, and its
//! body run under a retry policy.

use std::future::Future;
use std::marker::PhantomData;

use crate::node::{Command, Context, NodeError, RetriedBody, Retry, RetryHint, with_retries};
use crate::state::SharedState;

/// What a `#[node]` function may return: a command, or a result of one.
#[diagnostic::on_unimplemented(
    message = "a `#[node]` function returns `Command<{S}>` or `Result<Command<{S}>, E>`, not `{Self}`",
    label = "this return type is not a node's",
    note = "`E` can be any error that converts into `slateflow::NodeError`"
)]
pub trait NodeOutput<S: crate::SharedState> {
    /// The function's error type (`Infallible` for a command), whose retry hints the node's
    /// retry policy reads when it has them.
    type Error;

    /// The command, or the error as a [`NodeError`](crate::NodeError).
    ///
    /// # Errors
    /// The function's error.
    fn into_result(self) -> Result<crate::Command<S>, crate::NodeError>;
}

impl<S: crate::SharedState> NodeOutput<S> for crate::Command<S> {
    type Error = std::convert::Infallible;

    #[inline]
    fn into_result(self) -> Result<crate::Command<S>, crate::NodeError> {
        Ok(self)
    }
}

impl<S: crate::SharedState, E: Into<crate::NodeError>> NodeOutput<S>
    for Result<crate::Command<S>, E>
{
    type Error = E;

    #[inline]
    fn into_result(self) -> Result<crate::Command<S>, crate::NodeError> {
        self.map_err(Into::into)
    }
}

/// The error type `E` of a `#[node]` function with retry options: its policy reads `E`'s retry
/// hints when `E` has them. `(&&HintsOf::<E>::new()).__slateflow_hints(policy)` is
/// [`HintsRead`]'s method for a [`RetryHint`] (its receiver is one more reference away), and
/// [`NoHintsRead`]'s, which leaves the policy as it is, for any other type.
pub struct HintsOf<E>(PhantomData<fn() -> E>);

impl<E> HintsOf<E> {
    /// The probe.
    #[inline]
    #[must_use]
    pub const fn new() -> Self {
        Self(PhantomData)
    }
}

impl<E> Default for HintsOf<E> {
    fn default() -> Self {
        Self::new()
    }
}

/// The probe of an error type with retry hints.
pub trait HintsRead {
    /// `retry`, reading the hints.
    fn __slateflow_hints(&self, retry: Retry) -> Retry;
}

impl<E: RetryHint> HintsRead for &HintsOf<E> {
    #[inline]
    fn __slateflow_hints(&self, retry: Retry) -> Retry {
        retry.hints::<E>()
    }
}

/// The probe of any other error type.
pub trait NoHintsRead {
    /// `retry` as it is.
    #[inline]
    fn __slateflow_hints(&self, retry: Retry) -> Retry {
        retry
    }
}

impl<E> NoHintsRead for HintsOf<E> {}

/// Runs a `#[node]` function's body under `retry`, sending a retry event before each wait and a
/// node-started event as each later attempt starts.
///
/// # Errors
/// The body's last error, with the number of attempts, for the run to report.
pub async fn retry_body<S, F, Fut>(
    retry: Retry,
    context: &Context<'_>,
    body: F,
) -> Result<Command<S>, NodeError>
where
    S: SharedState,
    F: FnMut() -> Fut,
    Fut: Future<Output = Result<Command<S>, NodeError>>,
{
    with_retries(retry, body, |between| context.between(between, true))
        .await
        .map(|(command, attempts)| {
            context.record_attempts(attempts);
            command
        })
        .map_err(|(source, attempts)| Box::new(RetriedBody { attempts, source }) as NodeError)
}
