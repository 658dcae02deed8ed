#!/usr/bin/env bash
# Rebuilds the fuzzer's guest (needs clang + wasi-libc from scripts/setup.sh). The
# binary is checked in (fixtures/wasi-fuzz/interp.wasm) so that CI replays the
# recorded scripts without a wasm toolchain; re-record after changing it:
#   fuzz/wasi/fuzz_wasi.py run ... --record fixtures/wasi-fuzz/expected.json
set -euo pipefail
cd "$(dirname "$0")"
clang --target=wasm32-wasi --sysroot=/usr -O2 -Wall -s interp.c \
    -o ../../fixtures/wasi-fuzz/interp.wasm
