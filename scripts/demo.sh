#!/usr/bin/env bash
# Builds wasmc and runs its main job on a shipped example: compile the C file-copy
# fixture to a native executable and run it inside a sandbox of two preopened dirs.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
cargo build --release -p wasmc
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
./target/release/wasmc fixtures/copy/copy.wasm -o "$work/copy"
echo "hello from the host" > "$work/test.txt"
cd "$work"
echo "+ ./copy --dir=. --dir=/tmp test.txt /tmp/wasmc-demo-out.txt"
./copy --dir=. --dir=/tmp test.txt /tmp/wasmc-demo-out.txt
echo "+ cat /tmp/wasmc-demo-out.txt"
cat /tmp/wasmc-demo-out.txt
echo "+ ./copy test.txt /tmp/out.txt   # no --dir: the sandbox refuses"
./copy test.txt /tmp/out.txt || echo "(exit status $?)"
