"""The peripheral socket between the board's MicroPython side and its supervisor."""

from __future__ import annotations

import asyncio
import errno
import logging
import re
import struct
from pathlib import Path

from gonggi_emu.rpc import Op, RpcError, RpcServer
from gonggi_emu.vm import BOARD_SUPPORT_DIR

HEADER = struct.Struct("<BBI")


def test_the_micropython_side_uses_the_same_op_codes() -> None:
    source = (BOARD_SUPPORT_DIR / "_emu.py").read_text()
    board_ops = {name: int(value) for name, value in re.findall(r"^OP_(\w+) = const\((\d+)\)", source, re.MULTILINE)}
    assert board_ops == {op.name: op.value for op in Op}


def test_requests_get_replies_errors_and_bugs_become_eio(tmp_path: Path) -> None:
    def echo(unit: int, payload: bytes) -> bytes:
        return bytes([unit]) + payload[::-1]

    def nack(unit: int, payload: bytes) -> bytes:
        raise RpcError(errno.ENODEV)

    def buggy(unit: int, payload: bytes) -> bytes:
        return payload[10].to_bytes(1, "little")  # IndexError: a bug in device code

    async def call(reader: asyncio.StreamReader, writer: asyncio.StreamWriter, op: int, unit: int, payload: bytes) -> tuple[int, bytes]:
        writer.write(HEADER.pack(op, unit, len(payload)) + payload)
        status, _, n = HEADER.unpack(await reader.readexactly(HEADER.size))
        return status, await reader.readexactly(n)

    async def run() -> None:
        server = RpcServer(tmp_path / "p.sock", logging.getLogger("test"))
        server.register(Op.I2C_XFER, echo)
        server.register(Op.I2C_SCAN, nack)
        server.register(Op.ADC_READ, buggy)
        await server.start()
        try:
            reader, writer = await asyncio.open_unix_connection(str(server.path))
            assert await call(reader, writer, Op.I2C_XFER, 7, b"abc") == (0, b"\x07cba")
            assert await call(reader, writer, Op.I2C_SCAN, 0, b"") == (errno.ENODEV, b"")
            assert await call(reader, writer, Op.ADC_READ, 35, b"\x03") == (errno.EIO, b"")
            assert await call(reader, writer, Op.WDT_FEED, 0, b"") == (errno.ENOSYS, b"")
            assert await call(reader, writer, Op.I2C_XFER, 1, b"") == (0, b"\x01")  # still in step
            writer.close()
        finally:
            await server.close()
        assert [type(e) for e in server.errors] == [IndexError]
        assert not server.path.exists()

    asyncio.run(run())
