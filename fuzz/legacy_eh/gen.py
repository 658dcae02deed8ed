#!/usr/bin/env python3
"""Random modules with nested legacy exception handling, for diff.sh.

`gen.py SEED` prints a WASI command (text format, flat legacy instructions) whose
functions throw two tags (one with an i32 payload), call each other (no
recursion), and nest `try`/`catch`/`catch_all` (any subset of clauses, in any
order but `catch_all` last), `try`/`delegate N` (to any enclosing label, the
function's included), `rethrow N` (to any enclosing catch arm) and blocks left by
`br_if`. Every step folds a number into a global trace; `_start` exits with the
trace's low 7 bits (or the process dies with an uncaught exception: exit 134).
"""
import random
import sys


def generate(seed):
    r = random.Random(seed)
    nfuncs = r.randint(2, 5)
    counter = [0]

    def log():
        counter[0] += 1
        return f"i32.const {counter[0]} call $log"

    def stmts(fi, frames, budget):
        """Instructions; `frames` are the enclosing labels, innermost last:
        'body' (try body or block) or 'arm' (a catch arm, which rethrow can name)."""
        code = []
        depth = len(frames)
        for _ in range(r.randint(0 if depth else 1, 4 if depth == 0 else 3)):
            if budget[0] <= 0:
                break
            budget[0] -= 1
            x = r.random()
            if x < 0.2:
                code.append(log())
            elif x < 0.28:
                code.append("throw $t0")
                return code
            elif x < 0.36:
                counter[0] += 1
                code.append(f"i32.const {counter[0]} throw $t1")
                return code
            elif x < 0.5 and fi + 1 < nfuncs:
                code.append(f"call $f{r.randint(fi + 1, nfuncs - 1)}")
            elif x < 0.7 and depth < 5:
                code.append("try")
                code.extend(stmts(fi, frames + ["body"], budget))
                clauses = [c for c in ("t0", "t1") if r.random() < 0.6]
                r.shuffle(clauses)
                if r.random() < 0.5:
                    clauses.append("all")
                for c in clauses:
                    if c == "t0":
                        code.append(f"catch $t0 {log()}")
                    elif c == "t1":
                        code.append("catch $t1 call $log")
                    else:
                        code.append(f"catch_all {log()}")
                    code.extend(stmts(fi, frames + ["arm"], budget))
                code.append("end")
            elif x < 0.8 and depth < 5:
                code.append("try")
                code.extend(stmts(fi, frames + ["body"], budget))
                code.append(f"delegate {r.randint(0, depth)}")
            elif x < 0.87:
                arms = [d for d in range(depth) if frames[-1 - d] == "arm"]
                if arms:
                    code.append(f"rethrow {r.choice(arms)}")
                    return code
            elif x < 0.95 and depth < 5:
                code.append("block")
                code.extend(stmts(fi, frames + ["body"], budget))
                code.append(f"global.get $trace i32.const 1 i32.and br_if 0 {log()} end")
            else:
                code.append(
                    f"global.get $trace i32.const 3 i32.and i32.eqz br_if {r.randint(0, depth)}"
                )
        return code

    out = [
        "(module",
        '  (import "wasi_snapshot_preview1" "proc_exit" (func $exit (param i32)))',
        '  (memory (export "memory") 1)',
        "  (tag $t0) (tag $t1 (param i32))",
        "  (global $trace (mut i32) (i32.const 7))",
        "  (func $log (param i32)",
        "    (global.set $trace (i32.add (i32.mul (global.get $trace) (i32.const 31)) (local.get 0))))",
    ]
    for fi in range(nfuncs):
        body = stmts(fi, [], [r.randint(5, 25)])
        out.append(f"  (func $f{fi}\n    {' '.join(body)})")
    out.append('  (func (export "_start")')
    out.append("    try call $f0 catch $t1 call $log catch_all i32.const 5 call $log end")
    out.append("    (call $exit (i32.and (global.get $trace) (i32.const 127)))))")
    return "\n".join(out)


if __name__ == "__main__":
    print(generate(int(sys.argv[1])))
