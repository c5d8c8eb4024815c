#!/usr/bin/env bash
# A/B of one build against another on a single validator: the side-by-side
# load shape (8 lanes, 500 entries, window 256) with CometBFT tuned the same
# way, printing committed tx/s and the clearnode process CPU seconds per
# committed tx (user + sys from /proc, robust on a shared machine where
# wall-clock throughput is noisy) and the FinalizeBlock / store prepare /
# Commit / CheckTx time sums from the metrics endpoint.
# Usage: C=path/to/clearnode LABEL=name DUR=20 bash bench/single-cpu.sh
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$PWD/target}"
DUR=${DUR:-20}; LABEL=${LABEL:-x}
OUT="${OUT:-bench/work}"; mkdir -p "$OUT"
C=${C:-$CARGO_TARGET_DIR/debug/clearnode}
home=bench/work/single
rm -rf $home
$C init --home $home --template bench/genesis.json --chain-id clearnode-bench --port-base 28100 --block-time 1s >/dev/null
python3 - $home/cometbft/config/config.toml <<'PY'
import sys
p=sys.argv[1]; t=open(p).read()
S={"consensus":{"timeout_commit":'"1s"'},"mempool":{"size":"50000","cache_size":"100000","max_txs_bytes":"4294967296"}}
sec="";out=[]
for l in t.splitlines():
    s=l.strip()
    if s.startswith("[") and s.endswith("]"): sec=s.strip("[]")
    k=s.split("=",1)[0].strip() if "=" in s and not s.startswith("#") else None
    if k and k in S.get(sec,{}): l=f"{k} = {S[sec][k]}"
    out.append(l)
open(p,"w").write("\n".join(out)+"\n")
PY
CLEARNODE_LOG=info,tendermint_abci=warn,clearnode_store=debug setsid $C start --home $home > $OUT/node-$LABEL.log 2>&1 &
NODE=$!
for i in $(seq 1 300); do curl -sf http://127.0.0.1:28101/status | grep -Eq '"latest_block_height": ?"[1-9]' && break; sleep 0.2; done
$C loadgen --home $home --lanes 8 --entries-per-report 500 --accounts 1000 --window 256 --duration 2 --label warm --json $OUT/warm.json >/dev/null 2>&1
cpu() { awk '{print $14+$15}' /proc/$NODE/stat; }
c0=$(cpu); l0=$(cut -d' ' -f1 /proc/loadavg)
$C loadgen --home $home --lanes 8 --entries-per-report 500 --accounts 1000 --window 256 --duration $DUR --label $LABEL --json $OUT/$LABEL.json > $OUT/lg-$LABEL.log 2>&1
c1=$(cpu); l1=$(cut -d' ' -f1 /proc/loadavg)
curl -s http://127.0.0.1:28104/metrics > $OUT/metrics-$LABEL.txt || true
cat $OUT/metrics-$LABEL.txt | grep -E "^clearnode_(finalize_block|commit|store_prepare|check_tx)_seconds_(sum|count)" | awk '{a[$1]=$2} END {for (k in a) print k, a[k]}' | sort | paste -sd' ' | sed 's/clearnode_//g' || true
kill -TERM -- -$NODE 2>/dev/null || true
sleep 2; kill -KILL -- -$NODE 2>/dev/null || true
python3 - $OUT/$LABEL.json $c0 $c1 $l0 $l1 <<'PY'
import json,sys
d=json.load(open(sys.argv[1])); c=(int(sys.argv[3])-int(sys.argv[2]))/100
n=d['committed_txs']
print(f"{d['label']}: committed {d['committed_tx_per_s']} tx/s ({d['committed_position_updates_per_s']:.0f} upd/s) blocks {d['blocks']} interval {d['mean_block_interval_ms']}ms p99 {d['latency']['p99_ms']}ms; app cpu {c:.1f}s for {n} txs = {1000*c/max(n,1):.1f} ms/tx; load {sys.argv[4]}->{sys.argv[5]}")
PY
