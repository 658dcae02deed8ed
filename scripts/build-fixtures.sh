#!/usr/bin/env bash
# Rebuilds every generated fixture under fixtures/ from its checked-in source.
#
#   scripts/build-fixtures.sh            rebuild the .wasm/.bin fixtures
#   scripts/build-fixtures.sh --record   also re-record the wasmtime reference outputs
#                                        (needs `pip install wasmtime`; CI never does this)
#
# Needs only what scripts/setup.sh installs (clang + wasi-libc, the wasm32-wasip1 and
# wasm32-wasip1-threads and wasm32-wasip2 Rust targets; pip and PyYAML for p2w, whose
# pinned wheel is downloaded from PyPI). Idempotent: the same sources give byte-identical outputs.
set -euo pipefail

root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
fixtures="$root/fixtures"
record=0
for arg in "$@"; do
  case "$arg" in
    --record) record=1 ;;
    *) echo "usage: $0 [--record]" >&2; exit 2 ;;
  esac
done

step() { printf 'build-fixtures: %s\n' "$*"; }

# .wat -> .wasm and the junk input: a small Rust tool (fixtures/tools/fixture-tool),
# built in its own target directory so it never contends with the workspace build.
tool_dir="$fixtures/tools/fixture-tool"
tool_target="$root/target/fixture-tool"
step "building fixture-tool"
cargo build --quiet --release --locked --manifest-path "$tool_dir/Cargo.toml" --target-dir "$tool_target"
tool="$tool_target/release/fixture-tool"

step "hello"
"$tool" wat2wasm "$fixtures/hello/hello.wat" "$fixtures/hello/hello.wasm"
"$tool" wat2wasm "$fixtures/hello/hello_unstable.wat" "$fixtures/hello/hello_unstable.wasm"

step "copy (clang --target=wasm32-wasi, wasi-libc)"
# Debian's clang finds wasi-libc under /usr/{include,lib}/wasm32-wasi by itself; check
# that it is there so that a missing package fails here with a clear message.
if ! dpkg -L wasi-libc 2>/dev/null | grep '/wasm32-wasi/libc\.a$' >/dev/null; then
  echo "build-fixtures: wasi-libc is not installed; run scripts/setup.sh" >&2
  exit 1
fi
# --strip-debug drops libc's DWARF (150 KiB) but keeps the name section for backtraces.
clang --target=wasm32-wasi -O2 -Wall -Wextra -Werror -Wl,--strip-debug \
  -o "$fixtures/copy/copy.wasm" "$fixtures/copy/copy.c"

step "rust-hello (rustc --target wasm32-wasip1 -O)"
# Built from inside its directory so that the only path rustc embeds is "main.rs".
(cd "$fixtures/rust-hello" &&
  rustc --edition 2024 --target wasm32-wasip1 -O -C debuginfo=0 -C strip=debuginfo \
    main.rs -o rust-hello.wasm)

step "packaging probes (C and Rust)"
clang --target=wasm32-wasi -O2 -Wall -Wextra -Werror -Wl,--strip-debug \
  -o "$fixtures/packaging/probe.wasm" "$fixtures/packaging/probe.c"
(cd "$fixtures/packaging" &&
  rustc --edition 2024 --target wasm32-wasip1 -O -C debuginfo=0 -C strip=debuginfo \
    probe_rust.rs -o probe_rust.wasm)

step "sjlj (clang-19 -mllvm -wasm-enable-sjlj: legacy exception handling, and exnref)"
"$fixtures/sjlj/build.sh"

step "bad inputs"
# A real module cut short in the middle of its code section.
head -c 1024 "$fixtures/copy/copy.wasm" > "$fixtures/bad/truncated.wasm"
"$tool" junk "$fixtures/bad/random.bin" 256

step "threads (fixtures/threads/build.sh: wasm32-wasip1-threads and native builds)"
bash "$fixtures/threads/build.sh"

if [ -x "$fixtures/wasi/build.sh" ]; then
  step "wasi (fixtures/wasi/build.sh)"
  "$fixtures/wasi/build.sh"
elif [ -f "$fixtures/wasi/build.sh" ]; then
  step "wasi (bash fixtures/wasi/build.sh)"
  bash "$fixtures/wasi/build.sh"
fi

step "components (WASI 0.2: rustc --target wasm32-wasip2 -O, hand-written WAT)"
# Built from inside its directory so that the only path rustc embeds is "p2_std.rs".
(cd "$fixtures/components/rust" &&
  rustc --edition 2024 --target wasm32-wasip2 -O -C debuginfo=0 -C strip=debuginfo \
    p2_std.rs -o p2_std.wasm &&
  rustc --edition 2024 --target wasm32-wasip2 -O -C debuginfo=0 -C strip=debuginfo \
    p2_poll.rs -o p2_poll.wasm)
"$tool" wat2wasm "$fixtures/components/wat/shim_fixup.wat" "$fixtures/components/wat/shim_fixup.wasm"
# Preview1 fixtures made components with the preview1 adapter (wit-component and the
# adapter from crates.io, pinned in fixture-tool's Cargo.lock).
"$tool" componentize "$fixtures/rust-hello/rust-hello.wasm" "$fixtures/components/adapter/rust-hello.wasm"
"$tool" componentize "$fixtures/wasi/rust/wasi_std.wasm" "$fixtures/components/adapter/wasi_std.wasm"
# The WASI fuzzer's guest as a component: its p2 leg (fuzz/wasi/README.md).
"$tool" componentize "$fixtures/wasi-fuzz/interp.wasm" "$fixtures/wasi-fuzz/interp-p2.wasm"

step "gc (WebAssembly GC workloads, hand-written WAT)"
for program in binary_trees hashmap interp stress; do
  "$tool" wat2wasm "$fixtures/gc/$program.wat" "$fixtures/gc/$program.wasm"
done
step "gc/python (p2w from PyPI: Python to WebAssembly GC)"
"$fixtures/gc/python/build.sh" "$tool"

if [ "$record" = 1 ]; then
  step "recording wasmtime reference outputs"
  python3 "$fixtures/record_reference.py"
  # Components need the wasmtime CLI (the Python bindings cannot run them).
  python3 "$fixtures/components/record.py"
  # GC needs the wasmtime CLI too (`-W gc=y,exceptions=y`).
  python3 "$fixtures/gc/record.py"
fi

step "done"
