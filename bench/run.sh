#!/usr/bin/env bash
# Side-by-side benchmark: each C program in bench/src built three ways and timed in
# one run: native (gcc -O2), wasmc (clang -O2 --target=wasm32-wasi, then wasmc), and
# wasmtime (the same .wasm, through the `wasmtime` Python package if installed).
# Also reports wasmc's compile time and the start-up time of a hello-world executable.
#
#   bench/run.sh [RUNS]        best of RUNS runs (default 3)
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
runs=${1:-3}
out="$root/target/bench"
mkdir -p "$out"
cargo build --quiet --release -p wasmc --manifest-path "$root/Cargo.toml"
wasmc="$root/target/release/wasmc"

for src in "$root"/bench/src/*.c; do
  name=$(basename "$src" .c)
  gcc -O2 -o "$out/$name.native" "$src" -lm
  clang --target=wasm32-wasi -O2 -o "$out/$name.wasm" "$src"
  "$wasmc" "$out/$name.wasm" -o "$out/$name.wasmc"
done
python3 "$root/bench/time.py" "$out" "$wasmc" "$runs" "$root"
