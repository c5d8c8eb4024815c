#!/usr/bin/env bash
# Sets up a fresh machine and runs the main job: a single-validator
# clearnode chain (CometBFT + RocksDB) fed by a demo venue over gRPC.
# Arguments go to `clearnode devnet` (e.g. --reset, --rounds 20).
set -euo pipefail
repo_root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$repo_root"
source scripts/setup.sh
cargo build --locked -p clearnode
exec "$CARGO_TARGET_DIR/debug/clearnode" devnet "$@"
