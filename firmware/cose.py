# COSE_Mac0 (RFC 9052, tag 17) with HMAC 256/64 (alg 4), written into a caller-owned buffer.
# Byte-for-byte what docs/protocol.md specifies and gateway/gonggi_gateway/protocol/cose.py
# produces: protected {1: 4, 6: seq (4 bytes BE), 10: boot (4 bytes BE)}, unprotected {4: kid}.
from micropython import const

from cbor import Reader, Writer
from hmac_sha256 import HMAC

_TAG_LEN = const(8)
_PROT_LEN = const(15)
_SEQ_AT = const(5)    # offset of the 4 seq bytes inside the protected map
_BOOT_AT = const(11)  # offset of the 4 boot bytes
_MAC0_HEAD = b"\x84\x64MAC0"


class Mac0:
    def __init__(self, key, kid):
        self._hmac = HMAC(key)
        self.kid = kid
        self._prot = bytearray(b"\xa3\x01\x04\x06\x44\x00\x00\x00\x00\x0a\x44\x00\x00\x00\x00")
        self._hdr = bytearray(5)
        self._hdr_w = Writer(self._hdr)

    def _set(self, at, v):
        p = self._prot
        p[at] = (v >> 24) & 0xFF
        p[at + 1] = (v >> 16) & 0xFF
        p[at + 2] = (v >> 8) & 0xFF
        p[at + 3] = v & 0xFF

    def seal(self, w, boot, seq, payload):
        # Append the COSE_Mac0 of payload (a memoryview) to Writer w.
        self._set(_SEQ_AT, seq)
        self._set(_BOOT_AT, boot)
        w.tag(17)
        w.array(4)
        w.bstr(self._prot)
        w.map(1)
        w.int(4)
        w.bstr(self.kid)
        w.bstr(payload)
        w.head(2, _TAG_LEN)
        tag_at = w.pos
        w.pos += _TAG_LEN
        # MAC_structure = ["MAC0", protected, h'', payload], streamed into the hash.
        h = self._hmac
        h.start()
        h.update(_MAC0_HEAD)
        h.update(b"\x4f")
        h.update(self._prot)
        h.update(b"\x40")
        hw = self._hdr_w
        hw.reset()
        hw.head(2, len(payload))
        h.update(memoryview(self._hdr)[:hw.pos])
        h.update(payload)
        h.finish(w.mv[tag_at:tag_at + _TAG_LEN], _TAG_LEN)

    def verify(self, data):
        # Parse a gateway message (COSE_Mac0 bytes, memoryview) made with this node's key.
        # Returns (boot, payload memoryview) or None if it is not ours or the MAC is wrong.
        return _verify(self, data)


def _verify(self, mv):
    r = Reader(mv)
    try:
        if r.head() != (6, 17) or r.head() != (4, 4):
            return None
        prot = r.bytes()
        if len(prot) != _PROT_LEN or prot[0:5] != self._prot[0:5] or prot[9:11] != self._prot[9:11]:
            return None
        if r.head() != (5, 1) or r.int() != 4 or r.bytes() != self.kid:
            return None
        payload = r.bytes()
        major, n = r.head()
        if major != 2 or n != _TAG_LEN or r.pos + _TAG_LEN != len(mv):
            return None
        h = self._hmac
        h.start()
        h.update(_MAC0_HEAD)
        h.update(b"\x4f")
        h.update(prot)
        h.update(b"\x40")
        h.update(_payload_head(len(payload)))
        h.update(payload)
        got = bytearray(_TAG_LEN)
        h.finish(memoryview(got), _TAG_LEN)
        if not _equal(got, mv[r.pos:]):
            return None
        return (prot[_BOOT_AT] << 24) | (prot[_BOOT_AT + 1] << 16) | (prot[_BOOT_AT + 2] << 8) | prot[_BOOT_AT + 3], payload
    except (ValueError, IndexError):
        return None


def _payload_head(n):
    # The bstr head that precedes the payload, re-derived from its length (shortest form).
    if n < 24:
        return bytes((0x40 | n,))
    if n < 0x100:
        return bytes((0x58, n))
    return bytes((0x59, n >> 8, n & 0xFF))


def _equal(a, b):
    # Constant time: the comparison must not leak how many tag bytes matched.
    d = 0
    for i in range(_TAG_LEN):
        d |= a[i] ^ b[i]
    return d == 0
