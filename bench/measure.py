"""Shared helpers of the benchmarks: timing, percentiles, interleaving, and the JSON line.

Speed is measured, never asserted. A figure is one JSON line on stdout, of one of two kinds:

- a **ratio**: ``ours``, the ``anchor`` measured in the same run doing the same work by the
  rawest means available, and ``ratio = ours / anchor``; ``ours_is`` and ``anchor_is`` say
  what each side timed, and must differ (a figure divided by itself says nothing);
- a **plain** figure: ``ours`` alone, ``anchor`` and ``ratio`` null, for what has no
  like-for-like raw counterpart (``atp-lab up``, a bare socket connect, a pool hand-out).

``check_line`` is the one definition of a valid line: ``emit`` refuses to print anything it
would reject, and ``bench/run.py`` and the tests apply it to what the modules printed.
"""

from __future__ import annotations

import json
import math
import os
import sys
import time
from collections.abc import Callable, Sequence
from typing import Any

NS_PER_MS = 1_000_000
NS_PER_US = 1_000
UNITS = ("ns", "us", "ms", "s", "MiB", "fps")  # MiB: memory (display_rss); fps: widget_fps
STRING_KEYS = ("name", "unit", "ours_is")
NUMERIC_KEYS = ("ours", "anchor", "ratio")
RATIO_REL_TOL = 1e-9


def is_quick() -> bool:
    """``--quick`` on the command line or ``ATP_BENCH_QUICK=1``: fewer iterations (smoke tests)."""
    return "--quick" in sys.argv[1:] or os.environ.get("ATP_BENCH_QUICK") == "1"


def iterations(normal: int, quick: int) -> int:
    return quick if is_quick() else normal


def timed(fn: Callable[[], object]) -> int:
    """Wall time of one call of ``fn``, in nanoseconds."""
    start = time.perf_counter_ns()
    fn()
    return time.perf_counter_ns() - start


def sample(fn: Callable[[], object], n: int) -> list[int]:
    return [timed(fn) for _ in range(n)]


def interleave(
    a: Callable[[], object], b: Callable[[], object], n: int
) -> tuple[list[int], list[int]]:
    """Time ``n`` calls of each of ``a`` and ``b``, alternating in ABBA order.

    Alternating spreads slow drift (a busy host, a warming cache) over both equally, and
    swapping who goes first each round cancels any advantage of running right after the other.
    """
    times_a: list[int] = []
    times_b: list[int] = []
    for i in range(n):
        if i % 2 == 0:
            times_a.append(timed(a))
            times_b.append(timed(b))
        else:
            times_b.append(timed(b))
            times_a.append(timed(a))
    return times_a, times_b


def percentile(samples: Sequence[float], p: float) -> float:
    """The ``p``-th percentile (0..100), interpolating linearly between closest ranks.

    This is Hyndman & Fan's type 7 (numpy's default): p=50 is the usual median, p=0 and
    p=100 the minimum and maximum.
    """
    if not samples:
        raise ValueError("percentile of no samples")
    if not 0 <= p <= 100:
        raise ValueError(f"percentile {p} outside 0..100")
    xs = sorted(samples)
    rank = (len(xs) - 1) * p / 100
    lo = math.floor(rank)
    hi = min(lo + 1, len(xs) - 1)
    return xs[lo] + (xs[hi] - xs[lo]) * (rank - lo)


def median(samples: Sequence[float]) -> float:
    return percentile(samples, 50)


def ms(ns: float) -> float:
    return ns / NS_PER_MS


def us(ns: float) -> float:
    return ns / NS_PER_US


def _finite_number(value: object) -> bool:
    return not isinstance(value, bool) and isinstance(value, int | float) \
        and math.isfinite(value)


def check_figure(doc: object) -> str | None:
    """Why ``doc`` is not a valid figure, or None when it is (see the module's docstring)."""
    if not isinstance(doc, dict):
        return "not a JSON object"
    missing = [k for k in (*STRING_KEYS, *NUMERIC_KEYS) if k not in doc]
    if missing:
        return f"missing {', '.join(missing)}"
    for key in STRING_KEYS:
        if not isinstance(doc[key], str) or not doc[key].strip():
            return f"{key} is not a non-empty string"
    if doc["unit"] not in UNITS:
        return f"unit {doc['unit']!r} is not one of {', '.join(UNITS)}"
    if not _finite_number(doc["ours"]) or doc["ours"] < 0:
        return "ours is not a finite number >= 0"
    anchor, ratio = doc["anchor"], doc["ratio"]
    if anchor is None or ratio is None:
        if anchor is not None or ratio is not None:
            return "a plain figure has both anchor and ratio null, a ratio figure neither"
        if "anchor_is" in doc:
            return "a plain figure has no anchor_is"
        return None
    for key in ("anchor", "ratio"):
        if not _finite_number(doc[key]):
            return f"{key} is not a finite number"
    if anchor <= 0:
        return "anchor is not positive"
    anchor_is = doc.get("anchor_is")
    if not isinstance(anchor_is, str) or not anchor_is.strip():
        return "a ratio figure needs anchor_is, what its anchor timed"
    if anchor_is.strip() == doc["ours_is"].strip():
        return f"ours and anchor time the same thing ({anchor_is!r}): the ratio is 1 by " \
               "construction"
    if doc["ours"] == anchor:
        # distinct work measured in ns never lands on the very same float: the same
        # samples were used for both sides
        return "ours equals anchor exactly: the same samples on both sides"
    expected = doc["ours"] / anchor
    if not math.isclose(ratio, expected, rel_tol=RATIO_REL_TOL):
        return f"ratio {ratio} is not ours/anchor = {expected}"
    return None


def check_line(line: str) -> tuple[dict[str, Any] | None, str | None]:
    """The figure of one stdout line, or why it is not one."""
    try:
        doc = json.loads(line)
    except json.JSONDecodeError as exc:
        return None, f"not JSON ({exc.msg}): {line!r}"
    error = check_figure(doc)
    if error is not None:
        return None, f"{error}: {line!r}"
    assert isinstance(doc, dict)
    return doc, None


def _print_figure(line: dict[str, Any], extra: dict[str, object]) -> None:
    if clash := line.keys() & extra.keys():
        raise ValueError(f"{line['name']}: extra keys {sorted(clash)} would overwrite the "
                         "figure")
    doc = {**line, **extra}
    if (error := check_figure(doc)) is not None:
        raise ValueError(f"{line['name']}: {error}")
    print(json.dumps(doc), flush=True)


def emit(name: str, ours: float, anchor: float, unit: str = "ms", *, ours_is: str,
         anchor_is: str, **extra: object) -> None:
    """Print one ratio figure as a JSON line on stdout: ``ratio`` is ``ours / anchor``.

    ``ours_is``/``anchor_is`` name what each side timed, e.g. ``emit("vm_qmp.local.p50",
    ours, anchor, ours_is='vm.qmp("query-status")', anchor_is="qemuMonitorCommand")``.
    """
    ratio = ours / anchor if anchor > 0 and math.isfinite(anchor) else math.nan
    _print_figure({"name": name, "ours": ours, "anchor": anchor, "ratio": ratio,
                   "unit": unit, "ours_is": ours_is, "anchor_is": anchor_is}, extra)


def emit_plain(name: str, value: float, unit: str = "ms", *, ours_is: str,
               **extra: object) -> None:
    """Print one plain figure (no like-for-like anchor): ``anchor`` and ``ratio`` are null.

    ``emit_plain("atp_lab_up.warm", 470.0, ours_is="atp-lab up on a lab that is up")``
    """
    _print_figure({"name": name, "ours": value, "anchor": None, "ratio": None, "unit": unit,
                   "ours_is": ours_is}, extra)
