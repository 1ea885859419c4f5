"""The peripheral socket: small blocking request/response calls from the board's MicroPython side.

Wire format (the VM side is ``board/_emu.py``): a request is op (u8), unit (u8), payload length
(u32 little-endian) and the payload; the reply is status (u8: 0 or an errno), a zero byte, the
payload length (u32) and the payload. One socket path per board; each VM run connects once.
"""

from __future__ import annotations

import asyncio
import contextlib
import errno
import logging
import struct
from collections.abc import Callable
from enum import IntEnum
from pathlib import Path

__all__ = ["Handler", "Op", "RpcError", "RpcServer"]

_HEADER = struct.Struct("<BBI")


class Op(IntEnum):
    """Operation codes; ``board/_emu.py`` defines the same numbers as ``OP_<name>``."""

    I2C_XFER = 1
    I2C_SCAN = 2
    ADC_READ = 3
    I2S_INIT = 4
    I2S_READ = 5
    I2S_DEINIT = 6
    UART_OPEN = 7
    UART_CLOSE = 8
    UART_ANY = 9
    PIN_WRITE = 10
    PIN_READ = 11
    WDT_START = 12
    WDT_FEED = 13
    RESET = 14
    DEEPSLEEP = 15
    RTC_GET = 16
    RTC_SET = 17
    RTC_MEM_GET = 18
    RTC_MEM_SET = 19


class RpcError(Exception):
    """Raised by a handler: the VM side raises ``OSError(errno)``."""

    def __init__(self, code: int, message: str = "") -> None:
        super().__init__(message or errno.errorcode.get(code, str(code)))
        self.code = code


# unit, payload -> reply payload; None means "no reply" (the VM is about to be stopped).
Handler = Callable[[int, bytes], bytes | None]


class RpcServer:
    """An AF_UNIX server dispatching each request to the handler registered for its op."""

    def __init__(self, path: Path, log: logging.Logger) -> None:
        self.path = path
        self._log = log
        self._handlers: dict[int, Handler] = {}
        self._server: asyncio.AbstractServer | None = None
        self._tasks: set[asyncio.Task[None]] = set()
        self.errors: list[Exception] = []  # bugs in handlers (device code), surfaced by the board

    def register(self, op: int, handler: Handler) -> None:
        """Serve ``op`` with ``handler``; other helpers add ops >= 0x80 for their own peripherals."""
        if op in self._handlers:
            raise ValueError(f"op {op} already has a handler")
        self._handlers[op] = handler

    async def start(self) -> None:
        self._server = await asyncio.start_unix_server(self._serve, path=str(self.path))

    async def close(self) -> None:
        if self._server is not None:
            self._server.close()
            await self._server.wait_closed()
        for task in list(self._tasks):
            task.cancel()
        with contextlib.suppress(FileNotFoundError):
            self.path.unlink()

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        assert task is not None
        self._tasks.add(task)
        try:
            while True:
                op, unit, n = _HEADER.unpack(await reader.readexactly(_HEADER.size))
                payload = await reader.readexactly(n) if n else b""
                reply = self._dispatch(op, unit, payload)
                if reply is not None:
                    writer.write(reply)
        except (asyncio.IncompleteReadError, ConnectionError):
            pass  # the VM stopped: a reset, a power cut or a soft reboot
        finally:
            self._tasks.discard(task)
            writer.close()

    def _dispatch(self, op: int, unit: int, payload: bytes) -> bytes | None:
        handler = self._handlers.get(op)
        if handler is None:
            self._log.error("peripheral call with unknown op %s", _name(op))
            return _HEADER.pack(errno.ENOSYS, 0, 0)
        try:
            result = handler(unit, payload)
        except RpcError as exc:
            return _HEADER.pack(exc.code, 0, 0)
        except Exception as exc:  # noqa: BLE001 - a bug on this side: the VM sees EIO, the test the error
            self._log.exception("peripheral call %s(unit=%d) failed", _name(op), unit)
            self.errors.append(exc)
            return _HEADER.pack(errno.EIO, 0, 0)
        if result is None:
            return None
        return _HEADER.pack(0, 0, len(result)) + result


def _name(op: int) -> str:
    return Op(op).name if op in Op._value2member_map_ else str(op)
