"""The virtual BLE radio joining emulated boards (``board/bluetooth.py``) and the gateway's bleak backend."""

from gonggi_emu.radio.server import RadioError, Timing, VirtualRadio, rssi_at

__all__ = ["RadioError", "Timing", "VirtualRadio", "rssi_at"]
