#!/usr/bin/env bash
# Differential check of legacy exception handling (not a timed test):
#   fuzz/legacy_eh/diff.sh FIRST_SEED LAST_SEED
# For each seed, gen.py writes a module with nested try/catch/delegate/rethrow;
# it is encoded (fixtures/tools/fixture-tool, the `wat` crate), translated to
# exnref by Binaryen's `wasm-opt --translate-to-exnref` and run by wasmtime (which
# refuses legacy exception handling) as the reference. wasmc must give the same
# exit status for the legacy module and for the translated one. Needs npm
# (binaryen, fetched once into target/), wasmtime and a built target/release/wasmc.
set -euo pipefail
root="$(cd "$(dirname "$0")/../.." && pwd)"
first="${1:?first seed}"; last="${2:?last seed}"
wasmc="$root/target/release/wasmc"
tool="$root/target/fixture-tool/release/fixture-tool"
[ -x "$tool" ] || cargo build -q --release --locked \
    --manifest-path "$root/fixtures/tools/fixture-tool/Cargo.toml" --target-dir "$root/target/fixture-tool"
binaryen="$root/target/legacy-eh-binaryen"
[ -x "$binaryen/node_modules/binaryen/bin/wasm-opt" ] ||
    npm install -q --no-audit --no-fund --prefix "$binaryen" binaryen@132.0.0 >/dev/null
wasm_opt="$binaryen/node_modules/binaryen/bin/wasm-opt"
work="$(mktemp -d)"; trap 'rm -rf "$work"' EXIT
runs=0; mismatches=0; skipped=0
for seed in $(seq "$first" "$last"); do
    python3 "$root/fuzz/legacy_eh/gen.py" "$seed" >"$work/m.wat"
    "$tool" wat2wasm "$work/m.wat" "$work/legacy.wasm"
    if ! "$wasm_opt" -g --enable-exception-handling --enable-reference-types --enable-multivalue \
        --translate-to-exnref "$work/legacy.wasm" -o "$work/exnref.wasm" 2>/dev/null; then
        skipped=$((skipped + 1)) # a translation Binaryen cannot do: no reference
        continue
    fi
    set +e
    timeout 20 wasmtime run -W exceptions=y "$work/exnref.wasm" >/dev/null 2>&1; expected=$?
    got=()
    for module in legacy exnref; do
        "$wasmc" "$work/$module.wasm" -o "$work/$module" >/dev/null
        timeout 20 "$work/$module" >/dev/null 2>&1; got+=($?)
    done
    set -e
    runs=$((runs + 1))
    if [ "${got[0]}" != "$expected" ] || [ "${got[1]}" != "$expected" ]; then
        mismatches=$((mismatches + 1))
        cp "$work/m.wat" "legacy-eh-mismatch-$seed.wat"
        echo "seed $seed: wasmtime (exnref) $expected, wasmc legacy ${got[0]}, exnref ${got[1]}"
    fi
done
echo "legacy_eh diff: seeds $first..$last: $runs compared, $mismatches mismatches, $skipped not translatable"
[ "$mismatches" = 0 ]
