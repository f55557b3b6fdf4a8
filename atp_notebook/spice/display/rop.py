"""Raster operations: Spice's ROP descriptors and Windows rop3 codes as bitwise truth tables
applied to whole numpy arrays of 32-bit pixels.

A ROP descriptor (spice.proto ``ropd``) names one operation (PUT, OR, AND, XOR, BLACKNESS,
WHITENESS, INVERS; the first set wins in that order, none means PUT) and which inputs to
invert. Which of INVERS_SRC / INVERS_BRUSH inverts the "source" depends on the draw: fill
and opaque's brush read INVERS_BRUSH, copy and blend read INVERS_SRC; opaque's brush step
treats the freshly copied image as its destination, so INVERS_SRC inverts that
(spice-common ``canvas_base.c`` ``ropd_descriptor_to_rop``). INVERS_RES inverts the result
of PUT/OR/AND/XOR only; BLACKNESS, WHITENESS and INVERS ignore every inversion.

A two-input operation is kept as its 4-bit truth table ``t``: bit ``(s << 1) | d`` of ``t``
is the result bit for source bit ``s`` and destination bit ``d`` (COPY = 0b1100,
NOOP = 0b1010, XOR = 0b0110). A rop3 byte is the same with three inputs: bit
``(p << 2) | (s << 1) | d`` for pattern/brush ``p`` (SRCCOPY 0xCC, PATCOPY 0xF0,
DSTINVERT 0x55). Operations act on all 32 bits of each pixel, X included, as
spice-common's software canvas does.

Example::

    table = ropd_table(RopDescriptor.OP_XOR, source=RopDescriptor.INVERS_SRC)
    apply_rop2(table, src_words, dest_words)        # a new array of result words
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import numpy.typing as npt

from atp_notebook.spice.codecs import _codecs
from atp_notebook.spice.proto.display_wire import Ropd

__all__ = [
    "COPY",
    "NOOP",
    "RopDescriptor",
    "Words",
    "apply_rop2",
    "apply_rop3",
    "ropd_table",
]

Words = npt.NDArray[np.uint32]

COPY = 0b1100
NOOP = 0b1010


#: spice.proto ``flags16 ropd``: the protocol's own flag type, under the name the raster uses
RopDescriptor = Ropd


def _put(s: int, d: int) -> int:
    return s


def _or(s: int, d: int) -> int:
    return s | d


def _and(s: int, d: int) -> int:
    return s & d


def _xor(s: int, d: int) -> int:
    return s ^ d


_OPS: tuple[tuple[RopDescriptor, Callable[[int, int], int]], ...] = (
    (RopDescriptor.OP_PUT, _put),
    (RopDescriptor.OP_OR, _or),
    (RopDescriptor.OP_AND, _and),
    (RopDescriptor.OP_XOR, _xor),
)


def ropd_table(descriptor: int, *, source: RopDescriptor,
               dest: RopDescriptor = RopDescriptor.INVERS_DEST) -> int:
    """The truth table of a ROP descriptor; ``source``/``dest`` name the flag that inverts
    each input for this draw (see the module doc)."""
    inv_s = 1 if descriptor & source else 0
    inv_d = 1 if descriptor & dest else 0
    inv_r = 1 if descriptor & RopDescriptor.INVERS_RES else 0
    for flag, op in _OPS:
        if descriptor & flag:
            table = 0
            for s in (0, 1):
                for d in (0, 1):
                    if op(s ^ inv_s, d ^ inv_d) ^ inv_r:
                        table |= 1 << ((s << 1) | d)
            return table
    if descriptor & RopDescriptor.OP_BLACKNESS:
        return 0
    if descriptor & RopDescriptor.OP_WHITENESS:
        return 0b1111
    if descriptor & RopDescriptor.OP_INVERS:
        return 0b0101
    return COPY


_ONES = np.uint32(0xFFFFFFFF)


def apply_rop2(table: int, s: Words, d: Words) -> Words:
    """The result words of truth table ``table`` on source ``s`` and destination ``d``
    (same shape, or ``s`` broadcastable); for COPY a read-only view of ``s``."""
    table &= 0xF
    if table == 0b0000:
        return np.zeros(d.shape, dtype=np.uint32)
    if table == 0b1111:
        return np.full(d.shape, _ONES, dtype=np.uint32)
    if table == COPY:
        return np.broadcast_to(s, d.shape)  # a read-only view: the writer copies it once
    if table == NOOP:
        return np.array(d, dtype=np.uint32)
    ops: dict[int, Callable[[], Words]] = {
        0b0011: lambda: ~s,
        0b0101: lambda: ~d,
        0b1000: lambda: s & d,
        0b1110: lambda: s | d,
        0b0110: lambda: s ^ d,
        0b1001: lambda: ~(s ^ d),
        0b0100: lambda: s & ~d,
        0b0010: lambda: ~s & d,
        0b1101: lambda: s | ~d,
        0b1011: lambda: ~s | d,
        0b0111: lambda: ~(s & d),
        0b0001: lambda: ~(s | d),
    }
    out = ops[table]()
    return out if out.shape == d.shape else np.array(np.broadcast_to(out, d.shape))


def _word_buffer(a: Words, shape: tuple[int, ...]) -> Words:
    """A contiguous buffer of ``a`` for the C loop: one word when ``a`` is one word
    broadcast (a solid brush), else the full array."""
    if a.size and all(st == 0 for st in a.strides):
        return np.ascontiguousarray(a.reshape(-1)[:1], dtype=np.uint32)
    return np.ascontiguousarray(np.broadcast_to(a, shape), dtype=np.uint32)


def apply_rop3(rop3: int, p: Words, s: Words, d: Words) -> Words:
    """The result words of rop3 byte ``rop3`` on pattern ``p``, source ``s`` and destination
    ``d``: the OR of the minterms whose bit is set. In C (codecs/src/raster.c): eight
    minterms over whole arrays took numpy 7 ms for 1024x768."""
    shape = np.broadcast_shapes(p.shape, s.shape, d.shape)
    out = np.empty(shape, dtype=np.uint32)
    dst = np.ascontiguousarray(np.broadcast_to(d, shape), dtype=np.uint32)
    _codecs.raster_rop3(rop3 & 0xFF, _word_buffer(p, shape).data,
                        _word_buffer(s, shape).data, dst.data, out.data,
                        out.size)
    return out
