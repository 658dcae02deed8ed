#!/usr/bin/env bash
# Runs every wasmc test: unit tests, the end-to-end fixture/WASI/cross tests and the
# WebAssembly spec test suite (tests/spec.rs drives `wasmc wast` over ../shared).
# Installs what a fresh machine lacks first (scripts/setup.sh is idempotent).
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
cargo fmt --all -- --check
cargo test --workspace --release "$@"
