"""Fixtures of the browser tests: JupyterLab on loopback and Debian's chromium via Playwright.

Both come from ``bench/jupyter_lab.py`` (the widget bench uses the same): JupyterLab from this
venv in a temporary directory on a free loopback port with a random token, and Debian's
``/usr/bin/chromium``. Here a JupyterLab that does not start, or a missing chromium, fails
the tests (they never skip).

Example::

    def test_x(jupyter_lab: JupyterLab, page: Page) -> None:
        jupyter_lab.write_notebook("n.ipynb", ["1 + 1"])
        jupyter_lab.copy_notebook(NOTEBOOKS / "04-live-screen.ipynb", ["w.stats"])
        page.goto(jupyter_lab.url("lab/tree/n.ipynb"))
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from pathlib import Path

import pytest
from playwright.sync_api import Browser, Page

from atp_notebook.lab.paths import LabPaths
from bench.jupyter_lab import Lab, chromium
from bench.jupyter_lab import jupyter_lab as start_jupyter_lab

NOTEBOOKS = Path(__file__).resolve().parents[2] / "notebooks"
JupyterLab = Lab  # the name the tests use


@pytest.fixture(scope="module")
def jupyter_lab(tmp_path_factory: pytest.TempPathFactory,
                lab_paths: LabPaths) -> Iterator[JupyterLab]:
    """JupyterLab serving a fresh temporary directory; its kernels use the lab's atp.yaml."""
    root = tmp_path_factory.mktemp("jupyter")
    with contextlib.ExitStack() as stack:
        try:
            lab = stack.enter_context(
                start_jupyter_lab(root, {"ATP_CONFIG": str(lab_paths.config_file)}))
        except RuntimeError as exc:  # it did not start: a failure, never a skip
            pytest.fail(str(exc), pytrace=False)
        yield lab


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    """Debian's chromium, headless, driven by Playwright."""
    with contextlib.ExitStack() as stack:
        try:
            browser = stack.enter_context(chromium())
        except RuntimeError as exc:  # chromium missing: a failure, never a skip
            pytest.fail(str(exc), pytrace=False)
        yield browser


@pytest.fixture
def page(browser: Browser) -> Iterator[Page]:
    context = browser.new_context(viewport={"width": 1280, "height": 900})
    page = context.new_page()
    yield page
    context.close()
