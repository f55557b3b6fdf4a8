"""Keyboard layouts: which key strokes type a character on a guest with a console keymap.

A Spice client sends scancodes (physical keys); what character a key types is decided in the
guest by its keymap. To type text, the client must know the guest's layout: on ``de`` the key
labelled Y on a US keyboard types ``z``, and ``@`` needs AltGr+Q. The tables come from the
same compiled keymaps the lab's guest loads (see ``_tables.py`` for how they were made).

Example::

    de = layout("de")
    de.keys_for("@")        # (KeyStroke(0x10, <Modifier.ALTGR: 2>),)
    strokes = de.plan("user@example.org\\n")   # checks every character first
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from types import MappingProxyType

from atp_notebook.errors import KeymapError
from atp_notebook.spice.keymaps._tables import KEYMAPS, TABLES
from atp_notebook.spice.keymaps.scancodes import (
    Combo,
    KeyStroke,
    Modifier,
    parse_combo_with,
)


class UntypableText(KeymapError):
    """Text holding characters that the layout has no keys for; names each one."""

    def __init__(self, layout: str, bad: Mapping[str, int]) -> None:
        listed = ", ".join(f"{c!r} (U+{ord(c):04X}) at index {i}" for c, i in bad.items())
        plural = "s" if len(bad) > 1 else ""
        super().__init__(
            f"cannot type character{plural} {listed} with the {layout!r} keyboard layout",
            hint="nothing was typed; remove or replace those characters, or pick the "
                 "layout the guest uses",
        )
        self.layout = layout
        self.characters = tuple(bad)


def _describe(char: str) -> str:
    return f"{char!r} (U+{ord(char):04X})" if len(char) == 1 else repr(char)


@dataclass(frozen=True)
class Layout:
    """The keys that type each character under one console keymap."""

    name: str
    keymap: str  # the kbd keymap it was generated from, e.g. "de-latin1-nodeadkeys"
    table: Mapping[str, tuple[KeyStroke, ...]] = field(repr=False)

    @property
    def characters(self) -> frozenset[str]:
        """Every character this layout can type."""
        return frozenset(self.table)

    def can_type(self, char: str) -> bool:
        return char in self.table

    def keys_for(self, char: str) -> tuple[KeyStroke, ...]:
        """The strokes that type ``char`` (two for a dead-key accent followed by space).

        Raises :class:`UntypableText` (a ``ValueError``) naming the character and layout.
        """
        if len(char) != 1:
            raise KeymapError(f"keys_for takes one character, got {_describe(char)}")
        try:
            return self.table[char]
        except KeyError:
            raise UntypableText(self.name, {char: 0}) from None

    def plan(self, text: str) -> tuple[KeyStroke, ...]:
        """Every stroke for ``text``, or an error naming all untypable characters.

        The whole text is checked before anything is returned, so a caller that sends the
        plan never sends half a text.
        """
        bad: dict[str, int] = {}
        strokes: list[KeyStroke] = []
        for index, char in enumerate(text):
            keys = self.table.get(char)
            if keys is None:
                bad.setdefault(char, index)
            elif not bad:
                strokes.extend(keys)
        if bad:
            raise UntypableText(self.name, bad)
        return tuple(strokes)

    def combo(self, text: str) -> Combo:
        """Parse a key combination with this layout's letters and digits; see parse_combo."""
        return parse_combo_with(text, self._key_of_char, self.name)

    @property
    def _key_of_char(self) -> dict[str, int]:
        # a combo names a key, not a character: ctrl-1 on fr is the key whose shifted
        # character is 1, so the key's scancode is taken without its modifiers
        return {c: keys[0].scancode for c, keys in self.table.items()
                if len(keys) == 1 and c.isascii() and c.isalnum()}


def _build(name: str) -> Layout:
    table = {
        char: tuple(KeyStroke(code, Modifier(mods)) for code, mods in strokes)
        for char, strokes in TABLES[name].items()
    }
    return Layout(name, KEYMAPS[name], MappingProxyType(table))


LAYOUT_NAMES: tuple[str, ...] = tuple(TABLES)
_ALIASES = {keymap: name for name, keymap in KEYMAPS.items()}
_LAYOUTS: dict[str, Layout] = {}


def layout(name: str) -> Layout:
    """The layout ``us``, ``de`` or ``fr`` (or its keymap name, e.g. ``fr-latin1``)."""
    key = _ALIASES.get(name, name)
    if key not in TABLES:
        raise KeymapError(f"unknown keyboard layout {name!r}",
                          hint="known layouts: " + ", ".join(LAYOUT_NAMES))
    if key not in _LAYOUTS:
        _LAYOUTS[key] = _build(key)
    return _LAYOUTS[key]


def parse_combo(text: str, layout_name: str = "us") -> Combo:
    """Parse a key combination such as ``ctrl-alt-delete`` or ``ctrl+c`` into scancodes.

    Names: ctrl, alt, altgr, shift, meta/win, del/delete, esc, f1-f12, enter/return, tab,
    backspace, space, up/down/left/right, home/end/pgup/pgdn, insert, letters and digits
    (found on ``layout_name``'s keys: ``ctrl-z`` on ``de`` is the key at US Y).

    Example::

        c = parse_combo("ctrl-alt-delete")
        c.press, c.release   # (0x1D, 0x38, 0xE053), (0xE053, 0x38, 0x1D)
    """
    return layout(layout_name).combo(text)
