#!/usr/bin/env bash
# Smoke test of the docker-compose localnet, needing no registry: installs
# docker.io and docker-compose (apt-get) if missing, starts dockerd if none
# is running, builds clearnode on the host and an image FROM scratch holding
# it, cometbft, their shared libraries and a few /etc files, brings the
# localnet up, waits until all four validators commit and agree on the app
# hash and the demo venue's reports are in state, then brings it down
# (volumes included: the smoke run uses a project of its own).
#
#   bash localnet/docker-smoke.sh
#
# Not run by CI (it needs root and a docker daemon); see localnet/README.md.
set -euo pipefail
repo_root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$repo_root"

project=clearnode-smoke
image=clearnode-localnet:latest
validators=4
min_height=${SMOKE_MIN_HEIGHT:-10}
timeout_seconds=${SMOKE_TIMEOUT_SECONDS:-240}

say() { printf '\033[1mdocker-smoke:\033[0m %s\n' "$*" >&2; }
as_root() { if [[ $(id -u) -eq 0 ]]; then "$@"; else sudo "$@"; fi; }

# 1. Docker and compose.
missing=()
command -v dockerd >/dev/null || missing+=(docker.io)
command -v docker-compose >/dev/null || docker compose version >/dev/null 2>&1 || missing+=(docker-compose)
if ((${#missing[@]})); then
  say "installing ${missing[*]}"
  as_root apt-get update -qq
  as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${missing[@]}" >/dev/null
fi
if docker compose version >/dev/null 2>&1; then
  compose=(docker compose)
else
  compose=(docker-compose)
fi
compose+=(-p "$project" -f localnet/docker-compose.yml)

started_dockerd=""
if ! docker info >/dev/null 2>&1; then
  say "starting dockerd (log: /tmp/clearnode-dockerd.log)"
  if [[ $(id -u) -eq 0 ]]; then
    nohup dockerd >/tmp/clearnode-dockerd.log 2>&1 &
  else
    sudo nohup dockerd >/tmp/clearnode-dockerd.log 2>&1 &
  fi
  started_dockerd=$!
  for _ in $(seq 60); do docker info >/dev/null 2>&1 && break; sleep 1; done
  docker info >/dev/null 2>&1 || { say "dockerd did not start"; tail -20 /tmp/clearnode-dockerd.log; exit 1; }
fi

# 2. Host-built binaries.
source scripts/setup.sh
cargo build --locked -p clearnode
clearnode="$CARGO_TARGET_DIR/debug/clearnode"
cometbft="$(command -v cometbft)"

# 3. The image FROM scratch: binaries, the libraries ldd lists, /etc files.
context="$(mktemp -d /tmp/clearnode-image-XXXXXX)"
cleanup() {
  local status=$?
  if ((status != 0)); then
    say "failed; the last lines of every container:"
    "${compose[@]}" logs --tail=30 2>&1 || true
  fi
  say "down"
  "${compose[@]}" down -v --remove-orphans >/dev/null 2>&1 || true
  rm -rf "$context"
  if [[ -n "$started_dockerd" ]]; then
    say "stopping the dockerd this script started (pid $started_dockerd)"
    as_root kill "$started_dockerd" 2>/dev/null || true
    for _ in $(seq 30); do as_root kill -0 "$started_dockerd" 2>/dev/null || break; sleep 1; done
  fi
  exit "$status"
}
trap cleanup EXIT

rootfs="$context/rootfs"
mkdir -p "$rootfs/usr/local/bin" "$rootfs/etc" "$rootfs/tmp" "$rootfs/root"
chmod 1777 "$rootfs/tmp"
cp "$clearnode" "$cometbft" "$rootfs/usr/local/bin/"
for lib in $( (ldd "$clearnode"; ldd "$cometbft") | grep -o '/[^ ]*' | sort -u); do
  mkdir -p "$rootfs$(dirname "$lib")"
  cp -L "$lib" "$rootfs$lib"
done
echo 'root:x:0:0:root:/root:/usr/local/bin/clearnode' >"$rootfs/etc/passwd"
echo 'root:x:0:' >"$rootfs/etc/group"
echo 'hosts: files dns' >"$rootfs/etc/nsswitch.conf"
cp localnet/Dockerfile.scratch "$context/Dockerfile"
say "building $image FROM scratch ($(du -sh "$rootfs" | cut -f1))"
docker build -q -t "$image" "$context" >/dev/null

# 4. Up, from nothing.
"${compose[@]}" down -v --remove-orphans >/dev/null 2>&1 || true
say "up"
"${compose[@]}" up -d --no-build

rpc() { curl -fsS --max-time 3 "http://127.0.0.1:$((26601 + 10 * $1))/$2"; }
height() { rpc "$1" status 2>/dev/null | jq -r '.result.sync_info.latest_block_height' 2>/dev/null || echo 0; }

# 5. Every validator commits.
deadline=$((SECONDS + timeout_seconds))
while :; do
  heights=()
  lowest=""
  for i in $(seq 0 $((validators - 1))); do
    h=$(height "$i")
    [[ "$h" =~ ^[0-9]+$ ]] || h=0
    heights+=("node$i=$h")
    if [[ -z "$lowest" ]] || ((h < lowest)); then lowest=$h; fi
  done
  say "heights ${heights[*]}"
  ((lowest >= min_height)) && break
  ((SECONDS < deadline)) || { say "not every validator reached height $min_height in ${timeout_seconds}s"; exit 1; }
  sleep 3
done

# 6. They agree: the same app hash in every header from 2 to the lowest height.
for h in $(seq 2 "$lowest"); do
  first=""
  for i in $(seq 0 $((validators - 1))); do
    hash=$(rpc "$i" "header?height=$h" | jq -r '.result.header.app_hash')
    if [[ -z "$first" ]]; then
      first=$hash
    elif [[ "$hash" != "$first" ]]; then
      say "height $h: node$i has app hash $hash, node0 has $first"
      exit 1
    fi
  done
done
say "all $validators validators agree on the app hash of every block from 2 to $lowest (last: $first)"

# 7. The demo venue's reports are in state, as every validator reads it.
deadline=$((SECONDS + timeout_seconds))
while :; do
  in_state=0
  for i in $(seq 0 $((validators - 1))); do
    grpc="http://127.0.0.1:$((26603 + 10 * i))"
    system=$("$clearnode" query system --grpc "$grpc" --chain-id clearnode-localnet 2>/dev/null || true)
    # Positions exist only through venue reports: a nonzero gross notional is the venue's.
    gross=$(jq -r '.aggregate.gross_notional // "0"' <<<"$system" 2>/dev/null || echo 0)
    accounts=$(jq -r '.aggregate.accounts_total // 0' <<<"$system" 2>/dev/null || echo 0)
    [[ "$gross" =~ [1-9] ]] && in_state=$((in_state + 1))
  done
  if ((in_state == validators)); then
    say "the demo venue's reports are in state on every validator (gross notional $gross over $accounts accounts on node$((validators - 1)))"
    break
  fi
  ((SECONDS < deadline)) || { say "the demo venue's reports are not in state on every validator"; "$clearnode" query system --grpc http://127.0.0.1:26603 --chain-id clearnode-localnet || true; exit 1; }
  sleep 3
done
"${compose[@]}" ps
say "ok"
