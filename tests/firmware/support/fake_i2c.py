# MicroPython test doubles for machine.I2C and time, for the I2C sensor driver tests.
#
# FakeI2C replays datasheet transactions: after a command write, the next read returns the
# bytes scripted for that command; register devices read and write a 256-byte register file.
# LinkI2C forwards every transaction to the CPython test (stdin/stdout), where an emulated device
# from tools/gonggi_emu answers, so the real driver runs against the emulator byte for byte.
import sys
from binascii import hexlify, unhexlify

ENODEV = 19


class FakeClock:
    # Stands in for the time module inside a driver: sleep_ms advances a virtual clock.
    def __init__(self, now=0):
        self.now = now

    def ticks_ms(self):
        return self.now

    def sleep_ms(self, ms):
        self.now += ms

    def ticks_add(self, t, d):
        return t + d

    def ticks_diff(self, a, b):
        return a - b


class FakeI2C:
    def __init__(self):
        self.answers = {}     # (addr << 16 | command) -> bytes the next read returns
        self.mem = {}         # addr -> bytearray(256) register file
        self.pending = {}     # addr -> answer waiting for a read (None: the read NACKs)
        self.writes = []      # (addr, bytes) log; set to None where a test counts allocations
        self.nack = False     # True: every transaction NACKs, as an unplugged device

    def answer(self, addr, cmd, data):
        self.answers[(addr << 16) | cmd] = bytes(data)
        if addr not in self.pending:
            self.pending[addr] = None

    def registers(self, addr):
        regs = bytearray(256)
        self.mem[addr] = regs
        return regs

    def _present(self, addr):
        if self.nack or (addr not in self.pending and addr not in self.mem):
            raise OSError(ENODEV)

    def writeto(self, addr, buf, stop=True):
        self._present(addr)
        if self.writes is not None:
            self.writes.append((addr, bytes(buf)))
        if len(buf) >= 2 and addr in self.pending:
            self.pending[addr] = self.answers.get((addr << 16) | (buf[0] << 8) | buf[1])
        return len(buf)

    def readfrom_into(self, addr, buf):
        self._present(addr)
        data = self.pending.get(addr)
        if data is None:
            raise OSError(ENODEV)
        self.pending[addr] = None
        n = len(data)
        for i in range(len(buf)):
            # A target that stops early leaves the bus high: the master reads 0xFF.
            buf[i] = data[i] if i < n else 0xFF

    def readfrom_mem_into(self, addr, reg, buf):
        self._present(addr)
        regs = self.mem[addr]
        for i in range(len(buf)):
            buf[i] = regs[(reg + i) & 0xFF]

    def writeto_mem(self, addr, reg, buf):
        self._present(addr)
        if self.writes is not None:
            self.writes.append((addr, bytes([reg]) + bytes(buf)))
        regs = self.mem[addr]
        for i in range(len(buf)):
            regs[(reg + i) & 0xFF] = buf[i]


class LinkI2C:
    # Each transaction is one request line on stdout and one answer line on stdin:
    #   "W <now_ms> <addr> <hex>"  -> "A" (ack) or "N" (nack)
    #   "R <now_ms> <addr> <n>"    -> "<hex>" or "N"
    def __init__(self, clock):
        self.clock = clock

    def _ask(self, line):
        print(line)
        return sys.stdin.readline().strip()

    def writeto(self, addr, buf, stop=True):
        ans = self._ask("W %d %d %s" % (self.clock.now, addr, hexlify(buf).decode() or "-"))
        if ans != "A":
            raise OSError(ENODEV)
        return len(buf)

    def readfrom_into(self, addr, buf):
        ans = self._ask("R %d %d %d" % (self.clock.now, addr, len(buf)))
        if ans == "N":
            raise OSError(ENODEV)
        data = unhexlify(ans)
        for i in range(len(buf)):
            buf[i] = data[i]

    def readfrom_mem_into(self, addr, reg, buf):
        self.writeto(addr, bytes([reg]), False)
        self.readfrom_into(addr, buf)

    def writeto_mem(self, addr, reg, buf):
        self.writeto(addr, bytes([reg]) + bytes(buf))
