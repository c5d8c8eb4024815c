#!/usr/bin/env bash
# Sets up a fresh machine and runs every test: formatting, clippy, unit and
# property tests, and the end-to-end tests against real CometBFT processes.
set -euo pipefail
repo_root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$repo_root"
source scripts/setup.sh

echo "== cargo fmt --check"
cargo fmt --all -- --check
echo "== cargo clippy (-D warnings)"
cargo clippy --locked --workspace --all-targets -- -D warnings
echo "== cargo test (unit, property, ABCI, end-to-end)"
cargo test --locked --workspace
