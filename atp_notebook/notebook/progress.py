"""A progress bar for waits in a notebook, as HTML updated in place (no ipywidgets).

It shows only inside a Jupyter kernel: a terminal IPython, a script, a test or a log gets
nothing. Updates go through a display id (``update_display_data``), at most every
:data:`MIN_INTERVAL_S`, so a long wait does not flood the IOPub channel.

nbval replays only the first ``display_data`` of a display and ignores its updates, while
``nbconvert --execute`` stores the last state. So every state renders the same words, and
what moves (the bar's value, the seconds) is what ``tests/nbval-sanitize.cfg`` masks.

Example::

    bar = AgentProgress("the guest agent of atp-vm1", timeout=60)
    vm.wait_for_agent(60, progress=bar)      # bar(elapsed, timeout) before each try
    bar.close("answered after 3.2 s")
"""

from __future__ import annotations

import html
import time
from collections.abc import Callable
from typing import Any

from IPython.core.getipython import get_ipython
from IPython.display import display

# IPython.display has no annotations: say what we rely on
_display: Callable[..., Any] = display

MIN_INTERVAL_S = 0.25


def in_notebook() -> bool:
    """True inside a Jupyter kernel (a ZMQ shell has a ``kernel``; a terminal one has not)."""
    shell = get_ipython()
    return shell is not None and getattr(shell, "kernel", None) is not None


class ProgressView:
    """One state of the bar. ``outcome`` None: still waiting; else how the wait ended
    (``answered after 3.2 s``), shown with a full bar, so the bar says done.

    Every state reads ``waiting for LABEL (STATE)``: the part in parentheses is what
    ``tests/nbval-sanitize.cfg`` masks, so nbval's first state equals the stored last one.
    """

    def __init__(self, label: str, elapsed: float, total: float,
                 outcome: str | None = None) -> None:
        self.label = label
        self.elapsed = elapsed
        self.total = total
        self.outcome = outcome

    def _repr_mimebundle_(self, include: Any = None, exclude: Any = None) -> dict[str, str]:
        label = html.escape(self.label)
        value = self.total if self.outcome is not None else self.elapsed
        bar = (f'<progress value="{value:.1f}" max="{self.total:g}" '
               f'style="width: 12em; vertical-align: middle"></progress>')
        if self.outcome is None:
            plain_state = f"up to {self.total:g} s"
            html_state = f"{self.elapsed:.1f} s of {self.total:g} s"
        else:
            plain_state = html_state = f"done: {self.outcome}"
        return {
            "text/plain": f"waiting for {self.label} ({plain_state})",
            "text/html": f"{bar} waiting for {label} ({html.escape(html_state)})",
        }


class AgentProgress:
    """Callable as ``progress(elapsed, timeout)``; shows itself when created, and says how
    the wait ended when closed."""

    def __init__(self, label: str, timeout: float) -> None:
        self.label = label
        self.timeout = timeout
        self._last = time.monotonic()
        self._elapsed = 0.0
        self._handle = _display(ProgressView(label, 0.0, timeout), display_id=True)

    def __call__(self, elapsed: float, timeout: float) -> None:
        self._elapsed, self.timeout = elapsed, timeout
        now = time.monotonic()
        if now - self._last >= MIN_INTERVAL_S:
            self._last = now
            self._update(ProgressView(self.label, elapsed, timeout))

    def close(self, outcome: str = "ended") -> None:
        """Replace the bar with how the wait ended (``answered after 3.2 s``)."""
        self._update(ProgressView(self.label, self._elapsed, self.timeout, outcome))

    def _update(self, view: ProgressView) -> None:
        self._handle.update(view)
