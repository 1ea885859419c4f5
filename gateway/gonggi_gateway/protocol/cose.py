"""COSE_Mac0 (RFC 9052) with HMAC 256/64 (alg 4): the envelope of every gonggi message.

Protected header: ``{1: 4, 6: seq (Partial IV, 4 bytes BE), 10: boot (kid context, 4 bytes BE)}``
— deterministic key order, so node and gateway produce identical bytes. Unprotected header:
``{4: kid}`` with the node id. The MAC covers the protected header and the payload, so boot and
seq, which order and de-duplicate packets, cannot be altered; kid selects the key, so a wrong kid
fails the MAC too. Any COSE library can verify these messages with the node's key.
"""

from __future__ import annotations

import hashlib
import hmac
from dataclasses import dataclass
from collections.abc import Mapping
from typing import Any

import cbor2

from gonggi_gateway.errors import BadMac, MalformedPacket

__all__ = ["COSE_MAC0_TAG", "ALG_HMAC_256_64", "Mac0", "mac0_encode", "mac0_decode", "mac0_verify"]

COSE_MAC0_TAG = 17
ALG_HMAC_256_64 = 4
_H_ALG, _H_KID, _H_PARTIAL_IV, _H_KID_CONTEXT = 1, 4, 6, 10
TAG_LEN = 8


@dataclass(frozen=True)
class Mac0:
    """A parsed (not yet verified) COSE_Mac0."""

    kid: bytes
    boot: int
    seq: int
    protected: bytes
    payload: bytes
    tag: bytes

    @property
    def node_id(self) -> str:
        return self.kid.decode("utf-8", "replace")

    def mac_input(self) -> bytes:
        return _mac_structure(self.protected, self.payload)


def _mac_structure(protected: bytes, payload: bytes) -> bytes:
    # MAC_structure = ["MAC0", protected, external_aad = h'', payload]
    return cbor2.dumps(["MAC0", protected, b"", payload])


def _protected(boot: int, seq: int) -> bytes:
    return cbor2.dumps(
        {_H_ALG: ALG_HMAC_256_64, _H_PARTIAL_IV: seq.to_bytes(4, "big"), _H_KID_CONTEXT: boot.to_bytes(4, "big")}
    )


def _tag(key: bytes, protected: bytes, payload: bytes) -> bytes:
    return hmac.new(key, _mac_structure(protected, payload), hashlib.sha256).digest()[:TAG_LEN]


def mac0_encode(key: bytes, kid: bytes, boot: int, seq: int, payload: bytes) -> bytes:
    """Build a tagged COSE_Mac0 exactly as the firmware does (same bytes for the same inputs)."""
    protected = _protected(boot, seq)
    return cbor2.dumps(
        cbor2.CBORTag(COSE_MAC0_TAG, [protected, {_H_KID: kid}, payload, _tag(key, protected, payload)])
    )


def _uint_bstr(value: Any, name: str) -> int:
    if not isinstance(value, bytes) or len(value) != 4:
        raise MalformedPacket(f"protected header {name} must be a 4-byte string")
    return int.from_bytes(value, "big")


def mac0_decode(data: bytes) -> Mac0:
    """Parse a COSE_Mac0 without checking its MAC. Raises MalformedPacket with the reason."""
    try:
        obj = cbor2.loads(data)
    except (cbor2.CBORDecodeError, ValueError, TypeError, RecursionError) as exc:
        raise MalformedPacket(f"not CBOR: {exc}") from exc
    if not isinstance(obj, cbor2.CBORTag) or obj.tag != COSE_MAC0_TAG:
        raise MalformedPacket("not a COSE_Mac0 (tag 17)")
    msg = obj.value
    if not isinstance(msg, (list, tuple)) or len(msg) != 4:
        raise MalformedPacket("COSE_Mac0 must be an array of 4")
    protected, unprotected, payload, tag = msg
    if not isinstance(protected, bytes) or not isinstance(payload, bytes) or not isinstance(tag, bytes):
        raise MalformedPacket("COSE_Mac0 protected, payload and tag must be byte strings")
    if not isinstance(unprotected, Mapping) or not isinstance(unprotected.get(_H_KID), bytes):
        raise MalformedPacket("unprotected header has no kid")
    try:
        header = cbor2.loads(protected)
    except (cbor2.CBORDecodeError, ValueError, TypeError) as exc:
        raise MalformedPacket(f"protected header is not CBOR: {exc}") from exc
    if not isinstance(header, Mapping) or header.get(_H_ALG) != ALG_HMAC_256_64:
        raise MalformedPacket("protected header must name alg 4 (HMAC 256/64)")
    if len(tag) != TAG_LEN:
        raise MalformedPacket(f"tag must be {TAG_LEN} bytes")
    return Mac0(
        kid=unprotected[_H_KID],
        boot=_uint_bstr(header.get(_H_KID_CONTEXT), "kid context (boot)"),
        seq=_uint_bstr(header.get(_H_PARTIAL_IV), "Partial IV (seq)"),
        protected=protected,
        payload=payload,
        tag=tag,
    )


def mac0_verify(msg: Mac0, key: bytes) -> None:
    """Raise BadMac unless ``msg`` carries the right tag for ``key`` (constant-time compare)."""
    if not hmac.compare_digest(_tag(key, msg.protected, msg.payload), msg.tag):
        raise BadMac(msg.node_id)
