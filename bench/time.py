"""Times the programs built by bench/run.sh and prints one table (best of N runs)."""
import glob
import os
import subprocess
import sys
import time

out, wasmc, runs, root = sys.argv[1], sys.argv[2], int(sys.argv[3]), sys.argv[4]


def best(cmd, **kw):
    times = []
    for _ in range(runs):
        start = time.perf_counter()
        subprocess.run(cmd, check=True, stdout=subprocess.DEVNULL, **kw)
        times.append(time.perf_counter() - start)
    return min(times)


try:
    import wasmtime  # the real wasmtime engine, from PyPI

    engine = wasmtime.Engine()
except ImportError:
    wasmtime = None


def wasmtime_run(path):
    """Seconds to instantiate and run _start, excluding compilation (like wasmc)."""
    module = wasmtime.Module.from_file(engine, path)
    times = []
    for _ in range(runs):
        store = wasmtime.Store(engine)
        wasi = wasmtime.WasiConfig()
        wasi.stdout_file = os.devnull
        store.set_wasi(wasi)
        linker = wasmtime.Linker(engine)
        linker.define_wasi()
        start = time.perf_counter()
        linker.instantiate(store, module).exports(store)["_start"](store)
        times.append(time.perf_counter() - start)
    return min(times)


print(f"{'program':<10} {'native':>9} {'wasmc':>9} {'wasmtime':>9} {'wasmc/native':>13} {'wasmc/wasmtime':>15}")
for wasm in sorted(glob.glob(os.path.join(out, "*.wasm"))):
    name = os.path.basename(wasm)[:-5]
    native = best([os.path.join(out, name + ".native")])
    ours = best([os.path.join(out, name + ".wasmc")])
    wt = wasmtime_run(wasm) if wasmtime else float("nan")
    print(f"{name:<10} {native:>8.3f}s {ours:>8.3f}s {wt:>8.3f}s {ours / native:>12.2f}x {ours / wt:>14.2f}x")

print()
for fixture in ["fixtures/rust-hello/rust-hello.wasm", "fixtures/copy/copy.wasm", "fixtures/wasi/rust/wasi_std.wasm", "fixtures/wasi/c/wasi_calls.wasm"]:
    path = os.path.join(root, fixture)
    if os.path.exists(path):
        t = best([wasmc, path, "-o", os.path.join(out, "compile-test")])
        size = os.path.getsize(path)
        print(f"compile {fixture} ({size} bytes): {t * 1000:.0f} ms (wasmc, compile + link)")
subprocess.run([wasmc, os.path.join(root, "fixtures/hello/hello.wat"), "-o", os.path.join(out, "hello")], check=True)
t = best([os.path.join(out, "hello")])
print(f"hello-world executable: start to exit {t * 1000:.2f} ms, {os.path.getsize(os.path.join(out, 'hello'))} bytes")
