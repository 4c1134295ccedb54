//! The check phase of `#[node]`: the rules between the options, one function a rule, each error
//! at the option that breaks it. All of them are reported in one build.

use super::parse::{Options, RetryOptions};
use crate::errors::Errors;

/// Runs every rule over `options`.
pub(super) fn check(options: &Options, errors: &mut Errors) {
    actions_listed_once(options, errors);
    attempts_at_least_one(&options.retry, errors);
    backoff_grows(&options.retry, errors);
    max_wait_caps_a_backoff(&options.retry, errors);
}

/// An action is listed once.
fn actions_listed_once(options: &Options, errors: &mut Errors) {
    for (index, action) in options.actions.iter().enumerate() {
        if options.actions[..index]
            .iter()
            .any(|seen| seen.value() == action.value())
        {
            errors.at(
                action,
                format_args!("the action \"{}\" is listed twice", action.value()),
            );
        }
    }
}

/// `attempts` counts every attempt, the first included: 1 or more.
fn attempts_at_least_one(retry: &RetryOptions, errors: &mut Errors) {
    if let Some(attempts) = &retry.attempts
        && attempts.base10_parse::<u32>().map_or(true, |n| n == 0)
    {
        errors.at(attempts, "`attempts` counts every attempt: write 1 or more");
    }
}

/// `backoff` multiplies the wait: a factor of 1.0 or more.
fn backoff_grows(retry: &RetryOptions, errors: &mut Errors) {
    if let Some(factor) = &retry.backoff
        && factor
            .base10_parse::<f64>()
            .map_or(true, |factor| factor < 1.0)
    {
        errors.at(
            factor,
            "`backoff` multiplies the wait: write a factor of 1.0 or more",
        );
    }
}

/// `max_wait` caps the waits that `backoff` grows: without `backoff` it caps nothing.
fn max_wait_caps_a_backoff(retry: &RetryOptions, errors: &mut Errors) {
    if let (None, Some((literal, _))) = (&retry.backoff, &retry.max_wait) {
        errors.at(
            literal,
            "`max_wait` caps the waits that `backoff` grows: add `backoff = 2.0`",
        );
    }
}
