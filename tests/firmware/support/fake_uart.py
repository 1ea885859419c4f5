# A machine.UART stand-in for driver tests on the VM: the test feeds the bytes the sensor sends
# into a ring buffer, the driver drains them with any()/readinto(), and what the driver writes
# is logged in tx. Nothing here allocates after construction, so a test can assert that a
# driver's poll() allocates nothing, frames included.


class FakeUART:
    def __init__(self, size=2048, tx_size=512):
        self._buf = bytearray(size)
        self._head = 0     # next byte to read
        self._count = 0
        self.tx = bytearray(tx_size)
        self.tx_len = 0    # bytes logged in tx (writes past tx_size are counted, not kept)
        self.tx_total = 0
        self.fail = False  # True: every call raises OSError, as a UART whose driver died
        self.overflows = 0

    def feed(self, data, n=-1):
        # The sensor sends data[:n] (all of data if n < 0); bytes that do not fit are lost,
        # as in a real UART FIFO.
        if n < 0:
            n = len(data)
        size = len(self._buf)
        for i in range(n):
            if self._count == size:
                self.overflows += 1
                continue
            self._buf[(self._head + self._count) % size] = data[i]
            self._count += 1

    def any(self):
        if self.fail:
            raise OSError(5)
        return self._count

    def readinto(self, buf, nbytes=-1):
        if self.fail:
            raise OSError(5)
        if nbytes < 0 or nbytes > len(buf):
            nbytes = len(buf)
        if nbytes > self._count:
            nbytes = self._count
        if nbytes == 0:
            return None    # machine.UART returns None when nothing arrived before the timeout
        size = len(self._buf)
        for i in range(nbytes):
            buf[i] = self._buf[self._head]
            self._head = (self._head + 1) % size
        self._count -= nbytes
        return nbytes

    def write(self, buf):
        if self.fail:
            raise OSError(5)
        for i in range(len(buf)):
            if self.tx_len < len(self.tx):
                self.tx[self.tx_len] = buf[i]
                self.tx_len += 1
        self.tx_total += len(buf)
        return len(buf)

    def take_tx(self):
        # What the driver wrote since the last call, as a hex string (tests only: allocates).
        out = "".join("%02x" % self.tx[i] for i in range(self.tx_len))
        self.tx_len = 0
        return out
