"""Toolkit errors in a magic: one clear line (plus notes and a hint), not a traceback.

IPython asks an exception for ``_render_traceback_()`` before formatting a traceback
(``InteractiveShell.showtraceback``). We attach one to the AtpError itself, so the cell
still fails -- nbval and ``nbconvert --execute`` see an ``error`` output, and code that
calls the magic can catch the original type -- but the notebook shows only what went wrong.
User mistakes are :class:`UsageError` (IPython prints those without a traceback already).

Example::

    with errors_shown_briefly():
        vm.qmp("no-such-command")
    # QmpCommandError: QMP 'no-such-command' failed: CommandNotFound: The command ...
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from functools import partial

from atp_notebook.errors import AtpError

RED = "\x1b[0;31m"
RESET = "\x1b[0m"


def brief_traceback(exc: AtpError) -> list[str]:
    """The lines shown for ``exc``: ``Type: message``, its notes, then ``hint: ...``."""
    lines = [f"{RED}{type(exc).__name__}{RESET}: {exc.message}"]
    lines += [str(note) for note in getattr(exc, "__notes__", ())]
    if exc.hint:
        lines.append(f"hint: {exc.hint}")
    return lines


@contextmanager
def errors_shown_briefly() -> Iterator[None]:
    """Re-raise AtpErrors unchanged but rendered by :func:`brief_traceback` in IPython."""
    try:
        yield
    except AtpError as exc:
        # an instance attribute: IPython looks it up with hasattr() on the exception object
        exc._render_traceback_ = partial(brief_traceback, exc)  # type: ignore[attr-defined]
        raise
