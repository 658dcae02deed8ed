#!/usr/bin/env python3
"""CPU-time samples of one workload, per function, under every runtime side by side.

    bench/perfcompare.py WORKLOAD [--labels wasmc,wasmtime,clang] [--runs N] [--top N]

The companion of cgcompare.py for wasmtime, whose JIT-loaded code cachegrind cannot
name: each runtime runs the workload N times (in turn, in fresh copies of its data)
under `perf record -e cpu-clock` (this VM has no hardware counters), wasmtime with
`--profile perfmap` so that perf names its functions. Function names are reduced to
the source name (`wasm[N]::NAME`, `wasm[0]::function[N]::NAME` and gcc's clone
suffixes dropped) and the samples of every run summed, so rows line up across
runtimes. Samples are CPU time, so load on the machine disturbs them (less than
whole-process times, as every runtime is disturbed alike); cgcompare.py's
instruction counts are the steadier measure where they apply.
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


def samples_per_function(data):
    """{function: samples} from a perf.data file."""
    report = subprocess.run(
        ["perf", "report", "-i", data, "--stdio", "-n", "--sort", "sym"], capture_output=True, text=True
    ).stdout
    counts = collections.Counter()
    for line in report.splitlines():
        m = re.match(r"\s*[\d.]+%\s+(\d+)\s+\[.\]\s+(.*\S)", line)
        if m:
            name = re.sub(r"^wasm\[0\]::function\[\d+\]::", "", m.group(2))
            counts[cgcompare.common_name(name)] += int(m.group(1))
    return counts


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("workload")
    parser.add_argument("--labels", default="wasmc,wasmtime,clang")
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--top", type=int, default=20)
    opts = parser.parse_args()

    bench.WASMTIME = bench.find_wasmtime()
    w = cgcompare.workload(opts.workload)
    runtimes = bench.Runtimes(os.path.join(bench.ROOT, "target", "release", "wasmc"), [])
    labels = [label for label in opts.labels.split(",") if label in w.native or label in ("wasmc", "wasmtime")]
    counts = {label: collections.Counter() for label in labels}
    with tempfile.TemporaryDirectory() as tmp:
        for run in range(opts.runs):
            for label in labels:
                data = os.path.join(tmp, f"{label}.{run}.data")
                with bench.scratch_copy(w) as (scratch, cwd):
                    cmd = runtimes.command(w, label, scratch)
                    if label == "wasmtime":
                        cmd = [cmd[0], cmd[1], "--profile=perfmap", *cmd[2:]]
                    record = ["perf", "record", "-q", "-e", "cpu-clock", "-F", "4000", "-o", data, "--", *cmd]
                    subprocess.run(record, cwd=cwd, env=runtimes.env(w, label), capture_output=True)
                counts[label] += samples_per_function(data)
    totals = {label: sum(c.values()) for label in labels for c in [counts[label]]}
    print(f"{w.name}: perf samples (cpu-clock, 4 kHz) summed over {opts.runs} runs of each")
    print("  ".join(f"{label} {totals[label]}" for label in labels))
    ratio = [label for label in labels if label != "wasmc"]
    header = ["function", *labels, *[f"wasmc/{label}" for label in ratio]]
    rows = []
    for name, n in counts["wasmc"].most_common(opts.top):
        row = [name[:48]] + [str(counts[label].get(name, 0)) for label in labels]
        row += [f"{n / counts[label][name]:.2f}" if counts[label].get(name) else "-" for label in ratio]
        rows.append(row)
    widths = [max(len(r[i]) for r in [header, *rows]) for i in range(len(header))]
    for row in [header, *rows]:
        print("  ".join(c.ljust(widths[0]) if i == 0 else c.rjust(widths[i]) for i, c in enumerate(row)))


if __name__ == "__main__":
    main()
