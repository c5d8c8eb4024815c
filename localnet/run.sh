#!/usr/bin/env bash
# Builds clearnode and runs a process localnet in .localnet: initialized on
# first run (or again with --reset), then every validator started until
# Ctrl-C. See localnet/README.md.
#
#   bash localnet/run.sh [--reset] [--dir DIR] [--validators N] [--port-base P] [--block-time 300ms]
set -euo pipefail
repo_root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$repo_root"

dir=.localnet
reset=false
init_args=()
while [[ $# -gt 0 ]]; do
  case "$1" in
    --reset) reset=true; shift ;;
    --dir) dir="$2"; shift 2 ;;
    --validators|--port-base|--block-time|--chain-id|--template|--cometbft-bin)
      init_args+=("$1" "$2"); shift 2 ;;
    *) echo "run.sh: unknown option $1 (see localnet/README.md)" >&2; exit 2 ;;
  esac
done

source scripts/setup.sh
cargo build --locked -p clearnode
clearnode="$CARGO_TARGET_DIR/debug/clearnode"

if $reset; then
  rm -rf -- "$dir"
fi
if [[ ! -e "$dir/node0/clearnode.toml" ]]; then
  "$clearnode" localnet init --dir "$dir" "${init_args[@]}"
elif [[ ${#init_args[@]} -gt 0 ]]; then
  echo "run.sh: $dir already holds a localnet; its options are kept (use --reset to start over)" >&2
fi
exec "$clearnode" localnet start --dir "$dir"
