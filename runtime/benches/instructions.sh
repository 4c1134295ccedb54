#!/usr/bin/env bash
# Instructions per step of the 2-node loop, counted by callgrind (repeatable on a busy machine):
# each variant of `benches/flow.rs` runs once and twice, and the difference is one run's 10,000
# steps. Run from the repository's root after `cargo bench -p slateflow --bench flow --no-run`.
set -euo pipefail
bench=${FLOW_BENCH:-$(ls -t target/release/deps/flow-* | grep -v '\.d$' | head -n 1)}
count() {
    local out
    out=$(mktemp)
    valgrind --tool=callgrind --callgrind-out-file="$out" "$bench" --bench count "$1" "$2" \
        2>&1 | grep -o 'Collected : [0-9]*' | grep -o '[0-9]*'
    rm -f "$out"
}
for variant in flow checked async; do
    one=$(count "$variant" 1)
    two=$(count "$variant" 2)
    echo "$variant $(( (two - one) / 10000 ))"
done | awk '{ per[$1] = $2; print $1 ": " $2 " instructions a step" }
    END { printf "flow against checked: %.2fx; against async: %.2fx\n", per["flow"] / per["checked"], per["flow"] / per["async"] }'
