"""Emulated Nova Fitness SDS011 (kind "sds011") at the byte level.

From "Laser Dust Sensor Control Protocol V1.3": 10-byte data frames
``AA C0 PM25lo PM25hi PM10lo PM10hi ID1 ID2 CHK AB`` (0.1 ug/m3, CHK = low byte of the sum of
the six bytes after C0), one per second in active reporting mode; 19-byte commands
``AA B4 DATA1..DATA15 CHK AB`` (DATA14/15 = device ID, FF FF for any) answered by
``AA C5 DATA1 DATA2 DATA3 DATA4 ID1 ID2 CHK AB``: 2 reporting mode, 4 query data (answered with a
data frame), 5 set device ID, 6 sleep/work, 7 firmware version, 8 working period (n minutes: work
30 s, then report and sleep the rest). Reporting mode, period and ID survive power-off; sleep
does not. Range 0.0-999.9 ug/m3. Seen on real units: asleep, the sensor ignores every command
but "work".
"""

from __future__ import annotations

from gonggi_emu.devices.particulate import FIRST_FRAME_S, ParticulateSensor
from gonggi_emu.scenario import Scenario

__all__ = ["SDS011Emu", "sds_frame", "sds_command"]

DATA = 0xC0
REPLY = 0xC5
SET_MODE = 2
QUERY = 4
SET_ID = 5
SET_SLEEP = 6
VERSION = 7
SET_PERIOD = 8
WORK_S = 30.0
MAX_TENTHS = 9999


def sds_frame(kind: int, d: bytes | tuple[int, ...], device_id: int) -> bytes:
    """``AA kind d0 d1 d2 d3 ID1 ID2 CHK AB``."""
    body = bytes(d) + device_id.to_bytes(2, "big")
    return bytes((0xAA, kind)) + body + bytes((sum(body) & 0xFF, 0xAB))


def sds_command(what: int, d2: int = 0, d3: int = 0, device_id: int = 0xFFFF,
                new_id: int | None = None) -> bytes:
    """A 19-byte command (DATA1 = what, DATA2, DATA3; DATA12/13 = new ID for command 5)."""
    data = bytearray(15)
    data[0], data[1], data[2] = what, d2, d3
    if new_id is not None:
        data[11:13] = new_id.to_bytes(2, "big")
    data[13:15] = device_id.to_bytes(2, "big")
    return b"\xaa\xb4" + bytes(data) + bytes((sum(data) & 0xFF, 0xAB))


class SDS011Emu(ParticulateSensor):
    """An SDS011 on the board's UART."""

    kind = "sds011"
    header = b"\xaa\xc0"
    firmware = (18, 11, 16)   # year, month, day in the version reply

    def __init__(self, scenario: Scenario, name: str | None = None, seed: int = 0,
                 device_id: int = 0xA160) -> None:
        super().__init__(scenario, name, seed)
        self.device_id = device_id
        self.query_mode = False
        self.period_min = 0

    def measure(self, t: float) -> tuple[int, int]:
        """PM2.5 and PM10 in 0.1 ug/m3, clipped at the top of the range as the sensor does."""
        a = self.airborne(t)
        return min(round(a.pm25 * 10), MAX_TENTHS), min(round(a.pm10 * 10), MAX_TENTHS)

    def _data_frame(self, t: float) -> bytes:
        pm25, pm10 = self.measure(t)
        return sds_frame(DATA, pm25.to_bytes(2, "little") + pm10.to_bytes(2, "little"),
                         self.device_id)

    def _corrupt(self, frame: bytes) -> bytes:
        bad = (frame[8] + 1 + self._rng.randrange(255)) & 0xFF
        return frame[:8] + bytes((bad,)) + frame[9:]

    def _streaming(self) -> bool:
        return self.fan_on and not self.query_mode

    def _interval(self, t: float) -> float:
        return 60.0 * self.period_min if self.period_min else 1.0

    def _start_fan(self, t: float) -> None:
        super()._start_fan(t)
        if self.period_min:
            self._next_frame = t + WORK_S

    def _on_bytes(self, now: float) -> None:
        rx = self._rx
        while True:
            i = rx.find(b"\xaa\xb4")
            if i < 0:
                del rx[: max(len(rx) - 1, 0)]   # keep a trailing AA: the start of a command
                return
            del rx[:i]
            if len(rx) < 19:
                return
            if rx[18] != 0xAB or sum(rx[2:17]) & 0xFF != rx[17]:
                del rx[:1]
                continue
            cmd = bytes(rx[:19])
            del rx[:19]
            target = int.from_bytes(cmd[15:17], "big")
            if target in (0xFFFF, self.device_id):
                self._command(cmd, now)

    def _answer(self, now: float, d: tuple[int, ...]) -> None:
        self._reply(now, sds_frame(REPLY, d, self.device_id))

    def _command(self, cmd: bytes, now: float) -> None:
        what, set_, value = cmd[2], cmd[3], cmd[4]
        if self.asleep:
            if what == SET_SLEEP and set_ == 1 and value == 1:
                self._start_fan(now)
                self._answer(now, (SET_SLEEP, 1, 1, 0))
            return
        if what == SET_MODE:
            if set_ == 1 and value in (0, 1):
                was_query = self.query_mode
                self.query_mode = value == 1
                if was_query and not self.query_mode:
                    self._next_frame = now + FIRST_FRAME_S
            self._answer(now, (SET_MODE, set_, int(self.query_mode), 0))
        elif what == QUERY:
            self._reply(now, self._data_frame(now), data=True)
        elif what == SET_ID:
            self.device_id = int.from_bytes(cmd[13:15], "big")
            self._answer(now, (SET_ID, 0, 0, 0))
        elif what == SET_SLEEP:
            if set_ == 1 and value == 0:
                self._answer(now, (SET_SLEEP, 1, 0, 0))
                self.asleep = True
            else:
                self._answer(now, (SET_SLEEP, set_, 1, 0))
        elif what == VERSION:
            self._answer(now, (VERSION, *self.firmware))
        elif what == SET_PERIOD:
            if set_ == 1 and 0 <= value <= 30:
                self.period_min = value
                self._next_frame = now + (WORK_S if value else FIRST_FRAME_S)
            self._answer(now, (SET_PERIOD, set_, self.period_min, 0))
