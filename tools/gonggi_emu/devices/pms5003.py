"""Emulated Plantower PMS5003 and PMS7003 (kinds "pms5003", "pms7003") at the byte level.

From the datasheet: 32-byte data frames ``42 4D 00 1C`` + 13 big-endian words + 16-bit sum of
the 30 bytes before it; 7-byte commands ``42 4D CMD 00 DATA LRC(2)`` (E1 mode 0 passive / 1
active, E2 read in passive mode, E4 0 sleep / 1 wake up); active mode after power-up; in active
mode a frame every 2.3 s while the concentration is steady ("stable mode") and every 0.2-0.8 s
while it changes fast, shorter for higher concentrations ("fast mode"). As seen on real units:
mode and sleep commands are acknowledged with ``42 4D 00 04 CMD DATA sum(2)``; wake up is not;
asleep, the sensor only listens for wake up.

Modelled: CF=1 versus atmospheric mass (see ``cf1_from_atm``), particle counts from the mass in
three size bands (``particle_counts``), and what "big change" means for fast mode: PM2.5 moving
faster than 5 ug/m3 and 10 % per stable interval.
"""

from __future__ import annotations

from collections.abc import Sequence

from gonggi_emu.devices.particulate import FIRST_FRAME_S, Airborne, ParticulateSensor
from gonggi_emu.scenario import Scenario

__all__ = ["PMS5003Emu", "PMS7003Emu", "pms_frame", "cf1_from_atm", "particle_counts"]

CMD_MODE = 0xE1
CMD_READ = 0xE2
CMD_SLEEP = 0xE4
STABLE_S = 2.3

# Counts (> 0.3, 0.5, 1.0, 2.5, 5, 10 um per 0.1 L) per ug/m3 of PM1, of PM1-2.5, of PM2.5-10.
# Columns never grow to the right, so the cumulative counts never grow with size.
_PER_UGM3 = (
    (180.0, 52.0, 6.0, 0.3, 0.0, 0.0),
    (40.0, 30.0, 12.0, 1.2, 0.1, 0.0),
    (5.0, 5.0, 4.0, 2.5, 0.6, 0.15),
)


def pms_frame(words: Sequence[int], length: int = 28) -> bytes:
    """``42 4D``, frame length, the words big-endian, and the 16-bit sum of all of that."""
    body = bytearray(b"\x42\x4d") + length.to_bytes(2, "big")
    for w in words:
        body += w.to_bytes(2, "big")
    return bytes(body) + (sum(body) & 0xFFFF).to_bytes(2, "big")


def cf1_from_atm(atm: float) -> float:
    """The CF=1 mass of an atmospheric mass.

    The two agree at low concentration; higher up CF=1 reads about 3/2 of the atmospheric value,
    as PurpleAir data show. Modelled as atm = CF1 up to 30, atm = 2/3 CF1 from CF1 = 100, and
    linear in between.
    """
    if atm <= 30.0:
        return atm
    top = 100.0 * 2.0 / 3.0
    if atm <= top:
        return 30.0 + (atm - 30.0) * 70.0 / (top - 30.0)
    return 1.5 * atm


def particle_counts(a: Airborne) -> list[int]:
    """Cumulative counts > 0.3, 0.5, 1.0, 2.5, 5, 10 um in 0.1 L for the masses in ``a``."""
    bands = (a.pm1, a.pm25 - a.pm1, a.pm10 - a.pm25)
    return [
        min(round(sum(per[k] * m for per, m in zip(_PER_UGM3, bands))), 0xFFFF) for k in range(6)
    ]


def _word(x: float) -> int:
    return min(max(round(x), 0), 0xFFFF)


class PMS5003Emu(ParticulateSensor):
    """A PMS5003 on the board's UART."""

    kind = "pms5003"
    header = b"\x42\x4d"
    version = 0x97   # high byte of the reserved word

    def __init__(self, scenario: Scenario, name: str | None = None, seed: int = 0) -> None:
        super().__init__(scenario, name, seed)
        self.passive = False
        self._pm25 = 0.0       # PM2.5 of the latest measurement and its time, for fast mode
        self._measured_at = 0.0
        self._rate = 0.0       # ug/m3 per second between the last two measurements

    def _measure(self, t: float) -> list[int]:
        """The 13 data words the sensor sends at ``t`` (and what fast mode goes by)."""
        a = self.airborne(t)
        atm = (a.pm1, a.pm25, a.pm10)
        self._rate = abs(a.pm25 - self._pm25) / max(t - self._measured_at, 1e-3)
        self._pm25, self._measured_at = a.pm25, t
        return (
            [_word(cf1_from_atm(x)) for x in atm]
            + [_word(x) for x in atm]
            + particle_counts(a)
            + [self.version << 8]
        )

    def _data_frame(self, t: float) -> bytes:
        return pms_frame(self._measure(t))

    def _corrupt(self, frame: bytes) -> bytes:
        good = int.from_bytes(frame[-2:], "big")
        bad = (good + 1 + self._rng.randrange(0xFFFF)) & 0xFFFF
        return frame[:-2] + bad.to_bytes(2, "big")

    def _streaming(self) -> bool:
        return self.fan_on and not self.passive

    def _interval(self, t: float) -> float:
        if self._rate * STABLE_S >= max(5.0, 0.1 * self._pm25):
            return 0.8 - 0.6 * min(self._pm25, 1000.0) / 1000.0
        return STABLE_S

    def _power_on(self, t: float) -> None:
        super()._power_on(t)
        self.passive = False

    def _on_bytes(self, now: float) -> None:
        rx = self._rx
        while True:
            i = rx.find(self.header)
            if i < 0:
                del rx[: max(len(rx) - 1, 0)]   # keep a trailing 42: the start of a command
                return
            del rx[:i]
            if len(rx) < 7:
                return
            if sum(rx[:5]) != int.from_bytes(rx[5:7], "big"):
                del rx[:1]   # not a command after all: look for the next header
                continue
            cmd, data = rx[2], rx[4]
            del rx[:7]
            self._command(cmd, data, now)

    def _command(self, cmd: int, data: int, now: float) -> None:
        if self.asleep:
            if cmd == CMD_SLEEP and data == 1:
                self._start_fan(now)
            return
        if cmd == CMD_MODE and data in (0, 1):
            was_passive = self.passive
            self.passive = data == 0
            self._reply(now, pms_frame([(cmd << 8) | data], 4))
            if was_passive and not self.passive:
                self._next_frame = now + FIRST_FRAME_S
        elif cmd == CMD_READ and self.passive:
            self._reply(now, self._data_frame(now), data=True)
        elif cmd == CMD_SLEEP and data == 0:
            self._reply(now, pms_frame([(cmd << 8) | data], 4))
            self.asleep = True


class PMS7003Emu(PMS5003Emu):
    """A PMS7003: the PMS5003's protocol in a thinner case."""

    kind = "pms7003"
