# Runs the node. Ctrl-C at the REPL stops it so a field tech can inspect or reflash.
# gonggi.update exists while `gonggi node flash` switches files from its staging directory to
# their places (docs/field-guide.md): if it was cut off, the flash holds a mix of two firmware
# versions, so stay at the REPL until a re-run of the flash finishes the switch.
import os

try:
    os.stat("gonggi.update")
except OSError:
    import node

    node.main()
else:
    print("gonggi: firmware update incomplete: run gonggi node flash again")
