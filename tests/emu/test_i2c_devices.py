"""Emulated SPS30, SCD40/41, BME280 and SGP40: the datasheets' commands, CRCs, timing and faults,
and each driven through its real MicroPython driver on the VM."""

from __future__ import annotations

import math
import struct
import subprocess
import textwrap
import threading
from pathlib import Path

import pytest

from gonggi_emu.devices import REGISTRY, create
from gonggi_emu.devices.bme280 import BME280, EXAMPLE_TRIMMING
from gonggi_emu.devices.i2c_common import EmulatedI2C
from gonggi_emu.devices.scd4x import SCD40, SCD41
from gonggi_emu.devices.sensirion import crc8, frame_words, parse_words, serial_words
from gonggi_emu.devices.sgp40 import SGP40
from gonggi_emu.devices.sps30 import SPS30
from gonggi_emu.scenario import Fault, Scenario
from gonggi_emu.vm import FIRMWARE_DIR, vm_command, vm_env

SUPPORT_DIR = Path(__file__).resolve().parents[1] / "firmware" / "support"

# Health flags, as firmware/sensor.py defines them.
WARMING, CHECKSUM, STUCK, MISSING, NO_DATA = 0x01, 0x02, 0x04, 0x08, 0x10

VALUES = {
    "co2_ppm": 812.0,
    "temperature_c": 23.4,
    "humidity_rh": 41.5,
    "pressure_pa": 97210.0,
    "pm2_5_ugm3": 17.5,
    "pm1_ugm3": 11.0,
    "pm10_ugm3": 26.0,
    "voc_raw": 28750.0,
}


def scenario(faults: tuple[Fault, ...] = (), **values: float) -> Scenario:
    sc = Scenario.from_dict({"values": {**VALUES, **values}})
    for f in faults:
        sc.inject(f)
    return sc


def cmd(code: int, *args: int) -> bytes:
    return bytes((code >> 8, code & 0xFF)) + frame_words(args)


def ask(dev: EmulatedI2C, code: int, now: float, nwords: int, wait: float, *args: int) -> list[int] | None:
    assert dev.i2c_write(cmd(code, *args), now)
    raw = dev.i2c_read(3 * nwords, now + wait)
    return None if raw is None else parse_words(raw)


# -- framing ---------------------------------------------------------------------------------


def test_crc_and_word_framing():
    assert crc8(b"\xbe\xef") == 0x92  # the datasheets' example
    assert frame_words([0xBEEF, 0x01F4]) == bytes.fromhex("beef9201f433")
    assert parse_words(bytes.fromhex("beef9201f433")) == [0xBEEF, 0x01F4]
    assert parse_words(bytes.fromhex("beef9301f433")) is None
    assert parse_words(bytes.fromhex("beef92")[:2]) is None


def test_registry_builds_every_kind():
    sc = scenario()
    for kind, cls in (("sps30", SPS30), ("scd40", SCD40), ("scd41", SCD41), ("bme280", BME280), ("sgp40", SGP40)):
        assert kind in REGISTRY
        dev = create(kind, sc, name="x", noise=0.0)
        assert type(dev) is cls and dev.name == "x"
    assert create("bme280", sc, address=0x77).address == 0x77


# -- SCD4x -----------------------------------------------------------------------------------


def test_scd40_periodic_measurement_timing_and_values():
    dev = SCD40(scenario(), noise=0.0)
    assert dev.i2c_write(cmd(0x21B1), 0.0)
    assert ask(dev, 0xE4B8, 1.0, 1, 0.001) == [0x8000]
    # read_measurement with nothing in the buffer: accepted, then the read NACKs.
    assert dev.i2c_write(cmd(0xEC05), 1.1) and dev.i2c_read(9, 1.102) is None
    assert ask(dev, 0xE4B8, 5.0, 1, 0.001) == [0x8006]
    co2, t, rh = ask(dev, 0xEC05, 5.01, 3, 0.001)
    # CO2 compensated for the standard pressure at altitude 0, while the air is at 97210 Pa.
    assert co2 == round(812 * 97210 / 101325)
    assert abs(-45 + 175 * t / 65536 - 23.4) <= 175 / 65536
    assert abs(100 * rh / 65536 - 41.5) <= 100 / 65536
    assert ask(dev, 0xE4B8, 5.02, 1, 0.001) == [0x8000]  # the buffer was emptied
    # Only a few commands are heard while measuring.
    assert not dev.i2c_write(cmd(0x3682), 6.0)
    assert dev.i2c_write(cmd(0xE000, 972), 6.1)  # ambient pressure, hPa
    assert ask(dev, 0xE4B8, 10.0, 1, 0.001) == [0x8006]
    assert ask(dev, 0xEC05, 10.01, 3, 0.001)[0] == 812


def test_scd40_execution_times_and_settings():
    dev = SCD40(scenario(), noise=0.0)
    assert dev.i2c_write(cmd(0x21B1), 0.0)
    assert dev.i2c_write(cmd(0x3F86), 1.0)
    assert not dev.i2c_write(cmd(0x3682), 1.2)  # stop takes 500 ms
    serial = ask(dev, 0x3682, 1.6, 3, 0.0005)
    assert serial is None  # answer not ready before 1 ms
    serial = ask(dev, 0x3682, 1.7, 3, 0.001)
    assert serial is not None and any(serial)
    assert dev.i2c_write(cmd(0x241D, 0x07E6), 2.0)  # 5.4 degC, the datasheet's example
    assert ask(dev, 0x2318, 2.01, 1, 0.001) == [0x07E6]
    assert dev.i2c_write(cmd(0x2427, 520), 2.02) and ask(dev, 0x2322, 2.03, 1, 0.001) == [520]
    assert dev.i2c_write(cmd(0x2416, 0), 2.04) and ask(dev, 0x2313, 2.05, 1, 0.001) == [0]
    # A wrong argument CRC is refused.
    assert not dev.i2c_write(cmd(0x2427, 0)[:-1] + b"\x00", 2.1)
    # Single shot and power down are SCD41 commands.
    assert not dev.i2c_write(cmd(0x219D), 2.2)


def test_scd40_forced_recalibration_shifts_the_output():
    dev = SCD40(scenario(pressure_pa=101325.0), noise=0.0)
    dev.i2c_write(cmd(0x21B1), 0.0)
    assert ask(dev, 0xEC05, 5.0, 3, 0.001)[0] == 812
    dev.i2c_write(cmd(0x3F86), 5.1)
    assert ask(dev, 0x362F, 5.7, 1, 0.4, 800) == [0x8000 - 12]
    dev.i2c_write(cmd(0x21B1), 6.2)
    assert ask(dev, 0xEC05, 11.3, 3, 0.001)[0] == 800


def test_scd41_single_shot_and_power_down():
    dev = SCD41(scenario(), noise=0.0)
    assert dev.i2c_write(cmd(0x219D), 0.0)
    assert not dev.i2c_write(cmd(0xE4B8), 1.0)  # busy for 5 s
    assert ask(dev, 0xE4B8, 5.0, 1, 0.001) == [0x8006]
    assert ask(dev, 0xEC05, 5.01, 3, 0.001)[0] == round(812 * 97210 / 101325)
    assert dev.i2c_write(cmd(0x36E0), 6.0)
    assert not dev.i2c_write(cmd(0x3682), 6.1)  # powered down: deaf
    assert not dev.i2c_write(cmd(0x36F6), 6.2)  # wake_up is never acknowledged ...
    assert ask(dev, 0x3682, 6.3, 3, 0.001) is not None  # ... but wakes it


# -- SPS30 -----------------------------------------------------------------------------------


def sps_floats(words: list[int]) -> list[float]:
    return [struct.unpack(">f", struct.pack(">HH", words[i], words[i + 1]))[0] for i in range(0, 20, 2)]


def test_sps30_measurement_cycle():
    dev = SPS30(scenario(), noise=0.0)
    serial = ask(dev, 0xD033, 0.0, 16, 0.0)
    text = b"".join(w.to_bytes(2, "big") for w in serial).rstrip(b"\0").decode()
    assert len(text) == 16 and text.isalnum()
    assert not dev.i2c_write(cmd(0x0300), 0.01)  # not measuring: no values
    assert dev.i2c_write(cmd(0x0010, 0x0300), 0.02)
    assert not dev.i2c_write(cmd(0x0202), 0.03)  # start takes 20 ms
    assert ask(dev, 0x0202, 0.5, 1, 0.0) == [0]
    assert ask(dev, 0x0202, 1.05, 1, 0.0) == [1]
    # Within the 8 s start-up the fan is still spinning up.
    early = sps_floats(ask(dev, 0x0300, 1.06, 20, 0.0))
    assert ask(dev, 0x0202, 1.07, 1, 0.0) == [0]
    values = sps_floats(ask(dev, 0x0300, 20.5, 20, 0.0))
    assert early[1] < values[1]
    assert values[:4] == pytest.approx([11.0, 17.5, 17.5 + 0.4 * 8.5, 26.0], rel=1e-6)
    assert values[4] < values[5] <= values[6] <= values[7] <= values[8]
    assert 0.3 < values[9] < 2.5
    # Everything is an IEEE float32 on the wire.
    assert all(struct.unpack(">f", struct.pack(">f", v))[0] == v for v in values)


def test_sps30_uint16_output_and_settings():
    dev = SPS30(scenario(), noise=0.0)
    assert dev.i2c_write(cmd(0x0010, 0x0500), 0.0)
    words = ask(dev, 0x0300, 20.0, 10, 0.0)
    assert words[:4] == [11, 18, 21, 26] and 300 < words[9] < 2500
    assert ask(dev, 0x8004, 20.1, 2, 0.0) == [604800 >> 16, 604800 & 0xFFFF]
    assert dev.i2c_write(cmd(0x8004, 0x0005, 0x4600), 20.2)
    assert ask(dev, 0x8004, 20.3, 2, 0.0) == [5, 0x4600]
    assert dev.i2c_write(cmd(0x5607), 20.4)  # fan cleaning: no new data for 10 s
    assert ask(dev, 0x0202, 25.0, 1, 0.0) == [0]
    assert dev.i2c_write(cmd(0xD304), 31.0)  # reset: idle again, interval kept
    assert ask(dev, 0x8004, 31.2, 2, 0.0) == [5, 0x4600]
    assert not dev.i2c_write(cmd(0x0202), 31.3)


def test_sps30_sleep_and_wake_up():
    dev = SPS30(scenario(), noise=0.0)
    assert dev.i2c_write(cmd(0x1001), 0.0)
    assert not dev.i2c_write(cmd(0xD033), 0.1)  # first transaction wakes the interface only
    assert not dev.i2c_write(cmd(0xD033), 0.2)  # still asleep: only wake-up is heard
    assert dev.i2c_write(cmd(0x1103), 0.3)
    assert ask(dev, 0xD033, 0.4, 16, 0.0) is not None


# -- BME280 ----------------------------------------------------------------------------------


def bme_read(dev: BME280, reg: int, n: int, now: float) -> bytes:
    assert dev.i2c_write(bytes((reg,)), now)
    data = dev.i2c_read(n, now)
    assert data is not None
    return data


def bme_adc(data: bytes) -> tuple[int, int, int]:
    p = (data[0] << 12) | (data[1] << 4) | (data[2] >> 4)
    t = (data[3] << 12) | (data[4] << 4) | (data[5] >> 4)
    return p, t, (data[6] << 8) | data[7]


def test_bme280_registers_and_forced_mode():
    dev = BME280(scenario(), noise=0.0)
    assert bme_read(dev, 0xD0, 1, 0.0) == b"\x60"
    low, high = EXAMPLE_TRIMMING.registers()
    assert bme_read(dev, 0x88, 26, 0.0) == low
    assert bme_read(dev, 0xE1, 7, 0.0) == high
    assert struct.unpack("<HhhHhhhhhhhh", low[:24])[:3] == (27504, 26435, -1000)
    assert bme_adc(bme_read(dev, 0xF7, 8, 0.0)) == (0x80000, 0x80000, 0x8000)  # reset values
    # ctrl_hum applies with the next ctrl_meas write; T x2, P x16, H x1, forced.
    assert dev.i2c_write(bytes((0xF2, 0x01)), 0.01)
    assert dev.i2c_write(bytes((0xF4, 0b010_101_01)), 0.01)
    busy = (1 + 2 * 2 + 2 * 16 + 0.5 + 2 * 1 + 0.5) / 1000
    assert bme_read(dev, 0xF3, 1, 0.01 + busy - 0.0005) == b"\x08"
    assert bme_read(dev, 0xF3, 1, 0.01 + busy + 0.0001) == b"\x00"
    assert bme_read(dev, 0xF4, 1, 0.05)[0] & 3 == 0  # back to sleep
    adc_p, adc_t, adc_h = bme_adc(bme_read(dev, 0xF7, 8, 0.05))
    temp, t_fine = EXAMPLE_TRIMMING.temperature(adc_t)
    assert abs(temp - 23.4) < 0.01
    assert abs(EXAMPLE_TRIMMING.pressure(adc_p, t_fine) - 97210) < 0.5
    assert abs(EXAMPLE_TRIMMING.humidity(adc_h, t_fine) - 41.5) < 0.01
    # Without the IIR filter: 17 significant bits of temperature at x2, all 20 of pressure at x16.
    assert adc_t & 0x7 == 0


def test_bme280_resolution_follows_oversampling_and_skips():
    dev = BME280(scenario(), noise=0.0)
    dev.i2c_write(bytes((0xF2, 0x00, 0xF4, 0b001_000_01)), 0.0)  # T x1, P and H skipped
    adc_p, adc_t, adc_h = bme_adc(bme_read(dev, 0xF7, 8, 0.1))
    assert adc_t & 0xF == 0  # 16 bits
    assert adc_p == 0x80000 and adc_h == 0x8000


def test_bme280_soft_reset_and_normal_mode():
    dev = BME280(scenario(), noise=0.0)
    dev.i2c_write(bytes((0xF5, 0b000_000_00, 0xF2, 1, 0xF4, 0b001_001_11)), 0.0)  # normal, 0.5 ms
    first = bme_read(dev, 0xF7, 8, 0.05)
    assert bme_adc(first)[1] != 0x80000
    dev.i2c_write(bytes((0xE0, 0xB6)), 0.06)
    assert bme_read(dev, 0xF3, 1, 0.0605) == b"\x01"  # copying NVM
    assert bme_read(dev, 0xF3, 1, 0.063) == b"\x00"
    assert bme_read(dev, 0xF4, 1, 0.063) == b"\x00"


# -- SGP40 -----------------------------------------------------------------------------------


def test_sgp40_measure_raw_and_commands():
    dev = SGP40(scenario(), noise=0.0)
    # The datasheet's example frame: default compensation 50 %RH, 25 degC.
    assert dev.i2c_write(bytes.fromhex("260f8000a2666693"), 0.0)
    assert dev.i2c_read(3, 0.029) is None  # 30 ms
    (first,) = parse_words(dev.i2c_read(3, 0.030))
    assert first < 28750 - 1500  # the hot plate was cold
    (settled,) = ask(dev, 0x260F, 120.0, 1, 0.03, 0x8000, 0x6666)
    assert settled == 28750
    assert not dev.i2c_write(bytes.fromhex("260f8000a2666600"), 121.0)  # bad CRC
    assert ask(dev, 0x280E, 122.0, 1, 0.32) == [0xD400]
    assert ask(dev, 0x3682, 123.0, 3, 0.001) is not None
    assert dev.i2c_write(cmd(0x3615), 124.0)


# -- faults, common to all -------------------------------------------------------------------


def probe(dev: EmulatedI2C, now: float) -> bytes | None:
    """One read transaction the part answers in any state, through its own protocol."""
    if isinstance(dev, BME280):
        return dev.i2c_read(1, now) if dev.i2c_write(b"\xd0", now) else None
    code = 0xD033 if isinstance(dev, SPS30) else 0x3682
    n = 48 if isinstance(dev, SPS30) else 9
    if not dev.i2c_write(cmd(code), now):
        return None
    return dev.i2c_read(n, now + 0.002)


DEVICES = [SPS30, SCD40, BME280, SGP40]


@pytest.mark.parametrize("cls", DEVICES, ids=lambda c: c.kind)
def test_nack_and_unplug(cls):
    faults = (Fault("d", "nack", 1.0, 2.0), Fault("d", "unplug", 3.0, 4.0))
    dev = cls(scenario(faults), name="d", noise=0.0)
    assert probe(dev, 0.5) is not None
    assert probe(dev, 1.5) is None
    assert probe(dev, 3.5) is None
    assert probe(dev, 4.5) is not None


def test_unplug_is_a_power_cycle():
    # Nothing touches the parts during the unplug, yet they come back in their power-on state.
    faults = (Fault("d", "unplug", 3.0, 4.0),)
    scd = SCD40(scenario(faults), name="d", noise=0.0)
    assert scd.i2c_write(cmd(0x21B1), 0.0)
    assert not scd.i2c_write(cmd(0x3682), 1.0)  # measuring: deaf to most commands
    assert ask(scd, 0x3682, 10.0, 3, 0.001) is not None  # idle again
    sgp = SGP40(scenario(faults), name="d", noise=0.0)
    cold = ask(sgp, 0x260F, 0.0, 1, 0.03, 0x8000, 0x6666)[0]
    warmer = ask(sgp, 0x260F, 2.9, 1, 0.03, 0x8000, 0x6666)[0]
    assert cold < warmer < 28750
    assert ask(sgp, 0x260F, 10.0, 1, 0.03, 0x8000, 0x6666)[0] == cold  # heater cold again


def test_unplugged_bme280_forgets_its_settings():
    dev = BME280(scenario((Fault("d", "unplug", 3.0, 4.0),)), name="d", noise=0.0)
    dev.i2c_write(bytes((0xF2, 0x05)), 0.0)
    assert bme_read(dev, 0xF2, 1, 1.0) == b"\x05"
    assert bme_read(dev, 0xF2, 1, 5.0) == b"\x00"


@pytest.mark.parametrize("kind", ["checksum", "truncate", "garbage"])
def test_frame_faults_break_crcs(kind):
    dev = SCD40(scenario((Fault("d", kind, 1.0, 2.0),)), name="d", noise=0.0)
    assert dev.i2c_write(cmd(0x3682), 1.5)
    raw = dev.i2c_read(9, 1.6)
    assert raw is not None and len(raw) == 9 and parse_words(raw) is None
    if kind == "truncate":
        assert raw.endswith(b"\xff" * 5)
    assert ask(dev, 0x3682, 2.5, 3, 0.001) is not None


def test_stuck_freezes_the_measurement_bytes():
    faults = (Fault("d", "stuck", 20.0),)
    dev = SPS30(scenario(faults, pm2_5_ugm3=[[0, 5.0], [100, 50.0]]), name="d")
    dev.i2c_write(cmd(0x0010, 0x0300), 0.0)
    frames = [ask(dev, 0x0300, t, 20, 0.0) for t in (15.0, 19.5, 25.0, 30.0, 60.0)]
    assert frames[0] != frames[1]
    assert frames[1] == frames[2] == frames[3] == frames[4]


def test_noise_is_at_the_datasheet_scale():
    dev = SCD40(scenario(), noise=1.0)
    dev.i2c_write(cmd(0x21B1), 0.0)
    temps = []
    for k in range(1, 41):
        words = ask(dev, 0xEC05, 5.0 * k + 0.01, 3, 0.001)
        temps.append(-45 + 175 * words[1] / 65536)
    mean = sum(temps) / len(temps)
    sd = math.sqrt(sum((t - mean) ** 2 for t in temps) / len(temps))
    assert abs(mean - 23.4) < 0.05 and 0.02 < sd < 0.1
    assert len(set(temps)) > 10


# -- the real drivers against the emulators, on the VM ---------------------------------------


def run_linked(devices: list[EmulatedI2C], script: str, tmp_path: Path, timeout: float = 120) -> list[str]:
    """Run ``script`` on the VM; its fake_i2c.LinkI2C transactions are answered by ``devices``.

    Returns the script's own output lines.
    """
    path = tmp_path / "linked.py"
    path.write_text(textwrap.dedent(script))
    by_addr = {d.address: d for d in devices}
    proc = subprocess.Popen(
        vm_command(str(path)),
        cwd=tmp_path,
        env=vm_env([FIRMWARE_DIR, SUPPORT_DIR]),
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    killer = threading.Timer(timeout, proc.kill)
    killer.start()
    lines = []
    try:
        assert proc.stdin is not None and proc.stdout is not None
        for line in proc.stdout:
            kind, _, rest = line.rstrip("\n").partition(" ")
            if kind == "W":
                now_ms, addr, data = rest.split()
                dev = by_addr.get(int(addr))
                payload = b"" if data == "-" else bytes.fromhex(data)
                ok = dev is not None and dev.i2c_write(payload, int(now_ms) / 1000)
                reply = "A" if ok else "N"
            elif kind == "R":
                now_ms, addr, n = rest.split()
                dev = by_addr.get(int(addr))
                got = None if dev is None else dev.i2c_read(int(n), int(now_ms) / 1000)
                reply = "N" if got is None else bytes(got).ljust(int(n), b"\xff").hex()
            else:
                lines.append(line.rstrip("\n"))
                continue
            proc.stdin.write(reply + "\n")
            proc.stdin.flush()
        proc.wait()
    finally:
        killer.cancel()
    errors = proc.stderr.read() if proc.stderr else ""
    assert proc.returncode == 0, "\n".join(lines[-20:]) + errors
    return lines


LINK = """
import array
from fake_i2c import LinkI2C, FakeClock
from sensor import *
clk = FakeClock(0)
bus = LinkI2C(clk)
"""


def samples(lines: list[str]) -> list[tuple[int, int, list[int]]]:
    """(now_ms, flags, values) of each "S" line."""
    out = []
    for line in lines:
        if line.startswith("S "):
            f = line.split()
            out.append((int(f[1]), int(f[2]), [int(x) for x in f[3:]]))
    return out


POLL = """
def poll_until(end_ms, step_ms, n):
    out = array.array('i', [0] * n)
    while clk.now < end_ms:
        clk.now += step_ms
        f = s.poll(clk.now, out, 0)
        print("S", clk.now, f, " ".join(str(v) for v in out))
"""


def test_scd4x_driver_against_emulator(tmp_path):
    faults = (Fault("scd", "unplug", 30.0, 36.0), Fault("scd", "checksum", 50.0, 52.0))
    dev = SCD41(scenario(faults), name="scd", noise=0.0)
    lines = run_linked(
        [dev],
        LINK
        + POLL
        + """
import drivers.scd4x as m
m.time = clk
s = m.SCD4x(bus)
print("serial", s.serial)
s.set_ambient_pressure(97210)
poll_until(80000, 500, 3)
""",
        tmp_path,
    )
    w = serial_words("scd")
    assert f"serial {(w[0] << 32) | (w[1] << 16) | w[2]}" in lines
    res = samples(lines)
    good = [(t, v) for t, f, v in res if f == 0]
    # The pressure the driver passed on makes the CO2 right; T and RH to their resolution.
    assert good and all(v == [812, 2340, 4150] for t, v in good)
    assert any(t < 30000 for t, _ in good) and any(t > 60000 for t, _ in good)
    assert not [t for t, _ in good if 30000 <= t < 36000]
    assert any(f & MISSING for t, f, _ in res if 30000 <= t < 36000)
    assert any(f & CHECKSUM for t, f, _ in res if 50000 <= t < 52500)
    # After the unplug the driver started the part again (one command per 500 ms poll, the
    # stop taking 500 ms) and had a sample 5 s after the restart.
    after = [t for t, _ in good if t > 36000]
    assert after[0] <= 36000 + 1000 + 9 * 500 + 5000 + 1000


def test_sps30_driver_against_emulator(tmp_path):
    faults = (Fault("pm", "truncate", 20.0, 22.0), Fault("pm", "nack", 30.0, 31.0))
    dev = SPS30(scenario(faults), name="pm", noise=0.0)
    lines = run_linked(
        [dev],
        LINK
        + POLL
        + """
import drivers.sps30 as m
m.time = clk
s = m.SPS30(bus, clean_interval_s=345600)
print("serial", s.serial)
poll_until(50000, 1000, 10)
""",
        tmp_path,
    )
    assert f"serial {dev.serial()}" in lines
    assert dev.clean_interval == 345600
    res = samples(lines)
    good = {t: v for t, f, v in res if f & ~WARMING == 0}
    # The fan started at construction and again after the restart that follows the NACKs.
    warming = {t for t, f, _ in res if f & WARMING}
    assert all(t in warming for t in good if t < 15000 or 37000 < t < 50000)
    assert not any(16000 < t < 30000 or t > 51000 for t in warming)
    expected = dev.sample(100.0)  # after start-up, the values do not depend on time
    # Past the 8 s start-up, after construction and after the restart that follows the NACKs.
    settled = [v for t, v in good.items() if 10000 <= t < 20000 or t >= 44000]
    assert settled
    for v in settled:
        assert v[:9] == [round(x * 100) for x in expected[:9]] or all(
            abs(a - round(x * 100)) <= 1 for a, x in zip(v[:9], expected[:9])
        )
        assert abs(v[9] - round(expected[9] * 1000)) <= 1
    assert any(f & CHECKSUM for t, f, _ in res if 20000 <= t < 22000)
    assert any(f & MISSING for t, f, _ in res if 30000 <= t < 31000)
    assert any(t > 44000 for t in good)


def test_bme280_driver_against_emulator(tmp_path):
    faults = (Fault("bme", "unplug", 10.0, 12.0),)
    dev = BME280(scenario(faults), name="bme", noise=0.0)
    lines = run_linked(
        [dev],
        LINK
        + POLL
        + """
import drivers.bme280 as m
m.time = clk
s = m.BME280(bus, osrs_t=2, osrs_p=5, osrs_h=1)
poll_until(20000, 500, 3)
""",
        tmp_path,
    )
    res = samples(lines)
    good = [v for t, f, v in res if f == 0]
    assert len(good) > 20
    for t, rh, p in good:
        assert abs(t - 2340) <= 1  # 0.01 degC
        assert abs(rh - 4150) <= 2  # 0.01 %RH
        assert abs(p - 97210) <= 4  # the 32-bit formula's whole Pa
    assert any(f & MISSING for t, f, _ in res if 10000 <= t < 12000)
    assert any(f == 0 for t, f, _ in res if t > 13000)


def test_sgp40_driver_against_emulator(tmp_path):
    faults = (Fault("voc", "stuck", 250.0),)
    dev = SGP40(scenario(faults, voc_raw=30000.0), name="voc")
    lines = run_linked(
        [dev],
        LINK
        + POLL
        + """
import drivers.sgp40 as m
m.time = clk
s = m.SGP40(bus, stuck_ms=10000)
poll_until(280000, 1000, 2)
""",
        tmp_path,
    )
    res = samples(lines)
    raws = [v[0] for t, f, v in res if not f & NO_DATA]
    assert len(raws) > 270
    # The settled raw signal is the scenario's, within the part's noise.
    assert all(abs(r - 30000) < 20 for r in raws[50:250])
    # After the blackout the index climbs to its average, 100, for a steady signal.
    index = [v[1] for t, f, v in res if 200000 < t < 250000 and not f & (NO_DATA | WARMING)]
    assert index and all(90 <= i <= 110 for i in index)
    assert any(f & STUCK for t, f, _ in res if t > 261000)
    assert not any(f & STUCK for t, f, _ in res if t < 250000)

