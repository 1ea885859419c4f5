"""The ingest hot path decides exactly what the protocol's reference decides, and the SenML JSON
made when a row is read is the reference's text, on the vectors and on generated packets."""

from __future__ import annotations

import json
import math
from pathlib import Path

import cbor2
import pytest
from hypothesis import HealthCheck, example, given, settings, strategies as st

from gateway_helpers import KEY, NODE, OTHER_KEY, SimNode
from gonggi_gateway.errors import MalformedPacket, ProtocolError
from gonggi_gateway.protocol import FrameDecoder, decode_data, encode_pack, mac0_encode
from gonggi_gateway.records import senml_json
from gonggi_gateway.state import reading_from_senml
from gonggi_gateway.verify import readings, senml_records, verify_all

VECTORS = Path(__file__).resolve().parents[1] / "vectors"
T_RX = 1_764_003_600.25


def keys(node: str) -> bytes | None:
    return {NODE: KEY, "node-0001": KEY, "gg-a4cf12": KEY}.get(node)


def reference(body: bytes, received_at: float = T_RX) -> tuple[tuple[object, ...], bool, str, list[tuple[object, ...]]]:
    """What the reference makes of a DATA body: the row, synced, the JSON, the readings."""
    p = decode_data(body, keys)
    records = senml_json(p, received_at)
    found = [reading_from_senml(r) for r in json.loads(records) if "n" in r]
    return ((p.node_id, p.boot, p.seq, received_at, p.cose, None, p.uptime_ms), p.synced, records,
            [(r.name, r.unit, r.value, r.time) for r in found])


def fast(body: bytes, received_at: float = T_RX) -> tuple[tuple[object, ...], bool, str, list[tuple[object, ...]]]:
    batch = verify_all([body], keys, received_at)
    assert not batch.rejected, batch.rejected
    [row], [synced] = batch.rows, batch.synced
    return row, synced, senml_records(row[0], row[4], row[6], row[3]), readings(row)


def same_decision(body: bytes) -> None:
    """verify_all accepts what the reference accepts, identically, and rejects the rest alike."""
    try:
        want = reference(body)
    except ProtocolError as exc:
        batch = verify_all([body], keys, T_RX)
        assert batch.rows == [] and [(type(e), str(e)) for _, e in batch.rejected] == [(type(exc), str(exc))]
        if isinstance(exc, MalformedPacket) and len(body) > 4:
            # The JSON maker alone (used on rows only) is no more lenient than the reference.
            with pytest.raises(MalformedPacket):
                senml_records(NODE, body[4:], int.from_bytes(body[:4], "big"), T_RX)
        return
    assert fast(body) == want
    assert fast(body) == want  # the second time through the node's learnt shape


@pytest.mark.parametrize("path", sorted(VECTORS.glob("data-*.json")), ids=lambda p: p.stem)
def test_the_vectors_come_out_as_the_reference_has_them(path: Path) -> None:
    vector = json.loads(path.read_text())
    [frame] = FrameDecoder().feed(bytes.fromhex(vector["frame"]))
    same_decision(frame.body)


def test_rejections_are_the_references() -> None:
    node = SimNode()
    good = node.data(0)
    for body in (node.data(0, key=OTHER_KEY), SimNode(node_id="gg-stranger").data(0), good[:-3], good[:3],
                 good[:4] + b"\x00" + good[5:], b""):
        same_decision(body)
    batch = verify_all([good, node.data(1, key=OTHER_KEY), node.data(2)], keys, T_RX)
    assert [row[2] for row in batch.rows] == [0, 2] and [i for i, _ in batch.rejected] == [1]


def test_a_packet_under_a_previous_key_passes_during_a_rotation() -> None:
    body = SimNode(key=OTHER_KEY).data(0)
    batch = verify_all([body], lambda node: (KEY, OTHER_KEY) if node == NODE else (), T_RX)
    assert [row[2] for row in batch.rows] == [0] and not batch.rejected


def test_packets_of_a_known_shape_skip_the_decoder_and_a_new_channel_is_learnt() -> None:
    node = SimNode(node_id="gg-shapes")
    table = {"gg-shapes": KEY}.get
    first = verify_all([node.data(0)], table, T_RX)
    assert first.shapes[0] is not None and first.synced == [True]
    again = verify_all([node.data(1)], table, T_RX)
    assert again.shapes[0] is first.shapes[0]  # matched, not decoded
    other = verify_all([node.data(2, readings=[("bat.v", "V", 3.9), ("noise.laeq", "dB", 55.5)])], table, T_RX)
    assert other.shapes[0] is not None and other.shapes[0] is not first.shapes[0]
    unsynced = verify_all([node.data(3, bt=60)], table, T_RX)  # seconds since boot: the other bt slot
    assert unsynced.synced == [False] and unsynced.shapes[0] is not None


def test_a_payload_encoded_the_long_way_is_the_references_to_decide() -> None:
    pack = [{0: "bat.v", 1: "V", 2: 3.5, -3: 1_764_000_000}]
    payload = b"\x98\x01" + cbor2.dumps(pack)[1:]  # a one-element array with a 1-byte length
    body = (100).to_bytes(4, "big") + mac0_encode(KEY, NODE.encode(), 1, 9, payload)
    same_decision(body)
    assert verify_all([body], keys, T_RX).shapes == [None]


_names = st.text(st.characters(codec="utf-8", exclude_categories=("Cs",)), min_size=1, max_size=12)
_units = st.sampled_from(["", "ug/m3", "Cel", "%RH", "Pa", "ppm", "V", "dB", "count", "µm"])
_values = (st.integers(-(2**40), 2**40) | st.floats(allow_nan=False, allow_infinity=False, width=32)
           | st.floats(allow_nan=False, allow_infinity=False) | st.decimals(-10**6, 10**6, places=3).map(float))


@settings(max_examples=300, deadline=None)
@given(st.lists(st.tuples(_names, _units, _values), min_size=1, max_size=12),
       st.sampled_from([60, 2**28 - 1, 2**28, 1_764_000_000, 2**33]), st.integers(0, 2**32 - 1))
def test_generated_packets_come_out_as_the_reference_has_them(readings_: list[tuple[str, str, float]], bt: int,
                                                              uptime: int) -> None:
    # encode_pack writes what a node writes: bt on the first record, floats as the shortest float.
    cose = mac0_encode(KEY, NODE.encode(), 2, 7, encode_pack(bt, readings_))
    same_decision(uptime.to_bytes(4, "big") + cose)


_scalars = (st.none() | st.booleans() | st.integers(-(2**70), 2**70) | st.floats() | st.text(max_size=6)
            | st.binary(max_size=6) | st.sampled_from([1.0, 2.0, 0.0, -3.0]))
# Near-SenML maps: known labels, odd values, float labels equal to integer ones.
_records = st.dictionaries(st.sampled_from([-6, -5, -4, -3, -2, -1, 0, 1, 2, 3, 4, 5, 6, 7, 8, 0.0, 1.0, 2.0, True]),
                           _scalars, max_size=5)


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(_records, min_size=1, max_size=4) | _scalars, st.integers(0, 2**32 - 1))
@example([{0: "x", 2: math.inf}], 0)
@example([{0: "x", 1: "V", 2: 1.5}, {0: "y", 2: math.nan}], 0)
@example([{0: "x", 2: 10**400}], 0)
@example([{0: "x", 2: 1, -3: -1e308}], 0)  # bt so far before boot that wall time would overflow
@example([{0: "x", 2: 1, -3: -(2**28)}], 0)  # the earliest time since boot taken
@example([{0: "x", 2: 1, -3: -(2**28) - 1}], 0)
@example([{0: "x", True: "V", 2: 1}], 0)  # a bool label is the reference's 1 (u)
def test_authentic_packets_with_odd_payloads_are_decided_alike(body: object, uptime: int) -> None:
    try:
        payload = cbor2.dumps(body)
    except (ValueError, TypeError):
        return  # a dict with 1.0 and 1 as keys collapses; nothing to send
    same_decision(uptime.to_bytes(4, "big") + mac0_encode(KEY, NODE.encode(), 1, 0, payload))


def test_the_caches_only_hold_what_the_reference_prints() -> None:
    # 0.0 and -0.0 share a cache entry: the reference resolves both to 0.0 (bv + v).
    for value in (-0.0, 0.0):
        body = (5).to_bytes(4, "big") + mac0_encode(KEY, NODE.encode(), 3, 0, encode_pack(1_764_000_000, [
            ("x.v", "V", value), ("x.n", "", 3)]))
        same_decision(body)
    assert math.copysign(1.0, json.loads(fast(body)[2])[0]["v"]) == 1.0


LONG_NODE = "gg-" + "a" * 40  # a kid of more than 23 bytes has a two-byte head
_NODES = {NODE: KEY, LONG_NODE: OTHER_KEY}


@settings(max_examples=300, deadline=None)
@given(st.lists(st.tuples(st.sampled_from(sorted(_NODES)), st.integers(0, 5),
                          st.lists(st.tuples(st.sampled_from(["set", "insert", "delete", "append"]),
                                             st.integers(0, 400), st.integers(0, 255)), max_size=2)),
                min_size=1, max_size=6))
def test_edited_envelopes_in_a_run_of_bodies_are_decided_as_the_reference_decides_each(
        bodies_spec: list[tuple[str, int, list[tuple[str, int, int]]]]) -> None:
    # The fast path reads the envelope by its byte layout and remembers the previous body's node:
    # any edit to any byte, and any change of node within a run, must come out as the reference has it.
    bodies = []
    for node_id, seq, edits in bodies_spec:
        body = bytearray(SimNode(node_id=node_id, key=_NODES[node_id]).data(seq))
        for kind, at, byte in edits:
            at %= len(body) + 1
            if kind == "set" and at < len(body):
                body[at] = byte
            elif kind == "insert":
                body.insert(at, byte)
            elif kind == "delete" and at < len(body):
                del body[at]
            elif kind == "append":
                body.append(byte)
        bodies.append(bytes(body))
    batch = verify_all(bodies, _NODES.get, T_RX)
    accepted = iter(zip(batch.rows, batch.synced))
    rejected = dict(batch.rejected)
    for index, body in enumerate(bodies):
        try:
            packet = decode_data(body, _NODES.get)
        except ProtocolError as exc:
            assert (type(rejected[index]), str(rejected[index])) == (type(exc), str(exc))
            continue
        row, synced = next(accepted)
        assert index not in rejected
        assert row == (packet.node_id, packet.boot, packet.seq, T_RX, packet.cose, None, packet.uptime_ms)
        assert synced == packet.synced
    assert next(accepted, None) is None


def test_a_time_before_minus_2_28_seconds_is_malformed_not_a_bug() -> None:
    def body(bt: float) -> bytes:
        return (5).to_bytes(4, "big") + mac0_encode(KEY, NODE.encode(), 1, 0, cbor2.dumps([{0: "x", 2: 1, -3: bt}]))
    taken = verify_all([body(-(2**28))], keys, T_RX)
    assert len(taken.rows) == 1 and taken.synced == [False]
    for bt in (-(2**28) - 1, -1e308):
        [(_, exc)] = verify_all([body(bt)], keys, T_RX).rejected
        assert isinstance(exc, MalformedPacket) and "before -2^28 s" in str(exc)
