"""A receive buffer for tentative parsing: look at bytes, take them only when whole.

Parsers peek at a header, check that the whole message is buffered, then take it; until
then nothing is consumed, so a partial message costs no work and no copy. Consumed bytes
are dropped by advancing an offset and compacted only when they outweigh what is left, so
feeding a large message in many small chunks stays linear (no quadratic copying).
"""

from __future__ import annotations

import struct

from atp_notebook.errors import LocalProtocolError

_U32 = struct.Struct("<I")
_COMPACT_AT = 64 * 1024  # drop consumed bytes once at least this many have piled up


class ReceiveBuffer:
    """Bytes in; whole pieces out, or ``None`` while a piece is still incomplete.

    Example::

        buf = ReceiveBuffer()
        buf.feed(b"\\x05\\x00\\x00")
        buf.peek_u32()          # None: only 3 bytes so far
        buf.feed(b"\\x00hello")
        buf.take(4), buf.take(5)  # (b"\\x05\\x00\\x00\\x00", b"hello")
    """

    __slots__ = ("_data", "_start")

    def __init__(self) -> None:
        self._data = bytearray()
        self._start = 0  # offset of the first unconsumed byte in _data

    def __len__(self) -> int:
        return len(self._data) - self._start

    def __bool__(self) -> bool:
        return len(self._data) > self._start

    def feed(self, data: bytes) -> None:
        if self._start >= _COMPACT_AT and self._start * 2 >= len(self._data):
            del self._data[: self._start]
            self._start = 0
        self._data += data

    def peek(self, n: int, offset: int = 0) -> bytes | None:
        """``n`` bytes at ``offset`` past the unconsumed start, without consuming them."""
        begin = self._start + offset
        if len(self._data) - begin < n:
            return None
        return bytes(self._data[begin : begin + n])

    def peek_u32(self, offset: int = 0) -> int | None:
        """A little-endian u32 at ``offset``, without consuming it."""
        begin = self._start + offset
        if len(self._data) - begin < 4:
            return None
        value: int = _U32.unpack_from(self._data, begin)[0]
        return value

    def unpack_from(self, layout: struct.Struct, offset: int = 0) -> tuple[int, ...] | None:
        """``layout`` unpacked at ``offset`` without consuming, or None if short."""
        begin = self._start + offset
        if len(self._data) - begin < layout.size:
            return None
        return layout.unpack_from(self._data, begin)

    def take(self, n: int) -> bytes:
        """Consume and return ``n`` bytes; the caller has checked they are buffered."""
        if len(self) < n:
            raise LocalProtocolError(f"take({n}) with {len(self)} bytes buffered")
        with memoryview(self._data) as view:  # one copy (a bytearray slice would be two)
            out = bytes(view[self._start : self._start + n])
        self._start += n
        if self._start == len(self._data):
            self._data.clear()
            self._start = 0
        return out
