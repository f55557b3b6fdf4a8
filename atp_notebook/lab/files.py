"""Writing the lab's files: atomically, and with their final mode from the first byte.

Every file the lab writes (keys, certificates, passwords, daemon configs, the guest image,
``atp.yaml``) goes through :func:`write_atomic`, so that

- readers (a daemon or VM starting meanwhile, a second ``atp-lab up``) see the old file or
  the new one, never half of one: the bytes go to a temporary file beside the target, are
  synced, and then renamed over it;
- a secret is never readable by others, not even for an instant: the temporary file is
  *created* with its final mode (``os.open(..., O_CREAT | O_EXCL, mode)``), and nothing
  changes the mode of a file once it holds bytes. ``O_EXCL`` also refuses a file or symlink
  someone else put at the temporary name.

Example::

    changed = write_if_changed(paths.config_file, text, 0o644)
"""

from __future__ import annotations

import contextlib
import os
import secrets
from pathlib import Path

from atp_notebook.errors import LabError

HINT = "run atp-lab as root, or point ATP_LAB_DIR at a writable directory"
_CREATE = os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC


def write_atomic(path: Path, data: bytes | str, mode: int) -> None:
    """Replace ``path`` with ``data`` (str is UTF-8), created with permission bits ``mode``.

    The directory must exist: its mode is the caller's decision (secrets live in 0700 ones).
    """
    payload = data.encode() if isinstance(data, str) else data
    # a random name: two writers of one file never share a temporary file
    tmp = path.with_name(f".{path.name}.{secrets.token_hex(4)}.tmp")
    try:
        fd = os.open(tmp, _CREATE, mode)
    except OSError as exc:
        raise LabError(f"cannot write {path}: {exc.strerror}", hint=HINT) from exc
    try:
        try:
            # The umask can only have removed bits from ``mode``: put them back while the
            # file is still empty (a public file under umask 077 must still be 0644).
            if os.fstat(fd).st_mode & 0o777 != mode:
                os.fchmod(fd, mode)
            view = memoryview(payload)
            while view:
                view = view[os.write(fd, view):]
            os.fsync(fd)
        finally:
            os.close(fd)
        os.replace(tmp, path)
    except BaseException as exc:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        if isinstance(exc, OSError):
            raise LabError(f"cannot write {path}: {exc.strerror}", hint=HINT) from exc
        raise


def write_if_changed(path: Path, data: bytes | str, mode: int) -> bool:
    """Write ``data`` unless ``path`` already holds exactly it; True if it was written.

    A file that already holds ``data`` keeps its inode and mtime (a daemon that loaded it
    needs no restart); only its mode is set right if it drifted.
    """
    payload = data.encode() if isinstance(data, str) else data
    if read_or_none(path) == payload:
        ensure_mode(path, mode)
        return False
    write_atomic(path, payload, mode)
    return True


def read_or_none(path: Path) -> bytes | None:
    """The file's bytes, or None if there is no such file."""
    try:
        return path.read_bytes()
    except FileNotFoundError:
        return None
    except OSError as exc:
        raise LabError(f"cannot read {path}: {exc.strerror}", hint=HINT) from exc


def ensure_mode(path: Path, mode: int) -> None:
    """Give an existing file or directory exactly ``mode`` (a repair: this writes no bytes).

    chmod changes neither content nor mtime, so a good file still counts as untouched.
    """
    try:
        if path.stat().st_mode & 0o777 != mode:
            path.chmod(mode)
    except OSError as exc:
        raise LabError(f"cannot chmod {path}: {exc.strerror}", hint=HINT) from exc
