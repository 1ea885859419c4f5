# A file wrapper for power-cut tests: the write number `cut_at_write` stores only its first
# `keep` bytes and then "loses power" (raises PowerCut), as a flash write interrupted mid-way.


class PowerCut(Exception):
    pass


class TornFile:
    def __init__(self, f, cut_at_write, keep):
        self._f = f
        self._writes = 0
        self._cut = cut_at_write
        self._keep = keep

    def write(self, data):
        self._writes += 1
        if self._writes == self._cut:
            self._f.write(bytes(data)[:self._keep])
            self._f.flush()
            self._f.close()
            raise PowerCut()
        return self._f.write(data)

    def __getattr__(self, name):
        return getattr(self._f, name)
