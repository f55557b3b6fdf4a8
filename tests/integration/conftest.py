"""Fixtures of the lab tests that drive the magics: one IPython shell, made clean per module.

IPython keeps one shell per process: ``start_ipython()`` makes it the first time and returns
None after, and ``%config`` lines stay in the shell's config for good. A fixture per test
module that assumed it came first broke when the files ran in another order; this one works
alone or after any other module.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator

import pytest
from IPython.core.interactiveshell import InteractiveShell
from IPython.testing.globalipapp import start_ipython

from atp_notebook.lab.paths import LabPaths
from atp_notebook.session import Session, Vm
from tests.integration.waiting import BOOT_S

EXTENSION = "atp_notebook"
# IPython's testing helper carries no annotations: a typed view of it
_start_ipython: Callable[[], object] = start_ipython


def _forget_settings(shell: InteractiveShell) -> None:
    """Drop every ``%config AtpMagics.x = ...`` an earlier module left in the shell."""
    shell.config.pop("AtpMagics", None)


@pytest.fixture(scope="module")
def ip(lab_paths: LabPaths) -> Iterator[InteractiveShell]:
    """The process's IPython shell with ``%load_ext atp_notebook`` done, the magics' settings
    at their defaults and their session pointed at the lab's atp.yaml."""
    started = _start_ipython()  # None when an earlier module started it
    shell = started if started is not None else InteractiveShell.instance()
    assert isinstance(shell, InteractiveShell)
    _forget_settings(shell)
    extensions = shell.extension_manager
    assert extensions is not None
    if EXTENSION in extensions.loaded:  # a module that did not unload it
        shell.run_line_magic("unload_ext", EXTENSION)
    shell.run_line_magic("load_ext", EXTENSION)
    shell.run_line_magic("config", f"AtpMagics.config_path = {str(lab_paths.config_file)!r}")
    yield shell
    shell.run_line_magic("unload_ext", EXTENSION)
    _forget_settings(shell)


@pytest.fixture
def vm1_left_running(session: Session) -> Iterator[Vm]:
    """atp-vm1 for a test that resets or stops it: left running with its agent answering,
    which every later test expects."""
    vm = session.vm("atp-vm1")
    vm.wait_for_agent(BOOT_S)
    try:
        yield vm
    finally:
        if vm.state() != "running":
            vm.domain().create()
        vm.wait_for_agent(BOOT_S)
