#!/usr/bin/env python3
"""Instruction counts of one workload, per function, under every runtime side by side.

    bench/cgcompare.py WORKLOAD [--labels wasmc,clang,gcc,wasmtime] [--top N] [--keep DIR [--reuse]]

Runs the executables a previous `bench/bench.py` run built (target/bench) once each
under `valgrind --tool=cachegrind --cache-sim=no` (instruction counts do not depend on
the load of the machine, unlike times) in a fresh copy of the workload's data, and
prints the total instructions of each and a table of the functions with the most
instructions under wasmc next to the same functions natively. wasmc executables
name each wasm function `wasm[N]::NAME` in their symbol table; the prefix is dropped,
and so are gcc's clone suffixes (`.isra.0`, `.part.0`...), so the rows line up with
the native build (glibc's CPU-specific `__memcmp_avx2_movbe` counts as `memcmp`;
`memcpy` and `memmove`, one function in glibc, count together). Inlining differs between builds: a function missing on one side was
inlined into its caller there. wasmtime's code is JIT-loaded and has no symbols for
cachegrind, so it appears only in the totals (`perf record` with
`wasmtime run --profile perfmap` names its functions).

--keep DIR keeps the cachegrind output files (for `cg_annotate FILE`).
"""

import argparse
import collections
import functools
import os
import re
import subprocess
import sys
import tempfile

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import bench  # noqa: E402  (the workload definitions and the scratch copies)
import native  # noqa: E402


def workload(name):
    """The workload `name` with the artifacts of the last bench.py run."""
    for w in bench.real_workloads(re.compile(re.escape(name))) + bench.gc_workloads():
        if w.name == name:
            if w.group == "real":
                for label in ("gcc", "clang"):
                    exe = os.path.join(native.DIR, f"{name}.{label}")
                    if os.path.exists(exe):
                        w.native[label] = exe
                if name == "rust-app" and os.path.exists(os.path.join(native.DIR, "rust-app.rustc")):
                    w.native["clang"] = os.path.join(native.DIR, "rust-app.rustc")
            return w
    wasm = os.path.join(bench.OUT, name + ".wasm")
    if not os.path.exists(wasm):
        sys.exit(f"cgcompare: no workload {name} (run bench/bench.py --only '^{name}$' first)")
    w = bench.Workload(name, "kernels", wasm)
    for label in ("gcc", "clang"):
        w.native[label] = os.path.join(bench.OUT, f"{name}.{label}")
    return w


def function_counts(path):
    """{function: instructions} from a cachegrind output file (Ir only)."""
    counts = collections.Counter()
    names = {}  # compressed names: "(id) name" defines, "(id)" refers
    current = None
    with open(path, errors="replace") as f:
        for line in f:
            if line.startswith("fn="):
                spec = line[3:].strip()
                m = re.match(r"\((\d+)\)(?: (.*))?", spec)
                if m:
                    if m.group(2) is not None:
                        names[m.group(1)] = m.group(2)
                    spec = names.get(m.group(1), spec)
                current = spec
            elif current and line[:1].isdigit():
                parts = line.split()
                if len(parts) >= 2:
                    counts[current] += int(parts[1])
    return counts


@functools.lru_cache(maxsize=None)
def demangle(symbol):
    """C++ and Rust (legacy) names as valgrind prints them, by c++filt (binutils)."""
    try:
        return subprocess.run(["c++filt", symbol], capture_output=True, text=True).stdout.strip() or symbol
    except OSError:
        return symbol


def common_name(symbol):
    """The source-level name: without wasmc's `wasm[N]::` and gcc's clone suffixes."""
    symbol = re.sub(r"^wasm\[\d+\]::", "", symbol)
    symbol = re.sub(r"\.(isra|part|constprop|cold|lto_priv|localalias)(\.\d+)*", "", symbol)
    # wasm names are mangled (valgrind demangles native ones): demangle, and drop the
    # hash that ends Rust's legacy names (it differs per target).
    if symbol.startswith("_Z"):
        symbol = demangle(symbol)
    symbol = re.sub(r"::h[0-9a-f]{16}$", "", symbol)
    # glibc's CPU-specific string functions (__memcmp_avx2_movbe, __memmove_avx_unaligned_erms:
    # memcpy is memmove there) under the name the program calls.
    m = re.match(r"^__(mem\w+?|str\w+?|wmem\w+?)_(avx|sse|evex|erms|ssse3)", symbol)
    if m:
        symbol = m.group(1)
    # glibc's memcpy is its memmove (one ifunc target): count the two together everywhere.
    return "memcpy/memmove" if symbol in ("memcpy", "memmove") else symbol


# C-library work that differs between wasi-libc (dlmalloc, musl's stdio and math) and
# glibc, by the names each uses.
LIBC_GROUPS = {
    "malloc/free": r"^(dl|__libc_|_int_|__)?(malloc|free|realloc|calloc)(_consolidate)?$|^(sysmalloc|unlink_chunk|tcache_\w+|dispose_chunk|prepend_alloc|add_segment|sys_trim|release_unused_segments|internal_memalign|cfree|_mid_memalign)$",
    "printf": r"^(printf_core|fmt_fp|fmt_u|pop_arg|out|pad|getint|__vfprintf_internal|__printf_fp\w*|__mpn_\w+|_IO_\w+|__printf_buffer\w*|hack_digit|outstring_converted_wide_string|__strchrnul)$",
    "memcpy/memset/memcmp": r"^(memcpy/memmove|memset|memcmp|bcmp)$",
}


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("workload")
    parser.add_argument("--labels", default="wasmc,clang,gcc,wasmtime")
    parser.add_argument("--top", type=int, default=25)
    parser.add_argument("--keep", help="directory for the cachegrind output files")
    parser.add_argument("--reuse", action="store_true", help="read the output files of an earlier run in --keep")
    opts = parser.parse_args()

    bench.WASMTIME = bench.find_wasmtime()
    w = workload(opts.workload)
    runtimes = bench.Runtimes(os.path.join(bench.ROOT, "target", "release", "wasmc"), [])
    labels = [label for label in opts.labels.split(",") if label in w.native or label in ("wasmc", "wasmtime")]
    keep = os.path.abspath(opts.keep or tempfile.mkdtemp(prefix="cgcompare-"))
    os.makedirs(keep, exist_ok=True)
    totals, per_function, function_counts_raw = {}, {}, {}
    for label in labels:
        out = os.path.join(keep, f"{w.name}.{label}.cg")
        if not (opts.reuse and os.path.exists(out)):
            with bench.scratch_copy(w) as (scratch, cwd):
                cmd = runtimes.command(w, label, scratch)
                grind = ["valgrind", "--tool=cachegrind", "--cache-sim=no", f"--cachegrind-out-file={out}", *cmd]
                done = subprocess.run(grind, cwd=cwd, env=runtimes.env(w, label), capture_output=True)
            if done.returncode != w.exit:
                print(f"cgcompare: {label} exited with {done.returncode} under valgrind", file=sys.stderr)
        counts = function_counts(out)
        function_counts_raw[label] = counts
        totals[label] = sum(counts.values())
        merged = collections.Counter()
        for symbol, n in counts.items():
            merged[common_name(symbol)] += n
        per_function[label] = merged
        print(f"  {label}: {totals[label] / 1e6:.1f} M instructions", file=sys.stderr)

    print(f"{w.name}: instructions (millions), cachegrind, one run each; output files in {keep}")
    print("  ".join(f"{label} {totals[label] / 1e6:.1f}" for label in labels))
    base = "clang" if "clang" in labels else ("gcc" if "gcc" in labels else None)
    ratios = [f"wasmc/{other} {totals['wasmc'] / totals[other]:.2f}" for other in (base, "wasmtime") if other in totals]
    print("  ".join(ratios))
    # Where wasmc's instructions are outside the wasm code (the runtime: start-up, WASI
    # calls), and the C-library groups on each side.
    outside = sum(n for symbol, n in function_counts_raw["wasmc"].items() if not symbol.startswith("wasm["))
    print(f"wasmc outside the wasm code (runtime, WASI, start-up): {outside / 1e6:.1f} M ({100 * outside / totals['wasmc']:.1f}%)")
    for group, pattern in LIBC_GROUPS.items():
        cells = []
        for label in labels:
            if label == "wasmtime":
                continue
            n = sum(v for name, v in per_function[label].items() if re.match(pattern, name))
            cells.append(f"{label} {n / 1e6:.1f} M")
        print(f"C library, {group}: " + ", ".join(cells))
    shown = [label for label in labels if label != "wasmtime"]
    header = ["function", *shown, f"wasmc/{base}" if base else "-", "% of wasmc"]
    rows = []
    for name, n in per_function["wasmc"].most_common(opts.top):
        row = [name[:48]] + [f"{per_function[label].get(name, 0) / 1e6:.2f}" for label in shown]
        other = per_function[base].get(name, 0) if base else 0
        row.append(f"{n / other:.2f}" if other else "-")
        row.append(f"{100 * n / totals['wasmc']:.1f}")
        rows.append(row)
    widths = [max(len(r[i]) for r in [header, *rows]) for i in range(len(header))]
    for row in [header, *rows]:
        print("  ".join(c.ljust(widths[0]) if i == 0 else c.rjust(widths[i]) for i, c in enumerate(row)))


if __name__ == "__main__":
    main()
