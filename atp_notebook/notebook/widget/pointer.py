"""Browser pointer events to Spice terms (sans-I/O): buttons held, wheel notches.

``MouseEvent.button`` numbers the buttons 0 (main, left), 1 (middle, the wheel), 2 (right),
3 and 4 (back, forward); Spice's Inputs channel can hold the first three (its buttons_state
mask, which QEMU turns into presses, has no side buttons in spice-gtk's use), so 3 and 4 are
dropped. :class:`HeldButtons` remembers which buttons the guest saw go down, so a release
without its press (pressed outside the canvas) is dropped and every held button is released
when the focus leaves or the widget closes: no button stays stuck down in the guest.

A ``WheelEvent`` says how far to scroll in pixels, lines or pages (``deltaMode`` 0, 1, 2);
a wheel notch is 100 pixels in Chromium on most systems and 3 lines in Firefox, a touchpad
sends many small pixel deltas. :class:`WheelNotches` adds them up and hands out whole
notches, positive up (Spice's UP button), as ``VmSpice.scroll`` takes them.

Example::

    held = HeldButtons()
    held.down(0)              # "left": send a press
    held.up(0)                # "left": send a release
    held.up(2)                # None: never pressed here, send nothing
    wheel = WheelNotches()
    wheel.add(100, 0)         # -2: two notches down
"""

from __future__ import annotations

import math

__all__ = ["BROWSER_BUTTONS", "HeldButtons", "WheelNotches"]

# MouseEvent.button -> the Spice button name VmSpice takes
BROWSER_BUTTONS = {0: "left", 1: "middle", 2: "right"}
# how far one notch goes, by WheelEvent.deltaMode: half of Chromium's 100-pixel notch, so a
# slow touchpad gesture still scrolls; Firefox's 3 lines; a page
PIXELS_PER_NOTCH = 50.0
_UNIT_PER_NOTCH = {0: PIXELS_PER_NOTCH, 1: 3.0, 2: 1.0}
# at most this many notches from one event: a fling must not scroll the guest for seconds
MAX_NOTCHES = 10


class HeldButtons:
    """The pointer buttons a widget holds down in the guest."""

    def __init__(self) -> None:
        self._held: dict[str, None] = {}  # names, in the order pressed

    @property
    def held(self) -> tuple[str, ...]:
        return tuple(self._held)

    def down(self, browser_button: int) -> str | None:
        """The Spice button to press, or None (a button Spice cannot send)."""
        name = BROWSER_BUTTONS.get(browser_button)
        if name is not None:
            self._held[name] = None
        return name

    def up(self, browser_button: int) -> str | None:
        """The Spice button to release, or None when it was not pressed here."""
        name = BROWSER_BUTTONS.get(browser_button)
        if name is None or name not in self._held:
            return None
        del self._held[name]
        return name

    def release_all(self) -> list[str]:
        """Every held button, last pressed first; none is held afterwards."""
        held, self._held = list(self._held), {}
        return held[::-1]


class WheelNotches:
    """Wheel deltas added up into whole notches."""

    def __init__(self) -> None:
        self._pending = 0.0  # in notches, positive down (as the browser's deltaY)

    def add(self, delta_y: float, delta_mode: int) -> int:
        """Notches to scroll now for one event: positive up, negative down, 0 for none
        yet. An unknown ``delta_mode`` counts as pixels."""
        unit = _UNIT_PER_NOTCH.get(delta_mode, PIXELS_PER_NOTCH)
        if not math.isfinite(delta_y):  # NaN, infinite: ignored
            return 0
        if self._pending * delta_y < 0:
            self._pending = 0.0  # turned the other way: what was left of the old way goes
        pending = self._pending + delta_y / unit
        whole = int(pending)  # towards zero: the remainder waits for more of the same way
        self._pending = pending - whole
        return -max(-MAX_NOTCHES, min(MAX_NOTCHES, whole))
