"""The ``gonggi`` command line: thin commands over the gateway, the emulator and the field tools."""
