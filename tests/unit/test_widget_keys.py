"""keys.py: KeyboardEvent.code -> set-1 scancodes, and the held-key state of a widget."""

from __future__ import annotations

import pytest

from atp_notebook.notebook.widget.keys import CODE_SCANCODES, HeldKeys, scancode_for_code
from atp_notebook.spice.keymaps import layout

# scancodes from the IBM PC/AT set-1 table (make codes; E0xx for the extended keys)
CODES = [
    ("Escape", 0x01), ("Digit1", 0x02), ("Digit0", 0x0B), ("Minus", 0x0C), ("Equal", 0x0D),
    ("Backspace", 0x0E), ("Tab", 0x0F), ("KeyQ", 0x10), ("KeyP", 0x19),
    ("BracketLeft", 0x1A), ("BracketRight", 0x1B), ("Enter", 0x1C), ("ControlLeft", 0x1D),
    ("KeyA", 0x1E), ("Semicolon", 0x27), ("Quote", 0x28), ("Backquote", 0x29),
    ("ShiftLeft", 0x2A), ("Backslash", 0x2B), ("KeyZ", 0x2C), ("KeyM", 0x32),
    ("Comma", 0x33), ("Period", 0x34), ("Slash", 0x35), ("ShiftRight", 0x36),
    ("NumpadMultiply", 0x37), ("AltLeft", 0x38), ("Space", 0x39), ("CapsLock", 0x3A),
    ("F1", 0x3B), ("F10", 0x44), ("NumLock", 0x45), ("ScrollLock", 0x46),
    ("Numpad7", 0x47), ("Numpad8", 0x48), ("Numpad9", 0x49), ("NumpadSubtract", 0x4A),
    ("Numpad4", 0x4B), ("Numpad5", 0x4C), ("Numpad6", 0x4D), ("NumpadAdd", 0x4E),
    ("Numpad1", 0x4F), ("Numpad2", 0x50), ("Numpad3", 0x51), ("Numpad0", 0x52),
    ("NumpadDecimal", 0x53), ("IntlBackslash", 0x56), ("F11", 0x57), ("F12", 0x58),
    ("NumpadEnter", 0xE01C), ("ControlRight", 0xE01D), ("NumpadDivide", 0xE035),
    ("AltRight", 0xE038), ("Home", 0xE047), ("ArrowUp", 0xE048), ("PageUp", 0xE049),
    ("ArrowLeft", 0xE04B), ("ArrowRight", 0xE04D), ("End", 0xE04F), ("ArrowDown", 0xE050),
    ("PageDown", 0xE051), ("Insert", 0xE052), ("Delete", 0xE053), ("MetaLeft", 0xE05B),
    ("MetaRight", 0xE05C), ("ContextMenu", 0xE05D),
]


@pytest.mark.parametrize(("code", "scancode"), CODES)
def test_a_code_gives_its_keys_set_1_scancode(code: str, scancode: int) -> None:
    assert scancode_for_code(code) == scancode


@pytest.mark.parametrize("code", ["", "keya", "KeyAA", "PrintScreen", "Pause",
                                  "MediaPlayPause", "Fn", "Unidentified", "F13"])
def test_keys_without_a_single_scancode_give_none(code: str) -> None:
    assert scancode_for_code(code) is None


def test_every_key_a_us_keymap_types_unshifted_has_its_code() -> None:
    us = layout("us")
    unshifted = {keys[0].scancode for c, keys in us.table.items()
                 if len(keys) == 1 and not keys[0].modifiers}
    assert unshifted <= set(CODE_SCANCODES.values())


def test_no_two_codes_share_a_scancode() -> None:
    assert len(set(CODE_SCANCODES.values())) == len(CODE_SCANCODES)


# (events, bytes each gives): events are ("down" | "up" | "release_all", code)
SEQUENCES = [
    ("a typed", [("down", "KeyA"), ("up", "KeyA")], [b"\x1e", b"\x9e"]),
    ("shifted A", [("down", "ShiftLeft"), ("down", "KeyA"), ("up", "KeyA"),
                   ("up", "ShiftLeft")], [b"\x2a", b"\x1e", b"\x9e", b"\xaa"]),
    ("auto-repeat repeats the make code", [("down", "KeyA"), ("down", "KeyA"),
                                           ("down", "KeyA"), ("up", "KeyA")],
     [b"\x1e", b"\x1e", b"\x1e", b"\x9e"]),
    ("extended keys carry E0", [("down", "ArrowUp"), ("up", "ArrowUp")],
     [b"\xe0\x48", b"\xe0\xc8"]),
    ("a key up never seen down sends nothing", [("up", "KeyA")], [b""]),
    ("unknown keys send nothing", [("down", "PrintScreen"), ("up", "PrintScreen")],
     [b"", b""]),
    ("blur releases every held key, the last pressed first",
     [("down", "ControlLeft"), ("down", "AltLeft"), ("down", "Delete"), ("release_all", "")],
     [b"\x1d", b"\x38", b"\xe0\x53", b"\xe0\xd3\xb8\x9d"]),
    ("nothing held: release_all sends nothing", [("release_all", "")], [b""]),
    ("a released key is not released again", [("down", "KeyB"), ("up", "KeyB"),
                                               ("release_all", "")], [b"\x30", b"\xb0", b""]),
]


@pytest.mark.parametrize(("events", "expected"), [s[1:] for s in SEQUENCES],
                         ids=[s[0] for s in SEQUENCES])
def test_held_keys(events: list[tuple[str, str]], expected: list[bytes]) -> None:
    keys = HeldKeys()
    got = [keys.release_all() if kind == "release_all" else getattr(keys, kind)(code)
           for kind, code in events]
    assert got == expected


def test_held_lists_the_keys_down_in_order() -> None:
    keys = HeldKeys()
    keys.down("ShiftLeft")
    keys.down("KeyA")
    keys.down("ShiftLeft")  # repeat keeps its place
    assert keys.held == ("ShiftLeft", "KeyA")
    keys.up("ShiftLeft")
    assert list(keys.held) == ["KeyA"]
