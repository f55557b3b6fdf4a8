"""The receive side of a byte channel, without I/O: bytes in, reads and lines out.

Used by :mod:`atp_notebook.virt.virtio_serial`; kept apart so it can be tested by feeding
bytes, and reused by other byte channels.
"""

from __future__ import annotations

import copy

from atp_notebook.errors import (
    InvalidArgument,
    LocalProtocolError,
    RemoteProtocolError,
    TransportError,
)

BUFFER_LIMIT = 4 * 1024 * 1024  # pause reading from the source above this many buffered bytes


class ReceiveBuffer:
    """Sans-I/O receive side: bytes in, reads and lines out, then the reason it ended.

    Every read returns ``None`` when it needs more data; after :meth:`close` buffered bytes
    are still returned, then each read raises (a copy of) the close reason.

    Example::

        buf = ReceiveBuffer()
        buf.feed(b"one\\ntw")
        buf.read_line(max_line=100)   # b"one\\n"
        buf.read_line(max_line=100)   # None: "tw" is not a whole line yet
    """

    def __init__(self, limit: int = BUFFER_LIMIT) -> None:
        self.limit = limit
        self._data = bytearray()  # deleting from its front is amortised O(1) in CPython
        self._scanned = 0  # bytes already searched for b"\n" (no rescans: no quadratic lines)
        self._error: TransportError | None = None

    def __len__(self) -> int:
        return len(self._data)

    @property
    def closed(self) -> bool:
        return self._error is not None

    @property
    def wants_data(self) -> bool:
        """True while open and below the limit (the adapter's backpressure switch)."""
        return self._error is None and len(self._data) < self.limit

    def feed(self, data: bytes) -> None:
        if self._error is not None:
            raise LocalProtocolError("data fed to a closed receive buffer")
        self._data += data

    def close(self, reason: TransportError) -> None:
        """End of input; the first reason wins (a later one would hide the real cause)."""
        if self._error is None:
            self._error = reason

    def read(self, max_bytes: int) -> bytes | None:
        """Up to ``max_bytes`` buffered bytes, at least one."""
        if max_bytes <= 0:
            raise InvalidArgument(f"max_bytes must be positive, not {max_bytes}")
        if self._data:
            return self._take(min(max_bytes, len(self._data)))
        self.raise_if_closed()
        return None

    def read_exactly(self, n: int) -> bytes | None:
        """Exactly ``n`` bytes; after close a short remainder stays for :meth:`read`."""
        if n < 0:
            raise InvalidArgument(f"n must not be negative, not {n}")
        if len(self._data) >= n:
            return self._take(n)
        self.raise_if_closed()
        return None

    def read_line(self, max_line: int) -> bytes | None:
        """One line with its b"\\n"; after close the unterminated tail is the last line.

        A line longer than ``max_line`` (newline included) raises RemoteProtocolError and
        stays buffered, so nothing is lost: :meth:`read` can still take it.
        """
        end = self._data.find(b"\n", self._scanned)
        if end >= 0:
            if end + 1 > max_line:
                raise RemoteProtocolError(f"line of {end + 1} bytes exceeds max_line={max_line}")
            return self._take(end + 1)
        self._scanned = len(self._data)
        if len(self._data) >= max_line:
            raise RemoteProtocolError(
                f"no newline in {len(self._data)} bytes; a line exceeds max_line={max_line}")
        if self._data and self._error is not None:
            return self._take(len(self._data))
        self.raise_if_closed()
        return None

    def _take(self, n: int) -> bytes:
        out = bytes(self._data[:n])
        del self._data[:n]
        self._scanned = max(0, self._scanned - n)
        return out

    @property
    def reason(self) -> TransportError | None:
        """Why input ended (None while open)."""
        return self._error

    def raise_if_closed(self) -> None:
        """Raise (a copy of) the close reason, if closed."""
        if self._error is None:
            return
        # a fresh copy per raise: one shared instance would pile up every waiter's traceback
        raise copy.copy(self._error) from self._error.__cause__
