#!/usr/bin/env bash
# Installs everything wasmc's build and tests need on a fresh Debian machine.
# Idempotent: safe to run again; it only installs what is missing.
set -euo pipefail

APT_PACKAGES=(
  clang lld wasi-libc libclang-rt-14-dev-wasm32   # C fixtures: clang --target=wasm32-wasi
  libc++-14-dev-wasm32 libc++abi-14-dev-wasm32    # C++ fixture (fixtures/real/build.sh)
  clang-19 lld-19 libclang-rt-19-dev-wasm32       # setjmp/longjmp fixture (fixtures/sjlj/build.sh)
  gcc libc6-dev                                   # host link driver; libc.a, rcrt1.o (static-PIE glibc executables)
  gcc-aarch64-linux-gnu libc6-dev-arm64-cross     # aarch64 cross linker
  qemu-user                                       # run aarch64 executables
  musl-tools                                      # x86_64 static (musl) linking
  skopeo umoci                                    # check OCI image archives (--emit oci)
  file binutils
  python3                                         # fuzz/wasi replay (tests/wasi.rs)
  python3-pip python3-yaml                        # p2w, Python to Wasm GC (fixtures/gc/python/build.sh)
)
RUST_TARGETS=(wasm32-wasip1 wasm32-wasip1-threads wasm32-wasip2 aarch64-unknown-linux-gnu x86_64-unknown-linux-musl aarch64-unknown-linux-musl)

missing=()
for p in "${APT_PACKAGES[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ]; then
  SUDO=""; [ "$(id -u)" -ne 0 ] && SUDO="sudo"
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}"
fi

installed=$(rustup target list --installed)
for t in "${RUST_TARGETS[@]}"; do
  grep -qx "$t" <<<"$installed" || rustup target add "$t"
done
rustup component list --installed | grep -q '^rustfmt' || rustup component add rustfmt clippy
echo "setup: ok"
