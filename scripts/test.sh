#!/usr/bin/env bash
# Runs every wasmc test: unit tests, the end-to-end fixture/WASI/cross tests and the
# WebAssembly spec test suite (tests/spec.rs drives `wasmc wast` over ../shared; on
# aarch64 under qemu, tests/spec_aarch64.rs runs a cross-built wasmc).
# Installs what a fresh machine lacks first (scripts/setup.sh is idempotent).
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
cargo fmt --all -- --check
# The aarch64 wasmc that tests/spec_aarch64.rs runs under qemu-aarch64. Built here,
# before the tests, so that its build is reported like any other; the test repeats
# the same command, which is then a no-op (and catches a stale binary otherwise).
CARGO_TARGET_AARCH64_UNKNOWN_LINUX_GNU_LINKER="${CARGO_TARGET_AARCH64_UNKNOWN_LINUX_GNU_LINKER:-aarch64-linux-gnu-gcc}" \
  cargo build --release -p wasmc --target aarch64-unknown-linux-gnu
cargo test --workspace --release "$@"
