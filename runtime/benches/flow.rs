//! Per-step overhead of a flow against a hand-written loop that calls the same node's steps.
//!
//! Run with `cargo bench -p slateflow`. Both sides poll their future with a no-op waker (nothing
//! here waits), so the figures compare the runtime with the loop, not executors. Each figure is
//! the median of several samples, and the ratio is taken within the same run: the machines are
//! shared and noisy, so absolute numbers vary, ratios much less.

use std::future::Future;
use std::hint::black_box;
use std::pin::pin;
use std::task::{Context as TaskContext, Poll, Waker};
use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};
use slateflow::{Command, Context, Node, NodeError, Params, SharedState, flow};

#[derive(SharedState, Debug, Default, Serialize, Deserialize)]
struct Counter {
    #[reducer(add)]
    steps: u32,
}

/// Does nothing but count its step.
struct Noop;

impl Node<Counter> for Noop {
    type Prep = ();
    type Exec = ();

    async fn prep(&self, _: &Counter, _: &Context<'_>) -> Result<(), NodeError> {
        Ok(())
    }

    async fn exec(&self, (): &()) -> Result<(), NodeError> {
        Ok(())
    }

    async fn post(
        &self,
        _: &Counter,
        (): (),
        (): (),
        _: &Context<'_>,
    ) -> Result<Command<Counter>, NodeError> {
        Ok(Command::new(Counter::update().add_steps(1)))
    }
}

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

#[allow(clippy::too_many_lines)] // One `let` per node of the 100-node chain.
fn chain_of_100() {
    let n0 = Noop;
    let n1 = Noop;
    let n2 = Noop;
    let n3 = Noop;
    let n4 = Noop;
    let n5 = Noop;
    let n6 = Noop;
    let n7 = Noop;
    let n8 = Noop;
    let n9 = Noop;
    let n10 = Noop;
    let n11 = Noop;
    let n12 = Noop;
    let n13 = Noop;
    let n14 = Noop;
    let n15 = Noop;
    let n16 = Noop;
    let n17 = Noop;
    let n18 = Noop;
    let n19 = Noop;
    let n20 = Noop;
    let n21 = Noop;
    let n22 = Noop;
    let n23 = Noop;
    let n24 = Noop;
    let n25 = Noop;
    let n26 = Noop;
    let n27 = Noop;
    let n28 = Noop;
    let n29 = Noop;
    let n30 = Noop;
    let n31 = Noop;
    let n32 = Noop;
    let n33 = Noop;
    let n34 = Noop;
    let n35 = Noop;
    let n36 = Noop;
    let n37 = Noop;
    let n38 = Noop;
    let n39 = Noop;
    let n40 = Noop;
    let n41 = Noop;
    let n42 = Noop;
    let n43 = Noop;
    let n44 = Noop;
    let n45 = Noop;
    let n46 = Noop;
    let n47 = Noop;
    let n48 = Noop;
    let n49 = Noop;
    let n50 = Noop;
    let n51 = Noop;
    let n52 = Noop;
    let n53 = Noop;
    let n54 = Noop;
    let n55 = Noop;
    let n56 = Noop;
    let n57 = Noop;
    let n58 = Noop;
    let n59 = Noop;
    let n60 = Noop;
    let n61 = Noop;
    let n62 = Noop;
    let n63 = Noop;
    let n64 = Noop;
    let n65 = Noop;
    let n66 = Noop;
    let n67 = Noop;
    let n68 = Noop;
    let n69 = Noop;
    let n70 = Noop;
    let n71 = Noop;
    let n72 = Noop;
    let n73 = Noop;
    let n74 = Noop;
    let n75 = Noop;
    let n76 = Noop;
    let n77 = Noop;
    let n78 = Noop;
    let n79 = Noop;
    let n80 = Noop;
    let n81 = Noop;
    let n82 = Noop;
    let n83 = Noop;
    let n84 = Noop;
    let n85 = Noop;
    let n86 = Noop;
    let n87 = Noop;
    let n88 = Noop;
    let n89 = Noop;
    let n90 = Noop;
    let n91 = Noop;
    let n92 = Noop;
    let n93 = Noop;
    let n94 = Noop;
    let n95 = Noop;
    let n96 = Noop;
    let n97 = Noop;
    let n98 = Noop;
    let n99 = Noop;
    let chain = flow! { n0 >> n1 >> n2 >> n3 >> n4 >> n5 >> n6 >> n7 >> n8 >> n9 >> n10 >> n11 >> n12 >> n13 >> n14 >> n15 >> n16 >> n17 >> n18 >> n19 >> n20 >> n21 >> n22 >> n23 >> n24 >> n25 >> n26 >> n27 >> n28 >> n29 >> n30 >> n31 >> n32 >> n33 >> n34 >> n35 >> n36 >> n37 >> n38 >> n39 >> n40 >> n41 >> n42 >> n43 >> n44 >> n45 >> n46 >> n47 >> n48 >> n49 >> n50 >> n51 >> n52 >> n53 >> n54 >> n55 >> n56 >> n57 >> n58 >> n59 >> n60 >> n61 >> n62 >> n63 >> n64 >> n65 >> n66 >> n67 >> n68 >> n69 >> n70 >> n71 >> n72 >> n73 >> n74 >> n75 >> n76 >> n77 >> n78 >> n79 >> n80 >> n81 >> n82 >> n83 >> n84 >> n85 >> n86 >> n87 >> n88 >> n89 >> n90 >> n91 >> n92 >> n93 >> n94 >> n95 >> n96 >> n97 >> n98 >> n99; };
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
}

fn main() {
    // `cargo test --benches` runs this once as a smoke test; the figures need `cargo bench`.
    if std::env::args().any(|argument| argument == "--bench") {
        chain_of_100();
        loop_of_10_000();
    } else {
        println!("flow benchmarks: run `cargo bench -p slateflow` for figures");
    }
}
