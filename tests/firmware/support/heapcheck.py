# Heap measurement for "allocates nothing" tests on the VM.
import gc


def allocated(fn):
    # Bytes the heap grew by during a second call of fn(): the first call warms up what the VM
    # sets up once per code path. Locals of fn cost nothing; new module globals would.
    fn()
    gc.collect()
    before = gc.mem_alloc()
    fn()
    return gc.mem_alloc() - before
