"""Emulated PMS5003/7003 and SDS011: the bytes the datasheets describe, commands, sleep, faults,
and a closed loop with the MicroPython drivers on the VM."""

from __future__ import annotations

import ast
from collections.abc import Callable
from dataclasses import dataclass

import pytest

from gonggi_emu.devices.particulate import WARMUP_S, ParticulateSensor
from gonggi_emu.devices.pms5003 import PMS5003Emu, PMS7003Emu
from gonggi_emu.devices.sds011 import SDS011Emu, sds_command
from gonggi_emu.scenario import Fault, Scenario


def scenario(pm25=12.0, pm1=8.0, pm10=20.0, faults=()) -> Scenario:
    sc = Scenario.from_dict({"values": {"pm2_5_ugm3": pm25, "pm1_ugm3": pm1, "pm10_ugm3": pm10}})
    for f in faults:
        sc.inject(f)
    return sc


def run_for(dev: ParticulateSensor, start: float, end: float,
            step: float = 0.05) -> list[tuple[float, bytes]]:
    """(time, bytes) of every transmit() in (start, end] that returned something."""
    out = []
    n = round((end - start) / step)
    for k in range(1, n + 1):
        t = start + k * step
        chunk = dev.transmit(t)
        if chunk:
            out.append((t, chunk))
    return out


# -- independent decoders, straight from the datasheets --------------------------------------

def pms_split(stream: bytes) -> tuple[list[bytes], int]:
    """Valid PMS frames (32-byte data, 8-byte acks) and the number of bytes outside them."""
    frames, junk, i = [], 0, 0
    while i < len(stream):
        if stream[i:i + 2] == b"\x42\x4d" and i + 4 <= len(stream):
            size = {28: 32, 4: 8}.get(int.from_bytes(stream[i + 2:i + 4], "big"))
            if size and i + size <= len(stream):
                f = stream[i:i + size]
                if sum(f[:-2]) & 0xFFFF == int.from_bytes(f[-2:], "big"):
                    frames.append(f)
                    i += size
                    continue
        junk += 1
        i += 1
    return frames, junk


def pms_values(frame: bytes) -> list[int]:
    """The driver's channel order: atmospheric PM1/2.5/10, CF=1 PM1/2.5/10, six counts."""
    w = [int.from_bytes(frame[4 + 2 * k:6 + 2 * k], "big") for k in range(13)]
    return w[3:6] + w[0:3] + w[6:12]


def sds_split(stream: bytes) -> tuple[list[bytes], int]:
    frames, junk, i = [], 0, 0
    while i < len(stream):
        f = stream[i:i + 10]
        if (len(f) == 10 and f[0] == 0xAA and f[1] in (0xC0, 0xC5) and f[9] == 0xAB
                and sum(f[2:8]) & 0xFF == f[8]):
            frames.append(f)
            i += 10
            continue
        junk += 1
        i += 1
    return frames, junk


def sds_values(frame: bytes) -> list[int]:
    return [int.from_bytes(frame[2:4], "little"), int.from_bytes(frame[4:6], "little")]


def data_frames(frames: list[bytes]) -> list[bytes]:
    return [f for f in frames if len(f) == 32 or (len(f) == 10 and f[1] == 0xC0)]


# -- PMS5003 ------------------------------------------------------------------------------------

def test_pms_streams_datasheet_frames_at_the_stable_cadence():
    dev = PMS5003Emu(scenario(pm25=12.4, pm1=8.0, pm10=20.2))
    chunks = run_for(dev, 0.0, 60.0)
    frames, junk = pms_split(b"".join(c for _, c in chunks))
    assert junk == 0 and len(frames) == dev.frames_sent > 20
    assert all(len(f) == 32 and f[2:4] == b"\x00\x1c" for f in frames)
    late = [t for t, c in chunks if t > WARMUP_S + 3]
    gaps = {round(b - a, 2) for a, b in zip(late, late[1:])}
    assert gaps <= {2.3, 2.35}      # stable mode, seen through 50 ms transmit() steps
    v = pms_values(frames[-1])
    assert v[:3] == [8, 12, 20]     # atmospheric, quantised to 1 ug/m3
    assert v[3:6] == v[:3]          # CF=1 equals atmospheric at low concentration
    counts = v[6:]
    assert counts == sorted(counts, reverse=True) and counts[0] > 1000
    assert frames[-1][28] == 0x97   # reserved word: version byte


def test_pms_values_rise_from_zero_after_wake():
    dev = PMS5003Emu(scenario(pm25=50.0, pm1=30.0, pm10=80.0))
    frames, _ = pms_split(b"".join(c for _, c in run_for(dev, 0.0, 40.0)))
    pm25 = [pms_values(f)[1] for f in frames]
    assert pm25[0] == 0 and pm25[-1] == 50
    assert pm25 == sorted(pm25)
    high = pms_values(frames[-1])
    assert high[4] > high[1]        # above 30 ug/m3 CF=1 reads higher than atmospheric


def test_pms_fast_mode_while_the_concentration_changes():
    sc = Scenario.from_dict({"values": {"pm2_5_ugm3": [[40, 10], [60, 400]]}})
    dev = PMS5003Emu(sc)
    times = [t for t, _ in run_for(dev, 0.0, 60.0, step=0.01) if t > 41]
    gaps = [b - a for a, b in zip(times, times[1:])]
    assert gaps and max(gaps) <= 0.81 and min(gaps) >= 0.19


def test_pms_answers_its_commands_and_sleeps():
    dev = PMS5003Emu(scenario())
    run_for(dev, 0.0, 35.0)
    dev.received(bytes.fromhex("424de100000170"), 35.0)           # passive mode
    assert dev.transmit(35.1).hex() == "424d0004e1000174" and dev.passive
    assert run_for(dev, 35.1, 45.0) == []                        # passive: nothing unasked
    dev.received(bytes.fromhex("424de200000171"), 45.0)           # read
    frames, junk = pms_split(dev.transmit(45.1))
    assert junk == 0 and len(frames) == 1 and pms_values(frames[0])[1] == 12
    dev.received(bytes.fromhex("424de200000172"), 46.0)           # bad LRC: ignored
    assert dev.transmit(46.1) == b""
    dev.received(bytes.fromhex("424de100010171"), 47.0)           # active mode
    assert dev.transmit(47.1).hex() == "424d0004e1010175" and not dev.passive
    assert len(pms_split(b"".join(c for _, c in run_for(dev, 47.1, 55.0)))[0]) >= 3
    dev.received(bytes.fromhex("424de400000173"), 55.0)           # sleep
    assert dev.transmit(55.1).hex() == "424d0004e4000177"
    assert dev.asleep and not dev.fan_on
    dev.received(bytes.fromhex("424de100000170424de200000171"), 56.0)   # asleep: not heard
    assert run_for(dev, 55.1, 70.0) == [] and not dev.passive
    dev.received(bytes.fromhex("424de400010174"), 70.0)           # wake: no ack, fan starts
    chunks = run_for(dev, 70.0, 75.0)
    assert chunks[0][0] == pytest.approx(71.0, abs=0.06)
    first = pms_split(chunks[0][1])[0][0]
    assert pms_values(first)[:3] == [0, 0, 0]                     # still spinning up


def test_pms7003_is_the_same_protocol():
    dev = PMS7003Emu(scenario())
    assert dev.kind == dev.name == "pms7003"
    frames, junk = pms_split(b"".join(c for _, c in run_for(dev, 0.0, 40.0)))
    assert junk == 0 and pms_values(frames[-1])[1] == 12


# -- SDS011 -------------------------------------------------------------------------------------

def test_sds_streams_one_frame_per_second_in_tenths():
    dev = SDS011Emu(scenario(pm25=12.34, pm10=56.78))
    chunks = run_for(dev, 0.0, 40.0)
    frames, junk = sds_split(b"".join(c for _, c in chunks))
    assert junk == 0 and len(frames) == 40          # one a second from 1 s on
    gaps = {round(b - a, 2) for (a, _), (b, _) in zip(chunks, chunks[1:])}
    assert gaps == {1.0}
    assert sds_values(frames[-1]) == [123, 568]
    assert frames[-1][6:8] == b"\xa1\x60"


def test_sds_answers_the_protocol_examples():
    dev = SDS011Emu(scenario())
    run_for(dev, 0.0, 35.0)
    dev.received(bytes.fromhex("aab402010100000000000000000000ffff02ab"), 35.0)   # query mode
    assert dev.transmit(35.1).hex() == "aac5020101" "00a16005ab" and dev.query_mode
    assert run_for(dev, 35.1, 40.0) == []
    dev.received(bytes.fromhex("aab404000000000000000000000000ffff02ab"), 40.0)   # query data
    frames, _ = sds_split(dev.transmit(40.1))
    assert [sds_values(f) for f in frames] == [[120, 200]]
    dev.received(bytes.fromhex("aab406010000000000000000000000ffff05ab"), 41.0)   # sleep
    assert dev.transmit(41.1).hex() == "aac506010000a16008ab" and dev.asleep
    dev.received(bytes.fromhex("aab404000000000000000000000000ffff02ab"), 42.0)   # ignored
    assert dev.transmit(43.0) == b""
    dev.received(bytes.fromhex("aab406010100000000000000000000ffff06ab"), 44.0)   # work
    assert dev.transmit(44.1).hex() == "aac506010100a16009ab" and dev.fan_on
    dev.received(sds_command(7), 45.0)
    assert dev.transmit(45.1).hex() == "aac507120b10a16035ab"                     # 18-11-16
    dev.received(sds_command(5, device_id=0xA160, new_id=0x0102), 46.0)
    assert dev.transmit(46.1).hex() == "aac5050000000102" "08ab" and dev.device_id == 0x0102
    dev.received(sds_command(6, 1, 0, device_id=0xA160), 47.0)                     # not for us
    assert dev.transmit(47.1) == b"" and not dev.asleep


def test_sds_working_period_and_what_survives_power_off():
    dev = SDS011Emu(scenario(faults=[Fault("sds011", "unplug", 300.0, 310.0)]))
    dev.received(sds_command(8, 1, 2), 0.5)                   # work 30 s every 2 minutes
    assert dev.transmit(0.6).hex() == "aac5080102" "00a1600c" "ab"
    times = [t for t, c in run_for(dev, 0.6, 290.0) if c[1] == 0xC0]
    assert times == [pytest.approx(30.5, abs=0.06), pytest.approx(150.5, abs=0.06),
                     pytest.approx(270.5, abs=0.06)]
    dev.received(sds_command(2, 1, 1), 290.0)                 # query mode, then power is lost
    dev.received(sds_command(6, 1, 0), 291.0)                 # and asleep
    run_for(dev, 291.0, 320.0)
    assert dev.powered and not dev.asleep                     # sleep does not survive
    assert dev.query_mode and dev.period_min == 2             # the settings do


# -- faults -------------------------------------------------------------------------------------

@dataclass(frozen=True)
class Kind:
    make: Callable[[Scenario], ParticulateSensor]
    split: Callable[[bytes], tuple[list[bytes], int]]
    values: Callable[[bytes], list[int]]
    name: str


KINDS = [Kind(PMS5003Emu, pms_split, pms_values, "pms5003"),
         Kind(SDS011Emu, sds_split, sds_values, "sds011")]


@pytest.mark.parametrize("kind", KINDS, ids=lambda k: k.name)
@pytest.mark.parametrize("fault", ["checksum", "truncate", "garbage", "silent", "unplug", "stuck"])
def test_faults_show_in_the_byte_stream(kind, fault):
    sc = Scenario.from_dict({"values": {"pm2_5_ugm3": [[0, 10], [200, 210]]}})
    start, end = 40.5, 59.5     # between frames of either sensor
    sc.inject(Fault(kind.name, fault, start, end))
    dev = kind.make(sc)
    before = b"".join(c for _, c in run_for(dev, 0.0, start))
    during_chunks = run_for(dev, start, end)
    during = b"".join(c for _, c in during_chunks)
    after = b"".join(c for _, c in run_for(dev, end, 80.0))
    for clean in (before, after):
        frames, junk = kind.split(clean)
        assert junk == 0 and frames
    frames, junk = kind.split(during)
    if fault in ("silent", "unplug"):
        assert during == b""
    elif fault == "stuck":
        assert junk == 0 and len(frames) > 5 and len(set(frames)) == 1
    elif fault == "garbage":
        assert junk > 0 and len(frames) == len(during_chunks)   # intact frames, buried in noise
    else:
        assert junk > 0 and frames == []
        if fault == "checksum":
            assert all(len(c) == len(during_chunks[0][1]) for _, c in during_chunks)


def test_unplug_resets_the_pms_to_active_mode():
    sc = scenario(faults=[Fault("pms5003", "unplug", 50.0, 60.0)])
    dev = PMS5003Emu(sc)
    dev.received(bytes.fromhex("424de100000170"), 1.0)
    run_for(dev, 1.0, 50.0)
    assert dev.passive
    dev.received(bytes.fromhex("424de400000173"), 55.0)   # nobody there to hear it
    chunks = run_for(dev, 50.0, 70.0)
    assert not dev.passive and not dev.asleep and dev.woke_at == pytest.approx(60.0, abs=1.0)
    assert chunks[0][0] > 60.0


# -- closed loop: the MicroPython driver on the VM talks to the emulator ------------------------

VM_DRIVER = """
from array import array
from fake_uart import FakeUART
from drivers.{module} import {cls}
u = FakeUART()
d = None
out = array("i", bytes(4 * 12))
for line in open("steps.txt"):
    t, action, rx = line.split()
    t = int(t)
    if rx != "-":
        u.feed(bytes.fromhex(rx))
    f = 0
    if action == "init":
        d = {cls}(u, {args})
    elif action == "poll":
        f = d.poll(t, out, 0)
    elif action == "sleep":
        d.sleep()
    elif action == "wake":
        d.wake()
    print(repr((t, u.take_tx(), f, list(out[:len(d.channels)]))))
"""


def closed_loop(mpy, tmp_path, make: Callable[[], ParticulateSensor], module: str, cls: str,
                args: str, steps: list[tuple[int, str]]) -> tuple[list[bytes], list[tuple]]:
    """Run the driver on the VM against the emulator until what the driver sends, fed to the
    emulator, yields a stream that makes the driver send exactly that (a fixed point).

    Returns the bytes the emulator sent before each step and the VM's (t, tx, flags, values).
    """
    tx = [""] * len(steps)
    for _ in range(5):
        dev = make()
        rx = []
        for (t, _action), sent in zip(steps, tx):
            rx.append(dev.transmit(t / 1000))
            if sent:
                dev.received(bytes.fromhex(sent), t / 1000)
        (tmp_path / "steps.txt").write_text("".join(
            f"{t} {action} {r.hex() or '-'}\n" for (t, action), r in zip(steps, rx)))
        out = mpy.run(VM_DRIVER.format(module=module, cls=cls, args=args))
        rows = [ast.literal_eval(line) for line in out.splitlines()]
        new_tx = [row[1] for row in rows]
        if new_tx == tx:
            return rx, rows
        tx = new_tx
    raise AssertionError("driver and emulator did not settle on one conversation")


def decoded(rx: list[bytes], split, values) -> tuple[list[list[int] | None], list[bool]]:
    """Per step, with the datasheet decoder: the values of the latest valid data frame received
    so far, and whether a new one completed in that step's bytes."""
    stream = b""
    latest, arrived, seen = [], [], 0
    for chunk in rx:
        stream += chunk
        frames = data_frames(split(stream)[0])
        latest.append(values(frames[-1]) if frames else None)
        arrived.append(len(frames) > seen)
        seen = len(frames)
    return latest, arrived


WARMING, CHECKSUM, STUCK, MISSING, NO_DATA, RANGE, BUS, CONFIG = (1 << k for k in range(8))

LOOP_KINDS = [
    pytest.param(PMS5003Emu, pms_split, pms_values, "pms5003", "PMS5003", id="pms5003"),
    pytest.param(SDS011Emu, sds_split, sds_values, "sds011", "SDS011", id="sds011"),
]


@pytest.mark.parametrize(("emu", "split", "values", "module", "cls"), LOOP_KINDS)
def test_driver_and_emulator_agree_through_faults(mpy, tmp_path, emu, split, values, module, cls):
    sc = Scenario.from_dict({"values": {"pm2_5_ugm3": [[0, 20], [120, 80]],
                                        "pm1_ugm3": [[0, 15], [120, 50]],
                                        "pm10_ugm3": [[0, 30], [120, 130]]}})
    windows = {"checksum": (40.0, 44.0), "garbage": (50.0, 54.0), "silent": (60.0, 76.0),
               "truncate": (85.0, 89.0), "stuck": (95.0, 115.0)}
    for kind, (start, end) in windows.items():
        sc.inject(Fault(module, kind, start, end))
    steps = [(0, "init")] + [(t, "poll") for t in range(500, 120_001, 500)]
    rx, rows = closed_loop(mpy, tmp_path, lambda: emu(sc), module, cls,
                           "missing_ms=10000, stuck_ms=10000", steps)
    latest, arrived = decoded(rx, split, values)

    def inside(t_ms, kind, slack=0.0):
        start, end = windows[kind]
        return start * 1000 <= t_ms <= (end + slack) * 1000

    last_frame = 500                                     # the driver's first poll: its wake
    for (t, _tx, flags, vals), want, new in zip(rows[1:], latest[1:], arrived[1:]):
        last_frame = t if new else last_frame
        assert bool(flags & NO_DATA) == (not new), t
        assert bool(flags & MISSING) == (t - last_frame >= 10_000), t
        if not flags & (MISSING | NO_DATA):
            assert vals == want, t                       # the driver decodes what was sent
        assert bool(flags & WARMING) == (t < 30_500), t
        # a cut frame is noticed when the next frame completes it: up to one PMS interval later
        noisy = any(inside(t, k, 3.0) for k in ("checksum", "garbage", "truncate"))
        if flags & CHECKSUM:
            assert noisy, t
        if flags & STUCK:
            assert inside(t, "stuck", 0.6), t
        assert not flags & (CONFIG | BUS | RANGE), t
    flags_at = {t: flags for t, _tx, flags, _v in rows[1:]}
    assert any(flags_at[t] & CHECKSUM for t in flags_at if inside(t, "checksum"))
    assert any(flags_at[t] & CHECKSUM for t in flags_at if inside(t, "truncate", 3.0))
    assert all(flags_at[t] & MISSING for t in range(70_500, 75_501, 500))
    assert any(flags_at[t] & STUCK for t in flags_at if inside(t, "stuck"))
    assert flags_at[120_000] & ~NO_DATA == 0              # recovered from all of it


# The commands each driver must send in polled mode: on start, per poll, to sleep, to wake.
POLLED = [
    pytest.param(PMS5003Emu, "pms5003", "PMS5003", "passive=True",
                 {"init": "424de400010174" "424de100000170", "poll": "424de200000171",
                  "sleep": "424de400000173", "wake": "424de400010174" "424de100000170"},
                 [20, 35, 60], id="pms5003-passive"),
    pytest.param(SDS011Emu, "sds011", "SDS011", "query=True",
                 {"init": "aab406010100000000000000000000ffff06ab"
                          "aab408010000000000000000000000ffff07ab"
                          "aab402010100000000000000000000ffff02ab",
                  "poll": "aab404000000000000000000000000ffff02ab",
                  "sleep": "aab406010000000000000000000000ffff05ab",
                  "wake": "aab406010100000000000000000000ffff06ab"
                          "aab408010000000000000000000000ffff07ab"
                          "aab402010100000000000000000000ffff02ab"},
                 [350, 600], id="sds011-query"),
]


@pytest.mark.parametrize(("emu", "module", "cls", "args", "commands", "want"), POLLED)
def test_polled_mode_sleep_and_wake_through_the_emulator(mpy, tmp_path, emu, module, cls, args,
                                                          commands, want):
    sc = scenario(pm25=35.0, pm1=20.0, pm10=60.0)
    steps = ([(0, "init")] + [(t, "poll") for t in range(1000, 40_001, 1000)]
             + [(40_500, "sleep")] + [(t, "poll") for t in range(41_000, 60_001, 1000)]
             + [(60_500, "wake")] + [(t, "poll") for t in range(61_000, 100_001, 1000)])
    devices = []

    def make():
        devices.append(emu(sc))
        return devices[-1]

    _rx, rows = closed_loop(mpy, tmp_path, make, module, cls, args, steps)
    dev = devices[-1]
    assert dev.fan_on and (dev.passive if module == "pms5003" else dev.query_mode)
    for (t, action), (_t, tx, flags, vals) in zip(steps, rows):
        asleep = 40_500 < t < 60_500
        if action != "poll":
            assert tx == commands[action], t
            continue
        assert tx == ("" if asleep else commands["poll"]), t    # one request per awake poll
        assert not flags & (CHECKSUM | CONFIG | MISSING | BUS), t
        if asleep or t in (1000, 61_000):
            assert flags & NO_DATA, t    # asleep, or the first request is still being answered
        else:
            assert not flags & NO_DATA, t                # polled: a fresh answer every time
        # WARMING until a request made 30 s after the first poll since wake has been answered
        assert bool(flags & WARMING) == (t <= 31_000 or 61_000 <= t <= 91_000), t
        if not flags & (WARMING | NO_DATA):
            assert vals[:len(want)] == want, t
