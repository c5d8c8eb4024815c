#!/usr/bin/env bash
# One command: audit reads under load (issue 7 item 6). On one single
# validator, back to back in the same minutes:
#   load            the side-by-side report load (item 2) alone;
#   load+reads      the same load with AUDIT_READERS auditors asking
#                   GetSystemRisk with a proof at AUDIT_RATE queries/s together;
#   reads           the auditors at AUDIT_RATE alone (no report load);
#   load+reads-max  the load with the auditors asking as fast as answered;
#   reads-max       the auditors as fast as answered, alone;
# then bench/results/audit-under-load.json (every phase's loadgen figures,
# the node's CPU seconds, the load average) and a table on stdout.
#
# Knobs (environment): AUDIT_READERS (16), AUDIT_RATE (5000, the target),
# AUDIT_VERIFY_EVERY (verify one proof in this many answers, 100), ROUNDS
# (times the phases are repeated, 1), DURATION seconds per phase (20), LANES
# (8), ENTRIES (500), ACCOUNTS (1000), WINDOW (256), BLOCK_TIME (1s),
# PHASES ("load load+reads reads load+reads-max reads-max"), WORK (bench/work), BUILD (release or
# dev-opt3, see bench/lib.sh; or CLEARNODE=path/to/binary), PORT_BASE (28400),
# OUT (bench/results/audit-under-load.json).
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"
AUDIT_READERS="${AUDIT_READERS:-16}"
AUDIT_RATE="${AUDIT_RATE:-5000}"
AUDIT_VERIFY_EVERY="${AUDIT_VERIFY_EVERY:-100}"
ROUNDS="${ROUNDS:-1}"
DURATION="${DURATION:-20}"
LANES="${LANES:-8}"
ENTRIES="${ENTRIES:-500}"
ACCOUNTS="${ACCOUNTS:-1000}"
WINDOW="${WINDOW:-256}"
BLOCK_TIME="${BLOCK_TIME:-1s}"
PHASES="${PHASES:-load load+reads reads load+reads-max reads-max}"
WORK="${WORK:-$ROOT/bench/work}"
PORT_BASE="${PORT_BASE:-28400}"
RESULTS="$ROOT/bench/results"
OUT="${OUT:-$RESULTS/audit-under-load.json}"
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$ROOT/target}"

# shellcheck source=bench/lib.sh
source "$ROOT/bench/lib.sh"
build_clearnode
mkdir -p "$RESULTS" "$WORK/audit"

home="$WORK/audit/single"
rm -rf "$home"
"$CLEARNODE" init --home "$home" --template bench/genesis.json --chain-id clearnode-bench \
    --port-base "$PORT_BASE" --block-time "$BLOCK_TIME" >/dev/null
tune "$home/cometbft/config/config.toml"
spawn "$WORK/audit/node.log" "$CLEARNODE" start --home "$home"
wait_rpc "http://127.0.0.1:$((PORT_BASE + 1))"
# setsid execs the node in place: the spawned pid is the clearnode process
# (its cometbft child's CPU is not counted).
node_pid="${PIDS[-1]}"
node_cpu() { awk '{print $14 + $15}' "/proc/$node_pid/stat"; }

LOAD=(--entries-per-report "$ENTRIES" --accounts "$ACCOUNTS" --window "$WINDOW")
echo "== setting up $ACCOUNTS accounts (a short warm-up load)"
"$CLEARNODE" loadgen --home "$home" --lanes "$LANES" "${LOAD[@]}" --duration 3 --quiet \
    --label warm-up --json "$WORK/audit/warm-up.json" >/dev/null

READERS=(--audit-readers "$AUDIT_READERS" --audit-verify-every "$AUDIT_VERIFY_EVERY")

# One phase: its loadgen figures, the CPU seconds of the node and of the
# load generator (the shell's reaped children, from `times`), the load average.
run_phase() {
    local phase="$1" label="$2" args
    case "$phase" in
        load) args=(--lanes "$LANES") ;;
        load+reads) args=(--lanes "$LANES" "${READERS[@]}" --audit-rate "$AUDIT_RATE") ;;
        reads) args=(--lanes 0 "${READERS[@]}" --audit-rate "$AUDIT_RATE") ;;
        load+reads-max) args=(--lanes "$LANES" "${READERS[@]}") ;;
        reads-max) args=(--lanes 0 "${READERS[@]}") ;;
        *) echo "unknown phase $phase" >&2; exit 2 ;;
    esac
    echo "== $label"
    local cpu_before load_before
    cpu_before="$(node_cpu)"
    load_before="$(cut -d' ' -f1-3 /proc/loadavg)"
    times >"$WORK/audit/$label.times-before"
    "$CLEARNODE" loadgen --home "$home" "${args[@]}" "${LOAD[@]}" --duration "$DURATION" \
        --label "$label" --json "$WORK/audit/$label.json"
    times >"$WORK/audit/$label.times-after"
    printf '{"node_cpu_ticks": %s, "load_average_before": "%s", "load_average_after": "%s"}\n' \
        "$(($(node_cpu) - cpu_before))" "$load_before" "$(cut -d' ' -f1-3 /proc/loadavg)" \
        >"$WORK/audit/$label.host.json"
}

RUN_LABELS=()
for round in $(seq 1 "$ROUNDS"); do
    for phase in $PHASES; do
        label="$phase"
        [ "$ROUNDS" -gt 1 ] && label="$phase#$round"
        RUN_LABELS+=("$label")
        run_phase "$phase" "$label"
    done
done
stop_last

python3 - "$WORK/audit" "$OUT" "${RUN_LABELS[*]}" "$BUILD" <<'PY'
import json, os, subprocess, sys
from datetime import datetime, timezone
work, out, phases, build = sys.argv[1], sys.argv[2], sys.argv[3].split(), sys.argv[4]
ticks = os.sysconf("SC_CLK_TCK")

def children_cpu_s(path):
    # The second line of `times`: the children's user and system time, e.g. "0m1.250s 0m0.310s".
    total = 0.0
    for field in open(path).read().splitlines()[1].split():
        minutes, seconds = field.rstrip("s").split("m")
        total += int(minutes) * 60 + float(seconds)
    return total

runs = []
for phase in phases:
    run = json.load(open(os.path.join(work, f"{phase}.json")))
    host = json.load(open(os.path.join(work, f"{phase}.host.json")))
    run["node_cpu_s"] = round(host["node_cpu_ticks"] / ticks, 2)
    run["loadgen_cpu_s"] = round(children_cpu_s(os.path.join(work, f"{phase}.times-after"))
                                 - children_cpu_s(os.path.join(work, f"{phase}.times-before")), 2)
    run["load_average_before"] = host["load_average_before"]
    run["load_average_after"] = host["load_average_after"]
    runs.append(run)
try:
    commit = subprocess.check_output(["git", "rev-parse", "--short", "HEAD"], text=True).strip()
except (OSError, subprocess.CalledProcessError):
    commit = "unknown"
summary = {
    "date": datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
    "commit": commit,
    "build": build,
    "cores": os.cpu_count(),
    "target": {"p99_ms_max": 5.0, "queries_per_s_min": 5000},
    "runs": runs,
}
with open(out, "w") as f:
    json.dump(summary, f, indent=2)
    f.write("\n")
print(f"\naudit reads under load ({summary['date']}, commit {commit}, {build}):\n")
print("| phase | committed tx/s | ms/block | report p99 ms | offered q/s | reads/s | read p50 ms | read p99 ms | read max ms | errors | proofs verified | node CPU s | loadgen CPU s | load avg |")
print("|---|---|---|---|---|---|---|---|---|---|---|---|---|---|")
for run in runs:
    reads = run.get("audit_reads") or {}
    cells = [run["label"], f'{run["committed_tx_per_s"]:.1f}', f'{run["mean_block_interval_ms"]:.0f}',
             f'{run["latency"]["p99_ms"]:.0f}' if run["lanes"] else "-"]
    if reads:
        cells += [f'{reads["rate_target"]:,}' if reads["rate_target"] else "max",
                  f'{reads["queries_per_s"]:,.0f}', f'{reads["p50_ms"]:.2f}', f'{reads["p99_ms"]:.2f}',
                  f'{reads["max_ms"]:.1f}', str(reads["errors"] + reads["malformed"] + reads["proofs_failed"]
                                               + reads["heights_not_matching_headers"]),
                  str(reads["proofs_verified"])]
    else:
        cells += ["-"] * 7
    cells += [f'{run["node_cpu_s"]:.1f}', f'{run["loadgen_cpu_s"]:.1f}', run["load_average_before"].split()[0]]
    print("| " + " | ".join(cells) + " |")
PY
