"""``vm.cursor``: the guest pointer's shape, hot spot, position and visibility (Spice cursor).

The cursor channel opens on first use (each qxl head has its own: cursor channel N goes with
display channel N) and its core (:mod:`atp_notebook.spice.proto.cursor`) keeps the state;
this facade hands out frozen :class:`CursorSnapshot` copies of it, the shape decoded to RGBA
(:mod:`atp_notebook.spice.cursor_image`). Each operation is one coroutine on the atp loop,
blocking under its plain name and async under ``_async`` (:mod:`atp_notebook.bridge`).

Faults stay on this channel: when it ends (the server closed it, hostile bytes, a killed
socket) a call waiting on it raises ``RemoteProtocolError`` (the server sent garbage) or
``ChannelClosed``, and the next call links it again; Main, Inputs and Display go on.

Position is the hot spot's place on the screen, as the server sends it; the shape's top
left corner is at ``position - hotspot``. Two spice-server 0.15 facts (``cursor-channel.cpp``
``process_cmd``, seen in the lab): in client mouse mode the guest's moves are not passed on
(the client owns the pointer there), and the position a new link's INIT carries is the last
*move*'s: a client linking after the guest set a cursor (with its position) but before any
move sees (0, 0) until the next move. ``wait_for_cursor(None)`` waits for a change after the
call; a change that came before it does not count, so prefer a predicate.

Example::

    vm = connect().vm("atp-disp-cursor")
    now = vm.cursor.state()                 # CursorSnapshot, channel opened if needed
    now.position, now.hotspot, now.shown    # (512, 384), (0, 0), True
    now.shape.save("pointer.png")           # PIL RGBA (None without a shape)
    moved = vm.cursor.wait_for_cursor(lambda c: c.position == (100, 80), timeout=10)
    vm.cursor.wait_for_cursor(timeout=10)   # the next change of any kind
    vm.screenshot(cursor=True)              # the screen with the pointer drawn in
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING

from PIL import Image

from atp_notebook.bridge import atp_async, atp_blocking, within
from atp_notebook.errors import AtpError, ChannelClosed, OperationTimeout, RemoteProtocolError
from atp_notebook.spice.aio.channel import ChannelStatus, SpiceChannel
from atp_notebook.spice.cursor_image import CursorImage, U8Array, composite_cursor, decode_cursor
from atp_notebook.spice.proto.constants import ChannelType
from atp_notebook.spice.proto.cursor import CursorProtocol, CursorShape
from atp_notebook.spice.vm import SpiceVmConnection
from atp_notebook.spice.vm_events import ChannelEnded, ChannelMessage, SpiceVmEvent

if TYPE_CHECKING:
    from atp_notebook.transport import TransportManager

__all__ = ["DEFAULT_TIMEOUT_S", "CursorSnapshot", "VmCursor", "draw_cursor"]

DEFAULT_TIMEOUT_S = 30.0
REOPEN_HINT = "call again: the cursor channel reopens on its next use"


@dataclass(frozen=True, eq=False)
class CursorSnapshot:
    """The pointer at one moment. ``image`` is the decoded shape (None: the guest set no
    cursor); ``shown`` is what a user sees: visible and a shape. Two snapshots are equal
    when position, visibility and the server's shape bytes are."""

    position: tuple[int, int]
    visible: bool
    raw_shape: CursorShape | None
    image: CursorImage | None
    channel_id: int = 0

    @property
    def shape(self) -> Image.Image | None:
        """The shape as a PIL RGBA image (a new one per call), None without a shape."""
        return None if self.image is None else self.image.to_pil()

    @property
    def hotspot(self) -> tuple[int, int] | None:
        return None if self.raw_shape is None else self.raw_shape.hotspot

    @property
    def size(self) -> tuple[int, int] | None:
        """(width, height) of the shape."""
        return None if self.raw_shape is None else (self.raw_shape.width,
                                                     self.raw_shape.height)

    @property
    def shown(self) -> bool:
        return self.visible and self.image is not None

    @property
    def top_left(self) -> tuple[int, int] | None:
        """Where the shape's top left pixel lands on the screen."""
        hot = self.hotspot
        return None if hot is None else (self.position[0] - hot[0], self.position[1] - hot[1])

    def _key(self) -> tuple[object, ...]:
        return (self.position, self.visible, self.raw_shape)

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, CursorSnapshot):
            return NotImplemented
        return self._key() == other._key()

    def __hash__(self) -> int:
        return hash(self._key())

    def __repr__(self) -> str:
        # stable text for notebooks: no object ids
        if self.raw_shape is None:
            what = "no shape"
        else:
            what = (f"{self.raw_shape.cursor_type.name.lower()} {self.raw_shape.width}x"
                    f"{self.raw_shape.height} hotspot {self.hotspot}")
        return (f"<CursorSnapshot at {self.position} "
                f"{'visible' if self.visible else 'hidden'}, {what}>")


def draw_cursor(pixels: U8Array, cursor: CursorSnapshot,
                origin: tuple[int, int] = (0, 0)) -> U8Array:
    """A copy of ``pixels`` (B,G,R,X, as the display's surfaces) with the cursor drawn in
    when it is shown; ``origin`` is where ``pixels`` lies on the screen (a region's x, y)."""
    if not cursor.shown or cursor.image is None:
        return pixels.copy()
    position = (cursor.position[0] - origin[0], cursor.position[1] - origin[1])
    return composite_cursor(pixels, cursor.image, position, order="bgr")


class VmCursor:
    """One cursor channel of one VM (``channel_id`` 0 goes with the first head)."""

    def __init__(self, manager: TransportManager, vm_id: str, channel_id: int = 0) -> None:
        self.manager = manager
        self.vm_id = vm_id
        self.channel_id = channel_id
        # the last decoded shape: a MOVE keeps the shape, so it is decoded once
        self._decoded: tuple[CursorShape, CursorImage] | None = None

    def __repr__(self) -> str:
        return f"<VmCursor {self.vm_id}:{self.channel_id}>"

    @property
    def spice(self) -> SpiceVmConnection:
        return self.manager.spice_connection(self.vm_id)

    @property
    def status(self) -> str:
        """The cursor channel's state as ``vm.spice.channels()`` words it (``"not opened"``
        before first use); nothing is opened."""
        for info in self.spice.channels():
            if info.type == "cursor" and info.id == self.channel_id:
                return info.status
        return "not opened"

    # --- the channel ----------------------------------------------------------------------

    async def _initialised(self, timeout: float) -> tuple[SpiceChannel, CursorProtocol]:
        """The open channel once the server's INIT arrived (it follows the link at once)."""
        channel = await self.spice.open_channel(ChannelType.CURSOR, self.channel_id, timeout)
        protocol = channel.protocol
        if not isinstance(protocol, CursorProtocol):
            raise ChannelClosed(f"{self.vm_id}: cursor channel {self.channel_id} ended as it "
                                "opened", hint=REOPEN_HINT)
        if not protocol.initialised:
            await self._next_message(channel, lambda: protocol.initialised)
        return channel, protocol

    async def _next_message(self, channel: SpiceChannel, done: Callable[[], bool]) -> None:
        """Until ``done()`` holds after a message of this channel; the channel ending first
        raises the error for this call."""
        wake = asyncio.Event()
        ended: list[str] = []

        def hear(event: SpiceVmEvent) -> None:
            if isinstance(event, ChannelMessage | ChannelEnded) and \
                    event.channel_type is ChannelType.CURSOR and \
                    event.channel_id == self.channel_id:
                if isinstance(event, ChannelEnded):
                    ended.append(event.error)
                wake.set()

        with self.spice.add_listener(hear):
            while not done():
                if ended or channel.status is not ChannelStatus.OPEN:
                    raise self._ended_error(channel, ended[0] if ended else None)
                wake.clear()
                await wake.wait()

    def _ended_error(self, channel: SpiceChannel, why: str | None) -> AtpError:
        cause = channel.error
        text = why or (cause.message if isinstance(cause, AtpError) else str(cause or
                                                                             "closed"))
        message = f"{self.vm_id}: cursor channel {self.channel_id} ended: {text}"
        if isinstance(cause, RemoteProtocolError):
            error: AtpError = RemoteProtocolError(message, hint=REOPEN_HINT)
        else:
            error = ChannelClosed(message, hint=REOPEN_HINT)
        error.__cause__ = cause
        return error

    def _snapshot(self, protocol: CursorProtocol) -> CursorSnapshot:
        now = protocol.cursor_state
        image = None
        if now.shape is not None:
            decoded = self._decoded
            if decoded is None or decoded[0] != now.shape:
                decoded = self._decoded = (now.shape, decode_cursor(now.shape))
            image = decoded[1]
        return CursorSnapshot(now.position, now.visible, now.shape, image, self.channel_id)

    # --- operations ----------------------------------------------------------------------

    async def _state(self, timeout: float = DEFAULT_TIMEOUT_S) -> CursorSnapshot:
        """The pointer now (the channel opened and its INIT waited for if needed)."""
        async with within(timeout, f"{self.vm_id}: cursor channel {self.channel_id}",
                          "no CURSOR_INIT"):
            _, protocol = await self._initialised(timeout)
            return self._snapshot(protocol)

    async def _wait_for_cursor(self, predicate: Callable[[CursorSnapshot], bool] | None = None,
                               timeout: float = DEFAULT_TIMEOUT_S) -> CursorSnapshot:
        """The first snapshot for which ``predicate`` holds (checked now and after each
        cursor message); without one, the first that differs from the pointer now."""
        seen: list[CursorSnapshot] = []  # the last one checked
        try:
            async with within(timeout, f"{self.vm_id}: cursor channel {self.channel_id}",
                              "no cursor matching the wait"):
                channel, protocol = await self._initialised(timeout)
                if predicate is None:
                    predicate = self._snapshot(protocol).__ne__

                def matches() -> bool:
                    seen[:] = [self._snapshot(protocol)]
                    return predicate(seen[0])

                await self._next_message(channel, matches)
                return seen[0]
        except OperationTimeout as exc:
            if not seen:
                raise
            raise OperationTimeout(f"{exc.message}; the cursor then: {seen[0]!r}",
                                   hint=exc.hint) from None

    async def _close(self) -> None:
        """Close the cursor channel (it opens again on next use)."""
        with contextlib.suppress(AtpError):
            await self.spice.close_channel(ChannelType.CURSOR, self.channel_id)

    state = atp_blocking(_state)
    state_async = atp_async(_state)
    wait_for_cursor = atp_blocking(_wait_for_cursor)
    wait_for_cursor_async = atp_async(_wait_for_cursor)
    close = atp_blocking(_close)
    close_async = atp_async(_close)

    # the pointer now, each a blocking state() (the channel opened if needed)
    @property
    def position(self) -> tuple[int, int]:
        return self.state().position

    @property
    def hotspot(self) -> tuple[int, int] | None:
        return self.state().hotspot

    @property
    def visible(self) -> bool:
        return self.state().visible

    @property
    def shape(self) -> Image.Image | None:
        return self.state().shape
