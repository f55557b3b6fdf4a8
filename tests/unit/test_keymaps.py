"""Keyboard layouts and scancodes: known facts, every printable character, combos.

The tables are also checked against the compiled console keymaps themselves (``loadkeys -b``,
the files the lab's guest loads), so a changed keymap package cannot drift unnoticed.
"""

from __future__ import annotations

import struct
import subprocess
from pathlib import Path

import pytest

from atp_notebook.errors import AtpError
from atp_notebook.spice.keymaps import (
    KEY_NAMES,
    LAYOUT_NAMES,
    KeymapError,
    KeyStroke,
    Modifier,
    UntypableText,
    break_code,
    layout,
    make_code,
    parse_combo,
    scancode_for_keycode,
)

NONE, SHIFT, ALTGR = Modifier.NONE, Modifier.SHIFT, Modifier.ALTGR
PRINTABLE_ASCII = [chr(c) for c in range(0x20, 0x7F)]
KEYMAP_FILES = {
    "us": "qwerty/us.kmap.gz",
    "de": "qwertz/de-latin1-nodeadkeys.kmap.gz",
    "fr": "azerty/fr-latin1.kmap.gz",
}

# (layout, character, strokes as (scancode, modifiers))
FACTS = [
    ("us", "a", [(0x1E, NONE)]),
    ("us", "A", [(0x1E, SHIFT)]),
    ("us", "@", [(0x03, SHIFT)]),
    ("us", "<", [(0x33, SHIFT)]),  # not the 102nd key, which US keyboards lack
    ("us", "\\", [(0x2B, NONE)]),
    ("us", "~", [(0x29, SHIFT)]),
    ("de", "z", [(0x15, NONE)]),  # the key at US 'y'
    ("de", "y", [(0x2C, NONE)]),
    ("de", "@", [(0x10, ALTGR)]),  # AltGr+Q
    ("de", "\\", [(0x0C, ALTGR)]),
    ("de", "|", [(0x56, ALTGR)]),
    ("de", "~", [(0x1B, ALTGR)]),
    ("de", "<", [(0x56, NONE)]),
    ("de", "^", [(0x29, NONE)]),  # nodeadkeys: a plain key
    ("de", "ß", [(0x0C, NONE)]),
    ("de", "Ü", [(0x1A, SHIFT)]),
    ("fr", "a", [(0x10, NONE)]),  # the key at US 'q'
    ("fr", "q", [(0x1E, NONE)]),
    ("fr", "z", [(0x11, NONE)]),
    ("fr", "m", [(0x27, NONE)]),
    ("fr", "1", [(0x02, SHIFT)]),
    ("fr", "@", [(0x0B, ALTGR)]),  # AltGr+0
    ("fr", "é", [(0x03, NONE)]),
    ("fr", "^", [(0x1A, NONE), (0x39, NONE)]),  # dead circumflex, then space
    ("fr", "~", [(0x03, ALTGR), (0x39, NONE)]),
    ("fr", "`", [(0x08, ALTGR), (0x39, NONE)]),
] + [(name, c, [(code, NONE)]) for name in LAYOUT_NAMES
     for c, code in (("\n", 0x1C), ("\t", 0x0F), (" ", 0x39))]


@pytest.mark.parametrize(("name", "char", "strokes"), FACTS)
def test_known_facts(name: str, char: str, strokes: list[tuple[int, Modifier]]) -> None:
    assert layout(name).keys_for(char) == tuple(KeyStroke(c, m) for c, m in strokes)


@pytest.mark.parametrize("name", LAYOUT_NAMES)
@pytest.mark.parametrize("char", PRINTABLE_ASCII)
def test_every_printable_ascii_character_maps_to_valid_strokes(name: str, char: str) -> None:
    # all three keymaps can type all of printable ASCII (fr needs dead keys for ^ ~ `)
    strokes = layout(name).keys_for(char)
    assert 1 <= len(strokes) <= 2
    for stroke in strokes:
        assert make_code(stroke.scancode)  # a valid set-1 make code
        assert stroke.modifiers in (NONE, SHIFT, ALTGR)


@pytest.mark.parametrize("name", LAYOUT_NAMES)
@pytest.mark.parametrize("char", ["\r", "\x00", "\x7f", "€", "ñ", "中", "\U0001f600"])
def test_characters_without_keys_are_refused_by_name(name: str, char: str) -> None:
    with pytest.raises(UntypableText) as err:
        layout(name).keys_for(char)
    assert f"{char!r} (U+{ord(char):04X})" in err.value.message
    assert f"with the {name!r} keyboard layout" in err.value.message
    assert isinstance(err.value, ValueError) and isinstance(err.value, AtpError)
    assert err.value.characters == (char,)


@pytest.mark.parametrize(("name", "char"), [("us", "é"), ("us", "ß"), ("de", "é"),
                                            ("fr", "ß"), ("us", "§")])
def test_latin1_letters_belong_to_their_layouts_only(name: str, char: str) -> None:
    assert not layout(name).can_type(char)


def test_plan_checks_the_whole_text_before_returning_anything() -> None:
    us = layout("us")
    with pytest.raises(UntypableText) as err:
        us.plan("echo ok; echo €uro ñ €")
    # every bad character, with the index of its first appearance
    assert "'€' (U+20AC) at index 14, 'ñ' (U+00F1) at index 19" in err.value.message
    assert err.value.characters == ("€", "ñ")
    assert "nothing was typed" in str(err.value.hint)


def test_plan_concatenates_the_strokes_of_each_character() -> None:
    fr = layout("fr")
    assert fr.plan("a^1") == (KeyStroke(0x10), KeyStroke(0x1A), KeyStroke(0x39),
                              KeyStroke(0x02, SHIFT))
    assert fr.plan("") == ()


def test_keys_for_takes_exactly_one_character() -> None:
    with pytest.raises(KeymapError, match="one character, got 'ab'"):
        layout("us").keys_for("ab")


def test_layouts_by_short_or_keymap_name() -> None:
    assert layout("de-latin1-nodeadkeys") is layout("de")
    assert layout("fr-latin1").keymap == "fr-latin1"
    with pytest.raises(KeymapError, match="unknown keyboard layout 'dvorak'") as err:
        layout("dvorak")
    assert err.value.hint == "known layouts: us, de, fr"


@pytest.mark.parametrize(("stroke", "wire"), [
    (KeyStroke(0x1E), "1e 9e"),
    (KeyStroke(0x1E, SHIFT), "2a 1e 9e aa"),
    (KeyStroke(0x10, ALTGR), "e0 38 10 90 e0 b8"),
    (KeyStroke(0x02, SHIFT | ALTGR), "2a e0 38 02 82 e0 b8 aa"),
    (KeyStroke(0xE048), "e0 48 e0 c8"),
])
def test_a_stroke_holds_its_modifiers_around_the_key(stroke: KeyStroke, wire: str) -> None:
    assert stroke.to_bytes().hex(" ") == wire


@pytest.mark.parametrize("bad", [0, 0x80, 0xFF, 0xE000, 0xE080, 0xE11D, -1])
def test_only_set1_make_codes_are_accepted(bad: int) -> None:
    with pytest.raises(KeymapError, match="not a set-1 make code"):
        make_code(bad)


def test_break_codes_set_bit_7_after_the_prefix() -> None:
    assert break_code(0x1D) == b"\x9d"
    assert break_code(0xE053) == b"\xe0\xd3"


@pytest.mark.parametrize(("keycode", "scancode"), [
    (1, 0x01), (30, 0x1E), (86, 0x56), (87, 0x57), (88, 0x58), (96, 0xE01C), (97, 0xE01D),
    (100, 0xE038), (103, 0xE048), (111, 0xE053), (125, 0xE05B),
])
def test_linux_keycodes_to_set1(keycode: int, scancode: int) -> None:
    assert scancode_for_keycode(keycode) == scancode


@pytest.mark.parametrize("keycode", [0, 89, 99, 128])
def test_keycodes_without_a_plain_set1_code_are_refused(keycode: int) -> None:
    with pytest.raises(KeymapError, match=f"keycode {keycode} "):
        scancode_for_keycode(keycode)


COMBOS = [
    ("ctrl-alt-delete", "us", (0x1D, 0x38, 0xE053)),
    ("Ctrl+Alt+Del", "us", (0x1D, 0x38, 0xE053)),
    ("ctrl-c", "us", (0x1D, 0x2E)),
    ("ctrl-C", "us", (0x1D, 0x2E)),
    ("ctrl-z", "de", (0x1D, 0x15)),  # letters follow the layout
    ("ctrl-a", "fr", (0x1D, 0x10)),
    ("alt-1", "fr", (0x38, 0x02)),  # a digit's key, even where the digit needs shift
    ("altgr-q", "us", (0xE038, 0x10)),
    ("shift-tab", "us", (0x2A, 0x0F)),
    ("meta", "us", (0xE05B,)),
    ("win-l", "us", (0xE05B, 0x26)),
    ("alt-f4", "us", (0x38, 0x3E)),
    ("f1", "us", (0x3B,)),
    ("f10", "us", (0x44,)),
    ("f11", "us", (0x57,)),
    ("f12", "us", (0x58,)),
    ("esc", "us", (0x01,)),
    ("enter", "us", (0x1C,)),
    ("return", "us", (0x1C,)),
    ("backspace", "us", (0x0E,)),
    ("space", "us", (0x39,)),
    ("up", "us", (0xE048,)),
    ("down", "us", (0xE050,)),
    ("left", "us", (0xE04B,)),
    ("right", "us", (0xE04D,)),
    ("home", "us", (0xE047,)),
    ("end", "us", (0xE04F,)),
    ("pgup", "us", (0xE049,)),
    ("pgdn", "us", (0xE051,)),
    ("insert", "us", (0xE052,)),
]


@pytest.mark.parametrize(("text", "name", "keys"), COMBOS)
def test_combos_press_in_order_and_release_in_reverse(
    text: str, name: str, keys: tuple[int, ...]
) -> None:
    combo = parse_combo(text, name)
    assert combo.press == keys
    assert combo.release == keys[::-1]
    assert combo.events() == (*((k, True) for k in keys), *((k, False) for k in keys[::-1]))


def test_ctrl_alt_delete_on_the_wire() -> None:
    assert parse_combo("ctrl-alt-delete").to_bytes().hex(" ") == "1d 38 e0 53 e0 d3 b8 9d"


@pytest.mark.parametrize(("text", "message"), [
    ("", "'' is not a key combination"),
    ("ctrl-", "'ctrl-' is not a key combination"),
    ("ctrl--x", "is not a key combination"),
    ("ctrl-foo", "unknown key 'foo' in 'ctrl-foo' (layout 'us')"),
    ("ctrl-é", "unknown key 'é'"),
    ("ctrl-control-c", "key 'control' appears twice"),
])
def test_bad_combos_are_refused_by_name(text: str, message: str) -> None:
    with pytest.raises(KeymapError, match=message.replace("(", r"\(").replace(")", r"\)")):
        parse_combo(text)


def test_every_key_name_is_a_make_code() -> None:
    for name, code in KEY_NAMES.items():
        assert make_code(code), name


# --- the tables against the compiled keymaps -----------------------------------------

KT_LATIN, KT_DEAD, KT_LETTER = 0, 4, 11
RET_DIACR = "`'^~\","  # drivers/tty/vt/keyboard.c: what a dead key types before space


def _compiled_keymap(name: str) -> dict[int, tuple[int, ...]]:
    """layer -> 128 keysyms, from ``loadkeys -b`` (busybox loadkmap's input format)."""
    source = Path("/usr/share/keymaps/i386") / KEYMAP_FILES[name]
    data = subprocess.run(["loadkeys", "-b", str(source)], stdin=subprocess.DEVNULL,
                          capture_output=True, check=True).stdout
    assert data[:7] == b"bkeymap"
    layers, pos = {}, 263
    for layer, present in enumerate(data[7:263]):
        if present:
            layers[layer] = struct.unpack_from("<128H", data, pos)
            pos += 256
    return layers


@pytest.mark.parametrize("name", LAYOUT_NAMES)
def test_each_entry_types_its_character_in_the_compiled_keymap(name: str) -> None:
    layers = _compiled_keymap(name)
    table = layout(name)
    for char in table.characters - {"\n"}:
        first, *rest = table.keys_for(char)
        keysym = layers[int(first.modifiers)][first.scancode]  # layer = modifier bits
        kind, value = keysym >> 8, keysym & 0xFF
        if rest:
            assert rest == [KeyStroke(0x39)] and kind == KT_DEAD, char
            assert RET_DIACR[value] == char
        else:
            assert kind in (KT_LATIN, KT_LETTER) and chr(value) == char, char
    # and nothing typable without dead keys was left out
    for layer in (0, 1, 2):
        for keysym in layers.get(layer, ())[:89]:
            kind, value = keysym >> 8, keysym & 0xFF
            if kind in (KT_LATIN, KT_LETTER) and (0x20 <= value < 0x7F or value >= 0xA0):
                assert table.can_type(chr(value)), chr(value)
