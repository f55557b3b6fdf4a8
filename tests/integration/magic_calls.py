"""Running magics in the test shell: a line, a cell, a whole cell as Jupyter runs it, and a
result's ``text/plain`` (what nbval compares)."""

from __future__ import annotations

from typing import Any

import pytest
from IPython.core.interactiveshell import InteractiveShell

from atp_notebook.notebook.results import Result


def line(ip: InteractiveShell, name: str, text: str) -> Any:
    return ip.run_line_magic(name, text)


def cell(ip: InteractiveShell, name: str, text: str, body: str) -> Any:
    shell: Any = ip
    return shell.run_cell_magic(name, text, body)


def plain(result: Any) -> str:
    assert isinstance(result, Result)
    text = result._repr_mimebundle_()["text/plain"]
    assert isinstance(text, str)
    return text


def run_cell(ip: InteractiveShell, source: str, capsys: pytest.CaptureFixture[str]
             ) -> tuple[Any, str]:
    """Run ``source`` as a cell; (the error it raised or None, everything it printed)."""
    capsys.readouterr()
    shell: Any = ip
    result = shell.run_cell(source)
    out = capsys.readouterr()
    return result.error_in_exec or result.error_before_exec, out.out + out.err
