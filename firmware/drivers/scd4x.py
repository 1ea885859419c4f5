# Sensirion SCD40/SCD41 CO2 sensor (I2C 0x62): periodic measurement (one sample per 5 s) or,
# on the SCD41, single shot (5 s per sample, power-down in between).
#
# Every command has an execution time (1 ms for most, 500 ms for stop_periodic_measurement,
# 5 s for a single shot). The constructor may wait; poll() never does: a small state machine sends
# one command per call once the previous one has had its time, and reads the answer at the next
# call. A data-ready check comes before each read_measurement, which NACKs when no data waits.
#
# Channels: co2 ppm (exp 0), t Cel and rh %RH in hundredths (exp -2).
import time

from micropython import const

from drivers.i2csensor import MARGIN_MS
from drivers.sensirion import SensirionSensor
from sensor import CHECKSUM, CONFIG, NO_DATA, RANGE, STUCK

_CMD_START_PERIODIC = const(0x21B1)
_CMD_READ_MEASUREMENT = const(0xEC05)
_CMD_STOP_PERIODIC = const(0x3F86)
_CMD_SET_T_OFFSET = const(0x241D)
_CMD_GET_T_OFFSET = const(0x2318)
_CMD_SET_ALTITUDE = const(0x2427)
_CMD_GET_ALTITUDE = const(0x2322)
_CMD_SET_PRESSURE = const(0xE000)
_CMD_SET_ASC = const(0x2416)
_CMD_GET_ASC = const(0x2313)
_CMD_FORCED_RECAL = const(0x362F)
_CMD_DATA_READY = const(0xE4B8)
_CMD_SERIAL = const(0x3682)
_CMD_SINGLE_SHOT = const(0x219D)
_CMD_WAKE_UP = const(0x36F6)
_CMD_POWER_DOWN = const(0x36E0)

# Execution times (ms), datasheet command table.
_T_CMD = const(1)
_T_STOP = const(500)
_T_WAKE = const(30)
_T_SINGLE = const(5000)
_T_FRC = const(400)
_T_RETRY = const(1000)   # after a NACK, start again no sooner than this

# States: each sends one command (or reads the answer of the previous one).
_S_WAKE = const(0)
_S_STOP = const(1)
_S_SERIAL = const(2)
_S_SERIAL_RD = const(3)
_S_ALTITUDE = const(4)
_S_ASC = const(5)
_S_START = const(6)
_S_READY = const(7)      # running: send get_data_ready_status
_S_READY_RD = const(8)
_S_MEAS_RD = const(9)

_CO2_MAX = const(40000)  # output range, ppm


class SCD4x(SensirionSensor):
    name = "scd4x"
    channels = (("co2", "ppm", 0), ("t", "Cel", -2), ("rh", "%RH", -2))
    warmup_ms = 0        # measures continuously (ASC needs it); the first sample takes 5 s

    def __init__(self, i2c, addr=0x62, temp_offset_c=4.0, altitude_m=0, asc=True,
                 single_shot=False, stuck_ms=300000):
        super().__init__(i2c, addr, 9, 9, stuck_ms)
        self._rx1 = self._rxview(1)
        self._rx3 = self._rxview(3)
        # set_temperature_offset word = offset * 2**16 / 175.
        self._offset_word = int(temp_offset_c * 65536 / 175 + 0.5)
        self._altitude = int(altitude_m)
        self._asc = 1 if asc else 0
        self._single = single_shot
        self._pa = 0            # ambient pressure for compensation, Pa, as last sent
        self._hpa = 0           # the same in hPa (0: never given)
        self._send_hpa = False  # it has to go out with the next request slot
        self._hpa_sent = False  # the last request was set_ambient_pressure
        self.serial = 0
        self._state = _S_WAKE
        self._due = 0
        try:
            now = time.ticks_ms()
            while self._state < _S_READY:
                if self._step(now, None, 0) & (CHECKSUM | CONFIG):
                    raise ValueError("SCD4x at 0x%02x: bad serial number" % addr)
                wait = time.ticks_diff(self._due, now)
                if wait > 0:
                    time.sleep_ms(wait)
                    now = time.ticks_add(now, wait)
        except OSError as e:
            raise OSError("SCD4x not answering at 0x%02x (%s)" % (addr, e))

    def set_ambient_pressure(self, pa):
        # The scheduler feeds the BME280's pressure here (Pa) after each of its samples. It goes
        # out in the next request slot once it moved by 1 hPa (the command's unit) from what
        # was sent, so noise across an hPa boundary does not resend it every time, and again
        # after every restart of the part. Outside the command's 700..1200 hPa it is ignored
        # (the BME280 reports 0 for a skipped or failed pressure).
        pa = int(pa)
        if pa < 70000 or pa > 120000:
            return
        if not self._hpa or pa - self._pa >= 100 or self._pa - pa >= 100:
            self._pa = pa
            self._hpa = pa // 100
            self._send_hpa = True

    def _send(self, now, cmd, wait, state, nargs=0, a=0):
        self._cmd(cmd, nargs, a)
        self._due = time.ticks_add(now, wait + MARGIN_MS)
        self._state = state

    def _step(self, now, out, off):
        # Advance by one command; returns health flags (NO_DATA unless a sample was decoded).
        s = self._state
        if s == _S_WAKE:
            # The SCD41 never acknowledges wake_up and the SCD40 does not know it: ignore NACKs.
            try:
                self._cmd(_CMD_WAKE_UP)
            except OSError:
                pass
            self._due = time.ticks_add(now, _T_WAKE + MARGIN_MS)
            self._state = _S_STOP
        elif s == _S_STOP:
            # Few commands work during periodic measurement: stop it whatever state we find.
            self._send(now, _CMD_STOP_PERIODIC, _T_STOP, _S_SERIAL)
        elif s == _S_SERIAL:
            self._send(now, _CMD_SERIAL, _T_CMD, _S_SERIAL_RD)
        elif s == _S_SERIAL_RD:
            if not self._read(self._rx3):
                self._state = _S_SERIAL
                return CHECKSUM | NO_DATA
            w0, w1, w2 = self._word(0), self._word(1), self._word(2)
            if not (w0 | w1 | w2):
                self._state = _S_SERIAL
                return CONFIG | NO_DATA
            self.serial = (w0 << 32) | (w1 << 16) | w2
            self._send_hpa = self._hpa != 0   # a restarted part forgot it
            self._send(now, _CMD_SET_T_OFFSET, _T_CMD, _S_ALTITUDE, 1, self._offset_word)
        elif s == _S_ALTITUDE:
            self._send(now, _CMD_SET_ALTITUDE, _T_CMD, _S_ASC, 1, self._altitude)
        elif s == _S_ASC:
            self._send(now, _CMD_SET_ASC, _T_CMD, _S_START, 1, self._asc)
        elif s == _S_START or s == _S_READY:
            self._request(now, s)
        elif s == _S_READY_RD:
            if not self._read(self._rx1):
                self._state = _S_READY
                return CHECKSUM | NO_DATA
            if self._word(0) & 0x07FF:
                self._send(now, _CMD_READ_MEASUREMENT, _T_CMD, _S_MEAS_RD)
            else:
                self._send(now, _CMD_DATA_READY, _T_CMD, _S_READY_RD)
        elif s == _S_MEAS_RD:
            ok = self._read(self._rx3)
            flags = self._decode(out, off, now) if ok else CHECKSUM | NO_DATA
            # The next request goes out now rather than one poll later.
            self._request(now, _S_START if self._single else _S_READY)
            return flags
        return NO_DATA

    def _request(self, now, s):
        # From _S_START (begin measuring) or _S_READY (measuring): send the next request.
        if self._send_hpa and not self._hpa_sent:
            # set_ambient_pressure is allowed during periodic measurement; takes this slot, but
            # never two in a row: a pressure that keeps changing must not starve the samples.
            self._send(now, _CMD_SET_PRESSURE, _T_CMD, s, 1, self._hpa)
            self._send_hpa = False
            self._hpa_sent = True
            return
        self._hpa_sent = False
        if s == _S_START:
            if self._single:
                self._send(now, _CMD_SINGLE_SHOT, _T_SINGLE, _S_READY)
            else:
                self._send(now, _CMD_START_PERIODIC, _T_CMD, _S_READY)
        else:
            self._send(now, _CMD_DATA_READY, _T_CMD, _S_READY_RD)

    def _decode(self, out, off, now):
        co2 = self._word(0)
        out[off] = co2
        # T = -45 + 175 * w / 2**16 and RH = 100 * w / 2**16, in hundredths, rounded; the
        # factors are reduced (17500 / 2**16 = 4375 / 2**14) to keep products below 2**30.
        out[off + 1] = ((4375 * self._word(1) + 8192) >> 14) - 4500
        out[off + 2] = (625 * self._word(2) + 2048) >> 12
        flags = 0
        if co2 == 0 or co2 > _CO2_MAX:
            flags |= RANGE
        if self._stuck(self._rx, 9, now):
            flags |= STUCK
        return flags

    def poll(self, now_ms, out, off):
        if time.ticks_diff(now_ms, self._due) < 0:
            return NO_DATA
        try:
            return self._step(now_ms, out, off)
        except OSError as e:
            # Unplugged or powered off: start again from wake-up, as after power-on.
            if self._state >= _S_READY:
                self.restarts += 1
            self._state = _S_WAKE
            self._due = time.ticks_add(now_ms, _T_RETRY)
            return self._bus_error(e)

    def sleep(self):
        # SCD41 single shot: power down between reports; wake() starts over from wake_up.
        if self._single:
            try:
                self._cmd(_CMD_POWER_DOWN)
            except OSError as e:
                self._bus_error(e)
            self._state = _S_WAKE

    def forced_recalibration(self, ppm):
        # Maintenance call (blocks ~1 s; not for the sample loop): stop, recalibrate to a known
        # ppm after >= 3 min at it, restart. The correction in ppm, or None if refused (0xFFFF).
        self._cmd(_CMD_STOP_PERIODIC)
        time.sleep_ms(_T_STOP + MARGIN_MS)
        self._cmd(_CMD_FORCED_RECAL, 1, ppm)
        time.sleep_ms(_T_FRC + MARGIN_MS)
        ok = self._read(self._rx1)
        word = self._word(0)
        self._state = _S_START
        self._due = time.ticks_ms()
        if not ok or word == 0xFFFF:
            return None
        return word - 0x8000

    def settings(self):
        # Maintenance call (blocks ~0.5 s): (temperature offset degC, altitude m, ASC on) as
        # the sensor holds them, None for a value whose frame failed its CRC.
        self._cmd(_CMD_STOP_PERIODIC)
        time.sleep_ms(_T_STOP + MARGIN_MS)
        vals = []
        for cmd in (_CMD_GET_T_OFFSET, _CMD_GET_ALTITUDE, _CMD_GET_ASC):
            self._cmd(cmd)
            time.sleep_ms(_T_CMD + MARGIN_MS)
            vals.append(self._word(0) if self._read(self._rx1) else None)
        self._state = _S_START
        self._due = time.ticks_ms()
        if vals[0] is not None:
            vals[0] = vals[0] * 175 / 65536
        if vals[2] is not None:
            vals[2] = bool(vals[2])
        return tuple(vals)
