"""Every intermediate of the sampling arithmetic stays a small int on the ESP32 (|v| < 2**30).

The ESP32's MicroPython keeps ints in 31 bits; a larger one is a heap object, so an intermediate
of 2**30 in a poll() allocates there but not on the 64-bit VM, where small ints have 63 bits, so
test_alloc_steady_state.py cannot see it. This test runs the firmware's own source in CPython
(whose ints behave the same for these operations: + - * // % >> << & |) with every arithmetic
result checked, over inputs that hypothesis draws from each sensor's whole range: any ADC
reading, any Sensirion word, any float bit pattern, the VOC index from any state it can reach.
It runs on CPython, unlike the other firmware tests, because it rewrites the source (and uses
hypothesis); the VM runs the same code in test_alloc_steady_state.py.
"""

from __future__ import annotations

import ast
import importlib.abc
import importlib.util
import sys
import time
import types
from collections.abc import Iterator
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from gonggi_emu.vm import FIRMWARE_DIR

LIMIT = 1 << 30
MODULES = ("sensor", "voc_index", "drivers", "drivers.i2csensor", "drivers.sensirion", "drivers.bme280",
           "drivers.scd4x", "drivers.sps30", "drivers.sgp40", "drivers.battery")


class Armed:
    """Checks are on only inside `with ARMED:` (constructors may use big ints: they run once)."""

    on = False

    def __enter__(self) -> None:
        Armed.on = True

    def __exit__(self, *exc: object) -> None:
        Armed.on = False


ARMED = Armed()


def _check(value: object, where: str) -> object:
    if Armed.on and type(value) is int and not -LIMIT <= value < LIMIT:
        raise AssertionError(f"{where}: {value} is not a small int on the ESP32")
    return value


class _Checked(ast.NodeTransformer):
    """Wraps every arithmetic result (x op y, -x, x op= y) in __check__(result, "file:line")."""

    def __init__(self, name: str) -> None:
        self.name = name

    def _wrap(self, node: ast.expr) -> ast.expr:
        where = ast.Constant(f"{self.name}:{node.lineno}")
        return ast.copy_location(ast.Call(ast.Name("__check__", ast.Load()), [node, where], []), node)

    def visit_BinOp(self, node: ast.BinOp) -> ast.expr:
        self.generic_visit(node)
        return self._wrap(node)

    def visit_UnaryOp(self, node: ast.UnaryOp) -> ast.expr:
        self.generic_visit(node)
        return self._wrap(node) if isinstance(node.op, ast.USub) else node

    def visit_AugAssign(self, node: ast.AugAssign) -> ast.Assign:
        self.generic_visit(node)
        load = ast.parse(ast.unparse(node.target), mode="eval").body
        value = self._wrap(ast.copy_location(ast.BinOp(load, node.op, node.value), node))
        return ast.copy_location(ast.Assign([node.target], value), node)


class _Finder(importlib.abc.MetaPathFinder, importlib.abc.Loader):
    """Imports the firmware modules of MODULES from firmware/, instrumented."""

    def find_spec(self, name: str, path: object = None, target: object = None) -> importlib.machinery.ModuleSpec | None:
        if name not in MODULES:
            return None
        src = FIRMWARE_DIR.joinpath(*name.split("."))
        if src.is_dir():
            return importlib.util.spec_from_loader(name, self, origin=str(src / "__init__.py"), is_package=True)
        return importlib.util.spec_from_loader(name, self, origin=str(src.with_suffix(".py")))

    def create_module(self, spec: importlib.machinery.ModuleSpec) -> None:
        return None

    def exec_module(self, module: types.ModuleType) -> None:
        path = Path(module.__spec__.origin)
        tree = ast.fix_missing_locations(_Checked(path.name).visit(ast.parse(path.read_text())))
        module.__dict__["__check__"] = _check
        if module.__spec__.submodule_search_locations is not None:
            module.__path__ = [str(path.parent)]
        exec(compile(tree, str(path), "exec"), module.__dict__)


@pytest.fixture(scope="module")
def fw() -> Iterator[types.SimpleNamespace]:
    """The firmware modules, instrumented, with MicroPython's `micropython` and time.ticks_*."""
    stub = types.ModuleType("micropython")
    stub.const = lambda v: v
    stub.viper = stub.native = lambda f: f
    ticks = {"ticks_ms": lambda: 0, "ticks_add": lambda a, b: a + b, "ticks_diff": lambda a, b: a - b,
             "sleep_ms": lambda ms: None}
    saved = {name: sys.modules.pop(name) for name in (*MODULES, "micropython") if name in sys.modules}
    sys.modules["micropython"] = stub
    for name, fn in ticks.items():
        setattr(time, name, fn)
    finder = _Finder()
    sys.meta_path.insert(0, finder)
    try:
        yield types.SimpleNamespace(
            **{name.rpartition(".")[2]: importlib.import_module(name) for name in MODULES if name != "drivers"}
        )
    finally:
        sys.meta_path.remove(finder)
        for name in (*MODULES, "micropython"):
            sys.modules.pop(name, None)
        sys.modules.update(saved)
        for name in ticks:
            delattr(time, name)


# Calibration ranges around those of real parts (the datasheet's example and parts read out),
# with margin: the property holds for any part inside them.
BME_TRIM = {
    "T1": (26000, 30000), "T2": (25000, 28000), "T3": (-1500, 500),
    "P1": (34000, 41000), "P2": (-12000, -9500), "P3": (2500, 3500), "P4": (1000, 10000),
    "P5": (-300, 300), "P6": (-20, 0), "P7": (9000, 16000), "P8": (-15000, -9000), "P9": (3500, 7000),
    "H1": (60, 90), "H2": (300, 420), "H3": (0, 10), "H4": (250, 400), "H5": (-10, 100), "H6": (20, 40),
}


@settings(max_examples=300, deadline=None)
@given(
    trim=st.fixed_dictionaries({k: st.integers(lo, hi) for k, (lo, hi) in BME_TRIM.items()}),
    adc_p=st.integers(0, (1 << 20) - 1),
    adc_t=st.integers(0, (1 << 20) - 1),
    adc_h=st.integers(0, 0xFFFF),
)
def test_bme280_decodes_any_reading_in_small_ints(fw, trim, adc_p, adc_t, adc_h) -> None:
    s = fw.bme280.BME280.__new__(fw.bme280.BME280)
    fw.i2csensor.I2CSensor.__init__(s, None, 0x76, 8, 300000)
    s.__dict__.update(trim)
    s._raw = bytearray((adc_p >> 12, (adc_p >> 4) & 0xFF, (adc_p & 15) << 4,
                        adc_t >> 12, (adc_t >> 4) & 0xFF, (adc_t & 15) << 4, adc_h >> 8, adc_h & 0xFF))
    out = [0, 0, 0]
    with ARMED:
        s._decode(out, 0, 1000)


@settings(max_examples=200, deadline=None)
@given(words=st.lists(st.integers(0, 0xFFFF), min_size=3, max_size=3), pa=st.integers(0, 1 << 20))
def test_scd4x_decodes_any_words_in_small_ints(fw, words, pa) -> None:
    s = fw.scd4x.SCD4x.__new__(fw.scd4x.SCD4x)
    fw.sensirion.SensirionSensor.__init__(s, None, 0x62, 9, 9, 300000)
    s._pa = s._hpa = 0
    for i, w in enumerate(words):
        s._rx[3 * i], s._rx[3 * i + 1] = w >> 8, w & 0xFF
    out = [0, 0, 0]
    with ARMED:
        s._decode(out, 0, 1000)
        s.set_ambient_pressure(pa)


@settings(max_examples=300, deadline=None)
@given(hi=st.integers(0, 0xFFFF), lo=st.integers(0, 0xFFFF), scale=st.sampled_from((100, 1000)))
def test_sps30_converts_any_float_in_small_ints(fw, hi, lo, scale) -> None:
    with ARMED:
        v = fw.sps30.f32_fixed(hi, lo, scale)
    assert -LIMIT < v < LIMIT


@settings(max_examples=200, deadline=None)
@given(t=st.integers(-(1 << 24), 1 << 24), rh=st.integers(-(1 << 24), 1 << 24))
def test_sgp40_compensation_takes_any_climate_sample_in_small_ints(fw, t, rh) -> None:
    s = fw.sgp40.SGP40.__new__(fw.sgp40.SGP40)
    with ARMED:
        s.set_compensation(t, rh)
    assert 0 <= s._t <= 0xFFFF and 0 <= s._rh <= 0xFFFF


class _ADC:
    def __init__(self, uv: int) -> None:
        self.uv = uv

    def read_uv(self) -> int:
        return self.uv


@settings(max_examples=100, deadline=None)
@given(uv=st.integers(0, 4_000_000), ratio=st.integers(1000, 20000))
def test_battery_scales_any_reading_in_small_ints(fw, uv, ratio) -> None:
    out = [0]
    with ARMED:
        fw.battery.Battery(_ADC(uv), ratio).poll(0, out, 0)
    assert out[0] == uv * ratio // 1_000_000


@st.composite
def voc_states(draw: st.DrawFn) -> tuple[dict[str, int], dict[str, int], list[int]]:
    """A VocIndex with any tuning, in any state its update can reach, and raw samples to feed."""
    params = {
        "sampling_interval": draw(st.integers(1, 10)),
        "index_offset": draw(st.integers(1, 250)),
        "learning_time_offset_hours": draw(st.integers(1, 1000)),
        "learning_time_gain_hours": draw(st.integers(1, 1000)),
        "gating_max_duration_minutes": draw(st.integers(0, 3000)),
        "std_initial": draw(st.integers(10, 5000)),
        "gain_factor": draw(st.integers(1, 1000)),
    }
    dt = params["sampling_interval"]
    state = {
        "uptime": draw(st.integers(46, 100)),
        "sraw": draw(st.integers(1, 32767)),
        "index": draw(st.integers(1 << 15, 500 << 16)),
        "m_init": True,
        "m_ticks": draw(st.integers(1, 32767)),
        "m_frac": draw(st.integers(0, (1 << 28) - 1)),
        "std": draw(st.integers(1, 0x3FFFFFFF - (220 << 16))),
        "up_gamma": draw(st.integers(0, 32767 - dt)),
        "up_gating": draw(st.integers(0, 32767 - dt)),
        "gating_min": draw(st.integers(0, 0x3FFFFFFF)),
        "lp_init": True,
        "x1": draw(st.integers(0, 500 << 16)),
        "x2": draw(st.integers(0, 500 << 16)),
        "x3": draw(st.integers(0, 500 << 16)),
    }
    raws = draw(st.lists(st.one_of(st.integers(0, 65535), st.sampled_from((0, 20001, 52767, 65000))),
                         min_size=1, max_size=20))
    return params, state, raws


@settings(max_examples=150, deadline=None)
@given(case=voc_states())
def test_voc_index_updates_any_state_in_small_ints(fw, case) -> None:
    params, state, raws = case
    algo = fw.voc_index.VocIndex(**params)
    algo.__dict__.update(state)
    with ARMED:
        for raw in raws:
            v = algo.process(raw)
            assert 1 <= v <= 500


def test_voc_index_run_from_reset_in_small_ints(fw) -> None:
    # The states a real run passes through, learning phase and gating included: 4 h at 10 s.
    algo = fw.voc_index.VocIndex(10)
    raws = [30000 + (i * 7919) % 41 - 20 - (4000 if 360 <= i < 600 else 0) for i in range(1440)]
    with ARMED:
        got = [algo.process(r) for r in raws]
    assert got[359] == 100 and got[599] > 300
