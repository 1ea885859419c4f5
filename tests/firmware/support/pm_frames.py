# Frames as the PMS5003/7003 and SDS011 datasheets define them, built on the VM for driver tests.
# The tests pin these builders to hand-computed bytes first, then use them for many values.


def pms_frame(words, length=28):
    # 42 4D, frame length, the 13 data words big-endian, 16-bit sum of all preceding bytes.
    f = bytearray(4 + 2 * len(words) + 2)
    f[0] = 0x42
    f[1] = 0x4D
    f[2] = length >> 8
    f[3] = length & 0xFF
    for i, w in enumerate(words):
        f[4 + 2 * i] = w >> 8
        f[5 + 2 * i] = w & 0xFF
    s = sum(f[:-2])
    f[-2] = s >> 8
    f[-1] = s & 0xFF
    return f


def pms_ack(cmd, data):
    # The 8-byte acknowledgement of a mode or sleep command: 42 4D 00 04 CMD DATA sum.
    return pms_frame([(cmd << 8) | data], 4)


def sds_frame(pm25_tenths, pm10_tenths, dev_id=0xA160, kind=0xC0, payload=None):
    # AA C0 PM25lo PM25hi PM10lo PM10hi ID1 ID2 CHK AB (kind C5 + payload: a command reply).
    if payload is None:
        payload = (pm25_tenths & 0xFF, pm25_tenths >> 8, pm10_tenths & 0xFF, pm10_tenths >> 8)
    f = bytearray(10)
    f[0] = 0xAA
    f[1] = kind
    for i in range(4):
        f[2 + i] = payload[i]
    f[6] = dev_id >> 8
    f[7] = dev_id & 0xFF
    f[8] = sum(f[2:8]) & 0xFF
    f[9] = 0xAB
    return f
