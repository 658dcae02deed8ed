"""Native builds of the real programs of fixtures/real: bench.py's gcc and clang columns.

The wasm modules of fixtures/real are built by fixtures/real/build.sh from sources it
fetches from the package registries; this module fetches the same sources (the same
pinned versions, read from build.sh so that there is one list of pins) and builds each
program for the host with `gcc -O2` and `clang -O2` and the same defines as the wasm
build. What cannot be the same, and is said in bench/README.md:
  - the C library: glibc here, wasi-libc (musl-based: its malloc, qsort, stdio) there;
  - the wasm-only adaptations of build.sh are left out (c/wasi_shims.c and the
    emulated signal/clock/mman libraries), except Lua's c/lua_wasi.h, which is kept
    so that both builds run the same interpreter (no setjmp: an error aborts);
  - C++: libstdc++ for both native builds (no native libc++ on the machine), libc++
    for wasm;
  - Rust: `cargo build --release` for the host; crates that detect CPU features at
    run time (sha2) use SHA/SSE instructions natively and portable code in wasm;
  - QuickJS: fixtures/real/quickjs.wasm is QuickJS-ng 0.11.0 built by others (wasi-sdk
    clang 19, asserts off); natively the same release from the sources bundled in the
    crate rquickjs-sys 0.11.0, with -DNDEBUG;
  - CPython: no native build (see MISSING).

Downloads and builds are cached under target/bench/native; an executable is rebuilt
when its command line changes. A build that fails leaves its cell empty with the
reason (bench.py prints it under the table); it never stops the benchmark.
"""

import json
import os
import re
import shutil
import subprocess

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
REAL = os.path.join(ROOT, "fixtures", "real")
DIR = os.path.join(ROOT, "target", "bench", "native")

# QuickJS-ng 0.11.0, the release of fixtures/real/quickjs.wasm: the crate rquickjs-sys
# 0.11.0 ships its complete source tree (qjs.c, quickjs-libc.c and the generated
# gen/repl.c, gen/standalone.c included).
RQUICKJS_SYS = "0.11.0"
QUICKJS_VERSION = (0, 11, 0)

# Programs without a native build, and why.
MISSING = {
    "cpython": "no native build: the CPython 3.12.0 source is on none of the registries the "
    "benchmark may fetch from (crates.io, PyPI, Debian, npm); python.wasm is also built "
    "with -O0 (see bench/README.md), so an -O2 native build would not compare like with like",
}

COMPILERS = {"gcc": ("gcc", "g++"), "clang": ("clang", "clang++")}

# Output that differs between the platforms for the same work, rewritten in the native
# output before it is compared with the wasm module's: (program, pattern, replacement).
OUTPUT_FIXUPS = [
    # Lua's io.open returns the C errno: ENOENT is 2 on Linux, 44 in WASI.
    ("lua", rb"(No such file or directory\t)2\n", rb"\g<1>44\n"),
]


def comparable_output(name, stdout):
    """The native program's standard output with the platform differences above
    rewritten to what the wasm module prints."""
    for program, pattern, replacement in OUTPUT_FIXUPS:
        if program == name:
            stdout = re.sub(pattern, replacement, stdout)
    return stdout


class BuildError(Exception):
    """A native build that could not be made; the message says why (one line)."""


def _reason(error):
    """One line for the table: a BuildError's message, or what else went wrong."""
    return str(error) if isinstance(error, BuildError) else f"unexpected {type(error).__name__}: {error}"


def pins():
    """The pinned versions at the top of fixtures/real/build.sh (NAME=value lines)."""
    found = {}
    with open(os.path.join(REAL, "build.sh")) as f:
        for line in f:
            m = re.match(r"^([A-Z0-9_]+)=(\S+)", line)
            if m:
                found[m.group(1)] = m.group(2)
    return found


def _run(cmd, cwd=None, what=None):
    try:
        done = subprocess.run(cmd, cwd=cwd, capture_output=True, text=True)
    except OSError as e:
        raise BuildError(f"{cmd[0]}: {e.strerror} (bench/setup.sh installs what the native builds need)") from e
    if done.returncode != 0:
        lines = (done.stderr or done.stdout).strip().splitlines()
        detail = next((line for line in lines if "error" in line.lower()), lines[-1] if lines else "")
        raise BuildError(f"{what or cmd[0]} failed (exit {done.returncode}): {detail.strip()[:200]}")
    return done.stdout


class Sources:
    """Third-party sources, fetched once into target/bench/native/src."""

    def __init__(self):
        self.dir = os.path.join(DIR, "src")
        self.pins = pins()
        self._crates = None
        self._failed = {}

    def _crate_dirs(self):
        """`cargo fetch` of a throw-away manifest, as build.sh does; name -> directory."""
        if self._crates is None:
            fetch = os.path.join(self.dir, "fetch")
            os.makedirs(os.path.join(fetch, "src"), exist_ok=True)
            open(os.path.join(fetch, "src", "lib.rs"), "a").close()
            manifest = (
                '[package]\nname = "fetch"\nversion = "0.0.0"\nedition = "2021"\n'
                "[workspace]\n[dependencies]\n"
                f'lua-src = "={self.pins["LUA_SRC"]}"\n'
                f'libz-sys = {{ version = "={self.pins["LIBZ_SYS"]}", default-features = false }}\n'
                f'bzip2-sys = "={self.pins["BZIP2_SYS"]}"\n'
                f'rquickjs-sys = "={RQUICKJS_SYS}"\n'
            )
            path = os.path.join(fetch, "Cargo.toml")
            if not os.path.exists(path) or open(path).read() != manifest:
                with open(path, "w") as f:
                    f.write(manifest)
            _run(["cargo", "fetch", "-q"], cwd=fetch, what="cargo fetch")
            meta = json.loads(_run(["cargo", "metadata", "-q", "--format-version", "1"], cwd=fetch, what="cargo metadata"))
            self._crates = {p["name"]: os.path.dirname(p["manifest_path"]) for p in meta["packages"]}
        return self._crates

    def crate(self, name, subdir):
        path = os.path.join(self._crate_dirs()[name], subdir)
        if not os.path.isdir(path):
            raise BuildError(f"{name}: no {subdir} in the fetched crate")
        return path

    def sqlite(self):
        """The SQLite amalgamation and shell, from the npm package build.sh uses."""
        autoconf = self.pins["SQLITE_AUTOCONF"]
        path = os.path.join(self.dir, autoconf)
        if not os.path.exists(os.path.join(path, "shell.c")):
            work = os.path.join(self.dir, "npm")
            shutil.rmtree(work, ignore_errors=True)
            os.makedirs(work)
            _run(["npm", "pack", "-q", self.pins["SQLITE_NPM"]], cwd=work, what="npm pack")
            tgz = next(f for f in os.listdir(work) if f.endswith(".tgz"))
            _run(["tar", "xzf", tgz, f"package/deps/{autoconf}.tar.gz"], cwd=work, what="tar")
            _run(["tar", "xzf", os.path.join(work, "package", "deps", f"{autoconf}.tar.gz")], cwd=self.dir, what="tar")
            shutil.rmtree(work)
        return path

    def get(self, name):
        """The source directory of a program (a cached failure is raised again)."""
        if name in self._failed:
            raise self._failed[name]
        try:
            if name == "sqlite":
                return self.sqlite()
            if name == "lua":
                return self.crate("lua-src", "lua-5.4.7")
            if name == "zlib":
                return self.crate("libz-sys", os.path.join("src", "zlib"))
            if name == "bzip2":
                return self.crate("bzip2-sys", "bzip2-1.0.8")
            if name == "quickjs":
                path = self.crate("rquickjs-sys", "quickjs")
                header = open(os.path.join(path, "quickjs.h")).read()
                version = tuple(
                    int(re.search(rf"#define QJS_VERSION_{part} (\d+)", header).group(1))
                    for part in ("MAJOR", "MINOR", "PATCH")
                )
                if version != QUICKJS_VERSION:
                    raise BuildError(f"rquickjs-sys {RQUICKJS_SYS} bundles QuickJS-ng {version}, not {QUICKJS_VERSION}")
                return path
            raise BuildError(f"no native recipe for {name}")
        except BuildError as e:
            self._failed[name] = e
            raise


def c_recipe(name, src):
    """(compiler kind, arguments before -o) of a C/C++ program: the flags of build.sh
    for the wasm build, without what only wasm needs."""
    c = os.path.join(REAL, "c")
    if name == "sqlite":
        defines = ["-DSQLITE_THREADSAFE=0", "-DSQLITE_OMIT_LOAD_EXTENSION", "-DSQLITE_NOHAVE_SYSTEM"]
        defines += ["-DSQLITE_ENABLE_MATH_FUNCTIONS"]
        return "c", [*defines, f"-I{src}", f"{src}/shell.c", f"{src}/sqlite3.c", "-lm"]
    if name == "lua":
        files = sorted(
            os.path.join(src, f) for f in os.listdir(src) if f.endswith(".c") and f not in ("lua.c", "luac.c", "onelua.c")
        )
        flags = ["-DLUA_COMPAT_5_3", "-include", f"{c}/lua_wasi.h", f"-I{c}/lua-include", f"-I{src}"]
        return "c", [*flags, *files, f"{c}/lua_main.c", "-lm"]
    if name == "zlib":
        units = "adler32 compress crc32 deflate gzclose gzlib gzread gzwrite infback inffast inflate inftrees trees uncompr zutil"
        files = [f"{src}/{u}.c" for u in units.split()]
        return "c", ["-DHAVE_UNISTD_H", "-DHAVE_STDARG_H", f"-I{src}", *files, f"{c}/zround.c"]
    if name == "bzip2":
        units = "blocksort huffman crctable randtable compress decompress bzlib bzip2"
        files = [f"{src}/{u}.c" for u in units.split()]
        return "c", ["-D_FILE_OFFSET_BITS=64", "-w", f"-I{src}", *files]
    if name == "cpp-inventory":
        return "c++", ["-std=c++17", "-fno-exceptions", os.path.join(REAL, "cpp", "inventory.cpp")]
    if name == "quickjs":
        # QuickJS-ng's CMakeLists: qjs = qjs.c + gen/repl.c + gen/standalone.c +
        # quickjs-libc.c on the library (cutils, dtoa, libregexp, libunicode, quickjs),
        # -D_GNU_SOURCE and -funsigned-char everywhere; a Release build has -DNDEBUG.
        units = "qjs.c gen/repl.c gen/standalone.c quickjs-libc.c cutils.c dtoa.c libregexp.c libunicode.c quickjs.c"
        files = [f"{src}/{u}" for u in units.split()]
        return "c", ["-D_GNU_SOURCE", "-DNDEBUG", "-funsigned-char", "-w", f"-I{src}", *files, "-lm", "-lpthread"]
    raise BuildError(f"no native recipe for {name}")


class NativeBuilds:
    """name -> {label: executable} for the real programs, with the reasons of the
    ones missing in `reasons` ((name, label) -> text)."""

    def __init__(self):
        self.sources = Sources()
        self.reasons = {}

    def _build_once(self, exe, cmd, cwd=None):
        """Runs `cmd` (which writes `exe`) unless `exe` exists from the same command."""
        stamp = exe + ".cmd"
        line = json.dumps(cmd)
        if os.path.exists(exe) and os.path.exists(stamp) and open(stamp).read() == line:
            return exe
        for stale in (exe, stamp):
            if os.path.exists(stale):
                os.remove(stale)
        _run(cmd, cwd=cwd, what=cmd[0])
        with open(stamp, "w") as f:
            f.write(line)
        return exe

    def rust(self):
        """rustapp for the host: the same crate and Cargo.lock as the wasm build."""
        target = os.path.join(DIR, "rust-target")
        exe = os.path.join(DIR, "rust-app.rustc")
        cmd = ["cargo", "build", "-q", "--locked", "--release", "--target-dir", target]
        _run(cmd, cwd=os.path.join(REAL, "rust"), what="cargo build")  # cargo is incremental itself
        shutil.copy2(os.path.join(target, "release", "rustapp"), exe)
        return exe

    def build(self, name, labels=("gcc", "clang")):
        """The native executables of one real program that could be built."""
        os.makedirs(DIR, exist_ok=True)
        if name in MISSING:
            for label in labels:
                self.reasons[(name, label)] = MISSING[name]
            return {}
        if name == "rust-app":
            # One native build, by rustc (LLVM), shown in the clang column.
            self.reasons[(name, "gcc")] = "Rust: one native build (rustc, LLVM), shown as clang"
            try:
                return {"clang": self.rust()}
            except Exception as e:  # noqa: BLE001 (a native build never stops the benchmark)
                self.reasons[(name, "clang")] = _reason(e)
                return {}
        built = {}
        for label in labels:
            try:
                src = self.sources.get(name) if name != "cpp-inventory" else None
                kind, args = c_recipe(name, src)
                compiler = COMPILERS[label][0 if kind == "c" else 1]
                if not shutil.which(compiler):
                    raise BuildError(f"{compiler} is not installed")
                exe = os.path.join(DIR, f"{name}.{label}")
                built[label] = self._build_once(exe, [compiler, "-O2", *args, "-o", exe])
            except Exception as e:  # noqa: BLE001 (a native build never stops the benchmark)
                self.reasons[(name, label)] = _reason(e)
        return built
