#!/usr/bin/env python3
"""How compile time and memory grow with the size of a flow.

Generates a throw-away crate whose `main` wires a chain of N no-op nodes with `flow!`, builds it
once so that its dependencies are compiled, then for each N touches the source and times
`cargo build` of that crate alone (wall time, and the compiler's peak memory from
`/usr/bin/time -v` when present). Prints one line per N, with the time per node relative to the
smallest N: a flat ratio means linear growth, a rising one worse.

    python3 runtime/benches/compile_time.py            # 250 500 1000 2000
    python3 runtime/benches/compile_time.py 250 500    # other sizes

The crate lives in a temporary folder and depends on this workspace's `slateflow` by path.
"""

import os
import re
import shutil
import subprocess
import sys
import tempfile
import time

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def source(nodes: int) -> str:
    lets = "\n".join(f"    let n{i} = Noop;" for i in range(nodes))
    chain = " >> ".join(f"n{i}" for i in range(nodes))
    return f"""use serde::{{Deserialize, Serialize}};
use slateflow::{{Command, Context, Node, NodeError, SharedState, flow}};

#[derive(SharedState, Clone, Debug, Default, Serialize, Deserialize)]
struct Counter {{
    #[reducer(add)]
    steps: u32,
}}

struct Noop;

impl Node<Counter> for Noop {{
    type Prep = ();
    type Exec = ();

    async fn prep(&self, _: &Counter, _: &Context<'_>) -> Result<(), NodeError> {{
        Ok(())
    }}

    async fn exec(&self, (): &()) -> Result<(), NodeError> {{
        Ok(())
    }}

    async fn post(&self, _: &Counter, (): (), (): (), _: &Context<'_>) -> Result<Command<Counter>, NodeError> {{
        Ok(Command::new(Counter::update().add_steps(1)))
    }}
}}

fn main() {{
{lets}
    let flow = flow! {{ {chain}; }};
    let mut counter = Counter::default();
    flow.run_blocking(&mut counter).unwrap();
    assert_eq!(counter.steps, {nodes});
}}
"""


def build(crate: str, target: str) -> tuple[float, int | None]:
    """Builds the crate; returns the seconds and the peak memory in MB (if measurable)."""
    command = ["cargo", "build", "--quiet", "--manifest-path", os.path.join(crate, "Cargo.toml")]
    timer = shutil.which("time") or ("/usr/bin/time" if os.path.exists("/usr/bin/time") else None)
    if timer:
        command = [timer, "-v"] + command
    environment = dict(os.environ, CARGO_TARGET_DIR=target, CARGO_INCREMENTAL="0")
    start = time.monotonic()
    finished = subprocess.run(command, env=environment, capture_output=True, text=True)
    seconds = time.monotonic() - start
    if finished.returncode != 0:
        sys.exit(f"build failed:\n{finished.stderr[-4000:]}")
    peak = re.search(r"Maximum resident set size \(kbytes\): (\d+)", finished.stderr)
    return seconds, int(peak.group(1)) // 1024 if peak else None


def main() -> None:
    sizes = [int(argument) for argument in sys.argv[1:]] or [250, 500, 1000, 2000]
    with tempfile.TemporaryDirectory(prefix="slateflow-compile-time-") as folder:
        crate = os.path.join(folder, "crate")
        os.makedirs(os.path.join(crate, "src"))
        runtime = os.path.join(ROOT, "runtime")
        with open(os.path.join(crate, "Cargo.toml"), "w") as manifest:
            manifest.write(
                '[package]\nname = "flow-size"\nversion = "0.0.0"\nedition = "2024"\n\n'
                f'[dependencies]\nslateflow = {{ path = "{runtime}" }}\n'
                'serde = { version = "1", features = ["derive"] }\n\n[workspace]\n'
            )
        target = os.path.join(folder, "target")
        main_rs = os.path.join(crate, "src", "main.rs")
        with open(main_rs, "w") as file:
            file.write(source(1))
        build(crate, target)  # dependencies, once
        first = None
        for nodes in sizes:
            with open(main_rs, "w") as file:
                file.write(source(nodes))
            seconds, peak = build(crate, target)
            per_node = seconds / nodes
            first = first or per_node
            memory = f"{peak:>6} MB" if peak is not None else "     ? MB"
            print(
                f"{nodes:>5} nodes  {seconds:>7.1f} s  peak {memory}  "
                f"time per node {per_node / first:>5.2f}x that of {sizes[0]} nodes",
                flush=True,
            )


if __name__ == "__main__":
    main()
