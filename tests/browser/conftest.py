"""Fixtures of the browser tests: JupyterLab on loopback and Debian's chromium via Playwright.

JupyterLab runs from this venv (so its ``python3`` kernel is this venv's) in a temporary
directory, on a free loopback port with a random token, with its settings, workspaces and
runtime files in that directory too, so nothing of the machine's own Jupyter setup takes part.
Chromium is Debian's ``/usr/bin/chromium`` (scripts/setup.sh installs it); Playwright never
downloads a browser here. A missing chromium fails the tests (it never skips them).

Example::

    def test_x(jupyter_lab: JupyterLab, page: Page) -> None:
        jupyter_lab.write_notebook("n.ipynb", ["1 + 1"])
        jupyter_lab.copy_notebook(NOTEBOOKS / "04-live-screen.ipynb", ["w.stats"])
        page.goto(jupyter_lab.url("lab/tree/n.ipynb"))
"""

from __future__ import annotations

import contextlib
import json
import os
import secrets
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from playwright.sync_api import Browser, Page, sync_playwright

from atp_notebook.lab.paths import LabPaths

NOTEBOOKS = Path(__file__).resolve().parents[2] / "notebooks"
CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu",
                 "--disable-background-networking", "--disable-component-update",
                 "--disable-sync", "--no-first-run"]
START_TIMEOUT_S = 90.0
# user settings of the test's JupyterLab: start the notebook's kernel without asking, and
# never fetch news from the network
LAB_SETTINGS = {
    "@jupyterlab/notebook-extension/tracker": {"autoStartDefaultKernel": True},
    "@jupyterlab/apputils-extension/notification": {"fetchNews": "false"},
}


@dataclass
class JupyterLab:
    """A running JupyterLab: its ``root`` directory, ``port``, ``token`` and log file."""

    root: Path
    port: int
    token: str
    log: Path
    process: subprocess.Popen[bytes]

    def url(self, path: str) -> str:
        sep = "&" if "?" in path else "?"
        return f"http://127.0.0.1:{self.port}/{path}{sep}token={self.token}"

    def write_notebook(self, name: str, cells: list[str]) -> Path:
        """A notebook of code ``cells`` for this venv's python3 kernel."""
        notebook = {
            "nbformat": 4, "nbformat_minor": 5,
            "metadata": {"kernelspec": {"name": "python3", "display_name": "Python 3",
                                        "language": "python"}},
            "cells": [{"cell_type": "code", "id": f"cell-{i}", "metadata": {},
                       "execution_count": None, "outputs": [], "source": source}
                      for i, source in enumerate(cells)],
        }
        path = self.root / name
        path.write_text(json.dumps(notebook, indent=1))
        return path

    def copy_notebook(self, source: Path, extra_cells: list[str]) -> Path:
        """``source`` in the served directory, its stored outputs dropped (what shows is
        what this run made), then ``extra_cells`` appended: a test's own checks, run after
        the notebook's cells by the same kernel."""
        notebook = json.loads(source.read_text())
        for cell in notebook["cells"]:
            if cell["cell_type"] == "code":
                cell["outputs"], cell["execution_count"] = [], None
        notebook["cells"] += [{"cell_type": "code", "id": f"test-{i}", "metadata": {},
                               "execution_count": None, "outputs": [], "source": text}
                              for i, text in enumerate(extra_cells)]
        path = self.root / source.name
        path.write_text(json.dumps(notebook, indent=1))
        return path

    def log_tail(self, lines: int = 40) -> str:
        with contextlib.suppress(OSError):
            return "\n".join(self.log.read_text(errors="replace").splitlines()[-lines:])
        return ""


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _answers(url: str) -> bool:
    try:
        with urllib.request.urlopen(url, timeout=2) as reply:  # loopback only
            return bool(reply.status == 200)
    except (urllib.error.URLError, OSError):
        return False


@pytest.fixture(scope="module")
def jupyter_lab(tmp_path_factory: pytest.TempPathFactory,
                lab_paths: LabPaths) -> Iterator[JupyterLab]:
    """JupyterLab serving a fresh temporary directory; its kernels use the lab's atp.yaml."""
    root = tmp_path_factory.mktemp("jupyter")
    home = root / ".jupyter-home"
    for sub in ("config", "data", "runtime", "settings", "workspaces"):
        (home / sub).mkdir(parents=True)
    for name, values in LAB_SETTINGS.items():
        path = home / "settings" / f"{name}.jupyterlab-settings"
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(values))
    env = dict(os.environ,
               ATP_CONFIG=str(lab_paths.config_file),
               JUPYTER_CONFIG_DIR=str(home / "config"),
               JUPYTER_RUNTIME_DIR=str(home / "runtime"),
               JUPYTERLAB_SETTINGS_DIR=str(home / "settings"),
               JUPYTERLAB_WORKSPACES_DIR=str(home / "workspaces"),
               JUPYTER_PLATFORM_DIRS="1")
    port, token = free_port(), secrets.token_hex(16)
    log = root / "jupyterlab.log"
    with log.open("wb") as out:
        process = subprocess.Popen(
            [sys.executable, "-m", "jupyterlab", "--no-browser", "--allow-root",
             "--ServerApp.ip=127.0.0.1", f"--ServerApp.port={port}",
             "--ServerApp.port_retries=0", f"--IdentityProvider.token={token}",
             f"--ServerApp.root_dir={root}", "--LabApp.news_url=",
             "--LabApp.check_for_updates_class=jupyterlab.NeverCheckForUpdate"],
            cwd=root, env=env, stdout=out, stderr=subprocess.STDOUT, start_new_session=True)
    lab = JupyterLab(root, port, token, log, process)
    try:
        deadline = time.monotonic() + START_TIMEOUT_S
        while not _answers(lab.url("api/status")):
            if process.poll() is not None or time.monotonic() > deadline:
                pytest.fail(f"JupyterLab did not answer on port {port} within "
                            f"{START_TIMEOUT_S:g} s (exit {process.poll()}):\n"
                            f"{lab.log_tail()}", pytrace=False)
            time.sleep(0.3)
        yield lab
    finally:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(process.pid, signal.SIGTERM)  # the server and its kernels
        try:
            process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(process.pid, signal.SIGKILL)
            process.wait(timeout=10)


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    """Debian's chromium, headless, driven by Playwright."""
    if not CHROMIUM.exists():
        pytest.fail(f"{CHROMIUM} is missing: scripts/setup.sh installs Debian's chromium",
                    pytrace=False)
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=str(CHROMIUM), headless=True,
                                             args=CHROMIUM_ARGS, timeout=60_000)
        yield browser
        browser.close()


@pytest.fixture
def page(browser: Browser) -> Iterator[Page]:
    context = browser.new_context(viewport={"width": 1280, "height": 900})
    page = context.new_page()
    yield page
    context.close()
