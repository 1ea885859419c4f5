"""The gateway reads the protocol vectors back to the readings they carry, and the CPython
reference re-encodes them to the same bytes (the firmware side is tests/firmware/test_codec.py)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from gonggi_gateway.errors import BadMac, MalformedPacket, UnknownNode
from gonggi_gateway.protocol import (
    FrameDecoder,
    FrameType,
    decode_control,
    decode_data,
    decode_hello,
    encode_pack,
)
from gonggi_gateway.protocol.senml import RELATIVE_TIME_LIMIT

VECTORS = Path(__file__).resolve().parents[1] / "vectors"
DATA = sorted(VECTORS.glob("data-*.json"))


def load(path: Path) -> dict:
    return json.loads(path.read_text())


def keys_for(v: dict):
    return {v["node_id"]: bytes.fromhex(v["key"])}.get


def only_frame(v: dict):
    frames = FrameDecoder().feed(bytes.fromhex(v["frame"]))
    assert len(frames) == 1
    return frames[0]


@pytest.mark.parametrize("path", DATA, ids=lambda p: p.stem)
def test_data_vector_decodes_to_its_readings(path: Path) -> None:
    v = load(path)
    frame = only_frame(v)
    assert frame.type == FrameType.DATA
    pkt = decode_data(frame.body, keys_for(v))
    assert (pkt.node_id, pkt.boot, pkt.seq, pkt.uptime_ms) == (v["node_id"], v["boot"], v["seq"], v["uptime_ms"])
    assert pkt.cose.hex() == v["cose"]
    assert len(pkt.records) == len(v["readings"])
    for rec, want in zip(pkt.records, v["readings"], strict=True):
        assert rec.name == want["n"]
        assert (rec.unit or "") == want["u"]
        exact = want["m"] * 10 ** want["exp"]
        # float32 on the wire: relative error below 2**-24
        assert rec.value == pytest.approx(exact, rel=2**-23, abs=0)
        assert rec.time == v["bt"]


@pytest.mark.parametrize("path", DATA, ids=lambda p: p.stem)
def test_reference_encoder_reproduces_the_payload(path: Path) -> None:
    v = load(path)
    readings = [(r["n"], r["u"], r["m"] / 10 ** -r["exp"] if r["exp"] < 0 else r["m"]) for r in v["readings"]]
    assert encode_pack(v["bt"], readings).hex() == v["payload"]


def test_unsynced_times_map_through_the_uptime() -> None:
    v = load(VECTORS / "data-multi-unsynced.json")
    pkt = decode_data(only_frame(v).body, keys_for(v))
    assert v["bt"] < RELATIVE_TIME_LIMIT and not pkt.synced
    # Sent at uptime 61.5 s, the report was made at 60 s: 1.5 s before reception.
    assert pkt.wall_time(pkt.records[0].time, received_at=1_000_000.0) == pytest.approx(999_998.5)


def test_synced_times_are_kept() -> None:
    v = load(VECTORS / "data-battery-synced.json")
    pkt = decode_data(only_frame(v).body, keys_for(v))
    assert pkt.synced
    assert pkt.wall_time(pkt.records[0].time, received_at=5.0) == v["bt"]


def test_control_and_hello_vectors() -> None:
    c = load(VECTORS / "control-ack-time.json")
    frame = only_frame(c)
    assert frame.type == FrameType.CONTROL
    ctl = decode_control(frame.body, bytes.fromhex(c["key"]))
    assert [[a.boot, a.first, a.last] for a in ctl.acks] == c["acks"]
    assert (ctl.time_ms, ctl.boot, ctl.node_id) == (c["time_ms"], c["boot"], c["node_id"])
    h = load(VECTORS / "hello.json")
    hello = decode_hello(only_frame(h).body, keys_for(h))
    assert (hello.firmware, hello.backlog, hello.uptime_ms, hello.boot) == (h["firmware"], h["backlog"], h["uptime_ms"], h["boot"])


def test_tampered_wrong_key_and_unknown_node_are_rejected() -> None:
    v = load(VECTORS / "data-battery-synced.json")
    body = only_frame(v).body
    with pytest.raises(BadMac):
        decode_data(body[:-1] + bytes([body[-1] ^ 1]), keys_for(v))
    with pytest.raises(BadMac):
        decode_data(body, {v["node_id"]: b"\0" * 32}.get)
    with pytest.raises(UnknownNode):
        decode_data(body, {}.get)
    with pytest.raises(MalformedPacket):
        decode_data(body[:30], keys_for(v))
