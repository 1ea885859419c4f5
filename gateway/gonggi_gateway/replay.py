"""Exact replay state of one (node, boot): which sequence numbers the gateway already has.

A low-water mark (every seq below it is taken) plus the received seqs above it as sorted,
disjoint, non-adjacent inclusive ranges. A node sends mostly consecutive seqs, so the ranges stay
few: one per gap left by packets still in flight or dropped by the node's full ring buffer.
No assumption about the first seq of a boot is needed. If more than ``MAX_RANGES`` gaps pile up,
the lowest gap is given up (treated as received): bounded storage for a misbehaving node, at the
price of answering a packet that old as a duplicate.
"""

from __future__ import annotations

import bisect
import struct
from dataclasses import dataclass, field

__all__ = ["MAX_RANGES", "SeqSet"]

MAX_RANGES = 1024


@dataclass
class SeqSet:
    low: int = 0
    starts: list[int] = field(default_factory=list)
    ends: list[int] = field(default_factory=list)  # inclusive

    def __contains__(self, seq: int) -> bool:
        if seq < self.low:
            return True
        i = bisect.bisect_right(self.starts, seq) - 1
        return i >= 0 and seq <= self.ends[i]

    def add(self, seq: int) -> bool:
        """Record ``seq``; False if it was already there (a duplicate)."""
        if seq in self:
            return False
        i = bisect.bisect_right(self.starts, seq)  # ranges[i-1] ends before seq, ranges[i] starts after
        joins_left = i > 0 and self.ends[i - 1] == seq - 1
        joins_right = i < len(self.starts) and self.starts[i] == seq + 1
        if joins_left and joins_right:
            self.ends[i - 1] = self.ends[i]
            del self.starts[i], self.ends[i]
        elif joins_left:
            self.ends[i - 1] = seq
        elif joins_right:
            self.starts[i] = seq
        else:
            self.starts.insert(i, seq)
            self.ends.insert(i, seq)
        if self.starts[0] == self.low:
            self.low = self.ends[0] + 1
            del self.starts[0], self.ends[0]
        if len(self.starts) > MAX_RANGES:
            self.low = self.ends[0] + 1
            del self.starts[0], self.ends[0]
        return True

    def ranges_blob(self) -> bytes:
        """The ranges as big-endian u32 pairs: 8 bytes per gap."""
        flat = [v for pair in zip(self.starts, self.ends) for v in pair]
        return struct.pack(f">{len(flat)}I", *flat)

    @classmethod
    def from_row(cls, low: int, blob: bytes) -> SeqSet:
        flat = struct.unpack(f">{len(blob) // 4}I", blob)
        return cls(low, list(flat[0::2]), list(flat[1::2]))
