#!/usr/bin/env python3
"""The run-time cost of a wasmc option: each C program of bench/src is compiled once
to wasm (clang -O2 --target=wasm32-wasi), then by wasmc once per variant of the chosen
comparison; the executables run in turn, RUNS rounds, and the table shows the median
CPU time of each (user + system of the whole process, which other load on the machine
disturbs less than wall time) and the ratios named by the comparison.

    bench/variants.py limits  [RUNS]   --timeout, --max-memory and --fuel vs no limits
    bench/variants.py spectre [RUNS]   Spectre guards on/off, with guard pages and with
                                       --explicit-bounds-checks

RUNS defaults to 5; wasmc is built in release mode first.
"""

import os
import statistics
import subprocess
import sys

# name -> (variants: [(label, wasmc flags)], ratios: [(label, numerator, denominator)])
COMPARISONS = {
    "limits": (
        [
            ("plain", []),
            ("timeout", ["--timeout", "1h"]),
            ("max-memory", ["--max-memory", "1G"]),
            # Fuel metering compiled in, with a budget that never runs out.
            ("fuel", ["--fuel", str(2**62)]),
        ],
        [
            ("timeout/plain", "timeout", "plain"),
            ("max-memory/plain", "max-memory", "plain"),
            ("fuel/plain", "fuel", "plain"),
        ],
    ),
    "spectre": (
        [
            ("pages", []),
            ("pages-off", ["--no-spectre-guards"]),
            ("explicit", ["--explicit-bounds-checks"]),
            ("explicit-off", ["--explicit-bounds-checks", "--no-spectre-guards"]),
        ],
        [
            ("pages cost", "pages", "pages-off"),
            ("explicit cost", "explicit", "explicit-off"),
        ],
    ),
}


def cpu_time(cmd):
    """User + system seconds of one run of `cmd` (which must succeed)."""
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL)
    _, status, usage = os.wait4(proc.pid, 0)
    code = os.waitstatus_to_exitcode(status)
    if code != 0:
        raise SystemExit(f"{cmd[0]} exited with {code}")
    return usage.ru_utime + usage.ru_stime


def main():
    if len(sys.argv) < 2 or sys.argv[1] not in COMPARISONS:
        raise SystemExit(f"usage: {sys.argv[0]} {{{'|'.join(COMPARISONS)}}} [RUNS]")
    name = sys.argv[1]
    variants, ratio_specs = COMPARISONS[name]
    runs = int(sys.argv[2]) if len(sys.argv) > 2 else 5
    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    out = os.path.join(root, "target", f"bench-{name}")
    os.makedirs(out, exist_ok=True)
    subprocess.run(
        ["cargo", "build", "--quiet", "--release", "-p", "wasmc", "--manifest-path", os.path.join(root, "Cargo.toml")],
        check=True,
    )
    wasmc = os.path.join(root, "target", "release", "wasmc")

    src = os.path.join(root, "bench", "src")
    programs = sorted(f[:-2] for f in os.listdir(src) if f.endswith(".c"))
    for program in programs:
        wasm = os.path.join(out, program + ".wasm")
        subprocess.run(["clang", "--target=wasm32-wasi", "-O2", "-o", wasm, os.path.join(src, program + ".c")], check=True)
        for variant, flags in variants:
            subprocess.run([wasmc, wasm, "-o", os.path.join(out, f"{program}.{variant}"), *flags], check=True)

    print(f"{'program':<10}" + "".join(f"{v:>14}" for v, _ in variants) + "".join(f"{r:>18}" for r, _, _ in ratio_specs))
    ratios = {r: [] for r, _, _ in ratio_specs}
    for program in programs:
        samples = {v: [] for v, _ in variants}
        for _ in range(runs):
            for variant, _ in variants:
                samples[variant].append(cpu_time([os.path.join(out, f"{program}.{variant}")]))
        medians = {v: statistics.median(s) for v, s in samples.items()}
        row = f"{program:<10}" + "".join(f"{medians[v]:>13.3f}s" for v, _ in variants)
        for label, top, bottom in ratio_specs:
            ratio = medians[top] / medians[bottom]
            ratios[label].append(ratio)
            row += f"{ratio:>17.3f}x"
        print(row)
    print(f"{'geomean':<10}" + " " * 14 * len(variants) + "".join(f"{statistics.geometric_mean(r):>17.3f}x" for r in ratios.values()))


main()
