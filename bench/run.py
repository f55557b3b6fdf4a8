"""Run the benchmark suite: every ``bench/bench_*.py``, one JSON line per figure.

    .venv/bin/python bench/run.py [--quick] [--only NAME[,NAME]] [--exclude NAME[,NAME]]

NAME is a module name without ``bench_`` (``libvirt_open``, ``roundtrip``, ``lab_up``).
Each module runs as ``python -m bench.bench_NAME`` from the repository root with this
interpreter; its stdout must be figure lines that ``bench.measure.check_line`` accepts: a
ratio figure ``{"name", "ours", "anchor", "ratio", "unit", "ours_is", "anchor_is", ...}``
with ratio = ours / anchor, or a plain one with ``anchor`` and ``ratio`` null. Valid figures
go to stdout and to ``bench/results/latest.jsonl``, a table to stderr. Exit status 1 when any
module fails or prints a bad line (named on stderr), 2 on a usage error.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

BENCH_DIR = Path(__file__).resolve().parent
ROOT = BENCH_DIR.parent
if __package__ in (None, ""):  # run as `python bench/run.py`: make the `bench` package importable
    sys.path.insert(0, str(ROOT))

from bench.measure import check_line  # noqa: E402

DEFAULT_OUTPUT = BENCH_DIR / "results" / "latest.jsonl"
PREFIX = "bench_"
# modules that restart the lab run after the rest: freshly booted VMs would skew them
RUN_LAST = ("lab_up",)


@dataclass
class Outcome:
    name: str
    figures: list[dict[str, Any]] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)
    seconds: float = 0.0


def discover() -> list[str]:
    names = sorted(p.stem.removeprefix(PREFIX) for p in BENCH_DIR.glob(f"{PREFIX}*.py"))
    return sorted(names, key=lambda n: n in RUN_LAST)


def run_one(name: str, quick: bool) -> Outcome:
    outcome = Outcome(name)
    cmd = [sys.executable, "-m", f"bench.{PREFIX}{name}", *(["--quick"] if quick else [])]
    print(f"== {PREFIX}{name}", file=sys.stderr, flush=True)
    began = time.monotonic()
    # the module's stderr (progress, tracebacks) passes straight through to ours
    proc = subprocess.run(cmd, cwd=ROOT, stdout=subprocess.PIPE, text=True, check=False)
    outcome.seconds = time.monotonic() - began
    for number, line in enumerate(proc.stdout.splitlines(), start=1):
        if not line.strip():
            continue
        doc, error = check_line(line)
        if error is not None:
            outcome.errors.append(f"stdout line {number}: {error}")
        elif doc is not None:
            outcome.figures.append(doc)
    if proc.returncode != 0:
        outcome.errors.append(f"exited with status {proc.returncode}")
    elif not outcome.figures and not outcome.errors:
        outcome.errors.append("printed no figures")
    return outcome


def _cell(value: float | None, width: int) -> str:
    return f"{'-':>{width}}" if value is None else f"{value:>{width}.3f}"


def table(outcomes: Sequence[Outcome]) -> str:
    figures = [f for o in outcomes for f in o.figures]
    width = max((len(f["name"]) for f in figures), default=4)
    rows = [f"{'name':<{width}}  {'ours':>11}  {'anchor':>11}  {'ratio':>8}  unit"]
    rows += [
        f"{f['name']:<{width}}  {f['ours']:>11.3f}  {_cell(f['anchor'], 11)}  "
        f"{_cell(f['ratio'], 8)}  {f['unit']}"
        for f in figures
    ]
    rows += [
        f"{PREFIX}{o.name}: {'FAILED' if o.errors else 'ok'} in {o.seconds:.1f} s"
        for o in outcomes
    ]
    return "\n".join(rows)


def _names(values: list[str] | None) -> set[str]:
    return {n.strip() for v in values or [] for n in v.split(",") if n.strip()}


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="bench/run.py", description=__doc__.split("\n")[0])
    parser.add_argument("--quick", action="store_true", help="fewer iterations (smoke test)")
    parser.add_argument("--only", action="append", metavar="NAME[,NAME]",
                        help="run only these modules (name without bench_)")
    parser.add_argument("--exclude", action="append", metavar="NAME[,NAME]",
                        help="skip these modules")
    parser.add_argument("--output", type=Path, default=DEFAULT_OUTPUT,
                        help="where to write the figures (default %(default)s)")
    args = parser.parse_args(argv)
    known = discover()
    only, exclude = _names(args.only), _names(args.exclude)
    unknown = (only | exclude) - set(known)
    if unknown:
        parser.error(f"no such benchmark: {', '.join(sorted(unknown))} "
                     f"(known: {', '.join(known)})")
    selected = [n for n in known if (not only or n in only) and n not in exclude]
    if not selected:
        parser.error("nothing selected to run")

    began = time.monotonic()
    outcomes = [run_one(name, args.quick) for name in selected]
    total = time.monotonic() - began

    lines = [json.dumps(f) for o in outcomes for f in o.figures]
    seen: set[str] = set()
    for outcome in outcomes:
        for figure in outcome.figures:
            if figure["name"] in seen:
                outcome.errors.append(f"figure {figure['name']} printed twice")
            seen.add(figure["name"])
    for line in lines:
        print(line)
    args.output.parent.mkdir(parents=True, exist_ok=True)
    args.output.write_text("".join(f"{line}\n" for line in lines))

    print(table(outcomes), file=sys.stderr)
    print(f"total {total:.1f} s; figures in {args.output}", file=sys.stderr)
    failed = [o for o in outcomes if o.errors]
    for outcome in failed:
        for error in outcome.errors:
            print(f"FAIL {PREFIX}{outcome.name}: {error}", file=sys.stderr)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
