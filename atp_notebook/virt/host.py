"""One long-lived libvirt connection per host, shared by every VM on it, kept alive.

A :class:`HostConnection` opens on first use, sets libvirt keepalive and a close callback,
and when the connection is lost (libvirtd restarted, network gone, keepalive timeout) it
marks itself ``lost`` and reconnects in the background with exponential backoff and jitter.
Callers never hang: while the host is down they get :class:`HostUnavailable` at once (or
within their timeout when an attempt is already under way, which they share).

:meth:`HostConnection.connection` is the blocking fast path for the facade: a ready
connection is returned from the caller's thread without any hop to another thread.

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
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import libvirt

from atp_notebook.errors import HostUnavailable
from atp_notebook.listeners import ListenerHandle, Listeners
from atp_notebook.loop import AtpLoop, get_loop
from atp_notebook.virt.attempt import Attempt

CONNECT_TIMEOUT_S = 15.0
KEEPALIVE_INTERVAL_S = 5
KEEPALIVE_COUNT = 3  # lost after about interval * (count + 1) seconds of silence
# a caller arriving this soon after a failed attempt fails at once instead of starting another
MIN_RETRY_INTERVAL_S = 0.5
REGISTER_DELAY_S = 0.001  # see _open
CLOSE_WAIT_S = 5.0  # how long close() waits for a callback registration under way


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
    """The shared, self-healing libvirt connection of one host.

    One mutex guards the state; one shared :class:`Attempt` stands for the open under way, so
    blocking callers (``connection``), async callers (``get``) and the background retry all
    wait on the same open. Opens run on the atp loop's host executor: a blocking caller waits
    on the attempt directly, without a hop through the loop.
    """

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
        self._mutex = threading.Lock()
        # A connection must never be closed while another thread still registers its close
        # callback (libvirt would use freed memory): a close that arrives during the
        # registration is left to the registering thread. No executor thread ever waits for
        # another executor task here (that could starve the pool); close() awaits the setup
        # on the loop instead.
        self._setups: dict[int, Attempt[None]] = {}  # id(conn) -> its registration
        self._close_after_setup: set[int] = set()
        self._state = HostState.IDLE
        self._conn: libvirt.virConnect | None = None
        self._attempt: Attempt[libvirt.virConnect] | None = None
        self._retry: asyncio.TimerHandle | None = None  # touched on the loop thread only
        self._last_failure = 0.0
        # plain counters (under the mutex): the open path bumps them without building objects
        self._opens = self._failures = self._losses = 0
        self._last_error: str | None = None
        self._connected_at: float | None = None
        self.listeners: Listeners[HostState] = Listeners(self._log)

    def __repr__(self) -> str:
        return f"<HostConnection {self.host_id} {self._state} {self.uri.split('?')[0]}>"

    # --- what callers see ---------------------------------------------------------------

    @property
    def state(self) -> HostState:
        return self._state

    @property
    def stats(self) -> HostStats:
        with self._mutex:
            return HostStats(
                opens=self._opens,
                reconnects=max(self._opens - 1, 0),
                failures=self._failures,
                losses=self._losses,
                last_error=self._last_error,
                connected_at=self._connected_at,
            )

    def on_state_change(self, listener: Callable[[HostState], None]) -> ListenerHandle:
        """Call ``listener(state)`` on the atp loop whenever the state changes, until the
        returned handle is closed."""
        return self.listeners.add(listener)

    def connection(self, timeout: float | None = None) -> libvirt.virConnect:
        """The open connection, opening or waiting for a reconnect as needed (blocking)."""
        conn = self._conn
        if conn is not None and self._state is HostState.READY:
            return conn
        attempt = self._join_attempt()
        wait = self.connect_timeout if timeout is None else timeout
        if not attempt.wait(wait):
            raise self._timed_out(wait)
        return self._outcome(attempt)

    async def get(self, timeout: float | None = None) -> libvirt.virConnect:
        """The open connection, for async code on any event loop."""
        conn = self._conn
        if conn is not None and self._state is HostState.READY:
            return conn
        attempt = self._join_attempt()
        wait = self.connect_timeout if timeout is None else timeout
        # a caller that gives up stops waiting; the attempt others share goes on
        if not await attempt.wait_async(wait):
            raise self._timed_out(wait)
        return self._outcome(attempt)

    def mark_lost(self, reason: str, conn: libvirt.virConnect | None = None) -> None:
        """The connection (``conn``, or the current one) is dead; reconnect (any thread)."""
        with self._mutex:
            current = self._conn
            if current is None or (conn is not None and conn is not current):
                return
            if self._state is not HostState.READY:
                return
            self._conn = None
            self._losses += 1
            self._last_error = reason
            self._connected_at = None
            self._set_state(HostState.LOST)
        self._log.warning("connection lost: %s", reason)
        self._atp.host_executor.submit(self._dispose, current)
        self._join_attempt(force=True)  # the first retry is immediate; later ones back off

    def check_error(self, exc: libvirt.libvirtError) -> None:
        """After a failed libvirt call: if the connection died, mark it lost and raise."""
        conn = self._conn
        try:
            alive = conn is not None and conn.isAlive() == 1
        except libvirt.libvirtError:
            alive = False
        if not alive:
            self.mark_lost(libvirt_error_text(exc), conn)
            raise HostUnavailable(
                f"host {self.host_id!r}: connection lost ({libvirt_error_text(exc)}); "
                "reconnecting in the background"
            ) from exc

    async def close(self) -> None:
        """Close for good: no more reconnects; pending callers get HostUnavailable."""
        with self._mutex:
            self._set_state(HostState.CLOSED)
            conn, self._conn = self._conn, None
            setup = self._setups.get(id(conn)) if conn is not None else None
        self._atp.loop.call_soon_threadsafe(self._cancel_retry)
        if conn is not None:
            await asyncio.wrap_future(self._atp.host_executor.submit(self._dispose, conn))
        # the registering thread closes it when done: wait for that (a host that stopped
        # answering mid-registration is not waited for beyond CLOSE_WAIT_S)
        if setup is not None and not await setup.wait_async(CLOSE_WAIT_S):
            self._log.warning("close: callback registration still blocked after %g s; "
                              "the connection is closed when it returns", CLOSE_WAIT_S)

    # --- the machinery ------------------------------------------------------------------

    def _timed_out(self, wait: float) -> HostUnavailable:
        return HostUnavailable(
            f"host {self.host_id!r}: no connection to {self.uri.split('?')[0]} within {wait:g} s"
        )

    def _outcome(self, attempt: Attempt[libvirt.virConnect]) -> libvirt.virConnect:
        try:
            return attempt.result()
        except HostUnavailable:
            raise
        except Exception as exc:
            raise self._unavailable() from exc

    def _unavailable(self) -> HostUnavailable:
        last = self._last_error or "not connected"
        return HostUnavailable(
            f"host {self.host_id!r} is unavailable: {last}",
            hint="the toolkit reconnects by itself when the host is back",
        )

    def _set_state(self, state: HostState) -> None:
        """Change state (mutex held); listeners run later, on the atp loop."""
        if state is self._state:
            return
        self._log.info("%s -> %s", self._state, state)
        self._state = state
        if len(self.listeners):
            self._atp.loop.call_soon_threadsafe(self.listeners.emit, state)

    def _join_attempt(self, *, force: bool = False) -> Attempt[libvirt.virConnect]:
        """The open under way, or a new one; fails fast right after a failed attempt."""
        with self._mutex:
            if self._state is HostState.CLOSED:
                raise HostUnavailable(f"host {self.host_id!r}: its connection was closed")
            if self._attempt is not None:
                return self._attempt
            since_failure = time.monotonic() - self._last_failure
            if (not force and self._state is HostState.LOST
                    and since_failure < MIN_RETRY_INTERVAL_S):
                raise self._unavailable()
            if self._state is HostState.IDLE:
                self._set_state(HostState.CONNECTING)
            # set under the mutex, so _open cannot finish before _attempt is set
            attempt: Attempt[libvirt.virConnect] = Attempt()
            self._attempt = attempt
            self._atp.host_executor.submit(self._open, attempt)
            return attempt

    def _open(self, attempt: Attempt[libvirt.virConnect]) -> None:
        """On an executor thread: open, publish, wake the waiters, then register callbacks.

        Everything between ``libvirt.open`` returning and the waiters running again is on
        their path, so it is kept to a few attribute writes under the mutex. The close
        callback and keepalive cost round trips nobody needs to wait for (a loss in between
        is still caught by check_error()); registering them on this same thread, after the
        waiters are woken, keeps a second thread hand-off off the caller's path.
        """
        try:
            conn = libvirt.open(self.uri)
        except Exception as exc:
            with self._mutex:
                self._attempt = None
                self._last_failure = time.monotonic()
                self._failures += 1
                self._last_error = libvirt_error_text(exc)
                if self._state is not HostState.CLOSED:
                    self._set_state(HostState.LOST)
                    self._atp.loop.call_soon_threadsafe(self._schedule_retry)
            attempt.finish(error=exc)
            return
        setup: Attempt[None] = Attempt()
        with self._mutex:
            self._attempt = None
            closed = self._state is HostState.CLOSED
            if not closed:
                self._conn = conn
                self._opens += 1
                self._last_error = None
                self._connected_at = time.time()
                self._backoff.reset()
                self._set_state(HostState.READY)
                # until registered, a _dispose of this connection is left to _register
                self._setups[id(conn)] = setup
        if closed:  # closed while we were opening
            self._close_conn(conn)
            attempt.finish(error=HostUnavailable(f"host {self.host_id!r}: closed"))
            return
        attempt.finish(conn)
        # let the woken callers have the GIL and a CPU first: registering straight away
        # made each of them wait ~45 us on a busy 2-core host (bench_pool)
        time.sleep(REGISTER_DELAY_S)
        self._register(conn)

    def _register(self, conn: libvirt.virConnect) -> None:
        try:
            conn.registerCloseCallback(self._close_callback, None)
            interval, count = self._keepalive
            conn.setKeepAlive(interval, count)
        except libvirt.libvirtError as exc:
            self.mark_lost(libvirt_error_text(exc), conn)
        finally:
            with self._mutex:
                setup = self._setups.pop(id(conn), None)
                close_now = id(conn) in self._close_after_setup
                self._close_after_setup.discard(id(conn))
            if close_now:
                self._close_conn(conn)
            if setup is not None:
                setup.finish()

    def _schedule_retry(self) -> None:
        """On the loop thread: retry after the next backoff delay."""
        self._cancel_retry()
        if self._state is not HostState.LOST:
            return
        delay = self._backoff.next_delay()
        self._log.info("reconnecting in %.2f s", delay)
        self._retry = self._atp.loop.call_later(delay, self._retry_now)

    def _cancel_retry(self) -> None:
        if self._retry is not None:
            self._retry.cancel()
            self._retry = None

    def _retry_now(self) -> None:
        self._retry = None
        if self._state is HostState.LOST:
            with contextlib.suppress(HostUnavailable):  # closed meanwhile
                self._join_attempt(force=True)

    def _close_callback(self, conn: libvirt.virConnect, reason: int, _opaque: Any) -> None:
        # libvirtaio runs this on the atp loop
        if reason != libvirt.VIR_CONNECT_CLOSE_REASON_CLIENT:
            self.mark_lost(_reason_text(reason), conn)

    def _dispose(self, conn: libvirt.virConnect) -> None:
        with self._mutex:
            if id(conn) in self._setups:  # the registering thread closes it when done
                self._close_after_setup.add(id(conn))
                return
        self._close_conn(conn)

    @staticmethod
    def _close_conn(conn: libvirt.virConnect) -> None:
        with contextlib.suppress(libvirt.libvirtError):
            conn.unregisterCloseCallback()
        with contextlib.suppress(libvirt.libvirtError):
            conn.close()
