# The serial link to the gateway: framed messages on a UART (the data UART, not the REPL's).
# A link moves frames; it knows nothing of packets or acks (node.py does), so the BLE link
# implements the same three members: send(), run(), and the `up` flag.
import asyncio

import framing

_RX_CHUNK = 64


class SerialLink:
    def __init__(self, uart, max_frame=1100):
        self._uart = uart
        self._enc = framing.Encoder(2 * max_frame + 2)
        self._dec = framing.Decoder(max_frame)
        self._rx = bytearray(_RX_CHUNK)
        self._rxmv = memoryview(self._rx)
        self.up = True  # a cable is always "connected"; acks tell whether a gateway listens

    @property
    def errors(self):
        return self._dec.errors

    def send(self, ftype, *parts):
        self._uart.write(self._enc.frame(ftype, *parts))

    async def run(self, on_frame):
        # Deliver every valid received frame to on_frame(memoryview: type byte + body).
        reader = asyncio.StreamReader(self._uart)
        dec = self._dec
        while True:
            n = await reader.readinto(self._rxmv)
            if not n:
                await asyncio.sleep_ms(10)
                continue
            for i in range(n):
                m = dec.feed_byte(self._rx[i])
                if m:
                    on_frame(dec.mv[:m])
