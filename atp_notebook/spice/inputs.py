"""Typing and key combos through a VM's Spice Inputs channel, layout-aware.

The whole text is checked against the layout before anything is sent, so a text with one
character the layout cannot type sends nothing. Each character goes out as one
``KEY_SCANCODE`` message (modifiers down, key down and up, modifiers up).

Example (on the atp loop)::

    keyboard = SpiceKeyboard(await vm.open_channel(ChannelType.INPUTS), layout="de")
    await keyboard.type("echo hallo@welt\\n")
    await keyboard.press("ctrl-c")
"""

from __future__ import annotations

import asyncio

from atp_notebook.errors import InvalidArgument, LocalProtocolError
from atp_notebook.spice.aio.channel import SpiceChannel
from atp_notebook.spice.keymaps import layout as keyboard_layout
from atp_notebook.spice.proto import InputsProtocol
from atp_notebook.spice.proto.constants import KeyModifier

# set-1 break codes: left/right shift, left/right ctrl, left alt, AltGr (right alt)
RELEASE_MODIFIERS = bytes([0xAA, 0xB6, 0x9D, 0xE0, 0x9D, 0xB8, 0xE0, 0xB8])
# QEMU's PS/2 keyboard holds only a few bytes: a burst of scancodes overflows it and keys
# (a shift release among them) are lost. 50 strokes/s was loss-free on the lab's TCG guests.
DEFAULT_RATE = 50.0


class SpiceKeyboard:
    """Keys for one open Inputs channel; ``rate`` (strokes per second) paces typing
    (None sends at once: only for USB keyboards or short texts)."""

    def __init__(self, channel: SpiceChannel, layout: str = "us",
                 rate: float | None = DEFAULT_RATE) -> None:
        if not isinstance(channel.protocol, InputsProtocol):
            raise LocalProtocolError(f"{channel!r} is not an open Inputs channel")
        if rate is not None and rate <= 0:
            raise InvalidArgument(f"typing rate must be positive, not {rate}")
        self.channel = channel
        self.layout = keyboard_layout(layout)
        self.rate = rate

    @property
    def _inputs(self) -> InputsProtocol:
        assert isinstance(self.channel.protocol, InputsProtocol)
        return self.channel.protocol

    async def type(self, text: str) -> int:
        """Type ``text``; returns the number of key strokes sent."""
        strokes = self.layout.plan(text)  # raises before anything is sent
        self.channel.ensure_open()
        # the layout tables assume Caps Lock off: with it on, letters would come out swapped
        locks = self._inputs.modifiers
        if locks is not None and KeyModifier.CAPS_LOCK in locks:
            self._inputs.set_modifiers(locks & ~KeyModifier.CAPS_LOCK)
        # a modifier left down (an interrupted combo, a lost release) would change every
        # character: release them all first; releasing a key that is up is harmless
        self._inputs.send_scancodes(RELEASE_MODIFIERS)
        await self._pace()
        for stroke in strokes:
            self.channel.ensure_open()  # the channel may die while we pace
            self._inputs.send_scancodes(stroke.to_bytes())
            await self._pace()
        await self.channel.send()
        return len(strokes)

    async def _pace(self) -> None:
        """Send what is queued; with a rate, give the guest time to drain its keyboard."""
        if self.rate is not None:
            await self.channel.send()
            await asyncio.sleep(1 / self.rate)

    async def press(self, combo: str) -> None:
        """Press a combination such as ``ctrl-alt-delete`` and release it."""
        self.channel.ensure_open()
        self._inputs.send_scancodes(self.layout.combo(combo).to_bytes())
        await self.channel.send()
