"""When a Spice server on loopback sent its bytes: the common reference of bench_display.

A guest write reaches the screen through a guest command, the guest's qxl driver and the
server's encoder; under TCG that part takes 0.3 to 1.5 s and varies more than the clients
do. The first byte the server sends of the update is the moment both clients could start
working on it, and both see the same server: :class:`ServerSends` records every TCP payload
that leaves ``port`` on the loopback interface (an ``AF_PACKET`` socket: needs root or
CAP_NET_RAW) with the kernel's timestamp, taken when the server's write put the packet on
``lo``, mapped to ``time.monotonic()``.

Example::

    with ServerSends(5910) as sends:
        written = time.monotonic()
        ...                                   # the guest writes, a client draws
        first, size = sends.between(written, time.monotonic(), min_payload=256)
"""

from __future__ import annotations

import socket
import struct
import threading
import time
from dataclasses import dataclass, field

ETH_P_ALL = 0x0003
SO_TIMESTAMPNS = 35  # linux/asm-generic/socket.h (Python's socket module lacks it)
ETHERNET_HEADER = 14
IPV4, IPV6 = 4, 6
TCP = 6
IPV6_HEADER = 40
RECV_WAKE_S = 0.2  # how often the reader looks at the stop flag
TIMESPEC = struct.Struct("@qq")


@dataclass
class ServerSends:
    """Payload sizes of the TCP segments sent from ``port`` on ``lo``, with their times."""

    port: int
    interface: str = "lo"
    sends: list[tuple[float, int]] = field(default_factory=list)  # (monotonic, payload)
    _lock: threading.Lock = field(default_factory=threading.Lock)
    _stop: threading.Event = field(default_factory=threading.Event)
    _thread: threading.Thread | None = None
    _sock: socket.socket | None = None

    def __enter__(self) -> ServerSends:
        sock = socket.socket(socket.AF_PACKET, socket.SOCK_RAW, socket.htons(ETH_P_ALL))
        sock.setsockopt(socket.SOL_SOCKET, SO_TIMESTAMPNS, 1)
        sock.bind((self.interface, 0))
        sock.settimeout(RECV_WAKE_S)
        self._sock = sock
        self._thread = threading.Thread(target=self._read, name="server-sends", daemon=True)
        self._thread.start()
        return self

    def __exit__(self, *_: object) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(RECV_WAKE_S * 5)
        if self._sock is not None:
            self._sock.close()

    def _read(self) -> None:
        assert self._sock is not None
        ancillary = socket.CMSG_SPACE(TIMESPEC.size)
        while not self._stop.is_set():
            try:
                data, ancdata, _flags, address = self._sock.recvmsg(65536, ancillary)
            except TimeoutError:
                continue
            except OSError:
                return
            # on lo each segment is seen leaving and arriving: count it once
            if address[2] != socket.PACKET_HOST:
                continue
            payload = self.payload_from_port(data)
            if not payload:
                continue
            when = time.time()
            for level, kind, value in ancdata:
                if level == socket.SOL_SOCKET and kind == SO_TIMESTAMPNS:
                    seconds, nanoseconds = TIMESPEC.unpack(value[:TIMESPEC.size])
                    when = seconds + nanoseconds / 1e9
            # the kernel stamps CLOCK_REALTIME; the offset to CLOCK_MONOTONIC is read now
            monotonic = when - (time.time() - time.monotonic())
            with self._lock:
                self.sends.append((monotonic, payload))

    def payload_from_port(self, frame: bytes) -> int:
        """The TCP payload length of an Ethernet frame sent from ``port``, else 0."""
        at = ETHERNET_HEADER
        if len(frame) < at + IPV6_HEADER:
            return 0
        version = frame[at] >> 4
        if version == IPV4:
            header = (frame[at] & 0x0F) * 4
            if frame[at + 9] != TCP:
                return 0
            ip_payload = int(struct.unpack_from("!H", frame, at + 2)[0]) - header
        elif version == IPV6:
            header = IPV6_HEADER
            if frame[at + 6] != TCP:  # no extension headers on a loopback TCP segment
                return 0
            ip_payload = int(struct.unpack_from("!H", frame, at + 4)[0])
        else:
            return 0
        tcp = at + header
        if len(frame) < tcp + 20 or struct.unpack_from("!H", frame, tcp)[0] != self.port:
            return 0
        return max(ip_payload - (frame[tcp + 12] >> 4) * 4, 0)

    def between(self, start: float, end: float, min_payload: int = 1) -> tuple[float | None,
                                                                                int]:
        """The time of the first segment of at least ``min_payload`` bytes sent in
        [start, end] (None if none), and the payload bytes of every segment sent then."""
        with self._lock:
            window = [(t, n) for t, n in self.sends if start <= t <= end]
        first = next((t for t, n in window if n >= min_payload), None)
        return first, sum(n for _, n in window)
