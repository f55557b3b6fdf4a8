"""The lab's one way of writing files: atomic, created with the final mode, idempotent.

The rule under test: no file the lab writes is ever visible with a mode other than its final
one while it holds bytes. A watcher records every chmod/fchmod made while a lab function
runs, with the size of the file at that moment, and the mode of the source of every rename;
a chmod of a file that already holds bytes (write, then tighten) breaks the rule.
"""

from __future__ import annotations

import os
import secrets
import shutil
import stat
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from atp_notebook.errors import LabError
from atp_notebook.lab import domains, files, sasl_vm
from atp_notebook.lab.inventory import write_config
from atp_notebook.lab.paths import SASL_VM, LabPaths
from atp_notebook.lab.pki import ensure_lab_pki


@dataclass
class Watcher:
    """Mode changes of files holding bytes, and the modes renamed into place."""

    late_chmods: list[tuple[str, int, int]] = field(default_factory=list)  # (what, size, mode)
    renamed: dict[str, int] = field(default_factory=dict)  # final path -> mode of the source


@pytest.fixture
def watcher(monkeypatch: pytest.MonkeyPatch) -> Watcher:
    seen = Watcher()
    real_chmod, real_fchmod, real_replace = os.chmod, os.fchmod, os.replace

    def chmod(path: str | os.PathLike[str] | int, mode: int, **kwargs: object) -> None:
        st = os.stat(path)
        if stat.S_ISREG(st.st_mode) and st.st_size > 0:
            seen.late_chmods.append((str(path), st.st_size, mode))
        real_chmod(path, mode, **kwargs)  # type: ignore[arg-type]

    def fchmod(fd: int, mode: int) -> None:
        st = os.fstat(fd)
        if st.st_size > 0:
            seen.late_chmods.append((f"fd {fd}", st.st_size, mode))
        real_fchmod(fd, mode)

    def replace(src: str | os.PathLike[str], dst: str | os.PathLike[str],
                **kwargs: object) -> None:
        seen.renamed[str(dst)] = os.stat(src).st_mode & 0o777
        real_replace(src, dst, **kwargs)  # type: ignore[arg-type]

    monkeypatch.setattr(os, "chmod", chmod)
    monkeypatch.setattr(os, "fchmod", fchmod)
    monkeypatch.setattr(os, "replace", replace)
    return seen


@pytest.fixture(params=[0o022, 0o077, 0o000], ids=["umask022", "umask077", "umask000"])
def umask(request: pytest.FixtureRequest) -> Iterator[int]:
    """Run under a given umask: it may only narrow a new file's mode, never decide it."""
    old = os.umask(request.param)
    try:
        yield request.param
    finally:
        os.umask(old)


def _mode(path: Path) -> int:
    return path.stat().st_mode & 0o777


def _files(root: Path) -> dict[str, int]:
    return {str(p.relative_to(root)): _mode(p) for p in root.rglob("*") if p.is_file()}


# --- the helper ------------------------------------------------------------------------


@pytest.mark.parametrize("mode", [0o600, 0o644, 0o640])
def test_a_new_file_has_its_content_and_mode_from_the_start(
    tmp_path: Path, watcher: Watcher, umask: int, mode: int
) -> None:
    target = tmp_path / "secret"
    files.write_atomic(target, "s3cret\n", mode)
    assert target.read_text() == "s3cret\n" and _mode(target) == mode
    assert watcher.late_chmods == []
    assert watcher.renamed == {str(target): mode}  # already final before it was in place
    assert os.listdir(tmp_path) == ["secret"]  # no temporary file left


def test_replacing_a_file_swaps_it_whole_and_takes_the_new_mode(
    tmp_path: Path, watcher: Watcher
) -> None:
    target = tmp_path / "conf"
    target.write_text("old\n")
    target.chmod(0o644)
    watcher.late_chmods.clear()  # that was the test setting up the old file
    files.write_atomic(target, b"new\n", 0o600)
    assert target.read_bytes() == b"new\n" and _mode(target) == 0o600
    assert watcher.late_chmods == []


def test_write_if_changed_writes_only_changes(tmp_path: Path) -> None:
    target = tmp_path / "conf"
    assert files.write_if_changed(target, "one\n", 0o600)
    before = target.stat()
    assert not files.write_if_changed(target, "one\n", 0o600)
    assert not files.write_if_changed(target, b"one\n", 0o600)
    after = target.stat()
    assert (after.st_ino, after.st_mtime_ns) == (before.st_ino, before.st_mtime_ns)
    assert files.write_if_changed(target, "two\n", 0o600)
    assert target.read_text() == "two\n" and _mode(target) == 0o600


def test_same_content_with_a_drifted_mode_is_repaired_in_place(tmp_path: Path) -> None:
    target = tmp_path / "conf"
    files.write_atomic(target, "one\n", 0o600)
    target.chmod(0o666)  # someone loosened it
    inode = target.stat().st_ino
    assert not files.write_if_changed(target, "one\n", 0o600)  # content did not change
    assert _mode(target) == 0o600 and target.stat().st_ino == inode


def test_a_failed_write_leaves_the_old_file_and_no_temporary(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    target = tmp_path / "conf"
    target.write_text("old\n")

    def failing_disk(fd: int) -> None:
        raise OSError(5, "Input/output error")

    monkeypatch.setattr(os, "fsync", failing_disk)
    with pytest.raises(LabError, match=r"cannot write .*conf: Input/output error") as info:
        files.write_atomic(target, "new\n", 0o600)
    assert info.value.hint
    monkeypatch.undo()
    assert target.read_text() == "old\n"
    assert os.listdir(tmp_path) == ["conf"]


def test_a_missing_directory_is_a_lab_error_naming_the_file(tmp_path: Path) -> None:
    with pytest.raises(LabError, match=r"cannot write .*nowhere/conf"):
        files.write_atomic(tmp_path / "nowhere" / "conf", "x", 0o600)


def test_a_planted_symlink_at_the_temporary_name_is_never_followed(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    victim = tmp_path / "victim"
    victim.write_text("untouched\n")
    monkeypatch.setattr(secrets, "token_hex", lambda n: "fixed")
    (tmp_path / ".conf.fixed.tmp").symlink_to(victim)
    with pytest.raises(LabError, match="cannot write"):
        files.write_atomic(tmp_path / "conf", "secret\n", 0o600)
    assert victim.read_text() == "untouched\n"


# --- every lab function that writes files goes through it ---------------------------------


def _pki(paths: LabPaths) -> None:
    ensure_lab_pki(paths)


def _spice_password(paths: LabPaths) -> None:
    assert domains.spice_password(paths, SASL_VM)


def _sasl_user(paths: LabPaths) -> None:
    paths.sasl_dir.mkdir(mode=0o700, parents=True)
    assert sasl_vm.ensure_user(paths, "pw")


def _config(paths: LabPaths) -> None:
    _spice_password(paths)  # atp.yaml names the password file: one secret to check too
    write_config(paths)


# private keys, the ssh login list, passwords, the SASL user database
SECRET_NAMES = ("key.pem", "_key", "id_ed25519", "authorized_keys", "password", ".db")
LAB_WRITERS: dict[str, Callable[[LabPaths], None]] = {
    "pki": _pki, "spice password": _spice_password, "sasl user": _sasl_user,
    "atp.yaml": _config,
}


@pytest.mark.parametrize("write", LAB_WRITERS.values(), ids=LAB_WRITERS.keys())
def test_lab_files_are_never_seen_with_another_mode_while_they_hold_bytes(
    tmp_path: Path, watcher: Watcher, umask: int, write: Callable[[LabPaths], None]
) -> None:
    if write is _sasl_user and shutil.which(sasl_vm.SASLPASSWD2) is None:
        pytest.fail(f"{sasl_vm.SASLPASSWD2} is needed (apt-get install sasl2-bin)")
    paths = LabPaths(tmp_path / "lab")
    write(paths)
    assert watcher.late_chmods == []
    made = _files(paths.root)
    assert made  # the writer did write
    for path, mode in watcher.renamed.items():
        assert made[str(Path(path).relative_to(paths.root))] == mode, path
    secret = {name: mode for name, mode in made.items() if name.endswith(SECRET_NAMES)}
    assert secret and set(secret.values()) == {0o600}, secret
