#!/usr/bin/env bash
# Rebuilds examples/zlib/zlib.wasm (zlib as a WASI reactor exporting its one-shot API,
# see zlib_exports.c) and records expected.txt: the output of demo.c built natively
# against the same zlib sources, which the sandboxed build must reproduce exactly
# (tests/embed.rs). zlib comes from the crates.io package libz-sys (the same pin as
# fixtures/real, see fixtures/real/PROVENANCE.md), fetched with cargo, never checked in.
# Needs what scripts/setup.sh installs (clang + wasi-libc).
set -euo pipefail
LIBZ_SYS=1.1.31                      # crate libz-sys: zlib 1.3.x sources (src/zlib)
here="$(cd "$(dirname "$0")" && pwd)"
root="$(cd "$here/../.." && pwd)"
work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT

mkdir -p "$work/fetch/src"
touch "$work/fetch/src/lib.rs"
cat >"$work/fetch/Cargo.toml" <<TOML
[package]
name = "fetch"
version = "0.0.0"
edition = "2021"
[dependencies]
libz-sys = { version = "=$LIBZ_SYS", default-features = false }
TOML
(cd "$work/fetch" && cargo fetch -q)
ZLIB="$( (cd "$work/fetch" && cargo metadata -q --format-version 1) | python3 -c '
import json, os, sys
for p in json.load(sys.stdin)["packages"]:
    if p["name"] == "libz-sys":
        print(os.path.join(os.path.dirname(p["manifest_path"]), "src", "zlib"))')"
SOURCES=("$ZLIB"/{adler32,compress,crc32,deflate,infback,inffast,inflate,inftrees,trees,uncompr,zutil}.c)
DEFINES=(-DHAVE_UNISTD_H -DHAVE_STDARG_H)

echo "building zlib.wasm (reactor)"
clang --target=wasm32-wasi --sysroot=/usr -O2 -mexec-model=reactor "${DEFINES[@]}" -I"$ZLIB" \
    "${SOURCES[@]}" "$here/zlib_exports.c" -Wl,--strip-debug -o "$here/zlib.wasm"

echo "recording expected.txt from the native build"
cc -O2 -DNATIVE "${DEFINES[@]}" -I"$ZLIB" "$here/demo.c" "${SOURCES[@]}" -o "$work/demo-native"
"$work/demo-native" "$root/fixtures/real/data/rust/access.log" >"$here/expected.txt"
