#!/usr/bin/env bash
# Instructions per step, branch and item, counted by callgrind (repeatable on a busy machine),
# for the three ratios the runtime is held to: a step of a chain or loop against the checked
# hand-written loop (target 1.5x), a fork branch against `join_all` and a batch item against a
# buffered `join_all` (target 2x). Each variant runs n times and 2n times; the difference is n
# runs' work. Run from the repository's root; it builds the benches first.
set -euo pipefail
cargo bench -p slateflow --bench flow --bench parallel --no-run >/dev/null 2>&1
binary() { ls -t "target/release/deps/$1"-* | grep -v '\.d$' | head -n 1; }
flow=${FLOW_BENCH:-$(binary flow)}
parallel=${PARALLEL_BENCH:-$(binary parallel)}
count() { # binary variant runs
    local out
    out=$(mktemp)
    valgrind --tool=callgrind --callgrind-out-file="$out" "$1" --bench count "$2" "$3" 2>&1 \
        | grep -o 'Collected : [0-9]*' | grep -o '[0-9]*'
    rm -f "$out"
}
per() { # binary variant runs units-per-run
    local one two
    one=$(count "$1" "$2" "$3")
    two=$(count "$1" "$2" $(( $3 * 2 )))
    echo $(( (two - one) / ($3 * $4) ))
}
ratio() { awk -v a="$1" -v b="$2" 'BEGIN { printf "%.2fx", a / b }'; }
loop=$(per "$flow" flow 1 10000)
loop_checked=$(per "$flow" checked 1 10000)
loop_async=$(per "$flow" async 1 10000)
chain=$(per "$flow" chain 100 100)
chain_checked=$(per "$flow" chain-checked 100 100)
fork=$(per "$parallel" fork 1 8000)
fork_hand=$(per "$parallel" fork-by-hand 1 8000)
batch=$(per "$parallel" batch 2 1000)
batch_hand=$(per "$parallel" batch-by-hand 2 1000)
echo "2-node loop, a step:   flow $loop, checked by hand $loop_checked ($(ratio "$loop" "$loop_checked")), one async fn $loop_async ($(ratio "$loop" "$loop_async"))"
echo "chain of 100, a step:  flow $chain, checked by hand $chain_checked ($(ratio "$chain" "$chain_checked"))"
echo "fork of 8, a branch:   flow $fork, join_all $fork_hand ($(ratio "$fork" "$fork_hand"))"
echo "batch, an item:        flow $batch, buffered join_all $batch_hand ($(ratio "$batch" "$batch_hand"))"
