"""Tests that pause a lab VM (QMP ``stop``) leave it running, whatever they assert.

The lab's VMs are shared by every later test: one left paused by a failing assertion makes
the rest of the suite fail for a reason far from their own (agents time out, typing is lost).
``tests/unit/test_suite_config.py`` checks that every lab test sending ``stop`` wraps it in
:func:`resumed_after`.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator

from atp_notebook.session import Vm


@contextlib.contextmanager
def resumed_after(vm: Vm) -> Iterator[None]:
    """Run the block, then ``cont`` the VM if the block left it paused (even on failure)::

        with resumed_after(vm):
            vm.qmp("stop")
            assert ...
    """
    try:
        yield
    finally:
        if vm.qmp("query-status")["status"] == "paused":
            vm.qmp("cont")
