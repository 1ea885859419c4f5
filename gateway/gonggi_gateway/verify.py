"""The ingest hot path, and the SenML JSON of a spooled row.

``verify_all(bodies, keys, received_at)`` decides for each DATA frame body exactly what
``decode_data`` decides (the protocol's readable reference, which stays the specification), at a
fraction of the cost, in one loop over the frames that arrived together:

* the COSE_Mac0 envelope is not decoded: a node always writes it the same way (tag 17, the same
  15-byte protected header ``{1: 4, 6: h'<seq>', 10: h'<boot>'}``, the unprotected ``{4: kid}``,
  the payload, an 8-byte tag, nothing after), so a body is checked byte for byte against that
  layout, with uptime, seq and boot read in one unpack. The node's unprotected header bytes,
  keys and shapes are looked up once for a run of bodies from the same node;
* the MAC_structure is fed from slices of the body; the HMAC is a copy of one set up with the
  node's key and the structure's constant start (its pads are hashed once, not per packet:
  about half of a one-shot HMAC's cost);
* the SenML payload is not decoded: it is matched against the node's *shape*, a regular
  expression compiled from an earlier payload of the same node that the reference accepted,
  with its record names and units as literals and every value slot accepting any finite CBOR
  number. A payload that matches is one the reference accepts, with the same channels. One that
  does not (a first packet, a new channel, anything unusual) is decoded by the reference, which
  accepts it (and its shape is learnt) or rejects it.

Only the COSE bytes and the frame's uptime are spooled. ``senml_records`` makes the SenML JSON
when a row is read for upstream (the same text ``senml_json`` makes), and ``readings`` gives the
live view's latest values (from the shape ``verify_all`` matched, when given). Both take a C-level
path (cbor2, then map/zip/join over the records) for the shape nodes send and fall back to the
reference for anything else.
tests/gateway/test_verify.py checks that both paths agree, on the protocol vectors and on
generated packets, valid and broken.
"""

from __future__ import annotations

import hmac
import json
import re
import struct
import sys
from collections.abc import Sequence
from dataclasses import dataclass, field
from itertools import chain, islice, repeat
from json.encoder import encode_basestring_ascii
from math import fsum, isfinite
from operator import itemgetter
from typing import Any

import cbor2

from gonggi_gateway.protocol import DataPacket, KeyLookup, decode_data, decode_pack, mac0_decode
from gonggi_gateway.protocol.senml import RELATIVE_TIME_LIMIT
from gonggi_gateway.records import base_name, float32_decimal, senml_json
from gonggi_gateway.state import reading_from_senml

__all__ = ["Row", "Shape", "Verified", "readings", "senml_records", "verify_all"]

_loads = cbor2.loads
try:  # what hmac.digest and hmac.new call, without their Python wrappers (a tenth of an HMAC)
    from _hashlib import hmac_digest as _hmac_sha256
    from _hashlib import hmac_new as _hmac_new
except ImportError:  # a Python built without OpenSSL
    _hmac_sha256 = hmac.digest
    _hmac_new = hmac.new
_same = hmac.compare_digest
_FLOAT_MAX = sys.float_info.max
_REL = RELATIVE_TIME_LIMIT
_MOD = 2**32

# A body as nodes write it: uptime_ms, tag 17, an array of 4: the protected header (a bstr of 15,
# always {1: 4, 6: h'<seq>', 10: h'<boot>'}: a3 01 04 06 44 <seq:4> 0a 44 <boot:4>), the
# unprotected header {4: h'<kid>'}, the payload's bstr, the tag's (48 <tag:8>), and nothing after.
_PROTECTED_LEN = 15
_P_HEAD, _P_MID = b"\xa3\x01\x04\x06\x44", b"\x0a\x44"
_COSE_AT = 4
_COSE_HEAD = b"\xd1\x84" + bytes([0x40 | _PROTECTED_LEN]) + _P_HEAD
_P_VARYING = _COSE_AT + len(_COSE_HEAD)  # seq, _P_MID, boot
_UNPROTECTED_AT = _P_VARYING + 10
_UNPROTECTED_KID = b"\xa1\x04"
_KID_HEAD_AT = _UNPROTECTED_AT + 2
_TAG_LEN = 8
_TAG_HEAD = 0x40 | _TAG_LEN
_TAIL_LEN = 1 + _TAG_LEN
_BODY_FIELDS = struct.Struct(">I8xIHI").unpack_from  # uptime_ms, Partial IV (seq), _P_MID, kid context (boot)
_P_MID_U16 = int.from_bytes(_P_MID, "big")
# MAC_structure = ["MAC0", protected, h'', payload]: up to the protected header's varying bytes.
_MAC_START = b"\x84\x64MAC0" + bytes([0x40 | _PROTECTED_LEN]) + _P_HEAD
_EMPTY_AAD = b"\x40"
_N, _U, _V, _BT = 0, 1, 2, -3
_FIRST_LABELS = frozenset({_BT, _N, _U, _V})
_PLAIN_LABELS = frozenset({_N, _U, _V})
_LABEL_TYPES = frozenset({int, bool})  # the reference takes a bool label as the int it equals
_VALUE_TYPES = frozenset({int, float})
_UNIT_TYPES = frozenset({str, type(None)})
_ONLY_DICT = {dict}
_ONLY_STR = {str}
_NO_UNIT: dict[str | None, None] = {"": None}  # a reading's unit: None rather than empty
_first = itemgetter(0)
_second = itemgetter(1)
_CACHE_MAX = 1 << 16  # entries per cache; cleared when full (names and values repeat)
_SHAPES_PER_NODE = 6  # a node's payload shapes (a health record comes and goes), two per bt

# Any finite CBOR number: a float16/32/64 whose exponent is not all ones (that would be an
# infinity or a NaN, which the reference rejects), or an integer of any width. Each alternative
# has its own first bytes: their order is only speed (float32, what sensors send, first).
_NUMBER = (rb"(?:\xfa(?:[\x00-\x7e\x80-\xfe].|[\x7f\xff][\x00-\x7f]).{2}|\xf9[\x00-\x7b\x80-\xfb]."
           rb"|\xfb(?:[\x00-\x7e\x80-\xfe].|[\x7f\xff][\x00-\xef]).{6}"
           rb"|[\x00-\x17\x20-\x37]|[\x18\x38].|[\x19\x39].{2}|[\x1a\x3a].{4}|[\x1b\x3b].{8})")
_UNIX_TIME = rb"(?:\x1a[\x10-\xff].{3}|\x1b.{8})"  # an unsigned bt of at least 2**28: Unix seconds
_ANY_BT = b"(" + _NUMBER + b")"
_BT_SLOT = object()  # where the bt pattern goes, in a shape's parts


def _head(major: int, n: int) -> bytes:
    """A CBOR head in its shortest form, as cbor2 writes it."""
    if n < 24:
        return bytes([major << 5 | n])
    for extra, width in ((24, 1), (25, 2), (26, 4)):
        if n < 1 << (8 * width):
            return bytes([major << 5 | extra]) + n.to_bytes(width, "big")
    return bytes([major << 5 | 27]) + n.to_bytes(8, "big")


# The payload's bstr head, shortest form, by the bytes it takes with its payload (frames are at most 2048).
_SPAN_HEADS = {len(_head(2, n)) + n: _head(2, n) for n in range(2048)}

ReadingRow = tuple[str, "str | None", Any, Any]  # name, unit, value, wall time: one live-view reading
Row = tuple[str, int, int, float, bytes, None, int]  # a spool row (NewPacket's fields); JSON made when read


@dataclass(frozen=True, eq=False)
class Shape:
    """What the payloads of a node look like: a pattern of their CBOR bytes with the record names
    and units as literals and a slot for each value; ``synced``: True if the pattern only takes
    a bt that is Unix time, None if its bt (captured) must be looked at, False without a bt;
    ``names`` and ``units``: its records' names and reading units (None for none or empty)."""

    pattern: re.Pattern[bytes]
    synced: bool | None
    names: tuple[str, ...]
    units: tuple[str | None, ...]


@dataclass
class Verified:
    """The authentic DATA packets of a batch of frames, in order, and the frames rejected."""

    rows: list[Row] = field(default_factory=list)
    synced: list[bool] = field(default_factory=list)  # per row: every record carries Unix time
    shapes: list[Shape | None] = field(default_factory=list)  # per row: packets of a shape have the same channels
    rejected: list[tuple[int, Exception]] = field(default_factory=list)  # (index of the body, why)


_names: dict[str, str] = {}  # text -> its JSON string literal
_prefixes: dict[tuple[str, str | None], str] = {}  # (name, unit) -> '"n":...,"u":...,"v":'
_values: dict[tuple[type, float], tuple[float, str]] = {}  # (type, value) -> (as printed, its JSON)
_shapes: dict[str, list[Shape]] = {}  # node -> the shapes of its recent payloads, newest first
_NO_SHAPES: list[Shape] = []


def _shapes_of(pack: Any) -> list[Shape]:
    """The shapes of a decoded pack the reference accepted, if it is the plain one nodes send:
    ``bt`` (optional) on the first record, n, u (optional) and v on every record, nothing else.
    With a bt, two: one that takes only Unix times (the usual, tried first), one any number."""
    if type(pack) is not list or not pack:
        return []
    parts: list[Any] = [re.escape(_head(4, len(pack)))]
    for i, rec in enumerate(pack):
        labels = rec.keys() if type(rec) is dict else None
        if labels is None or not labels <= (_FIRST_LABELS if i == 0 else _PLAIN_LABELS) or _V not in rec \
                or _N not in rec or any(type(k) is not int for k in labels):
            return []
        parts.append(re.escape(_head(5, len(rec))))
        for label, value in rec.items():
            parts.append(re.escape(cbor2.dumps(label)))
            if label == _V:
                parts.append(_NUMBER)
            elif label == _BT:
                parts.append(_BT_SLOT)
            elif type(value) is str:
                parts.append(re.escape(cbor2.dumps(value)))
            else:
                return []
    names = tuple(rec[_N] for rec in pack)
    units = tuple(_NO_UNIT.get(u, u) for u in (rec.get(_U) for rec in pack))
    if not any(part is _BT_SLOT for part in parts):
        return [Shape(re.compile(b"".join(parts), re.DOTALL), False, names, units)]
    return [Shape(re.compile(b"".join(_UNIX_TIME if part is _BT_SLOT else part for part in parts), re.DOTALL), True,
                  names, units),
            Shape(re.compile(b"".join(_ANY_BT if part is _BT_SLOT else part for part in parts), re.DOTALL), None,
                  names, units)]


def _learn(node: str, payload: bytes) -> Shape | None:
    """Remember the shapes of a payload the reference accepted; the one that matches it (none
    if the payload was not encoded the shortest way, as nodes do: its shapes are no use then)."""
    found = _shapes_of(_loads(payload))
    matching = [s for s in found if s.pattern.fullmatch(payload)]
    if not matching:
        return None
    patterns = {s.pattern for s in found}
    _shapes[node] = (found + [s for s in _shapes.get(node, ()) if s.pattern not in patterns])[:_SHAPES_PER_NODE]
    return matching[0]


class _Slow(Exception):
    """Not the plain shape: the reference implementation decides."""


def verify_all(bodies: Sequence[bytes], keys: KeyLookup, received_at: float) -> Verified:
    """Verify DATA frame bodies (u32 uptime_ms + COSE_Mac0) into spool rows.

    A body is rejected with what ``decode_data`` raises for it (MalformedPacket, UnknownNode,
    BadMac): every rejection is decided by the reference implementation. Anything else a body
    raises is a bug, and is reported for it too: one body never costs the others.
    """
    out = Verified()
    add_row, add_synced, add_shape = out.rows.append, out.synced.append, out.shapes.append
    # The node of the previous body: its unprotected header's bytes, where its payload's head
    # starts, its keys and shapes. A link's bodies come from one node.
    unprotected = b"\x00"  # no body has it at _UNPROTECTED_AT: the first body looks its node up
    at = 0
    node = ""
    keyed: Any = None  # HMAC with the node's current key and the MAC_structure's constant start, copied per packet
    old_keys: Sequence[bytes] = ()
    matchers: list[tuple[Any, Shape]] = []
    for index, body in enumerate(bodies):
        try:
            if type(body) is not bytes or not body.startswith(_COSE_HEAD, 4):
                raise _Slow
            if not body.startswith(unprotected, _UNPROTECTED_AT):
                unprotected = b"\x00"  # until this node's keys and shapes are all in place
                kid_start, kid_end = _kid_span(body)
                node = body[kid_start:kid_end].decode("utf-8", "replace")
                found = keys(node)
                if type(found) is bytes:
                    found = (found,)
                if not found:
                    raise _Slow  # an unknown node, for the reference
                keyed, old_keys = _hmac_new(found[0], _MAC_START, "sha256"), found[1:]
                matchers = [(s.pattern.fullmatch, s) for s in _shapes.get(node, _NO_SHAPES)]
                unprotected, at = body[_UNPROTECTED_AT:kid_end], kid_end
            # The payload's bstr and the 8-byte tag fill the rest of the body exactly: the span
            # says how long the payload's head must be.
            head = _SPAN_HEADS[len(body) - _TAIL_LEN - at]
            if not body.startswith(head, at) or body[-_TAIL_LEN] != _TAG_HEAD:
                raise _Slow
            uptime_ms, seq, mid, boot = _BODY_FIELDS(body)
            if mid != _P_MID_U16:
                raise _Slow
            # MAC_structure = [_MAC_START..., seq, _P_MID, boot, h'', payload's head and bytes].
            mac = keyed.copy()
            mac.update(body[_P_VARYING:_UNPROTECTED_AT])
            mac.update(_EMPTY_AAD)
            mac.update(body[at:-_TAIL_LEN])
            tag = body[-_TAG_LEN:]
            # The first key (the current one) is the usual one; the others are the old keys of a
            # rotation's grace period. None of them: a bad MAC, for the reference.
            if not _same(mac.digest()[:_TAG_LEN], tag) and not any(
                    _same(_hmac_sha256(k, _mac_input(body, at), "sha256")[:_TAG_LEN], tag) for k in old_keys):
                raise _Slow
        except (_Slow, TypeError, KeyError, IndexError, struct.error):
            unprotected = b"\x00"  # the reference may learn a shape of the node: look its shapes up again
            try:
                packet = decode_data(body, keys)
                shape = _learn(packet.node_id, _payload(packet.cose))
            except Exception as exc:  # ProtocolError: a rejection; anything else: a bug, for this body only
                out.rejected.append((index, exc))
                continue
            add_row((packet.node_id, packet.boot, packet.seq, received_at, packet.cose, None, packet.uptime_ms))
            add_synced(packet.synced)
            add_shape(shape)
            continue
        start, end = at + len(head), len(body) - _TAIL_LEN
        shape = None
        for fullmatch, known in matchers:
            match = fullmatch(body, start, end)
            if match is not None:
                is_synced = known.synced
                if is_synced is None:  # a bt to look at: Unix time, or a time since boot that fits
                    bt = _loads(match.group(1))
                    is_synced = bt >= _REL
                    if not is_synced and bt < -_REL:
                        break  # the reference's to decide (and reject)
                shape = known
                break
        if shape is None:
            unprotected = b"\x00"  # a shape may be learnt
            payload = body[start:end]
            try:
                # The reference's next step after a valid MAC: MalformedPacket, or the pack is good.
                records = decode_pack(payload)
                shape = _learn(node, payload)
            except Exception as exc:
                out.rejected.append((index, exc))
                continue
            is_synced = all(r.time >= _REL for r in records)
        add_row((node, boot, seq, received_at, body[_COSE_AT:], None, uptime_ms))
        add_synced(is_synced)
        add_shape(shape)
    return out


def _kid_span(body: bytes) -> tuple[int, int]:
    """Where the kid is in a body whose unprotected header is ``{4: kid}``, as nodes write it
    (a kid of up to 255 bytes); _Slow for any other header."""
    if body[_UNPROTECTED_AT:_KID_HEAD_AT] != _UNPROTECTED_KID:
        raise _Slow
    head = body[_KID_HEAD_AT]
    if 0x40 <= head < 0x58:
        return _KID_HEAD_AT + 1, _KID_HEAD_AT + 1 + head - 0x40
    if head == 0x58:
        return _KID_HEAD_AT + 2, _KID_HEAD_AT + 2 + body[_KID_HEAD_AT + 1]
    raise _Slow


def _mac_input(body: bytes, at: int) -> bytes:
    """The MAC_structure of a body whose payload's head starts at ``at``."""
    return b"".join((_MAC_START, body[_P_VARYING:_UNPROTECTED_AT], _EMPTY_AAD, body[at:-_TAIL_LEN]))


def _payload(cose: bytes) -> bytes:
    return _loads(cose).value[2]  # type: ignore[no-any-return]


def _json_text(text: str) -> str:
    js = _names.get(text)
    if js is None:
        if len(_names) >= _CACHE_MAX:
            _names.clear()
        js = _names[text] = encode_basestring_ascii(text)
    return js


def _number(value: Any) -> bool:
    t = type(value)
    return (t is int or t is float) and -_FLOAT_MAX <= value <= _FLOAT_MAX


def _fill_prefixes(keys: list[tuple[str, str]]) -> None:
    if len(_prefixes) + len(keys) > _CACHE_MAX:
        _prefixes.clear()
    for name, unit in keys:
        u = f'"u":{encode_basestring_ascii(unit)},' if unit else ""
        _prefixes[name, unit] = f'"n":{encode_basestring_ascii(name)},{u}"v":'


def _fill_values(keys: list[tuple[type, float]]) -> None:
    if len(_values) + len(keys) > _CACHE_MAX:
        _values.clear()
    for kind, value in keys:
        if kind is float:
            # 0 + value: the reference resolves bv + v, which makes -0.0 a 0.0 (they share a key).
            short = float32_decimal(0 + value)
            _values[kind, value] = (short, repr(short))
        else:
            _values[kind, value] = (value, repr(value))


def _plain(pack: Any, node: str, uptime_ms: int, received_at: float) -> tuple[str, list[ReadingRow]]:
    """The JSON and readings of a pack of the plain shape (see ``_shape_of``); _Slow otherwise.

    Every step is a C-level pass over the records (map, zip, set, join): a loop in Python costs
    more than cbor2's whole decode. Labels must be integers: a float, Decimal or Fraction equal to
    one (1.0 == 1) would pass the label set checks, so the types of all labels are checked too.
    """
    if type(pack) is not list or not pack or set(map(type, pack)) != _ONLY_DICT:
        raise _Slow
    if (not set(map(type, chain.from_iterable(pack))) <= _LABEL_TYPES or not pack[0].keys() <= _FIRST_LABELS
            or not set().union(*islice(pack, 1, None)) <= _PLAIN_LABELS):
        raise _Slow
    count = len(pack)
    values = list(map(dict.get, pack, repeat(_V, count)))
    names = list(map(dict.get, pack, repeat(_N, count)))
    units = list(map(dict.get, pack, repeat(_U, count)))
    if (not set(map(type, values)) <= _VALUE_TYPES or set(map(type, names)) != _ONLY_STR or "" in names
            or not set(map(type, units)) <= _UNIT_TYPES or not isfinite(fsum(values))):
        raise _Slow  # fsum: nan or inf anywhere (and OverflowError beyond float range)
    bt = pack[0].get(_BT, 0)
    if not _number(bt) or bt < -_REL:  # the reference rejects a time before -2**28
        raise _Slow
    wall = _wall_time(bt, uptime_ms, received_at)
    t_json = f',"t":{wall!r}}}'
    keys = list(zip(names, units))
    try:
        prefixes = list(map(_prefixes.__getitem__, keys))
    except KeyError:
        _fill_prefixes(keys)
        prefixes = list(map(_prefixes.__getitem__, keys))
    entries = _entries(values)
    body = (t_json + ",{").join(map(str.__add__, prefixes, map(_second, entries)))
    records = f'[{{"bn":{_json_text(base_name(node))},{body}{t_json}]'
    return records, list(zip(names, map(_NO_UNIT.get, units, units), map(_first, entries), repeat(wall, count)))


def _wall_time(bt: Any, uptime_ms: int, received_at: float) -> float:
    """The Unix time of a record at ``bt`` (a time since boot, or Unix time), as the reference has it."""
    node_time = bt + 0  # bt + t, with t = 0, as the reference adds it
    if node_time >= _REL:
        return round(node_time, 3)
    return round(received_at - ((uptime_ms - round(node_time * 1000)) % _MOD) / 1000, 3)


def _entries(values: list[Any]) -> list[tuple[float, str]]:
    """Each value as the reference prints it, and its JSON (cached)."""
    typed = list(zip(map(type, values), values))
    try:
        return list(map(_values.__getitem__, typed))
    except KeyError:
        _fill_values(typed)
        return list(map(_values.__getitem__, typed))


def _shaped(shape: Shape, pack: Any, uptime_ms: int, received_at: float) -> list[ReadingRow]:
    """The readings of a pack its shape matched: the shape checked what ``_plain`` checks, but
    for what follows (_Slow: the reference decides)."""
    values = list(map(dict.get, pack, repeat(_V, len(pack))))
    if "" in shape.names or not isfinite(fsum(values)):
        raise _Slow
    wall = _wall_time(pack[0].get(_BT, 0), uptime_ms, received_at)
    return list(zip(shape.names, shape.units, map(_first, _entries(values)), repeat(wall, len(pack))))


def _decoded(node: str, cose: bytes, uptime_ms: int, received_at: float) -> tuple[str, list[ReadingRow]]:
    try:
        return _plain(_loads(_payload(cose)), node, uptime_ms, received_at)
    except (_Slow, cbor2.CBORDecodeError, ValueError, TypeError, KeyError, IndexError, AttributeError, OverflowError,
            RecursionError):
        pass  # not the plain shape, or not even a COSE_Mac0: the reference says what it is
    msg = mac0_decode(cose)
    packet = DataPacket(msg.node_id, msg.boot, msg.seq, uptime_ms, tuple(decode_pack(msg.payload)), cose)
    records = senml_json(packet, received_at)
    found = (reading_from_senml(record) for record in json.loads(records) if "n" in record)
    rows = [(r.name, r.unit, r.value, r.time) for r in found]
    return records, rows


def senml_records(node: str, cose: bytes, uptime_ms: int, received_at: float) -> str:
    """The SenML JSON of a spooled packet, as ``senml_json`` writes it (docs/mqtt.md)."""
    return _decoded(node, cose, uptime_ms, received_at)[0]


def readings(row: Row, shape: Shape | None = None) -> list[ReadingRow]:
    """The readings of a verified packet as the live view shows them: name, unit, value, Unix time.
    ``shape``: the one ``verify_all`` matched the row's payload with, if any (no checks again)."""
    node, _, _, received_at, cose, _, uptime_ms = row
    if shape is not None:
        try:
            return _shaped(shape, _loads(_payload(cose)), uptime_ms, received_at)
        except (_Slow, OverflowError):
            pass
    return _decoded(node, cose, uptime_ms, received_at)[1]
