//! [`Retry`]: how a node's `exec` is retried and timed out, and [`RetryHint`], what an error
//! tells a policy about trying again.
//!
//! The retry loop knows errors only as [`NodeError`]s and what their [`RetryHint`] says: it knows
//! no particular kind of error (a model client's errors implement the trait in the agent layer).

use std::future::Future;
use std::time::Duration;

use futures_util::future::{self, Either};

use crate::error::NodeError;
use crate::event::{At, Event};

/// How a node's [`exec`](super::Node::exec) is retried and timed out.
///
/// `max_attempts` counts attempts (PocketFlow's `max_retries` does too, under a misleading name):
/// the default, 1, tries once. The wait happens only between attempts, never after the last; with
/// [`backoff`](Retry::backoff) it is multiplied by `factor` after each attempt, up to `max_wait`.
/// A [`timeout`](Retry::timeout) bounds each attempt; a timed-out attempt counts as a failed one.
/// Waits and timeouts use tokio's timer: run flows inside a tokio runtime with time enabled (the
/// blocking entry points make one).
///
/// Which errors are worth another attempt: by default every error, except one whose
/// [`RetryHint`] says another attempt cannot help, for the error types the policy reads hints from
/// ([`hints`](Retry::hints): a model endpoint's 400 or 401, a reply that does not parse, fail at
/// once instead of after every attempt). [`retry_if`](Retry::retry_if) puts a predicate of your
/// own in place of that rule.
///
/// An endpoint that limits its callers says how long to wait (`Retry-After`): when a failed
/// attempt's error carries that wait in its hint, the next attempt waits at least as long, up to
/// [`max_retry_after`](Retry::max_retry_after) (a minute by default), even past `max_wait`, since
/// an earlier attempt would only be refused again. See [`wait_for`](Retry::wait_for).
///
/// ```
/// use std::time::Duration;
/// use slateflow::Retry;
/// use slateflow::agent::ModelError;
///
/// let retry = Retry::attempts(3)
///     .wait(Duration::from_millis(200))
///     .backoff(2.0, Duration::from_secs(5))
///     .hints::<ModelError>();
/// assert_eq!(retry.wait_after(2), Duration::from_millis(400));
/// assert!(retry.retries(&ModelError::status(503, "busy").into()));
/// assert!(!retry.retries(&ModelError::status(400, "bad").into()));
/// ```
#[derive(Debug, Clone, Copy)]
pub struct Retry {
    wait: Duration,
    timeout: Option<Duration>,
    /// `None`: retry unless the error's hint says not to.
    predicate: Option<fn(&NodeError) -> bool>,
    hint: fn(&NodeError) -> Option<&dyn RetryHint>,
    max_attempts: u32,
    /// The waits below are kept in whole milliseconds (`u32::MAX`: no cap), in the space two
    /// `Duration`s would take one of: every node step's future holds its policy.
    max_wait_ms: u32,
    max_retry_after_ms: u32,
    backoff_factor: f32,
}

/// What an error tells a [`Retry`] policy: whether another attempt can succeed, and how long the
/// other side asked to be left alone before it. Implement it for the errors your nodes return,
/// and tell the policy with [`Retry::hints`]; `#[node]` functions with retry options read the
/// hints of the error type they return when it implements this trait.
///
/// ```
/// use std::time::Duration;
/// use slateflow::{NodeError, Retry, RetryHint};
///
/// #[derive(Debug, thiserror::Error)]
/// enum CrmError {
///     #[error("the CRM is busy")]
///     Busy { retry_after: Duration },
///     #[error("no such customer")]
///     NotFound,
/// }
///
/// impl RetryHint for CrmError {
///     fn is_retryable(&self) -> bool {
///         matches!(self, CrmError::Busy { .. })
///     }
///     fn retry_after(&self) -> Option<Duration> {
///         match self {
///             CrmError::Busy { retry_after } => Some(*retry_after),
///             CrmError::NotFound => None,
///         }
///     }
/// }
///
/// let retry = Retry::attempts(3).hints::<CrmError>();
/// let busy: NodeError = CrmError::Busy { retry_after: Duration::from_secs(2) }.into();
/// assert!(retry.retries(&busy));
/// assert_eq!(retry.wait_for(1, &busy), Duration::from_secs(2));
/// assert!(!retry.retries(&CrmError::NotFound.into()));
/// ```
pub trait RetryHint: std::error::Error + Send + Sync + 'static {
    /// Whether another attempt may succeed. Yes, by default.
    fn is_retryable(&self) -> bool {
        true
    }

    /// How long the other side asked to be left alone before the next attempt, if it said.
    fn retry_after(&self) -> Option<Duration> {
        None
    }
}

/// The longest wait, in milliseconds, an endpoint's `Retry-After` can ask of a [`Retry`] policy
/// by default: a minute.
const MAX_RETRY_AFTER_MS: u32 = 60_000;

impl Default for Retry {
    fn default() -> Self {
        Self {
            wait: Duration::ZERO,
            timeout: None,
            predicate: None,
            hint: no_hint,
            max_attempts: 1,
            max_wait_ms: u32::MAX,
            max_retry_after_ms: MAX_RETRY_AFTER_MS,
            backoff_factor: 1.0,
        }
    }
}

impl PartialEq for Retry {
    fn eq(&self, other: &Self) -> bool {
        self.max_attempts == other.max_attempts
            && self.wait == other.wait
            && self.backoff_factor.to_bits() == other.backoff_factor.to_bits()
            && self.max_wait_ms == other.max_wait_ms
            && self.timeout == other.timeout
            && match (self.predicate, other.predicate) {
                (None, None) => true,
                (Some(left), Some(right)) => std::ptr::fn_addr_eq(left, right),
                _ => false,
            }
            && std::ptr::fn_addr_eq(self.hint, other.hint)
            && self.max_retry_after_ms == other.max_retry_after_ms
    }
}

/// The hint reader of a policy told of no error type.
fn no_hint(_: &NodeError) -> Option<&dyn RetryHint> {
    None
}

/// The hint of the first error of type `E` in `error`'s chain (itself, then its sources).
fn read_hint<E: RetryHint>(error: &NodeError) -> Option<&dyn RetryHint> {
    let mut current: Option<&(dyn std::error::Error + 'static)> = Some(&**error);
    while let Some(error) = current {
        if let Some(hint) = error.downcast_ref::<E>() {
            return Some(hint);
        }
        current = error.source();
    }
    None
}

/// Whole milliseconds, at most `u32::MAX - 1` (`u32::MAX` means no cap).
fn millis(duration: Duration) -> u32 {
    u32::try_from(duration.as_millis()).map_or(u32::MAX - 1, |ms| ms.min(u32::MAX - 1))
}

impl Retry {
    /// Up to `max_attempts` attempts (at least one), with no wait between them.
    pub fn attempts(max_attempts: u32) -> Self {
        Self {
            max_attempts: max_attempts.max(1),
            ..Self::default()
        }
    }

    /// Waits `wait` between attempts.
    #[must_use]
    pub fn wait(mut self, wait: Duration) -> Self {
        self.wait = wait;
        self
    }

    /// Multiplies the wait by `factor` after each attempt, never waiting longer than `max_wait`
    /// (kept in whole milliseconds, up to 49 days).
    #[must_use]
    #[allow(clippy::cast_possible_truncation)] // A factor is a small number; f32 holds it.
    pub fn backoff(mut self, factor: f64, max_wait: Duration) -> Self {
        self.backoff_factor = factor.max(1.0) as f32;
        self.max_wait_ms = millis(max_wait);
        self
    }

    /// Fails an attempt of [`exec`](super::Node::exec) that takes longer than `timeout`.
    #[must_use]
    pub fn timeout(mut self, timeout: Duration) -> Self {
        self.timeout = Some(timeout);
        self
    }

    /// Retries only the errors for which `predicate` is true; the others fail the node at once
    /// (through its fallback). The predicate takes the place of the hints' say; a timed-out
    /// attempt is always retried.
    ///
    /// ```
    /// use slateflow::{NodeError, Retry};
    ///
    /// fn transient(error: &NodeError) -> bool {
    ///     error.to_string().contains("busy")
    /// }
    /// let retry = Retry::attempts(5).retry_if(transient);
    /// assert!(retry.retries(&"server busy".into()));
    /// assert!(!retry.retries(&"no such user".into()));
    /// ```
    #[must_use]
    pub fn retry_if(mut self, predicate: fn(&NodeError) -> bool) -> Self {
        self.predicate = Some(predicate);
        self
    }

    /// Reads the [`RetryHint`] of errors of type `E` (the error itself, or one of its sources):
    /// an error whose hint says another attempt cannot help fails at once, and the wait it asks
    /// for is honoured. One type per policy; the last one named counts.
    ///
    /// ```
    /// use std::time::Duration;
    /// use slateflow::Retry;
    /// use slateflow::agent::ModelError;
    ///
    /// let limited = ModelError::status(429, "slow down").with_retry_after(Duration::from_secs(2));
    /// let plain = Retry::attempts(3);
    /// assert_eq!(plain.wait_for(1, &limited.clone().into()), Duration::ZERO);
    /// let hinted = plain.hints::<ModelError>();
    /// assert_eq!(hinted.wait_for(1, &limited.into()), Duration::from_secs(2));
    /// ```
    #[must_use]
    pub fn hints<E: RetryHint>(mut self) -> Self {
        self.hint = read_hint::<E>;
        self
    }

    /// The longest wait an endpoint's `Retry-After` may impose between two attempts (a minute by
    /// default); one that asks for more is cut to this, and [`Duration::ZERO`] ignores it. It is
    /// kept in whole milliseconds, up to 49 days.
    ///
    /// ```
    /// use std::time::Duration;
    /// use slateflow::Retry;
    /// use slateflow::agent::ModelError;
    ///
    /// let limited = ModelError::status(429, "slow down").with_retry_after(Duration::from_secs(600));
    /// let retry = Retry::attempts(3).hints::<ModelError>().max_retry_after(Duration::from_secs(30));
    /// assert_eq!(retry.wait_for(1, &limited.into()), Duration::from_secs(30));
    /// ```
    #[must_use]
    pub fn max_retry_after(mut self, limit: Duration) -> Self {
        self.max_retry_after_ms = u32::try_from(limit.as_millis()).unwrap_or(u32::MAX);
        self
    }

    /// Whether `error` is worth another attempt (attempts left aside): the policy's predicate's
    /// call when it has one; otherwise yes, unless the error's hint says no.
    pub fn retries(&self, error: &NodeError) -> bool {
        match self.predicate {
            Some(predicate) => predicate(error),
            None => (self.hint)(error).is_none_or(RetryHint::is_retryable),
        }
    }

    /// One attempt and no timeout: `exec` runs once, as it is (the common case, which needs no
    /// timer).
    #[inline]
    pub(crate) fn is_single_attempt(&self) -> bool {
        self.max_attempts == 1 && self.timeout.is_none()
    }

    /// How many attempts at most.
    pub fn max_attempts(&self) -> u32 {
        self.max_attempts
    }

    /// The timeout of each attempt, if any.
    pub fn attempt_timeout(&self) -> Option<Duration> {
        self.timeout
    }

    /// The policy's own wait after the failed attempt number `attempt` (from 1) and before the
    /// next; [`wait_for`](Retry::wait_for) adds what the error asked for.
    pub fn wait_after(&self, attempt: u32) -> Duration {
        let exponent = i32::try_from(attempt.saturating_sub(1)).unwrap_or(i32::MAX);
        let factor = f64::from(self.backoff_factor).powi(exponent);
        let wait = self.wait.as_secs_f64() * factor;
        let cap = if self.max_wait_ms == u32::MAX {
            Duration::MAX
        } else {
            Duration::from_millis(self.max_wait_ms.into())
        };
        if wait >= cap.as_secs_f64() {
            cap
        } else {
            Duration::from_secs_f64(wait)
        }
    }

    /// The wait after the failed attempt number `attempt` (from 1), which failed with `error`,
    /// and before the next: the policy's [`wait_after`](Retry::wait_after), or longer when the
    /// error's hint asks for a longer wait ([`RetryHint::retry_after`]), up to
    /// [`max_retry_after`](Retry::max_retry_after).
    ///
    /// ```
    /// use std::time::Duration;
    /// use slateflow::Retry;
    /// use slateflow::agent::ModelError;
    ///
    /// let retry = Retry::attempts(3).wait(Duration::from_millis(100)).hints::<ModelError>();
    /// let busy = ModelError::status(503, "busy");
    /// assert_eq!(retry.wait_for(1, &busy.clone().into()), Duration::from_millis(100));
    /// let asked = busy.with_retry_after(Duration::from_secs(2));
    /// assert_eq!(retry.wait_for(1, &asked.into()), Duration::from_secs(2));
    /// ```
    pub fn wait_for(&self, attempt: u32, error: &NodeError) -> Duration {
        let own = self.wait_after(attempt);
        (self.hint)(error)
            .and_then(RetryHint::retry_after)
            .map_or(own, |asked| {
                let limit = Duration::from_millis(self.max_retry_after_ms.into());
                own.max(asked.min(limit))
            })
    }
}

/// An attempt of `exec` that ran out of time; becomes [`Error::Timeout`] if nothing recovers it.
#[derive(Debug, thiserror::Error)]
#[error("`exec` took longer than {0:?}")]
pub(crate) struct TimedOut(pub(crate) Duration);

/// What [`with_retries`] reports between two attempts.
#[derive(Clone, Copy)]
pub(crate) enum Between<'e> {
    /// Attempt `attempt` failed with `error`; the next starts after `wait`.
    Failed {
        attempt: u32,
        error: &'e NodeError,
        wait: Duration,
    },
    /// Attempt `attempt` (the second or a later one) starts, after the wait.
    Starts(u32),
}

impl<'e> Between<'e> {
    /// Its event at `at`: a retry, or (when `starts`) the node started again.
    pub(crate) fn event(self, at: At<'e>, starts: bool) -> Option<Event<'e>> {
        match self {
            Self::Failed {
                attempt,
                error,
                wait,
            } => Some(Event::Retry {
                at,
                attempt,
                error: &**error,
                wait,
            }),
            Self::Starts(attempt) => starts.then_some(Event::NodeStarted { at, attempt }),
        }
    }
}

/// Runs `exec` under a retry policy: attempts while its predicate calls the error retryable,
/// waits between them (never after the last), a timeout on each. `between` hears of each failed
/// attempt before its wait, and of the next attempt as it starts: one callback, so that a future
/// holding this one (every node step's and fork branch's does) holds one closure for both.
/// Returns the output and the attempts it took, or the last error and the number of attempts
/// when every attempt failed.
pub(crate) async fn with_retries<T, F, Fut>(
    retry: Retry,
    mut exec: F,
    mut between: impl FnMut(Between<'_>),
) -> Result<(T, u32), (NodeError, u32)>
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Result<T, NodeError>>,
{
    // The timers are boxed, allocated only by a policy that times out or waits: every node
    // step's future (and every fork branch's) holds this future inline, retried or not, and
    // inline timers would make each hundreds of bytes larger.
    let mut attempt = 0;
    loop {
        attempt += 1;
        let outcome = match retry.attempt_timeout() {
            None => exec().await,
            Some(limit) => {
                let attempt = std::pin::pin!(exec());
                match future::select(attempt, Box::pin(tokio::time::sleep(limit))).await {
                    Either::Left((outcome, _)) => outcome,
                    Either::Right(((), _)) => Err(Box::new(TimedOut(limit)) as NodeError),
                }
            }
        };
        let error = match outcome {
            Ok(exec) => return Ok((exec, attempt)),
            Err(error) => error,
        };
        // A step that stopped to ask a question is not retried: it pauses.
        if attempt >= retry.max_attempts()
            || error.is::<super::Interrupted>()
            || !(error.is::<TimedOut>() || retry.retries(&error))
        {
            return Err((error, attempt));
        }
        let wait = retry.wait_for(attempt, &error);
        between(Between::Failed {
            attempt,
            error: &error,
            wait,
        });
        if !wait.is_zero() {
            Box::pin(tokio::time::sleep(wait)).await;
        }
        between(Between::Starts(attempt + 1));
    }
}

/// The last error of a `#[node]` function whose body ran under a retry policy, with the number
/// of attempts; the run reports it as the node's failure after that many attempts.
#[derive(Debug, thiserror::Error)]
#[error("{source}")]
pub(crate) struct RetriedBody {
    pub(crate) attempts: u32,
    pub(crate) source: NodeError,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn retry_waits_grow_by_the_factor_up_to_the_cap() {
        let retry = Retry::attempts(5)
            .wait(Duration::from_millis(100))
            .backoff(2.0, Duration::from_millis(500));
        let waits: Vec<u128> = (1..=5).map(|n| retry.wait_after(n).as_millis()).collect();
        assert_eq!(waits, [100, 200, 400, 500, 500]);
        assert_eq!(Retry::default().wait_after(1), Duration::ZERO);
        assert_eq!(Retry::attempts(0).max_attempts(), 1, "at least one attempt");
        let uncapped = Retry::attempts(3)
            .wait(Duration::from_secs(3))
            .backoff(10.0, Duration::MAX);
        assert_eq!(uncapped.wait_after(3), Duration::from_secs(300));
    }

    #[derive(Debug, thiserror::Error)]
    #[error("wrapped: {0}")]
    struct Wrapper(#[source] Hinted);

    #[derive(Debug, thiserror::Error)]
    #[error("hinted")]
    struct Hinted(bool);

    impl RetryHint for Hinted {
        fn is_retryable(&self) -> bool {
            self.0
        }
        fn retry_after(&self) -> Option<Duration> {
            Some(Duration::from_secs(7))
        }
    }

    #[test]
    fn a_hint_is_read_only_for_the_type_named_and_through_sources() {
        let permanent: NodeError = Box::new(Wrapper(Hinted(false)));
        assert!(
            Retry::attempts(2).retries(&permanent),
            "no type named: retried"
        );
        let hinted = Retry::attempts(2).hints::<Hinted>();
        assert!(!hinted.retries(&permanent), "found behind its wrapper");
        assert_eq!(hinted.wait_for(1, &permanent), Duration::from_secs(7));
        assert!(
            hinted.retry_if(|_| true).retries(&permanent),
            "the predicate decides"
        );
        let other: NodeError = "plain".into();
        assert!(hinted.retries(&other));
        assert_eq!(hinted.wait_for(1, &other), Duration::ZERO);
    }
}
