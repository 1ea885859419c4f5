# HMAC-SHA256 (RFC 2104) on hashlib.sha256, which MicroPython has everywhere; there is no hmac
# module on the board. The padded key blocks are built once per key.
import hashlib
from micropython import const

_BLOCK = const(64)


class HMAC:
    def __init__(self, key):
        if len(key) > _BLOCK:
            key = hashlib.sha256(key).digest()
        self._ipad = bytearray(_BLOCK)
        self._opad = bytearray(_BLOCK)
        for i in range(_BLOCK):
            k = key[i] if i < len(key) else 0
            self._ipad[i] = k ^ 0x36
            self._opad[i] = k ^ 0x5C
        self._inner = None

    def start(self):
        self._inner = hashlib.sha256(self._ipad)

    def update(self, data):
        self._inner.update(data)

    def finish(self, out, n):
        # Write the first n bytes of the MAC into out (a memoryview); n = 8 for HMAC 256/64.
        outer = hashlib.sha256(self._opad)
        outer.update(self._inner.digest())
        self._inner = None
        out[:n] = outer.digest()[:n]
