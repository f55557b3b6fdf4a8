"""The guest's own C programs: compiled static and byte-identical from run to run, put into
the image as /usr/bin/<name>; a broken source or a missing compiler is a LabError naming the
program."""

from __future__ import annotations

import stat

import pytest

from atp_notebook.errors import LabError
from atp_notebook.lab import guest_programs
from atp_notebook.lab.guest import Tree
from atp_notebook.lab.guest_programs import (
    GUEST_PROGRAMS,
    GuestProgram,
    add_guest_programs,
    compile_program,
)

ELF_STATIC_EXEC = 2  # e_type ET_EXEC: linked static without -pie


def _uncached(program: GuestProgram) -> bytes:
    guest_programs.compile_c.cache_clear()
    return compile_program(program)


@pytest.mark.parametrize("program", GUEST_PROGRAMS, ids=lambda p: p.name)
def test_each_program_compiles_static_and_deterministic(program: GuestProgram) -> None:
    first = _uncached(program)
    second = _uncached(program)
    assert first == second
    assert first[:4] == b"\x7fELF"
    assert int.from_bytes(first[16:18], "little") == ELF_STATIC_EXEC
    assert b"/lib64/ld-linux" not in first  # no program interpreter: static


def test_programs_land_in_usr_bin_executable() -> None:
    tree = Tree()
    add_guest_programs(tree)
    entries = {e.path: e for e in tree.entries()}
    for program in GUEST_PROGRAMS:
        entry = entries[f"usr/bin/{program.name}"]
        assert stat.S_ISREG(entry.mode) and stat.S_IMODE(entry.mode) == 0o755
        assert entry.data == compile_program(program)


def test_compiler_errors_name_the_program(monkeypatch: pytest.MonkeyPatch) -> None:
    broken = GuestProgram("atp-broken", "broken.c")
    monkeypatch.setattr(GuestProgram, "source_text", lambda self: b"int main(void) { return x; }")
    with pytest.raises(LabError, match="atp-broken: gcc failed") as info:
        _uncached(broken)
    assert "guest_src/broken.c:1:" in str(info.value) and "undeclared" in str(info.value)


def test_missing_source_is_named() -> None:
    with pytest.raises(LabError, match=r"guest_src/no-such\.c"):
        compile_program(GuestProgram("atp-none", "no-such.c"))


def test_missing_compiler_hints_the_packages() -> None:
    with pytest.raises(LabError, match="atp-cursor: no-such-cc is not installed") as info:
        compile_program(GUEST_PROGRAMS[0], cc="no-such-cc")
    assert "gcc libc6-dev" in (info.value.hint or "")
