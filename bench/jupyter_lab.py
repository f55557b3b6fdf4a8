"""JupyterLab on loopback and Debian's chromium, for the benches and the browser tests.

JupyterLab from this venv (so its ``python3`` kernel is this venv's), its settings,
workspaces and runtime files in the served directory, so nothing of the machine's own
Jupyter setup takes part; a free loopback port and a random token. ``/usr/bin/chromium``
driven by Playwright (scripts/setup.sh installs it; never a downloaded browser). The tests'
fixtures (tests/browser/conftest.py) wrap these two context managers.

Example::

    with jupyter_lab(Path("/tmp/x"), env={"ATP_CONFIG": "..."}) as lab, chromium() as browser:
        page = browser.new_page()
        page.goto(lab.url("lab/tree/n.ipynb"))
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
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

from playwright.sync_api import Browser, sync_playwright

CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = ("--headless", "--no-sandbox", "--disable-gpu",
                 "--disable-background-networking", "--disable-component-update",
                 "--disable-sync", "--no-first-run")
START_TIMEOUT_S = 90.0
LAB_SETTINGS = {
    "@jupyterlab/notebook-extension/tracker": {"autoStartDefaultKernel": True},
    "@jupyterlab/apputils-extension/notification": {"fetchNews": "false"},
}


@dataclass
class Lab:
    """A running JupyterLab: its ``root`` directory, ``port``, ``token`` and log file."""

    root: Path
    port: int
    token: str
    log: Path

    def url(self, path: str) -> str:
        sep = "&" if "?" in path else "?"
        return f"http://127.0.0.1:{self.port}/{path}{sep}token={self.token}"

    def write_notebook(self, name: str, cells: Sequence[str]) -> Path:
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

    def copy_notebook(self, source: Path, extra_cells: Sequence[str]) -> Path:
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

    def log_tail(self, lines: int = 30) -> str:
        with contextlib.suppress(OSError):
            return "\n".join(self.log.read_text(errors="replace").splitlines()[-lines:])
        return ""


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _answers(url: str) -> bool:
    try:
        with urllib.request.urlopen(url, timeout=2) as reply:
            return bool(reply.status == 200)
    except (urllib.error.URLError, OSError):
        return False


@contextlib.contextmanager
def jupyter_lab(root: Path, env: dict[str, str]) -> Iterator[Lab]:
    """JupyterLab serving ``root`` (its kernels get ``env`` on top of ours); stopped on exit."""
    home = root / ".jupyter-home"
    for sub in ("config", "data", "runtime", "settings", "workspaces"):
        (home / sub).mkdir(parents=True, exist_ok=True)
    for name, values in LAB_SETTINGS.items():
        path = home / "settings" / f"{name}.jupyterlab-settings"
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(values))
    full_env = dict(os.environ, **env,
                    JUPYTER_CONFIG_DIR=str(home / "config"),
                    JUPYTER_RUNTIME_DIR=str(home / "runtime"),
                    JUPYTERLAB_SETTINGS_DIR=str(home / "settings"),
                    JUPYTERLAB_WORKSPACES_DIR=str(home / "workspaces"),
                    JUPYTER_PLATFORM_DIRS="1")
    port, token = _free_port(), secrets.token_hex(16)
    lab = Lab(root, port, token, root / "jupyterlab.log")
    with lab.log.open("wb") as out:
        process = subprocess.Popen(
            [sys.executable, "-m", "jupyterlab", "--no-browser", "--allow-root",
             "--ServerApp.ip=127.0.0.1", f"--ServerApp.port={port}",
             "--ServerApp.port_retries=0", f"--IdentityProvider.token={token}",
             f"--ServerApp.root_dir={root}", "--LabApp.news_url=",
             "--LabApp.check_for_updates_class=jupyterlab.NeverCheckForUpdate"],
            cwd=root, env=full_env, stdout=out, stderr=subprocess.STDOUT,
            start_new_session=True)
    try:
        deadline = time.monotonic() + START_TIMEOUT_S
        while not _answers(lab.url("api/status")):
            if process.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"JupyterLab did not answer on port {port} within "
                                   f"{START_TIMEOUT_S:g} s:\n{lab.log_tail()}")
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


@contextlib.contextmanager
def chromium(args: Sequence[str] = CHROMIUM_ARGS) -> Iterator[Browser]:
    """Debian's chromium, headless, with ``args``."""
    if not CHROMIUM.exists():
        raise RuntimeError(f"{CHROMIUM} is missing: scripts/setup.sh installs Debian's chromium")
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=str(CHROMIUM), headless=True,
                                             args=list(args), timeout=60_000)
        try:
            yield browser
        finally:
            browser.close()
