"""The "atp loop": one asyncio event loop on a background thread, shared by the process.

All connections live on it, so a notebook cell that blocks never stalls keepalives, events or
Spice acks, and IPython's own loop is never ours to block. libvirt's event implementation
(``libvirtaio``) is registered on this loop *before* any libvirt connection is opened:
keepalive and close callbacks need it, and libvirt accepts one registration per process.

Blocking code reaches the loop through :func:`run`; async code on the loop uses it directly.

Example::

    from atp_notebook.loop import run
    result = run(some_coroutine(), timeout=5.0)
"""

from __future__ import annotations

import asyncio
import atexit
import concurrent.futures
import logging
import queue
import threading
from collections.abc import Callable, Coroutine
from typing import Any, TypeVar

import libvirtaio

from atp_notebook.errors import Interrupted, OperationTimeout
from atp_notebook.libvirt_errors import silence_libvirt

log = logging.getLogger("atp.loop")
T = TypeVar("T")

# libvirt calls made from other threads (the blocking facade, executors) may add timers on
# this loop without waking it; a short heartbeat bounds how late such a timer can fire.
HEARTBEAT_S = 0.25
SHUTDOWN_TIMEOUT_S = 5.0
# how long an interrupted call waits for its coroutine's cleanup (a guest-side kill)
INTERRUPT_CLEANUP_S = 5.0


class DaemonThreadPool:
    """A small executor whose threads are daemons.

    ``libvirt.open`` has no timeout and cannot be interrupted: against a host that accepts
    and never answers it blocks for good. ThreadPoolExecutor joins its threads at
    interpreter exit, so one such open would hang the exit of a notebook kernel or a test
    run; a daemon thread is simply left behind.
    """

    def __init__(self, max_workers: int, name: str) -> None:
        self.max_workers = max_workers
        self.name = name
        self._queue: queue.SimpleQueue[_WorkItem] = queue.SimpleQueue()
        self._lock = threading.Lock()
        self._threads = 0
        self._idle = 0  # threads waiting for work and not yet promised to a submit

    def submit(self, fn: Callable[..., T], /, *args: Any) -> concurrent.futures.Future[T]:
        future: concurrent.futures.Future[T] = concurrent.futures.Future()
        with self._lock:
            self._queue.put((future, fn, args))
            if self._idle:
                self._idle -= 1  # that thread will take this item
            elif self._threads < self.max_workers:
                self._threads += 1
                threading.Thread(target=self._work, name=f"{self.name}-{self._threads}",
                                 daemon=True).start()
        return future

    def _work(self) -> None:
        while True:
            future, fn, args = self._queue.get()
            outcome: tuple[bool, Any] = (False, None)
            if future.set_running_or_notify_cancel():
                try:
                    outcome = (True, fn(*args))
                except BaseException as exc:  # handed to whoever waits on the future
                    outcome = (False, exc)
            # idle *before* the waiter wakes: its next submit must find this thread, not
            # start another (sequential work would otherwise grow the pool to its cap)
            with self._lock:
                self._idle += 1
            if future.running():
                ok, value = outcome
                if ok:
                    future.set_result(value)
                else:
                    future.set_exception(value)
            del future, fn, args, outcome  # no reference kept while idle


_WorkItem = tuple["concurrent.futures.Future[Any]", "Callable[..., Any]", tuple[Any, ...]]


class AtpLoop:
    """The background event loop thread; use :func:`get_loop`, not this class directly."""

    def __init__(self) -> None:
        self.loop = asyncio.new_event_loop()
        # blocking libvirt calls run here, never on the loop thread
        self.executor = concurrent.futures.ThreadPoolExecutor(
            max_workers=32, thread_name_prefix="atp-io"
        )
        # opening and closing host connections get threads of their own: calls that wait
        # long (an event wait, a slow guest command, a wedged host) can fill the shared
        # executor, and must not keep a reconnect from starting
        self.host_executor = DaemonThreadPool(max_workers=16, name="atp-host")
        self.loop.set_default_executor(self.executor)
        self._ready = threading.Event()
        self._thread = threading.Thread(target=self._main, name="atp-loop", daemon=True)
        self._thread.start()
        self._ready.wait()
        silence_libvirt()
        # register on the loop's own thread, before anyone can open a connection
        self.call(self._register_libvirt())

    def _main(self) -> None:
        asyncio.set_event_loop(self.loop)
        self.loop.call_soon(self._ready.set)
        self.loop.call_soon(self._heartbeat)
        self.loop.run_forever()

    def _heartbeat(self) -> None:
        self.loop.call_later(HEARTBEAT_S, self._heartbeat)

    async def _register_libvirt(self) -> None:
        libvirtaio.virEventRegisterAsyncIOImpl(loop=self.loop)

    @property
    def thread(self) -> threading.Thread:
        return self._thread

    def in_loop_thread(self) -> bool:
        return threading.current_thread() is self._thread

    def call(self, coro: Coroutine[Any, Any, T], timeout: float | None = None, *,
             what: str | None = None) -> T:
        """Run ``coro`` on the loop from another thread and wait for its result.

        Kernel > Interrupt (Ctrl-C) while waiting cancels the coroutine, gives its cleanup
        (killing a guest process, closing a stream) up to :data:`INTERRUPT_CLEANUP_S` to
        finish, and raises :class:`Interrupted` naming ``what`` was interrupted.
        """
        if self.in_loop_thread():
            coro.close()
            raise RuntimeError("atp loop: a blocking call was made on the loop's own thread; "
                               "await the coroutine instead")
        ended = threading.Event()

        async def tracked() -> T:
            try:
                return await coro
            finally:
                ended.set()

        future = asyncio.run_coroutine_threadsafe(tracked(), self.loop)
        try:
            return future.result(timeout)
        except KeyboardInterrupt:
            future.cancel()  # the task is cancelled on the loop; its finally blocks run there
            ended.wait(INTERRUPT_CLEANUP_S)
            raise Interrupted(f"{what or 'the call'}: interrupted") from None
        except concurrent.futures.TimeoutError as exc:
            # OperationTimeout is a TimeoutError too: a finished future means the coroutine
            # raised its own timeout, which must reach the caller as it is
            if future.done():
                raise
            future.cancel()
            raise OperationTimeout(f"no result within {timeout} s") from exc

    def close(self) -> None:
        """Stop the loop (at interpreter exit): cancel tasks, then stop the thread."""
        if not self._thread.is_alive():
            return

        async def cancel_all() -> None:
            current = asyncio.current_task()
            tasks = [t for t in asyncio.all_tasks() if t is not current]
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)

        try:
            self.call(cancel_all(), timeout=SHUTDOWN_TIMEOUT_S)
        except Exception:  # shutting down anyway; never block interpreter exit
            log.debug("atp loop: tasks did not cancel cleanly", exc_info=True)
        self.loop.call_soon_threadsafe(self.loop.stop)
        self._thread.join(SHUTDOWN_TIMEOUT_S)


_instance: AtpLoop | None = None
_instance_lock = threading.Lock()


def get_loop() -> AtpLoop:
    """The process's atp loop, started on first use (libvirt events registered on it)."""
    global _instance  # noqa: PLW0603 - one loop per process, as libvirt requires
    with _instance_lock:
        if _instance is None:
            _instance = AtpLoop()
            atexit.register(_instance.close)
        return _instance


def run(coro: Coroutine[Any, Any, T], timeout: float | None = None) -> T:
    """Run a coroutine on the atp loop and wait for it (from any thread but the loop's)."""
    return get_loop().call(coro, timeout)
