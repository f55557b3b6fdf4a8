"""Needle files in os-autoinst's format (atp_notebook/screen/needle.py): hand-written files
load with os-autoinst's defaults; every bad file is a NeedleError naming the file and the
field, and a directory with one bad file loads nothing."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from PIL import Image

from atp_notebook.errors import InvalidArgument, NeedleError
from atp_notebook.screen.needle import (
    ClickPoint,
    Needle,
    NeedleArea,
    NeedleProperty,
    load_needle,
    load_needles,
)

# as a test engineer writes it for os-autoinst (openQA docs, "Needles")
HAND_WRITTEN = """{
  "area": [
    {"xpos": 10, "ypos": 20, "width": 50, "height": 30, "type": "match"},
    {"xpos": 0, "ypos": 0, "width": 40, "height": 10, "type": "exclude"},
    {"xpos": 70, "ypos": 40, "width": 20, "height": 10, "match": 85, "margin": 10,
     "click_point": {"xpos": 5, "ypos": 4}}
  ],
  "properties": ["workaround", {"name": "bsc", "value": "12345"}],
  "tags": ["login-prompt", "ENV-DESKTOP-gnome"]
}
"""


def write_needle(folder: Path, name: str, data: dict[str, Any] | str,
                 size: tuple[int, int] = (120, 80)) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    Image.new("RGB", size, (40, 80, 120)).save(folder / f"{name}.png")
    path = folder / f"{name}.json"
    path.write_text(data if isinstance(data, str) else json.dumps(data))
    return path


def area(**changes: Any) -> dict[str, Any]:
    return {"xpos": 10, "ypos": 10, "width": 20, "height": 20, **changes}


def test_a_hand_written_needle_loads_with_os_autoinsts_defaults(tmp_path: Path) -> None:
    needle = load_needle(write_needle(tmp_path, "login", HAND_WRITTEN))
    assert needle.name == "login"
    assert needle.size == (120, 80)
    assert needle.tags == ("login-prompt", "ENV-DESKTOP-gnome")
    assert needle.properties == (NeedleProperty("workaround"), NeedleProperty("bsc", "12345"))
    first, exclude, third = needle.areas
    assert first == NeedleArea(10, 20, 50, 30, "match", 96.0, 50, None)
    assert exclude.type == "exclude" and exclude.box == (0, 0, 40, 10)
    assert (third.match, third.margin) == (85.0, 10)
    assert third.click_point == ClickPoint(5.0, 4.0)
    assert needle.has_property("workaround") and not needle.colour
    # BGR pixels of the PNG
    assert needle.image.shape == (80, 120, 3)
    assert tuple(needle.image[0, 0]) == (120, 80, 40)


def test_a_needle_saved_loads_back_the_same(tmp_path: Path) -> None:
    needle = load_needle(write_needle(tmp_path / "in", "login", HAND_WRITTEN))
    saved = needle.save(tmp_path / "out")
    again = load_needle(saved)
    assert again.areas == needle.areas
    assert (again.tags, again.properties) == (needle.tags, needle.properties)
    assert (again.image == needle.image).all()


def test_a_needle_made_from_a_screenshot_is_checked_like_a_file() -> None:
    screen = Image.new("RGB", (64, 48), (1, 2, 3))
    made = Needle.from_screen("x", screen, [NeedleArea(0, 0, 10, 10, click_point=ClickPoint())],
                              tags=["t"], properties=["colour"])
    assert made.colour and made.tags == ("t",)
    with pytest.raises(NeedleError, match=r"area\[0\]: 10x10 at 60,0 is outside the 64x48"):
        Needle.from_screen("x", screen, [NeedleArea(60, 0, 10, 10)])


BAD_NEEDLES: list[tuple[str, dict[str, Any] | str, str]] = [
    ("not JSON", "{'area': [", "not JSON"),
    ("a list", "[1, 2]", "a needle is a JSON object, not list"),
    ("no area", {"tags": ["t"]}, r": area: a list of at least one area"),
    ("area outside", {"area": [area(xpos=110)], "tags": ["t"]},
     r"area\[0\]: 20x20 at 110,10 is outside the 120x80 PNG"),
    ("negative", {"area": [area(ypos=-1)], "tags": ["t"]}, r"area\[0\]\.ypos: -1 is below 0"),
    ("zero width", {"area": [area(width=0)], "tags": ["t"]}, r"area\[0\]\.width: 0 is below 1"),
    ("width missing", {"area": [{"xpos": 1, "ypos": 1, "height": 2}], "tags": ["t"]},
     r"area\[0\]\.width: an integer, not None"),
    ("width text", {"area": [area(width="20")], "tags": ["t"]},
     r"area\[0\]\.width: an integer, not '20'"),
    ("bad type", {"area": [area(type="ignore")], "tags": ["t"]},
     r"area\[0\]\.type: 'ignore' is not one of match, ocr, exclude"),
    ("bad match", {"area": [area(match=101)], "tags": ["t"]},
     r"area\[0\]\.match: a percentage 0-100, not 101"),
    ("bad margin", {"area": [area(margin=-5)], "tags": ["t"]}, r"area\[0\]\.margin: -5"),
    ("typo", {"area": [area(marign=5)], "tags": ["t"]}, r"area\[0\]\.marign: unknown key"),
    ("top typo", {"area": [area()], "tag": ["t"]}, r": tag: unknown key"),
    ("exclude only", {"area": [area(type="exclude")], "tags": ["t"]},
     r": area: no match or ocr area"),
    ("two click points",
     {"area": [area(click_point="center"), area(click_point="center")], "tags": ["t"]},
     r"area\[1\]\.click_point: more than one click point"),
    ("click point off", {"area": [area(click_point={"xpos": 30, "ypos": 1})], "tags": ["t"]},
     r"area\[0\]\.click_point\.xpos: a number 0-20 inside the area"),
    ("click point word", {"area": [area(click_point="middle")], "tags": ["t"]},
     r"area\[0\]\.click_point: \"center\" or"),
    ("tags not a list", {"area": [area()], "tags": "t"}, r": tags: a list of non-empty"),
    ("bad property", {"area": [area()], "tags": ["t"], "properties": [3]},
     r"properties\[0\]: a name or"),
]


@pytest.mark.parametrize(("case", "data", "message"), BAD_NEEDLES,
                         ids=[c[0] for c in BAD_NEEDLES])
def test_a_bad_needle_file_names_the_file_and_field(tmp_path: Path, case: str,
                                                    data: dict[str, Any] | str,
                                                    message: str) -> None:
    path = write_needle(tmp_path, "bad", data)
    with pytest.raises(NeedleError, match=message) as caught:
        load_needle(path)
    assert str(caught.value).startswith(str(path)), case


def test_a_missing_or_unreadable_png_is_named(tmp_path: Path) -> None:
    path = write_needle(tmp_path, "n", {"area": [area()], "tags": ["t"]})
    (tmp_path / "n.png").write_bytes(b"not a png")
    with pytest.raises(NeedleError, match=r"n\.json: png: its PNG .*n\.png cannot be read"):
        load_needle(path)
    (tmp_path / "n.png").unlink()
    with pytest.raises(NeedleError, match=r"png: its PNG .*n\.png cannot be read"):
        load_needle(path)


def test_a_png_of_another_size_than_the_screens_is_named(tmp_path: Path) -> None:
    path = write_needle(tmp_path, "n", {"area": [area()], "tags": ["t"]}, size=(800, 600))
    with pytest.raises(NeedleError, match=r"png: its PNG .* is 800x600, the screens here are "
                                          r"1024x768"):
        load_needle(path, size=(1024, 768))
    assert load_needle(path, size=(800, 600)).size == (800, 600)


def test_the_png_key_names_another_file(tmp_path: Path) -> None:
    path = write_needle(tmp_path, "shared", {"area": [area()], "tags": ["t"]})
    other = write_needle(tmp_path, "other", {"area": [area()], "tags": ["u"],
                                             "png": "shared.png"})
    (tmp_path / "other.png").unlink()
    assert load_needle(other).size == load_needle(path).size


def test_a_directory_with_one_bad_file_loads_nothing(tmp_path: Path) -> None:
    write_needle(tmp_path / "a", "good", {"area": [area()], "tags": ["t"]})
    write_needle(tmp_path / "b", "broken", "{")
    with pytest.raises(NeedleError, match=r"broken\.json: not JSON"):
        load_needles(tmp_path)
    (tmp_path / "b" / "broken.json").unlink()
    assert [n.name for n in load_needles(tmp_path)] == ["good"]


def test_two_needles_of_one_name_are_refused(tmp_path: Path) -> None:
    write_needle(tmp_path / "a", "same", {"area": [area()], "tags": ["t"]})
    write_needle(tmp_path / "b", "same", {"area": [area()], "tags": ["t"]})
    with pytest.raises(NeedleError, match=r"b/same\.json: a needle named 'same' is also"):
        load_needles(tmp_path)


def test_needles_are_selected_by_any_of_their_tags(tmp_path: Path) -> None:
    for name, tags in (("one", ["a", "b"]), ("two", ["b"]), ("three", ["c"])):
        write_needle(tmp_path, name, {"area": [area()], "tags": tags})
    needles = load_needles(tmp_path)
    assert needles.tags == ("a", "b", "c")
    assert {n.name for n in needles.select("b")} == {"one", "two"}
    assert {n.name for n in needles.select(["a", "c"])} == {"one", "three"}
    with pytest.raises(InvalidArgument, match="no needle has the tag 'd'") as caught:
        needles.select(["a", "d"])
    assert caught.value.hint is not None and "a, b, c" in caught.value.hint
    assert needles.named("two").tags == ("b",)


def test_not_a_directory_is_named(tmp_path: Path) -> None:
    with pytest.raises(NeedleError, match="not a directory of needles"):
        load_needles(tmp_path / "absent")
