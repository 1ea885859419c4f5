"""Helpers for BLE tests: a radio per test, MicroPython nodes on it, and a bare CPython peripheral."""

from __future__ import annotations

import asyncio
import struct
from pathlib import Path

from gonggi_emu.radio.wire import Op, Splitter, pack
from gonggi_emu.vm import BOARD_SUPPORT_DIR, FIRMWARE_DIR, vm_command, vm_env

__all__ = ["RawPeripheral", "start_vm", "read_line"]


async def start_vm(tmp: Path, code: str, radio: Path, uid: str = "a4cf12000001") -> asyncio.subprocess.Process:
    """Run ``code`` on the MicroPython VM with firmware/ and the emulated ``bluetooth`` on its path."""
    script = tmp / f"node_{uid}.py"
    script.write_text(code)
    env = vm_env([FIRMWARE_DIR, BOARD_SUPPORT_DIR], GONGGI_RADIO=str(radio), GONGGI_UID=uid)
    return await asyncio.create_subprocess_exec(*vm_command(str(script)), env=env, cwd=tmp,
                                                stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT)


async def read_line(proc: asyncio.subprocess.Process, prefix: str, timeout: float = 20.0) -> str:
    """The VM's next output line starting with ``prefix`` (its whole output if it ends first)."""
    assert proc.stdout is not None
    seen = []
    async with asyncio.timeout(timeout):
        while line := (await proc.stdout.readline()).decode():
            seen.append(line)
            if line.startswith(prefix):
                return line.strip()
    raise AssertionError("VM ended without " + prefix + ":\n" + "".join(seen))


class RawPeripheral:
    """A peripheral speaking the radio's wire format directly (what board/bluetooth.py does in the VM)."""

    def __init__(self, addr: bytes) -> None:
        self.addr = addr
        self.address = ":".join(f"{b:02X}" for b in addr)
        self.events: asyncio.Queue[tuple[int, bytes]] = asyncio.Queue()
        self._status: asyncio.Queue[int] = asyncio.Queue()

    async def open(self, path: Path) -> None:
        reader, self._writer = await asyncio.open_unix_connection(str(path))
        self._task = asyncio.create_task(self._read(reader))
        assert await self.call(Op.HELLO_PERIPHERAL, self.addr) == 0

    async def _read(self, reader: asyncio.StreamReader) -> None:
        splitter = Splitter()
        while data := await reader.read(4096):
            for op, payload in splitter.feed(data):
                if op == Op.STATUS:
                    self._status.put_nowait(payload[0])
                else:
                    self.events.put_nowait((op, payload))

    async def call(self, op: int, payload: bytes) -> int:
        self._writer.write(pack(op, payload))
        return await self._status.get()

    async def advertise(self, adv: bytes, resp: bytes = b"", interval_us: int = 100000) -> int:
        return await self.call(Op.ADVERTISE, struct.pack("<IBB", interval_us, 1, len(adv)) + adv + resp)

    async def notify(self, conn: int, handle: int, data: bytes) -> int:
        return await self.call(Op.NOTIFY, struct.pack("<HH", conn, handle) + data)

    async def close(self) -> None:
        self._writer.close()
        self._task.cancel()
