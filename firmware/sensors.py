# Builds the sensors of config.json: buses shared between drivers, one driver per entry.
# A sensor that cannot start (unplugged, wrong address) becomes an Absent placeholder that keeps
# reporting MISSING and retries, so one dead sensor never stops the node.
import sys
from time import ticks_diff

import machine
from sensor import Sensor, MISSING

_RETRY_MS = 30000


def uart_for(spec, baudrate):
    # Pins only when configured: each board has default pins for its UARTs.
    pins = {}
    if "tx" in spec:
        pins["tx"] = spec["tx"]
    if "rx" in spec:
        pins["rx"] = spec["rx"]
    return machine.UART(spec.get("uart", 1), baudrate=baudrate, timeout=0, **pins)


class Buses:
    def __init__(self):
        self._i2c = {}

    def i2c(self, spec):
        bus = spec.get("i2c", 0)
        if bus not in self._i2c:
            self._i2c[bus] = machine.I2C(bus, scl=machine.Pin(spec.get("scl", 22)),
                                         sda=machine.Pin(spec.get("sda", 21)),
                                         freq=spec.get("freq", 100000))
        return self._i2c[bus]

    def uart(self, spec, baudrate):
        return uart_for(spec, baudrate)

    def adc(self, spec):
        adc = machine.ADC(machine.Pin(spec["pin"]))
        adc.atten(machine.ADC.ATTN_11DB)
        return adc


def _battery(spec, buses):
    from drivers.battery import Battery
    return Battery(buses.adc(spec), int(spec.get("ratio", 2.0) * 1000))


def _pms(spec, buses):
    from drivers.pms5003 import PMS5003
    return PMS5003(buses.uart(spec, 9600), passive=spec.get("passive", False))


def _sds011(spec, buses):
    from drivers.sds011 import SDS011
    return SDS011(buses.uart(spec, 9600), query=spec.get("query", False))


def _sps30(spec, buses):
    from drivers.sps30 import SPS30
    return SPS30(buses.i2c(spec), spec.get("address", 0x69), clean_interval_s=spec.get("clean_interval_s"))


def _scd4x(spec, buses):
    from drivers.scd4x import SCD4x
    return SCD4x(buses.i2c(spec), spec.get("address", 0x62), temp_offset_c=spec.get("temp_offset_c", 4.0),
                 altitude_m=spec.get("altitude_m", 0), asc=spec.get("asc", True),
                 single_shot=spec.get("single_shot", False))


def _bme280(spec, buses):
    from drivers.bme280 import BME280
    return BME280(buses.i2c(spec), spec.get("address", 0x76))


def _sgp40(spec, buses):
    from drivers.sgp40 import SGP40
    return SGP40(buses.i2c(spec), spec.get("address", 0x59))


def _noise(spec, buses):
    from noise.meter import NoiseMeter, open_i2s
    rate = spec.get("rate", 48000)
    block = spec.get("block", 256)
    i2s = open_i2s(spec.get("sck", 14), spec.get("ws", 15), spec.get("sd", 32), rate, block, spec.get("i2s", 0))
    return NoiseMeter(i2s, rate, spec.get("mic", "inmp441"), spec.get("weighting", "A"),
                      spec.get("equalise", False), spec.get("offset_cdb", 0), block, spec.get("floor_cdb"))


# driver name -> builder(spec, buses); drivers are imported only when configured.
BUILDERS = {
    "battery": _battery,
    "bme280": _bme280,
    "noise": _noise,
    "pms5003": _pms,
    "pms7003": _pms,
    "scd4x": _scd4x,
    "sds011": _sds011,
    "sgp40": _sgp40,
    "sps30": _sps30,
}


class Absent(Sensor):
    def __init__(self, spec, buses, error):
        self.name = spec.get("name", spec["driver"])
        self.channels = ()
        self.error = error
        self._spec = spec
        self._buses = buses
        self._retry_at = None
        self.replacement = None

    def poll(self, now_ms, out, off):
        # Retry the driver's constructor now and then; the node swaps in a working sensor.
        if self._retry_at is None or ticks_diff(now_ms, self._retry_at) >= _RETRY_MS:
            self._retry_at = now_ms
            try:
                self.replacement = BUILDERS[self._spec["driver"]](self._spec, self._buses)
            except (OSError, ValueError) as e:
                self.error = e
        return MISSING


def _duty(s, spec):
    # A sensor with a warm-up (PM: laser and fan) is woken warmup + window before each report
    # and slept after it; the datasheets' 30 s is a floor, never shortened by config.
    if "warmup_s" in spec:
        s.warmup_ms = max(s.warmup_ms, spec["warmup_s"] * 1000)
    if "window_s" in spec:
        s.window_ms = spec["window_s"] * 1000


def build(specs, buses=None):
    buses = buses or Buses()
    out = []
    for spec in specs:
        builder = BUILDERS.get(spec["driver"])
        if builder is None:
            raise ValueError("config.json: unknown sensor driver " + repr(spec["driver"])
                             + "; known: " + ", ".join(sorted(BUILDERS)))
        try:
            s = builder(spec, buses)
        except (OSError, ValueError) as e:
            sys.print_exception(e)
            s = Absent(spec, buses, e)
        if "name" in spec:
            s.name = spec["name"]
        _duty(s, spec)
        out.append(s)
    return out
