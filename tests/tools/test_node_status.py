"""firmware/status.py and main.py's update guard, on the MicroPython VM."""

from __future__ import annotations

import json
from typing import Any

from gonggi_emu.vm import FIRMWARE_DIR
from gonggi_gateway.registry import key_fingerprint

KEY = bytes(range(32))
CONFIG = {"node_id": "gg-a4cf12345678", "key": KEY.hex(), "report_s": 60, "sensors": [{"driver": "bme280"}]}


def report(mpy: Any) -> dict[str, Any]:
    out = mpy.run("import status\nstatus.report()")
    return json.loads(out.strip().splitlines()[-1])


def test_the_status_shows_the_config_without_the_key_and_no_running_node(mpy: Any) -> None:
    (mpy.cwd / "config.json").write_text(json.dumps(CONFIG))
    (mpy.cwd / "gonggi.json").write_text(json.dumps({"version": "e84d159507ad", "files": {}}))
    status = report(mpy)
    assert status["firmware"] == {"update_incomplete": False, "build": "e84d159507ad", "version": "0.1.0"}
    config = status["config"]
    assert "key" not in config and KEY.hex() not in json.dumps(status)
    assert config["key_bytes"] == 32 and config["key_id"] == key_fingerprint(KEY)
    assert config["node_id"] == "gg-a4cf12345678" and config["report_s"] == 60 and config["sample_s"] == 5
    assert status["node"] is None
    assert status["mem_free"] > 0


def test_the_status_names_a_config_problem_and_an_update_cut_off(mpy: Any) -> None:
    (mpy.cwd / "gonggi.update").write_text("{}")
    status = report(mpy)
    assert status["config"] == {"error": "config.json: missing (provision the node: gonggi node provision)"}
    assert status["firmware"]["update_incomplete"] is True and status["firmware"]["build"] is None


def test_main_py_does_not_start_the_node_while_an_update_is_incomplete(mpy: Any) -> None:
    (mpy.cwd / "gonggi.update").write_text("{}")
    main = (FIRMWARE_DIR / "main.py").read_text()
    out = mpy.run(f"import sys\nexec({main!r})\nprint('node imported:', 'node' in sys.modules)")
    assert "gonggi: firmware update incomplete: run gonggi node flash again" in out
    assert "node imported: False" in out
