"""The emulated board end to end: the real MicroPython VM running main.py from a flash directory,
with the ESP32 `machine` API backed by bench devices. Each test reads the board's console."""

from __future__ import annotations

import asyncio
import re
import textwrap
from collections.abc import Awaitable, Callable, Mapping
from pathlib import Path
from typing import Any

import pytest
import serial

from gonggi_emu import devices
from gonggi_emu.bench import Bench
from gonggi_emu.console import ExpectTimeout
from gonggi_emu.devices.base import I2CTarget, I2SSource, UARTPeer
from gonggi_emu.scenario import Fault, Scenario
from gonggi_emu.supervisor import EmulatedBoard


class Registers(I2CTarget):
    """A register file at 0x40: a write sets the pointer and stores what follows it."""

    kind = "registers"
    address = 0x40

    def __init__(self, scenario: Scenario, name: str | None = None) -> None:
        super().__init__(scenario, name)
        self.mem = bytearray(range(256))
        self.pointer = 0

    def i2c_write(self, data: bytes, now: float) -> bool:
        if "nack" in self.fault(now):
            return False
        if data:
            self.pointer = data[0]
            self.mem[self.pointer : self.pointer + len(data) - 1] = data[1:]
        return True

    def i2c_read(self, n: int, now: float) -> bytes | None:
        if "nack" in self.fault(now):
            return None
        out = bytes(self.mem[self.pointer : self.pointer + n])
        self.pointer += n
        return out


class Pinger(UARTPeer):
    """Answers each "ping" line with a "pong" line."""

    kind = "pinger"
    baudrate = 9600

    def __init__(self, scenario: Scenario, name: str | None = None) -> None:
        super().__init__(scenario, name)
        self.line = b""
        self.out = b""

    def received(self, data: bytes, now: float) -> None:
        self.line += data
        while b"\n" in self.line:
            line, self.line = self.line.split(b"\n", 1)
            if line == b"ping":
                self.out += b"pong\n"

    def transmit(self, now: float) -> bytes:
        out, self.out = self.out, b""
        return out


class Ramp(I2SSource):
    """16-bit samples 0, 1, 2, ... (little-endian)."""

    kind = "ramp"

    def __init__(self, scenario: Scenario, name: str | None = None) -> None:
        super().__init__(scenario, name)
        self.next = 0

    def i2s_read(self, nbytes: int, bits: int, rate: int) -> bytes:
        count = nbytes // (bits // 8)
        out = b"".join((self.next + i).to_bytes(bits // 8, "little") for i in range(count))
        self.next += count
        return out


@pytest.fixture(autouse=True)
def test_devices(monkeypatch: pytest.MonkeyPatch) -> None:
    for cls in (Registers, Pinger, Ramp):
        monkeypatch.setitem(devices.REGISTRY, cls.kind, f"{__name__}:{cls.__name__}")


def on_board(
    tmp_path: Path,
    main: str,
    body: Callable[[EmulatedBoard], Awaitable[None]],
    bench: Mapping[str, Any] | None = None,
    scenario: Scenario | None = None,
) -> None:
    """Flash main.py, power the board up, run ``body`` against it."""
    flash = tmp_path / "flash"
    flash.mkdir(exist_ok=True)
    (flash / "main.py").write_text(textwrap.dedent(main))

    async def run() -> None:
        async with EmulatedBoard(
            flash, Bench.from_dict(bench or {}), scenario or Scenario(), tmp_path / "log"
        ) as board:
            await body(board)

    asyncio.run(run())


BATTERY = {"device": [{"kind": "battery", "bus": "adc35"}]}


def test_adc_reads_the_battery_through_the_esp32_conversion(tmp_path: Path) -> None:
    main = """
        import machine
        adc = machine.ADC(machine.Pin(35), atten=machine.ADC.ATTN_11DB)
        print("battery", adc.read(), adc.read_u16(), adc.read_uv())
    """

    async def body(board: EmulatedBoard) -> None:
        # 3.9 V through a 2:1 divider: 1.95 V of 3.9 V full scale at 11 dB is code 2048.
        await board.expect("battery 2048 32776 1950000\r\n")

    on_board(tmp_path, main, body, BATTERY, Scenario.from_dict({"values": {"battery_v": 3.9}}))


def test_i2c_reaches_the_target_and_a_nack_raises_enodev(tmp_path: Path) -> None:
    main = """
        import machine
        i2c = machine.I2C(0, scl=machine.Pin(18), sda=machine.Pin(19), freq=100000)
        print("scan", i2c.scan())
        i2c.writeto_mem(0x40, 0x10, b"\\xbe\\xef")
        buf = bytearray(3)
        i2c.readfrom_mem_into(0x40, 0x10, buf)
        print("mem", bytes(buf).hex(), i2c.readfrom(0x40, 1).hex(), i2c.writeto(0x40, b"\\x20"))
        print("addr16", i2c.readfrom_mem(0x40, 0x0011, 2, addrsize=16).hex())
        try:
            i2c.readfrom(0x41, 2)
        except OSError as e:
            print("absent", e.errno)
    """

    async def body(board: EmulatedBoard) -> None:
        await board.expect("scan [64]\r\n")
        await board.expect("mem beef12 13 1\r\n")
        # A 16-bit register address goes out high byte first: this target takes 0x00 as its
        # pointer and stores 0x11 there.
        await board.expect("addr16 1101\r\n")
        await board.expect("absent 19\r\n")
        await board.expect(">>> ")
        board.scenario.inject(Fault("regs", "nack", start=board.now()))
        board.write(b"i2c.readfrom_mem(0x40, 0, 1)\r")
        await board.expect("OSError: [Errno 19] ENODEV")
        board.write(b"i2c.scan()\r")
        await board.expect("[]\r\n")

    on_board(tmp_path, main, body, {"device": [{"kind": "registers", "name": "regs", "bus": "i2c0"}]})


def test_a_uart_device_answers_at_its_baud_rate(tmp_path: Path) -> None:
    main = """
        import machine
        uart = machine.UART(2, 9600, tx=17, rx=16, timeout=2000)
        uart.write(b"ping\\n")
        print("reply", uart.readline(), uart.any())
    """

    async def body(board: EmulatedBoard) -> None:
        await board.expect("reply b'pong\\n' 0\r\n")
        assert 2 not in board.uart_paths  # the pinger has UART2; UART1 stays free for the link
        assert 1 in board.uart_paths

    on_board(tmp_path, main, body, {"device": [{"kind": "pinger", "bus": "uart2"}]})


def test_the_free_uart_is_a_port_the_gateway_opens(tmp_path: Path) -> None:
    main = """
        import asyncio, machine
        uart = machine.UART(1, 115200)
        async def echo():
            reader, writer = asyncio.StreamReader(uart), asyncio.StreamWriter(uart, {})
            print("echo ready")
            while True:
                line = await reader.readline()
                writer.write(b"echo " + line)
                await writer.drain()
        asyncio.run(echo())
    """

    async def body(board: EmulatedBoard) -> None:
        await board.expect("echo ready")
        with serial.Serial(board.uart_paths[1], 115200, timeout=10) as gateway:
            gateway.write(b"\x00\xff binary\r\n")
            assert await asyncio.to_thread(gateway.read_until, b"\n") == b"echo \x00\xff binary\r\n"

    on_board(tmp_path, main, body)


def test_i2s_reads_the_microphone_in_slot_order(tmp_path: Path) -> None:
    main = """
        from machine import I2S, Pin
        mic = I2S(0, sck=Pin(14), ws=Pin(15), sd=Pin(32), mode=I2S.RX, bits=16,
                  format=I2S.STEREO, rate=8000, ibuf=2048)
        buf = bytearray(8)
        print("read", mic.readinto(buf), bytes(buf).hex())
    """

    async def body(board: EmulatedBoard) -> None:
        # Left slot: the microphone's samples 0 and 1; right slot: nothing.
        await board.expect("read 8 0000000001000000\r\n")

    on_board(tmp_path, main, body, {"device": [{"kind": "ramp", "bus": "i2s0"}]})


def test_the_watchdog_resets_a_board_nobody_feeds(tmp_path: Path) -> None:
    main = """
        import machine
        print("cause", machine.reset_cause())
        if machine.reset_cause() != machine.WDT_RESET:
            machine.WDT(timeout=200).feed()
            print("fed once")
    """

    async def body(board: EmulatedBoard) -> None:
        await board.expect("cause 1\r\n")
        await board.expect("fed once")
        await board.expect("task_wdt: Task watchdog got triggered")
        await board.expect("cause 3\r\n")
        assert (board.reset_count, board.reset_cause) == (1, 3)

    on_board(tmp_path, main, body)


def test_resets_rerun_main_and_report_their_cause(tmp_path: Path) -> None:
    main = """
        import machine
        print("cause", machine.reset_cause())
    """

    async def body(board: EmulatedBoard) -> None:
        ports = (board.repl_path, board.uart_paths)
        await board.expect("rst:0x1 (POWERON_RESET)")
        await board.expect("cause 1\r\n")
        await board.expect(">>> ")
        board.write(b"machine.reset()\r")
        await board.expect("rst:0xc (SW_CPU_RESET)")
        await board.expect("cause 2\r\n")
        await board.expect(">>> ")
        board.write(b"\x04")  # Ctrl-D at the REPL: soft reset
        await board.expect("MPY: soft reboot\r\n")
        await board.expect("cause 5\r\n")
        await board.expect(">>> ")
        board.write(b"import sys; sys.exit()\r")
        await board.expect("cause 5\r\n")
        await board.reset()  # the EN button
        await board.expect("rst:0x1 (POWERON_RESET)")
        await board.expect("cause 1\r\n")
        assert board.reset_count == 4
        assert (board.repl_path, board.uart_paths) == ports  # like a USB-serial chip's device

    on_board(tmp_path, main, body)


def test_deep_sleep_keeps_rtc_memory_and_a_power_cut_clears_it(tmp_path: Path) -> None:
    main = """
        import machine
        rtc = machine.RTC()
        print("cause", machine.reset_cause(), "wake", machine.wake_reason(), rtc.memory())
        if machine.reset_cause() == machine.PWRON_RESET:
            rtc.memory(b"slept")
            machine.deepsleep(50)
    """

    async def body(board: EmulatedBoard) -> None:
        await board.expect("cause 1 wake 0 b''\r\n")
        await board.expect("rst:0x5 (DEEPSLEEP_RESET)")
        await board.expect("cause 4 wake 4 b'slept'\r\n")
        await board.power_cycle()
        await board.expect("cause 1 wake 0 b''\r\n")

    on_board(tmp_path, main, body)


def test_the_rtc_starts_in_2000_and_keeps_time_across_a_reset(tmp_path: Path) -> None:
    main = """
        import machine
        rtc = machine.RTC()
        print("rtc", rtc.datetime()[:3])
        if machine.reset_cause() == machine.PWRON_RESET:
            rtc.datetime((2026, 11, 25, 2, 12, 0, 0, 0))
            machine.reset()
    """

    async def body(board: EmulatedBoard) -> None:
        await board.expect("rtc (2000, 1, 1)\r\n")
        await board.expect("rtc (2026, 11, 25)\r\n")

    on_board(tmp_path, main, body)


def test_the_flash_directory_is_the_root_filesystem(tmp_path: Path) -> None:
    main = """
        import os
        with open("/data.txt", "w") as f:
            f.write("kept")
        os.mkdir("/lib")
        print("ls", sorted(os.listdir("/")), os.getcwd(), list(os.ilistdir("/"))[0][3] > 0)
        try:
            open("/etc/hostname")
        except OSError as e:
            print("the host is out of reach", e.errno)
    """

    async def body(board: EmulatedBoard) -> None:
        await board.expect("ls ['data.txt', 'lib', 'main.py'] / True\r\n")
        await board.expect("the host is out of reach 2\r\n")
        assert (board.flash_dir / "data.txt").read_text() == "kept"

    on_board(tmp_path, main, body)


def test_the_firmware_finds_the_free_heap_of_an_esp32(tmp_path: Path, mpy) -> None:  # type: ignore[no-untyped-def]
    bare = int(mpy.run("import gc; gc.collect(); print(gc.mem_free())"))
    main = """
        import gc
        gc.collect()
        print("free", gc.mem_free())
    """

    async def body(board: EmulatedBoard) -> None:
        match = await board.expect(re.compile(rb"free (\d+)\r\n"))
        assert abs(int(match[1]) - bare) < 1024

    on_board(tmp_path, main, body)


def test_expect_timeout_shows_the_console_and_the_log(tmp_path: Path) -> None:
    main = 'print("hello from main")\n'

    async def body(board: EmulatedBoard) -> None:
        await board.expect(">>> ")
        with pytest.raises(ExpectTimeout) as caught:
            await board.expect("goodbye", timeout=0.2)
        message = str(caught.value)
        assert "hello from main" in message
        assert str(board.console_log) in message

    on_board(tmp_path, main, body)
