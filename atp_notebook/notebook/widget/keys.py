"""Browser keys to PC set-1 scancodes: ``KeyboardEvent.code`` in, make/break bytes out.

``KeyboardEvent.code`` names the *physical* key by its place on a US keyboard ("KeyQ" is the
key right of Tab whatever the user's layout prints on it), which is exactly what a scancode
is. So the guest's own keymap decides the character, as with a real keyboard, and the
browser's layout plays no part. No table is written twice: letters, digits and punctuation
come from the generated ``us`` console keymap (the key that types "q" on ``us`` is KeyQ),
named keys from :data:`~atp_notebook.spice.keymaps.scancodes.KEY_NAMES`, and the rest
(numeric keypad, locks) from Linux keycodes, which are set-1 scancodes (``scancode_for_keycode``).

:class:`HeldKeys` is the widget's keyboard state: a key down sends its make code (again on
auto-repeat: a PC keyboard's typematic repeat is repeated make codes), a key up its break
code, and ``release_all`` (on blur) the break codes of every key still held, so no key stays
stuck down in the guest when the focus moves away.

The row of special keys under the canvas (:data:`SPECIAL_KEYS`: keys the browser or the
desktop keeps for itself, such as Ctrl-Alt-Del, or that move the focus, such as Tab) sends
each as a combo of key events (:func:`combo_key_events`): pressed in order, released in
reverse, one event at a time like typed keys.

Example::

    scancode_for_code("KeyA")          # 0x1E
    scancode_for_code("ArrowUp")       # 0xE048
    keys = HeldKeys()
    keys.down("ShiftLeft") + keys.down("KeyA")   # b"\\x2a\\x1e"
    keys.release_all()                           # b"\\x9e\\xaa"
    combo_key_events("ctrl-c")                   # [b"\\x1d", b"\\x2e", b"\\xae", b"\\x9d"]
"""

from __future__ import annotations

from atp_notebook.spice.keymaps import KEY_NAMES, break_code, layout, make_code
from atp_notebook.spice.keymaps.scancodes import scancode_for_keycode

__all__ = ["SPECIAL_KEYS", "HeldKeys", "combo_key_events", "scancode_for_code"]

# the buttons under the canvas: (label, combo as vm.press() takes it)
SPECIAL_KEYS: tuple[tuple[str, str], ...] = (
    ("Ctrl-Alt-Del", "ctrl-alt-delete"), ("Esc", "esc"), ("Tab", "tab"),
    *((f"F{n}", f"f{n}") for n in range(1, 13)), ("Ctrl-C", "ctrl-c"),
)

# "Writing system" codes (UI Events KeyboardEvent code values, US positions) -> the character
# the us keymap types with that key unshifted
_CHARACTER_CODES: dict[str, str] = {
    **{f"Key{c}": c.lower() for c in "ABCDEFGHIJKLMNOPQRSTUVWXYZ"},
    **{f"Digit{d}": d for d in "0123456789"},
    "Backquote": "`", "Minus": "-", "Equal": "=", "BracketLeft": "[", "BracketRight": "]",
    "Backslash": "\\", "Semicolon": ";", "Quote": "'", "Comma": ",", "Period": ".",
    "Slash": "/",
}

# functional keys -> their name in KEY_NAMES
_NAMED_CODES: dict[str, str] = {
    "Escape": "esc", "Tab": "tab", "Backspace": "backspace", "Enter": "enter",
    "Space": "space", "CapsLock": "capslock",
    "ShiftLeft": "lshift", "ShiftRight": "rshift", "ControlLeft": "lctrl",
    "ControlRight": "rctrl", "AltLeft": "lalt", "AltRight": "ralt", "MetaLeft": "meta",
    "ContextMenu": "menu",
    "Insert": "insert", "Delete": "delete", "Home": "home", "End": "end",
    "PageUp": "pageup", "PageDown": "pagedown",
    "ArrowUp": "up", "ArrowDown": "down", "ArrowLeft": "left", "ArrowRight": "right",
    "NumpadEnter": "kp_enter",
    **{f"F{n}": f"f{n}" for n in range(1, 13)},
}

# the rest by Linux keycode (include/uapi/linux/input-event-codes.h KEY_*)
_KEYCODE_CODES: dict[str, int] = {
    "NumLock": 69, "ScrollLock": 70, "NumpadMultiply": 55, "NumpadSubtract": 74,
    "NumpadAdd": 78, "NumpadDecimal": 83, "NumpadDivide": 98, "MetaRight": 126,
    "IntlBackslash": 86,  # the 102nd key, between left Shift and Z on ISO keyboards
    "Numpad7": 71, "Numpad8": 72, "Numpad9": 73, "Numpad4": 75, "Numpad5": 76,
    "Numpad6": 77, "Numpad1": 79, "Numpad2": 80, "Numpad3": 81, "Numpad0": 82,
}


def _build_table() -> dict[str, int]:
    us = layout("us")
    table = {code: us.keys_for(char)[0].scancode for code, char in _CHARACTER_CODES.items()}
    table |= {code: KEY_NAMES[name] for code, name in _NAMED_CODES.items()}
    table |= {code: scancode_for_keycode(kc) for code, kc in _KEYCODE_CODES.items()}
    return table


CODE_SCANCODES: dict[str, int] = _build_table()


def scancode_for_code(code: str) -> int | None:
    """The set-1 scancode of a ``KeyboardEvent.code`` (None for keys Spice cannot send here,
    e.g. media keys, PrintScreen and Pause, whose set-1 sequences are not single keys)."""
    return CODE_SCANCODES.get(code)


class HeldKeys:
    """The keys a widget holds down in the guest, in the order they went down."""

    def __init__(self) -> None:
        self._held: dict[str, int] = {}  # code -> scancode; dicts keep insertion order

    @property
    def held(self) -> tuple[str, ...]:
        return tuple(self._held)

    def down(self, code: str) -> bytes:
        """The make code of a key going down (or auto-repeating); b"" for an unknown key."""
        scancode = scancode_for_code(code)
        if scancode is None:
            return b""
        self._held[code] = scancode
        return make_code(scancode)

    def up(self, code: str) -> bytes:
        """The break code of a held key going up; b"" when it was not held here (pressed
        before the widget had the focus: the guest never saw it go down)."""
        scancode = self._held.pop(code, None)
        return b"" if scancode is None else break_code(scancode)

    def release_all(self) -> bytes:
        """Break codes of every held key, the last pressed first (as for a combo)."""
        held, self._held = self._held, {}
        return b"".join(break_code(sc) for sc in reversed(held.values()))


def combo_key_events(combo: str) -> list[bytes]:
    """The set-1 bytes of each key event of ``combo`` (``ctrl-alt-delete``, ``f5``: names
    as ``vm.press`` takes them, letters on the us layout), presses then releases in reverse;
    a bad combo raises KeymapError (an InvalidArgument)."""
    return [make_code(sc) if down else break_code(sc)
            for sc, down in layout("us").combo(combo).events()]
