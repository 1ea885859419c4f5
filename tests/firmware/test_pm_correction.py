"""Humidity corrections on the MicroPython VM against hand-computed and float reference values."""

from __future__ import annotations

import ast

PRELUDE = """
from pm_correction import epa_pm25, kappa_dry, tenths
"""


def run(mpy, code: str):
    """Run PRELUDE + code on the VM; its last output line is a Python literal."""
    return ast.literal_eval(mpy.run(PRELUDE + code).strip().splitlines()[-1])


def epa_reference(pa: float, rh: float) -> float:
    """The AirNow Fire and Smoke Map equations as published (ug/m3, %RH), in floats."""
    if pa < 30:
        v = 0.524 * pa - 0.0862 * rh + 5.75
    elif pa < 50:
        w = pa / 20 - 3 / 2
        v = (0.786 * w + 0.524 * (1 - w)) * pa - 0.0862 * rh + 5.75
    elif pa < 210:
        v = 0.786 * pa - 0.0862 * rh + 5.75
    elif pa < 260:
        w = pa / 50 - 21 / 5
        v = ((0.69 * w + 0.786 * (1 - w)) * pa - 0.0862 * rh * (1 - w) + 2.966 * w
             + 5.75 * (1 - w) + 8.84e-4 * pa * pa * w)
    else:
        v = 2.966 + 0.69 * pa + 8.84e-4 * pa * pa
    return max(v, 0.0)


def test_epa_by_hand(mpy):
    got = run(mpy, """
print([epa_pm25(100, 500), epa_pm25(400, 600), epa_pm25(1000, 400), epa_pm25(2350, 500),
       epa_pm25(5000, 800), epa_pm25(0, 900), epa_pm25(-20, 500)])
""")
    assert got == [
        67,     # 0.524*10 - 0.0862*50 + 5.75 = 6.68
        268,    # w = 0.5: 0.655*40 - 0.0862*60 + 5.75 = 26.778
        809,    # 0.786*100 - 0.0862*40 + 5.75 = 80.902
        2000,   # w = 0.5: 0.738*235 - 2.155 + 1.483 + 2.875 + 8.84e-4*235^2*0.5 = 200.042
        5690,   # 2.966 + 0.69*500 + 8.84e-4*500^2 = 568.966 (RH no longer matters)
        0,      # 5.75 - 0.0862*90 < 0: clean, humid air reads 0, not negative
        14,     # a negative reading counts as 0: 5.75 - 0.0862*50 = 1.44
    ]


def test_epa_matches_the_published_equations_everywhere(mpy):
    pairs = [(pa, rh) for pa in range(0, 10001, 37) for rh in (0, 350, 700, 1000)]
    got = run(mpy, """
from array import array
from heapcheck import allocated
pas = array("i", range(0, 10001, 37))
rhs = (0, 350, 700, 1000)
res = array("i", bytes(4 * len(pas) * len(rhs)))
def correct_all():
    k = 0
    for pa in pas:
        for rh in rhs:
            res[k] = epa_pm25(pa, rh)
            k += 1
print([allocated(correct_all)] + list(res))
""")
    alloc, values = got[0], got[1:]
    assert alloc == 0
    for (pa, rh), v in zip(pairs, values):
        assert abs(v - 10 * epa_reference(pa / 10, rh / 10)) <= 0.51, (pa, rh, v)
    for rh in (0, 350, 700, 1000):
        row = [v for (pa, h), v in zip(pairs, values) if h == rh]
        assert row == sorted(row)   # more PM never corrects to less


def test_kappa_koehler_by_hand(mpy):
    got = run(mpy, """
print([kappa_dry(1000, 500, 400), kappa_dry(1000, 900, 400), kappa_dry(1000, 1000, 400),
       kappa_dry(1000, 990, 400), kappa_dry(1000, 0, 400), kappa_dry(1000, 900, 0),
       kappa_dry(333, 850, 620)])
""")
    assert got == [
        714,    # 100 / (1 + 0.4 / (100/50 - 1)) = 71.43
        217,    # 100 / (1 + 0.4 / (100/90 - 1)) = 21.74
        25,     # RH clamped to 99: 100 / (1 + 0.4 / (100/99 - 1)) = 2.46
        25,
        1000,   # dry air: nothing to remove
        1000,   # kappa 0: no growth
        74,     # 33.3 / (1 + 0.62 / (100/85 - 1)) = 7.38
    ]


def test_tenths_rescales_and_nothing_allocates(mpy):
    got = run(mpy, """
from heapcheck import allocated
vals = [tenths(123, 0), tenths(55, -1), tenths(1234, -2), tenths(1235, -2), tenths(-1235, -2),
        tenths(45678, -3)]
def work():
    for i in range(200):
        kappa_dry(i * 50, i * 5, 400)
        tenths(i, -2)
print(vals + [allocated(work)])
""")
    assert got == [1230, 55, 123, 124, -123, 457, 0]
