# Persistent boot counter: (boot, seq) names every packet uniquely across reboots.
# Written to a temporary file and renamed: the rename is atomic on LittleFS and POSIX, so a
# power cut leaves either the old or the new count, never a torn one.
import os


def next_boot(path="bootcount"):
    try:
        with open(path) as f:
            n = int(f.read()) + 1
    except (OSError, ValueError):
        n = 1
    tmp = path + ".tmp"
    with open(tmp, "w") as f:
        f.write(str(n))
    os.rename(tmp, path)
    return n
