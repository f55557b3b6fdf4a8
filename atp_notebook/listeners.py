"""Listeners that fan out and can be removed: a host's state changes, a VM's Spice events.

Several consumers listen to one source (a display, a widget and a metrics sink to one VM),
so every event goes to every listener, each listener is removed by closing the handle that
adding it returned, and one listener's exception is logged without reaching the others or
the source.

Example::

    handle = host.on_state_change(lambda state: print(state))
    ...
    handle.close()          # removed; closing again is harmless
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from typing import Generic, TypeVar

E = TypeVar("E")


class ListenerHandle:
    """What adding a listener returns: ``close()`` (or leaving ``with``) removes it."""

    def __init__(self, remove: Callable[[], None]) -> None:
        self._remove: Callable[[], None] | None = remove

    def close(self) -> None:
        remove, self._remove = self._remove, None
        if remove is not None:
            remove()

    @property
    def closed(self) -> bool:
        return self._remove is None

    def __enter__(self) -> ListenerHandle:
        return self

    def __exit__(self, *_: object) -> None:
        self.close()


class Listeners(Generic[E]):
    """Callbacks for events of type ``E``; ``emit`` calls each in the order added.

    Adding and removing are thread-safe; ``emit`` runs on the caller's thread (the sources
    here emit on the atp loop) over a snapshot, so a listener may remove itself.
    """

    def __init__(self, log: logging.Logger) -> None:
        self._log = log
        self._lock = threading.Lock()
        self._listeners: dict[int, Callable[[E], None]] = {}
        self._next = 0

    def __len__(self) -> int:
        return len(self._listeners)

    def add(self, listener: Callable[[E], None]) -> ListenerHandle:
        with self._lock:
            key = self._next
            self._next += 1
            self._listeners[key] = listener
        return ListenerHandle(lambda: self._discard(key))

    def _discard(self, key: int) -> None:
        with self._lock:
            self._listeners.pop(key, None)

    def emit(self, event: E) -> None:
        with self._lock:
            listeners = list(self._listeners.values())
        for listener in listeners:
            try:
                listener(event)
            except Exception:  # one consumer's bug must not reach the others or the source
                self._log.exception("listener %r failed on %r", listener, event)
