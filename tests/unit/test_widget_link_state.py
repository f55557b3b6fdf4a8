"""link_state.py: what a widget's status line says as its Spice connection comes and goes."""

from __future__ import annotations

import pytest

from atp_notebook.notebook.widget.link_state import CLICK_TO_RECONNECT, LinkState
from atp_notebook.spice.proto.constants import ChannelType
from atp_notebook.spice.vm_events import (
    ChannelEnded,
    ChannelOpened,
    ConnectionLost,
    InputFailed,
    SpiceVmEvent,
)

VM = "atp-vm1"
LOST = ConnectionLost(VM, "the Spice server closed the connection")
DISPLAY_ENDED = ChannelEnded(VM, ChannelType.DISPLAY, 0, "closed by the server")
OTHER_HEAD_ENDED = ChannelEnded(VM, ChannelType.DISPLAY, 1, "closed by the server")
INPUTS_ENDED = ChannelEnded(VM, ChannelType.INPUTS, 0, "closed by the server")


def live() -> LinkState:
    link = LinkState(0)
    link.connecting()
    link.opened()
    assert link.status == "live" and link.streaming
    return link


@pytest.mark.parametrize(("events", "vm_state", "status"), [
    ([LOST], "running", "taken over"),
    ([DISPLAY_ENDED, LOST], "running", "taken over"),  # the display's end heard first
    ([LOST, DISPLAY_ENDED], "running", "taken over"),
    ([LOST], "paused", "taken over"),
    ([LOST], "shut off", "VM gone (shut off)"),
    ([LOST], "crashed", "VM gone (crashed)"),
    ([LOST], "undefined", "VM gone (undefined)"),
    ([LOST], None, "connection lost"),  # a Spice-only VM: libvirt cannot tell
    ([DISPLAY_ENDED], "running", "the display channel ended: closed by the server"),
])
def test_a_loss_and_what_libvirt_says_make_the_status(events: list[SpiceVmEvent],
                                                       vm_state: str | None,
                                                       status: str) -> None:
    link = live()
    heard = [link.hear(e) for e in events]
    assert heard[0] is True
    assert not link.streaming
    assert link.classify(vm_state) == status + CLICK_TO_RECONNECT
    assert link.reconnectable


@pytest.mark.parametrize("event", [
    OTHER_HEAD_ENDED, INPUTS_ENDED,
    ChannelOpened(VM, ChannelType.DISPLAY, 0, secure=False),
    InputFailed(VM, "click at 1,1", RuntimeError("x")),
])
def test_other_events_leave_the_stream_alone(event: SpiceVmEvent) -> None:
    link = live()
    assert link.hear(event) is False
    assert link.streaming and link.status == "live"


def test_a_click_reconnects_only_a_lost_or_failed_link() -> None:
    link = LinkState(0)
    link.connecting()
    assert link.ask_reconnect() is False  # connecting already
    link.open_failed("atp-vm1: connection refused")
    assert link.status == "failed: atp-vm1: connection refused" + CLICK_TO_RECONNECT
    assert link.ask_reconnect() is True and link.reconnect_asked
    link.connecting()  # the reopen forgets the loss and the request
    assert not link.reconnect_asked and link.lost is None and not link.main_lost
    link.opened()
    assert link.ask_reconnect() is False  # live


def test_a_loss_while_connecting_ends_the_stream_as_soon_as_it_opens() -> None:
    link = LinkState(0)
    link.connecting()
    assert link.hear(LOST)
    link.opened()
    assert link.status == "live" and not link.streaming


def test_closed_is_the_end() -> None:
    link = live()
    link.close()
    assert link.hear(LOST) is False
    assert link.classify("running") == "closed"
    link.open_failed("late")
    link.opened()
    assert link.status == "closed" and not link.streaming and not link.ask_reconnect()


def test_the_display_opened_again_by_someone_else_here_resumes_a_lost_link() -> None:
    link = live()
    link.hear(LOST)
    link.classify("running")
    assert not link.reconnect_asked
    assert link.hear(ChannelOpened(VM, ChannelType.DISPLAY, 1, secure=False)) is False
    assert link.hear(ChannelOpened(VM, ChannelType.DISPLAY, 0, secure=False)) is True
    assert link.reconnect_asked
