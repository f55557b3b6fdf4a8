"""The needle editor's Python API (what the browser view does, without a browser) and
``%needle`` parsing: areas and a click point drawn on a screenshot are saved as
os-autoinst JSON + PNG that load and match that screen again; bad input is a clear error
and writes nothing."""

from __future__ import annotations

import json
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest
from IPython.core.error import UsageError
from PIL import Image

from atp_notebook.errors import InvalidArgument
from atp_notebook.notebook.commands.needle import NeedleRequest, parse_needle_line
from atp_notebook.notebook.commands.words import VmRef
from atp_notebook.notebook.needle_editor import NeedleEditor
from atp_notebook.screen import NeedleSet, load_needle, load_needles, match_needle


def screen() -> Image.Image:
    """A 720x400 dark console with a light 'banner' block and a red square."""
    pixels = np.zeros((400, 720, 3), np.uint8)
    pixels[16:32, 0:180] = 170
    pixels[100:140, 300:340] = (200, 30, 30)
    return Image.fromarray(pixels, "RGB")


def test_an_edited_needle_saves_loads_and_matches_its_screen(tmp_path: Path) -> None:
    editor = NeedleEditor(screen(), name="banner", tags="console, login", directory=tmp_path)
    assert editor.add_area(0, 8, 200, 40) == 0
    editor.add_area(290, 90, 60, 60, type="exclude")
    editor.set_click_point(50, 20)
    path = editor.save()
    assert path == tmp_path / "banner.json" and (tmp_path / "banner.png").is_file()
    assert editor.status == f"saved {path}"
    data = json.loads(path.read_text())
    assert data["tags"] == ["console", "login"]
    assert data["area"][0] == {"xpos": 0, "ypos": 8, "width": 200, "height": 40,
                               "type": "match", "match": 96, "margin": 50,
                               "click_point": {"xpos": 50.0, "ypos": 12.0}}
    assert data["area"][1]["type"] == "exclude"
    needle = load_needle(path)
    assert Image.open(tmp_path / "banner.png").size == (720, 400)
    found = match_needle(screen(), needle)
    assert found.ok and found.click_point() == (50.0, 20.0)
    # the red square is excluded: recolouring it does not matter, moving the banner does
    changed = np.asarray(screen()).copy()
    changed[100:140, 300:340] = (0, 0, 255)
    assert match_needle(Image.fromarray(changed, "RGB"), needle).ok
    assert not match_needle(Image.new("RGB", (720, 400)), needle).ok


def test_areas_are_removable_and_the_click_point_clearable(tmp_path: Path) -> None:
    editor = NeedleEditor(screen(), name="n", tags=["t"], directory=tmp_path)
    editor.add_area(0, 0, 10, 10, type="ocr")
    editor.add_area(0, 16, 180, 16)
    editor.remove_area(0)
    editor.set_click_point(1, 1)
    editor.clear_click_point()
    needle = editor.needle()
    assert [a.type for a in needle.areas] == ["match"] and needle.areas[0].click_point is None
    with pytest.raises(InvalidArgument, match="no area 3"):
        editor.remove_area(3)


def test_a_bgr_array_is_a_screen_too() -> None:
    bgr = np.asarray(screen())[:, :, ::-1].copy()
    editor = NeedleEditor(bgr, name="n", tags="t")
    assert editor.screen.getpixel((310, 110)) == (200, 30, 30)
    assert (editor.screen_width, editor.screen_height) == (720, 400)
    assert editor.screen_png.startswith(b"\x89PNG")


@pytest.mark.parametrize(("change", "fragment"), [
    (lambda e: e.add_area(700, 0, 40, 10), "not inside the 720x400"),
    (lambda e: e.add_area(0, 0, 0, 10), "not inside"),
    (lambda e: e.add_area(0, 0, 10, 10, type="blur"), "area type 'blur'"),
    (lambda e: e.add_area(0, 0, 10, 10, match=101), "match 101"),
])
def test_bad_areas_are_refused_at_once(change: object, fragment: str) -> None:
    editor = NeedleEditor(screen(), name="n", tags="t")
    with pytest.raises(InvalidArgument, match=fragment):
        change(editor)  # type: ignore[operator]
    assert editor.areas == []


@pytest.mark.parametrize(("name", "tags", "areas", "click", "fragment"), [
    ("../up", "t", [(0, 0, 10, 10, "match")], None, "needle name '../up'"),
    ("n", " , ", [(0, 0, 10, 10, "match")], None, "has no tag"),
    ("n", "t", [], None, "at least one area"),
    ("n", "t", [(0, 0, 10, 10, "exclude")], None, "no match or ocr area"),
    ("n", "t", [(0, 0, 10, 10, "match")], (50, 50), "in no match area"),
])
def test_an_incomplete_needle_is_not_saved(tmp_path: Path, name: str, tags: str,
                                           areas: list[tuple[int, int, int, int, str]],
                                           click: tuple[int, int] | None,
                                           fragment: str) -> None:
    editor = NeedleEditor(screen(), name=name, tags=tags, directory=tmp_path)
    for x, y, w, h, kind in areas:
        editor.add_area(x, y, w, h, type=kind)
    if click:
        editor.set_click_point(*click)
    with pytest.raises(Exception, match=fragment):
        editor.save()
    assert list(tmp_path.iterdir()) == []
    # the browser's Save button: the same refusal, said in the widget's status line
    editor._on_message(editor, {"type": "save"}, [])
    assert editor.status.startswith("not saved:")
    assert fragment.split("'", maxsplit=1)[0] in editor.status
    assert list(tmp_path.iterdir()) == []


def test_the_save_button_message_saves(tmp_path: Path) -> None:
    editor = NeedleEditor(screen(), name="b", tags="t", directory=tmp_path)
    editor.areas = [{"x": 0, "y": 16, "width": 180, "height": 16, "type": "match",
                     "match": 90, "margin": 20}]  # as the browser sets them
    editor._on_message(editor, {"type": "save"}, [])
    assert editor.saved == tmp_path / "b.json"
    assert load_needles(tmp_path).named("b").areas[0].match == 90


def test_a_vm_editor_adds_the_needle_to_the_sessions_loaded_needles(tmp_path: Path) -> None:
    # a stand-in for Vm: the editor asks it only for a screenshot and its session
    session = SimpleNamespace(needles=NeedleSet(()))
    vm = SimpleNamespace(screenshot=screen, session=session)
    editor = NeedleEditor(vm, name="banner", tags="login", directory=tmp_path)  # type: ignore[arg-type]
    editor.add_area(0, 16, 180, 16)
    editor.save()
    editor.areas = [*editor.areas, {"x": 300, "y": 100, "width": 40, "height": 40,
                                    "type": "match"}]
    editor.save()  # saved again: replaced, not doubled
    assert [n.name for n in session.needles.select("login")] == ["banner"]
    assert len(session.needles.named("banner").areas) == 2
    assert session.needles.named("banner").path == tmp_path / "banner.json"


@pytest.mark.parametrize(("line", "expected"), [
    ("atp-vm1 login", NeedleRequest(VmRef("atp-vm1"), "login")),
    ("atp-vm1 login --tags a,b,a", NeedleRequest(VmRef("atp-vm1"), "login", ("a", "b"))),
    ("atp-vm1 x.y-1 --dir nd", NeedleRequest(VmRef("atp-vm1"), "x.y-1", (), Path("nd"))),
    ("atp-vm1 n --properties colour,bug=bsc#1 --tags t",
     NeedleRequest(VmRef("atp-vm1"), "n", ("t",), None, ("colour", "bug=bsc#1"))),
])
def test_needle_lines(line: str, expected: NeedleRequest) -> None:
    assert parse_needle_line(line) == expected


@pytest.mark.parametrize(("line", "fragment"), [
    ("atp-vm1", "the following arguments are required: name"),
    ("atp-vm1 ../x", "not a needle name"),
    ("atp-vm1 n --tags", "expected one argument"),
    ("atp-vm1 n extra", "unrecognized arguments"),
])
def test_bad_needle_lines(line: str, fragment: str) -> None:
    with pytest.raises(UsageError, match=fragment) as caught:
        parse_needle_line(line)
    assert "hint:" in str(caught.value)


def test_the_save_message_carries_the_views_last_state(tmp_path: Path) -> None:
    # the view sends its state with Save: a trait update held back by ipywidgets' throttle
    # must not make Save write what the kernel had before
    editor = NeedleEditor(screen(), tags="old", directory=tmp_path)
    editor._on_message(editor, {"type": "save", "state": {
        "name": "late", "tags": "t1, t2", "click": [10, 20],
        "areas": [{"x": 0, "y": 16, "width": 180, "height": 16, "type": "match",
                   "match": 96, "margin": 50}]}}, [])
    assert editor.status == f"saved {tmp_path / 'late.json'}"
    saved = load_needles(tmp_path).named("late")
    assert saved.tags == ("t1", "t2") and saved.areas[0].click_point is not None
    editor._on_message(editor, {"type": "save", "state": {"areas": "not a list"}}, [])
    assert editor.status.startswith("not saved:")


def test_match_margin_and_properties_are_saved_as_set(tmp_path: Path) -> None:
    editor = NeedleEditor(screen(), name="levels", tags="t", directory=tmp_path,
                          properties=["colour", "workaround"])
    editor.add_area(0, 16, 180, 16)
    editor.add_area(290, 90, 60, 60, type="ocr")
    editor.set_area(0, match=87.5, margin=0)
    editor.set_area(1, margin=5)  # the match stays
    editor.properties += ", bug=bsc#1"  # as typed in the properties field
    data = json.loads(editor.save().read_text())
    assert [(a["match"], a["margin"]) for a in data["area"]] == [(87.5, 0), (96, 5)]
    assert data["properties"] == ["colour", "workaround", {"name": "bug", "value": "bsc#1"}]
    needle = load_needle(tmp_path / "levels.json")
    assert needle.colour and needle.areas[0].margin == 0


@pytest.mark.parametrize(("field", "value", "fragment"), [
    ("match", 150, "area 0: match 150 is not a percentage 0-100"),
    ("match", -1, "area 0: match -1 is not a percentage"),
    ("match", "96", "area 0: match '96' is not a percentage"),  # the view sends numbers
    ("match", True, "area 0: match True is not a percentage"),
    ("margin", -5, "area 0: margin -5 is not a whole number of pixels >= 0"),
    ("margin", 2.5, "area 0: margin 2.5 is not a whole number"),
    ("margin", "", "area 0: margin '' is not a whole number"),
    ("x", "0", "area 0: x is a whole number, not '0'"),
])
def test_levels_out_of_range_from_the_view_are_refused_and_nothing_written(
        tmp_path: Path, field: str, value: object, fragment: str) -> None:
    editor = NeedleEditor(screen(), name="n", tags="t", directory=tmp_path)
    area = {"x": 0, "y": 16, "width": 180, "height": 16, "type": "match", "match": 96,
            "margin": 50, field: value}
    editor._on_message(editor, {"type": "save", "state": {"areas": [area]}}, [])
    assert editor.status.startswith(f"not saved: {fragment}"), editor.status
    assert list(tmp_path.iterdir()) == []


def test_set_area_checks_what_it_sets() -> None:
    editor = NeedleEditor(screen(), name="n", tags="t")
    editor.add_area(0, 16, 180, 16)
    with pytest.raises(InvalidArgument, match=r"area 0: match 100\.5 is not a percentage"):
        editor.set_area(0, match=100.5)
    with pytest.raises(InvalidArgument, match="area 0: margin -1 is not a whole number"):
        editor.set_area(0, margin=-1)
    with pytest.raises(InvalidArgument, match="no area 1"):
        editor.set_area(1, match=50)
    assert (editor.areas[0]["match"], editor.areas[0]["margin"]) == (96, 50)


def test_a_property_needs_a_name(tmp_path: Path) -> None:
    editor = NeedleEditor(screen(), name="n", tags="t", directory=tmp_path,
                          properties="colour, =x")
    editor.add_area(0, 16, 180, 16)
    with pytest.raises(InvalidArgument, match="property '=x' has no name"):
        editor.save()
    assert list(tmp_path.iterdir()) == []
