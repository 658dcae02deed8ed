#!/usr/bin/env python3
"""Differential fuzzer of wasmc's WASI layer against wasmtime.

Generates scripts of raw WASI preview1 calls (paths with `..`, symlinks absolute and
relative, hard links, renames across the two preopens, odd flags and rights, bad
descriptors, and a last "hostile" call with a wild or misaligned pointer or an
undefined flag/enum value), runs each in a fresh directory tree through the same
guest (`interp.wasm`, built from interp.c) compiled by wasmc and under `wasmtime
run`, and compares every errno, every output record, every byte read, and the
final trees (walk + contents + link targets + link counts).

Outputs are normalized before comparison: inode numbers are renamed by first
appearance (identity is compared, not the host's numbers), timestamps within a day
of now become NOW, clock readings and random bytes are masked, and readdir results
are compared as sets (the host's entry order is the file system's, not WASI's).

The only accepted divergences are INTENDED (see README.md next to this file):
where wasmtime traps on a guest pointer outside memory, wasmc returns EFAULT; where
it traps on an undefined flag bit or enum value, wasmc returns EINVAL; where it
traps on a misaligned pointer, wasmc does the call. In each case the comparison
stops at that call (it is always the script's last), and the trees are compared
only for EINVAL (neither side did anything).

  fuzz_wasi.py run --wasmc-exe EXE --wasmtime WASMTIME [--seed N] [--scripts N]
                   [--calls N] [--record FILE] [--findings DIR]
  fuzz_wasi.py check --wasmc-exe EXE --expected FILE

`run` compares live (and with --record, stores each script with wasmtime's
normalized result); `check` replays recorded scripts against wasmc alone, so CI
needs no wasmtime (tests/wasi_fuzz.rs does this). Exit status 1 on any finding.
"""

import argparse
import hashlib
import json
import os
import random
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
GUEST = HERE.parent.parent / "fixtures" / "wasi-fuzz" / "interp.wasm"
# The same guest made a WASI 0.2 component with the preview1 adapter: both runtimes
# then run the same adapter code, and only their WASI 0.2 hosts differ.
GUEST_P2 = HERE.parent.parent / "fixtures" / "wasi-fuzz" / "interp-p2.wasm"

# Arena layout (offsets; all 8-aligned).
P1, P2, IOV, DATA, OUT, SUBS, EVENTS, RBUF = 0, 1024, 2048, 4096, 8192, 12288, 16384, 20480
RBUF_LEN = 8192

PATHS = [
    "f1", "f2", "d1", "d1/f3", "d1/d2", "d1/d2/f4", "l1", "ld", "lloop", "lout", "labs",
    "new", "new2", "d1/new", "", ".", "..", "../a/f1", "../b/g1", "d1/..", "d1/../f1",
    "d1/../../x", "/f1", "/", "f1/", "d1/", "nonexist/f", "f1/x", "l1/x", "ld/f3",
    "g1", "e1", "e1/n", "x" * 300, "d1//f3", "./f1", "lout/a/f1", "labs/passwd",
]
RAW_PATHS = [b"\xff\xfe", b"a\x00b"]
TARGETS = [
    "f1", "d1", "../f1", "/etc/passwd", "/", "nonexist", "lloop", "d1/f3", "../../etc",
    "..", "../b/g1", ".", "new",
]
RIGHTS = [2, 64, 66, 0, 0x3FFFFFFF, 2 | (1 << 14), 0x1FFFFFFF]
INTENDED = {"oob": 21, "invalid": 28}


def initial_tree(root: Path):
    a, b = root / "a", root / "b"
    a.mkdir()
    b.mkdir()
    (a / "f1").write_bytes(b"hello world\n")
    (a / "d1").mkdir()
    (a / "d1" / "f3").write_bytes(b"three")
    os.symlink("f1", a / "l1")
    os.symlink("d1", a / "ld")
    os.symlink("lloop", a / "lloop")
    os.symlink("../", a / "lout")
    os.symlink("/etc", a / "labs")
    (b / "g1").write_bytes(b"gee")
    (b / "e1").mkdir()


class Gen:
    def __init__(self, rng: random.Random):
        self.r = rng
        self.lines = []

    def emit(self, line):
        self.lines.append(line)

    def hexs(self, b: bytes):
        return b.hex()

    def path(self, slot):
        r = self.r
        if r.random() < 0.04:
            b = r.choice(RAW_PATHS)
        else:
            b = r.choice(PATHS).encode()
        self.emit(f"w {slot} {b.hex()}")
        return f"A+{slot} {len(b)}"

    def fd(self):
        r = self.r.random()
        if r < 0.45:
            return self.r.choice(["3", "4"])
        if r < 0.85:
            return f"R{self.r.randrange(4)}"
        return self.r.choice(["0", "1", "2", "5", "9", "99", "0xffffffff"])

    def dirfd(self):
        return self.r.choice(["3", "3", "4", "R0", "R1", "9"])

    def mutfd(self):
        # Never stdout/stderr: the interpreter reports through them.
        return self.r.choice(["3", "4", "R0", "R1", "R2", "0", "9"])

    def out(self, k=0):
        return OUT + 64 * k

    def dump(self, off, n, tag):
        self.emit(f"d {off} {n} {tag}")

    def zero_outs(self):
        self.emit(f"z {OUT} 512")

    def call(self):
        r = self.r
        self.zero_outs()
        kind = r.choice(CALLS)
        getattr(self, "c_" + kind)()

    # ------------------------------------------------------------ calls
    def c_path_open(self):
        r = self.r
        p = self.path(P1)
        oflags = r.choice([0, 0, 1, 1, 5, 8, 9, 2, 3, 6, 10, 15])
        rights = r.choice(RIGHTS)
        fdflags = r.choice([0, 0, 1, 4, 5, 16, 2, 8])
        o = self.out()
        self.emit(f"c path_open {self.dirfd()} {r.choice([0, 1])} {p} {oflags} {rights} "
                  f"{r.choice(RIGHTS)} {fdflags} A+{o}")
        self.dump(o, 4, "u32")
        self.emit(f"r {o}")

    def iov(self, data_len, write=None):
        r = self.r
        vecs = []
        if r.random() < 0.3:
            vecs.append((DATA, 0))
        vecs.append((DATA, data_len))
        if r.random() < 0.3:
            vecs.append((DATA + 2048, 7))
        # The interpreter relocates the arena offsets into addresses.
        self.emit(f"I {IOV} " + " ".join(f"{a}:{n}" for a, n in vecs))
        if write is not None:
            self.emit(f"w {DATA} {write.hex()}")
        return f"A+{IOV} {len(vecs)}"

    def c_fd_read(self):
        n = self.r.choice([0, 1, 5, 100, 2000])
        self.emit(f"z {DATA} 4096")
        iov = self.iov(n)
        o = self.out()
        self.emit(f"c fd_read {self.fd()} {iov} A+{o}")
        self.dump(o, 4, "u32")
        self.dump(DATA, max(n, 8), "bytes")

    def c_fd_pread(self):
        n = self.r.choice([0, 1, 5, 100])
        self.emit(f"z {DATA} 4096")
        iov = self.iov(n)
        o = self.out()
        off = self.r.choice([0, 1, 3, 100, 1 << 40])
        self.emit(f"c fd_pread {self.fd()} {iov} {off} A+{o}")
        self.dump(o, 4, "u32")
        self.dump(DATA, max(n, 8), "bytes")

    def wdata(self):
        n = self.r.choice([0, 1, 6, 40])
        return bytes(self.r.randrange(32, 127) for _ in range(n))

    def c_fd_write(self):
        d = self.wdata()
        iov = self.iov(len(d), d)
        o = self.out()
        self.emit(f"c fd_write {self.fd()} {iov} A+{o}")
        self.dump(o, 4, "u32")

    def c_fd_pwrite(self):
        d = self.wdata()
        iov = self.iov(len(d), d)
        o = self.out()
        off = self.r.choice([0, 2, 50, 4000])
        self.emit(f"c fd_pwrite {self.fd()} {iov} {off} A+{o}")
        self.dump(o, 4, "u32")

    def c_fd_seek(self):
        o = self.out()
        off = self.r.choice([-100, -1, 0, 1, 5, 100, 1 << 40, -(1 << 63)])
        self.emit(f"c fd_seek {self.fd()} {off} {self.r.randrange(3)} A+{o}")
        self.dump(o, 8, "u64")

    def c_fd_tell(self):
        o = self.out()
        self.emit(f"c fd_tell {self.fd()} A+{o}")
        self.dump(o, 8, "u64")

    def c_fd_close(self):
        self.emit(f"c fd_close {self.mutfd()}")

    def c_fd_renumber(self):
        self.emit(f"c fd_renumber {self.mutfd()} {self.mutfd()}")

    def c_fd_filestat_get(self):
        o = self.out()
        self.emit(f"c fd_filestat_get {self.fd()} A+{o}")
        self.dump(o, 64, "filestat")

    def c_fd_fdstat_get(self):
        o = self.out()
        self.emit(f"c fd_fdstat_get {self.fd()} A+{o}")
        self.dump(o, 24, "fdstat")

    def c_fd_fdstat_set_flags(self):
        self.emit(f"c fd_fdstat_set_flags {self.fd()} {self.r.choice([0, 1, 4, 5, 2, 16])}")

    def c_fd_fdstat_set_rights(self):
        self.emit(f"c fd_fdstat_set_rights {self.fd()} {self.r.choice(RIGHTS)} 0")

    def c_fd_filestat_set_size(self):
        self.emit(f"c fd_filestat_set_size {self.fd()} {self.r.choice([0, 3, 100, 5000])}")

    def times(self):
        r = self.r
        vals = [0, 1_000_000_000, 1_234_567_890_123_456_789, 86_400_000_000_123]
        return f"{r.choice(vals)} {r.choice(vals)} {r.randrange(16)}"

    def c_fd_filestat_set_times(self):
        self.emit(f"c fd_filestat_set_times {self.fd()} {self.times()}")

    def c_path_filestat_set_times(self):
        p = self.path(P1)
        self.emit(f"c path_filestat_set_times {self.dirfd()} {self.r.choice([0, 1])} {p} "
                  f"{self.times()}")

    def c_fd_advise(self):
        self.emit(f"c fd_advise {self.fd()} {self.r.choice([0, 5])} {self.r.choice([0, 10])} "
                  f"{self.r.randrange(6)}")

    def c_fd_allocate(self):
        self.emit(f"c fd_allocate {self.fd()} 0 {self.r.choice([0, 10])}")

    def c_fd_sync(self):
        self.emit(f"c {self.r.choice(['fd_sync', 'fd_datasync'])} {self.fd()}")

    def c_fd_readdir(self):
        r = self.r
        buflen = r.choice([0, 10, 24, 100, 4096])
        cookie = r.choice([0, 0, 0, 2, 1 << 63])
        o = self.out()
        self.emit(f"z {RBUF} {RBUF_LEN}")
        self.emit(f"c fd_readdir {self.fd()} A+{RBUF} {buflen} {cookie} A+{o}")
        self.dump(o, 4, f"rdused:{buflen}:{cookie}")
        if buflen == 4096:
            self.dump(RBUF, buflen, "dirents")

    def c_list(self):
        self.emit(f"L {self.fd()} {self.r.choice([24, 40, 100, 4096])}")

    def c_fd_prestat(self):
        o = self.out()
        self.emit(f"c fd_prestat_get {self.fd()} A+{o}")
        self.dump(o, 8, "bytes")
        n = self.r.choice([0, 1, 10])
        self.emit(f"c fd_prestat_dir_name {self.fd()} A+{o + 8} {n}")
        self.dump(o + 8, 10, "bytes")

    def c_path_create_directory(self):
        self.emit(f"c path_create_directory {self.dirfd()} {self.path(P1)}")

    def c_path_remove_directory(self):
        self.emit(f"c path_remove_directory {self.dirfd()} {self.path(P1)}")

    def c_path_unlink_file(self):
        self.emit(f"c path_unlink_file {self.dirfd()} {self.path(P1)}")

    def c_path_rename(self):
        self.emit(f"c path_rename {self.dirfd()} {self.path(P1)} {self.dirfd()} "
                  f"{self.path(P2)}")

    def c_path_link(self):
        self.emit(f"c path_link {self.dirfd()} {self.r.choice([0, 0, 1])} {self.path(P1)} "
                  f"{self.dirfd()} {self.path(P2)}")

    def c_path_symlink(self):
        t = self.r.choice(TARGETS).encode()
        self.emit(f"w {P1} {t.hex()}")
        self.emit(f"c path_symlink A+{P1} {len(t)} {self.dirfd()} {self.path(P2)}")

    def c_path_readlink(self):
        o = self.out()
        n = self.r.choice([0, 3, 100])
        self.emit(f"z {DATA} 128")
        self.emit(f"c path_readlink {self.dirfd()} {self.path(P1)} A+{DATA} {n} A+{o}")
        self.dump(o, 4, "u32")
        self.dump(DATA, 100, "bytes")

    def c_path_filestat_get(self):
        o = self.out()
        self.emit(f"c path_filestat_get {self.dirfd()} {self.r.choice([0, 1])} "
                  f"{self.path(P1)} A+{o}")
        self.dump(o, 64, "filestat")

    def c_poll_oneoff(self):
        r = self.r
        n = r.choice([1, 1, 2, 3])
        raw = b""
        # With several subscriptions, clocks are either long past (absolute
        # monotonic 0: ready at once in both) or far away (10 s), and one
        # subscription is always ready at once: whether wasmtime reports a short
        # timer along with a ready descriptor depends on its timer's millisecond
        # tick (a race, see README.md). A lone timer may be short.
        ready = r.randrange(n)
        for i in range(n):
            kind = r.choice(["clock", "clock", "read", "write"])
            sub = bytearray(48)
            sub[0:8] = (1000 + i).to_bytes(8, "little")
            if n > 1 and i == ready:
                kind = r.choice(["past", "stdout"])
            if kind == "past":
                sub[8] = 0
                sub[16:20] = (1).to_bytes(4, "little")
                sub[40:42] = (1).to_bytes(2, "little")
            elif kind == "stdout":
                sub[8] = 2
                sub[16:20] = (1).to_bytes(4, "little")
            elif kind == "clock" and n > 1:
                sub[8] = 0
                sub[16:20] = r.choice([0, 1]).to_bytes(4, "little")
                past = r.random() < 0.5
                sub[24:32] = (0 if past else 10**10).to_bytes(8, "little")
                sub[40:42] = (1 if past else 0).to_bytes(2, "little")
                if past:
                    sub[16:20] = (1).to_bytes(4, "little")
            elif kind == "clock":
                sub[8] = 0
                sub[16:20] = r.choice([0, 1, 2]).to_bytes(4, "little")
                timeout = r.choice([0, 0, 1000])
                sub[24:32] = timeout.to_bytes(8, "little")
                sub[40:42] = r.choice([0, 0, 1]).to_bytes(2, "little")
            else:
                sub[8] = 1 if kind == "read" else 2
                # Not stdin: when wasmtime's stdin worker thread reports it
                # ready is a race (see README.md).
                fd = r.choice([1, 3, 5, 6, 99])
                sub[16:20] = fd.to_bytes(4, "little")
            raw += bytes(sub)
        self.emit(f"w {SUBS} {raw.hex()}")
        self.emit(f"z {EVENTS} {32 * n}")
        o = self.out()
        self.emit(f"c poll_oneoff A+{SUBS} A+{EVENTS} {n} A+{o}")
        self.dump(o, 4, "u32")
        self.dump(EVENTS, 32 * n, "events")

    def c_clock(self):
        o = self.out()
        cid = self.r.randrange(4)
        if self.r.random() < 0.5:
            self.emit(f"c clock_time_get {cid} 0 A+{o}")
        else:
            self.emit(f"c clock_res_get {cid} A+{o}")
        self.dump(o, 8, "time")

    def c_random_get(self):
        self.emit(f"c random_get A+{DATA} {self.r.choice([0, 1, 64])}")

    def c_sizes(self):
        o = self.out()
        name = self.r.choice(["args_sizes_get", "environ_sizes_get"])
        self.emit(f"c {name} A+{o} A+{o + 8}")
        self.dump(o, 12, "sizes")

    def c_sock(self):
        r = self.r
        o = self.out()
        k = r.randrange(4)
        fd = self.fd()
        if k == 0:
            self.emit(f"c sock_accept {fd} 0 A+{o}")
        elif k == 1:
            self.emit(f"c sock_recv {fd} A+{IOV} 0 0 A+{o} A+{o + 8}")
        elif k == 2:
            self.emit(f"c sock_send {fd} A+{IOV} 0 0 A+{o}")
        else:
            self.emit(f"c sock_shutdown {fd} {r.randrange(4)}")

    def c_misc(self):
        if self.r.random() < 0.5:
            self.emit(f"c proc_raise {self.r.randrange(31)}")
        else:
            self.emit("c sched_yield")

    # ------------------------------------------------------------ the hostile tail
    def hostile(self):
        r = self.r
        self.zero_outs()
        p = f"A+{P1} 2"
        self.emit(f"w {P1} 6631")
        wild = r.choice(["E-2", "E-1", "0xfffffff0", "0xffffffff"])
        odd = f"A+{OUT + 1}"
        choices = [
            f"c path_open 3 0 {p} 1 66 66 0 {wild}",
            f"c path_open 3 0 {wild} 10 0 2 2 0 A+{OUT}",
            f"c fd_filestat_get 3 {wild}",
            f"c fd_read 3 {wild} 1 A+{OUT}",
            f"c fd_write 1 {wild} 1 A+{OUT}",
            f"c path_create_directory 3 {wild} 4",
            f"c fd_readdir 3 {wild} 100 0 A+{OUT}",
            f"c poll_oneoff {wild} A+{EVENTS} 1 A+{OUT}",
            f"c args_sizes_get {wild} A+{OUT}",
            f"c random_get {wild} 16",
            f"c fd_seek 3 0 0 {odd}",
            f"c fd_tell 3 {odd}",
            f"c path_filestat_get 3 0 {p} {odd}",
            f"c fd_fdstat_get 3 {odd}",
            f"c path_open 3 2 {p} 0 2 2 0 A+{OUT}",
            f"c path_open 3 0 {p} 1 {1 << 40} 2 0 A+{OUT}",
            f"c path_open 3 0 {p} 1 2 2 {0x20} A+{OUT}",
            f"c path_filestat_get 3 4 {p} A+{OUT}",
            f"c path_link 3 2 {p} 4 {p}",
            f"c fd_seek 3 0 3 A+{OUT}",
            f"c fd_advise 3 0 0 6",
            f"c clock_time_get 4 0 A+{OUT}",
            f"c fd_filestat_set_times 3 0 0 16",
            f"c path_filestat_set_times 3 0 {p} 0 0 16",
            f"c fd_fdstat_set_flags 3 {0x40}",
            f"c fd_fdstat_set_rights 3 {1 << 40} 0",
            f"c proc_raise 31",
            f"c sock_shutdown 3 4",
        ]
        self.emit("# hostile")
        self.emit(r.choice(choices))
        self.dump(OUT, 8, "bytes")


CALLS = [
    "path_open", "path_open", "path_open", "fd_read", "fd_read", "fd_pread", "fd_write",
    "fd_write", "fd_pwrite", "fd_seek", "fd_tell", "fd_close", "fd_renumber",
    "fd_filestat_get", "fd_fdstat_get", "fd_fdstat_set_flags", "fd_fdstat_set_rights",
    "fd_filestat_set_size", "fd_filestat_set_times", "path_filestat_set_times",
    "fd_advise", "fd_allocate", "fd_sync", "fd_readdir", "list", "list", "fd_prestat",
    "path_create_directory", "path_remove_directory", "path_unlink_file", "path_unlink_file",
    "path_rename", "path_rename", "path_link", "path_symlink", "path_symlink",
    "path_readlink", "path_filestat_get", "path_filestat_get", "poll_oneoff", "clock",
    "random_get", "sizes", "sock", "misc",
]


def generate(seed: int, calls: int) -> str:
    rng = random.Random(seed)
    g = Gen(rng)
    for _ in range(calls):
        g.call()
    if rng.random() < 0.5:
        g.hostile()
    return "\n".join(g.lines) + "\n"


# ---------------------------------------------------------------- running

def walk(root: Path):
    out = {}
    for dirpath, dirnames, filenames in os.walk(root, followlinks=False):
        for name in sorted(dirnames + filenames):
            p = Path(dirpath) / name
            rel = str(p.relative_to(root))
            st = os.lstat(p)
            if os.path.islink(p):
                out[rel] = ["link", os.readlink(p)]
            elif p.is_dir():
                out[rel] = ["dir"]
            else:
                # Files can be sparse and huge (a write after a seek to 1 TiB):
                # the size, and the bytes at both ends.
                with open(p, "rb") as fh:
                    head = fh.read(4096)
                    fh.seek(max(0, st.st_size - 4096))
                    tail = fh.read(4096)
                out[rel] = ["file", st.st_size, hashlib.sha256(head + tail).hexdigest(),
                            st.st_nlink]
    return out


def run_one(argv, script: str, root: Path, timeout=60):
    env = dict(os.environ, RUST_BACKTRACE="0", WASMTIME_BACKTRACE_DETAILS="0")
    try:
        p = subprocess.run(argv + [script], cwd=root, stdin=subprocess.DEVNULL,
                           capture_output=True, timeout=timeout, env=env)
        out, err, code = p.stdout, p.stderr, p.returncode
    except subprocess.TimeoutExpired as e:
        out, err, code = e.stdout or b"", b"timeout", -999
    return out.decode("utf-8", "replace"), err.decode("utf-8", "replace"), code


def trap_kind(stderr: str, code: int):
    if code == 0:
        return None
    s = stderr
    if "not aligned" in s:
        return "misaligned"
    if "out of bounds" in s.lower() or "Pointer overflow" in s or "PtrOverflow" in s:
        return "oob"
    if "Invalid enum" in s or "Invalid flag" in s or "invalid flag" in s.lower():
        return "invalid"
    return "other:" + s.strip().splitlines()[-1][:200] if s.strip() else f"exit {code}"


class Canon:
    """Renames inode numbers by first appearance."""

    def __init__(self):
        self.map = {}

    def ino(self, v):
        if v not in self.map:
            self.map[v] = f"ino#{len(self.map)}"
        return self.map[v]


def norm_time(v, now_ns):
    return "NOW" if abs(v - now_ns) < 86_400 * 10**9 else v


def parse_dirents(buf: bytes, used: int):
    ents, off = [], 0
    while off + 24 <= used:
        nxt = int.from_bytes(buf[off:off + 8], "little")
        ino = int.from_bytes(buf[off + 8:off + 16], "little")
        nl = int.from_bytes(buf[off + 16:off + 20], "little")
        typ = buf[off + 20]
        if off + 24 + nl > used:
            break
        ents.append((buf[off + 24:off + 24 + nl].hex(), typ, ino, nxt))
        off += 24 + nl
    return ents


DUMP_TAGS = {"u32", "u64", "bytes", "time", "fdstat", "filestat", "events", "dirents", "sizes"}


def normalize(out: str, now_ns: int):
    """The interpreter's output as a list of comparable records."""
    c = Canon()
    recs = []
    lines = out.splitlines()
    last_u32 = None
    last_cookie = "0"
    pending_list = []
    for line in lines:
        parts = line.split(" ")
        tag = parts[0]
        if tag == "ent":
            pending_list.append((parts[4], int(parts[2]), int(parts[3]), int(parts[1])))
            continue
        if tag == "L":
            ents = sorted(pending_list)
            recs.append(["L", parts[1], [[n, t, c.ino(i)] for n, t, i, _ in ents],
                         sorted(x[3] for x in ents)])
            pending_list = []
            continue
        if len(parts) == 2 and tag not in DUMP_TAGS and not tag.startswith("rdused:"):
            recs.append(["call", tag, int(parts[1])])
            continue
        try:
            data = bytes.fromhex(parts[1]) if len(parts) > 1 else b""
        except ValueError:
            # Bytes the guest wrote to stdout itself, mixed into the report.
            recs.append(["raw", line])
            continue
        if tag == "u32":
            last_u32 = int.from_bytes(data, "little")
            recs.append(["u32", last_u32])
        elif tag.startswith("rdused:"):
            _, buflen, cookie = tag.split(":")
            used = int.from_bytes(data, "little")
            last_u32 = used
            # Which entries a partial or cookie-started listing holds depends on
            # the host's entry order: only a complete one from cookie 0 is
            # compared exactly.
            last_cookie = cookie
            if cookie == "0" and used < int(buflen):
                recs.append(["rdused", used])
            else:
                recs.append(["rdused", "order-dependent"])
        elif tag == "dirents":
            used = last_u32 or 0
            # From a non-zero cookie, which entries follow depends on the host's
            # order, and wasmc serves a snapshot taken at cookie 0 where wasmtime
            # re-reads the directory (README.md): not compared.
            if last_cookie != "0":
                recs.append(["dirents", "from-cookie"])
            elif used < len(data):
                ents = sorted(parse_dirents(data, used))
                recs.append(["dirents", [[n, t, c.ino(i)] for n, t, i, _ in ents],
                             sorted(x[3] for x in ents)])
            else:
                recs.append(["dirents", "truncated"])
        elif tag == "filestat":
            f = [int.from_bytes(data[i:i + 8], "little") for i in range(0, 64, 8)]
            dev, ino, ftype, nlink, size, at, mt, ct = f
            recs.append(["filestat", dev, c.ino(ino) if ino else 0, ftype & 0xFF, nlink,
                         size, norm_time(at, now_ns), norm_time(mt, now_ns),
                         norm_time(ct, now_ns)])
        elif tag == "sizes":
            # argv[0] is the program's name: "interp.cwasm" vs the executable's
            # path, so the byte size of the arguments is not compared.
            recs.append(["sizes", data[:8].hex()])
        elif tag == "time":
            recs.append(["time", "masked"])
        else:
            recs.append([tag, parts[1] if len(parts) > 1 else ""])
    if pending_list:
        recs.append(["L-unfinished", len(pending_list)])
    return recs


def count_calls(script: str):
    return sum(1 for l in script.splitlines() if l.startswith("c ") or l.startswith("L "))


def execute(argv, script: str, work: Path):
    root = work / "root"
    if root.exists():
        shutil.rmtree(root)
    root.mkdir(parents=True)
    initial_tree(root)
    now_ns = time.time_ns()
    out, err, code = run_one(argv, script, root)
    return {
        "records": normalize(out, now_ns),
        "trap": trap_kind(err, code),
        "exit": code,
        "tree": {"a": walk(root / "a"), "b": walk(root / "b")},
        "stderr_tail": err[-400:],
        "wasm_trap": p2_trap(err),
    }


DIRS = ["--dir", "a::a", "--dir", "b::b"]


def wasmtime_argv(wasmtime, cwasm):
    return [wasmtime, "run", "--allow-precompiled"] + DIRS + [str(cwasm)]


def wasmc_argv(exe):
    return [str(Path(exe).resolve())] + DIRS + ["--"]


def efault_first(rr, gr):
    """The hostile last call: wasmtime answered an error it found before touching
    the bad pointer (say EBADF), wasmc EFAULT (it checks pointers first)."""
    i = next((k for k, (x, y) in enumerate(zip(rr, gr)) if x != y), None)
    if i is None or rr[:i] != gr[:i]:
        return False
    x, y = rr[i], gr[i]
    last = max(k for k, r in enumerate(gr) if r[0] == "call")
    return (i == last and x[0] == y[0] == "call" and x[1] == y[1] and y[2] == 21
            and x[2] != 0)


def compare(ref, got, hostile=False):
    """Findings (strings) where wasmc's result `got` differs from wasmtime's `ref`."""
    rr, gr = ref["records"], got["records"]
    if ref["trap"] is None:
        if got["trap"] is not None or got["exit"] != ref["exit"]:
            return [f"exit: wasmtime {ref['exit']} wasmc {got['exit']} {got['stderr_tail']}"]
        if rr != gr and not (hostile and efault_first(rr, gr)):
            return [first_diff(rr, gr)]
        if ref["tree"] != got["tree"]:
            return [tree_diff(ref["tree"], got["tree"])]
        return []
    kind = ref["trap"]
    n = len(rr)
    if gr[:n] != rr:
        return [f"before the trap ({kind}): " + first_diff(rr, gr[:n])]
    nxt = gr[n] if n < len(gr) else None
    if kind in INTENDED:
        want = INTENDED[kind]
        if not nxt or nxt[0] != "call" or nxt[2] != want:
            return [f"wasmtime trapped ({kind}); wasmc answered {nxt}, expected errno {want}"]
        if kind == "invalid" and ref["tree"] != got["tree"]:
            return ["after EINVAL: " + tree_diff(ref["tree"], got["tree"])]
        return []
    if kind == "misaligned":
        return []
    return [f"wasmtime failed: {kind}"]


def p2_trap(stderr: str):
    """The trap of a component run, in words both runtimes share (wasmtime: "wasm
    trap: wasm `unreachable` instruction executed", wasmc: "wasm trap: unreachable")."""
    for line in stderr.splitlines():
        if "wasm trap:" in line:
            line = line.lower()
            if "unreachable" in line:
                return "unreachable"
            if "out of bounds" in line:
                return "out of bounds"
            return line.split("wasm trap:", 1)[1].strip()
    return None


POLL_TIMING = "poll timing: "


def compare_p2(ref, got):
    """Findings for the p2 leg. Both sides run the same adapter, so nothing is
    intended to differ: the same records, exit status, trap and trees (the adapter
    checks pointers and flags itself, trapping the same way on both)."""
    rr, gr = ref["records"], got["records"]
    if rr != gr:
        i = next((k for k, (x, y) in enumerate(zip(rr, gr)) if x != y), None)
        if i is not None and i > 0 and rr[i - 1] == ["call", "poll_oneoff", 0]:
            # Which of several ready subscriptions wasmtime reports can depend on
            # its tokio scheduling (when a background file read completes, a
            # timer's millisecond tick): kept apart from the findings (README.md).
            return [POLL_TIMING + first_diff(rr, gr)]
        return [first_diff(rr, gr)]
    if ref["exit"] != got["exit"]:
        return [f"exit: wasmtime {ref['exit']} wasmc {got['exit']} {got['stderr_tail']}"]
    rt, gt = ref["wasm_trap"], got["wasm_trap"]
    if rt != gt:
        return [f"trap: wasmtime {rt} / wasmc {gt}"]
    if ref["tree"] != got["tree"]:
        return [tree_diff(ref["tree"], got["tree"])]
    return []


def first_diff(a, b):
    for i, (x, y) in enumerate(zip(a, b)):
        if x != y:
            return f"record {i}: wasmtime {x} / wasmc {y} (previous: {a[max(0, i - 3):i]})"
    return f"lengths differ: wasmtime {len(a)} records, wasmc {len(b)}"


def tree_diff(a, b):
    for side in ("a", "b"):
        ka, kb = set(a[side]), set(b[side])
        if ka != kb:
            return f"tree {side}: only wasmtime {sorted(ka - kb)}, only wasmc {sorted(kb - ka)}"
        for k in sorted(ka):
            if a[side][k] != b[side][k]:
                return f"tree {side}/{k}: wasmtime {a[side][k]} / wasmc {b[side][k]}"
    return "trees differ"


def main():
    ap = argparse.ArgumentParser()
    sub = ap.add_subparsers(dest="cmd", required=True)
    r = sub.add_parser("run")
    r.add_argument("--wasmc-exe", required=True)
    r.add_argument("--wasmtime", required=True)
    r.add_argument("--seed", type=int, default=1)
    r.add_argument("--scripts", type=int, default=50)
    r.add_argument("--calls", type=int, default=30)
    r.add_argument("--record")
    r.add_argument("--findings")
    r.add_argument("--script-seed", type=int, help="run only this script seed")
    r.add_argument("--p2", action="store_true",
                   help="the p2 leg: the guest made a WASI 0.2 component with the "
                        "preview1 adapter (fixtures/wasi-fuzz/interp-p2.wasm); "
                        "--wasmc-exe must be compiled from that file")
    c = sub.add_parser("check")
    c.add_argument("--wasmc-exe", required=True)
    c.add_argument("--expected", required=True)
    args = ap.parse_args()

    work = Path(tempfile.mkdtemp(prefix="wasi-fuzz-"))
    try:
        if args.cmd == "run":
            return cmd_run(args, work)
        return cmd_check(args, work)
    finally:
        shutil.rmtree(work, ignore_errors=True)


def cmd_run(args, work):
    cwasm = work / "interp.cwasm"
    guest = GUEST_P2 if args.p2 else GUEST
    subprocess.run([args.wasmtime, "compile", str(guest), "-o", str(cwasm)],
                   check=True)
    wt = wasmtime_argv(args.wasmtime, cwasm)
    wc = wasmc_argv(args.wasmc_exe)
    findings, calls, recorded = [], 0, []
    seeds = [args.script_seed] if args.script_seed is not None else [
        args.seed * 1_000_003 + i for i in range(args.scripts)]
    t0 = time.time()
    for n, s in enumerate(seeds):
        if n and n % 100 == 0:
            print(f"... {n} scripts, {calls} calls, {len(findings)} findings so far",
                  file=sys.stderr, flush=True)
        script = generate(s, args.calls)
        ref = execute(wt, script, work)
        got = execute(wc, script, work)
        calls += count_calls(script)
        if args.p2:
            f = compare_p2(ref, got)
        else:
            f = compare(ref, got, "# hostile" in script)
        if f:
            findings.append((s, f))
            print(f"seed {s}: {f[0]}", flush=True)
            if args.findings:
                d = Path(args.findings)
                d.mkdir(parents=True, exist_ok=True)
                (d / f"{s}.script").write_text(script)
                (d / f"{s}.json").write_text(json.dumps({"wasmtime": ref, "wasmc": got},
                                                        indent=1))
        # Only agreeing cases are recorded: the recording is a regression test
        # for CI, and open findings are reported above (and in README.md).
        if args.record and not f:
            ref = dict(ref, stderr_tail="")
            recorded.append({"seed": s, "script": script, "wasmtime": ref})
    if args.record:
        # One case per line: small, and diffs show which scripts changed.
        cases = ",\n".join(json.dumps(c, sort_keys=True, separators=(",", ":"))
                           for c in recorded)
        Path(args.record).write_text(
            f'{{"calls_per_script": {args.calls}, "cases": [\n{cases}\n]}}\n')
    timing = [f for f in findings if f[1][0].startswith(POLL_TIMING)]
    findings = [f for f in findings if not f[1][0].startswith(POLL_TIMING)]
    print(f"{len(seeds)} scripts, {calls} calls compared, {len(findings)} findings, "
          f"{len(timing)} poll timing differences, {time.time() - t0:.1f}s")
    return 1 if findings else 0


def cmd_check(args, work):
    data = json.loads(Path(args.expected).read_text())
    wc = wasmc_argv(args.wasmc_exe)
    findings, calls = 0, 0
    for case in data["cases"]:
        got = execute(wc, case["script"], work)
        calls += count_calls(case["script"])
        f = compare(case["wasmtime"], got, "# hostile" in case["script"])
        if f:
            findings += 1
            print(f"seed {case['seed']}: {f[0]}")
    print(f"{len(data['cases'])} scripts, {calls} calls compared, {findings} findings")
    return 1 if findings else 0


if __name__ == "__main__":
    sys.exit(main())
