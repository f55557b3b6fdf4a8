"""The kernel's view of one TCP connection: smoothed RTT, its variation, retransmissions.

Spice gives the client no ping of its own: only the server sends PING and the client
answers PONG, so the client never sees a round trip it could time. Each channel is its own
TCP connection, and Linux already measures that connection's round trip on every ACK;
``getsockopt(IPPROTO_TCP, TCP_INFO)`` reads it. For a TLS channel the socket asyncio hands
out (``writer.get_extra_info("socket")``) is the TCP socket under the TLS layer, so the same
call works.

Example::

    info = read_tcp_info(writer.get_extra_info("socket"))
    info.rtt_ms if info else None     # e.g. 0.043 on loopback
"""

from __future__ import annotations

import socket
import struct
from dataclasses import dataclass
from typing import Protocol

# ``struct tcp_info`` from linux/tcp.h up to tcpi_total_retrans, in host byte order:
# 8 u8 (state … the wscale and flag bit fields), then 24 u32 — rto, ato, snd_mss, rcv_mss,
# unacked, sacked, lost, retrans, fackets, last_data_sent, last_ack_sent, last_data_recv,
# last_ack_recv, pmtu, rcv_ssthresh, rtt, rttvar, snd_ssthresh, snd_cwnd, advmss,
# reordering, rcv_rtt, rcv_space, total_retrans. Every Linux since 2.6 fills at least this.
_TCP_INFO = struct.Struct("=8B24I")
# then (Linux >= 4.6) 4 u64 (pacing_rate, max_pacing_rate, bytes_acked, bytes_received) and
# u32 segs_out, segs_in, notsent_bytes, min_rtt
_MIN_RTT = struct.Struct("=I")
_MIN_RTT_OFFSET = _TCP_INFO.size + 4 * 8 + 3 * 4
_STATE = 0
_RTT = 8 + 15  # index of tcpi_rtt (µs) among the unpacked fields
_RTTVAR = 8 + 16
_TOTAL_RETRANS = 8 + 23

# socket.TCP_INFO exists only where the platform has it (Linux); elsewhere: no info
_TCP_INFO_OPTION: int | None = getattr(socket, "TCP_INFO", None)


class SocketLike(Protocol):
    """What is read of a socket: ``socket.socket`` and asyncio's ``TransportSocket`` fit."""

    @property
    def family(self) -> int: ...

    @property
    def type(self) -> int: ...

    def fileno(self) -> int: ...

    def getsockopt(self, level: int, optname: int, buflen: int, /) -> bytes: ...


@dataclass(frozen=True, slots=True)
class TcpInfo:
    """One reading of a TCP connection's metrics (times in microseconds, as the kernel
    keeps them)."""

    state: int  # tcp_states.h: 1 ESTABLISHED, 8 CLOSE_WAIT, …
    rtt_us: int  # smoothed round-trip time (srtt)
    rttvar_us: int  # its mean deviation
    total_retrans: int  # segments retransmitted over the connection's life
    # the lowest RTT the kernel saw (windowed): the path's own latency, without the peer's
    # delayed ACKs that inflate srtt on a channel carrying one-way traffic
    min_rtt_us: int | None = None

    @property
    def rtt_ms(self) -> float:
        """The smoothed RTT in milliseconds, to the microsecond the kernel measures."""
        return round(self.rtt_us / 1000, 3)

    @property
    def min_rtt_ms(self) -> float | None:
        return None if self.min_rtt_us is None else round(self.min_rtt_us / 1000, 3)


def read_tcp_info(sock: SocketLike | None) -> TcpInfo | None:
    """The kernel's metrics of ``sock``'s TCP connection, or None when there are none: not
    Linux, not a TCP socket (a unix socket), or a socket already closed."""
    if sock is None or _TCP_INFO_OPTION is None:
        return None
    if sock.family not in (socket.AF_INET, socket.AF_INET6) or \
            sock.type != socket.SOCK_STREAM or sock.fileno() < 0:
        return None
    try:
        raw = sock.getsockopt(socket.IPPROTO_TCP, _TCP_INFO_OPTION,
                              _MIN_RTT_OFFSET + _MIN_RTT.size)
    except OSError:  # closed under us (EBADF) or the platform refuses
        return None
    if len(raw) < _TCP_INFO.size:
        return None
    fields = _TCP_INFO.unpack_from(raw)
    min_rtt = (_MIN_RTT.unpack_from(raw, _MIN_RTT_OFFSET)[0]
               if len(raw) >= _MIN_RTT_OFFSET + _MIN_RTT.size else None)
    return TcpInfo(fields[_STATE], fields[_RTT], fields[_RTTVAR], fields[_TOTAL_RETRANS],
                   min_rtt)
