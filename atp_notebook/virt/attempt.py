"""A one-shot outcome that many threads and event loops wait for: an open under way.

Every caller that needs a host while its connection is being opened waits for the same
attempt. ``concurrent.futures.Future`` would do, but it is heavy on exactly the path that
counts: its condition variable costs a lock allocation and two extra lock round trips per
waiter, and all of that sits between ``libvirt.open`` returning and the caller running again.
Here a blocking waiter sleeps on one bare lock that the opening thread releases as its
first act, and each woken waiter hands the lock on to the next one.

Example::

    attempt: Attempt[int] = Attempt()
    threading.Thread(target=attempt.finish, args=(42,)).start()
    if attempt.wait(timeout=1.0):
        print(attempt.result())            # 42
"""

from __future__ import annotations

import _thread
import asyncio
import contextlib
import threading
from collections.abc import Callable
from typing import Generic, TypeVar

T = TypeVar("T")


class Attempt(Generic[T]):
    """The result or exception of one piece of work, set once, waited for by many."""

    __slots__ = ("_callbacks", "_done", "_error", "_gate", "_guard", "_value")

    def __init__(self) -> None:
        # held until the outcome is known; a waiter that gets it passes it straight on
        self._gate = _thread.allocate_lock()
        self._gate.acquire()
        self._guard = _thread.allocate_lock()  # orders finish() against add_done_callback()
        self._done = False
        self._value: T | None = None
        self._error: BaseException | None = None
        self._callbacks: list[Callable[[], object]] = []

    def __repr__(self) -> str:
        if not self._done:
            return "<Attempt pending>"
        return f"<Attempt {'failed' if self._error is not None else 'done'}>"

    def done(self) -> bool:
        return self._done

    def finish(self, value: T | None = None, error: BaseException | None = None) -> None:
        """Set the outcome (once) and wake every waiter; later calls are ignored."""
        with self._guard:
            if self._done:
                return
            self._value, self._error, self._done = value, error, True
            callbacks, self._callbacks = self._callbacks, []
        self._gate.release()
        for callback in callbacks:
            callback()

    def wait(self, timeout: float | None = None) -> bool:
        """Block until the outcome is known; False when ``timeout`` seconds passed first."""
        if self._done:
            return True
        # a lock wait longer than TIMEOUT_MAX (~292 years here) raises OverflowError
        limit = -1 if timeout is None else min(max(timeout, 0.0), threading.TIMEOUT_MAX)
        if not self._gate.acquire(True, limit):
            return False
        self._gate.release()  # wake the next waiter, if any
        return True

    def result(self) -> T:
        """The value, or the exception raised; only once :meth:`done`."""
        if not self._done:
            raise RuntimeError("Attempt.result() before the attempt finished")
        if self._error is not None:
            raise self._error
        return self._value  # type: ignore[return-value]  # finish() set it with no error

    def add_done_callback(self, callback: Callable[[], object]) -> None:
        """Call ``callback()`` once finished: now if it is, else on the finishing thread."""
        with self._guard:
            if not self._done:
                self._callbacks.append(callback)
                return
        callback()

    async def wait_async(self, timeout: float | None = None) -> bool:
        """:meth:`wait` for coroutines on any event loop; the loop is never blocked."""
        if self._done:
            return True
        loop = asyncio.get_running_loop()
        woken: asyncio.Future[None] = loop.create_future()

        def wake() -> None:
            with contextlib.suppress(RuntimeError):  # that loop is closed: nobody waits
                loop.call_soon_threadsafe(_resolve, woken)

        self.add_done_callback(wake)
        try:
            await asyncio.wait_for(woken, timeout)
        except TimeoutError:
            return False
        finally:
            # an attempt that never finishes (a wedged host) must not collect one closure
            # per caller that gave up on it
            self._discard_callback(wake)
        return True

    def _discard_callback(self, callback: Callable[[], object]) -> None:
        # ValueError: already run and dropped by finish()
        with self._guard, contextlib.suppress(ValueError):
            self._callbacks.remove(callback)


def _resolve(future: asyncio.Future[None]) -> None:
    if not future.done():  # a waiter that timed out cancelled it
        future.set_result(None)
