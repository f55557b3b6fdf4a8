"""One long-lived libvirt connection per host, shared by every VM on it, kept alive.

A :class:`HostConnection` opens on first use, sets libvirt keepalive and a close callback,
and when the connection is lost (libvirtd restarted, network gone, keepalive timeout) it
marks itself ``lost`` and reconnects in the background with exponential backoff and jitter.
Callers never hang: while the host is down they get :class:`HostUnavailable` at once (or
within their timeout when an attempt is already under way, which they share).

State lives on the atp loop; :meth:`HostConnection.connection` is the blocking fast path for
the facade: a ready connection is returned from the caller's thread without a loop hop.

Example::

    host = HostConnection("lab", "qemu+tcp://127.0.0.1/system")
    conn = host.connection(timeout=10)      # a libvirt.virConnect, shared
"""

from __future__ import annotations

import asyncio
import contextlib
import enum
import logging
import random
import time
from collections.abc import Callable
from dataclasses import dataclass, replace
from typing import Any

import libvirt

from atp_notebook.errors import HostUnavailable
from atp_notebook.loop import AtpLoop, get_loop

CONNECT_TIMEOUT_S = 15.0
KEEPALIVE_INTERVAL_S = 5
KEEPALIVE_COUNT = 3  # lost after about interval * (count + 1) seconds of silence
# a caller arriving this soon after a failed attempt fails at once instead of starting another
MIN_RETRY_INTERVAL_S = 0.5


class HostState(enum.StrEnum):
    IDLE = "idle"  # never opened
    CONNECTING = "connecting"
    READY = "ready"
    LOST = "lost"  # was open or tried; reconnecting in the background
    CLOSED = "closed"  # closed by us; no reconnects


@dataclass(frozen=True)
class HostStats:
    """Counters of one host connection (a snapshot)."""

    opens: int = 0  # successful libvirt.open calls
    reconnects: int = 0  # opens after the first
    failures: int = 0  # failed attempts
    losses: int = 0  # times an open connection was lost
    last_error: str | None = None
    connected_at: float | None = None  # wall clock of the current connection


@dataclass
class Backoff:
    """Exponential backoff with +-``jitter`` relative noise, capped at ``maximum``."""

    initial: float = 0.2
    factor: float = 2.0
    maximum: float = 10.0
    jitter: float = 0.2
    _next: float = 0.0

    def reset(self) -> None:
        self._next = 0.0

    def next_delay(self) -> float:
        self._next = self.initial if self._next == 0.0 else min(self._next * self.factor,
                                                                 self.maximum)
        spread = self._next * self.jitter
        return max(0.0, self._next + random.uniform(-spread, spread))  # noqa: S311 - not crypto


def _reason_text(reason: int) -> str:
    return {
        libvirt.VIR_CONNECT_CLOSE_REASON_ERROR: "I/O error",
        libvirt.VIR_CONNECT_CLOSE_REASON_EOF: "connection closed by the host (EOF)",
        libvirt.VIR_CONNECT_CLOSE_REASON_KEEPALIVE: "keepalive timeout",
        libvirt.VIR_CONNECT_CLOSE_REASON_CLIENT: "closed by client",
    }.get(reason, f"closed (reason {reason})")


def libvirt_error_text(exc: BaseException) -> str:
    if isinstance(exc, libvirt.libvirtError):
        return str(exc.get_error_message() or exc)
    return str(exc) or type(exc).__name__


class HostConnection:
    """The shared, self-healing libvirt connection of one host."""

    def __init__(
        self,
        host_id: str,
        uri: str,
        *,
        loop: AtpLoop | None = None,
        connect_timeout: float = CONNECT_TIMEOUT_S,
        keepalive: tuple[int, int] = (KEEPALIVE_INTERVAL_S, KEEPALIVE_COUNT),
        backoff: Backoff | None = None,
    ) -> None:
        self.host_id = host_id
        self.uri = uri
        self.connect_timeout = connect_timeout
        self._keepalive = keepalive
        self._atp = loop or get_loop()
        self._backoff = backoff or Backoff()
        self._log = logging.getLogger(f"atp.virt.{host_id}")
        self._state = HostState.IDLE
        self._conn: libvirt.virConnect | None = None
        self._attempt: asyncio.Task[libvirt.virConnect] | None = None
        self._retry: asyncio.TimerHandle | None = None
        self._last_failure = 0.0
        self._stats = HostStats()
        self._listeners: list[Callable[[HostState], None]] = []

    def __repr__(self) -> str:
        return f"<HostConnection {self.host_id} {self._state} {self.uri.split('?')[0]}>"

    # --- what callers see ---------------------------------------------------------------

    @property
    def state(self) -> HostState:
        return self._state

    @property
    def stats(self) -> HostStats:
        return self._stats

    def on_state_change(self, listener: Callable[[HostState], None]) -> None:
        """Call ``listener(state)`` on the atp loop whenever the state changes."""
        self._listeners.append(listener)

    def connection(self, timeout: float | None = None) -> libvirt.virConnect:
        """The open connection, opening or waiting for a reconnect as needed (blocking)."""
        conn = self._conn
        if conn is not None and self._state is HostState.READY:
            return conn
        wait = self.connect_timeout if timeout is None else timeout
        # the outer bound only guards against a stuck loop; get() enforces ``wait`` itself
        return self._atp.call(self.get(wait), timeout=wait + 5.0)

    async def get(self, timeout: float | None = None) -> libvirt.virConnect:
        """The open connection (on the atp loop); shares any attempt already under way."""
        conn = self._conn
        if conn is not None and self._state is HostState.READY:
            return conn
        if self._state is HostState.CLOSED:
            raise HostUnavailable(f"host {self.host_id!r}: its connection was closed")
        if self._attempt is None:
            since_failure = time.monotonic() - self._last_failure
            if self._state is HostState.LOST and since_failure < MIN_RETRY_INTERVAL_S:
                raise self._unavailable()
            self._start_attempt()
        assert self._attempt is not None
        wait = self.connect_timeout if timeout is None else timeout
        try:
            return await asyncio.wait_for(asyncio.shield(self._attempt), wait)
        except TimeoutError:
            raise HostUnavailable(
                f"host {self.host_id!r}: no connection to {self.uri.split('?')[0]} "
                f"within {wait:g} s"
            ) from None
        except HostUnavailable:
            raise
        except Exception as exc:
            raise self._unavailable() from exc

    def mark_lost(self, reason: str) -> None:
        """Called when a libvirt call finds the connection dead (from any thread)."""
        self._atp.loop.call_soon_threadsafe(self._lost, reason)

    def check_error(self, exc: libvirt.libvirtError) -> None:
        """After a failed libvirt call: if the connection died, mark it lost and raise."""
        conn = self._conn
        try:
            alive = conn is not None and conn.isAlive() == 1
        except libvirt.libvirtError:
            alive = False
        if not alive:
            self.mark_lost(libvirt_error_text(exc))
            raise HostUnavailable(
                f"host {self.host_id!r}: connection lost ({libvirt_error_text(exc)}); "
                "reconnecting in the background"
            ) from exc

    async def close(self) -> None:
        """Close for good: no more reconnects; pending callers get HostUnavailable."""
        self._set_state(HostState.CLOSED)
        if self._retry is not None:
            self._retry.cancel()
        if self._attempt is not None:
            self._attempt.cancel()
        conn, self._conn = self._conn, None
        if conn is not None:
            await self._atp.loop.run_in_executor(None, self._dispose, conn)

    # --- the machinery (atp loop thread) -----------------------------------------------

    def _unavailable(self) -> HostUnavailable:
        last = self._stats.last_error or "not connected"
        return HostUnavailable(
            f"host {self.host_id!r} is unavailable: {last}",
            hint="the toolkit reconnects by itself when the host is back",
        )

    def _set_state(self, state: HostState) -> None:
        if state is self._state:
            return
        self._log.info("%s -> %s", self._state, state)
        self._state = state
        for listener in list(self._listeners):
            try:
                listener(state)
            except Exception:  # a listener's bug must not break the connection
                self._log.exception("state listener failed")

    def _start_attempt(self) -> None:
        if self._retry is not None:
            self._retry.cancel()
            self._retry = None
        if self._state is not HostState.LOST:
            self._set_state(HostState.CONNECTING)
        self._attempt = asyncio.ensure_future(self._connect_once())
        self._attempt.add_done_callback(self._attempt_done)

    async def _connect_once(self) -> libvirt.virConnect:
        loop = self._atp.loop
        try:
            conn = await loop.run_in_executor(None, self._open_blocking)
        except Exception as exc:
            self._stats = replace(self._stats, failures=self._stats.failures + 1,
                                  last_error=libvirt_error_text(exc))
            raise
        if self._state is HostState.CLOSED:  # closed while we were opening
            await loop.run_in_executor(None, self._dispose, conn)
            raise HostUnavailable(f"host {self.host_id!r}: closed")
        self._conn = conn
        self._stats = replace(
            self._stats,
            opens=self._stats.opens + 1,
            reconnects=self._stats.reconnects + (1 if self._stats.opens else 0),
            last_error=None,
            connected_at=time.time(),
        )
        self._backoff.reset()
        self._set_state(HostState.READY)
        return conn

    def _attempt_done(self, attempt: asyncio.Task[libvirt.virConnect]) -> None:
        self._attempt = None
        if attempt.cancelled() or attempt.exception() is None:
            return
        self._last_failure = time.monotonic()
        if self._state is not HostState.CLOSED:
            self._set_state(HostState.LOST)
            self._schedule_retry()

    def _schedule_retry(self) -> None:
        delay = self._backoff.next_delay()
        self._log.info("reconnecting in %.2f s", delay)
        self._retry = self._atp.loop.call_later(delay, self._retry_now)

    def _retry_now(self) -> None:
        self._retry = None
        if self._state is HostState.LOST and self._attempt is None:
            self._start_attempt()

    def _open_blocking(self) -> libvirt.virConnect:
        """libvirt.open and its callbacks, on an executor thread (libvirt calls block)."""
        conn = libvirt.open(self.uri)
        try:
            conn.registerCloseCallback(self._close_callback, None)
            interval, count = self._keepalive
            conn.setKeepAlive(interval, count)
        except libvirt.libvirtError:
            conn.close()
            raise
        return conn

    def _close_callback(self, conn: libvirt.virConnect, reason: int, _opaque: Any) -> None:
        # libvirtaio runs this on the atp loop
        if reason == libvirt.VIR_CONNECT_CLOSE_REASON_CLIENT or conn is not self._conn:
            return
        self._lost(_reason_text(reason))

    def _lost(self, reason: str) -> None:
        if self._state in (HostState.CLOSED, HostState.LOST) or self._conn is None:
            return
        self._log.warning("connection lost: %s", reason)
        conn, self._conn = self._conn, None
        self._stats = replace(self._stats, losses=self._stats.losses + 1, last_error=reason,
                              connected_at=None)
        self._set_state(HostState.LOST)
        self._atp.loop.run_in_executor(None, self._dispose, conn)
        self._start_attempt()  # the first retry is immediate; later ones back off

    @staticmethod
    def _dispose(conn: libvirt.virConnect) -> None:
        with contextlib.suppress(libvirt.libvirtError):
            conn.unregisterCloseCallback()
        with contextlib.suppress(libvirt.libvirtError):
            conn.close()
