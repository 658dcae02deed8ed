#!/usr/bin/env python3
"""The run-time cost of wasmc's resource limits (issue: packaging sandboxed tools).

Each C program of bench/src is compiled once to wasm (clang -O2 --target=wasm32-wasi)
and then by wasmc four ways: no limits, `--timeout 1h`, `--max-memory 1G` and
`--fuel <huge>` (fuel metering compiled in, a budget that never runs out). The
executables run in turn, RUNS rounds, and the table shows the median CPU time (user +
system, of the whole process, so that other load on the machine disturbs it less than
wall time) of each and its ratio to the unlimited build.

    bench/limits.py [RUNS]      (default 5; builds wasmc in release mode first)
"""

import os
import statistics
import subprocess
import sys

root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
runs = int(sys.argv[1]) if len(sys.argv) > 1 else 5
out = os.path.join(root, "target", "bench-limits")
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
    proc.returncode = os.waitstatus_to_exitcode(status)
    if proc.returncode != 0:
        raise SystemExit(f"{cmd[0]} exited with {proc.returncode}")
    return usage.ru_utime + usage.ru_stime


VARIANTS = [
    ("plain", []),
    ("timeout", ["--timeout", "1h"]),
    ("max-memory", ["--max-memory", "1G"]),
    ("fuel", ["--fuel", str(2**62)]),
]

programs = sorted(f[:-2] for f in os.listdir(os.path.join(root, "bench", "src")) if f.endswith(".c"))
for name in programs:
    wasm = os.path.join(out, name + ".wasm")
    subprocess.run(["clang", "--target=wasm32-wasi", "-O2", "-o", wasm, os.path.join(root, "bench", "src", name + ".c")], check=True)
    for variant, flags in VARIANTS:
        subprocess.run([wasmc, wasm, "-o", os.path.join(out, f"{name}.{variant}"), *flags], check=True)

print(f"{'program':<10}" + "".join(f"{v:>12}" for v, _ in VARIANTS) + "".join(f"{v + '/plain':>18}" for v, _ in VARIANTS[1:]))
ratios = {v: [] for v, _ in VARIANTS[1:]}
for name in programs:
    samples = {v: [] for v, _ in VARIANTS}
    for _ in range(runs):
        for variant, _ in VARIANTS:
            samples[variant].append(cpu_time([os.path.join(out, f"{name}.{variant}")]))
    medians = {v: statistics.median(s) for v, s in samples.items()}
    row = f"{name:<10}" + "".join(f"{medians[v]:>11.3f}s" for v, _ in VARIANTS)
    for v, _ in VARIANTS[1:]:
        ratio = medians[v] / medians["plain"]
        ratios[v].append(ratio)
        row += f"{ratio:>17.3f}x"
    print(row)
print(f"{'geomean':<10}" + " " * 12 * len(VARIANTS) + "".join(f"{statistics.geometric_mean(r):>17.3f}x" for r in ratios.values()))
