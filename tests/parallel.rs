//! Parallel branches in `flow!`: `a >> [b, c] >> d`. Merge order, reducers under fan-out, the
//! conflict rule, cancellation, panics, retries, step limits, nested flows in branches and graph
//! export. Timing is driven by tokio's paused clock: delays change which branch finishes first
//! without the tests timing anything.

use std::sync::atomic::{AtomicBool, AtomicU32, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use serde::{Deserialize, Serialize};
use slateflow::{
    Command, Context, Error, Node, NodeError, Phase, Retry, SharedState, StateUpdate, flow, node,
};

#[derive(SharedState, Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
struct Work {
    /// Which nodes ran, in merge order.
    #[reducer(append)]
    visited: Vec<String>,
    #[reducer(add)]
    count: u32,
    verdict: Option<String>,
    /// What each branch saw of `count`.
    #[reducer(append)]
    seen: Vec<u32>,
    /// The step number each node saw.
    #[reducer(append)]
    steps: Vec<u64>,
}

fn visit(name: &str) -> WorkUpdate {
    Work::update().push_visited(name.to_string())
}

fn paused_runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_time()
        .start_paused(true)
        .build()
        .unwrap()
}

#[node]
fn start(_: &Work) -> Command<Work> {
    Command::new(visit("start"))
}

#[node]
fn join(_: &Work) -> Command<Work> {
    Command::new(visit("join"))
}

/// A branch that waits (in `exec`, like a model call) for a delay drawn from a shared random
/// sequence, then records its name; it also records when it finished.
struct Sleeper {
    name: &'static str,
    random: Arc<AtomicU64>,
    finished: Arc<Mutex<Vec<&'static str>>>,
}

impl Sleeper {
    /// xorshift64: a different delay per call, reproducible from the seed.
    fn next_delay(&self) -> Duration {
        let mut x = self.random.load(Ordering::Relaxed);
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        self.random.store(x, Ordering::Relaxed);
        Duration::from_millis(x % 50)
    }
}

impl Node<Work> for Sleeper {
    type Prep = Duration;
    type Exec = ();

    async fn prep(&self, _: &Work, _: &Context<'_>) -> Result<Duration, NodeError> {
        Ok(self.next_delay())
    }

    async fn exec(&self, delay: &Duration) -> Result<(), NodeError> {
        tokio::time::sleep(*delay).await;
        self.finished.lock().unwrap().push(self.name);
        Ok(())
    }

    async fn post(
        &self,
        _: &Work,
        _: Duration,
        (): (),
        _: &Context<'_>,
    ) -> Result<Command<Work>, NodeError> {
        Ok(Command::new(visit(self.name)))
    }
}

#[test]
fn updates_merge_in_written_order_whatever_order_the_branches_finish_in() {
    let random = Arc::new(AtomicU64::new(0x9E37_79B9_7F4A_7C15));
    let finished = Arc::new(Mutex::new(Vec::new()));
    let sleeper = |name| Sleeper {
        name,
        random: Arc::clone(&random),
        finished: Arc::clone(&finished),
    };
    let (w, x, y, z) = (sleeper("w"), sleeper("x"), sleeper("y"), sleeper("z"));
    let flow = flow! { start >> [w, x, y, z] >> join; };
    let runtime = paused_runtime();
    let mut finish_orders = std::collections::HashSet::new();
    for _ in 0..100 {
        let mut work = Work::default();
        assert_eq!(runtime.block_on(flow.run(&mut work)).unwrap(), "default");
        assert_eq!(work.visited, ["start", "w", "x", "y", "z", "join"]);
        finish_orders.insert(std::mem::take(&mut *finished.lock().unwrap()));
    }
    // The delays really did change which branch finished first.
    assert!(finish_orders.len() > 10, "only {finish_orders:?}");
}

#[node]
fn add_one(work: &Work) -> Command<Work> {
    Command::new(visit("add_one").add_count(1).push_seen(work.count))
}

#[node]
fn add_one_more(work: &Work) -> Command<Work> {
    Command::new(visit("add_one_more").add_count(1).push_seen(work.count))
}

#[test]
fn add_and_append_merge_under_fan_out_and_branches_read_the_state_before_the_fork() {
    let flow = flow! { start >> [add_one, add_one_more] >> join; };
    let mut work = Work {
        count: 10,
        ..Work::default()
    };
    flow.run_blocking(&mut work).unwrap();
    assert_eq!(work.count, 12);
    assert_eq!(work.seen, [10, 10], "neither branch sees the other's write");
    assert_eq!(work.visited, ["start", "add_one", "add_one_more", "join"]);
}

#[node]
fn judge_a(_: &Work) -> Command<Work> {
    Command::new(visit("judge_a").add_count(1).set_verdict(Some("ok".into())))
}

#[node]
fn judge_b(_: &Work) -> Command<Work> {
    Command::new(visit("judge_b").add_count(1).set_verdict(Some("ok".into())))
}

#[test]
fn a_last_write_field_written_by_two_branches_is_a_conflict_even_for_equal_values() {
    let flow = flow! { start >> [add_one, judge_a, judge_b] >> join; };
    let mut work = Work::default();
    let error = flow.run_blocking(&mut work).unwrap_err();
    match &error {
        Error::ParallelConflict {
            field,
            first,
            second,
            step,
        } => {
            assert_eq!(
                (*field, *first, *second, *step),
                ("verdict", "judge_a", "judge_b", 2)
            );
        }
        other => panic!("expected a conflict, got {other:?}"),
    }
    let message = error.to_string();
    assert!(message.contains("`judge_a` and `judge_b`"), "{message}");
    assert!(message.contains("`verdict`"), "{message}");
    assert!(
        message.contains("nothing of the fork was applied"),
        "{message}"
    );
    // Only `start` was applied: not the branches' counts, nor the join.
    assert_eq!(work.visited, ["start"]);
    assert_eq!(work.count, 0);
    assert_eq!(work.verdict, None);
}

/// Declares a state of 65 last-write-wins fields `f0` to `f64`: more than a fork's one-pass check
/// has bits for.
macro_rules! wide_state {
    ($($field:ident)*) => {
        #[derive(SharedState, Clone, Debug, Default, Serialize, Deserialize)]
        struct Wide {
            $($field: u8,)*
        }
    };
}

wide_state! {
    f0 f1 f2 f3 f4 f5 f6 f7 f8 f9 f10 f11 f12 f13 f14 f15 f16 f17 f18 f19 f20 f21 f22 f23 f24 f25
    f26 f27 f28 f29 f30 f31 f32 f33 f34 f35 f36 f37 f38 f39 f40 f41 f42 f43 f44 f45 f46 f47 f48 f49
    f50 f51 f52 f53 f54 f55 f56 f57 f58 f59 f60 f61 f62 f63 f64
}

#[node]
fn first_field(_: &Wide) -> Command<Wide> {
    Command::new(Wide::update().set_f0(1))
}

#[node]
fn last_field(_: &Wide) -> Command<Wide> {
    Command::new(Wide::update().set_f64(1))
}

#[node]
fn last_field_too(_: &Wide) -> Command<Wide> {
    Command::new(Wide::update().set_f64(2))
}

#[test]
fn a_state_too_wide_for_the_one_pass_check_is_checked_pair_by_pair() {
    assert_eq!(Wide::update().set_f0(1).__contested(), None);
    let apart = flow! { [first_field, last_field]; };
    let mut wide = Wide::default();
    apart.run_blocking(&mut wide).unwrap();
    assert_eq!((wide.f0, wide.f64), (1, 1));
    let clash = flow! { [first_field, last_field, last_field_too]; };
    let error = clash.run_blocking(&mut Wide::default()).unwrap_err();
    assert!(
        matches!(
            error,
            Error::ParallelConflict {
                field: "f64",
                first: "last_field",
                second: "last_field_too",
                step: 1,
            }
        ),
        "{error:?}"
    );
}

/// Fails at once.
#[node]
fn fails(_: &Work) -> Result<Command<Work>, NodeError> {
    Err("the model endpoint refused".into())
}

/// Takes a second, then marks that it finished.
struct Slow {
    finished: Arc<AtomicBool>,
}

impl Node<Work> for Slow {
    type Prep = ();
    type Exec = ();

    async fn prep(&self, _: &Work, _: &Context<'_>) -> Result<(), NodeError> {
        Ok(())
    }

    async fn exec(&self, (): &()) -> Result<(), NodeError> {
        tokio::time::sleep(Duration::from_secs(1)).await;
        self.finished.store(true, Ordering::SeqCst);
        Ok(())
    }

    async fn post(
        &self,
        _: &Work,
        (): (),
        (): (),
        _: &Context<'_>,
    ) -> Result<Command<Work>, NodeError> {
        Ok(Command::new(visit("slow").add_count(1)))
    }
}

#[test]
fn a_failing_branch_cancels_its_siblings_and_applies_nothing() {
    let finished = Arc::new(AtomicBool::new(false));
    let slow = Slow {
        finished: Arc::clone(&finished),
    };
    let flow = flow! { start >> [slow, add_one, fails] >> join; };
    let runtime = paused_runtime();
    let mut work = Work::default();
    let error = runtime.block_on(flow.run(&mut work)).unwrap_err();
    assert!(
        matches!(
            error,
            Error::NodeFailed {
                node: "fails",
                step: 4,
                phase: Phase::Post,
                ..
            }
        ),
        "{error:?}"
    );
    // Long after the slow branch would have finished, it has not: it was dropped.
    runtime.block_on(async { tokio::time::sleep(Duration::from_secs(5)).await });
    assert!(!finished.load(Ordering::SeqCst));
    assert_eq!(work.visited, ["start"]);
    assert_eq!(work.count, 0);
}

#[node]
fn boom(_: &Work) -> Command<Work> {
    panic!("branch exploded")
}

#[test]
fn a_panicking_branch_is_named_and_nothing_of_the_fork_is_applied() {
    let flow = flow! { start >> [add_one, boom] >> join; };
    let mut work = Work::default();
    let error = flow.run_blocking(&mut work).unwrap_err();
    match error {
        Error::Panic {
            node,
            step,
            phase,
            message,
        } => {
            assert_eq!((node, step, phase), ("boom", 3, Phase::Post));
            assert_eq!(message, "branch exploded");
        }
        other => panic!("expected a panic error, got {other:?}"),
    }
    assert_eq!(work.visited, ["start"]);
}

/// Panics in `exec`, after a wait: on a later poll of its fork than the first.
struct ExecBoom;

impl Node<Work> for ExecBoom {
    type Prep = ();
    type Exec = ();

    async fn prep(&self, _: &Work, _: &Context<'_>) -> Result<(), NodeError> {
        Ok(())
    }

    async fn exec(&self, (): &()) -> Result<(), NodeError> {
        tokio::time::sleep(Duration::from_millis(5)).await;
        panic!("exec exploded")
    }

    async fn post(
        &self,
        _: &Work,
        (): (),
        (): (),
        _: &Context<'_>,
    ) -> Result<Command<Work>, NodeError> {
        Ok(Command::new(visit("exec_boom")))
    }
}

#[test]
fn a_branch_that_panics_after_waiting_is_named_with_the_phase_it_was_in() {
    let exec_boom = ExecBoom;
    let flow = flow! { start >> [add_one, exec_boom, add_one_more] >> join; };
    let mut work = Work::default();
    let error = paused_runtime().block_on(flow.run(&mut work)).unwrap_err();
    assert!(
        matches!(
            &error,
            Error::Panic {
                node: "exec_boom",
                step: 3,
                phase: Phase::Exec,
                message,
            } if message == "exec exploded"
        ),
        "{error:?}"
    );
    assert_eq!(work.visited, ["start"], "nothing of the fork was applied");
}

/// Fails its first two attempts.
struct Flaky {
    attempts: AtomicU32,
}

impl Node<Work> for Flaky {
    type Prep = ();
    type Exec = u32;

    fn retry(&self) -> Retry {
        Retry::attempts(3).wait(Duration::from_millis(10))
    }

    async fn prep(&self, _: &Work, _: &Context<'_>) -> Result<(), NodeError> {
        Ok(())
    }

    async fn exec(&self, (): &()) -> Result<u32, NodeError> {
        let attempt = self.attempts.fetch_add(1, Ordering::SeqCst) + 1;
        if attempt < 3 {
            Err(format!("attempt {attempt} failed").into())
        } else {
            Ok(attempt)
        }
    }

    async fn post(
        &self,
        _: &Work,
        (): (),
        attempt: u32,
        _: &Context<'_>,
    ) -> Result<Command<Work>, NodeError> {
        Ok(Command::new(visit("flaky").push_seen(attempt)))
    }
}

#[test]
fn retries_apply_to_each_branch_on_its_own() {
    let flaky = Flaky {
        attempts: AtomicU32::new(0),
    };
    let runs = Arc::new(AtomicU32::new(0));
    let counted = {
        let runs = Arc::clone(&runs);
        slateflow::node::from_fn(move |_: &Work| {
            runs.fetch_add(1, Ordering::SeqCst);
            Ok(Command::new(visit("counted")))
        })
    };
    let flow = flow! { start >> [flaky, counted] >> join; };
    let mut work = Work::default();
    paused_runtime().block_on(flow.run(&mut work)).unwrap();
    assert_eq!(
        work.seen,
        [3],
        "the flaky branch succeeded on its third attempt"
    );
    assert_eq!(runs.load(Ordering::SeqCst), 1, "its sibling ran once");
    assert_eq!(work.visited, ["start", "flaky", "counted", "join"]);
}

#[node]
fn step_b(_: &Work, context: &Context<'_>) -> Command<Work> {
    Command::new(visit("b").push_steps(context.step()))
}

#[node]
fn step_c(_: &Work, context: &Context<'_>) -> Command<Work> {
    Command::new(visit("c").push_steps(context.step()))
}

#[node]
fn step_d(_: &Work, context: &Context<'_>) -> Command<Work> {
    Command::new(visit("d").push_steps(context.step()))
}

#[test]
fn each_branch_is_a_step_numbered_in_written_order() {
    let flow = flow! { start >> [step_b, step_c] >> step_d; };
    let mut work = Work::default();
    flow.run_blocking(&mut work).unwrap();
    assert_eq!(work.steps, [2, 3, 4]);
}

#[test]
fn a_fork_that_does_not_fit_in_the_step_limit_does_not_start() {
    let flow = flow! { start >> [step_b, step_c, step_d] >> join; }.with_max_steps(3);
    let mut work = Work::default();
    let error = flow.run_blocking(&mut work).unwrap_err();
    assert!(
        matches!(
            error,
            Error::StepLimit {
                limit: 3,
                node: "step_d",
                step: 4
            }
        ),
        "{error:?}"
    );
    assert_eq!(work.visited, ["start"], "no branch ran");
    // With room for all three, the join runs too.
    let flow = flow! { start >> [step_b, step_c, step_d] >> join; }.with_max_steps(5);
    let mut work = Work::default();
    flow.run_blocking(&mut work).unwrap();
    assert_eq!(work.visited.last().map(String::as_str), Some("join"));
}

#[test]
fn a_fork_without_a_join_ends_the_run_after_its_merge() {
    let flow = flow! { start >> [add_one, add_one_more]; };
    let mut work = Work::default();
    assert_eq!(flow.run_blocking(&mut work).unwrap(), "default");
    assert_eq!(work.visited, ["start", "add_one", "add_one_more"]);
    assert_eq!(flow.graph().actions, ["default"]);
}

#[node(actions = ["left", "right"])]
fn pick(work: &Work) -> Command<Work> {
    let action = if work.count == 0 { "left" } else { "right" };
    Command::new(visit("pick")).with_action(action)
}

#[test]
fn a_labelled_edge_can_lead_to_a_fork() {
    let flow = flow! {
        pick - "left" >> [add_one, add_one_more] >> join;
        pick - "right" >> join;
    };
    let mut work = Work::default();
    flow.run_blocking(&mut work).unwrap();
    assert_eq!(work.visited, ["pick", "add_one", "add_one_more", "join"]);
    let mut work = Work {
        count: 1,
        ..Work::default()
    };
    flow.run_blocking(&mut work).unwrap();
    assert_eq!(work.visited, ["pick", "join"]);
}

#[test]
fn a_nested_flow_in_a_branch_runs_on_its_own_copy_and_hands_back_its_updates() {
    // The inner flow forks too. Its nodes see each other's updates (its copy), not the sibling's.
    let inner = flow! { add_one >> [step_b, add_one_more] >> step_c; };
    let outer = flow! { start >> [inner, judge_a] >> join; };
    let mut work = Work {
        count: 5,
        ..Work::default()
    };
    outer.run_blocking(&mut work).unwrap();
    assert_eq!(
        work.visited,
        [
            "start",
            "add_one",
            "b",
            "add_one_more",
            "c",
            "judge_a",
            "join"
        ],
        "the inner flow's updates come first: it is written first"
    );
    assert_eq!(work.count, 5 + 1 + 1 + 1, "each add counted once");
    assert_eq!(
        work.seen,
        [5, 6],
        "`add_one_more` saw `add_one`'s write on the copy"
    );
    assert_eq!(work.verdict.as_deref(), Some("ok"));
    // Steps: `start` 1; the inner flow from 2 (`add_one` 2, `b` 3, `add_one_more` 4, `c` 5);
    // `judge_a` 3. The fork took 4 + 1 steps, so the node after it is step 7.
    assert_eq!(work.steps, [3, 5]);
    let inner = flow! { add_one >> [step_b, add_one_more] >> step_c; };
    let outer = flow! { start >> [inner, judge_a] >> step_d; };
    let mut work = Work::default();
    outer.run_blocking(&mut work).unwrap();
    assert_eq!(work.steps, [3, 5, 7]);
}

#[test]
fn a_branch_flow_that_fails_fails_the_fork_and_applies_nothing() {
    let inner = flow! { add_one >> fails; };
    let outer = flow! { start >> [inner, add_one_more] >> join; };
    let mut work = Work::default();
    let error = outer.run_blocking(&mut work).unwrap_err();
    assert!(
        matches!(
            error,
            Error::NodeFailed {
                node: "fails",
                step: 3,
                ..
            }
        ),
        "{error:?}"
    );
    assert_eq!(work.visited, ["start"]);
    assert_eq!(
        work.count, 0,
        "the inner flow's applied `add_one` stayed on its copy"
    );
}

#[test]
fn conflict_is_found_without_consuming_the_updates() {
    let left = Work::update().set_verdict(None).add_count(1);
    let right = Work::update().set_verdict(Some("x".into()));
    assert_eq!(left.conflict(&right).map(|c| c.field()), Some("verdict"));
    assert_eq!(left.conflict(&Work::update().add_count(2)), None);
    // `merge` agrees.
    assert_eq!(left.merge(right).unwrap_err().field(), "verdict");
}

#[test]
fn forks_appear_in_the_graph_and_in_mermaid() {
    let flow = flow! {
        pick - "left" >> [add_one, add_one_more] >> join;
        pick - "right" >> join;
    };
    let graph = flow.graph();
    assert_eq!(graph.forks.len(), 1);
    assert_eq!(graph.forks[0].name, "[add_one, add_one_more]");
    assert_eq!(graph.forks[0].branches, ["add_one", "add_one_more"]);
    let json = serde_json::to_value(&graph).unwrap();
    assert_eq!(
        json["edges"][0],
        serde_json::json!({"from": "pick", "action": "left", "to": "[add_one, add_one_more]"})
    );
    assert_eq!(
        json["edges"][1],
        serde_json::json!({"from": "[add_one, add_one_more]", "action": "default", "to": "join"})
    );
    let mermaid = flow.mermaid();
    for line in [
        "fork1__{{\"fork\"}}",
        "fork1__join((\"join\"))",
        "fork1__ ==> add_one",
        "add_one_more ==> fork1__join",
        "pick -->|\"left\"| fork1__",
        "fork1__join --> join",
    ] {
        assert!(mermaid.contains(line), "{line} missing from\n{mermaid}");
    }
}

/// Adds its number to the log.
#[derive(Clone, Copy)]
struct Mark(u32);

impl Node<Work> for Mark {
    type Prep = ();
    type Exec = ();
    const ACTIONS: &'static [&'static str] = &["default", "unwired"];

    async fn prep(&self, _: &Work, _: &Context<'_>) -> Result<(), NodeError> {
        Ok(())
    }

    async fn exec(&self, (): &()) -> Result<(), NodeError> {
        Ok(())
    }

    async fn post(
        &self,
        _: &Work,
        (): (),
        (): (),
        _: &Context<'_>,
    ) -> Result<Command<Work>, NodeError> {
        Ok(Command::new(visit(&self.0.to_string())))
    }
}

// More nodes than one chunk of the generated code holds (64), with a fork whose branches sit in
// different chunks: the run, the numbering, the graph and the actions are as for a small flow.
#[test]
fn a_flow_larger_than_a_chunk_runs_and_describes_itself_in_order() {
    let n0 = Mark(0);
    let n1 = Mark(1);
    let n2 = Mark(2);
    let n3 = Mark(3);
    let n4 = Mark(4);
    let n5 = Mark(5);
    let n6 = Mark(6);
    let n7 = Mark(7);
    let n8 = Mark(8);
    let n9 = Mark(9);
    let n10 = Mark(10);
    let n11 = Mark(11);
    let n12 = Mark(12);
    let n13 = Mark(13);
    let n14 = Mark(14);
    let n15 = Mark(15);
    let n16 = Mark(16);
    let n17 = Mark(17);
    let n18 = Mark(18);
    let n19 = Mark(19);
    let n20 = Mark(20);
    let n21 = Mark(21);
    let n22 = Mark(22);
    let n23 = Mark(23);
    let n24 = Mark(24);
    let n25 = Mark(25);
    let n26 = Mark(26);
    let n27 = Mark(27);
    let n28 = Mark(28);
    let n29 = Mark(29);
    let n30 = Mark(30);
    let n31 = Mark(31);
    let n32 = Mark(32);
    let n33 = Mark(33);
    let n34 = Mark(34);
    let n35 = Mark(35);
    let n36 = Mark(36);
    let n37 = Mark(37);
    let n38 = Mark(38);
    let n39 = Mark(39);
    let n40 = Mark(40);
    let n41 = Mark(41);
    let n42 = Mark(42);
    let n43 = Mark(43);
    let n44 = Mark(44);
    let n45 = Mark(45);
    let n46 = Mark(46);
    let n47 = Mark(47);
    let n48 = Mark(48);
    let n49 = Mark(49);
    let n50 = Mark(50);
    let n51 = Mark(51);
    let n52 = Mark(52);
    let n53 = Mark(53);
    let n54 = Mark(54);
    let n55 = Mark(55);
    let n56 = Mark(56);
    let n57 = Mark(57);
    let n58 = Mark(58);
    let n59 = Mark(59);
    let n60 = Mark(60);
    let n61 = Mark(61);
    let n62 = Mark(62);
    let n63 = Mark(63);
    let n64 = Mark(64);
    let n65 = Mark(65);
    let n66 = Mark(66);
    let n67 = Mark(67);
    let n68 = Mark(68);
    let n69 = Mark(69);
    let flow = flow! { n0 >> n1 >> n2 >> n3 >> n4 >> n5 >> n6 >> n7 >> n8 >> n9 >> n10 >> n11 >> n12 >> n13 >> n14 >> n15 >> n16 >> n17 >> n18 >> n19 >> n20 >> n21 >> n22 >> n23 >> n24 >> n25 >> n26 >> n27 >> n28 >> n29 >> n30 >> n31 >> n32 >> n33 >> n34 >> n35 >> n36 >> n37 >> n38 >> n39 >> n40 >> n41 >> n42 >> n43 >> n44 >> n45 >> n46 >> n47 >> n48 >> n49 >> n50 >> n51 >> n52 >> n53 >> n54 >> n55 >> n56 >> n57 >> n58 >> n59 >> n60 >> n61 >> n62 >> [n63, n64] >> n65 >> n66 >> n67 >> n68 >> n69; };
    let mut work = Work::default();
    let action = flow.run_blocking(&mut work).unwrap();
    assert_eq!(action, "default");
    // Nodes 0 to 63 make the first chunk: the fork's branches `n63` and `n64` sit in two.
    let expected: Vec<String> = (0..70).map(|number: u32| number.to_string()).collect();
    assert_eq!(work.visited, expected);
    let graph = flow.graph();
    let names: Vec<&str> = graph.nodes.iter().map(|node| node.name).collect();
    let in_order: Vec<String> = (0..70).map(|number| format!("n{number}")).collect();
    assert_eq!(names, in_order, "nodes in the order the flow names them");
    assert_eq!(graph.forks[0].branches, ["n63", "n64"]);
    assert_eq!(
        graph.edges.len(),
        62 + 1 + 1 + 4,
        "chain, into the fork, the join, chain"
    );
    assert_eq!(
        flow.graph().actions,
        ["unwired", "default"],
        "what no node wires, in node order: `unwired` from `n0`, `default` from the last"
    );
}

/// A node over any state: it counts its runs and changes nothing.
struct Counted(Arc<AtomicU32>);

impl<S: SharedState> Node<S> for Counted {
    type Prep = ();
    type Exec = ();

    async fn prep(&self, _: &S, _: &Context<'_>) -> Result<(), NodeError> {
        Ok(())
    }

    async fn exec(&self, (): &()) -> Result<(), NodeError> {
        self.0.fetch_add(1, Ordering::Relaxed);
        Ok(())
    }

    async fn post(&self, _: &S, (): (), (): (), _: &Context<'_>) -> Result<Command<S>, NodeError> {
        Ok(Command::default())
    }
}

#[test]
fn a_fork_of_nodes_over_any_state_takes_its_state_from_the_run() {
    // Nothing in the flow names its state: the fork's `Clone` check waits for the run to say it.
    let runs = Arc::new(AtomicU32::new(0));
    let (first, left, right) = (
        Counted(runs.clone()),
        Counted(runs.clone()),
        Counted(runs.clone()),
    );
    let flow = flow! { first >> [left, right]; };
    let mut work = Work::default();
    flow.run_blocking(&mut work).unwrap();
    assert_eq!(runs.load(Ordering::Relaxed), 3);
    assert_eq!(work, Work::default());
}
