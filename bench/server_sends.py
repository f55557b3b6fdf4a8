"""When a Spice server on loopback sent its bytes: the common reference of bench_display.

A guest write reaches the screen through a guest command, the guest's qxl driver and the
server's encoder; under TCG that part takes 0.3 to 1.5 s and varies more than the clients
do. The first byte the server sends of the update is the moment both clients could start
working on it, and both see the same server: :class:`ServerSends` records every TCP segment
that leaves ``127.0.0.1:port`` on the loopback interface with its payload size, the client
port it goes to and the kernel's timestamp (taken when the server's write put it on ``lo``),
mapped to ``time.monotonic()``.

It reads an ``AF_PACKET`` socket (root or CAP_NET_RAW) with a classic BPF filter, so the
kernel queues only those segments, cut to their headers; a 16 MiB receive buffer holds
bursts while the reader thread waits for the GIL. ``dropped`` counts what the kernel still
had to drop (PACKET_STATISTICS): a reference is only as good as that count is 0.

Example::

    with ServerSends(5910) as sends:
        written = time.monotonic()
        ...                                   # the guest writes, a client draws
        sent = sends.between(written, time.monotonic(), min_payload=64)
        print(sent.first, sent.last, sent.size, sends.dropped())
"""

from __future__ import annotations

import ctypes
import socket
import struct
import threading
import time
from collections import defaultdict
from dataclasses import dataclass, field

ETH_P_ALL = 0x0003
# linux/asm-generic/socket.h and linux/if_packet.h (Python's socket module lacks them)
SO_TIMESTAMPNS = 35
SO_ATTACH_FILTER = 26
SO_RCVBUFFORCE = 33
SOL_PACKET = 263
PACKET_STATISTICS = 6
RECEIVE_BUFFER = 16 << 20
ETHERNET_HEADER = 14
IPV4_ETHERTYPE = 0x0800
TCP = 6
SNAP_BYTES = 128  # Ethernet + IPv4 + TCP headers with options: all that is read
RECV_WAKE_S = 0.2  # how often the reader looks at the stop flag
TIMESPEC = struct.Struct("@qq")
TPACKET_STATS = struct.Struct("@II")  # tp_packets, tp_drops (reset by each read)


class _SockFilter(ctypes.Structure):
    _fields_ = [("code", ctypes.c_uint16), ("jt", ctypes.c_uint8), ("jf", ctypes.c_uint8),
                ("k", ctypes.c_uint32)]


class _SockFprog(ctypes.Structure):
    _fields_ = [("len", ctypes.c_ushort), ("filter", ctypes.POINTER(_SockFilter))]


def source_port_filter(port: int) -> list[tuple[int, int, int, int]]:
    """Classic BPF: keep IPv4 TCP segments from ``port`` that arrive (PACKET_HOST: on lo
    each segment is also seen leaving), cut to SNAP_BYTES; drop the rest.
    (code, jt, jf, k); jumps count from the next instruction, 12 is the drop."""
    return [
        (0x20, 0, 0, 0xFFFFF004),      # 0 ld  skb->pkt_type (SKF_AD_OFF + SKF_AD_PKTTYPE)
        (0x15, 0, 10, 0),              # 1 jeq PACKET_HOST, else drop
        (0x28, 0, 0, 12),              # 2 ldh ethertype
        (0x15, 0, 8, IPV4_ETHERTYPE),  # 3 jeq IPv4, else drop
        (0x30, 0, 0, 23),              # 4 ldb IP protocol
        (0x15, 0, 6, TCP),             # 5 jeq TCP, else drop
        (0x28, 0, 0, 20),              # 6 ldh flags + fragment offset
        (0x45, 4, 0, 0x1FFF),          # 7 jset fragment offset: drop (a later fragment)
        (0xB1, 0, 0, ETHERNET_HEADER),  # 8 ldxb 4 * (IHL)
        (0x48, 0, 0, ETHERNET_HEADER),  # 9 ldh [x + 14]: TCP source port
        (0x15, 0, 1, port),            # 10 jeq port, else drop
        (0x06, 0, 0, SNAP_BYTES),      # 11 ret: keep SNAP_BYTES
        (0x06, 0, 0, 0),               # 12 ret 0: drop
    ]


def tcp_payload(frame: bytes) -> tuple[int, int]:
    """(destination port, TCP payload length) of an IPv4 frame the filter kept; the
    lengths come from the headers, so a cut frame still tells its whole size."""
    ip = ETHERNET_HEADER
    header = (frame[ip] & 0x0F) * 4
    total = struct.unpack_from("!H", frame, ip + 2)[0]
    tcp = ip + header
    dport = struct.unpack_from("!H", frame, tcp + 2)[0]
    return int(dport), max(int(total) - header - (frame[tcp + 12] >> 4) * 4, 0)


@dataclass(frozen=True)
class Sent:
    """What one connection was sent in a time window (times on ``time.monotonic()``)."""

    first: float | None  # its first segment of at least min_payload bytes
    last: float | None  # and its last
    size: int  # payload bytes of all its segments (retransmissions included)


@dataclass
class ServerSends:
    """The TCP segments sent from ``127.0.0.1:port`` on ``lo``, with their times."""

    port: int
    interface: str = "lo"
    # (monotonic, client port, payload bytes), in arrival order
    sends: list[tuple[float, int, int]] = field(default_factory=list)
    _dropped: int = 0
    _lock: threading.Lock = field(default_factory=threading.Lock)
    _stop: threading.Event = field(default_factory=threading.Event)
    _thread: threading.Thread | None = None
    _sock: socket.socket | None = None

    def __enter__(self) -> ServerSends:
        sock = socket.socket(socket.AF_PACKET, socket.SOCK_RAW, socket.htons(ETH_P_ALL))
        program = source_port_filter(self.port)
        instructions = (_SockFilter * len(program))(*(_SockFilter(*i) for i in program))
        fprog = _SockFprog(len(program), instructions)
        sock.setsockopt(socket.SOL_SOCKET, SO_ATTACH_FILTER, bytes(fprog))
        sock.setsockopt(socket.SOL_SOCKET, SO_RCVBUFFORCE, RECEIVE_BUFFER)
        sock.setsockopt(socket.SOL_SOCKET, SO_TIMESTAMPNS, 1)
        sock.bind((self.interface, 0))
        # whatever arrived between socket() and the filter is not ours: start counting now
        sock.getsockopt(SOL_PACKET, PACKET_STATISTICS, TPACKET_STATS.size)
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
                frame, ancdata, _flags, _address = self._sock.recvmsg(SNAP_BYTES, ancillary)
            except TimeoutError:
                continue
            except OSError:
                return
            dport, payload = tcp_payload(frame)
            if not payload:
                continue  # a bare ACK
            when = time.time()
            for level, kind, value in ancdata:
                if level == socket.SOL_SOCKET and kind == SO_TIMESTAMPNS:
                    seconds, nanoseconds = TIMESPEC.unpack(value[:TIMESPEC.size])
                    when = seconds + nanoseconds / 1e9
            # the kernel stamps CLOCK_REALTIME; the offset to CLOCK_MONOTONIC is read now
            monotonic = when - (time.time() - time.monotonic())
            with self._lock:
                self.sends.append((monotonic, dport, payload))

    def dropped(self) -> int:
        """Segments the kernel dropped for want of buffer space so far."""
        assert self._sock is not None
        raw = self._sock.getsockopt(SOL_PACKET, PACKET_STATISTICS, TPACKET_STATS.size)
        self._dropped += TPACKET_STATS.unpack(raw)[1]
        return self._dropped

    def between(self, start: float, end: float, min_payload: int = 1) -> Sent:
        """What was sent in [start, end] on the connection that got the most bytes then
        (the display channel, for an update): the times of its first and last segments of
        at least ``min_payload`` bytes, and its payload bytes."""
        per_port: dict[int, list[tuple[float, int]]] = defaultdict(list)
        with self._lock:
            for t, dport, n in self.sends:
                if start <= t <= end:
                    per_port[dport].append((t, n))
        if not per_port:
            return Sent(None, None, 0)
        segments = max(per_port.values(), key=lambda s: sum(n for _, n in s))
        big = [t for t, n in segments if n >= min_payload]
        return Sent(big[0] if big else None, big[-1] if big else None,
                    sum(n for _, n in segments))
