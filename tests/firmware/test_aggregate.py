"""Report aggregation on the MicroPython VM: airrohr-style trimmed mean, min, max, exact ints."""

from __future__ import annotations

import ast
from fractions import Fraction
from math import floor

PRELUDE = """
from array import array
from aggregate import Aggregator
def feed(agg, rows):
    v = array("i", bytes(4 * (agg.n + 1)))
    for row in rows:
        for c in range(agg.n):
            v[1 + c] = row[c]
        agg.add(v, 1)
"""


def run(mpy, code: str) -> dict:
    """Run PRELUDE + code on the VM; its last output line is a dict literal of results."""
    return ast.literal_eval(mpy.run(PRELUDE + code).strip().splitlines()[-1])


def reference(values: list[int]) -> int:
    """airrohr's mean (one min and one max dropped from 3 samples on), rounded half up."""
    if len(values) >= 3:
        values = sorted(values)[1:-1]
    return floor(Fraction(sum(values), len(values)) + Fraction(1, 2))


def test_trimmed_mean_min_max_by_hand(mpy):
    r = run(mpy, """
a = Aggregator(2)
feed(a, [(10, -5), (20, -7), (1000, 3), (12, -6), (11, -4)])
out = array("i", bytes(4 * 7))
n = a.result(out, 1)
means = array("i", bytes(8))
a.mean(means, 0)
print(dict(n=n, count=a.count, out=list(out), means=list(means)))
""")
    # channel 0: drop 10 and 1000 -> (20 + 12 + 11) / 3 = 14.33 -> 14
    # channel 1: drop -7 and 3 -> (-5 - 6 - 4) / 3 = -5
    assert r["n"] == r["count"] == 5
    assert r["out"] == [0, 14, 10, 1000, -5, -7, 3]
    assert r["means"] == [14, -5]


def test_few_samples_are_not_trimmed_and_round_half_up(mpy):
    r = run(mpy, """
res = {}
out = array("i", bytes(4 * 3))
for rows in ([], [(7,)], [(3,)] * 1 + [(4,)], [(-3,), (-4,)], [(1,), (2,), (2,)]):
    a = Aggregator(1)
    feed(a, rows)
    res[len(res)] = (a.result(out, 0), list(out))
print(res)
""")
    assert r[0] == (0, [0, 0, 0])           # an empty interval reports nothing but zeros
    assert r[1] == (1, [7, 7, 7])
    assert r[2] == (2, [4, 3, 4])           # 3.5 -> 4
    assert r[3] == (2, [-3, -4, -3])        # -3.5 -> -3 (halves up)
    assert r[4] == (3, [2, 1, 2])           # three samples: the middle one


def test_reset_starts_a_new_interval(mpy):
    r = run(mpy, """
a = Aggregator(1)
feed(a, [(100,), (200,), (300,)])
a.reset()
feed(a, [(5,), (6,)])
out = array("i", bytes(12))
print(dict(n=a.result(out, 0), out=list(out)))
""")
    assert r == {"n": 2, "out": [6, 5, 6]}


def lcg(n: int) -> list[int]:
    """The ZX81 generator, small ints only, so the VM can run it too."""
    x, out = 1, []
    for _ in range(n):
        x = (x * 75 + 74) % 65537
        out.append(x)
    return out


def test_exact_for_sums_beyond_a_small_int_and_allocation_free(mpy):
    # 2000 samples near 1e6: the plain sum (2e9) would not fit an ESP32 small int (2**30).
    xs = lcg(2000)
    cols = [[900_000 + 3 * x for x in xs], [x - 32768 for x in xs], [65535] * 1999 + [0]]
    r = run(mpy, """
from heapcheck import allocated
n = 2000
cols = (array("i", bytes(4 * n)), array("i", bytes(4 * n)), array("i", bytes(4 * n)))
x = 1
for i in range(n):
    x = (x * 75 + 74) % 65537
    cols[0][i] = 900000 + 3 * x
    cols[1][i] = x - 32768
    cols[2][i] = 65535 if i < n - 1 else 0
a = Aggregator(3)
v = array("i", bytes(4 * 3))
out = array("i", bytes(4 * 9))
def interval():
    a.reset()
    for i in range(n):
        v[0] = cols[0][i]
        v[1] = cols[1][i]
        v[2] = cols[2][i]
        a.add(v, 0)
    a.mean(out, 0)
    a.result(out, 0)
alloc = allocated(interval)
print(dict(alloc=alloc, n=a.count, out=list(out)))
""")
    assert r["alloc"] == 0
    assert r["n"] == 2000
    expected = []
    for col in cols:
        expected += [reference(col), min(col), max(col)]
    assert r["out"] == expected
