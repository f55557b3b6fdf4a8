"""``VmSpice``: typing, key combos and clicks on a VM's Spice Inputs channel, blocking or async.

The Spice objects live on the atp loop: the blocking methods run their coroutine there with
``get_loop().call``; the ``_async`` twins await it from *any* event loop (the coroutine still
runs on the atp loop, the caller awaits a wrapped future). The Spice vm_id is the VM name.

Example::

    vm = connect().vm("atp-vm1")
    vm.type("echo hello\\n")                 # via vm.spice_input
    vm.press("ctrl-alt-delete")
    await vm.type_async("ls\\n", layout="de")
"""

from __future__ import annotations

import asyncio
from collections.abc import Coroutine
from typing import TYPE_CHECKING, Any, TypeVar

from atp_notebook.errors import InvalidArgument, LocalProtocolError
from atp_notebook.loop import get_loop
from atp_notebook.spice.aio.channel import SpiceChannel
from atp_notebook.spice.inputs import DEFAULT_RATE, SpiceKeyboard
from atp_notebook.spice.keymaps import layout as keyboard_layout
from atp_notebook.spice.proto import InputsProtocol
from atp_notebook.spice.proto.constants import ChannelType, MouseButton, MouseMode
from atp_notebook.spice.vm import SpiceVmConnection

if TYPE_CHECKING:
    from atp_notebook.transport import TransportManager

T = TypeVar("T")

DEFAULT_TIMEOUT_S = 30.0
# server mouse mode: a relative move this far up-left pins the pointer at the screen's corner
HOME_MOTION = -10_000
BUTTONS = {"left": MouseButton.LEFT, "middle": MouseButton.MIDDLE, "right": MouseButton.RIGHT}
MOUSE_MODES = {"client": MouseMode.CLIENT, "server": MouseMode.SERVER}


def typing_timeout(text: str, rate: float | None) -> float:
    """Enough time to type ``text`` at ``rate`` strokes/s (two strokes a character at most)."""
    per_second = rate or DEFAULT_RATE
    return DEFAULT_TIMEOUT_S + 2 * len(text) / per_second


async def on_atp_loop(coro: Coroutine[Any, Any, T]) -> T:
    """Await ``coro`` run on the atp loop, from whatever event loop the caller is on."""
    future = asyncio.run_coroutine_threadsafe(coro, get_loop().loop)
    return await asyncio.wrap_future(future)


class VmSpice:
    """One VM's Spice input: ``type``, ``press``, ``click`` and their ``_async`` twins."""

    def __init__(self, manager: TransportManager, vm_id: str) -> None:
        self.manager = manager
        self.vm_id = vm_id

    def __repr__(self) -> str:
        return f"<VmSpice {self.vm_id}>"

    def _call(self, coro: Coroutine[Any, Any, T], timeout: float) -> T:
        return get_loop().call(coro, timeout)

    # --- the connection ------------------------------------------------------------------

    async def _connection(self) -> SpiceVmConnection:
        return await self.manager.get_spice_connection(self.vm_id)

    def connection(self, timeout: float = DEFAULT_TIMEOUT_S) -> SpiceVmConnection:
        """The VM's SpiceVmConnection (channels open on demand; use it on the atp loop)."""
        return self._call(self._connection(), timeout)

    async def connection_async(self) -> SpiceVmConnection:
        return await on_atp_loop(self._connection())

    async def _inputs(self) -> SpiceChannel:
        connection = await self._connection()
        return await connection.open_channel(ChannelType.INPUTS)

    # --- keyboard ------------------------------------------------------------------------

    async def _type(self, text: str, layout: str, rate: float | None) -> int:
        keyboard_layout(layout).plan(text)  # UntypableText before the channel is even opened
        keyboard = SpiceKeyboard(await self._inputs(), layout=layout,
                                 rate=DEFAULT_RATE if rate is None else rate)
        return await keyboard.type(text)

    def type(self, text: str, layout: str = "us", rate: float | None = None,
             timeout: float | None = None) -> int:
        """Type ``text`` with ``layout``'s keys at ``rate`` strokes/s (None: the default,
        50); returns the strokes sent. A character the layout cannot type raises
        ``UntypableText`` and nothing is sent."""
        return self._call(self._type(text, layout, rate),
                          timeout if timeout is not None else typing_timeout(text, rate))

    async def type_async(self, text: str, layout: str = "us", rate: float | None = None) -> int:
        return await on_atp_loop(self._type(text, layout, rate))

    async def _press(self, combo: str, layout: str) -> None:
        keyboard_layout(layout).combo(combo)  # a bad combo raises before anything is sent
        keyboard = SpiceKeyboard(await self._inputs(), layout=layout)
        await keyboard.press(combo)

    def press(self, combo: str, layout: str = "us", timeout: float = DEFAULT_TIMEOUT_S) -> None:
        """Press a combination such as ``ctrl-c`` or ``ctrl-alt-delete`` and release it."""
        self._call(self._press(combo, layout), timeout)

    async def press_async(self, combo: str, layout: str = "us") -> None:
        await on_atp_loop(self._press(combo, layout))

    # --- mouse ---------------------------------------------------------------------------

    async def _pointer(self) -> tuple[SpiceChannel, InputsProtocol, MouseMode]:
        """The Inputs channel and the mouse mode to use: client mode whenever offered."""
        channel = await self._inputs()
        inputs = channel.protocol
        if not isinstance(inputs, InputsProtocol):
            raise LocalProtocolError(f"{channel!r} is not an open Inputs channel")
        connection = await self._connection()
        main = await connection.main()
        # Main asks for client mode by itself; a click right after the link may beat the
        # server's answer, so wait for it here
        if (main.preferred_mouse_mode is MouseMode.CLIENT and MouseMode.CLIENT in
                main.mouse_modes and main.mouse_mode is not MouseMode.CLIENT):
            await connection.set_mouse_mode(MouseMode.CLIENT)
        return channel, inputs, main.mouse_mode

    @staticmethod
    def _place(inputs: InputsProtocol, mode: MouseMode, x: int, y: int) -> None:
        """Queue the pointer's move to ``x``, ``y`` (callers checked them: not negative)."""
        if MouseMode.CLIENT in mode:
            inputs.position(x, y)
        else:
            # relative motion from an unknown origin: pin the pointer in the top-left corner,
            # then move by (x, y); guest pointer acceleration may make it land elsewhere
            inputs.motion(HOME_MOTION, HOME_MOTION)
            inputs.motion(x, y)

    async def _click(self, x: int, y: int, button: str) -> MouseMode:
        found = BUTTONS.get(button)
        if found is None:
            raise InvalidArgument(f"unknown mouse button {button!r}: use {', '.join(BUTTONS)}")
        if x < 0 or y < 0:
            raise InvalidArgument(f"click position {x},{y} is off the screen")
        channel, inputs, mode = await self._pointer()
        channel.ensure_open()
        self._place(inputs, mode, x, y)
        inputs.button_press(found)
        inputs.button_release(found)
        await channel.send()
        return mode

    def click(self, x: int, y: int, button: str = "left",
              timeout: float = DEFAULT_TIMEOUT_S) -> MouseMode:
        """Click ``button`` (left, middle, right) at ``x``, ``y``; returns the mouse mode used.

        Client mouse mode (used whenever the server offers it: the VM has a tablet or a
        vdagent): an absolute MOUSE_POSITION in display pixels, then press and release -
        exact. Server mouse mode: the pointer's place is unknown, so a large relative motion
        first pins it in the top-left corner, then a motion of (x, y) moves it; a guest that
        accelerates or scales relative motion puts it elsewhere. A best effort there.
        """
        return self._call(self._click(x, y, button), timeout)

    async def click_async(self, x: int, y: int, button: str = "left") -> MouseMode:
        return await on_atp_loop(self._click(x, y, button))

    async def _move(self, x: int, y: int) -> MouseMode:
        if x < 0 or y < 0:
            raise InvalidArgument(f"mouse position {x},{y} is off the screen")
        channel, inputs, mode = await self._pointer()
        channel.ensure_open()
        self._place(inputs, mode, x, y)
        await channel.send()
        return mode

    def move(self, x: int, y: int, timeout: float = DEFAULT_TIMEOUT_S) -> MouseMode:
        """Move the pointer to ``x``, ``y`` without clicking (see :meth:`click`)."""
        return self._call(self._move(x, y), timeout)

    async def move_async(self, x: int, y: int) -> MouseMode:
        return await on_atp_loop(self._move(x, y))

    async def _set_mouse_mode(self, mode: str) -> MouseMode:
        wanted = MOUSE_MODES.get(mode)
        if wanted is None:
            raise InvalidArgument(f"unknown mouse mode {mode!r}: use {', '.join(MOUSE_MODES)}")
        connection = await self._connection()
        await connection.set_mouse_mode(wanted)
        return wanted

    def set_mouse_mode(self, mode: str, timeout: float = DEFAULT_TIMEOUT_S) -> MouseMode:
        """Switch the VM's Spice mouse mode to ``client`` (absolute) or ``server``
        (relative) and keep it there; raises SpiceCommandError when the server does not
        offer it. The mode belongs to the VM: every Spice client of it sees the change."""
        return self._call(self._set_mouse_mode(mode), timeout)

    async def set_mouse_mode_async(self, mode: str) -> MouseMode:
        return await on_atp_loop(self._set_mouse_mode(mode))
