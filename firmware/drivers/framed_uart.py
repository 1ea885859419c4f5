# What the UART particulate sensors (PMS5003/7003, SDS011) share: draining the UART without
# blocking or allocating, finding fixed-size frames in a byte stream, and turning silence,
# bad frames and frozen values into health flags.
#
# Receive path: poll() moves what uart.any() reports, a chunk at a time, through readinto() into
# a small buffer and scans it. A complete frame that passes the subclass's check is consumed; a
# failed one is skipped by ONE byte only, so a real frame that began inside garbage or inside a
# truncated frame is still found (resynchronisation). An incomplete frame stays at the start of
# the buffer for the next poll.
#
# Health, per poll:
#   CHECKSUM  a frame failed its sum/tail check, or stray bytes arrived after the first good frame
#             (bytes before it are the tail of a frame we joined mid-way, not an error)
#   MISSING   no valid data frame for missing_ms (also right after wake, if nothing comes)
#   STUCK     frames keep arriving but their data bytes have not changed for stuck_ms
#   WARMING   less than warmup_ms since wake() (power-up counts as a wake); in polled modes
#             the data a poll reads was requested at the poll before, so that time counts
#   NO_DATA   no new data frame since the last poll, or asleep: out holds nothing to count
#   BUS       the UART raised OSError
#   CONFIG    the sensor acknowledged a different setting than the one we sent
# plus RANGE from the subclass. Counters (frames, bad_frames, stray_bytes, uart_errors) keep the
# totals since construction for diagnostics.
#
# Subclasses provide:
#   _frame_len(rx, i, avail) -> -1 need more bytes, 0 no frame starts at rx[i], else frame size
#   _accept(rx, i, size)     -> FRAME_BAD, FRAME_DATA, or FRAME_REPLY (a command answer that
#                               the subclass has handled)
#   _PAYLOAD                    offset of the data bytes inside a data frame (len(_raw) of them)
#   _write(out, off)            the channels from self._raw; returns RANGE or 0
#   _configure()                send the mode commands (after the wake command, on
#                               construction, wake() and when MISSING)
#   _request()                  per-poll request in polled modes (passive read / query);
#                               True if it asked for data
#   _wake_sensor(), _sleep_sensor()  the wake and sleep commands
from micropython import const
from time import ticks_diff

from sensor import BUS, CHECKSUM, MISSING, NO_DATA, STUCK, WARMING, Sensor

_RX_SIZE = const(64)     # two frames of the longest kind (32 B): an incomplete one always fits
_CHUNK = const(32)
_MAX_CHUNKS = const(16)  # at most 512 bytes per poll keeps poll() short after a long pause

# What _accept() found; public names, as underscore consts are not importable.
FRAME_BAD = const(0)
FRAME_DATA = const(1)
FRAME_REPLY = const(2)


class FramedUARTSensor(Sensor):
    warmup_ms = 30000   # both datasheets: stable data at least 30 s after the fan starts

    def __init__(self, uart, raw_len, missing_ms, stuck_ms):
        if missing_ms <= 0 or stuck_ms <= 0:
            raise ValueError(self.name + ": missing_ms and stuck_ms must be > 0")
        self._uart = uart
        self._rx = bytearray(_RX_SIZE)
        self._n = 0
        self._chunk = bytearray(_CHUNK)
        self._raw = bytearray(raw_len)   # data bytes of the latest valid data frame
        self._missing_ms = missing_ms
        self._stuck_ms = stuck_ms
        self._err = 0            # flags raised while draining, handed out by the next poll()
        self._fresh = False      # a data frame arrived since the last poll
        self._valid = False      # _raw holds a frame from this wake that is not stale
        self._synced = False     # a good frame seen since wake: stray bytes are now errors
        self._asleep = False
        self._woken = True       # power-up counts as a wake; its time is taken at the next poll
        self._wake_ms = 0
        self._seen_ms = 0        # last valid data frame, or the wake
        self._changed_ms = 0     # last change of the raw data bytes
        self._retry_ms = 0       # last time _configure() was re-sent because of silence
        self._asked_ms = 0       # last data request (polled modes)
        self._polled = False     # the last _request() asked for data
        self.frames = 0
        self.bad_frames = 0
        self.stray_bytes = 0
        self.uart_errors = 0

    def _send(self, buf):
        # Commands go out whole: a short write is as bad as an OSError.
        try:
            if self._uart.write(buf) != len(buf):
                self._err |= BUS
        except OSError:
            self.uart_errors += 1
            self._err |= BUS

    def wake(self):
        # Also the last step of a subclass's __init__: the node may have rebooted while the
        # sensor slept, and an asleep sensor hears nothing but the wake command.
        self._asleep = False
        self._woken = True
        self._wake_sensor()
        self._configure()

    def sleep(self):
        self._asleep = True
        self._sleep_sensor()

    def poll(self, now_ms, out, off):
        if self._woken:
            self._woken = False
            self._wake_ms = self._seen_ms = self._changed_ms = self._retry_ms = now_ms
            self._asked_ms = now_ms
            self._valid = self._synced = self._fresh = False
        self._drain(now_ms)
        flags = self._err
        self._err = 0
        if self._asleep:
            self._zero(out, off)
            return flags | NO_DATA
        if self._fresh:
            self._fresh = False
        else:
            flags |= NO_DATA
        measured = self._asked_ms if self._polled else now_ms
        if ticks_diff(measured, self._wake_ms) < self.warmup_ms:
            flags |= WARMING
        if ticks_diff(now_ms, self._seen_ms) >= self._missing_ms:
            flags |= MISSING
            self._valid = False     # old values are not reported as current
            if ticks_diff(now_ms, self._retry_ms) >= self._missing_ms:
                # Silence may be a sensor that lost power and came back in its default mode,
                # or one put to sleep by a previous owner: start it again.
                self._retry_ms = now_ms
                self._wake_sensor()
                self._configure()
        if self._valid:
            flags |= self._write(out, off)
            if ticks_diff(self._seen_ms, self._changed_ms) >= self._stuck_ms:
                flags |= STUCK
        else:
            self._zero(out, off)
        self._polled = self._request()
        if self._polled:
            self._asked_ms = now_ms
        return flags

    def _zero(self, out, off):
        for i in range(off, off + len(self.channels)):
            out[i] = 0

    def _drain(self, now_ms):
        uart = self._uart
        chunk = self._chunk
        rx = self._rx
        for _ in range(_MAX_CHUNKS):
            try:
                k = uart.any()
                if not k:
                    return
                if k > _CHUNK:
                    k = _CHUNK
                got = uart.readinto(chunk, k)
            except OSError:
                self.uart_errors += 1
                self._err |= BUS
                return
            if not got:
                return
            # _scan() leaves less than one frame, so _CHUNK more bytes always fit.
            n = self._n
            for j in range(got):
                rx[n + j] = chunk[j]
            self._n = n + got
            self._scan(now_ms)

    def _scan(self, now_ms):
        rx = self._rx
        n = self._n
        i = 0
        while i < n:
            size = self._frame_len(rx, i, n - i)
            if size < 0:
                break
            if size == 0:
                self.stray_bytes += 1
                if self._synced:
                    self._err |= CHECKSUM
                i += 1
                continue
            kind = self._accept(rx, i, size)
            if kind == FRAME_BAD:
                self.bad_frames += 1
                self._err |= CHECKSUM
                i += 1
                continue
            self._synced = True
            if kind == FRAME_DATA:
                self._store(rx, i + self._PAYLOAD, now_ms)
            i += size
        j = 0
        while i < n:
            rx[j] = rx[i]
            i += 1
            j += 1
        self._n = j

    def _store(self, rx, start, now_ms):
        raw = self._raw
        changed = not self._valid
        for k in range(len(raw)):
            b = rx[start + k]
            if raw[k] != b:
                raw[k] = b
                changed = True
        if changed:
            self._changed_ms = now_ms
        self._valid = self._fresh = True
        self._seen_ms = now_ms
        self.frames += 1
