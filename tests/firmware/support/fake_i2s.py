# MicroPython stand-in for machine.I2S (RX, 32-bit mono slots) for the noise meter tests.
#
# FakeI2S plays raw PCM from a file (little-endian 32-bit slots, as the DMA delivers them),
# which the CPython test writes with the emulated microphone of tools/gonggi_emu; at the end of
# the file readinto() returns 0. `fail` makes the next reads raise OSError (a driver error).
import io

_STREAM_POLL = 3
_POLL_RD = 1


class FakeI2S(io.IOBase):
    def __init__(self, path):
        self._f = open(path, "rb")
        self.fail = 0
        self.reads = 0

    def readinto(self, buf):
        self.reads += 1
        if self.fail:
            self.fail -= 1
            raise OSError(5)
        n = self._f.readinto(buf)
        return n or 0

    def ioctl(self, req, arg):
        # asyncio.StreamReader asks whether a read would block: a file never does.
        if req == _STREAM_POLL:
            return arg & _POLL_RD
        return -1

    def deinit(self):
        self._f.close()
