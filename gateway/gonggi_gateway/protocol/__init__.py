"""The gonggi wire protocol v1 (docs/protocol.md): framing, COSE_Mac0, SenML-CBOR, messages."""

from gonggi_gateway.protocol.cose import Mac0, mac0_decode, mac0_encode, mac0_verify
from gonggi_gateway.protocol.framing import Frame, FrameDecoder, FrameType, encode_frame
from gonggi_gateway.protocol.messages import (
    Ack,
    Control,
    DataPacket,
    Hello,
    KeyLookup,
    decode_control,
    decode_data,
    decode_hello,
    encode_control,
    encode_hello,
    open_mac0,
)
from gonggi_gateway.protocol.senml import Record, decode_pack, encode_pack

__all__ = [
    "Ack",
    "Control",
    "DataPacket",
    "Frame",
    "FrameDecoder",
    "FrameType",
    "Hello",
    "KeyLookup",
    "Mac0",
    "Record",
    "decode_control",
    "decode_data",
    "decode_hello",
    "decode_pack",
    "encode_control",
    "encode_frame",
    "encode_hello",
    "encode_pack",
    "mac0_decode",
    "mac0_encode",
    "mac0_verify",
    "open_mac0",
]
