"""SenML (RFC 8428) in its CBOR form: decoding a node's pack and writing resolved records as JSON.

Only what RFC 8428 defines is accepted; base values are resolved as its section 4.6 says.
"""

from __future__ import annotations

import struct
import sys
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import cbor2

from gonggi_gateway.errors import MalformedPacket

__all__ = ["Record", "decode_pack", "encode_pack", "RELATIVE_TIME_LIMIT"]

# RFC 8428 §4.5.3: times below 2**28 are not absolute. A gonggi node that has no wall time yet
# reports seconds since boot in that range (see docs/protocol.md, "Time"). One below -2**28 is
# neither: no boot was that long before the packet, and a gateway could not map it to wall time.
RELATIVE_TIME_LIMIT = 2**28
_FLOAT_MAX = sys.float_info.max

_BVER, _BN, _BT, _BU, _BV, _BS = -1, -2, -3, -4, -5, -6
_N, _U, _V, _VS, _VB, _S, _T, _UT, _VD = 0, 1, 2, 3, 4, 5, 6, 7, 8
_KNOWN = {_BVER, _BN, _BT, _BU, _BV, _BS, _N, _U, _V, _VS, _VB, _S, _T, _UT, _VD}
_VALUE_LABELS = (_V, _VS, _VB, _VD)


@dataclass(frozen=True)
class Record:
    """One resolved SenML record: full name, unit, value and node time in seconds."""

    name: str
    unit: str | None
    value: float | str | bool | bytes
    time: float

    def to_json(self, wall_time: float, base_name: str = "") -> dict[str, Any]:
        out: dict[str, Any] = {"n": base_name + self.name}
        if self.unit:
            out["u"] = self.unit
        key = {float: "v", int: "v", str: "vs", bool: "vb", bytes: "vd"}[type(self.value)]
        out[key] = self.value.hex() if isinstance(self.value, bytes) else self.value
        out["t"] = round(wall_time, 3)
        return out


def _number(value: Any, what: str) -> float:
    # A range check, not math.isfinite(), which raises OverflowError for an integer beyond float
    # range, and such an integer would overflow when resolved (bv + v) anyway.
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not -_FLOAT_MAX <= value <= _FLOAT_MAX:
        raise MalformedPacket(f"SenML {what} must be a finite number")
    return value


def decode_pack(payload: bytes) -> list[Record]:
    """Decode a SenML-CBOR pack into resolved records. Raises MalformedPacket with the reason."""
    try:
        pack = cbor2.loads(payload)
    except (cbor2.CBORDecodeError, ValueError, TypeError, RecursionError) as exc:
        raise MalformedPacket(f"SenML payload is not CBOR: {exc}") from exc
    if not isinstance(pack, (list, tuple)) or not pack:
        raise MalformedPacket("SenML pack must be a non-empty array")
    records: list[Record] = []
    bn: str = ""
    bt: float = 0.0
    bu: str | None = None
    bv: float = 0
    for i, rec in enumerate(pack):
        if not isinstance(rec, Mapping) or not all(isinstance(k, int) for k in rec):
            raise MalformedPacket(f"SenML record {i} must be a map with integer labels")
        unknown = set(rec) - _KNOWN
        if unknown:
            raise MalformedPacket(f"SenML record {i} has unknown labels {sorted(unknown)}")
        if _BN in rec:
            if not isinstance(rec[_BN], str):
                raise MalformedPacket(f"SenML record {i}: bn must be text")
            bn = rec[_BN]
        if _BT in rec:
            bt = _number(rec[_BT], "bt")
        if _BU in rec:
            bu = rec[_BU]
        if _BV in rec:
            bv = _number(rec[_BV], "bv")
        values = [k for k in _VALUE_LABELS if k in rec]
        if not values:
            if _N in rec or _S in rec:
                raise MalformedPacket(f"SenML record {i} has a name but no value")
            continue  # a record that only sets base fields
        if len(values) > 1:
            raise MalformedPacket(f"SenML record {i} has more than one value")
        if not isinstance(rec.get(_N, ""), str):
            raise MalformedPacket(f"SenML record {i}: n must be text")
        name = bn + rec.get(_N, "")
        if not name:
            raise MalformedPacket(f"SenML record {i} has no name")
        raw = rec[values[0]]
        value: float | str | bool | bytes
        if values[0] == _V:
            value = _number(bv + _number(raw, "v"), "v + bv")
        elif values[0] == _VS and isinstance(raw, str):
            value = raw
        elif values[0] == _VB and isinstance(raw, bool):
            value = raw
        elif values[0] == _VD and isinstance(raw, bytes):
            value = raw
        else:
            raise MalformedPacket(f"SenML record {i}: value of the wrong type")
        unit = rec.get(_U, bu)
        if unit is not None and not isinstance(unit, str):
            raise MalformedPacket(f"SenML record {i}: unit must be text")
        time = _number(bt + _number(rec.get(_T, 0), "t"), "t + bt")
        if time < -RELATIVE_TIME_LIMIT:
            raise MalformedPacket(f"SenML record {i}: time {time:g} s is before -2^28 s, neither Unix time nor "
                                  "time since boot")
        records.append(Record(name, unit, value, time))
    return records


def _as_sent(value: float) -> float | int:
    # What a node puts on the wire for a fixed-point reading: the integer if it is one, else the
    # float32 nearest to it (then shortest form when encoded canonically).
    if float(value).is_integer():
        return int(value)
    return struct.unpack(">f", struct.pack(">f", value))[0]


def encode_pack(bt: int, readings: list[tuple[str, str, float]]) -> bytes:
    """Encode readings as a node does: bt on the first record, deterministic CBOR (RFC 8949 §4.2.1).

    The reference for the firmware's encoder and the payload of simulated nodes.
    """
    pack: list[dict[int, Any]] = []
    for name, unit, value in readings:
        rec: dict[int, Any] = {_N: name}
        if unit:
            rec[_U] = unit
        rec[_V] = _as_sent(value)
        pack.append(rec)
    if pack:
        pack[0][_BT] = bt
    return cbor2.dumps(pack, canonical=True)
