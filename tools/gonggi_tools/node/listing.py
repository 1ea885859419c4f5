"""``gonggi node list``: the boards attached, as mpremote's ``connect list`` sees them, and the
emulated boards running on this machine (ptys, which no USB listing shows)."""

from __future__ import annotations

from dataclasses import dataclass

from serial.tools import list_ports

from gonggi_emu.announce import announced_boards

__all__ = ["AttachedBoard", "attached_boards", "attached_ports"]

# USB-serial chips on ESP32 boards, and the ESP32-S2/S3/C3's own USB.
_CHIPS = {0x10C4: "CP210x", 0x1A86: "CH34x", 0x0403: "FTDI", 0x303A: "Espressif USB"}


@dataclass(frozen=True)
class AttachedBoard:
    port: str
    kind: str  # "usb" | "emulated"
    description: str
    data_port: str = ""  # known for emulated boards: their UART1


def attached_boards() -> list[AttachedBoard]:
    found = []
    for p in sorted(list_ports.comports(), key=lambda p: p.device):
        if p.vid is None:
            continue  # a built-in UART (ttyS*), never a board's USB
        chip = _CHIPS.get(p.vid, "")
        parts = [p.description if p.description and p.description != "n/a" else "", chip,
                 f"{p.vid:04x}:{p.pid:04x}", f"serial {p.serial_number}" if p.serial_number else ""]
        found.append(AttachedBoard(p.device, "usb", ", ".join(x for x in parts if x)))
    for b in announced_boards():
        found.append(AttachedBoard(b.repl, "emulated", f"emulated ESP32 {b.uid}, flash {b.flash}", b.uarts.get(1, "")))
    return found


def attached_ports() -> list[str]:
    return [b.port for b in attached_boards()]
