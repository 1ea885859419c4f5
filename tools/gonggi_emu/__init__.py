"""The emulated gonggi board: the real MicroPython VM with emulated peripherals and sensors."""
