"""PC XT set-1 scancodes: key strokes, named keys and key combinations.

Spice's inputs channel carries set-1 scancodes (spice-protocol ``KEY_SCANCODE``, DESIGN §7):
a key's *make* code when pressed, the same code with bit 0x80 set when released, and an
``E0`` byte before both for the "extended" keys that the original XT keyboard lacked (right
Alt = AltGr, right Ctrl, the arrow and navigation block, Win).

Here a scancode is an ``int``: one byte for a plain key (``0x1E`` = A) and the ``E0`` prefix
in the high byte for an extended one (``0xE038`` = AltGr), so the bytes on the wire read off
it directly (:func:`make_code`, :func:`break_code`).

Linux keycodes 1-88 are the set-1 scancodes themselves (drivers/input/keyboard/atkbd.c with
the i8042 translating to set 1); the extended keys map as in :data:`EXTENDED_KEYCODES`.

Example::

    parse_combo("ctrl-alt-delete").to_bytes()   # b"\\x1d\\x38\\xe0\\x53\\xe0\\xd3\\xb8\\x9d"
"""

from __future__ import annotations

import enum
import re
from dataclasses import dataclass

from atp_notebook.errors import KeymapError

RELEASE = 0x80  # set-1: a key's break code is its make code | 0x80
EXTENDED = 0xE0  # set-1 prefix byte of the extended keys

SHIFT = 0x2A  # left Shift
CTRL = 0x1D  # left Ctrl
ALT = 0x38  # left Alt
ALTGR = 0xE038  # right Alt, which console keymaps call AltGr
SPACE = 0x39
ENTER = 0x1C


class Modifier(enum.IntFlag):
    """Modifier keys held around a stroke; the values are the console keymap layer bits."""

    NONE = 0
    SHIFT = 1
    ALTGR = 2


_MODIFIER_KEYS = ((Modifier.SHIFT, SHIFT), (Modifier.ALTGR, ALTGR))


def make_code(scancode: int) -> bytes:
    """The bytes a key sends when pressed: ``0x1E`` -> ``1e``, ``0xE038`` -> ``e0 38``."""
    prefix, code = scancode >> 8, scancode & 0xFF
    if prefix not in (0, EXTENDED) or not 0 < code < RELEASE:
        raise KeymapError(f"0x{scancode:X} is not a set-1 make code")
    return bytes((EXTENDED, code)) if prefix else bytes((code,))


def break_code(scancode: int) -> bytes:
    """The bytes a key sends when released: the make code with bit 0x80 set."""
    code = make_code(scancode)
    return code[:-1] + bytes((code[-1] | RELEASE,))


def events_to_bytes(events: tuple[tuple[int, bool], ...]) -> bytes:
    """Set-1 bytes for a sequence of (scancode, pressed) events."""
    return b"".join(make_code(sc) if down else break_code(sc) for sc, down in events)


@dataclass(frozen=True, slots=True)
class KeyStroke:
    """One key pressed and released, with modifier keys held around it.

    Example::

        KeyStroke(0x10, Modifier.ALTGR).to_bytes()  # de '@': e0 38 10 90 e0 b8
    """

    scancode: int
    modifiers: Modifier = Modifier.NONE

    def events(self) -> tuple[tuple[int, bool], ...]:
        """(scancode, pressed) in order: modifiers down, key down and up, modifiers up."""
        held = [key for flag, key in _MODIFIER_KEYS if flag in self.modifiers]
        return (*((k, True) for k in held), (self.scancode, True), (self.scancode, False),
                *((k, False) for k in reversed(held)))

    def to_bytes(self) -> bytes:
        return events_to_bytes(self.events())

    def __repr__(self) -> str:  # scancodes read in hex everywhere else
        mods = "" if not self.modifiers else f", {self.modifiers!r}"
        return f"KeyStroke(0x{self.scancode:02X}{mods})"


# Linux keycode -> set-1 scancode for the keys above 88 (keycodes 1-88 are the scancodes):
# the E0-prefixed keys of atkbd's set-1 translation (include/uapi/linux/input-event-codes.h).
EXTENDED_KEYCODES: dict[int, int] = {
    96: 0xE01C,  # KEY_KPENTER
    97: 0xE01D,  # KEY_RIGHTCTRL
    98: 0xE035,  # KEY_KPSLASH
    100: 0xE038,  # KEY_RIGHTALT (AltGr)
    102: 0xE047,  # KEY_HOME
    103: 0xE048,  # KEY_UP
    104: 0xE049,  # KEY_PAGEUP
    105: 0xE04B,  # KEY_LEFT
    106: 0xE04D,  # KEY_RIGHT
    107: 0xE04F,  # KEY_END
    108: 0xE050,  # KEY_DOWN
    109: 0xE051,  # KEY_PAGEDOWN
    110: 0xE052,  # KEY_INSERT
    111: 0xE053,  # KEY_DELETE
    125: 0xE05B,  # KEY_LEFTMETA
    126: 0xE05C,  # KEY_RIGHTMETA
    127: 0xE05D,  # KEY_COMPOSE (the menu key)
}


def scancode_for_keycode(keycode: int) -> int:
    """The set-1 scancode of a Linux keycode (``KEY_*``)."""
    if 1 <= keycode <= 88:
        return keycode
    try:
        return EXTENDED_KEYCODES[keycode]
    except KeyError:
        raise KeymapError(f"Linux keycode {keycode} has no set-1 scancode here") from None


# Key names for combos; letters and digits come from the layout (see parse_combo).
_F_KEYS = {f"f{n}": 0x3A + n for n in range(1, 11)} | {"f11": 0x57, "f12": 0x58}
KEY_NAMES: dict[str, int] = {
    "ctrl": CTRL, "control": CTRL, "lctrl": CTRL, "rctrl": 0xE01D,
    "alt": ALT, "lalt": ALT, "altgr": ALTGR, "ralt": ALTGR,
    "shift": SHIFT, "lshift": SHIFT, "rshift": 0x36,
    "meta": 0xE05B, "win": 0xE05B, "super": 0xE05B, "menu": 0xE05D,
    "esc": 0x01, "escape": 0x01, "tab": 0x0F, "backspace": 0x0E, "space": SPACE,
    "enter": ENTER, "return": ENTER, "kp_enter": 0xE01C, "capslock": 0x3A,
    "del": 0xE053, "delete": 0xE053, "insert": 0xE052, "ins": 0xE052,
    "home": 0xE047, "end": 0xE04F, "pgup": 0xE049, "pageup": 0xE049,
    "pgdn": 0xE051, "pagedown": 0xE051,
    "up": 0xE048, "down": 0xE050, "left": 0xE04B, "right": 0xE04D,
    **_F_KEYS,
}
_SEPARATOR = re.compile(r"[-+]")


@dataclass(frozen=True, slots=True)
class Combo:
    """Keys pressed in order and released in reverse, as for ``ctrl-alt-delete``."""

    keys: tuple[int, ...]

    @property
    def press(self) -> tuple[int, ...]:
        return self.keys

    @property
    def release(self) -> tuple[int, ...]:
        return tuple(reversed(self.keys))

    def events(self) -> tuple[tuple[int, bool], ...]:
        return (*((k, True) for k in self.press), *((k, False) for k in self.release))

    def to_bytes(self) -> bytes:
        return events_to_bytes(self.events())

    def __repr__(self) -> str:
        return f"Combo({', '.join(f'0x{k:02X}' for k in self.keys)})"


def parse_combo_with(text: str, key_of_char: dict[str, int], layout_name: str) -> Combo:
    """Parse ``ctrl-alt-delete`` / ``ctrl+c``; one-character names use ``key_of_char``."""
    parts = _SEPARATOR.split(text.strip().lower())
    if not text.strip() or any(not p for p in parts):
        raise KeymapError(f"{text!r} is not a key combination",
                          hint="name keys joined by '-' or '+', e.g. 'ctrl-alt-delete'")
    keys: list[int] = []
    for part in parts:
        if part in KEY_NAMES:
            key = KEY_NAMES[part]
        elif len(part) == 1 and part.isalnum() and part in key_of_char:
            key = key_of_char[part]
        else:
            raise KeymapError(
                f"unknown key {part!r} in {text!r} (layout {layout_name!r})",
                hint="use letters, digits or: " + ", ".join(sorted(KEY_NAMES)))
        if key in keys:
            raise KeymapError(f"key {part!r} appears twice in {text!r}")
        keys.append(key)
    return Combo(tuple(keys))
