"""The firmware's CBOR, COSE_Mac0 and framing produce and accept the protocol vectors' exact bytes."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

VECTORS = Path(__file__).resolve().parents[1] / "vectors"
DATA = sorted(VECTORS.glob("data-*.json"))


def load(name: str) -> dict:
    return json.loads((VECTORS / name).read_text())


@pytest.mark.parametrize("path", DATA, ids=lambda p: p.stem)
def test_firmware_encodes_data_vector(mpy, path: Path) -> None:
    v = json.loads(path.read_text())
    readings = [(r["n"], r["u"], r["m"], r["exp"]) for r in v["readings"]]
    out = mpy.run(f"""
        from binascii import unhexlify, hexlify
        from cbor import Writer
        from cose import Mac0
        import framing
        readings = {readings!r}
        payload = bytearray(400)
        w = Writer(payload)
        w.array(len(readings))
        for i, (n, u, m, e) in enumerate(readings):
            w.map(2 + (1 if u else 0) + (1 if i == 0 else 0))
            w.int(0); w.tstr(n.encode())
            if u:
                w.int(1); w.tstr(u.encode())
            w.int(2); w.fixed(m, e)
            if i == 0:
                w.int(-3); w.int({v["bt"]})
        print("payload", hexlify(payload[:w.pos]).decode())
        packet = bytearray(500)
        k = Writer(packet)
        Mac0(unhexlify("{v["key"]}"), b"{v["node_id"]}").seal(k, {v["boot"]}, {v["seq"]}, memoryview(payload)[:w.pos])
        print("cose", hexlify(packet[:k.pos]).decode())
        enc = framing.Encoder(1200)
        up = bytearray(4)
        up[0] = {v["uptime_ms"]} >> 24; up[1] = ({v["uptime_ms"]} >> 16) & 255
        up[2] = ({v["uptime_ms"]} >> 8) & 255; up[3] = {v["uptime_ms"]} & 255
        print("frame", hexlify(enc.frame(framing.DATA, up, memoryview(packet)[:k.pos])).decode())
    """)
    got = dict(line.split(" ", 1) for line in out.splitlines())
    assert got["payload"] == v["payload"]
    assert got["cose"] == v["cose"]
    assert got["frame"] == v["frame"]


def test_firmware_reads_control_vector(mpy) -> None:
    v = load("control-ack-time.json")
    out = mpy.run(f"""
        from binascii import unhexlify
        from cose import Mac0
        from cbor import Reader
        import framing
        mac = Mac0(unhexlify("{v["key"]}"), b"{v["node_id"]}")
        dec = framing.Decoder(600)
        frame = None
        for c in unhexlify("{v["frame"]}"):
            n = dec.feed_byte(c)
            if n:
                frame = bytes(dec.mv[:n])
        assert frame[0] == framing.CONTROL
        boot, payload = mac.verify(memoryview(frame)[1:])
        r = Reader(payload)
        print("boot", boot)
        print("map", r.head())
        print("key", r.int())
        major, n = r.head()
        for _ in range(n):
            r.head()
            print("ack", r.int(), r.int(), r.int())
        print("key", r.int())
        print("time", r.int())
        bad = bytearray(frame[1:]); bad[-1] ^= 1
        print("tampered", mac.verify(memoryview(bad)))
        print("other key", Mac0(b"x" * 32, b"{v["node_id"]}").verify(memoryview(frame)[1:]))
        print("other kid", Mac0(unhexlify("{v["key"]}"), b"someone").verify(memoryview(frame)[1:]))
        print("truncated", mac.verify(memoryview(frame)[1:-3]))
    """)
    lines = out.splitlines()
    assert lines[0] == f"boot {v['boot']}"
    assert lines[1] == "map (5, 2)"
    acks = [list(map(int, line.split()[1:])) for line in lines if line.startswith("ack")]
    assert acks == v["acks"]
    assert f"time {v['time_ms']}" in lines
    for what in ("tampered", "other key", "other kid", "truncated"):
        assert f"{what} None" in lines


def test_decoder_resynchronises_after_line_noise(mpy) -> None:
    v = load("data-battery-synced.json")
    frame = v["frame"]
    out = mpy.run(f"""
        from binascii import unhexlify
        import framing
        f = unhexlify("{frame}")
        dec = framing.Decoder(600)
        got = 0
        # noise before, a frame cut in half by noise, a control char inside a frame, then good ones
        stream = b"\\x00\\x13garbage" + f[:20] + b"\\x03" + f[20:] + f + f[:30] + b"\\x7e" + f
        for c in stream:
            n = dec.feed_byte(c)
            if n:
                got += 1
                assert dec.mv[0] == framing.DATA and n == 1 + 4 + {len(v["cose"]) // 2}
        print("frames", got, "errors", dec.errors)
    """)
    assert out.strip() == "frames 2 errors 2"


def test_frames_never_contain_repl_control_bytes(mpy) -> None:
    out = mpy.run("""
        import framing
        enc = framing.Encoder(1200)
        data = bytes(range(256))
        wire = bytes(enc.frame(framing.DATA, data))
        print(min(wire[1:-1]), wire.count(b"\\x7e"))
    """)
    low, flags = map(int, out.split())
    assert low >= 0x20
    assert flags == 2
