"""The node on a link that comes and goes (a BLE connection), on the MicroPython VM in virtual time:
nothing is sent while it is down, and each new connection gets a HELLO and the unacked backlog at
once, oldest first, instead of after a retransmission timeout."""

from __future__ import annotations

from gonggi_gateway.protocol import decode_data

KEY = bytes(32)
NODE = "gg-link"

SCRIPT = """
import asyncio
from binascii import hexlify
import config
from node import Node
from ring import Ring
from virtual_time import VirtualClock, CaptureLink, ScriptedSensor

cfg = config.validate({"node_id": "%s", "key": "%s", "sample_s": 1, "report_s": 10,
                       "ring_slots": 8, "window": 2, "rto_ms": 3000})
clock = VirtualClock()
link = CaptureLink()
link.up = False
bat = ScriptedSensor("bat", (("v", "V", -3),), [([3900], 0)])
node = Node(cfg, link, [bat], Ring("ring.bin", 8, 512), 1, clock)

def show(phase):
    print(phase, " ".join(chr(t) + ":" + hexlify(b).decode() for t, b in link.sent))
    link.sent.clear()

async def main():
    task = asyncio.create_task(node.run())
    await clock.run_for(35000)  # three reports, no gateway
    print("backlog", node.ring.count())
    show("down")
    link.up = True
    await clock.run_for(100)
    show("up")
    link.up = False
    await clock.run_for(1000)
    show("lost")
    link.up = True  # a new connection, long before rto_ms
    await clock.run_for(100)
    show("again")
    print("retransmits", node.retransmits)
    task.cancel()

asyncio.run(main())
""" % (NODE, KEY.hex())


def frames(line: str) -> list[str]:
    """'H' for a HELLO, the sequence number for a DATA frame."""
    out = []
    for item in line.split()[1:]:
        kind, body = item.split(":")
        out.append(kind if kind != "D" else str(decode_data(bytes.fromhex(body), {NODE: KEY}.get).seq))
    return out


def test_nothing_goes_out_while_down_and_each_connection_gets_hello_and_the_backlog_at_once(mpy) -> None:
    out = {line.split(" ", 1)[0]: line for line in mpy.run(SCRIPT).splitlines()}
    assert out["backlog"] == "backlog 3"
    assert frames(out["down"]) == []
    assert frames(out["up"]) == ["H", "0", "1"]  # the window of 2, oldest first
    assert frames(out["lost"]) == []
    assert frames(out["again"]) == ["H", "0", "1"]  # at once, not after rto_ms
    assert out["retransmits"] == "retransmits 0"
