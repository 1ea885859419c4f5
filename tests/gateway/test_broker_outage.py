"""A broker outage while nodes keep sending: the whole gateway against a real mosquitto.

Nodes go on reporting (each packet acked after its commit) before, during and after the outage;
a downstream consumer with a persistent QoS 1 session sees every reading exactly once, in each
node's order. (How fast the backlog drains is a figure, not a test: ``gonggi bench drain``.)
"""

from __future__ import annotations

import asyncio
import json
from pathlib import Path

from gateway_helpers import KEY, MemoryLink, SimNode, write_registry
from gonggi_emu.broker import Mosquitto
from gonggi_gateway.config import load_config
from gonggi_gateway.service import Gateway
from test_mqtt import Subscriber

NODES = ("gg-north", "gg-east", "gg-south")
GATEWAY = "gw-outage"
PHASE = 15  # packets per node before, during and after the outage


async def report(gateway: Gateway, link: MemoryLink, node: SimNode, seqs: range) -> None:
    """A node reporting: each packet once its predecessor was acked (stored in the spool)."""
    for seq in seqs:
        link.deliver(node.data_frame(seq, bt=1_764_000_000 + seq))
        await gateway.wait_until(lambda s: s.nodes[node.node_id].packets > seq)


def test_every_reading_arrives_once_in_order_across_a_broker_outage(tmp_path: Path) -> None:
    write_registry(tmp_path / "nodes.toml", {n: KEY for n in NODES})

    async def main() -> None:
        async with Mosquitto(tmp_path / "broker") as broker:
            (tmp_path / "gateway.toml").write_text(
                f'[gateway]\nid = "{GATEWAY}"\n\n[mqtt]\nhost = "{broker.host}"\nport = {broker.port}\n'
                "\n[http]\nenabled = false\n")
            sub = Subscriber(broker)
            consumer = asyncio.create_task(sub.run())
            await sub.subscribed.wait()
            async with Gateway(load_config(tmp_path / "gateway.toml")) as gateway:
                running = asyncio.create_task(gateway.run())
                nodes = [SimNode(node_id=n) for n in NODES]
                links = [MemoryLink(name=f"ble:{n}") for n in NODES]
                served = [asyncio.create_task(gateway.serve_link(link)) for link in links]

                async def phase(k: int) -> None:
                    seqs = range(k * PHASE, (k + 1) * PHASE)
                    await asyncio.gather(*(report(gateway, ln, nd, seqs) for ln, nd in zip(links, nodes)))

                await phase(0)
                await sub.wait_for(lambda: len(sub.data()) == PHASE * len(NODES))
                await sub.flush()  # our acks reached the broker: nothing of ours is redelivered later
                await broker.stop()
                await phase(1)  # the nodes carry on: acked after the commit, kept in the spool
                snap = await gateway.wait_until(lambda s: s.uplinks[0].failures > 0)
                assert snap.spool_depth == PHASE * len(NODES) and snap.uplinks[0].last_error
                await broker.start()
                sub.reconnect.set()
                await phase(2)  # and on, while the backlog drains
                snap = await gateway.wait_until(lambda s: s.spool_depth == 0)
                assert snap.spool is not None and (snap.spool.stored, snap.spool.refused) == (3 * PHASE * len(NODES), 0)
                await sub.wait_for(lambda: len(sub.data()) >= 3 * PHASE * len(NODES))
                for task in (running, *served):
                    task.cancel()
                await asyncio.gather(running, *served, return_exceptions=True)
            consumer.cancel()
            await asyncio.gather(consumer, return_exceptions=True)

        data = sub.data()
        assert len(data) == 3 * PHASE * len(NODES)  # exactly once
        for node in NODES:
            times = [r["t"] for t, r in data if t == f"gonggi/{GATEWAY}/{node}/senml"]
            assert times == [1_764_000_000 + s for s in range(3 * PHASE)]  # all of them, in order
        assert all(json.loads(p)[0]["bn"] == f"urn:dev:gonggi:{t.split('/')[2]}:"
                   for t, p, _ in sub.messages if t.endswith("/senml"))

    asyncio.run(asyncio.wait_for(main(), 60))
