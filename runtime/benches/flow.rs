//! Per-step overhead of a flow against a hand-written loop that calls the same node's steps, and
//! (for the loop) against one that also does by hand the checks a run makes at each step.
//!
//! Run with `cargo bench -p slateflow`. Both sides poll their future with a no-op waker (nothing
//! here waits), so the figures compare the runtime with the loop, not executors. Each figure is
//! the median of several samples, and the ratio is taken within the same run: the machines are
//! shared and noisy, so absolute numbers vary, ratios much less.

use std::cell::Cell;
use std::future::Future;
use std::hint::black_box;
use std::pin::pin;
use std::task::{Context as TaskContext, Poll, Waker};
use std::time::{Duration, Instant};

mod support;

use slateflow::{Command, Context, Error, Node, NodeError, Params, Phase, SharedState, flow};
use support::{Counter, Noop};

/// Sends the run back to the other node until `LOOP_STEPS` steps have run.
struct Bounce;

const LOOP_STEPS: u32 = 10_000;

impl Node<Counter> for Bounce {
    type Prep = u32;
    type Exec = ();
    const ACTIONS: &'static [&'static str] = &["again", "done"];

    async fn prep(&self, counter: &Counter, _: &Context<'_>) -> Result<u32, NodeError> {
        Ok(counter.steps)
    }

    async fn exec(&self, _: &u32) -> Result<(), NodeError> {
        Ok(())
    }

    async fn post(
        &self,
        _: &Counter,
        steps: u32,
        (): (),
        _: &Context<'_>,
    ) -> Result<Command<Counter>, NodeError> {
        let action = if steps + 2 < LOOP_STEPS {
            "again"
        } else {
            "done"
        };
        Ok(Command::new(Counter::update().add_steps(1)).with_action(action))
    }
}

/// Polls a future that never waits to its output.
fn ready<F: Future>(future: F) -> F::Output {
    let mut future = pin!(future);
    match future
        .as_mut()
        .poll(&mut TaskContext::from_waker(Waker::noop()))
    {
        Poll::Ready(output) => output,
        Poll::Pending => panic!("the benchmarked futures never wait"),
    }
}

/// One step by hand: the node's three steps, then the update applied.
async fn step_by_hand<N: Node<Counter>>(
    node: &N,
    counter: &mut Counter,
    context: &Context<'_>,
) -> &'static str {
    let prep = node.prep(counter, context).await.unwrap();
    let exec = node.exec(&prep).await.unwrap();
    let command = node.post(counter, prep, exec, context).await.unwrap();
    counter.apply(command.update);
    command.action
}

/// The median time of one call of `run`, over `samples` samples of `iterations` calls each.
fn median(samples: usize, iterations: u32, mut run: impl FnMut()) -> Duration {
    let mut times: Vec<Duration> = (0..samples)
        .map(|_| {
            let start = Instant::now();
            for _ in 0..iterations {
                run();
            }
            start.elapsed() / iterations
        })
        .collect();
    times.sort();
    times[samples / 2]
}

fn report(name: &str, steps: u32, flow: Duration, by_hand: Duration) {
    let per_step = |time: Duration| time.as_secs_f64() * 1e9 / f64::from(steps);
    println!(
        "{name:<28} flow {:>8.2} ns/step   hand-written {:>8.2} ns/step   ratio {:>5.2}x",
        per_step(flow),
        per_step(by_hand),
        flow.as_secs_f64() / by_hand.as_secs_f64()
    );
}

fn chain_of_100() {
    let chain = support::chain_of_100();
    let nodes: Vec<Noop> = (0..100).map(|_| Noop).collect();
    let params = Params::new();
    let flow = median(21, 200, || {
        let mut counter = Counter::default();
        black_box(ready(chain.run(&mut counter)).unwrap());
        assert_eq!(counter.steps, 100);
    });
    let by_hand = median(21, 200, || {
        let mut counter = Counter::default();
        for (index, node) in nodes.iter().enumerate() {
            let context = Context::new(&params, "noop", index as u64 + 1);
            black_box(ready(step_by_hand(node, &mut counter, &context)));
        }
        assert_eq!(counter.steps, 100);
    });
    report("chain of 100 no-op nodes", 100, flow, by_hand);
    let checked = median(21, 200, || {
        let mut counter = Counter::default();
        let at = At::default();
        let ended = ready(checked_chain_by_hand(&nodes, &params, &mut counter, &at));
        assert_eq!(black_box(ended).unwrap(), "default");
        assert_eq!(counter.steps, 100);
    });
    report("chain of 100, checked by hand", 100, flow, checked);
}

/// The chain as one `async fn` doing by hand what a run checks at each step, as
/// [`checked_loop_by_hand`] does for the loop: the step limit, where the run is, the context with
/// the limit, errors named, the action checked, and the next node looked up by action.
async fn checked_chain_by_hand(
    nodes: &[Noop],
    params: &Params,
    counter: &mut Counter,
    at: &At,
) -> Result<&'static str, Box<Error>> {
    let max_steps = 10_000;
    let mut position = 0;
    loop {
        let step = at.step.get();
        if step >= max_steps {
            return Err(Box::new(Error::StepLimit {
                limit: max_steps,
                node: "noop",
                step: step + 1,
            }));
        }
        at.node.set("noop");
        at.step.set(step + 1);
        let context = Context::new(params, "noop", step + 1).with_max_steps(max_steps);
        let action = checked_step(&nodes[position], counter, &context, at).await?;
        position = match action {
            "default" if position + 1 < nodes.len() => position + 1,
            _ => return Ok(action),
        };
    }
}

fn loop_of_10_000() {
    let (count, bounce) = (Noop, Bounce);
    let cycle = flow! {
        count >> bounce;
        bounce - "again" >> count;
    };
    let params = Params::new();
    let flow = median(15, 5, || {
        let mut counter = Counter::default();
        black_box(ready(cycle.run(&mut counter)).unwrap());
        assert_eq!(counter.steps, LOOP_STEPS);
    });
    let (count, bounce) = (Noop, Bounce);
    let by_hand = median(15, 5, || {
        let mut counter = Counter::default();
        let mut step = 0;
        loop {
            step += 1;
            ready(step_by_hand(
                &count,
                &mut counter,
                &Context::new(&params, "count", step),
            ));
            step += 1;
            let action = ready(step_by_hand(
                &bounce,
                &mut counter,
                &Context::new(&params, "bounce", step),
            ));
            if black_box(action) != "again" {
                break;
            }
        }
        assert_eq!(counter.steps, LOOP_STEPS);
    });
    report("2-node loop, 10,000 steps", LOOP_STEPS, flow, by_hand);
    let (count, bounce) = (Noop, Bounce);
    let async_loop = median(15, 5, || {
        let mut counter = Counter::default();
        ready(loop_by_hand(&count, &bounce, &params, &mut counter));
        assert_eq!(counter.steps, LOOP_STEPS);
    });
    report("2-node loop, one async fn", LOOP_STEPS, flow, async_loop);
    let (count, bounce) = (Noop, Bounce);
    let checked_loop = median(15, 5, || {
        let mut counter = Counter::default();
        let at = At::default();
        let ended = ready(checked_loop_by_hand(
            &count,
            &bounce,
            &params,
            &mut counter,
            &at,
        ));
        assert_eq!(black_box(ended).unwrap(), "done");
        assert_eq!(counter.steps, LOOP_STEPS);
        assert_eq!(at.step.get(), u64::from(LOOP_STEPS));
    });
    report(
        "2-node loop, checked by hand",
        LOOP_STEPS,
        flow,
        checked_loop,
    );
}

/// Where a hand-written run is, as a run records it for the error of a node that panics: the
/// node, its step and its phase.
struct At {
    node: Cell<&'static str>,
    step: Cell<u64>,
    phase: Cell<Phase>,
}

impl Default for At {
    fn default() -> Self {
        Self {
            node: Cell::new(""),
            step: Cell::new(0),
            phase: Cell::new(Phase::Prep),
        }
    }
}

/// The 2-node loop as one `async fn` that does by hand the work a run does at each step, beside
/// calling the node: the step limit checked, where the run is recorded (for a panic's error),
/// the context carrying the limit, errors returned rather than unwrapped, the action checked
/// against the node's, and the next node looked up by action. What this costs over
/// [`loop_by_hand`] is the price of that work, whoever writes it.
async fn checked_loop_by_hand(
    count: &Noop,
    bounce: &Bounce,
    params: &Params,
    counter: &mut Counter,
    at: &At,
) -> Result<&'static str, Box<Error>> {
    const NAMES: [&str; 2] = ["count", "bounce"];
    let max_steps = u64::from(LOOP_STEPS);
    let mut position = 0;
    loop {
        let name = NAMES[position];
        let step = at.step.get();
        if step >= max_steps {
            return Err(Box::new(Error::StepLimit {
                limit: max_steps,
                node: name,
                step: step + 1,
            }));
        }
        at.node.set(name);
        at.step.set(step + 1);
        let context = Context::new(params, name, step + 1).with_max_steps(max_steps);
        let action = if position == 0 {
            checked_step(count, counter, &context, at).await?
        } else {
            checked_step(bounce, counter, &context, at).await?
        };
        position = match (position, action) {
            (0, "default") => 1,
            (1, "again") => 0,
            _ => return Ok(action),
        };
    }
}

/// One step of [`checked_loop_by_hand`]: the node's steps with their phase recorded and their
/// errors named, the action checked, then the update applied.
async fn checked_step<N: Node<Counter>>(
    node: &N,
    counter: &mut Counter,
    context: &Context<'_>,
    at: &At,
) -> Result<&'static str, Box<Error>> {
    let failed = |phase, source| {
        Box::new(Error::NodeFailed {
            node: context.node(),
            step: context.step(),
            phase,
            attempts: 1,
            source,
        })
    };
    at.phase.set(Phase::Prep);
    let prep = node
        .prep(counter, context)
        .await
        .map_err(|source| failed(Phase::Prep, source))?;
    at.phase.set(Phase::Exec);
    let exec = node
        .exec(&prep)
        .await
        .map_err(|source| failed(Phase::Exec, source))?;
    at.phase.set(Phase::Post);
    let command = node
        .post(counter, prep, exec, context)
        .await
        .map_err(|source| failed(Phase::Post, source))?;
    if !N::ACTIONS.contains(&command.action) {
        return Err(Box::new(Error::UndeclaredAction {
            node: context.node(),
            step: context.step(),
            action: command.action,
            declared: N::ACTIONS,
        }));
    }
    at.phase.set(Phase::Apply);
    counter.apply(command.update);
    Ok(command.action)
}

/// The 2-node loop as one hand-written `async fn`, polled once: what a developer would write
/// without a flow. Its steps' futures live in its own, as a flow's do.
async fn loop_by_hand(count: &Noop, bounce: &Bounce, params: &Params, counter: &mut Counter) {
    let mut step = 0;
    loop {
        step += 1;
        step_by_hand(count, counter, &Context::new(params, "count", step)).await;
        step += 1;
        let action = step_by_hand(bounce, counter, &Context::new(params, "bounce", step)).await;
        if black_box(action) != "again" {
            break;
        }
    }
}

/// Counts node steps; allocates nothing.
struct CountSteps(std::sync::atomic::AtomicU64);

impl slateflow::Observer for CountSteps {
    fn on_event(&self, event: &slateflow::Event<'_>) {
        if let slateflow::Event::NodeFinished { .. } = event {
            self.0.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        }
    }
}

/// The 2-node loop with an observer that allocates nothing, against the same loop without one.
fn observed_loop() {
    let (count, bounce) = (Noop, Bounce);
    let cycle = flow! {
        count >> bounce;
        bounce - "again" >> count;
    };
    let counting = CountSteps(std::sync::atomic::AtomicU64::new(0));
    let plain = median(15, 5, || {
        let mut counter = Counter::default();
        black_box(ready(cycle.run(&mut counter)).unwrap());
    });
    let observed = median(15, 5, || {
        let mut counter = Counter::default();
        black_box(ready(cycle.observe(&counting).run(&mut counter)).unwrap());
    });
    assert!(counting.0.into_inner() >= u64::from(LOOP_STEPS));
    let per_step = |time: Duration| time.as_secs_f64() * 1e9 / f64::from(LOOP_STEPS);
    println!(
        "{:<28} observed {:>8.2} ns/step   plain {:>8.2} ns/step   ratio {:>5.2}x",
        "2-node loop with observer",
        per_step(observed),
        per_step(plain),
        observed.as_secs_f64() / plain.as_secs_f64()
    );
}

/// The size of a run's future: what a paused run keeps in memory.
fn future_sizes() {
    let single = Noop;
    let one_node = flow! { single; };
    let (n0, n1, n2, n3, n4, n5, n6, n7, n8, start) =
        (Noop, Noop, Noop, Noop, Noop, Noop, Noop, Noop, Noop, Noop);
    let fork = flow! { start >> [n0, n1, n2, n3, n4, n5, n6, n7]; };
    let chain = support::chain_of_100();
    let (branch, inner_node) = (Noop, Noop);
    let inner = flow! { inner_node; };
    let fork_with_flow = flow! { branch >> [inner, n8]; };
    let durable = fork_with_flow.durable(slateflow::checkpoint::MemoryStore::new());
    let params = Params::new();
    let context = Context::new(&params, "noop", 1);
    let mut counter = Counter::default();
    let by_hand = std::mem::size_of_val(&step_by_hand(&Noop, &mut counter, &context));
    let mut states: [Counter; 5] = Default::default();
    let [first, second, third, fourth, fifth] = &mut states;
    let sizes = [
        ("one node", std::mem::size_of_val(&one_node.run(first))),
        ("fork of 8", std::mem::size_of_val(&fork.run(second))),
        ("chain of 100", std::mem::size_of_val(&chain.run(third))),
        (
            "fork with a nested flow",
            std::mem::size_of_val(&fork_with_flow.run(fourth)),
        ),
        (
            "the same, durable",
            std::mem::size_of_val(&durable.start("t", fifth)),
        ),
    ];
    // Sizes are small: `u32` holds them, and `f64` holds a `u32` exactly.
    let as_f64 = |size: usize| f64::from(u32::try_from(size).unwrap_or(u32::MAX));
    for (name, size) in sizes {
        println!(
            "future of a run, {name:<24} {size:>6} B   one hand-written step {by_hand:>4} B   ratio {:>5.2}x",
            as_f64(size) / as_f64(by_hand)
        );
    }
}

/// Runs `variant` `runs` times and nothing else, for an instruction count:
/// `valgrind --tool=callgrind <bench binary> --bench count <variant> <runs>`; the count of `2n`
/// runs less that of `n` is `n` runs' steps (`runtime/benches/instructions.sh` does this for
/// every variant). The 2-node loop (`flow`, `checked`, `async`) takes 10,000 steps a run; the
/// chain of 100 (`chain`, `chain-checked`), 100.
fn count_instructions(variant: &str, runs: u32) {
    if variant.starts_with("chain") {
        let chain = support::chain_of_100();
        let nodes: Vec<Noop> = (0..100).map(|_| Noop).collect();
        let params = Params::new();
        for _ in 0..runs {
            let mut counter = Counter::default();
            if variant == "chain" {
                black_box(ready(chain.run(&mut counter)).unwrap());
            } else {
                let at = At::default();
                let ended = ready(checked_chain_by_hand(&nodes, &params, &mut counter, &at));
                black_box(ended.unwrap());
            }
            assert_eq!(counter.steps, 100);
        }
        return;
    }
    let (count, bounce) = (Noop, Bounce);
    let cycle = flow! {
        count >> bounce;
        bounce - "again" >> count;
    };
    let params = Params::new();
    let (count, bounce) = (Noop, Bounce);
    for _ in 0..runs {
        let mut counter = Counter::default();
        match variant {
            "flow" => {
                black_box(ready(cycle.run(&mut counter)).unwrap());
            }
            "checked" => {
                let at = At::default();
                let ended = ready(checked_loop_by_hand(
                    &count,
                    &bounce,
                    &params,
                    &mut counter,
                    &at,
                ));
                black_box(ended.unwrap());
            }
            "async" => ready(loop_by_hand(&count, &bounce, &params, &mut counter)),
            other => panic!("no variant `{other}`: flow, checked, async, chain or chain-checked"),
        }
        assert_eq!(counter.steps, LOOP_STEPS);
    }
}

fn main() {
    let arguments: Vec<String> = std::env::args().collect();
    if let [_, bench, count, variant, runs] = arguments.as_slice()
        && bench == "--bench"
        && count == "count"
    {
        count_instructions(variant, runs.parse().expect("a number of runs"));
        return;
    }
    // `cargo test --benches` runs this once as a smoke test; the figures need `cargo bench`.
    if std::env::args().any(|argument| argument == "--bench") {
        // `cargo bench --bench flow -- loop` runs only the scenarios whose name holds `loop`
        // (for a profiler: `valgrind --tool=callgrind <bench binary> --bench loop`).
        let filter = std::env::args()
            .skip(1)
            .find(|argument| !argument.starts_with("--"))
            .unwrap_or_default();
        let scenarios: [(&str, fn()); 4] = [
            ("chain", chain_of_100),
            ("loop", loop_of_10_000),
            ("observed", observed_loop),
            ("sizes", future_sizes),
        ];
        for (name, scenario) in scenarios {
            if name.contains(filter.as_str()) {
                scenario();
            }
        }
    } else {
        println!("flow benchmarks: run `cargo bench -p slateflow` for figures");
    }
}
