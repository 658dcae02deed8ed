# CPython interpreter workload for bench/bench.py: the dispatch loop, dicts, strings,
# method calls and closures, the things a Python program spends its time on.
import sys


class Vec:
    __slots__ = ("x", "y")

    def __init__(self, x, y):
        self.x = x
        self.y = y

    def add(self, other):
        return Vec(self.x + other.x, self.y + other.y)

    def norm2(self):
        return self.x * self.x + self.y * self.y


def arithmetic(n):
    total = 0
    for i in range(n):
        total += (i * 7) % 13 - (i >> 2)
    return total


def dicts(n):
    counts = {}
    for i in range(n):
        key = "k" + str(i % 997)
        counts[key] = counts.get(key, 0) + 1
    return len(counts), max(counts.values())


def objects(n):
    acc = Vec(0, 0)
    step = Vec(1, 2)
    for _ in range(n):
        acc = acc.add(step)
    return acc.norm2()


def strings(n):
    words = [f"word{i % 50}" for i in range(n)]
    text = " ".join(words)
    return len(text.split()), text.count("word4"), text.upper()[:10]


def closures(n):
    def make(k):
        return lambda v: v * k + 1

    funcs = [make(k) for k in range(10)]
    total = 0
    for i in range(n):
        total += funcs[i % 10](i)
    return total


def sort_records(n):
    records = [((i * 7919) % 10007, str(i)) for i in range(n)]
    records.sort()
    return records[0], records[-1]


scale = int(sys.argv[1]) if len(sys.argv) > 1 else 1
print(arithmetic(300_000 * scale))
print(dicts(200_000 * scale))
print(objects(200_000 * scale))
print(strings(100_000 * scale))
print(closures(200_000 * scale))
print(sort_records(100_000 * scale))
