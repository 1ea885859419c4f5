# A fake I2C bus carrying a BME280 (0x76), an SCD41 (0x62), an SPS30 (0x69) and an SGP40 (0x59)
# whose readings change from cycle to cycle, for "steady state allocates nothing" tests: every
# variant of every answer is framed once, up front (CRCs, IEEE floats), and cycle(i) copies
# variant i into the live answer buffers and registers in place, allocating nothing itself.
import struct

from drivers.sensirion import crc8
from fake_i2c import FakeI2C

BME = 0x76
SCD = 0x62
SPS = 0x69
SGP = 0x59


def words(raw):
    # Sensirion framing: every 16-bit word followed by its CRC-8.
    out = bytearray()
    for i in range(0, len(raw), 2):
        out += raw[i:i + 2]
        out.append(crc8(raw, i, 2))
    return bytes(out)


def word(v):
    return words(bytes((v >> 8, v & 0xFF)))


class FakeADC:
    # machine.ADC stand-in for the battery divider: read_uv() cycles through values.
    def __init__(self, uvs):
        self.uvs = uvs
        self.i = 0

    def read_uv(self):
        return self.uvs[self.i % len(self.uvs)]


class LiveBus(FakeI2C):
    # bme: (adc_p, adc_t, adc_h) per variant; scd: (co2 ppm, T word, RH word); sps: ten floats
    # (PM1..PM10 ug/m3, NC0.5..NC10 #/cm3, typical size um); sgp: raw ticks. All the same length.
    def __init__(self, bme, scd, sps, sgp, uvs):
        super().__init__()
        self.writes = None
        self.n = len(bme)
        self._bme = bme
        regs = self.registers(BME)
        regs[0xD0] = 0x60
        # The datasheet's example trimming (T, P) and a real part's (H), as test_bme280.py.
        struct.pack_into("<HhhHhhhhhhhh", regs, 0x88, 27504, 26435, -1000, 36477, -10685, 3024,
                         2855, 140, -7, 15500, -14600, 6000)
        regs[0xA1] = 75
        struct.pack_into("<hB", regs, 0xE1, 362, 0)
        regs[0xE4] = 313 >> 4
        regs[0xE5] = (313 & 0xF) | ((50 & 0xF) << 4)
        regs[0xE6] = 50 >> 4
        regs[0xE7] = 30
        self._regs = regs
        self.answer(SCD, 0x3682, word(0xF896) + word(0x9F07) + word(0x3BB2))
        self.answer(SCD, 0xE4B8, word(0x8006))
        self._scd = [word(c) + word(t) + word(h) for c, t, h in scd]
        self.answer(SPS, 0xD033, words(b"E9F1D2A3B4C5D6E7" + bytes(16)))
        self.answer(SPS, 0x0202, word(1))
        self._sps = [words(struct.pack(">10f", *v)) for v in sps]
        self.answer(SGP, 0x3682, word(0) + word(0x0102) + word(0x0304))
        self.answer(SGP, 0x280E, word(0xD400))
        self._sgp = [word(r) for r in sgp]
        # The live answers: bytearrays that FakeI2C hands out and cycle() rewrites.
        self._live = []
        for addr, cmd, variants in ((SCD, 0xEC05, self._scd), (SPS, 0x0300, self._sps),
                                    (SGP, 0x260F, self._sgp)):
            buf = bytearray(variants[0])
            self.answers[(addr << 16) | cmd] = buf
            self._live.append((buf, variants))
        self.adc = FakeADC(uvs)
        self.cycle(0)

    def cycle(self, i):
        k = i % self.n
        p, t, h = self._bme[k]
        r = self._regs
        r[0xF7] = p >> 12
        r[0xF8] = (p >> 4) & 0xFF
        r[0xF9] = (p & 0xF) << 4
        r[0xFA] = t >> 12
        r[0xFB] = (t >> 4) & 0xFF
        r[0xFC] = (t & 0xF) << 4
        r[0xFD] = h >> 8
        r[0xFE] = h & 0xFF
        for buf, variants in self._live:
            src = variants[k]
            for j in range(len(buf)):
                buf[j] = src[j]
        self.adc.i = k
