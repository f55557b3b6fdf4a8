"""Listeners fan out to everyone, survive a broken one, and go away when their handle closes
(on a real HostConnection too: no connection needs to be open to listen)."""

from __future__ import annotations

import logging

import pytest

from atp_notebook.listeners import ListenerHandle, Listeners
from atp_notebook.virt.host import HostConnection, HostState


def test_every_listener_hears_every_event_in_order() -> None:
    listeners: Listeners[int] = Listeners(logging.getLogger("test"))
    heard: list[tuple[str, int]] = []
    listeners.add(lambda e: heard.append(("display", e)))
    listeners.add(lambda e: heard.append(("widget", e)))
    listeners.emit(1)
    listeners.emit(2)
    assert heard == [("display", 1), ("widget", 1), ("display", 2), ("widget", 2)]


def test_a_failing_listener_is_logged_and_the_others_still_hear(
    caplog: pytest.LogCaptureFixture,
) -> None:
    listeners: Listeners[str] = Listeners(logging.getLogger("test.listeners"))
    heard: list[str] = []

    def broken(_event: str) -> None:
        raise RuntimeError("a consumer's bug")

    listeners.add(broken)
    listeners.add(heard.append)
    listeners.emit("frame")
    assert heard == ["frame"]
    assert "a consumer's bug" in caplog.text


def test_a_closed_handle_removes_its_listener_once_and_for_all() -> None:
    listeners: Listeners[int] = Listeners(logging.getLogger("test"))
    heard: list[int] = []
    handle = listeners.add(heard.append)
    with listeners.add(lambda _e: None):
        assert len(listeners) == 2
    assert len(listeners) == 1
    handle.close()
    handle.close()  # harmless
    listeners.emit(3)
    assert heard == [] and len(listeners) == 0 and handle.closed


def test_a_listener_may_remove_itself_while_hearing() -> None:
    listeners: Listeners[int] = Listeners(logging.getLogger("test"))
    heard: list[int] = []
    handles: list[ListenerHandle] = []

    def once(event: int) -> None:
        heard.append(event)
        handles[0].close()

    handles.append(listeners.add(once))
    listeners.emit(1)
    listeners.emit(2)
    assert heard == [1]


def test_a_hundred_subscribe_close_cycles_on_a_host_leave_no_listener() -> None:
    host = HostConnection("nowhere", "qemu+tcp://127.0.0.1:1/system")
    before = len(host.listeners)
    for _ in range(100):
        host.on_state_change(lambda _state: None).close()
    assert len(host.listeners) == before == 0
    kept = host.on_state_change(lambda _state: None)
    assert len(host.listeners) == 1
    kept.close()
    assert HostState.IDLE is host.state  # listening opened nothing
