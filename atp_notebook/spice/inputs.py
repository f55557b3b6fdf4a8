"""Typing and key combos through a VM's Spice Inputs channel, layout-aware.

The whole text is checked against the layout before anything is sent, so a text with one
character the layout cannot type sends nothing. Each character goes out as one
``KEY_SCANCODE`` message (modifiers down, key down and up, modifiers up). Typing right after
an interrupting combo (``ctrl-c``, ``ctrl-z``) first waits for the guest to settle, so the
interrupt cannot swallow the first characters (see ``INTERRUPT_SETTLE_S``).

Example (on the atp loop)::

    keyboard = SpiceKeyboard(await vm.open_channel(ChannelType.INPUTS), layout="de")
    await keyboard.type("echo hallo@welt\\n")
    await keyboard.press("ctrl-c")
"""

from __future__ import annotations

import asyncio
import time
import weakref
from collections.abc import Awaitable, Callable

from atp_notebook.errors import InvalidArgument, LocalProtocolError
from atp_notebook.spice.aio.channel import SpiceChannel
from atp_notebook.spice.keymaps import Combo
from atp_notebook.spice.keymaps import layout as keyboard_layout
from atp_notebook.spice.proto import InputsProtocol
from atp_notebook.spice.proto.constants import KeyModifier

# set-1 break codes: left/right shift, left/right ctrl, left alt, AltGr (right alt); left
# shift is pressed first: a Linux guest's atkbd reads 0xAA with left shift up as the
# keyboard's self-test result (BAT), re-probes the keyboard (seen in the lab guest's i8042
# log: F2 F5 ED F3 F4 right after it) and drops keys arriving meanwhile; the lab lost the
# first typed key that way ("cho typed", 2 runs in 6 on a loaded host)
RELEASE_MODIFIERS = bytes([0x2A, 0xAA, 0xB6, 0x9D, 0xE0, 0x9D, 0xB8, 0xE0, 0xB8])
# QEMU's PS/2 keyboard holds only a few bytes: a burst of scancodes overflows it and keys
# (a shift release among them) are lost. 50 strokes/s was loss-free on the lab's TCG guests.
DEFAULT_RATE = 50.0

# A tty in its default mode (ISIG on, NOFLSH off) turns Ctrl-C into SIGINT and Ctrl-Z into
# SIGTSTP and discards its pending input; an interactive shell that catches the SIGINT drops
# the line it was reading. When the key lands while the guest is busy (the shell still
# finishing the previous command), the signal takes effect only after the shell has read the
# first keys typed next: busybox ash on the lab's TCG guest then ran "ho: not found" for
# "echo". So the first type() after such a combo, on the same Inputs channel, starts no
# earlier than this after it. Measured on the lab (atp-vm1 under TCG, two busy loops in the
# guest at nice -5, ctrl-c pressed right after the previous line's Enter, then a typed line;
# tests/integration/test_typing_after_interrupt.py): with no wait, 4 and 0 lines lost of 50,
# 2 and 3 of 30, 0 of 50 (the race is real but not every run loses); 7 of 50 with a 0.1 s
# wait; none of 50 with 0.2, 0.3 or 0.6 s. 0.5 s is 2.5x the shortest loss-free wait.
# Ctrl-\ (SIGQUIT) flushes too but has no combo name here; Ctrl-D is EOF, which raises no
# signal and flushes nothing. An idle guest lost nothing in 50 rounds even with no wait.
INTERRUPT_SETTLE_S = 0.5
INTERRUPT_CHARS = ("c", "z")
CTRL_KEYS = frozenset({0x1D, 0xE01D})  # left, right Ctrl

# when each Inputs channel last sent an interrupting combo (time.monotonic() or the injected
# clock): the facade makes a SpiceKeyboard per call, the channel is what lives on; a weak
# key, so a closed and dropped channel takes its entry with it
_interrupted_at: weakref.WeakKeyDictionary[SpiceChannel, float] = weakref.WeakKeyDictionary()

Clock = Callable[[], float]
Sleep = Callable[[float], Awaitable[None]]


class SpiceKeyboard:
    """Keys for one open Inputs channel; ``rate`` (strokes per second) paces typing
    (None sends at once: only for USB keyboards or short texts). ``settle`` is how long
    typing waits after an interrupting combo on the same channel; ``clock`` and ``sleep`` are
    injectable for tests (``time.monotonic`` and ``asyncio.sleep``)."""

    def __init__(self, channel: SpiceChannel, layout: str = "us",
                 rate: float | None = DEFAULT_RATE, *,
                 settle: float = INTERRUPT_SETTLE_S, clock: Clock = time.monotonic,
                 sleep: Sleep = asyncio.sleep) -> None:
        if not isinstance(channel.protocol, InputsProtocol):
            raise LocalProtocolError(f"{channel!r} is not an open Inputs channel")
        if rate is not None and rate <= 0:
            raise InvalidArgument(f"typing rate must be positive, not {rate}")
        self.channel = channel
        self.layout = keyboard_layout(layout)
        self.rate = rate
        self.settle = settle
        self._clock = clock
        self._sleep = sleep

    @property
    def _inputs(self) -> InputsProtocol:
        assert isinstance(self.channel.protocol, InputsProtocol)
        return self.channel.protocol

    async def type(self, text: str) -> int:
        """Type ``text``; returns the number of key strokes sent."""
        strokes = self.layout.plan(text)  # raises before anything is sent
        self.channel.ensure_open()
        await self._settle_after_interrupt()
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
            await self._sleep(1 / self.rate)

    async def _settle_after_interrupt(self) -> None:
        """Wait out what is left of ``settle`` since this channel's last interrupting combo."""
        since = _interrupted_at.pop(self.channel, None)
        if since is None:
            return
        left = since + self.settle - self._clock()
        if left > 0:
            await self._sleep(left)

    def interrupts(self, combo: Combo) -> bool:
        """Whether ``combo`` is Ctrl with the layout's C or Z key (ctrl-z on ``de`` is the key
        at US Y): a key the guest's tty turns into a signal that flushes its input."""
        keys = set(combo.keys)
        return bool(keys & CTRL_KEYS) and any(
            self.layout.combo(char).keys[0] in keys for char in INTERRUPT_CHARS)

    async def press(self, combo: str) -> None:
        """Press a combination such as ``ctrl-alt-delete`` and release it."""
        keys = self.layout.combo(combo)
        self.channel.ensure_open()
        self._inputs.send_scancodes(keys.to_bytes())
        await self.channel.send()
        if self.interrupts(keys):
            _interrupted_at[self.channel] = self._clock()
