"""The benchmarks' own arithmetic and line format (``bench/measure.py``), without the lab."""

from __future__ import annotations

import json
import math
from typing import Any

import pytest

import bench.bench_lab_up as lab_up_bench
from bench.measure import check_line, emit, emit_plain, interleave, percentile
from bench.run import Outcome, table


@pytest.mark.parametrize(("samples", "p", "expected"), [
    ([7.0], 0, 7.0),
    ([7.0], 50, 7.0),
    ([7.0], 100, 7.0),
    ([3.0, 1.0, 2.0], 0, 1.0),  # unsorted input: the minimum
    ([3.0, 1.0, 2.0], 50, 2.0),
    ([3.0, 1.0, 2.0], 100, 3.0),
    ([10.0, 20.0, 30.0, 40.0], 50, 25.0),  # even count: halfway between the middle two
    ([10.0, 20.0, 30.0, 40.0], 25, 17.5),  # rank 0.75: three quarters from 10 to 20
    ([10.0, 20.0, 30.0, 40.0], 99, 39.7),
    ([0.0, 100.0], 10, 10.0),
])
def test_percentile(samples: list[float], p: float, expected: float) -> None:
    assert math.isclose(percentile(samples, p), expected)


@pytest.mark.parametrize(("samples", "p", "message"), [
    ([], 50, "no samples"),
    ([1.0], -1, "outside 0..100"),
    ([1.0], 100.5, "outside 0..100"),
])
def test_percentile_refuses(samples: list[float], p: float, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        percentile(samples, p)


@pytest.mark.parametrize(("n", "order"), [
    (1, "ab"),
    (2, "abba"),
    (4, "abbaabba"),
    (5, "abbaabbaab"),
])
def test_interleave_runs_abba_and_times_each_call(n: int, order: str) -> None:
    calls: list[str] = []
    times_a, times_b = interleave(lambda: calls.append("a"), lambda: calls.append("b"), n)
    assert "".join(calls) == order
    assert len(times_a) == len(times_b) == n
    assert all(isinstance(t, int) and t >= 0 for t in [*times_a, *times_b])


RATIO: dict[str, Any] = {"name": "f.x", "ours": 2.0, "anchor": 1.0, "ratio": 2.0, "unit": "ms",
                         "ours_is": "ours()", "anchor_is": "raw()", "n": 3}
PLAIN: dict[str, Any] = {"name": "f.y", "ours": 0.5, "anchor": None, "ratio": None,
                         "unit": "us", "ours_is": "handout()"}


DROP = object()  # a key to leave out of the line


def line(base: dict[str, Any], **changes: Any) -> str:
    doc = {**base, **changes}
    return json.dumps({k: v for k, v in doc.items() if v is not DROP})


@pytest.mark.parametrize("text", [line(RATIO), line(PLAIN), line(RATIO, unit="s"),
                                  line(PLAIN, ours=0)])
def test_check_line_accepts(text: str) -> None:
    doc, error = check_line(text)
    assert error is None and doc == json.loads(text)


@pytest.mark.parametrize(("text", "why"), [
    ("not json", "not JSON"),
    ("[1, 2]", "not a JSON object"),
    (line(RATIO, name=DROP), "missing name"),
    (line(RATIO, ours=DROP, unit=DROP), "missing unit, ours"),
    (line(RATIO, ours_is=DROP), "missing ours_is"),
    (line(RATIO, ratio=DROP), "missing ratio"),
    (line(PLAIN, anchor=DROP), "missing anchor"),
    (line(RATIO, name=""), "name is not a non-empty string"),
    (line(RATIO, unit="msec"), "unit 'msec' is not one of"),
    (line(RATIO, unit="MS"), "unit 'MS' is not one of"),
    (line(RATIO, unit=1), "unit is not a non-empty string"),
    (line(RATIO, ours="2"), "ours is not a finite number"),
    (line(RATIO, ours=True), "ours is not a finite number"),
    (line(RATIO, ours=-1.0, ratio=-1.0), "ours is not a finite number >= 0"),
    (line(RATIO, ours=math.nan), "ours is not a finite number"),
    (line(RATIO, anchor=math.inf), "anchor is not a finite number"),
    (line(RATIO, anchor=0.0), "anchor is not positive"),
    (line(RATIO, ratio=2.5), "is not ours/anchor"),
    (line(RATIO, anchor_is=DROP), "needs anchor_is"),
    # the same callable on both sides: a ratio of 1 by construction, however it is labelled
    (line(RATIO, ours=1.0, anchor=1.0, ratio=1.0, anchor_is="ours()"), "the same thing"),
    (line(RATIO, anchor_is=" ours() "), "the same thing"),
    (line(RATIO, ours=1.25, anchor=1.25, ratio=1.0), "the same samples"),
    (line(PLAIN, ratio=1.0), "both anchor and ratio null"),
    (line(PLAIN, anchor=1.0), "both anchor and ratio null"),
    (line(PLAIN, anchor_is="raw()"), "a plain figure has no anchor_is"),
])
def test_check_line_rejects(text: str, why: str) -> None:
    doc, error = check_line(text)
    assert doc is None and error is not None
    assert why in error
    assert error.endswith(repr(text))  # names the offending line


def test_emit_prints_lines_that_check_line_accepts(capsys: pytest.CaptureFixture[str]) -> None:
    emit("f.ratio", 3.0, 2.0, "ms", ours_is="ours()", anchor_is="raw()", n=5, p="p50")
    emit_plain("f.plain", 0.25, "us", ours_is="handout()", n=5)
    lines = capsys.readouterr().out.splitlines()
    docs = [check_line(text) for text in lines]
    assert [error for _, error in docs] == [None, None]
    assert [(d["ratio"], d["n"]) for d, _ in docs if d is not None] == [(1.5, 5), (None, 5)]


@pytest.mark.parametrize(("kwargs", "why"), [
    ({"ours": 1.0, "anchor": 1.0, "ours_is": "x()", "anchor_is": "y()"}, "the same samples"),
    ({"ours": 2.0, "anchor": 1.0, "ours_is": "x()", "anchor_is": "x()"}, "the same thing"),
    ({"ours": 1.0, "anchor": 0.0, "ours_is": "x()", "anchor_is": "y()"}, "not a finite"),
    ({"ours": 1.0, "anchor": 2.0, "ours_is": "x()", "anchor_is": "y()", "ratio": 9},
     "would overwrite"),
    ({"ours": 1.0, "anchor": 2.0, "unit": "seconds", "ours_is": "x()", "anchor_is": "y()"},
     "unit 'seconds'"),
])
def test_emit_refuses_what_check_line_would_reject(
    kwargs: dict[str, Any], why: str, capsys: pytest.CaptureFixture[str]
) -> None:
    with pytest.raises(ValueError, match=why):
        emit("f.bad", **kwargs)
    assert capsys.readouterr().out == ""


def test_the_table_shows_plain_figures_without_a_ratio() -> None:
    outcome = Outcome("x", figures=[json.loads(line(RATIO)), json.loads(line(PLAIN))])
    rows = table([outcome]).splitlines()
    assert rows[1].split() == ["f.x", "2.000", "1.000", "2.000", "ms"]
    assert rows[2].split() == ["f.y", "0.500", "-", "-", "us"]


@pytest.mark.parametrize(("quick", "calls"), [
    # the suite runs the quick mode while other tests use the lab: it only reads
    (True, ["status"] * 3),
    (False, [*["status"] * 6, *["up"] * 5, "down", "up", "up"]),
])
def test_lab_up_bench_changes_the_lab_only_in_a_full_run(
    quick: bool, calls: list[str], monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    made: list[str] = []

    def fake_atp_lab(*args: str) -> int:
        made.append(" ".join(args))
        return 1_000_000 * len(made)

    monkeypatch.setattr(lab_up_bench, "atp_lab", fake_atp_lab)
    monkeypatch.setenv("ATP_BENCH_QUICK", "1" if quick else "0")
    monkeypatch.setattr("sys.argv", ["bench_lab_up"])
    assert lab_up_bench.main() == 0
    assert made == calls
    figures = [check_line(text) for text in capsys.readouterr().out.splitlines()]
    assert all(error is None for _, error in figures)
    names = [doc["name"] for doc, _ in figures if doc is not None]
    assert names == ["atp_lab_status"] + ([] if quick else ["atp_lab_up.warm", "atp_lab_up.cold"])
