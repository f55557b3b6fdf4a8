"""A ``ScreenMismatch`` in a notebook: one rich output with what the check saw.

A cell whose code raises :class:`~atp_notebook.errors.ScreenMismatch` (``vm.assert_screen``
past its timeout, ``vm.wait_for_text``) shows one output with the last screen checked, the
best candidate's needle, where its areas were found, the difference, and a table of the
numbers (similarity each area needed and got, where); then the usual one-line error, so the
cell still fails (nbval and ``nbconvert --execute`` see an ``error`` output). IPython's
custom exception hook (``shell.set_custom_exc``) is how: it is the one place that sees an
exception from any cell's code, not only from our magics. The hook is set by
``%load_ext atp_notebook``.

The output's ``text/plain`` is one stable line (nbval compares it: no similarity figures,
which vary by a pixel); the pictures are ``image/png`` (nbval skips images) and
``text/html`` (the numbers and the pictures, for people).

Example::

    view = MismatchView(error)       # error: a caught ScreenMismatch
    view                             # shows the evidence
    view.picture                     # the 2x2 PIL image: screen, needle, candidate, diff
"""

from __future__ import annotations

import base64
import html
import io
from types import TracebackType
from typing import Any

from IPython.core.interactiveshell import InteractiveShell
from IPython.display import display
from PIL import Image, ImageDraw

from atp_notebook.errors import ScreenMismatch
from atp_notebook.notebook.failures import brief_traceback
from atp_notebook.screen.evidence import evidence_images, match_numbers

__all__ = ["MismatchView", "register_mismatch_view", "unregister_mismatch_view"]

LABEL_H = 14  # a caption band above each picture
GAP = 6
BACKGROUND = (255, 255, 255)
CAPTIONS = {"screen": "screen (last checked)", "needle": "needle",
            "candidate": "best candidate", "diff": "difference"}


class MismatchView:
    """The evidence of one ScreenMismatch as a notebook output."""

    def __init__(self, error: ScreenMismatch) -> None:
        self.error = error
        pictures: dict[str, Image.Image] = {}
        if error.screen is not None:
            pictures["screen"] = error.screen.convert("RGB")
        if error.best is not None:
            pictures.update(evidence_images(error.best, error.screen))
        self.pictures = pictures
        self.picture = _grid(pictures) if pictures else None

    def text(self) -> str:
        best = self.error.best
        what = (f"best candidate {best.needle.name!r} of {len(self.error.candidates)}"
                if best is not None else
                "text read" if self.error.text is not None else "no candidate")
        return f"ScreenMismatch evidence: {what}"

    def __repr__(self) -> str:
        return self.text()

    def _repr_mimebundle_(self, include: Any = None, exclude: Any = None) -> dict[str, Any]:
        bundle: dict[str, Any] = {"text/plain": self.text()}
        parts = [f"<p><b>ScreenMismatch</b>: {html.escape(self.error.message)}</p>"]
        if self.picture is not None:
            png = io.BytesIO()
            self.picture.save(png, format="PNG", compress_level=1)
            bundle["image/png"] = png.getvalue()
            encoded = base64.b64encode(bundle["image/png"]).decode("ascii")
            parts.append(f'<img src="data:image/png;base64,{encoded}" '
                         'style="image-rendering: pixelated; max-width: 100%"/>')
        parts.append(self._numbers_html())
        bundle["text/html"] = "\n".join(parts)
        return bundle

    def _numbers_html(self) -> str:
        rows = []
        for found in self.error.candidates:
            numbers = match_numbers(found)
            for i, area in enumerate(numbers["areas"]):
                cells = [numbers["needle"] if i == 0 else "", area["type"],
                         "{},{} {}x{}".format(area["needle_box"][0], area["needle_box"][1],
                                              area["needle_box"][2] - area["needle_box"][0],
                                              area["needle_box"][3] - area["needle_box"][1]),
                         "{},{}".format(*area["found_at"]),
                         f"{area['similarity']:.3f}", f"{area['required']:.2f}",
                         "yes" if area["passed"] else "no"]
                rows.append("<tr>" + "".join(f"<td>{html.escape(str(c))}</td>"
                                             for c in cells) + "</tr>")
        table = ""
        if rows:
            head = "".join(f"<th>{h}</th>" for h in ("needle", "area", "box", "found at",
                                                      "similarity", "needed", "passed"))
            table = f"<table><tr>{head}</tr>{''.join(rows)}</table>"
        if self.error.text is not None:
            table += f"<p>text read:</p><pre>{html.escape(self.error.text)}</pre>"
        return table


def _grid(pictures: dict[str, Image.Image]) -> Image.Image:
    """The pictures two a row, each under its caption, in the order of CAPTIONS."""
    ordered = [(CAPTIONS.get(k, k), pictures[k]) for k in CAPTIONS if k in pictures]
    cell_w = max(p.width for _, p in ordered)
    cell_h = max(p.height for _, p in ordered) + LABEL_H
    columns = min(2, len(ordered))
    rows = (len(ordered) + 1) // 2
    sheet = Image.new("RGB", (columns * cell_w + (columns - 1) * GAP,
                              rows * cell_h + (rows - 1) * GAP), BACKGROUND)
    draw = ImageDraw.Draw(sheet)
    for i, (caption, picture) in enumerate(ordered):
        left, top = (i % 2) * (cell_w + GAP), (i // 2) * (cell_h + GAP)
        draw.text((left + 2, top + 1), caption, fill=(0, 0, 0))
        sheet.paste(picture.convert("RGB"), (left, top + LABEL_H))
    return sheet


def _show_mismatch(shell: InteractiveShell, etype: type[BaseException],
                   value: BaseException, tb: TracebackType | None,
                   tb_offset: int | None = None) -> list[str]:
    # run_code ignores what this returns: the error output must be sent from here
    assert isinstance(value, ScreenMismatch)
    display(MismatchView(value))  # type: ignore[no-untyped-call]  # IPython is untyped
    lines = brief_traceback(value)
    shell._showtraceback(etype, value, lines)
    return lines


def register_mismatch_view(shell: InteractiveShell) -> None:
    """Show ScreenMismatch from any cell as :class:`MismatchView` plus one error line.

    IPython has one custom exception hook per shell; another one already set is replaced
    only if it is ours (or none)."""
    if shell.custom_exceptions not in ((), (ScreenMismatch,)):
        return
    shell.set_custom_exc((ScreenMismatch,), _show_mismatch)  # type: ignore[no-untyped-call]


def unregister_mismatch_view(shell: InteractiveShell) -> None:
    if shell.custom_exceptions == (ScreenMismatch,):
        shell.custom_exceptions = ()
