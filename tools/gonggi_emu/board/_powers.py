# What the supervisor can make of the emulated board beyond a stock ESP32, for the field tools'
# tests (EmulatedBoard.flash_size, .pretend_micropython). _boot.py applies both at start-up;
# with neither set, nothing changes.
import os
import sys


class _Capped:
    # A file open for writing on a small flash: ENOSPC once the flash is full, as littlefs raises.
    def __init__(self, f, room):
        self._f = f
        self._room = room

    def write(self, buf):
        if len(buf) > self._room:
            raise OSError(28)  # ENOSPC
        self._room -= len(buf)
        return self._f.write(buf)

    def __getattr__(self, name):
        return getattr(self._f, name)

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self._f.close()


def flash(base):
    # $GONGGI_FLASH_SIZE bytes of flash in 512-byte blocks: statvfs and ENOSPC as littlefs gives
    # them. New data ("w", "a") counts; a rewrite in place ("r+") does not.
    cap = int(os.getenv("GONGGI_FLASH_SIZE") or 0)
    if not cap:
        return base

    class SmallFlash(base):
        def used(self, path=""):
            n = 0
            for e in self.ilistdir(path):
                p = path + "/" + e[0] if path else e[0]
                n += self.used(p) if e[1] == 0x4000 else (e[3] + 511) // 512 * 512
            return n

        def statvfs(self, path):
            free = max(0, cap - self.used()) // 512
            return (512, 512, cap // 512, free, free, 0, 0, 0, 0, 255)

        def open(self, path, mode="r"):
            f = super().open(path, mode)
            if "w" in mode or "a" in mode:
                return _Capped(f, max(0, cap - self.used()))
            return f

    return SmallFlash


class _Implementation:
    pass


class _Sys:
    # The real sys with another sys.implementation.
    def __getattr__(self, name):
        return getattr(sys, name)


def pretend():
    # $GONGGI_MICROPYTHON = "1.19.1/10246": `import sys` then finds a sys whose implementation
    # reports that version and .mpy ABI (sys.implementation._mpy).
    spec = os.getenv("GONGGI_MICROPYTHON")
    if not spec:
        return
    version, mpy = spec.split("/")
    impl = _Implementation()
    impl.name = "micropython"
    impl.version = tuple(int(v) for v in version.split(".")) + ("",)
    impl._mpy = int(mpy)
    impl._machine = sys.implementation._machine
    fake = _Sys()
    fake.implementation = impl
    sys.modules["sys"] = fake
