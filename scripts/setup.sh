#!/usr/bin/env bash
# Installs what clearnode needs on a fresh Debian machine, idempotently:
# Debian packages for the RocksDB build, the pinned CometBFT binary (go
# install), and the Rust dependencies (cargo). Source it to get PATH and
# CARGO_TARGET_DIR set for the rest of the session.
set -euo pipefail

repo_root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
# shellcheck source=versions.env
source "$repo_root/scripts/versions.env"

log() { printf '\033[1msetup:\033[0m %s\n' "$*" >&2; }

sudo_if_needed() {
  if [[ $(id -u) -eq 0 ]]; then "$@"; else sudo "$@"; fi
}

# 1. Debian packages: clang/libclang for RocksDB's bindings, a C++ toolchain, git;
# chromium for the dashboard's browser test; Python with gRPC, protobuf and
# ed25519 for the Python client (clients/python) and its end-to-end test.
packages=(clang libclang-dev g++ make pkg-config git ca-certificates curl chromium
  python3 python3-grpcio python3-grpc-tools python3-protobuf python3-nacl)
missing=()
for package in "${packages[@]}"; do
  dpkg -s "$package" >/dev/null 2>&1 || missing+=("$package")
done
if ((${#missing[@]})); then
  log "installing Debian packages: ${missing[*]}"
  sudo_if_needed apt-get update -qq
  sudo_if_needed env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${missing[@]}" >/dev/null
fi

# 2. Toolchains that must already be there (no registry serves them).
command -v cargo >/dev/null || { log "cargo is missing: install Rust (rustup) first"; exit 1; }
command -v go >/dev/null || { log "go is missing: install Go >= 1.22 first"; exit 1; }

# 3. CometBFT, pinned.
export GOPATH="${GOPATH:-$HOME/go}"
export PATH="$GOPATH/bin:$PATH"
wanted="${COMETBFT_VERSION#v}"
if [[ "$(cometbft version 2>/dev/null || true)" != "$wanted" ]]; then
  log "installing cometbft $COMETBFT_VERSION (go install)"
  GOTOOLCHAIN=local go install "github.com/cometbft/cometbft/cmd/cometbft@$COMETBFT_VERSION"
fi
log "cometbft $(cometbft version)"

# 4. Rust dependencies. One target directory outside the clone, shared by
# every build and test of this machine, so RocksDB's C++ build (15-25 min
# on 2 cores) happens once.
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$HOME/.cache/clearnode/target}"
mkdir -p "$CARGO_TARGET_DIR"
log "fetching crates (target dir $CARGO_TARGET_DIR)"
(cd "$repo_root" && cargo fetch --locked -q)
