"""The participant sketch: HyperLogLog over user ids, sharded the way rollup rows are.

A cell's sketch has ``M`` = 4096 one-byte registers, split into 16 shard slices of 256 (one
per rollup shard row, so no row is hot); a user's 64-bit BLAKE2b hash picks the shard (top
4 bits), the register in the slice (next 8) and the register value (leading zeros of the
rest, plus one). Slices merge by bytewise max, also inside PostgreSQL. Estimates use
Ertl's improved estimator (2017) with linear counting when sparse: relative standard
error 1.04 / sqrt(M) = 1.6 %.
"""

from __future__ import annotations

import hashlib
import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

SHARD_BITS = 4
SHARDS = 1 << SHARD_BITS
SLICE_BITS = 8
SLICE_REGISTERS = 1 << SLICE_BITS
"""Registers (bytes) per shard row."""
P = SHARD_BITS + SLICE_BITS
M = 1 << P
"""Registers per cell sketch: 4096."""
Q = 64 - P
"""Hash bits left for the register value: values are 1..Q+1 (0 = empty)."""
RELATIVE_STANDARD_ERROR = 1.04 / math.sqrt(M)
EMPTY_SLICE = bytes(SLICE_REGISTERS)


@dataclass(frozen=True)
class UserHash:
    """Where a user lands: shard row, register in the shard's slice, register value."""

    shard: int
    register: int
    rho: int

    @classmethod
    def of(cls, user_id: str) -> UserHash:
        h = int.from_bytes(hashlib.blake2b(user_id.encode(), digest_size=8).digest(), "big")
        rest = h & ((1 << Q) - 1)
        return cls(shard=h >> (64 - SHARD_BITS),
                   register=(h >> Q) & (SLICE_REGISTERS - 1),
                   rho=Q - rest.bit_length() + 1)


def slice_of(users: Iterable[str]) -> bytes:
    """The sketch slice holding ``users`` (all of one shard)."""
    registers = bytearray(SLICE_REGISTERS)
    for user in users:
        u = UserHash.of(user)
        registers[u.register] = max(registers[u.register], u.rho)
    return bytes(registers)


_LANE_HIGH = int.from_bytes(b"\x80" * SLICE_REGISTERS, "big")


def merge_max(a: int, b: int) -> int:
    """Register-wise max of two slices packed as big integers (one byte per register).

    SWAR: in each byte, (a | 0x80) - b keeps its high bit exactly when a >= b (values are
    below 128, so no byte borrows from its neighbour); that bit, spread to 0xFF, selects a.
    About 30 times faster than a Python loop over the 256 bytes.
    """
    ge = (((a | _LANE_HIGH) - b) & _LANE_HIGH) >> 7
    mask = ge * 0xFF
    return (a & mask) | (b & ~mask)


class Sketch:
    """A cell sketch under construction: the union of slices, shard by shard."""

    __slots__ = ("slices",)

    def __init__(self) -> None:
        self.slices: dict[int, int] = {}

    def add_slice(self, shard: int, registers: bytes) -> None:
        packed = int.from_bytes(registers, "big")
        current = self.slices.get(shard)
        self.slices[shard] = packed if current is None else merge_max(current, packed)

    def update(self, other: Sketch) -> None:
        for shard, packed in other.slices.items():
            current = self.slices.get(shard)
            self.slices[shard] = packed if current is None else merge_max(current, packed)

    def histogram(self) -> list[int]:
        """C[k]: how many of the m registers hold value k, k = 0..Q+1."""
        raw = b"".join(packed.to_bytes(SLICE_REGISTERS, "big")
                       for packed in self.slices.values())
        counts = [raw.count(k) for k in range(Q + 2)]
        counts[0] += (SHARDS - len(self.slices)) * SLICE_REGISTERS
        return counts

    def estimate(self) -> int:
        return estimate(self.histogram())


def _sigma(x: float) -> float:
    if x == 1.0:
        return math.inf
    y, z = 1.0, x
    while True:
        x *= x
        z_old = z
        z += x * y
        y += y
        if z == z_old:
            return z


def _tau(x: float) -> float:
    if x == 0.0 or x == 1.0:
        return 0.0
    y, z = 1.0, 1.0 - x
    while True:
        x = math.sqrt(x)
        z_old = z
        y *= 0.5
        z -= (1.0 - x) ** 2 * y
        if z == z_old:
            return z / 3


LINEAR_COUNTING_MAX = 2 * M
"""Below this, linear counting (from the empty registers alone) is the more accurate
estimate: its relative error sqrt(m (e^t - t - 1)) / n, t = n/m, is under 1.04/sqrt(m) up to
about n = 2m. It is also exact-or-low for small counts: with no two users in one register
it gives n + n^2/2m + ..., which rounds to n below n = 64."""


def estimate(counts: Sequence[int]) -> int:
    """Distinct users in a sketch with histogram ``counts``: linear counting while the
    sketch is sparse, else Ertl's improved raw estimator; rounded."""
    m = sum(counts)
    if counts[0] == m:
        return 0
    if counts[0]:
        linear = m * math.log(m / counts[0])
        if linear <= LINEAR_COUNTING_MAX:
            return round(linear)
    z = m * _tau(1.0 - counts[Q + 1] / m)
    for k in range(Q, 0, -1):
        z = 0.5 * (z + counts[k])
    z += m * _sigma(counts[0] / m)
    return round(m * m / (2 * math.log(2)) / z)
