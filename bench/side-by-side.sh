#!/usr/bin/env bash
# One command: the same load shape against
#   (a) cometbft running its built-in kvstore app (txs of equal size, broadcast_tx_sync),
#   (b) clearnode on a single validator, and
#   (c) clearnode on the 4-validator process localnet,
# then bench/results/{kvstore,single,localnet}.json and bench/results/summary.md
# with the ratio of each to kvstore.
#
# Knobs (environment): DURATION seconds of load per run (30), LANES signing
# venues (8; bench/genesis.json has 8), ENTRIES per report (500), ACCOUNTS
# (1000), WINDOW uncommitted txs per lane (256), BLOCK_TIME (timeout_commit,
# 1s), RUNS ("kvstore single localnet"), SWEEP_RATES (offered tx/s for a
# throughput/latency-vs-load sweep on a single validator, e.g. "20 40 80 0";
# empty = no sweep), WORK (scratch dir, bench/work), BUILD (see below).
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"
DURATION="${DURATION:-30}"
LANES="${LANES:-8}"
ENTRIES="${ENTRIES:-500}"
ACCOUNTS="${ACCOUNTS:-1000}"
WINDOW="${WINDOW:-256}"
BLOCK_TIME="${BLOCK_TIME:-1s}"
RUNS="${RUNS-kvstore single localnet}"
SWEEP_RATES="${SWEEP_RATES:-}"
WORK="${WORK:-$ROOT/bench/work}"
RESULTS="$ROOT/bench/results"
COMETBFT="${COMETBFT:-$(command -v cometbft || echo "$HOME/go/bin/cometbft")}"
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$ROOT/target}"

# shellcheck source=bench/lib.sh
source "$ROOT/bench/lib.sh"
build_clearnode  # BUILD=release (default) or dev-opt3; see bench/lib.sh
mkdir -p "$RESULTS"

LOAD=(--lanes "$LANES" --entries-per-report "$ENTRIES" --accounts "$ACCOUNTS" --window "$WINDOW")

run_kvstore() {
    echo "== (a) cometbft kvstore"
    local home="$WORK/kvstore"
    rm -rf "$home"
    "$COMETBFT" init --home "$home" >/dev/null
    tune "$home/config/config.toml"
    spawn "$WORK/kvstore.log" "$COMETBFT" node --home "$home" --proxy_app=kvstore \
        --rpc.laddr tcp://127.0.0.1:28001 --p2p.laddr tcp://127.0.0.1:28000
    wait_rpc http://127.0.0.1:28001
    "$CLEARNODE" loadgen --target kvstore --rpc http://127.0.0.1:28001 "${LOAD[@]}" \
        --duration "$DURATION" --label kvstore --json "$RESULTS/kvstore.json"
    stop_last
}

start_single() {
    local home="$WORK/single"
    rm -rf "$home"
    "$CLEARNODE" init --home "$home" --template bench/genesis.json --chain-id clearnode-bench \
        --port-base 28100 --block-time "$BLOCK_TIME" >/dev/null
    tune "$home/cometbft/config/config.toml"
    spawn "$WORK/single.log" "$CLEARNODE" start --home "$home"
    wait_rpc http://127.0.0.1:28101
}

run_single() {
    echo "== (b) clearnode, single validator"
    start_single
    "$CLEARNODE" loadgen --home "$WORK/single" "${LOAD[@]}" --duration "$DURATION" \
        --label single-validator --json "$RESULTS/single.json"
    stop_last
}

run_localnet() {
    echo "== (c) clearnode, 4-validator process localnet"
    local dir="$WORK/localnet"
    rm -rf "$dir"
    "$CLEARNODE" localnet init --dir "$dir" --validators 4 --template bench/genesis.json \
        --port-base 28200 --block-time "$BLOCK_TIME" >/dev/null
    for node in "$dir"/node*; do tune "$node/cometbft/config/config.toml"; done
    spawn "$WORK/localnet.log" "$CLEARNODE" localnet start --dir "$dir"
    for i in 0 1 2 3; do wait_rpc "http://127.0.0.1:$((28201 + 10 * i))"; done
    "$CLEARNODE" loadgen --home "$dir/node0" --home "$dir/node1" --home "$dir/node2" \
        --home "$dir/node3" "${LOAD[@]}" --duration "$DURATION" \
        --label 4-validator-localnet --json "$RESULTS/localnet.json"
    stop_last
}

run_sweep() {
    echo "== sweep: offered load against a single validator (rates: $SWEEP_RATES)"
    start_single
    rm -f "$RESULTS"/sweep-*.json
    for rate in $SWEEP_RATES; do
        "$CLEARNODE" loadgen --home "$WORK/single" "${LOAD[@]}" --duration "$DURATION" \
            --rate "$rate" --label "sweep-$rate" --json "$RESULTS/sweep-$rate.json"
    done
    stop_last
}

mkdir -p "$WORK"
for run in $RUNS; do "run_$run"; done
[ -n "$SWEEP_RATES" ] && run_sweep

python3 bench/summarize.py "$RESULTS"
cat "$RESULTS/summary.md"
