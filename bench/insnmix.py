#!/usr/bin/env python3
"""What kind of instructions one function executes, wasmc next to native.

    bench/insnmix.py WORKLOAD FUNCTION[/NATIVE_NAME] [--labels wasmc,clang] [--keep DIR [--reuse]]

Runs the workload (executables from a previous bench.py run) once per runtime under
`valgrind --tool=callgrind --dump-instr=yes`, takes the executed count of every
instruction of FUNCTION (by source name: wasmc's `wasm[N]::` prefix is ignored),
disassembles them with objdump and sorts them into classes, so that the extra
instructions of the wasm build have a name: stack spills and reloads, 32-bit
address arithmetic (`lea`/`add` into a 32-bit register: wasm's i32 pointer math,
which x86 addressing modes cannot absorb), zero-extensions, loads and stores,
branches, calls... x86_64 only. Only the function's own instructions count
(not its callees).
"""

import argparse
import collections
import os
import re
import subprocess
import sys
import tempfile

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import bench  # noqa: E402
import cgcompare  # noqa: E402

CLASSES = [
    "spill/reload (%rsp)",
    "load",
    "store",
    "32-bit lea/add (i32 math: addresses in wasm)",
    "zero/sign extension",
    "other lea",
    "compare/test",
    "conditional jump",
    "jump (direct)",
    "jump (indirect)",
    "cmov/setcc",
    "call/ret",
    "push/pop",
    "arithmetic/logic",
    "mov reg,reg / imm",
    "other",
]


def operands(ops):
    """AT&T operands split on the commas outside parentheses."""
    parts, depth, current = [], 0, ""
    for c in ops:
        depth += c == "("
        depth -= c == ")"
        if c == "," and depth == 0:
            parts.append(current)
            current = ""
        else:
            current += c
    return parts + [current] if current else parts


def classify(insn):
    """The class of one AT&T-syntax instruction ("mnemonic operands")."""
    mnemonic, _, ops = insn.partition(" ")
    ops = ops.strip()
    mem = "(" in ops
    dest = operands(ops)[-1] if ops else ""
    dest_is_memory = "(" in dest
    if mnemonic.startswith(("push", "pop")):
        return "push/pop"
    if mnemonic.startswith(("call", "ret")):
        return "call/ret"
    if mnemonic.startswith("jmp"):
        return "jump (indirect)" if "*" in ops else "jump (direct)"
    if mnemonic.startswith("j"):
        return "conditional jump"
    if mnemonic.startswith(("cmov", "set")):
        return "cmov/setcc"
    if mnemonic.startswith(("cmp", "test", "ucomis", "comis")):
        return "compare/test"
    if mnemonic.startswith("lea"):
        return "32-bit lea/add (i32 math: addresses in wasm)" if re.match(r"%(e[a-z]{2}|r\d+d)$", dest) else "other lea"
    if mnemonic.startswith(("movz", "movs")) and not mnemonic.startswith(("movsd", "movss", "movsb", "movsw", "movsl", "movsq")):
        return "load" if mem else "zero/sign extension"
    if mnemonic.startswith(("movslq", "cltq", "cwtl", "cltd", "cqto")):
        return "load" if mem else "zero/sign extension"
    if mnemonic.startswith("mov"):
        if "(%rsp)" in ops or re.search(r"-?0x[0-9a-f]+\(%rbp\)", ops):
            return "spill/reload (%rsp)"
        if mem:
            return "store" if dest_is_memory else "load"
        if re.match(r"%(e[a-z]{2}|r\d+d),%(e[a-z]{2}|r\d+d)$", ops):
            return "zero/sign extension"  # mov %ecx,%ecx: wasm's i32 -> i64 address
        return "mov reg,reg / imm"
    if mem:
        return "store" if dest_is_memory else "load"
    if mnemonic in ("add", "sub", "addl", "subl") and re.search(r",%(e[a-z]{2}|r\d+d)$", ops):
        return "32-bit lea/add (i32 math: addresses in wasm)"
    if re.match(r"(add|sub|and|or|xor|shl|shr|sar|rol|ror|imul|mul|div|idiv|neg|not|inc|dec|bt|bsf|bsr|tzcnt|lzcnt|popcnt|adc|sbb)", mnemonic):
        return "arithmetic/logic"
    return "other"


def function_range(exe, function):
    """(start, end, symbol) of FUNCTION's code in exe, from `nm -n`."""
    symbols = []
    for line in subprocess.run(["nm", "-n", "-C", exe], capture_output=True, text=True).stdout.splitlines():
        m = re.match(r"([0-9a-f]+) ([tTwW]) (.*)", line)
        if m:
            symbols.append((int(m.group(1), 16), m.group(3)))
    for i, (address, name) in enumerate(symbols):
        if cgcompare.common_name(name) == function:
            end = next((a for a, _ in symbols[i + 1 :] if a > address), address + 1 << 20)
            return address, end, name
    return None


def disassemble(exe, start, end):
    """{address: "mnemonic operands"} of exe's code in [start, end)."""
    out = subprocess.run(
        ["objdump", "-d", "--no-show-raw-insn", f"--start-address={start}", f"--stop-address={end}", exe],
        capture_output=True,
        text=True,
    ).stdout
    code = {}
    for line in out.splitlines():
        m = re.match(r"\s*([0-9a-f]+):\t(.*)", line)
        if m:
            code[int(m.group(1), 16)] = re.sub(r"\s+#.*", "", m.group(2)).strip()
    return code


def executed(callgrind_out, exe):
    """{file address: count} of exe's instructions in a callgrind output file written
    with --dump-instr=yes --compress-pos=no --compress-strings=no (positions
    "ADDRESS LINE", addresses relative to the object, costs: Ir)."""
    counts = collections.Counter()
    target = os.path.realpath(exe)
    ours = False
    with open(callgrind_out) as f:
        for line in f:
            if line.startswith("ob="):
                ours = os.path.realpath(line[3:].strip()) == target
                continue
            if line.startswith("calls="):
                next(f, None)  # the call line's cost is the callee's: skip it
                continue
            if not ours or not line.startswith("0x"):
                continue
            parts = line.split()
            if len(parts) >= 3:
                counts[int(parts[0], 16)] += int(parts[2])
    return counts


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("workload")
    parser.add_argument("function")
    parser.add_argument("--labels", default="wasmc,clang")
    parser.add_argument("--keep", help="directory for the callgrind output files")
    parser.add_argument("--reuse", action="store_true")
    opts = parser.parse_args()

    bench.WASMTIME = bench.find_wasmtime()
    w = cgcompare.workload(opts.workload)
    runtimes = bench.Runtimes(os.path.join(bench.ROOT, "target", "release", "wasmc"), [])
    keep = os.path.abspath(opts.keep or tempfile.mkdtemp(prefix="insnmix-"))
    os.makedirs(keep, exist_ok=True)
    mixes = {}
    for label in opts.labels.split(","):
        exe = runtimes.artifact(w, label) if label == "wasmc" else w.native.get(label)
        if not exe or not os.path.exists(exe):
            print(f"insnmix: no {label} executable for {w.name}", file=sys.stderr)
            continue
        # "WASM/NATIVE" when the names differ (wasi-libc's crt calls a C main
        # `__original_main`).
        wasm_name, _, native_name = opts.function.partition("/")
        found = function_range(exe, wasm_name if label == "wasmc" else native_name or wasm_name)
        if not found:
            print(f"insnmix: {opts.function} is not in {exe} (inlined?)", file=sys.stderr)
            continue
        start, end, symbol = found
        out = os.path.join(keep, f"{w.name}.{label}.callgrind")
        if not (opts.reuse and os.path.exists(out)):
            with bench.scratch_copy(w) as (scratch, cwd):
                cmd = runtimes.command(w, label, scratch)
                grind = ["valgrind", "--tool=callgrind", "--dump-instr=yes", "--compress-pos=no"]
                grind += ["--compress-strings=no", f"--callgrind-out-file={out}", *cmd]
                subprocess.run(grind, cwd=cwd, env=runtimes.env(w, label), capture_output=True)
        code = disassemble(exe, start, end)
        counts = executed(out, exe)
        mix = collections.Counter()
        for address, insn in code.items():
            n = counts.get(address, 0)
            if n:
                mix[classify(insn)] += n
        mixes[label] = mix
        print(f"  {label}: {symbol}: {sum(mix.values()) / 1e6:.1f} M instructions", file=sys.stderr)

    labels = list(mixes)
    print(f"{w.name} {opts.function}: executed instructions (millions) by class, callgrind")
    header = ["class", *labels] + ([f"{labels[0]}-{labels[1]}"] if len(labels) == 2 else [])
    rows = []
    for cls in CLASSES + ["total"]:
        values = [sum(mixes[label].values()) if cls == "total" else mixes[label].get(cls, 0) for label in labels]
        if not any(values):
            continue
        row = [cls] + [f"{v / 1e6:.1f}" for v in values]
        if len(labels) == 2:
            row.append(f"{(values[0] - values[1]) / 1e6:+.1f}")
        rows.append(row)
    widths = [max(len(r[i]) for r in [header, *rows]) for i in range(len(header))]
    for row in [header, *rows]:
        print("  ".join(c.ljust(widths[0]) if i == 0 else c.rjust(widths[i]) for i, c in enumerate(row)))


if __name__ == "__main__":
    main()
