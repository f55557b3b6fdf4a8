"""The widget's frame socket (frame_socket.py) over real loopback WebSockets, a tornado
client playing the browser page; then DisplayWidget choosing socket or comm."""

from __future__ import annotations

import asyncio
import json
import logging
import struct
import threading
from collections.abc import Awaitable, Callable
from typing import Any

import pytest
import tornado.websocket

from atp_notebook.notebook.widget import DisplayWidget
from atp_notebook.notebook.widget.frame_socket import (
    MAX_SOCKETS,
    FrameEndpoint,
    frame_server,
    pack_frame,
)
from atp_notebook.spice.display.live import Frame
from atp_notebook.spice.display.surfaces import Box
from tests.unit.test_widget_display import (  # vm and widget: the fixtures
    FakeVm,
    say,
    vm,  # noqa: F401
    wait_live,
    widget,  # noqa: F401
)

WAIT_S = 10.0
Client = tornado.websocket.WebSocketClientConnection


def unpack(data: bytes | str | None) -> tuple[dict[str, Any], list[bytes]]:
    """What the view's unpackFrame does (display_widget.js)."""
    assert isinstance(data, bytes), data
    (length,) = struct.unpack_from("<I", data)
    header = json.loads(data[4:4 + length])
    buffers, offset = [], 4 + length
    for size in header["sizes"]:
        buffers.append(data[offset:offset + size])
        offset += size
    assert offset == len(data)
    return header, buffers


def test_a_packed_frame_is_length_header_then_buffers() -> None:
    data = pack_frame({"type": "frame", "n": 3}, [b"ab", b"", b"xyz"])
    header = b'{"type":"frame","n":3,"sizes":[2,0,3]}'
    assert data == struct.pack("<I", len(header)) + header + b"abxyz"
    assert unpack(data) == ({"type": "frame", "n": 3, "sizes": [2, 0, 3]}, [b"ab", b"", b"xyz"])


class Receiver:
    def __init__(self) -> None:
        self.events: list[tuple[str, Any]] = []
        self.changed = threading.Condition()

    def _add(self, event: tuple[str, Any]) -> None:
        with self.changed:
            self.events.append(event)
            self.changed.notify_all()

    def socket_opened(self) -> None:
        self._add(("opened", None))

    def socket_message(self, message: dict[str, Any]) -> None:
        self._add(("message", message))

    def socket_closed(self) -> None:
        self._add(("closed", None))

    def wait_for(self, count: int) -> list[tuple[str, Any]]:
        with self.changed:
            assert self.changed.wait_for(lambda: len(self.events) >= count, WAIT_S), self.events
            return list(self.events)


@pytest.fixture
def endpoint() -> Any:
    receiver = Receiver()
    end = frame_server().endpoint(receiver)
    yield end
    end.close()


def run(page: Callable[[], Awaitable[Any]]) -> Any:
    return asyncio.run(asyncio.wait_for(page(), WAIT_S))


async def connect(url: str) -> Client:
    return await tornado.websocket.websocket_connect(url)


def test_frames_reach_the_page_and_its_acks_reach_the_widget(endpoint: FrameEndpoint) -> None:
    receiver = endpoint.receiver
    assert isinstance(receiver, Receiver)
    payload = pack_frame({"type": "frame", "n": 1}, [bytes(range(256)) * 400])

    async def page() -> bytes | str | None:
        client = await connect(endpoint.url)
        receiver.wait_for(1)
        endpoint.send(payload)
        got = await client.read_message()
        await client.write_message(json.dumps({"type": "ack", "n": 1}))
        receiver.wait_for(2)
        client.close()
        return got

    assert run(page) == payload
    assert receiver.wait_for(3) == [("opened", None), ("message", {"type": "ack", "n": 1}),
                                    ("closed", None)]


def test_an_unknown_token_is_refused(endpoint: FrameEndpoint) -> None:
    async def page() -> tuple[int | None, str | None]:
        client = await connect(endpoint.url[:-4] + "AAAA")
        assert await client.read_message() is None
        return client.close_code, client.close_reason

    assert run(page) == (4003, "unknown widget")
    assert endpoint.receiver.events == []  # type: ignore[attr-defined]


@pytest.mark.parametrize(("message", "code"), [
    (b"\x00binary", 1003),
    ("[1, 2]", 1003),
    ("{not json", 1003),
    ("x" * 5000, 1009),  # past MAX_MESSAGE: tornado's own limit
])
def test_a_hostile_page_message_closes_its_socket_only(endpoint: FrameEndpoint,
                                                        message: bytes | str,
                                                        code: int) -> None:
    receiver = endpoint.receiver
    assert isinstance(receiver, Receiver)

    async def page() -> tuple[int | None, bytes | str | None]:
        bad, good = await connect(endpoint.url), await connect(endpoint.url)
        receiver.wait_for(2)
        await bad.write_message(message, binary=isinstance(message, bytes))
        assert await bad.read_message() is None
        endpoint.send(b"still here")
        return bad.close_code, await good.read_message()

    assert run(page) == (code, b"still here")
    events = receiver.wait_for(3)
    assert [kind for kind, _ in events] == ["opened", "opened", "closed"]


def test_a_widget_has_a_bounded_number_of_sockets(endpoint: FrameEndpoint) -> None:
    async def page() -> int | None:
        clients = [await connect(endpoint.url) for _ in range(MAX_SOCKETS)]
        extra = await connect(endpoint.url)
        assert await extra.read_message() is None
        for client in clients:
            client.close()
        return extra.close_code

    assert run(page) == 4008


def test_closing_the_endpoint_closes_its_sockets_and_refuses_new_ones(
        endpoint: FrameEndpoint) -> None:
    async def page() -> tuple[int | None, int | None]:
        client = await connect(endpoint.url)
        endpoint.receiver.wait_for(1)  # type: ignore[attr-defined]
        endpoint.close()
        assert await client.read_message() is None
        late = await connect(endpoint.url)
        assert await late.read_message() is None
        return client.close_code, late.close_code

    assert run(page) == (1000, 4003)


def test_the_token_never_reaches_a_repr_or_a_log(endpoint: FrameEndpoint,
                                                 caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG)

    async def page() -> None:
        client = await connect(endpoint.url)
        await client.write_message("[]")  # a warning is logged
        await client.read_message()

    run(page)
    assert endpoint.token not in repr(endpoint) + repr(frame_server())
    assert caplog.records, "nothing logged: the check saw nothing"
    assert all(endpoint.token not in r.getMessage() for r in caplog.records)


# --- the widget choosing its way ----------------------------------------------------------


def damage(vm: FakeVm, value: int) -> None:  # noqa: F811
    vm.display.screen[0:10, 0:10] = value
    assert vm.display.listener is not None
    vm.display.listener(Frame(1, (Box(0, 0, 10, 10),), 0.0, (720, 400)))


def test_frames_move_to_the_socket_and_back_to_the_comm_when_it_closes(
        widget: Any, vm: FakeVm) -> None:  # noqa: F811
    wait_live(widget)
    say(widget, type="hello")
    first, _ = widget.send.wait_for(1)[0]  # by comm: no socket yet
    assert widget.transport == "comm"

    async def page() -> list[dict[str, Any]]:
        client = await connect(widget.frame_socket)
        whole, buffers = unpack(await client.read_message())  # the whole screen again
        assert whole["tiles"] == [[0, 0, 720, 400, "png"]] and buffers[0][:4] == b"\x89PNG"
        await client.write_message(json.dumps({"type": "ack", "n": whole["n"]}))
        damage(vm, 200)
        small, _ = unpack(await client.read_message())
        client.close()
        return [whole, small]

    whole, small = run(page)
    assert first["n"] < whole["n"] < small["n"]
    assert small["tiles"] == [[0, 0, 64, 64, "rgba"]]
    assert len(widget.send.sent) == 1  # nothing by comm while the socket carried them
    for _ in range(int(WAIT_S / 0.01)):
        if widget.transport == "comm":
            break
        threading.Event().wait(0.01)
    assert widget.transport == "comm"
    after, _ = widget.send.wait_for(2)[1]  # the whole screen, by comm again
    assert after["n"] > small["n"] and after["tiles"] == [[0, 0, 720, 400, "png"]]


def test_a_page_without_the_socket_gets_frames_by_comm_beside_one_with_it(
        widget: Any, vm: FakeVm) -> None:  # noqa: F811
    wait_live(widget)
    say(widget, type="hello")
    widget.send.wait_for(1)

    async def page() -> tuple[str, int]:
        client = await connect(widget.frame_socket)
        whole, _ = unpack(await client.read_message())
        await client.write_message(json.dumps({"type": "ack", "n": whole["n"]}))
        say(widget, type="frames", via="comm", page="another-page")  # its socket failed
        again, _ = unpack(await client.read_message())
        transport = widget.transport
        client.close()
        return transport, again["n"]

    transport, number = run(page)
    assert transport == "socket+comm"
    by_comm = [c for c, _ in widget.send.wait_for(2) if c["n"] == number]
    assert by_comm and by_comm[0]["tiles"] == [[0, 0, 720, 400, "png"]]  # same frame, both


def test_a_comm_only_widget_names_no_socket(vm: FakeVm) -> None:  # noqa: F811
    comm_only = DisplayWidget(vm, transport="comm")  # type: ignore[arg-type]
    try:
        assert comm_only.frame_socket == ""
        assert comm_only.transport == "comm"
    finally:
        comm_only.close()
