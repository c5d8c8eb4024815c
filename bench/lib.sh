# Shared by the bench scripts (source it from the repository root):
# building clearnode, CometBFT tuning, process groups, waiting for blocks.
# Expects ROOT, BLOCK_TIME and CARGO_TARGET_DIR to be set.

# BUILD=release (default), or BUILD=dev-opt3: the dev profile with the
# workspace crates at opt-level 3 (dependencies stay at the dev profile's
# opt-level 2), which reuses a warm dev target dir instead of building
# RocksDB again in release (15-30 min on 2 cores). Sets CLEARNODE; a
# CLEARNODE given in the environment is used as is (A/B of two binaries).
build_clearnode() {
    BUILD="${BUILD:-release}"
    if [ -n "${CLEARNODE:-}" ]; then
        echo "== using $CLEARNODE"
        return 0
    fi
    echo "== building clearnode ($BUILD)"
    if [ "$BUILD" = dev-opt3 ]; then
        CARGO_PROFILE_DEV_OPT_LEVEL=3 nice -n 10 cargo build --locked -p clearnode
        CLEARNODE="$CARGO_TARGET_DIR/debug/clearnode"
    else
        nice -n 10 cargo build --release --locked -p clearnode
        CLEARNODE="$CARGO_TARGET_DIR/release/clearnode"
    fi
}

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
    python3 - "$1" "$BLOCK_TIME" <<'PY'
import sys
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
PY
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
