"""Regenerate the protocol test vectors: ``python tests/vectors/generate.py``.

The vectors are built with the CPython reference (cbor2, hmac) from readings held as the node
holds them (fixed point: mantissa and decimal exponent). Both implementations are tested against
the committed JSON files: the firmware on the MicroPython VM must produce these exact bytes, and
the gateway must read these exact readings back. Regenerating must not change them unless the
protocol version changes.
"""

from __future__ import annotations

import json
from pathlib import Path

from gonggi_gateway.protocol import (
    Ack,
    Control,
    FrameType,
    Hello,
    encode_control,
    encode_frame,
    encode_hello,
    encode_pack,
    mac0_encode,
)

HERE = Path(__file__).resolve().parent
KEY = bytes.fromhex("000102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e1f")


def data_vector(name: str, description: str, node_id: str, boot: int, seq: int, uptime_ms: int,
                bt: int, readings: list[tuple[str, str, int, int]]) -> dict:
    # Division, as the firmware computes it, so both round to the same float32.
    values = [(n, u, m / 10 ** -e if e < 0 else m * 10**e) for n, u, m, e in readings]
    payload = encode_pack(bt, values)
    cose = mac0_encode(KEY, node_id.encode(), boot, seq, payload)
    frame = encode_frame(FrameType.DATA, uptime_ms.to_bytes(4, "big") + cose)
    return {
        "name": name,
        "description": description,
        "key": KEY.hex(),
        "node_id": node_id,
        "boot": boot,
        "seq": seq,
        "uptime_ms": uptime_ms,
        "bt": bt,
        "readings": [{"n": n, "u": u, "m": m, "exp": e} for n, u, m, e in readings],
        "payload": payload.hex(),
        "cose": cose.hex(),
        "frame": frame.hex(),
    }


def main() -> None:
    vectors = [
        data_vector(
            "data-battery-synced",
            "One battery reading from a node whose clock the gateway has set (bt is Unix time).",
            "gg-a4cf12", 7, 42, 123456, 1764000000,
            [("bat.v", "V", 3912, -3), ("bat.n", "", 12, 0)],
        ),
        data_vector(
            "data-multi-unsynced",
            "A full report before time sync: bt is seconds since boot (< 2**28); the gateway maps "
            "it to wall time with the frame's uptime_ms. Float16 and float32 values, a negative "
            "value, an integer value, sample counts and a health record.",
            "node-0001", 1, 0, 61500, 60,
            [
                ("pms.pm25", "ug/m3", 125, -1),
                ("pms.pm10", "ug/m3", 201, -1),
                ("pms.n", "", 11, 0),
                ("pms.health", "", 2, 0),
                ("bme.t", "Cel", -525, -2),
                ("bme.rh", "%RH", 4312, -2),
                ("bme.p", "Pa", 101325, 0),
                ("bme.n", "", 12, 0),
            ],
        ),
    ]
    ctl = Control("gg-a4cf12", 7, (Ack(7, 40, 42), Ack(6, 3, 3)), 1764000012345)
    ctl_cose = encode_control(KEY, ctl)
    vectors.append({
        "name": "control-ack-time",
        "description": "Gateway to node: ack of 40..42 of boot 7 and 3 of boot 6, and the time.",
        "key": KEY.hex(),
        "node_id": ctl.node_id,
        "boot": ctl.boot,
        "acks": [[a.boot, a.first, a.last] for a in ctl.acks],
        "time_ms": ctl.time_ms,
        "cose": ctl_cose.hex(),
        "frame": encode_frame(FrameType.CONTROL, ctl_cose).hex(),
    })
    hello = Hello("gg-a4cf12", 7, "0.1.0", 3, 5000, 0, False, 0)
    hello_cose = encode_hello(KEY, hello, seq=0)
    vectors.append({
        "name": "hello",
        "description": "A node's HELLO at boot 7: firmware 0.1.0, 3 packets waiting, not synced.",
        "key": KEY.hex(),
        "node_id": hello.node_id,
        "boot": hello.boot,
        "firmware": hello.firmware,
        "backlog": hello.backlog,
        "uptime_ms": hello.uptime_ms,
        "cose": hello_cose.hex(),
        "frame": encode_frame(FrameType.HELLO, hello_cose).hex(),
    })
    for v in vectors:
        (HERE / f"{v['name']}.json").write_text(json.dumps(v, indent=2) + "\n")


if __name__ == "__main__":
    main()
