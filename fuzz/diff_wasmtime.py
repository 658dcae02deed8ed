#!/usr/bin/env python3
"""Replays the calls recorded by runtime-lib/tests/fuzz_exec.rs (WASMC_FUZZ_DIFF_DIR)
on wasmtime (the `wasmtime` Python package) and reports every difference.

The scheme mirrors the Rust test exactly: one provider instance per module (the same
PROVIDER module; `h_add` is a host function), a first instantiation, then a fresh
instance per exported function, called twice (zero, then random arguments). A call
traps on both sides or returns equal results (NaNs compare equal; references by
null-ness). Stack overflow differs legitimately (different stack sizes) and is
skipped. Functions with v128 parameters or results (not in the Python API) are not
called on either side.

With --gc (records of `WASMC_FUZZ_GC=1`) wasmtime also enables GC, function
references and exceptions; the Rust side has left out exports with typed references
in their signatures, so values compare as before.

usage: diff_wasmtime.py [--gc] DIR     exit status 1 when any module differs
"""

import gc
import json
import math
import re
import struct
import sys
from pathlib import Path

import wasmtime

HERE = Path(__file__).resolve().parent
SRC = (HERE.parent / "runtime-lib" / "tests" / "fuzz_exec.rs").read_text()
PROVIDER = re.search(r'const PROVIDER: &str = r#"(.*?)"#;', SRC, re.S).group(1)


def engine(gc):
    config = wasmtime.Config()
    features = ["wasm_simd", "wasm_multi_memory", "wasm_memory64", "wasm_tail_call",
                "wasm_bulk_memory", "wasm_reference_types", "wasm_multi_value"]
    if gc:
        features += ["wasm_function_references", "wasm_gc", "wasm_exceptions"]
    for feature in features:
        # The Config properties are write-only: look them up on the class.
        if hasattr(type(config), feature):
            setattr(config, feature, True)
        elif gc and feature != "wasm_function_references":
            # Without them every GC module would be reported as differing.
            sys.exit(f"diff_wasmtime: this wasmtime Python package has no Config.{feature}")
    return wasmtime.Engine(config)


def to_val(ty, bits):
    if ty == "i32":
        return wasmtime.Val.i32(int(bits))
    if ty == "i64":
        return wasmtime.Val.i64(int(bits))
    if ty == "f32":
        return wasmtime.Val.f32(struct.unpack("<f", struct.pack("<I", int(bits)))[0])
    if ty == "f64":
        return wasmtime.Val.f64(struct.unpack("<d", struct.pack("<Q", int(bits)))[0])
    if ty == "funcref":
        return wasmtime.Val.funcref(None)
    if ty == "externref":
        return wasmtime.Val.externref(None)
    raise ValueError(ty)


def same(expected, got):
    ty, bits = expected
    if ty == "i32":
        return (int(bits) & 0xFFFFFFFF) == (got & 0xFFFFFFFF)
    if ty == "i64":
        return (int(bits) & (2**64 - 1)) == (got & (2**64 - 1))
    if ty in ("f32", "f64"):
        fmt, ifmt = ("<f", "<I") if ty == "f32" else ("<d", "<Q")
        ours = struct.unpack(fmt, struct.pack(ifmt, int(bits)))[0]
        if math.isnan(ours) or math.isnan(got):
            return math.isnan(ours) and math.isnan(got)
        return struct.pack(fmt, ours) == struct.pack(fmt, got)
    if ty in ("funcref", "externref"):
        return (bits == "true") == (got is not None)
    return True  # v128: not comparable here


def is_stack_overflow(message):
    return "stack overflow" in message or "call stack exhausted" in message


def run_module(eng, wasm_path, record):
    store = wasmtime.Store(eng)
    # wasmc's implementation limits (runtime-lib: TABLE_MAX_ELEMENTS,
    # MEMORY64_MAX_BYTES), so that growth fails at the same point on both sides
    # (and wasmtime does not allocate a table of billions of elements).
    store.set_limits(memory_size=1 << 34, table_elements=10_000_000)
    provider = wasmtime.Instance(store, wasmtime.Module(eng, PROVIDER), [])
    pexports = provider.exports(store)
    h_add = wasmtime.Func(
        store,
        wasmtime.FuncType([wasmtime.ValType.i32(), wasmtime.ValType.i64()],
                          [wasmtime.ValType.i64()]),
        lambda a, b: ((a + b + 2**63) % 2**64) - 2**63,
    )
    module = wasmtime.Module.from_file(eng, str(wasm_path))
    imports = []
    for imp in module.imports:
        imports.append(h_add if imp.name == "h_add" else pexports[imp.name])

    def instantiate():
        try:
            return wasmtime.Instance(store, module, imports)
        except wasmtime.Trap:
            return None
        except wasmtime.WasmtimeError as e:
            # A start function ending with an uncaught exception (wasmc: the trap
            # "uncaught wasm exception"); link errors and the like still raise.
            if str(e).startswith("error while executing"):
                return None
            raise

    problems = []
    first = instantiate()
    expected_first = record[0]["instantiate"]
    if (first is not None) != (expected_first == "ok"):
        # wasmc's message (records since the gcalloc branch) says why it trapped.
        why = record[0].get("message")
        if first is not None and why and "GC heap out of memory" in why:
            # A constant expression allocating more than wasmc's --max-gc-heap
            # (1 GiB by default; the fuzzer runs with the default), e.g. an i8
            # array of 1.5 billion elements: a documented limit, not a difference.
            return [LIMIT]
        return [f"instantiation: wasmc {expected_first}"
                f"{f' ({why})' if why else ''}, wasmtime "
                f"{'ok' if first else 'trap'}"]
    if first is None:
        return []
    instance = None
    final = record[-1]["final"] if "final" in record[-1] else None
    for call in record[1:]:
        if "final" in call:
            continue
        if call["round"] == 0:
            instance = instantiate()
            if instance is None:
                problems.append(f"{call['export']}: instantiation trapped on wasmtime only")
                break
        func = instance.exports(store)[call["export"]]
        args = [to_val(t, b) for t, b in call["args"]]
        where = f"{call['export']}({', '.join(b for _, b in call['args'])})"
        try:
            got = func(store, *args)
            got_trap = None
        except wasmtime.Trap as e:
            got, got_trap = None, str(e).splitlines()[0]
        except wasmtime.WasmtimeError as e:
            got, got_trap = None, str(e).splitlines()[0]
        if "trap" in call:
            if got_trap is None:
                problems.append(f"{where}: wasmc trapped ({call['trap']}), wasmtime returned {got!r}")
            continue
        if got_trap is not None:
            if not is_stack_overflow(got_trap):
                problems.append(f"{where}: wasmtime trapped ({got_trap}), wasmc returned {call['results']}")
            continue
        if got is None:
            got = []
        elif not isinstance(got, (list, tuple)):
            got = [got]
        for i, (exp, g) in enumerate(zip(call["results"], got)):
            if not same(exp, g):
                problems.append(f"{where}: result {i}: wasmc {exp}, wasmtime {g!r}")
    if final is not None and not problems:
        for name in ("mem", "mem64"):
            mem = pexports[name]
            data = mem.read(store, 0, mem.data_len(store))
            if str(fnv1a(data)) != final[name]:
                problems.append(f"provider memory {name} differs after the calls")
        for name in ("g_i32", "g_f32"):
            if not same(final[name], pexports[name].value(store)):
                problems.append(f"provider global {name}: wasmc {final[name]}, "
                                f"wasmtime {pexports[name].value(store)!r}")
    return problems


# What `run_module` returns for a module only wasmc's GC heap limit refused.
LIMIT = "over wasmc's GC heap limit"


def fnv1a(data):
    h = 0xCBF29CE484222325
    for b in data:
        h = ((h ^ b) * 0x100000001B3) & 0xFFFFFFFFFFFFFFFF
    return h


def main():
    args = sys.argv[1:]
    gc_modules = "--gc" in args
    args = [a for a in args if a != "--gc"]
    if len(args) != 1:
        sys.exit("usage: diff_wasmtime.py [--gc] DIR")
    d = Path(args[0])
    eng = engine(gc_modules)
    modules = calls = 0
    bad = over_limit = 0
    for rec_path in sorted(d.glob("*.json"), key=lambda p: int(p.stem)):
        record = json.loads(rec_path.read_text())
        modules += 1
        calls += sum(1 for c in record if "export" in c)
        try:
            problems = run_module(eng, d / f"{rec_path.stem}.wasm", record)
        except Exception as e:  # a module wasmtime rejects, etc.
            problems = [f"error: {type(e).__name__}: {str(e).splitlines()[0] if str(e) else ''}"]
        # Stores hold their instances (and memories) until collected; reference
        # cycles through host functions keep them alive otherwise.
        gc.collect()
        if problems == [LIMIT]:
            over_limit += 1
            print(f"seed {rec_path.stem}: {LIMIT} at instantiation (not counted)")
        elif problems:
            bad += 1
            print(f"seed {rec_path.stem}:")
            for p in problems[:10]:
                print(f"  {p}")
    print(f"diff_wasmtime: {modules} modules, {calls} calls, {bad} modules differ"
          f"{f', {over_limit} over the GC heap limit' if over_limit else ''}")
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())
