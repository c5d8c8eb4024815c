#!/usr/bin/env bash
# A flamegraph of one engine benchmark, in one command:
#   BENCH=margin_sweep ACCOUNTS=50000 bash bench/flamegraph.sh
# builds the engine benches (the dev profile at opt-level 3, with symbols),
# samples the chosen criterion bench with perf (DWARF call graphs) and draws
# bench/results/flame-$BENCH.svg with inferno. Installs perf (apt) and
# inferno (cargo) when missing.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"
BENCH="${BENCH:-margin_sweep}"
ACCOUNTS="${ACCOUNTS:-50000}"
SECONDS_MEASURED="${SECONDS_MEASURED:-5}"
# Samples per second: DWARF stacks are large, keep the file small.
FREQUENCY="${FREQUENCY:-200}"
RESULTS="$ROOT/bench/results"
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$ROOT/target}"
mkdir -p "$RESULTS"

if ! command -v perf >/dev/null; then
    apt-get update -qq && apt-get install -y -qq linux-perf
fi
INFERNO_VERSION=0.12.3
if ! command -v inferno-flamegraph >/dev/null; then
    cargo install --locked inferno --version "$INFERNO_VERSION"
fi
export PATH="$HOME/.cargo/bin:$PATH"

CARGO_PROFILE_DEV_OPT_LEVEL=3 nice -n 10 cargo build --locked -p clearnode-engine --features testkit --benches
binary="$(ls -t "$CARGO_TARGET_DIR"/debug/deps/engine_at_scale-* | grep -v '\.d$' | head -1)"

data="$(mktemp --suffix .perf)"
trap 'rm -f "$data"' EXIT
CLEARNODE_BENCH_ACCOUNTS="$ACCOUNTS" perf record --call-graph dwarf,16384 -F "$FREQUENCY" -o "$data" \
    "$binary" --bench --warm-up-time 1 --measurement-time "$SECONDS_MEASURED" "$BENCH"
out="$RESULTS/flame-$BENCH.svg"
perf script -i "$data" 2>/dev/null | inferno-collapse-perf \
    | inferno-flamegraph --minwidth 0.2 \
        --title "engine_at_scale/$BENCH, $ACCOUNTS accounts ($(git rev-parse --short HEAD))" >"$out"
echo "wrote $out"
