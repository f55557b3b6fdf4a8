"""libvirt's error printing is silenced where libvirt is used, never on import.

Each check runs in a fresh interpreter, so that ``registerErrorHandler`` can be replaced
before any module of ours is imported and no earlier test has registered anything.
"""

from __future__ import annotations

import subprocess
import sys
import textwrap

import libvirt
import pytest

from atp_notebook.lab import domains

RECORD = """
import libvirt
calls = []
libvirt.registerErrorHandler = lambda handler, ctx: calls.append(handler.__qualname__)
"""


def _run(script: str) -> str:
    proc = subprocess.run([sys.executable, "-c", RECORD + textwrap.dedent(script)],
                          capture_output=True, text=True, timeout=120, check=False)
    assert proc.returncode == 0, proc.stderr
    return proc.stdout.strip()


def test_importing_the_lab_and_the_toolkit_registers_no_handler() -> None:
    out = _run("""
        import atp_notebook, atp_notebook.loop, atp_notebook.transport
        from atp_notebook.lab import (cli, controller, daemons, domains, guest, inventory,
                                      pki, sasl_vm, scale, status)
        print(calls)
    """)
    assert out == "[]"


def test_starting_the_atp_loop_registers_the_one_handler() -> None:
    out = _run("""
        from atp_notebook.loop import get_loop
        get_loop()
        print(calls)
    """)
    assert out == "['_discard']"


def test_the_lab_silences_libvirt_before_it_opens_a_connection(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    order: list[str] = []
    monkeypatch.setattr(libvirt, "registerErrorHandler",
                        lambda handler, ctx: order.append(f"register {handler.__qualname__}"))
    monkeypatch.setattr(libvirt, "open", lambda uri: order.append(f"open {uri}"))
    domains.open_libvirt("qemu+tcp://127.0.0.1/system")
    assert order == ["register _discard", "open qemu+tcp://127.0.0.1/system"]
