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

# BUILD=release (default), or BUILD=dev-opt3: the dev profile with the
# workspace crates at opt-level 3 (dependencies stay at the dev profile's
# opt-level 2), which reuses a warm dev target dir instead of building
# RocksDB again in release (15-30 min on 2 cores).
BUILD="${BUILD:-release}"
echo "== building clearnode ($BUILD)"
if [ "$BUILD" = dev-opt3 ]; then
    CARGO_PROFILE_DEV_OPT_LEVEL=3 nice -n 10 cargo build --locked -p clearnode
    CLEARNODE="$CARGO_TARGET_DIR/debug/clearnode"
else
    nice -n 10 cargo build --release --locked -p clearnode
    CLEARNODE="$CARGO_TARGET_DIR/release/clearnode"
fi
mkdir -p "$RESULTS"

PIDS=()
cleanup() {
    for pid in "${PIDS[@]:-}"; do
        [ -n "$pid" ] && kill -TERM -- "-$pid" 2>/dev/null || true
    done
}
trap cleanup EXIT

# The same CometBFT tuning for every run: a mempool deep enough for
# LANES*WINDOW txs, faster p2p for block parts, the bench's block time.
tune() {
    python3 - "$1" "$BLOCK_TIME" <<'EOF'
import re, sys
path, block_time = sys.argv[1], sys.argv[2]
text = open(path).read()
settings = {
    "consensus": {"timeout_commit": f'"{block_time}"'},
    "mempool": {"size": "50000", "cache_size": "100000", "max_txs_bytes": "4294967296"},
    "p2p": {"send_rate": "104857600", "recv_rate": "104857600",
            "max_packet_msg_payload_size": "10240"},
}
section, out = "", []
for line in text.splitlines():
    stripped = line.strip()
    if stripped.startswith("[") and stripped.endswith("]"):
        section = stripped.strip("[]")
    key = stripped.split("=", 1)[0].strip() if "=" in stripped and not stripped.startswith("#") else None
    if key and key in settings.get(section, {}):
        line = f"{key} = {settings[section][key]}"
    out.append(line)
open(path, "w").write("\n".join(out) + "\n")
EOF
}

# Starts a command in its own process group; remembers the group.
spawn() {
    local log="$1"
    shift
    setsid "$@" >"$log" 2>&1 &
    PIDS+=("$!")
}

stop_last() {
    local pid="${PIDS[-1]}"
    kill -TERM -- "-$pid" 2>/dev/null || true
    for _ in $(seq 1 100); do
        kill -0 "$pid" 2>/dev/null || break
        sleep 0.2
    done
    kill -KILL -- "-$pid" 2>/dev/null || true
    unset 'PIDS[-1]'
}

wait_rpc() {
    for _ in $(seq 1 300); do
        if curl -sf "$1/status" | grep -Eq '"latest_block_height": ?"[1-9]'; then return 0; fi
        sleep 0.2
    done
    echo "no blocks at $1" >&2
    return 1
}

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
