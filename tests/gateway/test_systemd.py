"""The gateway as a systemd service: the unit, `gonggi gateway install`, and sd_notify over a real
datagram socket — READY, STATUS, WATCHDOG pings that stop while the spool is stalled, STOPPING."""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import re
import signal
import sqlite3
import subprocess
import sys
import tomllib
import uuid
from pathlib import Path
from typing import Any

import pytest

from gateway_helpers import KEY, NODE, write_registry
from gonggi_gateway.cli import add_parser
from gonggi_gateway.ops.operations import Operations
from gonggi_gateway.ops.sdnotify import Notifier
from gonggi_gateway.ops.systemd import SYSUSERS, render_unit
from gonggi_gateway.service import Gateway
from ops_helpers import NotifySocket, fetch, ops_config, running

REPO = Path(__file__).resolve().parents[2]
GONGGI = Path(sys.executable).parent / "gonggi"


def gonggi(*argv: str) -> int:
    parser = argparse.ArgumentParser(prog="gonggi")
    add_parser(parser.add_subparsers(dest="command", required=True))
    args = parser.parse_args(argv)
    return int(args.func(args))


def unit_directives(text: str) -> dict[str, list[str]]:
    """``Section.Key`` -> values in order (systemd keys may repeat)."""
    out: dict[str, list[str]] = {}
    section = ""
    for line in text.splitlines():
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        if line.startswith("["):
            section = line.strip("[]")
            continue
        key, _, value = line.partition("=")
        out.setdefault(f"{section}.{key}", []).append(value)
    return out


def test_install_writes_unit_config_registry_and_state_dir(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    root = tmp_path / "root"
    assert gonggi("gateway", "install", "--prefix", str(root), "--id", "gw-corner", "--dry-run") == 0
    assert not root.exists()  # a dry run says what it would do, and does nothing
    assert "would write" in capsys.readouterr().out

    assert gonggi("gateway", "install", "--prefix", str(root), "--id", "gw-corner",
                  "--gonggi", "/opt/gonggi/bin/gonggi") == 0
    unit = root / "etc/systemd/system/gonggi-gateway.service"
    config = root / "etc/gonggi/gateway.toml"
    registry = root / "etc/gonggi/nodes.toml"
    state = root / "var/lib/gonggi"
    assert unit.read_text() == render_unit(Path("/opt/gonggi/bin/gonggi"))
    assert (root / "etc/sysusers.d/gonggi.conf").read_text().startswith('u gonggi - "gonggi gateway" /var/lib/gonggi')
    assert state.is_dir() and state.stat().st_mode & 0o777 == 0o750
    assert registry.stat().st_mode & 0o777 == 0o640  # keys: not for everyone
    # The default configuration is valid and puts the spool where the unit lets the service write.
    assert gonggi("gateway", "check", "--config", str(config)) == 0
    assert "gateway gw-corner, 0 link(s), uplinks archive, 0 node(s)" in capsys.readouterr().out
    spool = Path(tomllib.loads(config.read_text())["gateway"]["spool"])
    assert str(spool.parent) in unit_directives(unit.read_text())["Service.ReadWritePaths"]

    config.write_text(config.read_text().replace("gw-corner", "gw-edited"))
    assert gonggi("gateway", "install", "--prefix", str(root)) == 0
    assert "gw-edited" in config.read_text()  # the operator's configuration is never overwritten
    assert f"kept {config}" in capsys.readouterr().out


def test_unit_is_notify_with_watchdog_restart_and_hardening() -> None:
    unit = render_unit(GONGGI)
    d = unit_directives(unit)
    expected = {
        "Service.Type": ["notify"], "Service.NotifyAccess": ["main"], "Service.Restart": ["on-failure"],
        "Service.User": ["gonggi"], "Service.SupplementaryGroups": ["dialout"], "Service.NoNewPrivileges": ["yes"],
        "Service.ProtectSystem": ["strict"], "Service.PrivateTmp": ["yes"], "Service.ProtectHome": ["yes"],
        "Service.StateDirectory": ["gonggi"], "Service.ReadWritePaths": ["/var/lib/gonggi"],
        "Service.ExecStart": [f"{GONGGI} gateway run --config /etc/gonggi/gateway.toml"],
        "Service.ExecReload": ["/bin/kill -HUP $MAINPID"], "Install.WantedBy": ["multi-user.target"],
    }
    for key, value in expected.items():
        assert d.get(key) == value, key
    assert int(d["Service.WatchdogSec"][0]) >= 10
    assert "char-ttyUSB rw" in d["Service.DeviceAllow"]
    # systemd's own reading of it: no unknown or misspelt directive, and a low exposure score.
    path = Path(os.environ.get("TMPDIR", "/tmp")) / f"gonggi-test-{uuid.uuid4().hex}.service"
    path.write_text(unit)
    try:
        verify = subprocess.run(["systemd-analyze", "verify", "--man=no", str(path)], capture_output=True, text=True)
        assert verify.stderr == "" and verify.returncode == 0, verify.stderr
        security = subprocess.run(["systemd-analyze", "security", "--offline=true", str(path)],
                                  capture_output=True, text=True)
    finally:
        path.unlink()
    exposure = re.search(r"Overall exposure level for \S+: ([\d.]+)", security.stdout)
    assert exposure is not None, security.stdout + security.stderr
    assert float(exposure[1]) <= 2.5, security.stdout


def test_packaged_unit_is_the_rendered_one() -> None:
    packaged = REPO / "packaging/systemd/gonggi-gateway.service"
    assert packaged.read_text() == render_unit(Path("/usr/local/bin/gonggi"))
    assert (REPO / "packaging/sysusers.d/gonggi.conf").read_text() == SYSUSERS


def test_notifier_reaches_path_and_abstract_sockets(tmp_path: Path) -> None:
    async def main() -> None:
        for address in (str(tmp_path / "notify"), f"@gonggi-test-{uuid.uuid4().hex}"):
            manager = NotifySocket(address)
            notifier = Notifier.from_environment({"NOTIFY_SOCKET": address, "WATCHDOG_USEC": "4000000"})
            assert notifier.watchdog_interval == 4.0
            assert notifier.ready("starting")
            assert await manager.receive() == {"READY": "1", "STATUS": "starting", "MAINPID": str(os.getpid())}
            assert notifier.watchdog()
            assert await manager.receive() == {"WATCHDOG": "1"}
            manager.close()
            notifier.close()

    asyncio.run(main())
    # WATCHDOG_PID names another process: the watchdog is not ours to ping.
    other = Notifier.from_environment({"NOTIFY_SOCKET": "@x", "WATCHDOG_USEC": "1", "WATCHDOG_PID": "1"})
    assert other.watchdog_interval is None
    assert not Notifier.from_environment({}).ready("no systemd")  # outside systemd: a no-op


def test_watchdog_pings_stop_while_the_spool_is_stalled(tmp_path: Path) -> None:
    config = ops_config(tmp_path)
    manager = NotifySocket(tmp_path / "notify")

    async def main() -> None:
        notifier = Notifier(manager.address, watchdog_usec=600_000)  # checks every 0.2 s
        async with Gateway(config) as gateway, running(gateway), Operations(gateway, notifier=notifier) as ops:
            ready = await manager.until("READY")
            assert ready["STATUS"].startswith("healthy: 1 nodes")
            await manager.until("WATCHDOG", "1")  # pinged while alive

            locker = sqlite3.connect(config.gateway.spool, isolation_level=None)
            locker.execute("BEGIN IMMEDIATE")  # commits cannot get the spool now
            while ops.monitor.report is None or ops.monitor.report.alive:
                await ops.monitor.reported.wait()
            stalled = [m for m in manager.drain() if m.get("STATUS", "").startswith("stalled: spool: not writable")]
            assert stalled, "systemctl status shows why"
            for _ in range(3):  # check after check, no ping while the spool is stalled
                await ops.monitor.reported.wait()
                assert not ops.monitor.report.alive
                assert all("WATCHDOG" not in m for m in manager.drain())
            locker.execute("ROLLBACK")
            locker.close()
            await manager.until("WATCHDOG", "1")  # alive again: pinged again

    try:
        asyncio.run(main())
    finally:
        manager.close()


def test_service_process_notifies_logs_json_serves_http_and_stops(tmp_path: Path) -> None:
    write_registry(tmp_path / "nodes.toml", {NODE: KEY})
    config = tmp_path / "gateway.toml"
    config.write_text('[gateway]\nid = "gw-proc"\n\n[http]\nlisten = "127.0.0.1:0"\n\n[logging]\nformat = "json"\n')
    address = f"@gonggi-test-{uuid.uuid4().hex}"  # the abstract namespace, as systemd often uses
    manager = NotifySocket(address)

    async def main() -> None:
        env = {**os.environ, "NOTIFY_SOCKET": address, "WATCHDOG_USEC": "3000000"}
        proc = await asyncio.create_subprocess_exec(str(GONGGI), "gateway", "run", "--config", str(config),
                                                    env=env, stderr=asyncio.subprocess.PIPE)
        assert proc.stderr is not None
        try:
            ready = await asyncio.wait_for(manager.until("READY"), 30)
            assert ready["MAINPID"] == str(proc.pid) and ready["STATUS"].startswith("healthy")
            await asyncio.wait_for(manager.until("WATCHDOG", "1"), 10)
            records: list[dict[str, Any]] = []
            while not any(r["msg"].startswith("http listening") for r in records):
                records.append(json.loads(await proc.stderr.readline()))  # every line is one JSON object
            http = next(r for r in records if r["msg"].startswith("http listening"))
            assert {"ts", "level", "logger", "msg"} <= set(http) and http["logger"] == "gonggi_gateway.ops.http_server"
            status, body = await fetch(f"http://127.0.0.1:{http['port']}/healthz")
            assert status == 200 and json.loads(body)["status"] == "ok"

            proc.send_signal(signal.SIGHUP)  # re-read the registry
            while not records[-1]["msg"].startswith("registry reloaded"):
                records.append(json.loads(await proc.stderr.readline()))
            assert records[-1]["nodes"] == 1
            proc.send_signal(signal.SIGTERM)
            stopping = await asyncio.wait_for(manager.until("STOPPING"), 10)
            assert stopping["STATUS"].startswith("stopping")
            rest = (await proc.stderr.read()).decode().splitlines()
            assert await proc.wait() == 0
            assert json.loads(rest[-1])["msg"] == "gateway gw-proc stopped"
        finally:
            if proc.returncode is None:
                proc.kill()
                await proc.wait()

    try:
        asyncio.run(main())
    finally:
        manager.close()
