"""A verified packet as the gateway stores and publishes it: SenML JSON with wall-clock times.

The first record carries ``bn`` = ``urn:dev:gonggi:<node id>:``; times are Unix seconds (a
node's boot-relative times resolved through the frame's uptime, docs/protocol.md §5). A value
that fits a float32 exactly was a float32 on the wire (nodes send preferred serialization, RFC
8949 §4.2.1), so it is printed as the shortest decimal that reads back as that float32: 20.1,
not 20.100000381469727.
"""

from __future__ import annotations

import json
import struct
from typing import Any

from gonggi_gateway.protocol import DataPacket

__all__ = ["base_name", "senml_json", "float32_decimal"]

_F32 = struct.Struct("<f")


def base_name(node_id: str) -> str:
    return f"urn:dev:gonggi:{node_id}:"


def _f32(value: float) -> float | None:
    """``value`` rounded to float32, or None beyond float32 range."""
    try:
        return float(_F32.unpack(_F32.pack(value))[0])
    except OverflowError:
        return None


def float32_decimal(value: float) -> float:
    """The shortest decimal reading back as the same float32, or ``value`` if it is no float32."""
    if _f32(value) != value:
        return value
    for digits in range(1, 10):  # 9 significant digits always round-trip a float32
        short = float(f"{value:.{digits}g}")
        if _f32(short) == value:
            return short
    return value


def senml_json(packet: DataPacket, received_at: float) -> str:
    """The packet's records as compact SenML JSON (RFC 8428)."""
    records: list[dict[str, Any]] = []
    for r in packet.records:
        record = r.to_json(packet.wall_time(r.time, received_at))
        if isinstance(record.get("v"), float):
            record["v"] = float32_decimal(record["v"])
        records.append(record)
    head = {"bn": base_name(packet.node_id)}
    records = [head | records[0], *records[1:]] if records else [head]
    return json.dumps(records, separators=(",", ":"), allow_nan=False)
