"""Shared fixtures: the lab, found up or failed loudly; and where hypothesis keeps its files.

A test that needs the lab fails (never skips) when the lab is not up: a skipped integration
test would hide exactly the breakage it exists to catch.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest
from hypothesis.configuration import set_hypothesis_home_dir

from atp_notebook.lab.paths import LabPaths
from atp_notebook.lab.status import LabStatus, lab_status
from atp_notebook.session import Session, connect

# a test failing with ScreenMismatch leaves its pictures in --screen-evidence DIR (or beside
# --junitxml's report); without either option the plugin writes nothing
pytest_plugins = ["atp_notebook.screen.pytest_plugin"]

# Hypothesis keeps its example database (and caches) in ./.hypothesis of the directory
# pytest starts in, i.e. inside the repository; keep them in the user's cache instead. This
# only sets a path: nothing is created until a test with @given runs.
HYPOTHESIS_HOME = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") \
    / "atp-notebook" / "hypothesis"
set_hypothesis_home_dir(HYPOTHESIS_HOME)


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    # lifecycle tests stop and restart lab parts: run them after everything that uses the lab
    items.sort(key=lambda item: item.get_closest_marker("lifecycle") is not None)


@pytest.fixture(scope="session")
def lab_paths() -> LabPaths:
    return LabPaths.default()


def describe_failures(status: LabStatus) -> str:
    bad = [f"host {h.id}: {h.error}" for h in status.hosts if not h.ok]
    bad += [f"vm {v.name}: {v.state}, agent={'ok' if v.agent else 'silent'}"
            for v in status.vms if not v.ok]
    return "; ".join(bad)


def require_lab(paths: LabPaths) -> LabStatus:
    status = lab_status(paths)
    if not status.ok:
        pytest.fail(
            f"the lab is not up ({describe_failures(status)}); run `atp-lab up` first",
            pytrace=False,
        )
    return status


@pytest.fixture
def lab(lab_paths: LabPaths) -> LabStatus:
    """The lab's status, checked before each test that uses it (lifecycle tests change it)."""
    return require_lab(lab_paths)


@pytest.fixture
def session(lab: LabStatus, lab_paths: LabPaths) -> Iterator[Session]:
    """A Session on the lab's atp.yaml (the lab checked first), closed after the test."""
    s = connect(lab_paths.config_file)
    yield s
    s.close()
