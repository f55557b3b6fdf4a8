"""HTML and plain-text building blocks of the magics' results (sans-I/O, no IPython).

Plain text must be *stable*: nbval compares it between runs, so keys are sorted and nothing
holds an address or a clock. Every string that reaches HTML goes through :func:`html.escape`.

Example::

    plain_json({"b": 1, "a": [1, 2]})     # '{\\n  "a": [\\n    1,\\n    2\\n  ],\\n  "b": 1\\n}'
    json_tree_html({"a": "<b>"})           # '<details open>...&lt;b&gt;...</details>'
    text_table(["id", "state"], [["local", "ready"]])
"""

from __future__ import annotations

import html
import json
from collections.abc import Sequence
from typing import Any

# containers deeper than this start folded in the tree: a query-block reply stays readable
OPEN_LEVELS = 2
# JSON tree nodes past this many children are summarised (the text/plain form keeps all)
MAX_CHILDREN = 200

MONO = "font-family: var(--jp-code-font-family, monospace); font-size: 0.9em"
_KEY = "color: #0b5394"
_SCALAR_STYLE = {"str": "color: #a31515", "num": "color: #098658", "lit": "color: #7f0055"}


def plain_json(value: Any) -> str:
    """Indented JSON with sorted keys; values JSON cannot hold are shown with ``str``."""
    return json.dumps(value, indent=2, sort_keys=True, ensure_ascii=False, default=str)


def jsonable(value: Any) -> Any:
    """``value`` round-tripped through :func:`plain_json`'s rules (for application/json)."""
    return json.loads(json.dumps(value, default=str))


def json_tree_html(value: Any, level: int = 0) -> str:
    """A collapsible tree (``<details>``) of a JSON value; keys sorted, text escaped."""
    if isinstance(value, dict):
        items = [(str(k), v) for k, v in sorted(value.items(), key=lambda kv: str(kv[0]))]
        return _container(items, "{", "}", f"{len(items)} keys", level, keyed=True)
    if isinstance(value, (list, tuple)):
        return _container([(str(i), v) for i, v in enumerate(value)], "[", "]",
                          f"{len(value)} items", level, keyed=False)
    return _scalar_html(value)


def _container(items: list[tuple[str, Any]], opening: str, closing: str, summary: str,
               level: int, *, keyed: bool) -> str:
    if not items:
        return f"<span>{opening}{closing}</span>"
    shown = items[:MAX_CHILDREN]
    rows = []
    for key, child in shown:
        label = f'<span style="{_KEY}">{html.escape(json.dumps(key) if keyed else key)}</span>'
        rows.append(f"<li>{label}: {json_tree_html(child, level + 1)}</li>")
    if len(items) > len(shown):
        rows.append(f"<li>… {len(items) - len(shown)} more</li>")
    state = " open" if level < OPEN_LEVELS else ""
    return (f"<details{state} style=\"display: inline-block; vertical-align: top\">"
            f"<summary>{opening} {summary} {closing}</summary>"
            f'<ul style="list-style: none; margin: 0; padding-left: 1.5em">{"".join(rows)}</ul>'
            f"</details>")


def _scalar_html(value: Any) -> str:
    if isinstance(value, str):
        style = _SCALAR_STYLE["str"]
    elif isinstance(value, bool) or value is None:
        style = _SCALAR_STYLE["lit"]
    elif isinstance(value, (int, float)):
        style = _SCALAR_STYLE["num"]
    else:
        style, value = _SCALAR_STYLE["str"], str(value)
    return f'<span style="{style}">{html.escape(json.dumps(value, ensure_ascii=False))}</span>'


def text_table(columns: Sequence[str], rows: Sequence[Sequence[str]]) -> str:
    """Columns padded to their widest cell; no trailing spaces (they would trip diffs)."""
    widths = [len(c) for c in columns]
    for row in rows:
        widths = [max(w, len(cell)) for w, cell in zip(widths, row, strict=True)]
    lines = [columns, *rows]
    return "\n".join(
        "  ".join(cell.ljust(w) for cell, w in zip(line, widths, strict=True)).rstrip()
        for line in lines)


def html_table(columns: Sequence[str], rows: Sequence[Sequence[str]],
               caption: str | None = None) -> str:
    """A small ``<table>``; every cell escaped."""
    head = "".join(f'<th style="text-align: left">{html.escape(c)}</th>' for c in columns)
    body = "".join(
        "<tr>" + "".join(f'<td style="text-align: left">{html.escape(cell)}</td>'
                         for cell in row) + "</tr>"
        for row in rows)
    cap = f"<caption>{html.escape(caption)}</caption>" if caption else ""
    return f"<table>{cap}<thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"


def caption_html(text: str) -> str:
    return f'<div style="color: #666; {MONO}">{html.escape(text)}</div>'


def pre_html(text: str, style: str = "") -> str:
    return f'<pre style="margin: 0; {style}">{html.escape(text)}</pre>'
