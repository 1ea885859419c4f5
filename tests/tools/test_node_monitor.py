"""The packet reader on a node's data UART: each packet verified with the gateway's protocol code,
or said why not."""

from __future__ import annotations

import struct

import cbor2

from gonggi_gateway.protocol import FrameType, Hello, encode_frame, encode_hello, encode_pack, mac0_encode
from gonggi_tools.node.monitor import PacketReader

KEY = bytes(range(32))
OTHER = bytes(32)
NODE = "gg-a4cf12345678"


def data_frame(key: bytes, seq: int, node: str = NODE) -> bytes:
    payload = encode_pack(60, [("bme.t", "Cel", 21.5), ("bme.n", "", 12)])
    return encode_frame(FrameType.DATA, struct.pack(">I", 61000) + mac0_encode(key, node.encode(), 3, seq, payload))


def reader() -> PacketReader:
    return PacketReader(lambda node: KEY if node == NODE else None)


def test_data_and_hello_are_verified_and_read() -> None:
    hello = encode_frame(FrameType.HELLO, encode_hello(KEY, Hello(NODE, 3, "0.1.0", 2, 5000, 0, False, 0)))
    packets = reader().feed(hello + data_frame(KEY, 0))
    assert [(p.kind, p.status, p.node_id, p.boot, p.seq) for p in packets] == [
        ("HELLO", "verified", NODE, 3, 0), ("DATA", "verified", NODE, 3, 0)]
    assert packets[0].detail.startswith("firmware 0.1.0, backlog 2, up 5 s")
    assert packets[1].detail == "bme.t 21.5 Cel, bme.n 12"


def test_a_packet_sent_again_is_a_repeat_and_still_verified() -> None:
    r = reader()
    first, again = r.feed(data_frame(KEY, 7) + data_frame(KEY, 7))
    assert (first.status, again.status) == ("verified", "repeat") and again.verified


def test_a_wrong_key_an_unknown_node_and_line_noise_are_told_apart() -> None:
    r = reader()
    noise = data_frame(KEY, 1)[:20] + b"\r\nMPY: soft reboot\r\n"
    packets = r.feed(data_frame(OTHER, 0) + data_frame(KEY, 0, node="gg-stranger") + noise + data_frame(KEY, 2))
    assert [(p.kind, p.status) for p in packets] == [
        ("DATA", "bad MAC"), ("DATA", "unknown node"), ("frame", "damaged"), ("DATA", "verified")]
    assert packets[1].node_id == "gg-stranger" and not packets[1].verified


def test_a_control_message_from_a_gateway_is_shown_as_such() -> None:
    body = mac0_encode(KEY, NODE.encode(), 3, 0, cbor2.dumps({1: [[3, 0, 0]]}))
    (packet,) = reader().feed(encode_frame(FrameType.CONTROL, body))
    assert (packet.kind, packet.status) == ("CONTROL", "gateway")
