"""Fixtures of the unit tests that need files on disk."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.unit.config_texts import PASSWORD


@pytest.fixture
def workdir(tmp_path: Path) -> Path:
    """A directory with a CA file and a 0600 password file, for base_dir-relative paths."""
    (tmp_path / "ca.pem").write_text("-----BEGIN CERTIFICATE-----\n")
    (tmp_path / "pw").write_text(PASSWORD + "\n")
    (tmp_path / "pw").chmod(0o600)
    (tmp_path / "empty-pw").write_text("\n")
    (tmp_path / "empty-pw").chmod(0o600)
    return tmp_path
