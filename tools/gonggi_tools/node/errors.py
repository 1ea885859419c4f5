"""What can go wrong at the end of a USB cable, said so that a field tech knows what to do next.

Every error has a one-line ``message`` (what happened) and a ``hint`` (what to do); the CLI
prints both and exits with ``exit_code``.
"""

from __future__ import annotations

__all__ = [
    "BoardLost",
    "BoardError",
    "FlashFull",
    "IncompatibleMicroPython",
    "NoMicroPython",
    "NoPacket",
    "NodeToolError",
    "PortBusy",
    "PortNotFound",
    "PortPermission",
    "PortVanished",
    "SiteError",
    "UnknownSensor",
]


class NodeToolError(Exception):
    """Root of the field tools' errors."""

    exit_code = 1
    hint = ""

    def __init__(self, message: str, hint: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        if hint is not None:
            self.hint = hint


class SiteError(NodeToolError):
    """A site file, registry or option that cannot be used; names the file and the key."""

    exit_code = 2


class PortNotFound(NodeToolError):
    hint = "check the cable and the port name: `gonggi node list` shows the boards attached"


class PortPermission(NodeToolError):
    hint = "add yourself to the port's group (`sudo usermod -aG dialout $USER`), then log out and in"


class PortBusy(NodeToolError):
    hint = "close the other program (screen, minicom, mpremote, a gateway or `gonggi node monitor`), then retry"


class NoMicroPython(NodeToolError):
    hint = (
        "is MicroPython on the board? A new ESP32 needs it first: see the README, "
        "'MicroPython on a new ESP32' (esptool erase_flash, write_flash 0x1000)"
    )


class IncompatibleMicroPython(NodeToolError):
    hint = "put a current MicroPython on the board with esptool (README, 'MicroPython on a new ESP32')"


class FlashFull(NodeToolError):
    hint = "free space on the board (`mpremote fs ls`, `mpremote fs rm`), or erase its flash and start over"


class UnknownSensor(NodeToolError):
    hint = "check the sensor's wiring (SDA, SCL, 3V3, GND) and its address, or remove it from the site file"


class BoardLost(NodeToolError):
    hint = "reconnect the board and run the same command again: it resumes where it stopped"


class PortVanished(NodeToolError):
    """A board with native USB (ttyACM) left the bus at a reset and did not enumerate again."""

    hint = (
        "check the USB cable (a data cable, firmly in; no hub that drops devices), that the board is "
        "not held in its boot mode (BOOT / IO0 pressed or strapped low), and `ls /dev/ttyACM*`: if the "
        "port came back under another name, pass that, or its /dev/serial/by-id/ link, as --port"
    )


class BoardError(NodeToolError):
    """The board answered, but with an error we did not expect; the message carries its traceback."""


class NoPacket(NodeToolError):
    hint = "check the data UART wiring (node TX to adapter RX, GND) and `gonggi node check`"
