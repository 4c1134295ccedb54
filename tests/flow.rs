//! Behaviour of `flow!` and the runtime, after PocketFlow's flows: chains, branches, cycles, runs
//! ending on an unwired action, nested flows, params, retries, fallbacks, timeouts, panics, step
//! limits, undeclared actions and graph export.
// rustc needs more than its default depth for the layout of a run through 17 nested flows.
#![recursion_limit = "256"]

use std::sync::Arc;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::Duration;

use serde::{Deserialize, Serialize};
use slateflow::node::from_fn;
use slateflow::{
    Command, Context, Error, Node, NodeError, Params, Phase, Retry, SharedState, flow, node,
};

mod support {
    #[allow(dead_code)]
    pub(crate) mod runs;
}

#[derive(SharedState, Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
struct Trace {
    /// Which nodes ran, in order.
    #[reducer(append)]
    visited: Vec<String>,
    #[reducer(add)]
    count: u32,
    kind: Option<String>,
    note: Option<String>,
}

fn visit(name: &str) -> TraceUpdate {
    Trace::update().push_visited(name.to_string())
}

/// A runtime with a paused clock: sleeps and timeouts advance virtual time at once, so waits are
/// checked exactly and without timing anything.
fn paused_runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_time()
        .start_paused(true)
        .build()
        .unwrap()
}

#[node]
fn first(_: &Trace) -> Command<Trace> {
    Command::new(visit("first"))
}

#[node]
fn second(_: &Trace) -> Command<Trace> {
    Command::new(visit("second"))
}

#[node]
fn third(_: &Trace) -> Command<Trace> {
    Command::new(visit("third"))
}

/// Routes on the state's `kind`.
#[node(actions = ["intrusion", "phishing"])]
#[allow(clippy::unused_async)] // `async` on purpose: covers the async form of `#[node]`.
async fn route(trace: &Trace) -> Result<Command<Trace>, NodeError> {
    let kind = trace.kind.clone().ok_or("no kind to route on")?;
    let action = if kind == "intrusion" {
        "intrusion"
    } else {
        "phishing"
    };
    Ok(Command::new(visit("route"))
        .with_action(action)
        .with_reason(format!("kind is {kind}")))
}

/// Counts up; asks to go again below 5.
#[node(actions = ["again", "done"])]
fn tick(trace: &Trace) -> Command<Trace> {
    let action = if trace.count + 1 < 5 { "again" } else { "done" };
    Command::new(Trace::update().add_count(1)).with_action(action)
}

/// Loops forever.
#[node(actions = ["again"])]
fn forever(_: &Trace) -> Command<Trace> {
    Command::new(Trace::update().add_count(1)).with_action("again")
}

mod running {
    use super::*;

    #[test]
    fn a_chain_runs_in_order_and_returns_the_last_action() {
        let flow = flow! { first >> second >> third; };
        let mut trace = Trace::default();
        assert_eq!(flow.run_blocking(&mut trace).unwrap(), "default");
        assert_eq!(trace.visited, ["first", "second", "third"]);
    }

    #[test]
    fn actions_pick_the_branch() {
        for (kind, expected) in [("intrusion", "second"), ("phishing", "third")] {
            let flow = flow! {
                first >> route;
                route - "intrusion" >> second;
                route - "phishing" >> third;
            };
            let mut trace = Trace {
                kind: Some(kind.into()),
                ..Trace::default()
            };
            flow.run_blocking(&mut trace).unwrap();
            assert_eq!(trace.visited, ["first", "route", expected]);
        }
    }

    #[test]
    fn a_cycle_runs_until_its_condition() {
        let flow = flow! {
            tick - "again" >> tick;
            tick - "done" >> first;
        };
        let mut trace = Trace::default();
        assert_eq!(flow.run_blocking(&mut trace).unwrap(), "default");
        assert_eq!(trace.count, 5);
        assert_eq!(trace.visited, ["first"]);
    }

    #[test]
    fn a_declared_action_without_an_edge_ends_the_run_and_is_returned() {
        let flow = flow! {
            first >> route;
            route - "intrusion" >> second;
        };
        let mut trace = Trace {
            kind: Some("phishing".into()),
            ..Trace::default()
        };
        assert_eq!(flow.run_blocking(&mut trace).unwrap(), "phishing");
        assert_eq!(
            trace.visited,
            ["first", "route"],
            "nothing after `route` ran"
        );
    }

    #[test]
    fn start_names_the_first_node() {
        let flow = flow! {
            start: route;
            first >> route;
            route - "intrusion" >> first;
            route - "phishing" >> second;
        };
        let mut trace = Trace {
            kind: Some("phishing".into()),
            ..Trace::default()
        };
        flow.run_blocking(&mut trace).unwrap();
        assert_eq!(trace.visited, ["route", "second"]);
        assert_eq!(flow.graph().start, "route");
    }

    #[test]
    fn each_update_is_applied_before_the_next_prep() {
        /// Reads the count in `prep` and records what it saw.
        struct Reader;
        impl Node<Trace> for Reader {
            type Prep = u32;
            type Exec = ();
            async fn prep(&self, trace: &Trace, _: &Context<'_>) -> Result<u32, NodeError> {
                Ok(trace.count)
            }
            async fn exec(&self, _: &u32) -> Result<(), NodeError> {
                Ok(())
            }
            async fn post(
                &self,
                _: &Trace,
                seen: u32,
                (): (),
                _: &Context<'_>,
            ) -> Result<Command<Trace>, NodeError> {
                Ok(Command::new(visit(&format!("saw {seen}"))))
            }
        }
        let increment = from_fn(|_: &Trace| Ok(Command::new(Trace::update().add_count(1))));
        let reader = Reader;
        let flow = flow! { increment >> reader; };
        let mut trace = Trace::default();
        flow.run_blocking(&mut trace).unwrap();
        assert_eq!(trace.visited, ["saw 1"]);
    }

    #[test]
    fn a_node_runs_alone() {
        let mut trace = Trace {
            kind: Some("intrusion".into()),
            ..Trace::default()
        };
        assert_eq!(
            support::runs::alone_blocking(&route, &mut trace).unwrap(),
            "intrusion"
        );
        assert_eq!(trace.visited, ["route"]);
    }

    #[test]
    fn flows_run_on_the_multi_threaded_runtime() {
        let flow = Arc::new(flow! { first >> second; });
        let runtime = tokio::runtime::Runtime::new().unwrap();
        let handle = runtime.spawn({
            let flow = Arc::clone(&flow);
            async move {
                let mut trace = Trace::default();
                flow.run(&mut trace).await.map(|_| trace)
            }
        });
        let trace = runtime.block_on(handle).unwrap().unwrap();
        assert_eq!(trace.visited, ["first", "second"]);
    }

    /// Picks `"left"` or `"right"` by the count; `#[node]` on its impl (generic over the state
    /// and the node's own parameter) tells `cargo check` its actions.
    struct Pick<T>(T);

    #[node]
    impl<S: SharedState, T: Fn(&S) -> bool + Send + Sync> Node<S> for Pick<T> {
        type Prep = bool;
        type Exec = ();
        const ACTIONS: &'static [&'static str] = &["left", "right"];

        async fn prep(&self, state: &S, _: &Context<'_>) -> Result<bool, NodeError> {
            Ok((self.0)(state))
        }

        async fn exec(&self, _: &bool) -> Result<(), NodeError> {
            Ok(())
        }

        async fn post(
            &self,
            _: &S,
            left: bool,
            (): (),
            _: &Context<'_>,
        ) -> Result<Command<S>, NodeError> {
            Ok(Command::goto(if left { "left" } else { "right" }))
        }
    }

    /// Counts; `#[node]` on an impl without `ACTIONS` declares `"default"`.
    struct Count;

    #[node]
    impl Node<Trace> for Count {
        type Prep = ();
        type Exec = ();

        async fn prep(&self, _: &Trace, _: &Context<'_>) -> Result<(), NodeError> {
            Ok(())
        }

        async fn exec(&self, (): &()) -> Result<(), NodeError> {
            Ok(())
        }

        async fn post(
            &self,
            _: &Trace,
            (): (),
            (): (),
            _: &Context<'_>,
        ) -> Result<Command<Trace>, NodeError> {
            Ok(Command::new(visit("count").add_count(1)))
        }
    }

    #[test]
    fn nodes_under_node_on_their_impl_run_as_declared() {
        let (count, pick) = (Count, Arc::new(Pick(|trace: &Trace| trace.count < 3)));
        let flow = flow! {
            count >> pick;
            pick - "left" >> count;
            pick - "right" >> third;
        };
        let mut trace = Trace::default();
        assert_eq!(flow.run_blocking(&mut trace).unwrap(), "default");
        assert_eq!(
            trace.visited,
            ["count", "count", "count", "third"],
            "`pick` went left while the count was under 3, then right"
        );
    }

    #[test]
    fn one_node_is_shared_by_two_flows() {
        let shared = Arc::new(first);
        let (a, b) = (Arc::clone(&shared), Arc::clone(&shared));
        let one = flow! { a >> second; };
        let two = flow! { b >> third; };
        let mut trace = Trace::default();
        one.run_blocking(&mut trace).unwrap();
        two.run_blocking(&mut trace).unwrap();
        assert_eq!(trace.visited, ["first", "second", "first", "third"]);
    }
}

mod nesting {
    use super::*;

    /// Decides whether to escalate, from the count.
    #[node(actions = ["escalate", "done"])]
    fn assess(trace: &Trace) -> Command<Trace> {
        let action = if trace.count >= 2 { "escalate" } else { "done" };
        Command::new(visit("assess").add_count(1)).with_action(action)
    }

    fn actions_of<S: SharedState, N: Node<S>>(_: &N) -> &'static [&'static str] {
        N::ACTIONS
    }

    #[test]
    fn a_nested_flow_declares_the_actions_it_can_end_with() {
        let inner = flow! { first >> assess; };
        assert_eq!(actions_of(&inner), ["escalate", "done"]);
        let partly_wired = flow! { first >> route; route - "intrusion" >> second; };
        assert_eq!(actions_of(&partly_wired), ["phishing", "default"]);
    }

    #[test]
    fn the_inner_flows_last_action_routes_the_parent() {
        for (count, expected_tail) in [(0, "third"), (2, "second")] {
            let inner = flow! { first >> assess; };
            let outer = flow! {
                inner - "escalate" >> second;
                inner - "done" >> third;
            };
            let mut trace = Trace {
                count,
                ..Trace::default()
            };
            assert_eq!(outer.run_blocking(&mut trace).unwrap(), "default");
            assert_eq!(trace.visited, ["first", "assess", expected_tail]);
            assert_eq!(trace.count, count + 1, "the inner update is applied once");
        }
    }

    #[test]
    fn three_levels_route_on_the_innermost_action() {
        let innermost = flow! { assess; };
        let middle = flow! { first >> innermost; };
        let outer = flow! {
            middle - "escalate" >> second;
            middle - "done" >> third;
        };
        let mut trace = Trace {
            count: 5,
            ..Trace::default()
        };
        assert_eq!(outer.run_blocking(&mut trace).unwrap(), "default");
        assert_eq!(trace.visited, ["first", "assess", "second"]);
        assert_eq!(trace.count, 6);
    }

    #[test]
    fn a_nested_flow_ending_unwired_ends_the_parent_with_its_action() {
        let inner = flow! { first >> assess; };
        let outer = flow! { inner - "escalate" >> second; };
        let mut trace = Trace::default();
        assert_eq!(outer.run_blocking(&mut trace).unwrap(), "done");
        assert_eq!(trace.visited, ["first", "assess"]);
    }

    #[test]
    fn a_flow_is_not_run_through_prep() {
        let inner = flow! { first; };
        let mut trace = Trace::default();
        let error = support::runs::alone_blocking(&inner, &mut trace);
        assert!(error.is_ok(), "running a flow as a node runs its graph");
        assert_eq!(trace.visited, ["first"]);
    }
}

mod params {
    use super::*;

    /// Records the `model` param it sees.
    #[node]
    fn read_model(_: &Trace, context: &Context<'_>) -> Command<Trace> {
        let model = context.params().get_str("model").unwrap_or("none");
        Command::new(visit(&format!("{}:{model}", context.node())))
    }

    #[test]
    fn params_reach_every_node_and_replace_a_nested_flows_own() {
        let inner = flow! { read_model; }.with_params(Params::new().with("model", "inner-own"));
        let other = read_model;
        let outer = flow! { other >> inner; }.with_params(Params::new().with("model", "outer"));
        let mut trace = Trace::default();
        outer.run_blocking(&mut trace).unwrap();
        assert_eq!(trace.visited, ["other:outer", "read_model:outer"]);
    }

    #[test]
    fn params_set_again_replace_the_earlier_ones() {
        let flow = flow! { read_model; }
            .with_params(Params::new().with("model", "own"))
            .with_params(Params::new().with("model", "given"));
        let mut trace = Trace::default();
        flow.run_blocking(&mut trace).unwrap();
        assert_eq!(trace.visited, ["read_model:given"]);
        assert_eq!(flow.params().get_str("model"), Some("given"));
    }

    #[test]
    fn a_node_run_alone_sees_no_params() {
        let mut trace = Trace::default();
        flow! { read_model; }.run_blocking(&mut trace).unwrap();
        assert_eq!(trace.visited, ["read_model:none"]);
    }
}

/// A node whose `exec` fails its first `failures` attempts, with a configurable retry policy.
struct Flaky {
    failures: u32,
    attempts: AtomicU32,
    preps: AtomicU32,
    posts: AtomicU32,
    retry: Retry,
    fallback: Option<&'static str>,
    delay: Duration,
}

impl Flaky {
    fn new(failures: u32, retry: Retry) -> Self {
        Self {
            failures,
            attempts: AtomicU32::new(0),
            preps: AtomicU32::new(0),
            posts: AtomicU32::new(0),
            retry,
            fallback: None,
            delay: Duration::ZERO,
        }
    }
}

impl Node<Trace> for Flaky {
    type Prep = ();
    type Exec = String;

    fn retry(&self) -> Retry {
        self.retry
    }

    async fn prep(&self, _: &Trace, _: &Context<'_>) -> Result<(), NodeError> {
        self.preps.fetch_add(1, Ordering::SeqCst);
        Ok(())
    }

    async fn exec(&self, (): &()) -> Result<String, NodeError> {
        let attempt = self.attempts.fetch_add(1, Ordering::SeqCst) + 1;
        if !self.delay.is_zero() {
            tokio::time::sleep(self.delay).await;
        }
        if attempt <= self.failures {
            Err(format!("attempt {attempt} failed").into())
        } else {
            Ok(format!("ok on attempt {attempt}"))
        }
    }

    async fn exec_fallback(&self, (): &(), error: NodeError) -> Result<String, NodeError> {
        match self.fallback {
            Some(value) => Ok(format!("{value} after: {error}")),
            None => Err(error),
        }
    }

    async fn post(
        &self,
        _: &Trace,
        (): (),
        result: String,
        _: &Context<'_>,
    ) -> Result<Command<Trace>, NodeError> {
        self.posts.fetch_add(1, Ordering::SeqCst);
        Ok(Command::new(Trace::update().set_note(Some(result))))
    }
}

mod retries {
    use super::*;

    fn run_alone(flaky: &Flaky, trace: &mut Trace) -> (Result<&'static str, Error>, Duration) {
        let runtime = paused_runtime();
        runtime.block_on(async {
            let start = tokio::time::Instant::now();
            let result = flow! { flaky; }.run(trace).await;
            (result, start.elapsed())
        })
    }

    #[test]
    fn exec_is_retried_up_to_max_attempts_with_waits_only_between_attempts() {
        let node = Flaky::new(2, Retry::attempts(3).wait(Duration::from_millis(50)));
        let mut trace = Trace::default();
        let (result, elapsed) = run_alone(&node, &mut trace);
        assert_eq!(result.unwrap(), "default");
        assert_eq!(node.attempts.load(Ordering::SeqCst), 3);
        assert_eq!(
            elapsed,
            Duration::from_millis(100),
            "two waits, none after the last try"
        );
        assert_eq!(trace.note.as_deref(), Some("ok on attempt 3"));
    }

    #[test]
    fn the_last_failure_fails_the_run_with_the_attempt_count_and_source() {
        let node = Flaky::new(5, Retry::attempts(2).wait(Duration::from_millis(50)));
        let mut trace = Trace::default();
        let (result, elapsed) = run_alone(&node, &mut trace);
        let error = result.unwrap_err();
        assert!(matches!(
            error,
            Error::NodeFailed {
                phase: Phase::Exec,
                attempts: 2,
                step: 1,
                ..
            }
        ));
        assert_eq!(
            error.to_string(),
            "node `flaky` failed in `exec` at step 1 after 2 attempts: attempt 2 failed"
        );
        assert_eq!(
            std::error::Error::source(&error).unwrap().to_string(),
            "attempt 2 failed"
        );
        assert_eq!(
            elapsed,
            Duration::from_millis(50),
            "no wait after the last attempt"
        );
        assert_eq!(
            trace,
            Trace::default(),
            "nothing of the failed step is applied"
        );
        assert_eq!(node.posts.load(Ordering::SeqCst), 0);
    }

    #[test]
    fn backoff_multiplies_the_wait_up_to_its_cap() {
        let retry = Retry::attempts(4)
            .wait(Duration::from_millis(10))
            .backoff(3.0, Duration::from_millis(50));
        let node = Flaky::new(3, retry);
        let (result, elapsed) = run_alone(&node, &mut Trace::default());
        result.unwrap();
        assert_eq!(elapsed, Duration::from_millis(10 + 30 + 50));
    }

    #[test]
    fn one_attempt_by_default() {
        let node = Flaky::new(1, Retry::default());
        let (result, _) = run_alone(&node, &mut Trace::default());
        assert!(result.is_err());
        assert_eq!(node.attempts.load(Ordering::SeqCst), 1);
    }

    #[test]
    fn the_fallback_result_reaches_post() {
        // One attempt (the runtime's path without timers) and several (the retry loop).
        for (retry, last) in [(Retry::default(), 1), (Retry::attempts(2), 2)] {
            let mut node = Flaky::new(9, retry);
            node.fallback = Some("fallback");
            let mut trace = Trace::default();
            let (result, _) = run_alone(&node, &mut trace);
            assert_eq!(result.unwrap(), "default");
            let expected = format!("fallback after: attempt {last} failed");
            assert_eq!(trace.note.as_deref(), Some(expected.as_str()));
            assert_eq!(node.posts.load(Ordering::SeqCst), 1);
        }
    }

    #[test]
    fn prep_and_post_are_never_retried() {
        /// Fails in `prep`, or in `post`.
        struct Failing {
            in_prep: bool,
            calls: AtomicU32,
        }
        impl Node<Trace> for Failing {
            type Prep = ();
            type Exec = ();
            fn retry(&self) -> Retry {
                Retry::attempts(5)
            }
            async fn prep(&self, _: &Trace, _: &Context<'_>) -> Result<(), NodeError> {
                if self.in_prep {
                    self.calls.fetch_add(1, Ordering::SeqCst);
                    return Err("prep broke".into());
                }
                Ok(())
            }
            async fn exec(&self, (): &()) -> Result<(), NodeError> {
                Ok(())
            }
            async fn post(
                &self,
                _: &Trace,
                (): (),
                (): (),
                _: &Context<'_>,
            ) -> Result<Command<Trace>, NodeError> {
                self.calls.fetch_add(1, Ordering::SeqCst);
                Err("post broke".into())
            }
        }
        for (in_prep, phase) in [(true, Phase::Prep), (false, Phase::Post)] {
            let node = Failing {
                in_prep,
                calls: AtomicU32::new(0),
            };
            let error = support::runs::alone_blocking(&node, &mut Trace::default()).unwrap_err();
            assert!(
                matches!(error, Error::NodeFailed { phase: p, attempts: 1, .. } if p == phase),
                "{error}"
            );
            assert_eq!(node.calls.load(Ordering::SeqCst), 1);
        }
    }

    #[test]
    fn a_timed_out_attempt_counts_as_failed() {
        let mut node = Flaky::new(0, Retry::attempts(2).timeout(Duration::from_millis(10)));
        node.delay = Duration::from_secs(1);
        let (result, elapsed) = run_alone(&node, &mut Trace::default());
        let error = result.unwrap_err();
        assert!(
            matches!(
                error,
                Error::Timeout {
                    attempts: 2,
                    after,
                    ..
                } if after == Duration::from_millis(10)
            ),
            "{error}"
        );
        assert!(
            error
                .to_string()
                .starts_with("node `flaky` timed out at step 1")
        );
        assert_eq!(elapsed, Duration::from_millis(20));
    }

    #[test]
    fn a_retry_after_a_timeout_can_succeed() {
        /// Slow on the first attempt only.
        struct SlowOnce(AtomicU32);
        impl Node<Trace> for SlowOnce {
            type Prep = ();
            type Exec = ();
            fn retry(&self) -> Retry {
                Retry::attempts(2).timeout(Duration::from_millis(10))
            }
            async fn prep(&self, _: &Trace, _: &Context<'_>) -> Result<(), NodeError> {
                Ok(())
            }
            async fn exec(&self, (): &()) -> Result<(), NodeError> {
                if self.0.fetch_add(1, Ordering::SeqCst) == 0 {
                    tokio::time::sleep(Duration::from_secs(1)).await;
                }
                Ok(())
            }
            async fn post(
                &self,
                _: &Trace,
                (): (),
                (): (),
                _: &Context<'_>,
            ) -> Result<Command<Trace>, NodeError> {
                Ok(Command::new(Trace::update().add_count(1)))
            }
        }
        let node = SlowOnce(AtomicU32::new(0));
        let mut trace = Trace::default();
        paused_runtime()
            .block_on(support::runs::alone(&node, &mut trace))
            .unwrap();
        assert_eq!(trace.count, 1);
    }
}

mod failures {
    use super::*;

    /// Panics in `exec`.
    struct Panicking;
    impl Node<Trace> for Panicking {
        type Prep = ();
        type Exec = ();
        async fn prep(&self, _: &Trace, _: &Context<'_>) -> Result<(), NodeError> {
            Ok(())
        }
        async fn exec(&self, (): &()) -> Result<(), NodeError> {
            panic!("model client exploded")
        }
        async fn post(
            &self,
            _: &Trace,
            (): (),
            (): (),
            _: &Context<'_>,
        ) -> Result<Command<Trace>, NodeError> {
            Ok(Command::new(visit("never")))
        }
    }

    #[test]
    fn a_panic_becomes_an_error_naming_the_node_and_keeps_earlier_steps() {
        let boom = Panicking;
        let flow = flow! { first >> boom >> second; };
        let mut trace = Trace::default();
        let error = flow.run_blocking(&mut trace).unwrap_err();
        assert!(matches!(
            &error,
            Error::Panic { node: "boom", step: 2, phase: Phase::Exec, message } if message == "model client exploded"
        ));
        assert_eq!(
            error.to_string(),
            "node `boom` panicked in `exec` at step 2: model client exploded; nothing of this step \
             was applied"
        );
        assert_eq!(
            trace.visited,
            ["first"],
            "the first step stays, the failed one is not applied"
        );
    }

    /// Panics in `prep`.
    #[node]
    fn panics_in_prep(_: &Trace) -> Command<Trace> {
        panic!("bad input")
    }

    #[test]
    fn a_panic_in_a_nested_flow_names_the_inner_node_and_phase() {
        let inner = flow! { second >> panics_in_prep; };
        let outer = flow! { first >> inner >> third; };
        let mut trace = Trace::default();
        let error = outer.run_blocking(&mut trace).unwrap_err();
        // `#[node]` functions run in `post`.
        assert!(
            matches!(
                &error,
                Error::Panic { node: "panics_in_prep", step: 3, phase: Phase::Post, message }
                    if message == "bad input"
            ),
            "{error}"
        );
        assert_eq!(trace.visited, ["first", "second"]);
        let mut trace = Trace::default();
        let error = support::runs::alone_blocking(&panics_in_prep, &mut trace).unwrap_err();
        assert!(matches!(error, Error::Panic { step: 1, .. }), "{error}");
    }

    /// A `with` reducer that panics on a negative value.
    fn checked_add(total: &mut i64, value: i64) {
        assert!(value >= 0, "negative amount");
        *total += value;
    }

    #[derive(SharedState, Debug, Default, Serialize, Deserialize)]
    struct Ledger {
        #[reducer(append)]
        entries: Vec<i64>,
        #[reducer(with = checked_add)]
        total: i64,
    }

    #[node]
    fn refund(_: &Ledger) -> Command<Ledger> {
        Command::new(Ledger::update().push_entries(-5).reduce_total(-5))
    }

    #[test]
    fn a_panic_in_a_reducer_is_reported_in_apply_and_says_the_update_may_be_partial() {
        let mut ledger = Ledger::default();
        let error = support::runs::alone_blocking(&refund, &mut ledger).unwrap_err();
        assert!(
            matches!(
                error,
                Error::Panic {
                    phase: Phase::Apply,
                    ..
                }
            ),
            "{error}"
        );
        assert!(
            error
                .to_string()
                .ends_with("negative amount; the step's update may be partly applied"),
            "{error}"
        );
        assert_eq!(
            ledger.entries,
            [-5],
            "fields before the panicking one were applied"
        );
        assert_eq!(ledger.total, 0);
    }

    #[test]
    fn an_undeclared_action_is_an_error() {
        let sneaky =
            from_fn(|_: &Trace| Ok(Command::new(visit("sneaky")).with_action("elsewhere")));
        let flow = flow! { first >> sneaky; };
        let mut trace = Trace::default();
        let error = flow.run_blocking(&mut trace).unwrap_err();
        assert_eq!(
            error.to_string(),
            "node `sneaky` returned the action \"elsewhere\" at step 2, which it does not declare \
             (it declares \"default\"); declare it: `#[node(actions = [..., \"elsewhere\"])]` on a \
             function, or in `ACTIONS` of an `impl Node` (a `node::from_fn` closure can only \
             return \"default\")"
        );
        assert_eq!(error.node(), Some("sneaky"));
        assert_eq!(trace.visited, ["first"]);
    }

    #[test]
    fn a_node_error_names_the_node_and_step() {
        let flow = flow! { first >> route; route - "intrusion" >> second; };
        let mut trace = Trace::default();
        let error = flow.run_blocking(&mut trace).unwrap_err();
        assert_eq!(
            error.to_string(),
            "node `route` failed in `post` at step 2: no kind to route on"
        );
    }

    #[test]
    fn a_step_limit_of_n_runs_exactly_n_steps() {
        let flow = flow! { forever - "again" >> forever; }.with_max_steps(5);
        let mut trace = Trace::default();
        let error = flow.run_blocking(&mut trace).unwrap_err();
        assert_eq!(trace.count, 5);
        assert!(matches!(
            error,
            Error::StepLimit {
                limit: 5,
                node: "forever",
                step: 6
            }
        ));
        assert!(error.to_string().starts_with(
            "step limit of 5 reached before running node `forever`, which would have been step 6"
        ));
    }

    #[test]
    fn a_run_that_needs_exactly_the_limit_succeeds() {
        let flow = flow! { tick - "again" >> tick; }.with_max_steps(5);
        let mut trace = Trace::default();
        assert_eq!(flow.run_blocking(&mut trace).unwrap(), "done");
        assert_eq!(trace.count, 5);
        let flow = flow! { tick - "again" >> tick; }.with_max_steps(4);
        assert!(matches!(
            flow.run_blocking(&mut Trace::default()),
            Err(Error::StepLimit { limit: 4, .. })
        ));
    }

    #[test]
    fn the_default_limit_is_ten_thousand_steps() {
        let flow = flow! { forever - "again" >> forever; };
        assert_eq!(flow.max_steps(), 10_000);
        let mut trace = Trace::default();
        assert!(flow.run_blocking(&mut trace).is_err());
        assert_eq!(trace.count, 10_000);
    }

    #[test]
    fn a_nested_flows_limit_counts_its_own_steps() {
        let inner = flow! { forever - "again" >> forever; }.with_max_steps(3);
        let outer = flow! { first >> inner; }.with_max_steps(100);
        let mut trace = Trace::default();
        let error = outer.run_blocking(&mut trace).unwrap_err();
        assert!(matches!(
            error,
            Error::StepLimit {
                limit: 3,
                node: "forever",
                step: 5
            }
        ));
        assert_eq!(trace.count, 3);
    }
}

mod graph_export {
    use super::*;

    #[test]
    fn graph_lists_nodes_edges_start_and_nested_flows() {
        let inner = flow! { first >> route; route - "intrusion" >> second; };
        let outer = flow! {
            tick - "again" >> tick;
            tick - "done" >> inner;
            inner - "phishing" >> third;
        };
        let graph = outer.graph();
        assert_eq!(graph.start, "tick");
        let names: Vec<&str> = graph.nodes.iter().map(|node| node.name).collect();
        assert_eq!(names, ["tick", "inner", "third"]);
        assert_eq!(graph.nodes[0].actions, ["again", "done"]);
        let nested = graph.nodes[1].flow.as_ref().expect("inner is a flow");
        assert_eq!(nested.start, "first");
        assert_eq!(nested.actions, ["phishing", "default"]);
        assert_eq!(
            graph.actions,
            ["default"],
            "third's default action ends the outer flow"
        );
        let json = serde_json::to_value(&graph).unwrap();
        assert_eq!(
            json["edges"][1],
            serde_json::json!({ "from": "tick", "action": "done", "to": "inner" })
        );
        assert_eq!(json["nodes"][1]["flow"]["edges"][1]["action"], "intrusion");
        assert!(json["nodes"][0].get("flow").is_none());
    }

    #[test]
    fn mermaid_draws_the_graph_with_nested_subgraphs() {
        let inner = flow! { first >> second; };
        let outer = flow! { route - "intrusion" >> inner; route - "phishing" >> third; };
        assert_eq!(
            outer.mermaid(),
            "flowchart TD\n    route([\"route\"])\n    subgraph inner[\"inner\"]\n        \
             inner__first([\"first\"])\n        inner__second[\"second\"]\n        \
             inner__first --> inner__second\n    end\n    third[\"third\"]\n    \
             route -->|\"intrusion\"| inner\n    route -->|\"phishing\"| third\n"
        );
    }

    #[test]
    fn exhaustive_flows_that_wire_everything_compile_and_run() {
        let flow = flow! {
            #![exhaustive]
            tick - "again" >> tick;
            tick - "done" >> first;
        };
        let mut trace = Trace::default();
        flow.run_blocking(&mut trace).unwrap();
        assert_eq!(trace.count, 5);
    }

    #[test]
    fn every_delimiter_works() {
        let braces = flow! { first; };
        let parens = flow!(first;);
        let brackets = flow![first;];
        for graph in [braces.graph(), parens.graph(), brackets.graph()] {
            assert_eq!(graph.start, "first");
        }
    }
}

/// Nests `$inner` in a new flow, `$levels` more times.
macro_rules! nest {
    ($inner:ident;) => { $inner };
    ($inner:ident; $level:ident $($rest:ident)*) => {{
        let $level = $inner;
        let nested = flow! { $level; };
        nest!(nested; $($rest)*)
    }};
}

#[slateflow::node]
fn deepest(_: &Nested) -> slateflow::Command<Nested> {
    slateflow::Command::new(Nested::update().add_count(1))
}

#[derive(slateflow::SharedState, Clone, Debug, Default, serde::Serialize, serde::Deserialize)]
struct Nested {
    #[reducer(add)]
    count: u32,
}

#[test]
fn flows_nested_past_the_tracked_depth_fail_with_a_clear_error() {
    let seven = flow! { deepest; };
    // The node runs at depth 8: the deepest the run tracks.
    let seven = nest!(seven; l2 l3 l4 l5 l6 l7 l8);
    let mut state = Nested::default();
    seven.run_blocking(&mut state).unwrap();
    assert_eq!(state.count, 1);
    let nine = nest!(seven; l9);
    let error = nine.run_blocking(&mut state).unwrap_err();
    assert!(
        matches!(error, slateflow::Error::NestingTooDeep { limit: 8, .. }),
        "{error:?}"
    );
    assert!(
        error
            .to_string()
            .starts_with("flows are nested more than 8 deep"),
        "{error}"
    );
    assert_eq!(state.count, 1, "nothing ran");
}
