//! What the benchmarks share: a counter state, a no-op node and a 100-node chain of them; a
//! state that counts ticks to a limit, and its node; the median of timed calls. Each bench uses
//! part of it.
#![allow(dead_code)]

use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};
use slateflow::{Command, Context, Flow, Node, NodeError, SharedState, flow, node};

#[derive(SharedState, Clone, Debug, Default, Serialize, Deserialize)]
pub(crate) struct Counter {
    #[reducer(add)]
    pub(crate) steps: u32,
}

/// Does nothing but count its step.
pub(crate) struct Noop;

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

/// `n0 >> n1 >> ... >> n99`: a chain of 100 no-op nodes.
#[allow(clippy::too_many_lines)] // One `let` per node.
pub(crate) fn chain_of_100() -> Flow<Counter, impl slateflow::flow::FlowGraph<Counter>> {
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
    flow! { n0 >> n1 >> n2 >> n3 >> n4 >> n5 >> n6 >> n7 >> n8 >> n9 >> n10 >> n11 >> n12 >> n13 >> n14 >> n15 >> n16 >> n17 >> n18 >> n19 >> n20 >> n21 >> n22 >> n23 >> n24 >> n25 >> n26 >> n27 >> n28 >> n29 >> n30 >> n31 >> n32 >> n33 >> n34 >> n35 >> n36 >> n37 >> n38 >> n39 >> n40 >> n41 >> n42 >> n43 >> n44 >> n45 >> n46 >> n47 >> n48 >> n49 >> n50 >> n51 >> n52 >> n53 >> n54 >> n55 >> n56 >> n57 >> n58 >> n59 >> n60 >> n61 >> n62 >> n63 >> n64 >> n65 >> n66 >> n67 >> n68 >> n69 >> n70 >> n71 >> n72 >> n73 >> n74 >> n75 >> n76 >> n77 >> n78 >> n79 >> n80 >> n81 >> n82 >> n83 >> n84 >> n85 >> n86 >> n87 >> n88 >> n89 >> n90 >> n91 >> n92 >> n93 >> n94 >> n95 >> n96 >> n97 >> n98 >> n99; }
}

/// A long thread's state: a count, and where to stop.
#[derive(SharedState, Clone, Debug, Default, Serialize, Deserialize)]
pub(crate) struct Ticks {
    #[reducer(add)]
    pub(crate) ticks: u64,
    pub(crate) until: u64,
}

/// Counts a tick; `again` until `until` ticks.
#[node(actions = ["again", "done"])]
pub(crate) fn tick(ticks: &Ticks) -> Command<Ticks> {
    let action = if ticks.ticks + 1 < ticks.until {
        "again"
    } else {
        "done"
    };
    Command::new(Ticks::update().add_ticks(1)).with_action(action)
}

/// The median time of one call of `run`, over `samples` calls.
pub(crate) fn median(samples: usize, mut run: impl FnMut()) -> Duration {
    let mut times: Vec<Duration> = (0..samples)
        .map(|_| {
            let start = Instant::now();
            run();
            start.elapsed()
        })
        .collect();
    times.sort();
    times[samples / 2]
}
