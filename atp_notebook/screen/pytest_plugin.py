"""A pytest plugin: a test that fails with ScreenMismatch leaves its evidence as files.

Opt in: ``pytest_plugins = ["atp_notebook.screen.pytest_plugin"]`` in the suite's root
conftest.py, or ``pytest -p atp_notebook.screen.pytest_plugin``. No ``pytest11`` entry
point: importing it imports the toolkit (``atp_notebook/__init__``), which every pytest run
in an environment that has the package installed would then pay for. For each such failure,
``save_evidence`` writes the screen, the needle, the best candidate, the diff and
``numbers.json`` into ``DIR/<test id>/``, where DIR is ``--screen-evidence DIR``, else a
``screen-evidence`` folder beside the ``--junitxml`` report; with neither, nothing is
written. The report's failure says where.

Example::

    pytest -p atp_notebook.screen.pytest_plugin tests/ --junitxml=out/report.xml
    # a ScreenMismatch's pictures are in out/screen-evidence/<test id>/
"""

from __future__ import annotations

import re
from collections.abc import Generator
from pathlib import Path

import pytest
from pluggy import Result

from atp_notebook.errors import ScreenMismatch
from atp_notebook.screen.evidence import save_evidence

OPTION = "--screen-evidence"


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.getgroup("atp-notebook").addoption(
        OPTION, dest="screen_evidence", default=None, metavar="DIR",
        help="save the screen, needle, candidate and diff of each ScreenMismatch failure in "
             "DIR/<test id>/ (default: screen-evidence/ beside --junitxml's report)")


def evidence_root(config: pytest.Config) -> Path | None:
    chosen = config.getoption("screen_evidence", None)
    if chosen:
        return Path(chosen)
    junit = config.getoption("xmlpath", None)
    return Path(junit).parent / "screen-evidence" if junit else None


def folder_for(nodeid: str) -> str:
    """A test id as one folder name: ``tests/test_x.py::test_y[a-1]`` ->
    ``tests_test_x.py__test_y_a-1_``."""
    return re.sub(r"[^\w.-]", "_", nodeid)


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item: pytest.Item,
                              call: pytest.CallInfo[None]
                              ) -> Generator[None, Result[pytest.TestReport], None]:
    outcome = yield
    error = call.excinfo.value if call.excinfo is not None else None
    root = evidence_root(item.config)
    if not isinstance(error, ScreenMismatch) or root is None:
        return
    folder = root / folder_for(item.nodeid)
    save_evidence(error, folder)
    outcome.get_result().sections.append(("screen evidence", f"saved in {folder}"))
