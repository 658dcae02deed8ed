#!/usr/bin/env python3
"""The run-time cost of Spectre guards (`select_spectre_guard` on explicitly
bounds-checked addresses; see docs/ARCHITECTURE.md, "Linear memory and bounds checks").

Each C program of bench/src is compiled once to wasm (clang -O2 --target=wasm32-wasi)
and then by wasmc four ways: guard pages (the default; only table accesses such as
`call_indirect` are guarded) with and without `--no-spectre-guards`, and
`--explicit-bounds-checks` (every memory access guarded) with and without it. The
executables run in turn, RUNS rounds, and the table shows the median CPU time (user +
system of the whole process, which other load on the machine disturbs less than wall
time) of each, and the cost of the guards in each mode (guarded / unguarded).

    bench/spectre.py [RUNS]     (default 5; builds wasmc in release mode first)
"""

import os
import statistics
import subprocess
import sys

root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
runs = int(sys.argv[1]) if len(sys.argv) > 1 else 5
out = os.path.join(root, "target", "bench-spectre")
os.makedirs(out, exist_ok=True)
subprocess.run(
    ["cargo", "build", "--quiet", "--release", "-p", "wasmc", "--manifest-path", os.path.join(root, "Cargo.toml")],
    check=True,
)
wasmc = os.path.join(root, "target", "release", "wasmc")


def cpu_time(cmd):
    """User + system seconds of one run of `cmd` (which must succeed)."""
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL)
    _, status, usage = os.wait4(proc.pid, 0)
    code = os.waitstatus_to_exitcode(status)
    if code != 0:
        raise SystemExit(f"{cmd[0]} exited with {code}")
    return usage.ru_utime + usage.ru_stime


VARIANTS = [
    ("pages", []),
    ("pages-off", ["--no-spectre-guards"]),
    ("explicit", ["--explicit-bounds-checks"]),
    ("explicit-off", ["--explicit-bounds-checks", "--no-spectre-guards"]),
]
# (label, guarded variant, unguarded variant)
COSTS = [("pages", "pages", "pages-off"), ("explicit", "explicit", "explicit-off")]

programs = sorted(f[:-2] for f in os.listdir(os.path.join(root, "bench", "src")) if f.endswith(".c"))
for name in programs:
    wasm = os.path.join(out, name + ".wasm")
    subprocess.run(["clang", "--target=wasm32-wasi", "-O2", "-o", wasm, os.path.join(root, "bench", "src", name + ".c")], check=True)
    for variant, flags in VARIANTS:
        subprocess.run([wasmc, wasm, "-o", os.path.join(out, f"{name}.{variant}"), *flags], check=True)

print(
    f"{'program':<10}"
    + "".join(f"{v:>14}" for v, _ in VARIANTS)
    + "".join(f"{label + ' cost':>16}" for label, _, _ in COSTS)
)
ratios = {label: [] for label, _, _ in COSTS}
for name in programs:
    samples = {v: [] for v, _ in VARIANTS}
    for _ in range(runs):
        for variant, _ in VARIANTS:
            samples[variant].append(cpu_time([os.path.join(out, f"{name}.{variant}")]))
    medians = {v: statistics.median(s) for v, s in samples.items()}
    row = f"{name:<10}" + "".join(f"{medians[v]:>13.3f}s" for v, _ in VARIANTS)
    for label, on, off in COSTS:
        ratio = medians[on] / medians[off]
        ratios[label].append(ratio)
        row += f"{ratio:>15.3f}x"
    print(row)
print(f"{'geomean':<10}" + " " * 14 * len(VARIANTS) + "".join(f"{statistics.geometric_mean(r):>15.3f}x" for r in ratios.values()))
