//! Forks and concurrent batches against hand-written `join_all` code doing the same work, and
//! the merge of a fork's branches on a state of 8 fields against one of 200.
//!
//! Run with `cargo bench -p slateflow`. Nothing here waits, so both sides are polled to completion
//! with a no-op waker (re-polled when a combinator yields), and the figures compare the runtime
//! with the hand-written code, not executors. Each figure is the median of several samples and
//! the ratio is taken within the same run, since the machines are shared and noisy.

use std::future::Future;
use std::hint::black_box;
use std::pin::pin;
use std::task::{Context as TaskContext, Poll, Waker};
use std::time::{Duration, Instant};

mod support;

use futures_util::future::join_all;
use slateflow::batch::{Batch, BatchNode};
use slateflow::{Command, Context, Node, NodeError, Params, SharedState, StateUpdate, flow};
use support::{Counter, CounterUpdate, Noop};

const ROUNDS: u32 = 1_000;
const BRANCHES: u32 = 8;
/// Steps of one round: the node before the fork, and the branches.
const ROUND_STEPS: u32 = BRANCHES + 1;

/// Sends the run back through the fork until `ROUNDS` rounds have run.
struct Again;

impl Node<Counter> for Again {
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
        let action = if steps < ROUNDS * ROUND_STEPS {
            "again"
        } else {
            "done"
        };
        Ok(Command::goto(action))
    }
}

/// Does nothing per item.
struct NoopItems;

impl BatchNode<Counter> for NoopItems {
    type Item = u64;
    type Output = u64;

    async fn prep(&self, _: &Counter, _: &Context<'_>) -> Result<Vec<u64>, NodeError> {
        Ok((0..ITEMS).collect())
    }

    async fn exec(&self, item: &u64) -> Result<u64, NodeError> {
        Ok(*item)
    }

    async fn post(
        &self,
        _: &Counter,
        _: Vec<u64>,
        outputs: Vec<u64>,
        _: &Context<'_>,
    ) -> Result<Command<Counter>, NodeError> {
        Ok(Command::new(
            Counter::update().add_steps(u32::try_from(outputs.len()).unwrap()),
        ))
    }
}

const ITEMS: u64 = 1_000;

/// Polls a future that never waits to its output (again when a combinator yields).
fn ready<F: Future>(future: F) -> F::Output {
    let mut future = pin!(future);
    let mut context = TaskContext::from_waker(Waker::noop());
    loop {
        if let Poll::Ready(output) = future.as_mut().poll(&mut context) {
            return output;
        }
    }
}

/// One node step on a shared borrow, by hand: its three steps, the update handed back.
async fn branch_by_hand<N: Node<Counter>>(
    node: &N,
    counter: &Counter,
    context: &Context<'_>,
) -> CounterUpdate {
    let prep = node.prep(counter, context).await.unwrap();
    let exec = node.exec(&prep).await.unwrap();
    node.post(counter, prep, exec, context)
        .await
        .unwrap()
        .update
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

fn report(name: &str, unit: &str, count: u32, ours: Duration, by_hand: Duration) {
    let per = |time: Duration| time.as_secs_f64() * 1e9 / f64::from(count);
    println!(
        "{name:<40} slateflow {:>8.2} ns/{unit}   join_all {:>8.2} ns/{unit}   ratio {:>5.2}x",
        per(ours),
        per(by_hand),
        ours.as_secs_f64() / by_hand.as_secs_f64()
    );
}

/// The fork flow: a node, eight branches, a node that sends the run back for `ROUNDS` rounds.
fn forks() -> slateflow::Flow<Counter, impl slateflow::flow::FlowGraph<Counter>> {
    let (before, again) = (Noop, Again);
    let (b0, b1, b2, b3, b4, b5, b6, b7) = (Noop, Noop, Noop, Noop, Noop, Noop, Noop, Noop);
    flow! {
        before >> [b0, b1, b2, b3, b4, b5, b6, b7] >> again;
        again - "again" >> before;
    }
    .with_max_steps(u64::MAX)
}

/// The same rounds by hand: the node, `join_all` over the branches' steps, the merge, the node.
fn forks_by_hand(params: &Params) {
    let (before, again) = (Noop, Again);
    let branches: Vec<Noop> = (0..BRANCHES).map(|_| Noop).collect();
    let mut counter = Counter::default();
    let mut step = 0;
    loop {
        step += 1;
        let context = Context::new(params, "before", step);
        let update = ready(branch_by_hand(&before, &counter, &context));
        counter.apply(update);
        let contexts: Vec<Context<'_>> = (0..u64::from(BRANCHES))
            .map(|branch| Context::new(params, "branch", step + branch + 1))
            .collect();
        step += u64::from(BRANCHES);
        let updates =
            ready(join_all(branches.iter().zip(&contexts).map(
                |(branch, context)| branch_by_hand(branch, &counter, context),
            )));
        let merged = updates
            .into_iter()
            .try_fold(CounterUpdate::default(), StateUpdate::merge)
            .unwrap();
        counter.apply(merged);
        step += 1;
        let context = Context::new(params, "again", step);
        let prep = ready(again.prep(&counter, &context)).unwrap();
        ready(again.exec(&prep)).unwrap();
        let command = ready(again.post(&counter, prep, (), &context)).unwrap();
        if black_box(command.action) != "again" {
            break;
        }
    }
    assert_eq!(counter.steps, ROUNDS * ROUND_STEPS);
}

fn fork_of_8() {
    let forks = forks();
    let ours = median(11, 3, || {
        let mut counter = Counter::default();
        black_box(ready(forks.run(&mut counter)).unwrap());
        assert_eq!(counter.steps, ROUNDS * ROUND_STEPS);
    });
    let params = Params::new();
    let by_hand = median(11, 3, || forks_by_hand(&params));
    report(
        "fork of 8 no-op branches, 1,000 rounds",
        "branch",
        ROUNDS * BRANCHES,
        ours,
        by_hand,
    );
}

/// The batch by hand: `prep`, `join_all` over every item's `exec` (a buffered stream with no
/// limit), `post`, the update applied.
fn batch_by_hand(params: &Params) {
    let node = NoopItems;
    let mut counter = Counter::default();
    let context = Context::new(params, "batch", 1);
    let items = ready(node.prep(&counter, &context)).unwrap();
    let outputs: Vec<u64> = ready(join_all(items.iter().map(|item| node.exec(item))))
        .into_iter()
        .collect::<Result<_, _>>()
        .unwrap();
    let command = ready(node.post(&counter, items, outputs, &context)).unwrap();
    counter.apply(command.update);
    assert_eq!(u64::from(counter.steps), ITEMS);
}

fn concurrent_batch_of_1000() {
    let batch = Batch::items(NoopItems).concurrent(usize::MAX);
    let flow = flow! { batch; };
    let ours = median(21, 20, || {
        let mut counter = Counter::default();
        black_box(ready(flow.run(&mut counter)).unwrap());
        assert_eq!(u64::from(counter.steps), ITEMS);
    });
    let params = Params::new();
    let by_hand = median(21, 20, || batch_by_hand(&params));
    report(
        "concurrent batch of 1,000 no-op items",
        "item",
        u32::try_from(ITEMS).unwrap(),
        ours,
        by_hand,
    );
}

/// A state of 8 fields, for the cost of merging a fork's branches.
#[derive(SharedState, Clone, Debug, Default, serde::Serialize, serde::Deserialize)]
struct Small {
    #[reducer(add)]
    a: u64,
    #[reducer(add)]
    b: u64,
    #[reducer(append)]
    log: Vec<u64>,
    #[reducer(append)]
    seen: Vec<u64>,
    x: Option<u64>,
    y: Option<u64>,
    z: u64,
    name: String,
}

macro_rules! wide_state {
    ($($add:ident)*; $($last:ident)*) => {
        /// A state of 200 fields, 100 of them `add` reducers: more reducer fields than one word of
        /// overwrite bits, and more fields than a fork's one-pass conflict check has bits for.
        #[derive(SharedState, Clone, Debug, Default, serde::Serialize, serde::Deserialize)]
        #[allow(dead_code)] // most fields are there to be many
        struct Wide {
            $(#[reducer(add)] $add: u64,)*
            $($last: Option<u64>,)*
        }
    };
}

wide_state! {
    a0 a1 a2 a3 a4 a5 a6 a7 a8 a9 a10 a11 a12 a13 a14 a15 a16 a17 a18 a19 a20 a21 a22 a23
    a24 a25 a26 a27 a28 a29 a30 a31 a32 a33 a34 a35 a36 a37 a38 a39 a40 a41 a42 a43 a44 a45
    a46 a47 a48 a49 a50 a51 a52 a53 a54 a55 a56 a57 a58 a59 a60 a61 a62 a63 a64 a65 a66 a67
    a68 a69 a70 a71 a72 a73 a74 a75 a76 a77 a78 a79 a80 a81 a82 a83 a84 a85 a86 a87 a88 a89
    a90 a91 a92 a93 a94 a95 a96 a97 a98 a99;
    w0 w1 w2 w3 w4 w5 w6 w7 w8 w9 w10 w11 w12 w13 w14 w15 w16 w17 w18 w19 w20 w21 w22 w23
    w24 w25 w26 w27 w28 w29 w30 w31 w32 w33 w34 w35 w36 w37 w38 w39 w40 w41 w42 w43 w44 w45
    w46 w47 w48 w49 w50 w51 w52 w53 w54 w55 w56 w57 w58 w59 w60 w61 w62 w63 w64 w65 w66 w67
    w68 w69 w70 w71 w72 w73 w74 w75 w76 w77 w78 w79 w80 w81 w82 w83 w84 w85 w86 w87 w88 w89
    w90 w91 w92 w93 w94 w95 w96 w97 w98 w99
}

#[slateflow::node]
fn small_left(_: &Small) -> Command<Small> {
    Command::new(Small::update().add_a(1).set_x(Some(1)))
}

#[slateflow::node]
fn small_right(_: &Small) -> Command<Small> {
    Command::new(Small::update().add_a(2).set_y(Some(2)))
}

#[slateflow::node]
fn wide_left(_: &Wide) -> Command<Wide> {
    Command::new(Wide::update().add_a0(1).add_a99(1).set_w0(Some(1)))
}

#[slateflow::node]
fn wide_right(_: &Wide) -> Command<Wide> {
    Command::new(Wide::update().add_a0(2).set_w99(Some(2)))
}

/// A fork of two branches whose updates are checked for conflicts and merged, on a state of 8
/// fields and on one of 200: what the merge costs as a state grows.
fn merge_by_width() {
    let (left, right) = (small_left, small_right);
    let small = flow! { [left, right]; };
    let (left, right) = (wide_left, wide_right);
    let wide = flow! { [left, right]; };
    let eight = median(21, 2_000, || {
        let mut state = Small::default();
        black_box(ready(small.run(&mut state)).unwrap());
        assert_eq!(state.a, 3);
    });
    let two_hundred = median(21, 2_000, || {
        let mut state = Wide::default();
        black_box(ready(wide.run(&mut state)).unwrap());
        assert_eq!(state.a0, 3);
    });
    println!(
        "{:<40} 200 fields {:>8.2} ns/fork   8 fields {:>8.2} ns/fork   ratio {:>5.2}x",
        "fork of 2 branches, merged",
        two_hundred.as_secs_f64() * 1e9,
        eight.as_secs_f64() * 1e9,
        two_hundred.as_secs_f64() / eight.as_secs_f64()
    );
}

/// Runs `variant` `runs` times and nothing else, for an instruction count (see
/// `runtime/benches/instructions.sh`): `fork` or `fork-by-hand` (8,000 branches a run), `batch`
/// or `batch-by-hand` (1,000 items a run), `merge-8` or `merge-200` (one fork of two branches a
/// run, on a state of 8 or 200 fields).
fn count_instructions(variant: &str, runs: u32) {
    let params = Params::new();
    let forks = forks();
    let batch = Batch::items(NoopItems).concurrent(usize::MAX);
    let batch = flow! { batch; };
    let (left, right) = (small_left, small_right);
    let small = flow! { [left, right]; };
    let (left, right) = (wide_left, wide_right);
    let wide = flow! { [left, right]; };
    for _ in 0..runs {
        let mut counter = Counter::default();
        match variant {
            "fork" => {
                black_box(ready(forks.run(&mut counter)).unwrap());
            }
            "fork-by-hand" => forks_by_hand(&params),
            "batch" => {
                black_box(ready(batch.run(&mut counter)).unwrap());
            }
            "batch-by-hand" => batch_by_hand(&params),
            "merge-8" => {
                black_box(ready(small.run(&mut Small::default())).unwrap());
            }
            "merge-200" => {
                black_box(ready(wide.run(&mut Wide::default())).unwrap());
            }
            other => panic!(
                "no variant `{other}`: fork, fork-by-hand, batch, batch-by-hand, merge-8 or \
                 merge-200"
            ),
        }
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
        // `cargo bench --bench parallel -- batch` runs only the scenarios whose name holds
        // `batch` (for a profiler: `valgrind --tool=callgrind <bench binary> --bench batch`).
        let filter = std::env::args()
            .skip(1)
            .find(|argument| !argument.starts_with("--"))
            .unwrap_or_default();
        let scenarios: [(&str, fn()); 3] = [
            ("fork", fork_of_8),
            ("batch", concurrent_batch_of_1000),
            ("merge", merge_by_width),
        ];
        for (name, scenario) in scenarios {
            if name.contains(filter.as_str()) {
                scenario();
            }
        }
    } else {
        println!("parallel benchmarks: run `cargo bench -p slateflow` for figures");
    }
}
