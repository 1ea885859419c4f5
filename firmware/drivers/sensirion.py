# Sensirion I2C framing shared by the SPS30, SCD4x and SGP40 drivers: 16-bit big-endian
# commands, arguments and answers as 16-bit words each followed by a CRC-8 (poly 0x31, init 0xFF;
# the datasheets' example: CRC(0xBEEF) = 0x92). Nothing here allocates after __init__.
from micropython import const

from drivers.i2csensor import I2CSensor

_POLY = const(0x31)


def crc8(buf, start, n):
    # CRC-8 of buf[start:start+n] without slicing.
    crc = 0xFF
    for i in range(start, start + n):
        crc ^= buf[i]
        for _ in range(8):
            if crc & 0x80:
                crc = ((crc << 1) ^ _POLY) & 0xFF
            else:
                crc = (crc << 1) & 0xFF
    return crc


class SensirionSensor(I2CSensor):
    def __init__(self, i2c, addr, rx_len, raw_len, stuck_ms):
        super().__init__(i2c, addr, raw_len, stuck_ms)
        tx = bytearray(8)
        self._tx = tx
        mv = memoryview(tx)
        # One view per frame length: command, command + 1 word, command + 2 words.
        self._txv = (mv[:2], mv[:5], mv[:8])
        self._rx = bytearray(rx_len)
        self._rxmv = memoryview(self._rx)

    def _rxview(self, nwords):
        # For __init__ only: a view of the receive buffer for an answer of nwords words.
        return self._rxmv[: 3 * nwords]

    def _cmd(self, cmd, nargs=0, a=0, b=0):
        # Send a command with up to two argument words; raises OSError on NACK.
        tx = self._tx
        tx[0] = cmd >> 8
        tx[1] = cmd & 0xFF
        if nargs:
            tx[2] = a >> 8
            tx[3] = a & 0xFF
            tx[4] = crc8(tx, 2, 2)
            if nargs > 1:
                tx[5] = b >> 8
                tx[6] = b & 0xFF
                tx[7] = crc8(tx, 5, 2)
        self.i2c.writeto(self.addr, self._txv[nargs])

    def _read(self, view):
        # Read len(view) // 3 words into the receive buffer; False (counted) if a CRC fails,
        # which includes a target that stopped early (the master then reads 0xFF).
        self.i2c.readfrom_into(self.addr, view)
        rx = self._rx
        for i in range(0, len(view), 3):
            if crc8(rx, i, 2) != rx[i + 2]:
                self.crc_errors += 1
                return False
        return True

    def _word(self, i):
        rx = self._rx
        return (rx[3 * i] << 8) | rx[3 * i + 1]
