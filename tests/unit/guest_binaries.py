"""A guest program (atp_notebook/lab/guest_src) compiled for a host-side unit test."""

from __future__ import annotations

from pathlib import Path

import pytest

from atp_notebook.lab.guest_programs import GUEST_PROGRAMS, compile_program


def guest_binary(name: str, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The static binary of the guest program ``name``, executable, in a fresh directory."""
    program = next(p for p in GUEST_PROGRAMS if p.name == name)
    path = tmp_path_factory.mktemp(name) / name
    path.write_bytes(compile_program(program))
    path.chmod(0o755)
    return path
