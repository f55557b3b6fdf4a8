"""What the magics return: objects with a stable ``text/plain``, ``text/html`` and (for JSON
replies) ``application/json``; the raw value is ``.value``.

nbval compares every stored output but images, so both ``text/plain`` and ``text/html`` hold
no addresses, clocks or random ids. ``application/json`` is attached only to JSON replies:
JupyterLab ranks its JSON viewer (rank 0) above HTML (rank 50), and a table or a command's
output reads better as HTML than as a JSON tree.

Example::

    r = JsonResult({"status": "running"}, "atp-vm1: query-status")
    r.value["status"]          # "running"
    print(r)                   # the same stable text nbval compares
"""

from __future__ import annotations

import abc
from collections.abc import Container, Sequence
from typing import Any

from atp_notebook.notebook.render import (
    MONO,
    caption_html,
    html_table,
    json_tree_html,
    jsonable,
    plain_json,
    pre_html,
    text_table,
)


class Result(abc.ABC):
    """Base of the magics' results: ``.value`` is the raw value; display is stable."""

    value: Any
    caption: str = ""

    @abc.abstractmethod
    def text(self) -> str:
        """The ``text/plain`` form (stable between runs)."""

    def html(self) -> str:
        """The ``text/html`` form (escaped, stable between runs)."""
        return caption_html(self.caption) + pre_html(self.text()) if self.caption else \
            pre_html(self.text())

    def mimebundle(self) -> dict[str, Any]:
        return {"text/plain": self.text(), "text/html": self.html()}

    def _repr_mimebundle_(self, include: Container[str] | None = None,
                          exclude: Container[str] | None = None) -> dict[str, Any]:
        bundle = self.mimebundle()
        return {k: v for k, v in bundle.items()
                if (include is None or k in include) and (exclude is None or k not in exclude)}

    def __repr__(self) -> str:
        return self.text()


class JsonResult(Result):
    """A JSON reply (QMP ``return``, QGA ``return``): indented, keys sorted.

    ``JsonResult({"a": 1}, "atp-vm1: query-x")["a"]`` reads the value like a dict.
    """

    def __init__(self, value: Any, caption: str = "") -> None:
        self.value = value
        self.caption = caption

    def __getitem__(self, key: Any) -> Any:
        return self.value[key]

    def text(self) -> str:
        return plain_json(self.value)

    def html(self) -> str:
        tree = f'<div style="{MONO}">{json_tree_html(self.value)}</div>'
        return caption_html(self.caption) + tree if self.caption else tree

    def mimebundle(self) -> dict[str, Any]:
        bundle = super().mimebundle()
        bundle["application/json"] = jsonable(self.value)
        return bundle


class TextResult(Result):
    """Text as a program wrote it (HMP output): ``.value`` is the exact string; the display
    normalises line ends and drops trailing blank lines. ``TextResult("VM status: running")``"""

    value: str

    def __init__(self, value: str, caption: str = "") -> None:
        self.value = value
        self.caption = caption

    def text(self) -> str:
        return self.value.replace("\r\n", "\n").rstrip()


class NoteResult(Result):
    """A one-line outcome (``sent 5 bytes``) that also carries a value (may be None).

    ``NoteResult("atp-vm1: the guest agent answers", value=None)``"""

    def __init__(self, note: str, value: Any = None) -> None:
        self.note = note
        self.value = value

    def text(self) -> str:
        return self.note


class TableResult(Result):
    """Rows of strings under column names; ``.value`` keeps the objects they came from.

    ``TableResult(["id", "state"], [["local", "ready"]], value=hosts, caption="hosts")``"""

    def __init__(self, columns: Sequence[str], rows: Sequence[Sequence[str]], value: Any,
                 caption: str = "") -> None:
        self.columns = list(columns)
        self.rows = [list(r) for r in rows]
        self.value = value
        self.caption = caption

    def text(self) -> str:
        table = text_table(self.columns, self.rows)
        return f"{self.caption}\n{table}" if self.caption else table

    def html(self) -> str:
        return html_table(self.columns, self.rows, self.caption or None)


class BytesResult(Result):
    """Bytes received; ``text/plain`` is their Python ``repr`` (exact and stable).

    ``BytesResult(b"pong\\n", "atp-vm1:com.atp.test.0").value   # b"pong\\n"``"""

    def __init__(self, value: bytes, caption: str = "") -> None:
        self.value = value
        self.caption = caption

    def text(self) -> str:
        return repr(self.value)

    def html(self) -> str:
        decoded = self.value.decode("utf-8", errors="backslashreplace")
        note = f"{self.caption} · {len(self.value)} bytes" if self.caption else \
            f"{len(self.value)} bytes"
        return caption_html(note) + pre_html(decoded)
