"""Keyboard layouts and scancodes for typing into a guest over Spice (no I/O here).

- :func:`layout` (``us``, ``de``, ``fr``) -> :class:`Layout`: ``keys_for(char)`` and
  ``plan(text)`` give :class:`KeyStroke` s (set-1 scancode + shift/altgr), matching the
  console keymaps the lab's guest loads.
- :func:`parse_combo` turns ``ctrl-alt-delete`` into a :class:`Combo` (press order, then
  release in reverse).
- Errors are :class:`KeymapError` (an ``AtpError`` and a ``ValueError``).

Example::

    from atp_notebook.spice.keymaps import layout, parse_combo
    data = b"".join(k.to_bytes() for k in layout("fr").plan("a@b\\n"))
    parse_combo("ctrl-alt-delete").to_bytes()
"""

from atp_notebook.errors import KeymapError
from atp_notebook.spice.keymaps.layouts import (
    LAYOUT_NAMES,
    Layout,
    UntypableText,
    layout,
    parse_combo,
)
from atp_notebook.spice.keymaps.scancodes import (
    KEY_NAMES,
    Combo,
    KeyStroke,
    Modifier,
    break_code,
    make_code,
    scancode_for_keycode,
)

__all__ = [
    "KEY_NAMES",
    "LAYOUT_NAMES",
    "Combo",
    "KeyStroke",
    "KeymapError",
    "Layout",
    "Modifier",
    "UntypableText",
    "break_code",
    "layout",
    "make_code",
    "parse_combo",
    "scancode_for_keycode",
]
