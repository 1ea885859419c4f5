# Start-up of the emulated board, in the role of the ESP32's frozen _boot.py: mount the flash at
# "/", then run boot.py and main.py in __main__ as the ESP32 port's main loop does. The VM runs
# this with -i, so the REPL follows, sharing __main__ with boot.py and main.py.
#
# $GONGGI_FLASH is the flash directory; $GONGGI_BOARD the compiled board-support modules
# (gonggi_emu.board_image), all loaded here as the ESP32's built-in modules. $GONGGI_RAW=1 means
# a soft reset from the raw REPL: boot.py runs, main.py does not (pyexec_mode_kind).
# $GONGGI_CALIBRATE=1 only reports the free heap once the built-ins are loaded (gonggi_emu.heap).


def _start():
    import os
    import sys

    flash = os.getenv("GONGGI_FLASH")
    image = os.getenv("GONGGI_BOARD")

    # machine, bluetooth & co are built into the ESP32 firmware: load them all now, from the
    # image, before the flash replaces the host's filesystem. The heap the supervisor sized to
    # leave what an ESP32 leaves (gonggi_emu.heap) is then what boot.py and main.py find.
    for name in os.listdir(image):
        if name.endswith(".mpy"):
            __import__(name[:-4])

    class Flash(os.VfsPosix):
        # The flash directory as the root filesystem. Natively a VfsPosix (so imports and file
        # access allocate nothing extra); listings carry sizes as littlefs gives them on a board:
        # (name, type, inode, size).
        def ilistdir(self, path):
            base = path.rstrip("/") + "/" if path else ""
            for entry in super().ilistdir(path):
                size = self.stat(base + entry[0])[6] if entry[1] == 0x8000 else 0
                yield (entry[0], entry[1], 0, size)

    import _powers

    Flash = _powers.flash(Flash)  # a smaller flash, if the supervisor says so

    # Host paths on MICROPYPATH become board paths; anything outside the flash is not on a board.
    # The VM put this file's directory first: a board has "" (the current directory) there.
    path = [""]
    for p in sys.path:
        if p.startswith(flash + "/"):
            p = p[len(flash) :]
        elif p != ".frozen":
            continue
        if p not in path:
            path.append(p)
    sys.path[:] = path
    os.umount("/")
    os.mount(Flash(flash), "/")
    os.chdir("/")
    if os.getenv("GONGGI_CALIBRATE"):
        import gc

        gc.collect()
        print("heap free", gc.mem_free())
        raise SystemExit
    _powers.pretend()  # another MicroPython version, if the supervisor says so
    return os.getenv("GONGGI_RAW") != "1"


def _run(name):
    # True to go on booting; False after a sys.exit()/soft_reset() (the ESP32 then soft-resets).
    import os
    import sys

    try:
        os.stat(name)
    except OSError:
        return True
    try:
        execfile(name)
    except SystemExit:
        import _emu

        _emu.call(_emu.OP_RESET, 1)
        return False
    except BaseException as e:  # a board prints any uncaught exception, then goes on
        import io

        # The traceback a board prints: without this start-up file's own frame.
        buf = io.StringIO()
        sys.print_exception(e, buf)
        for line in buf.getvalue().split("\n"):
            if line and "_boot.py" not in line:
                print(line)
    return True


_friendly = _start()
if _run("boot.py") and _friendly:
    _run("main.py")
del _start, _run, _friendly
