# What `gonggi node check` reads from a node. Run at the REPL once Ctrl-C stopped the node:
#   import status; status.report()
# prints one JSON object: the firmware (manifest build, version, a switch cut off), the config
# as the node validates it (without the key: its length and a fingerprint), and the node as it
# was running: boot, uptime, each sensor's health in the report interval under way, the link.
# Runs rarely and briefly, with the node stopped: allocation does not matter here.
import gc
import json
import os
import sys
from binascii import hexlify
from hashlib import sha256


def _exists(path):
    try:
        os.stat(path)
    except OSError:
        return False
    return True


def _firmware():
    out = {"update_incomplete": _exists("gonggi.update"), "build": None, "version": None}
    try:
        with open("gonggi.json") as f:
            out["build"] = json.load(f).get("version")
    except (OSError, ValueError):
        out["build"] = None
    try:
        import node

        out["version"] = node.FIRMWARE
    except (ImportError, ValueError, SyntaxError, AttributeError) as e:
        out["error"] = repr(e)
    return out


def _config():
    import config

    try:
        cfg = config.load()
    except ValueError as e:
        return {"error": str(e)}
    out = {}
    for k in cfg:
        if k != "key":
            out[k] = cfg[k]
    key = cfg["key"]
    out["key_bytes"] = len(key)
    # Names the key without revealing it, as the gateway's registry.key_fingerprint does.
    out["key_id"] = "sha256:" + hexlify(sha256(key).digest()[:6]).decode()
    return out


def _node():
    mod = sys.modules.get("node")
    n = getattr(mod, "current", None) if mod else None
    if n is None:
        return None
    sensors = []
    for i in range(len(n.sensors)):
        s = n.sensors[i]
        err = getattr(s, "error", None)
        # Node internals, read on purpose: this module is the node's own inspector.
        sensors.append({"name": s.name, "flags": n._sflags[i], "samples": n._aggs[i].count,
                        "channels": [ch[0] for ch in s.channels],
                        "error": None if err is None else str(err)})
    link = {"kind": n.cfg["link"].get("kind"), "up": getattr(n.link, "up", True), "linked": n.linked,
            "backlog": n.ring.count(), "dropped": n.ring.dropped, "retransmits": n.retransmits,
            "bad_control": n.bad_control, "synced": n.clock.synced()}
    return {"boot": n.boot, "seq": n.seq, "reports": n.reports, "uptime_ms": n.clock.uptime_ms(),
            "flags": n.flags, "sensors": sensors, "link": link}


def report():
    out = {"firmware": _firmware(), "config": _config(), "node": _node()}
    gc.collect()
    out["mem_free"] = gc.mem_free()
    print(json.dumps(out))
