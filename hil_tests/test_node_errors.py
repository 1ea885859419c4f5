"""What a field tech sees when something is wrong at the end of the cable: one line saying what
happened and one saying what to do, a non-zero exit status, and nothing half-done on the board
or in the registry."""

from __future__ import annotations

import os
from pathlib import Path
from typing import TYPE_CHECKING

import serial
from test_node_support import (  # noqa: F401  (fixtures)
    SITE,
    Gonggi,
    bench,
    gonggi,
    gonggi_alone,
    registry,
    site,
)

from gonggi_emu.supervisor import EmulatedBoard

if TYPE_CHECKING:
    from collections.abc import Awaitable, Callable

    from conftest import RealBoard

    Board = EmulatedBoard | RealBoard
    Mpremote = Callable[..., Awaitable[str]]

# MicroPython 1.19.1 on the emulated board's CPU: .mpy v6.0 (sub-version 0), x64 (arch 2).
MICROPYTHON_1_19 = ((1, 19, 1), 6 | 2 << 10)


async def test_a_port_that_does_not_exist_is_named_with_the_boards_that_are_there(gonggi_alone: Gonggi) -> None:
    run = await gonggi_alone("node", "flash", "--port", "/dev/ttyUSB-gonggi-absent")
    assert run.rc == 1
    assert "error: no port /dev/ttyUSB-gonggi-absent (boards attached:" in run.out
    assert "what to do: check the cable and the port name: `gonggi node list`" in run.out


async def test_a_port_another_program_holds_is_busy(board: Board, gonggi: Gonggi) -> None:
    with serial.Serial(board.repl_path, exclusive=True):  # as screen, mpremote or a gateway would
        run = await gonggi("node", "check", "--port", board.repl_path)
    assert run.rc == 1
    assert f"error: port {board.repl_path} is open in another program: pid {os.getpid()}" in run.out
    assert "what to do: close the other program (screen, minicom, mpremote" in run.out


async def test_a_serial_device_without_micropython_says_how_to_install_it(gonggi_alone: Gonggi) -> None:
    master, slave = os.openpty()  # a serial device that never answers the REPL's Ctrl-C, Ctrl-A
    path = os.ttyname(slave)
    os.close(slave)
    try:
        run = await gonggi_alone("node", "flash", "--port", path, "--timeout", "1")
    finally:
        os.close(master)
    assert run.rc == 1
    assert f"error: no MicroPython REPL answered on {path} within 1 s" in run.out
    assert "A new ESP32 needs it first" in run.out and "esptool erase_flash, write_flash 0x1000" in run.out


async def test_an_old_micropython_is_refused_before_anything_is_registered_or_copied(
    emulated_board: EmulatedBoard, gonggi: Gonggi, site: Path, registry: Path
) -> None:
    emulated_board.pretend_micropython = MICROPYTHON_1_19
    await emulated_board.power_cycle()
    for command in (["provision", "--site", str(site), "--registry", str(registry)], ["flash"]):
        run = await gonggi("node", *command, "--port", emulated_board.repl_path)
        assert run.rc == 1, run.out
        assert ("error: the board runs MicroPython 1.19.1 (.mpy v6.0), too old: "
                "gonggi's firmware needs MicroPython 1.23 or newer (.mpy v6.3)") in run.out
        assert "what to do: put a current MicroPython on the board with esptool" in run.out
    assert not registry.exists()
    assert sorted(p.name for p in emulated_board.flash_dir.iterdir()) == []


async def test_a_full_flash_is_reported_before_anything_is_copied(emulated_board: EmulatedBoard, gonggi: Gonggi) -> None:
    emulated_board.flash_size = 48 * 1024
    await emulated_board.power_cycle()
    run = await gonggi("node", "flash", "--port", emulated_board.repl_path)
    assert run.rc == 1
    assert "error: not enough flash: the 37 changed files need" in run.out
    assert "the board has 48.0 KB free of 48.0 KB" in run.out
    assert "what to do: free space on the board (`mpremote fs ls`, `mpremote fs rm`)" in run.out
    assert not (emulated_board.flash_dir / ".gonggi-staging").exists()


async def test_a_configured_sensor_missing_from_the_bus_stops_provisioning(
    board: Board, gonggi: Gonggi, tmp_path: Path, registry: Path
) -> None:
    site = tmp_path / "site.toml"
    site.write_text(SITE + '\n[[sensors]]\ndriver = "sgp40"\n')
    run = await gonggi("node", "provision", "--port", board.repl_path, "--site", str(site), "--registry", str(registry))
    assert run.rc == 1
    assert ("error: sensor sgp40 (sgp40 at 0x59 on I2C0, SCL 22, SDA 21) is not found on the bus: "
            "nothing at 0x59 (the scan found 0x76)") in run.out
    assert "what to do: check the sensor's wiring (SDA, SCL, 3V3, GND) and its address" in run.out
    assert not registry.exists()


async def test_a_site_file_mistake_names_the_file_and_the_key(
    board: Board, gonggi: Gonggi, tmp_path: Path, registry: Path
) -> None:
    site = tmp_path / "site.toml"
    site.write_text(SITE.replace('name = "bme"', 'name = "bme"\naddress = 0x80'))
    run = await gonggi("node", "provision", "--port", board.repl_path, "--site", str(site), "--registry", str(registry))
    assert run.rc == 2
    assert f"error: {site}: sensors[0].address: 0x80 is not a 7-bit I2C address (0x08..0x77)" in run.out


async def test_a_node_that_cannot_start_after_flashing_says_why(board: Board, gonggi: Gonggi, mpremote: Mpremote) -> None:
    await mpremote("resume", "exec", "open('config.json', 'w').write('{\"node_id\": \"\", \"key\": \"00\"}')")
    run = await gonggi("node", "flash", "--port", board.repl_path)
    assert run.rc == 1
    assert ("error: the node does not start; it says: gonggi: cannot start: "
            "config.json: node_id must be a string of 1..23 characters") in run.out
    assert "what to do: run `gonggi node check` for the details" in run.out
