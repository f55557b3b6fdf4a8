"""The test suite's own hygiene: declared markers only, hypothesis's files outside the
repository, every lab test that pauses a VM resumes it whatever happens, and the polling
helper that leak checks use instead of a fixed sleep."""

from __future__ import annotations

import ast
import re
import tomllib
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.configuration import storage_directory
from hypothesis.database import DirectoryBasedExampleDatabase

from tests.settling import settled

ROOT = Path(__file__).resolve().parents[2]
TESTS = ROOT / "tests"
# markers pytest and its plugins declare themselves
BUILTIN_MARKERS = {"parametrize", "skip", "skipif", "xfail", "usefixtures", "filterwarnings",
                   "timeout"}
MARKER_USE = re.compile(r"\bpytest\.mark\.(\w+)")


def pytest_options() -> dict[str, object]:
    with (ROOT / "pyproject.toml").open("rb") as f:
        options = tomllib.load(f)["tool"]["pytest"]["ini_options"]
    assert isinstance(options, dict)
    return options


def test_markers_are_strict(pytestconfig: pytest.Config) -> None:
    addopts = pytest_options()["addopts"]
    assert isinstance(addopts, list) and "--strict-markers" in addopts
    assert pytestconfig.getoption("strict_markers")  # in force in this very run


def test_every_declared_marker_is_used_and_every_used_one_declared() -> None:
    markers = pytest_options()["markers"]
    assert isinstance(markers, list)
    declared = {m.split(":")[0].strip() for m in markers}
    used = {name for path in TESTS.rglob("*.py") if path != Path(__file__)
            for name in MARKER_USE.findall(path.read_text())} - BUILTIN_MARKERS
    assert declared == used


def is_inside(path: Path, root: Path) -> bool:
    return path.resolve().is_relative_to(root.resolve())


def test_hypothesis_keeps_its_files_outside_the_repository() -> None:
    home = storage_directory("examples", intent_to_write=False).path
    assert not is_inside(home, ROOT), home
    database = settings().database
    if isinstance(database, DirectoryBasedExampleDatabase):  # None or in memory in CI
        assert not is_inside(Path(database.path), ROOT), database.path


def test_a_hypothesis_run_leaves_nothing_in_the_repository() -> None:
    @settings(max_examples=30)
    @given(st.text(max_size=3))  # text: hypothesis also caches its Unicode tables
    def check(text: str) -> None:
        assert len(text) <= 3

    check()
    assert not (ROOT / ".hypothesis").exists(), "delete it, then see where hypothesis writes"


# what pauses a VM in a lab test: a QMP stop, by method, magic line or %%qmp cell line
STOPS = re.compile(r"""qmp(?:_async)?\(\s*["']stop["']|monitor\.stop\(|(?:\\n|[^\w\\])stop\\n""")


def pausing_tests() -> list[tuple[str, str]]:
    found = []
    for path in sorted((TESTS / "integration").glob("test_*.py")):
        text = path.read_text()
        for node in ast.parse(text).body:
            if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
                source = ast.get_source_segment(text, node) or ""
                if STOPS.search(source):
                    found.append((f"{path.name}::{node.name}", source))
    return found


def test_the_pause_check_finds_the_lab_tests_that_pause() -> None:
    # the check below would pass vacuously if the pattern stopped matching
    assert len(pausing_tests()) >= 4


@pytest.mark.parametrize(("test", "source"), pausing_tests(),
                         ids=[test for test, _ in pausing_tests()])
def test_a_test_that_pauses_a_vm_resumes_it_whatever_happens(test: str, source: str) -> None:
    assert "resumed_after(" in source, (
        f"{test} pauses a VM: wrap it in tests.integration.pausing.resumed_after, so a "
        "failing assertion does not leave the VM paused for every later test")


def test_settled_polls_until_the_count_is_back() -> None:
    counts = iter([3, 2, 2, 1, 0, 0])
    assert settled(lambda: next(counts), 0, timeout=10, interval=0) == 0
    assert next(counts) == 0  # stopped at the first match: one value left


def test_settled_gives_up_at_its_deadline_with_the_last_value() -> None:
    reads: list[int] = []

    def leaking() -> int:
        reads.append(len(reads))
        return 5

    assert settled(leaking, 4, timeout=0.05, interval=0.01) == 5
    assert len(reads) >= 2  # read again after the first miss, then stopped
