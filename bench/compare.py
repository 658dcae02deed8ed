#!/usr/bin/env python3
"""Whole-process comparison of a few commands, for start-up work.

    bench/compare.py RUNS 'CMD ARGS...' 'CMD ARGS...' ...

Runs each command (split on spaces, no shell) RUNS times, the commands in turn in
every round, with stdin/stdout/stderr on /dev/null, and prints per command the median
CPU time (user + sys of the process, from wait4), the median wall time and the median
number of minor page faults. A non-zero exit status stops the run."""
import os
import statistics
import sys
import time


def main():
    if len(sys.argv) < 3:
        sys.exit(__doc__)
    runs = int(sys.argv[1])
    commands = [c.split() for c in sys.argv[2:]]
    samples = {i: [] for i in range(len(commands))}
    devnull = os.open(os.devnull, os.O_RDWR)
    to_null = [(os.POSIX_SPAWN_DUP2, devnull, fd) for fd in (0, 1, 2)]
    for _ in range(runs):
        for i, command in enumerate(commands):
            start = time.perf_counter()
            pid = os.posix_spawnp(command[0], command, os.environ, file_actions=to_null)
            _, status, usage = os.wait4(pid, 0)
            wall = time.perf_counter() - start
            if os.waitstatus_to_exitcode(status) != 0:
                sys.exit(f"{' '.join(command)}: exit status {os.waitstatus_to_exitcode(status)}")
            samples[i].append(((usage.ru_utime + usage.ru_stime) * 1000, wall * 1000, usage.ru_minflt))
    for i, command in enumerate(commands):
        s = samples[i]
        cpu = statistics.median(x[0] for x in s)
        wall = statistics.median(x[1] for x in s)
        faults = statistics.median(x[2] for x in s)
        print(f"{' '.join(command)[:60]:60s} cpu {cpu:7.2f} ms  wall {wall:7.2f} ms  faults {faults:6.0f}")


if __name__ == "__main__":
    main()
