# Flash ring buffer of unacknowledged packets: survives reboots and power cuts.
#
# One file of `slots` fixed-size slots. A slot holds
#   magic "GG" | len u16 | boot u32 | seq u32 | crc32(len..seq + packet) u32 | packet
# and is written with a single write. A power cut mid-write leaves a slot whose CRC fails: it
# reads as free, and since that packet was never sent nothing is lost that the gateway saw.
# An ack clears the magic (2 bytes); a cut during that write leaves either the packet (sent again,
# the gateway drops the duplicate) or a free slot. Either way: exactly once at the gateway.
# When every slot holds an unacked packet, the oldest is overwritten and counted in `dropped`.
import binascii
import struct
from array import array
from micropython import const

_HDR = const(16)
_MAGIC0 = const(0x47)  # "G"
_MAGIC1 = const(0x47)
_EMPTY = const(0)
_FULL = const(1)


class Ring:
    def __init__(self, path, slots=64, slot_size=256):
        self.slots = slots
        self.slot_size = slot_size
        self.dropped = 0
        self._buf = bytearray(slot_size)
        self._mv = memoryview(self._buf)
        self._zero = bytearray(2)
        self.boot = array("I", bytes(4 * slots))
        self.seq = array("I", bytes(4 * slots))
        self.state = bytearray(slots)
        self.sent_ms = array("i", bytes(4 * slots))  # ticks when last sent; 0 = not in flight
        self._f = self._open(path)
        self._recover()

    def _open(self, path):
        try:
            f = open(path, "r+b")
        except OSError:
            f = open(path, "w+b")
        f.seek(0, 2)
        size = f.tell()
        need = self.slots * self.slot_size
        if size < need:
            # Grow in slot-sized steps: zeroed slots are free.
            z = bytearray(self.slot_size)
            while size < need:
                f.write(z)
                size += self.slot_size
            f.flush()
        return f

    def _recover(self):
        buf = self._buf
        for i in range(self.slots):
            self._f.seek(i * self.slot_size)
            self._f.readinto(buf)
            if buf[0] == _MAGIC0 and buf[1] == _MAGIC1:
                n = (buf[2] << 8) | buf[3]
                if n <= self.slot_size - _HDR and self._crc(n) == struct.unpack_from(">I", buf, 12)[0]:
                    self.boot[i] = struct.unpack_from(">I", buf, 4)[0]
                    self.seq[i] = struct.unpack_from(">I", buf, 8)[0]
                    self.state[i] = _FULL
                    continue
            self.state[i] = _EMPTY

    def _crc(self, n):
        crc = binascii.crc32(self._mv[2:12])
        return binascii.crc32(self._mv[_HDR:_HDR + n], crc) & 0xFFFFFFFF

    def count(self):
        n = 0
        for s in self.state:
            n += s
        return n

    def _slot_for_new(self):
        # A free slot, else the slot of the oldest packet (overwritten, counted).
        oldest = -1
        for i in range(self.slots):
            if self.state[i] == _EMPTY:
                return i
            if oldest < 0 or self._older(i, oldest):
                oldest = i
        self.dropped += 1
        return oldest

    def _older(self, i, j):
        bi = self.boot[i]
        bj = self.boot[j]
        return bi < bj or (bi == bj and self.seq[i] < self.seq[j])

    def put(self, boot, seq, packet):
        n = len(packet)
        if n > self.slot_size - _HDR:
            raise ValueError("packet larger than a ring slot")
        i = self._slot_for_new()
        b = self._buf
        b[0] = _MAGIC0
        b[1] = _MAGIC1
        struct.pack_into(">HII", b, 2, n, boot, seq)
        self._mv[_HDR:_HDR + n] = packet
        struct.pack_into(">I", b, 12, self._crc(n))
        self._f.seek(i * self.slot_size)
        self._f.write(self._mv[:_HDR + n])
        self._f.flush()
        self.boot[i] = boot
        self.seq[i] = seq
        self.state[i] = _FULL
        self.sent_ms[i] = 0
        return i

    def oldest(self, skip_in_flight=True):
        # Slot index of the oldest unacked packet (not in flight if asked), or -1.
        best = -1
        for i in range(self.slots):
            if self.state[i] == _FULL and not (skip_in_flight and self.sent_ms[i]):
                if best < 0 or self._older(i, best):
                    best = i
        return best

    def read(self, i):
        # The packet in slot i, as a memoryview into the ring's buffer (valid until the next call).
        self._f.seek(i * self.slot_size)
        self._f.readinto(self._buf)
        n = (self._buf[2] << 8) | self._buf[3]
        return self._mv[_HDR:_HDR + n]

    def ack(self, boot, first, last):
        # Forget the packets first..last of boot; returns how many were held.
        n = 0
        for i in range(self.slots):
            if self.state[i] == _FULL and self.boot[i] == boot and first <= self.seq[i] <= last:
                self._f.seek(i * self.slot_size)
                self._f.write(self._zero)
                self.state[i] = _EMPTY
                self.sent_ms[i] = 0
                n += 1
        if n:
            self._f.flush()
        return n

    def close(self):
        self._f.close()
