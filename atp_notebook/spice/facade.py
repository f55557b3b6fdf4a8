"""``VmSpice``: typing, key combos and the pointer on a VM's Spice Inputs channel.

Each operation is one coroutine run on the atp loop (where the Spice objects live); its
blocking form has the plain name, its async form (awaitable from any event loop) the
``_async`` name, both made from it (:mod:`atp_notebook.bridge`), so they take the same
arguments. Each bounds itself with its ``timeout``. The ``*_nowait`` methods are for widget
callbacks: they return at once, and a failure reaches the VM's listeners as ``InputFailed``.
The Spice vm_id is the VM name.

Example::

    vm = connect().vm("atp-vm1")
    vm.type("echo hello\\n")                 # via vm.spice_input
    vm.press("ctrl-alt-delete")
    await vm.type_async("ls\\n", layout="de")
    vm.spice_input.press_nowait("ctrl-c")    # from a widget's key handler
    vm.spice_input.button_down(10, 10); vm.spice_input.button_up(200, 150)   # a drag
    vm.spice_input.scroll(300, 200, -3)      # three notches down
"""

from __future__ import annotations

import asyncio
import concurrent.futures
from collections.abc import Coroutine
from typing import TYPE_CHECKING, Any

from atp_notebook.bridge import atp_async, atp_blocking, within
from atp_notebook.errors import InvalidArgument, LocalProtocolError
from atp_notebook.loop import get_loop
from atp_notebook.spice.aio.channel import SpiceChannel
from atp_notebook.spice.inputs import DEFAULT_RATE, SpiceKeyboard
from atp_notebook.spice.keymaps import layout as keyboard_layout
from atp_notebook.spice.proto import InputsProtocol
from atp_notebook.spice.proto.constants import ChannelType, MouseButton, MouseMode
from atp_notebook.spice.vm import SpiceVmConnection
from atp_notebook.spice.vm_events import InputFailed

if TYPE_CHECKING:
    from atp_notebook.transport import TransportManager

DEFAULT_TIMEOUT_S = 30.0
# server mouse mode: a relative move this far up-left pins the pointer at the screen's corner
HOME_MOTION = -10_000
BUTTONS = {"left": MouseButton.LEFT, "middle": MouseButton.MIDDLE, "right": MouseButton.RIGHT}
MOUSE_MODES = {"client": MouseMode.CLIENT, "server": MouseMode.SERVER}
# wheel notches in one scroll call: a browser's fastest fling is a few dozen
MAX_SCROLL_CLICKS = 100


def typing_timeout(text: str, rate: float | None) -> float:
    """Enough time to type ``text`` at ``rate`` strokes/s (two strokes a character at most)."""
    per_second = rate or DEFAULT_RATE
    return DEFAULT_TIMEOUT_S + 2 * len(text) / per_second


def mouse_button(button: str) -> MouseButton:
    found = BUTTONS.get(button)
    if found is None:
        raise InvalidArgument(f"unknown mouse button {button!r}: use {', '.join(BUTTONS)}")
    return found


class PointerPlacer:
    """Queues the pointer's moves on an Inputs channel in either mouse mode (sans-I/O).

    Client mode: an absolute MOUSE_POSITION in display pixels - exact. Server mode: the
    pointer's place is unknown, so a large relative motion first pins it in the top-left
    corner, then a motion of (x, y) moves it there; a guest that accelerates relative motion
    puts it elsewhere (a best effort). While a button is held (a drag) pinning would drag
    to the corner, so the pointer moves by the difference from where it was last put.

    Example::

        placer = PointerPlacer()
        placer.place(inputs, MouseMode.SERVER, 40, 30)   # motion(-10000, -10000), (40, 30)
        inputs.button_press(MouseButton.LEFT)
        placer.place(inputs, MouseMode.SERVER, 50, 30)   # motion(10, 0)
    """

    def __init__(self) -> None:
        # where the last server-mode placement put the pointer, on which channel's protocol
        self._last: tuple[InputsProtocol, int, int] | None = None

    def place(self, inputs: InputsProtocol, mode: MouseMode, x: int, y: int) -> None:
        if MouseMode.CLIENT in mode:
            inputs.position(x, y)
            self._last = None
            return
        last = self._last
        if inputs.buttons and last is not None and last[0] is inputs:
            inputs.motion(x - last[1], y - last[2])
        else:
            inputs.motion(HOME_MOTION, HOME_MOTION)
            inputs.motion(x, y)
        self._last = (inputs, x, y)


class VmSpice:
    """One VM's Spice input: ``type``, ``press``, ``click``, ``move`` (each with its
    ``_async`` form) and non-blocking ``*_nowait`` twins for widgets; a button held across moves
    (``button_down`` ... ``button_up``: a drag) and the wheel (``scroll``)."""

    def __init__(self, manager: TransportManager, vm_id: str) -> None:
        self.manager = manager
        self.vm_id = vm_id
        self._placer = PointerPlacer()

    def __repr__(self) -> str:
        return f"<VmSpice {self.vm_id}>"

    @property
    def spice(self) -> SpiceVmConnection:
        """The VM's connection object (nothing is opened; its coroutines run on the atp
        loop). Listeners added to it hear this VM's Spice events."""
        return self.manager.spice_connection(self.vm_id)

    # --- the connection ------------------------------------------------------------------

    async def _connection(self, timeout: float = DEFAULT_TIMEOUT_S) -> SpiceVmConnection:
        """The VM's SpiceVmConnection, connected: Main and the channels its configuration
        lists are open (others open on first use)."""
        return await self.spice.connect(timeout)

    async def _inputs(self, timeout: float) -> SpiceChannel:
        return await self.spice.open_channel(ChannelType.INPUTS, timeout=timeout)

    async def _screen_size(self, timeout: float = DEFAULT_TIMEOUT_S) -> tuple[int, int]:
        """The screen's width and height in pixels (the Spice primary surface)."""
        return await self.spice.screen_size(timeout)

    # --- keyboard ------------------------------------------------------------------------

    async def _type(self, text: str, layout: str = "us", rate: float | None = None,
                    timeout: float | None = None) -> int:
        """Type ``text`` with ``layout``'s keys at ``rate`` strokes/s (None: the default,
        50); returns the strokes sent. A character the layout cannot type raises
        ``UntypableText`` and nothing is sent. ``timeout`` defaults to enough for the text.
        """
        keyboard_layout(layout).plan(text)  # UntypableText before the channel is even opened
        bound = timeout if timeout is not None else typing_timeout(text, rate)
        async with within(bound, f"{self.vm_id}: typing {len(text)} characters"):
            keyboard = SpiceKeyboard(await self._inputs(bound), layout=layout,
                                     rate=DEFAULT_RATE if rate is None else rate)
            return await keyboard.type(text)

    async def _press(self, combo: str, layout: str = "us",
                     timeout: float = DEFAULT_TIMEOUT_S) -> None:
        """Press a combination such as ``ctrl-c`` or ``ctrl-alt-delete`` and release it."""
        keyboard_layout(layout).combo(combo)  # a bad combo raises before anything is sent
        async with within(timeout, f"{self.vm_id}: pressing {combo}"):
            keyboard = SpiceKeyboard(await self._inputs(timeout), layout=layout)
            await keyboard.press(combo)

    async def _send_scancodes(self, data: bytes, timeout: float = DEFAULT_TIMEOUT_S) -> None:
        """Send raw PC XT set-1 scancodes (make and break codes, E0-prefixed extended keys)
        as they are: for a widget that forwards single key downs and ups."""
        if not data:
            raise InvalidArgument("no scancodes to send")
        async with within(timeout, f"{self.vm_id}: sending scancodes"):
            channel = await self._inputs(timeout)
            channel.ensure_open()
            inputs = channel.protocol
            assert isinstance(inputs, InputsProtocol)
            inputs.send_scancodes(data)
            await channel.send()

    # --- mouse ---------------------------------------------------------------------------

    async def _pointer(self, x: int, y: int, timeout: float
                       ) -> tuple[SpiceChannel, InputsProtocol, MouseMode]:
        """The Inputs channel and the mouse mode to use (client mode whenever offered),
        once ``x``, ``y`` is known to be on the screen."""
        width, height = await self.spice.screen_size(timeout)
        if not (0 <= x < width and 0 <= y < height):
            raise InvalidArgument(f"position {x},{y} is off the screen of {self.vm_id} "
                                  f"({width}x{height}: x from 0 to {width - 1}, y from 0 to "
                                  f"{height - 1})")
        channel = await self._inputs(timeout)
        inputs = channel.protocol
        if not isinstance(inputs, InputsProtocol):
            raise LocalProtocolError(f"{channel!r} is not an open Inputs channel")
        connection = self.spice
        main = await connection.main(timeout)
        # Main asks for client mode by itself; a click right after the link may beat the
        # server's answer, so wait for it here
        if (main.preferred_mouse_mode is MouseMode.CLIENT and MouseMode.CLIENT in
                main.mouse_modes and main.mouse_mode is not MouseMode.CLIENT):
            await connection.set_mouse_mode(MouseMode.CLIENT, timeout)
        channel.ensure_open()
        return channel, inputs, main.mouse_mode

    async def _click(self, x: int, y: int, button: str = "left",
                     timeout: float = DEFAULT_TIMEOUT_S) -> MouseMode:
        """Click ``button`` (left, middle, right) at ``x``, ``y``; returns the mouse mode used.

        A position off the screen raises InvalidArgument naming the screen's size. Client
        mouse mode (used whenever the server offers it: the VM has a tablet or a vdagent):
        an absolute MOUSE_POSITION in display pixels, then press and release - exact. Server
        mouse mode: the pointer's place is unknown, so a large relative motion first pins it
        in the top-left corner, then a motion of (x, y) moves it; a guest that accelerates or
        scales relative motion puts it elsewhere. A best effort there.
        """
        found = mouse_button(button)
        async with within(timeout, f"{self.vm_id}: click at {x},{y}"):
            channel, inputs, mode = await self._pointer(x, y, timeout)
            self._placer.place(inputs, mode, x, y)
            inputs.button_press(found)
            inputs.button_release(found)
            await channel.send()
            return mode

    async def _move(self, x: int, y: int, timeout: float = DEFAULT_TIMEOUT_S) -> MouseMode:
        """Move the pointer to ``x``, ``y`` without clicking (see :meth:`click`)."""
        async with within(timeout, f"{self.vm_id}: move to {x},{y}"):
            channel, inputs, mode = await self._pointer(x, y, timeout)
            self._placer.place(inputs, mode, x, y)
            await channel.send()
            return mode

    async def _button(self, x: int, y: int, button: str, down: bool,
                      timeout: float = DEFAULT_TIMEOUT_S) -> MouseMode:
        """Move to ``x``, ``y`` and press (``down``) or release ``button``, leaving the
        other buttons as they are: a press, moves, then a release is a drag."""
        found = mouse_button(button)
        what = "press" if down else "release"
        async with within(timeout, f"{self.vm_id}: {what} {button} at {x},{y}"):
            channel, inputs, mode = await self._pointer(x, y, timeout)
            self._placer.place(inputs, mode, x, y)
            if down:
                inputs.button_press(found)
            else:
                inputs.button_release(found)
            await channel.send()
            return mode

    async def _button_down(self, x: int, y: int, button: str = "left",
                           timeout: float = DEFAULT_TIMEOUT_S) -> MouseMode:
        """Press ``button`` at ``x``, ``y`` and keep it held (see :meth:`click`)."""
        return await self._button(x, y, button, True, timeout)

    async def _button_up(self, x: int, y: int, button: str = "left",
                         timeout: float = DEFAULT_TIMEOUT_S) -> MouseMode:
        """Release ``button`` at ``x``, ``y``."""
        return await self._button(x, y, button, False, timeout)

    async def _scroll(self, x: int, y: int, clicks: int,
                      timeout: float = DEFAULT_TIMEOUT_S) -> MouseMode:
        """Turn the wheel ``clicks`` notches at ``x``, ``y``: positive up, negative down
        (Spice's UP / DOWN buttons, a press and a release per notch)."""
        if isinstance(clicks, bool) or not isinstance(clicks, int) or not (
                0 < abs(clicks) <= MAX_SCROLL_CLICKS):
            raise InvalidArgument(f"scroll: clicks {clicks!r} must be a non-zero int, at most "
                                  f"{MAX_SCROLL_CLICKS} either way")
        async with within(timeout, f"{self.vm_id}: scroll {clicks} at {x},{y}"):
            channel, inputs, mode = await self._pointer(x, y, timeout)
            self._placer.place(inputs, mode, x, y)
            inputs.scroll(clicks)
            await channel.send()
            return mode

    async def _set_mouse_mode(self, mode: str, timeout: float = DEFAULT_TIMEOUT_S) -> MouseMode:
        """Switch the VM's Spice mouse mode to ``client`` (absolute) or ``server``
        (relative) and keep it there; raises SpiceCommandError when the server does not
        offer it. The mode belongs to the VM: every Spice client of it sees the change."""
        wanted = MOUSE_MODES.get(mode)
        if wanted is None:
            raise InvalidArgument(f"unknown mouse mode {mode!r}: use {', '.join(MOUSE_MODES)}")
        await self.spice.set_mouse_mode(wanted, timeout)
        return wanted

    connection = atp_blocking(_connection)
    connection_async = atp_async(_connection)
    screen_size = atp_blocking(_screen_size)
    screen_size_async = atp_async(_screen_size)
    type = atp_blocking(_type)
    type_async = atp_async(_type)
    press = atp_blocking(_press)
    press_async = atp_async(_press)
    send_scancodes = atp_blocking(_send_scancodes)
    send_scancodes_async = atp_async(_send_scancodes)
    click = atp_blocking(_click)
    click_async = atp_async(_click)
    move = atp_blocking(_move)
    move_async = atp_async(_move)
    button_down = atp_blocking(_button_down)
    button_down_async = atp_async(_button_down)
    button_up = atp_blocking(_button_up)
    button_up_async = atp_async(_button_up)
    scroll = atp_blocking(_scroll)
    scroll_async = atp_async(_scroll)
    set_mouse_mode = atp_blocking(_set_mouse_mode)
    set_mouse_mode_async = atp_async(_set_mouse_mode)

    # --- non-blocking input, for widget callbacks -----------------------------------------

    def press_nowait(self, combo: str, layout: str = "us") -> None:
        """Queue a key combo and return at once; a failure reaches the listeners."""
        keyboard_layout(layout).combo(combo)  # a typo is the caller's to hear now
        self._post(self._press(combo, layout), f"press {combo}")

    def send_scancodes_nowait(self, data: bytes) -> None:
        """Queue raw set-1 scancodes (a key down or up) and return at once."""
        if not data:
            raise InvalidArgument("no scancodes to send")
        self._post(self._send_scancodes(data), "scancodes")

    def click_nowait(self, x: int, y: int, button: str = "left") -> None:
        """Queue a click and return at once; an off-screen position reaches the listeners."""
        mouse_button(button)
        self._post(self._click(x, y, button), f"click at {x},{y}")

    def move_nowait(self, x: int, y: int) -> None:
        """Queue a pointer move and return at once."""
        self._post(self._move(x, y), f"move to {x},{y}")

    def button_down_nowait(self, x: int, y: int, button: str = "left") -> None:
        """Queue a button press (held until :meth:`button_up_nowait`) and return at once."""
        mouse_button(button)
        self._post(self._button(x, y, button, True), f"press {button} at {x},{y}")

    def button_up_nowait(self, x: int, y: int, button: str = "left") -> None:
        """Queue a button release and return at once."""
        mouse_button(button)
        self._post(self._button(x, y, button, False), f"release {button} at {x},{y}")

    def scroll_nowait(self, x: int, y: int, clicks: int) -> None:
        """Queue wheel notches (positive up) and return at once."""
        self._post(self._scroll(x, y, clicks), f"scroll {clicks} at {x},{y}")

    def _post(self, coro: Coroutine[Any, Any, object], what: str) -> None:
        connection = self.spice

        def report(done: concurrent.futures.Future[object]) -> None:
            # on the atp loop, where the coroutine finished
            if done.cancelled():
                return
            error = done.exception()
            if error is not None:
                connection.log.debug("%s failed: %s", what, error)
                connection.listeners.emit(InputFailed(self.vm_id, what, error))

        future = asyncio.run_coroutine_threadsafe(coro, get_loop().loop)
        future.add_done_callback(report)
