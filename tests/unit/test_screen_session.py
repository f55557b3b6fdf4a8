"""Where ``vm.assert_screen("tag")`` looks tags up (session.py): ``session.needles`` when
set, else the needles of ``$ATP_NEEDLES``, else of ``./needles``, loaded once; with none of
them, an InvalidArgument that says what to do. No lab: an empty configuration."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from atp_notebook.config import TransportConfig
from atp_notebook.errors import InvalidArgument
from atp_notebook.screen import NeedleSet
from atp_notebook.session import Session, connect
from tests.unit.test_screen_needles import area, write_needle


@pytest.fixture
def session() -> Iterator[Session]:
    with connect(TransportConfig()) as s:
        yield s


def test_the_needles_of_atp_needles_are_loaded_once(session: Session, tmp_path: Path,
                                                    monkeypatch: pytest.MonkeyPatch) -> None:
    write_needle(tmp_path / "mine", "login", {"area": [area()], "tags": ["login"]})
    monkeypatch.setenv("ATP_NEEDLES", str(tmp_path / "mine"))
    first = session.needle_set()
    assert [n.name for n in first] == ["login"]
    assert session.needle_set() is first and session.needles is first


def test_without_atp_needles_the_needles_folder_here_is_used(
        session: Session, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    write_needle(tmp_path / "needles", "desktop", {"area": [area()], "tags": ["desktop"]})
    monkeypatch.delenv("ATP_NEEDLES", raising=False)
    monkeypatch.chdir(tmp_path)
    assert session.needle_set().tags == ("desktop",)


def test_needles_set_on_the_session_win(session: Session, tmp_path: Path,
                                        monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ATP_NEEDLES", str(tmp_path / "absent"))
    session.needles = NeedleSet(())
    assert session.needle_set() is session.needles


def test_with_no_needles_anywhere_the_error_says_what_to_do(
        session: Session, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("ATP_NEEDLES", raising=False)
    monkeypatch.chdir(tmp_path)
    with pytest.raises(InvalidArgument, match="no needles to look tags up in: 'needles' is "
                                              "not a directory") as caught:
        session.needle_set()
    assert caught.value.hint is not None and "load_needles" in caught.value.hint
