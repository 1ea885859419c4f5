# Noise metering on the node: A/C/Z-weighted levels from an I2S MEMS microphone (docs/noise.md).
from noise.meter import NoiseMeter, calibration_offset, open_i2s
