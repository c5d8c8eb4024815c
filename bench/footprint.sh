#!/usr/bin/env bash
# Footprint, in one command:
#   1. a state of ACCOUNTS accounts (default 1,000,000; the engine benchmark's
#      fixture: 3 venues, 5 markets, a position per market) built into a real
#      RocksDB store: disk bytes per account;
#   2. a fresh process opening that store and loading the engine, as
#      `clearnode start` does on restart: time to open the store (what
#      serving reads alone would need) and to open and load the engine (when
#      the node serves and starts CometBFT), resident memory, table bytes per
#      column family;
#   3. with LATEST_ONLY=1, the latest version alone restored into a fresh
#      store (what pruning every older version would leave; needs several GB
#      of memory per million accounts);
#   4. a real single validator (small state) stopped with SIGTERM and started
#      again: time from `clearnode start` to gRPC answering and to its next
#      block, and its RSS.
# Writes bench/results/footprint.json.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"
ACCOUNTS="${ACCOUNTS:-1000000}"
WORK="${WORK:-$ROOT/bench/work}"
RESULTS="$ROOT/bench/results"
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$ROOT/target}"
mkdir -p "$WORK" "$RESULTS"

# BUILD=release (default) or dev-opt3, as in side-by-side.sh.
BUILD="${BUILD:-release}"
if [ "$BUILD" = dev-opt3 ]; then
    CARGO_PROFILE_DEV_OPT_LEVEL=3 nice -n 10 cargo build --locked -p clearnode --bin clearnode --example footprint
    OUT="$CARGO_TARGET_DIR/debug"
else
    nice -n 10 cargo build --release --locked -p clearnode --bin clearnode --example footprint
    OUT="$CARGO_TARGET_DIR/release"
fi
CLEARNODE="$OUT/clearnode"
FOOTPRINT="$OUT/examples/footprint"

echo "== building a store of $ACCOUNTS accounts"
rm -rf "$WORK/footprint"
BUILD_JSON="$("$FOOTPRINT" build "$WORK/footprint" "$ACCOUNTS")"
echo "$BUILD_JSON"
echo "== opening it and loading the engine in a fresh process"
LOAD_JSON="$("$FOOTPRINT" load "$WORK/footprint")"
echo "$LOAD_JSON"
LATEST_JSON=null
if [ "${LATEST_ONLY:-0}" = 1 ]; then
    echo "== the latest version alone, restored into a fresh store"
    rm -rf "$WORK/footprint-latest"
    LATEST_JSON="$("$FOOTPRINT" latest-only "$WORK/footprint" "$WORK/footprint-latest")"
    echo "$LATEST_JSON"
    rm -rf "$WORK/footprint-latest"
fi

echo "== restart to serving: a single validator"
HOME_DIR="$WORK/restart"
rm -rf "$HOME_DIR"
"$CLEARNODE" init --home "$HOME_DIR" --port-base 28300 --block-time 200ms >/dev/null
start_node() {
    setsid "$CLEARNODE" start --home "$HOME_DIR" >>"$WORK/restart.log" 2>&1 &
    NODE_PID=$!
}
serving() { "$CLEARNODE" query system --home "$HOME_DIR" >/dev/null 2>&1; }
height() {
    curl -s http://127.0.0.1:28301/status 2>/dev/null |
        python3 -c 'import json, sys; print(json.load(sys.stdin)["result"]["sync_info"]["latest_block_height"])' 2>/dev/null ||
        echo 0
}
start_node
until serving; do sleep 0.1; done
"$CLEARNODE" loadgen --home "$HOME_DIR" --accounts 300 --entries-per-report 100 --duration 5 --quiet >/dev/null
NODE_RSS_KIB="$(awk '/VmRSS/ {print $2}' "/proc/$NODE_PID/status")"
STOPPED_HEIGHT="$(height)"
kill -TERM "$NODE_PID"
while kill -0 "$NODE_PID" 2>/dev/null; do sleep 0.1; done
STARTED_NS="$(date +%s%N)"
start_node
until serving; do sleep 0.05; done
RESTART_MS="$(( ($(date +%s%N) - STARTED_NS) / 1000000 ))"
until [ "$(height)" -gt "$STOPPED_HEIGHT" ]; do sleep 0.05; done
BLOCK_MS="$(( ($(date +%s%N) - STARTED_NS) / 1000000 ))"
kill -TERM -- "-$NODE_PID"
while kill -0 "$NODE_PID" 2>/dev/null; do sleep 0.1; done
echo "restart to serving: ${RESTART_MS} ms; to the next block: ${BLOCK_MS} ms; node RSS under load: ${NODE_RSS_KIB} KiB"

python3 - "$BUILD_JSON" "$LOAD_JSON" "$RESTART_MS" "$NODE_RSS_KIB" "$RESULTS/footprint.json" "$LATEST_JSON" "$BLOCK_MS" <<'EOF'
import json, sys
build, load = json.loads(sys.argv[1]), json.loads(sys.argv[2])
result = {
    "state": build,
    "load": load,
    "latest_version_only": json.loads(sys.argv[6]),
    "single_validator_small_state": {
        "restart_to_serving_ms": int(sys.argv[3]),
        "restart_to_next_block_ms": int(sys.argv[7]),
        "rss_bytes_under_load": int(sys.argv[4]) * 1024,
        "accounts": 300,
    },
}
open(sys.argv[5], "w").write(json.dumps(result, indent=2) + "\n")
print(json.dumps(result, indent=2))
EOF
