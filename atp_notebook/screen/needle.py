"""Needles in os-autoinst's format: a JSON file of areas and tags beside a PNG of the screen.

The format (os-autoinst ``needle.pm``; openQA's "Needles" documentation)::

    {"area": [{"xpos": 10, "ypos": 20, "width": 200, "height": 100,
               "type": "match",          # or "ocr", "exclude"; default "match"
               "match": 96,              # percent similarity an area needs; default 96
               "margin": 50,             # search radius around the area, px; default 50
               "click_point": {"xpos": 100, "ypos": 50} }],   # or "center"; optional
     "tags": ["login-prompt"], "properties": ["workaround", {"name": "x", "value": "y"}]}

The PNG has the JSON's basename (or the file named by a ``"png"`` key). Loading is strict
where os-autoinst silently skips: a file that is not JSON, an unknown key, an area outside
the PNG, a second unnamed click point or no match/ocr area is a :class:`NeedleError` naming
the file and the field, and a directory with one bad file loads nothing. One addition, kept
inside the format: a needle with the property ``"colour"`` is matched colour-aware
(:mod:`atp_notebook.screen.match`). A ``"margin": 0`` or ``"match": 0`` stays 0 (os-autoinst's
Perl ``||`` reads either as its default, 50 and 96). os-autoinst's ``search_ratio`` is no key
of the file but an argument of a search (``match_needle(..., search_ratio=)``). Pure: files
are read, nothing else.

Example::

    needles = load_needles("needles/")                 # every *.json below, recursively
    login = needles.select("login-prompt")             # the needles with that tag
    needle = load_needle("needles/login-prompt.json")
    needle.areas[0].box                                # (10, 20, 210, 120)
    needle.save("new-needles/")                        # JSON + PNG again
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image

from atp_notebook.errors import InvalidArgument, NeedleError

__all__ = [
    "AREA_TYPES",
    "COLOUR_PROPERTY",
    "ClickPoint",
    "Needle",
    "NeedleArea",
    "NeedleProperty",
    "NeedleSet",
    "load_needle",
    "load_needles",
]

AREA_TYPES = ("match", "ocr", "exclude")
DEFAULT_MATCH = 96.0  # os-autoinst tinycv.pm: "A 96% match is ok for console tests"
DEFAULT_MARGIN = 50
COLOUR_PROPERTY = "colour"
WORKAROUND_PROPERTY = "workaround"  # os-autoinst prefers such a needle on equal error
_AREA_KEYS = {"xpos", "ypos", "width", "height", "type", "match", "margin", "click_point",
              # os-autoinst keys we read and keep but do not act on
              "processing_flags", "max_offset"}
_NEEDLE_KEYS = {"area", "tags", "properties", "png"}
# BGR pixels, (h, w, 3) uint8: the order of the display's B,G,R,X surfaces without X
Bgr = np.ndarray[Any, np.dtype[np.uint8]]


@dataclass(frozen=True, slots=True)
class ClickPoint:
    """Where to click, relative to its area's top-left corner (``None``: its centre)."""

    x: float | None = None
    y: float | None = None
    id: str | None = None

    def within(self, width: int, height: int) -> tuple[float, float]:
        if self.x is None or self.y is None:
            return width / 2, height / 2
        return self.x, self.y


@dataclass(frozen=True, slots=True)
class NeedleArea:
    """One rectangle of a needle; ``match`` is the percent similarity it needs."""

    x: int
    y: int
    width: int
    height: int
    type: str = "match"
    match: float = DEFAULT_MATCH
    margin: int = DEFAULT_MARGIN
    click_point: ClickPoint | None = None
    extra: tuple[tuple[str, Any], ...] = ()  # processing_flags, max_offset: kept, unused

    @property
    def box(self) -> tuple[int, int, int, int]:
        """(left, top, right, bottom), right and bottom excluded."""
        return self.x, self.y, self.x + self.width, self.y + self.height

    def to_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {"xpos": self.x, "ypos": self.y, "width": self.width,
                               "height": self.height, "type": self.type}
        if self.type != "exclude":
            out["match"] = int(self.match) if self.match == int(self.match) else self.match
            out["margin"] = self.margin
        if self.click_point is not None:
            cp = self.click_point
            out["click_point"] = "center" if cp.x is None else {
                "xpos": cp.x, "ypos": cp.y, **({"id": cp.id} if cp.id else {})}
        out.update(self.extra)
        return out


@dataclass(frozen=True, slots=True)
class NeedleProperty:
    name: str
    value: str | None = None


@dataclass(frozen=True, eq=False)
class Needle:
    """A named reference screen (``image``: BGR (h, w, 3) uint8) with its areas and tags."""

    name: str
    image: Bgr = field(repr=False)
    areas: tuple[NeedleArea, ...]
    tags: tuple[str, ...] = ()
    properties: tuple[NeedleProperty, ...] = ()
    path: Path | None = None  # the JSON file it came from
    # prepared area crops and OCR text, filled by the matcher (the needle is immutable)
    cache: dict[object, Any] = field(default_factory=dict, repr=False)

    @property
    def size(self) -> tuple[int, int]:
        """(width, height) of the reference screen."""
        return int(self.image.shape[1]), int(self.image.shape[0])

    def has_property(self, name: str) -> bool:
        return any(p.name == name for p in self.properties)

    @property
    def colour(self) -> bool:
        """Matched colour-aware (the ``colour`` property)."""
        return self.has_property(COLOUR_PROPERTY)

    def areas_of(self, kind: str) -> tuple[NeedleArea, ...]:
        return tuple(a for a in self.areas if a.type == kind)

    def to_json(self) -> dict[str, Any]:
        props: list[Any] = [p.name if p.value is None else {"name": p.name, "value": p.value}
                            for p in self.properties]
        return {"area": [a.to_json() for a in self.areas], "tags": list(self.tags),
                "properties": props}

    def save(self, directory: str | Path) -> Path:
        """Write ``NAME.json`` and ``NAME.png`` into ``directory``; the JSON's path."""
        folder = Path(directory)
        folder.mkdir(parents=True, exist_ok=True)
        rgb = np.ascontiguousarray(self.image[:, :, ::-1])
        Image.fromarray(rgb, "RGB").save(folder / f"{self.name}.png")
        target = folder / f"{self.name}.json"
        target.write_text(json.dumps(self.to_json(), indent=2) + "\n")
        return target

    @classmethod
    def from_screen(cls, name: str, screen: Image.Image | Bgr,
                    areas: Sequence[NeedleArea], tags: Iterable[str] = (),
                    properties: Iterable[str | NeedleProperty] = ()) -> Needle:
        """A needle made from a screenshot (PIL image or BGR array), checked like a file."""
        image = _as_bgr(screen)
        props = tuple(p if isinstance(p, NeedleProperty) else NeedleProperty(p)
                      for p in properties)
        data = {"area": [a.to_json() for a in areas], "tags": list(tags),
                "properties": [p.name if p.value is None else {"name": p.name,
                                                               "value": p.value}
                               for p in props]}
        return _needle_from_json(name, data, image, f"needle {name!r}", None)


def _as_bgr(image: Image.Image | Bgr) -> Bgr:
    if isinstance(image, Image.Image):
        return np.ascontiguousarray(np.asarray(image.convert("RGB"))[:, :, ::-1])
    if image.ndim != 3 or image.shape[2] not in (3, 4) or image.dtype != np.uint8:
        raise InvalidArgument(f"a screen is a PIL image or a (h, w, 3|4) uint8 B,G,R[,X] "
                              f"array, not {image.dtype} {image.shape}")
    return np.ascontiguousarray(image[:, :, :3])


# --- loading ------------------------------------------------------------------------------


def load_needle(json_path: str | Path, size: tuple[int, int] | None = None) -> Needle:
    """The needle of one JSON file and its PNG; ``size`` (width, height): the PNG must be
    that big. NeedleError names the file and field of anything wrong."""
    path = Path(json_path)
    where = str(path)
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except OSError as exc:
        raise NeedleError(f"cannot read it: {exc.strerror or exc}", source=where) from exc
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise NeedleError(f"not JSON: {exc}", source=where) from exc
    if not isinstance(data, dict):
        raise NeedleError(f"a needle is a JSON object, not {type(data).__name__}",
                          source=where)
    png_name = data.get("png", f"{path.stem}.png")
    if not isinstance(png_name, str) or not png_name:
        raise NeedleError("a file name", source=where, key_path="png")
    png = path.parent / png_name
    try:
        with Image.open(png) as opened:
            image = _as_bgr(opened)
    except (OSError, Image.DecompressionBombError) as exc:
        raise NeedleError(f"its PNG {png} cannot be read: {exc}", source=where,
                          key_path="png") from exc
    if size is not None and (image.shape[1], image.shape[0]) != tuple(size):
        raise NeedleError(f"its PNG {png} is {image.shape[1]}x{image.shape[0]}, the screens "
                          f"here are {size[0]}x{size[1]}", source=where, key_path="png")
    return _needle_from_json(path.stem, data, image, where, path)


def _needle_from_json(name: str, data: Mapping[str, Any], image: Bgr, where: str,
                      path: Path | None) -> Needle:
    unknown = sorted(set(data) - _NEEDLE_KEYS)
    if unknown:
        raise NeedleError(f"unknown key (known: {', '.join(sorted(_NEEDLE_KEYS))})",
                          source=where, key_path=unknown[0])
    raw_areas = data.get("area")
    if not isinstance(raw_areas, list) or not raw_areas:
        raise NeedleError("a list of at least one area", source=where, key_path="area")
    height, width = image.shape[:2]
    areas = tuple(_area(raw, f"area[{i}]", where, width, height)
                  for i, raw in enumerate(raw_areas))
    if not any(a.type in ("match", "ocr") for a in areas):
        raise NeedleError("no match or ocr area: a needle of exclude areas alone matches "
                          "anything", source=where, key_path="area")
    unnamed = [i for i, a in enumerate(areas)
               if a.click_point is not None and a.click_point.id is None]
    named = [a for a in areas if a.click_point is not None and a.click_point.id is not None]
    if len(unnamed) > 1 or (unnamed and named):
        raise NeedleError("more than one click point, not all with an id", source=where,
                          key_path=f"area[{unnamed[-1]}].click_point")
    return Needle(name, image, areas, _tags(data.get("tags", []), where),
                  _properties(data.get("properties", []), where), path)


def _int(raw: Mapping[str, Any], key: str, where: str, path: str, minimum: int) -> int:
    value = raw.get(key)
    if isinstance(value, bool) or not isinstance(value, int | float) or value != int(value):
        raise NeedleError(f"an integer, not {value!r}", source=where, key_path=f"{path}.{key}")
    if value < minimum:
        raise NeedleError(f"{int(value)} is below {minimum}", source=where,
                          key_path=f"{path}.{key}")
    return int(value)


def _area(raw: object, path: str, where: str, width: int, height: int) -> NeedleArea:
    if not isinstance(raw, dict):
        raise NeedleError(f"an area is an object, not {type(raw).__name__}", source=where,
                          key_path=path)
    unknown = sorted(set(raw) - _AREA_KEYS)
    if unknown:
        raise NeedleError(f"unknown key (known: {', '.join(sorted(_AREA_KEYS))})",
                          source=where, key_path=f"{path}.{unknown[0]}")
    x, y = _int(raw, "xpos", where, path, 0), _int(raw, "ypos", where, path, 0)
    w, h = _int(raw, "width", where, path, 1), _int(raw, "height", where, path, 1)
    if x + w > width or y + h > height:
        raise NeedleError(f"{w}x{h} at {x},{y} is outside the {width}x{height} PNG",
                          source=where, key_path=path)
    kind = raw.get("type", "match")
    if kind not in AREA_TYPES:
        raise NeedleError(f"{kind!r} is not one of {', '.join(AREA_TYPES)}", source=where,
                          key_path=f"{path}.type")
    match = raw.get("match", DEFAULT_MATCH)
    if isinstance(match, bool) or not isinstance(match, int | float) or not 0 <= match <= 100:
        raise NeedleError(f"a percentage 0-100, not {match!r}", source=where,
                          key_path=f"{path}.match")
    margin = _int(raw, "margin", where, path, 0) if "margin" in raw else DEFAULT_MARGIN
    click = _click_point(raw.get("click_point"), f"{path}.click_point", where, w, h)
    extra = tuple((k, raw[k]) for k in ("processing_flags", "max_offset") if k in raw)
    return NeedleArea(x, y, w, h, kind, float(match), margin, click, extra)


def _click_point(raw: object, path: str, where: str, width: int,
                 height: int) -> ClickPoint | None:
    if raw is None:
        return None
    if raw == "center":
        return ClickPoint()
    if not isinstance(raw, dict) or set(raw) - {"xpos", "ypos", "id"}:
        raise NeedleError(f'"center" or {{"xpos", "ypos"[, "id"]}}, not {raw!r}',
                          source=where, key_path=path)
    coords = []
    for key, limit in (("xpos", width), ("ypos", height)):
        value = raw.get(key)
        if isinstance(value, bool) or not isinstance(value, int | float) \
                or not 0 <= value <= limit:
            raise NeedleError(f"a number 0-{limit} inside the area, not {value!r}",
                              source=where, key_path=f"{path}.{key}")
        coords.append(float(value))
    point_id = raw.get("id")
    if point_id is not None and not isinstance(point_id, str):
        raise NeedleError(f"a string, not {point_id!r}", source=where, key_path=f"{path}.id")
    return ClickPoint(coords[0], coords[1], point_id)


def _tags(raw: object, where: str) -> tuple[str, ...]:
    if not isinstance(raw, list) or not all(isinstance(t, str) and t for t in raw):
        raise NeedleError(f"a list of non-empty strings, not {raw!r}", source=where,
                          key_path="tags")
    return tuple(dict.fromkeys(raw))  # os-autoinst warns about a tag given twice; one is kept


def _properties(raw: object, where: str) -> tuple[NeedleProperty, ...]:
    if not isinstance(raw, list):
        raise NeedleError(f"a list, not {raw!r}", source=where, key_path="properties")
    out = []
    for i, item in enumerate(raw):
        if isinstance(item, str) and item:
            out.append(NeedleProperty(item))
        elif (isinstance(item, dict) and isinstance(item.get("name"), str)
              and set(item) <= {"name", "value"}):
            value = item.get("value")
            out.append(NeedleProperty(item["name"], None if value is None else str(value)))
        else:
            raise NeedleError(f'a name or {{"name", "value"}}, not {item!r}', source=where,
                              key_path=f"properties[{i}]")
    return tuple(out)


def load_needles(*directories: str | Path, size: tuple[int, int] | None = None) -> NeedleSet:
    """Every needle (``*.json``) below ``directories``, all or none: the first bad file
    raises NeedleError and nothing is returned. Two needles of one name are an error."""
    if not directories:
        raise InvalidArgument("load_needles: give at least one directory")
    found: dict[str, Needle] = {}
    for directory in directories:
        root = Path(directory)
        if not root.is_dir():
            raise NeedleError("not a directory of needles", source=str(root))
        for json_path in sorted(root.rglob("*.json")):
            needle = load_needle(json_path, size)
            earlier = found.get(needle.name)
            if earlier is not None:
                raise NeedleError(f"a needle named {needle.name!r} is also {earlier.path}",
                                  source=str(json_path))
            found[needle.name] = needle
    return NeedleSet(tuple(found.values()))


@dataclass(frozen=True)
class NeedleSet:
    """Needles to choose from by tag (os-autoinst: a needle with any of the tags)."""

    needles: tuple[Needle, ...]

    def __iter__(self) -> Iterator[Needle]:
        return iter(self.needles)

    def __len__(self) -> int:
        return len(self.needles)

    @property
    def tags(self) -> tuple[str, ...]:
        return tuple(sorted({t for n in self.needles for t in n.tags}))

    def named(self, name: str) -> Needle:
        for needle in self.needles:
            if needle.name == name:
                return needle
        raise InvalidArgument(f"no needle named {name!r}")

    def select(self, tags: str | Iterable[str]) -> tuple[Needle, ...]:
        """The needles with any of ``tags``; a tag no needle has is InvalidArgument."""
        wanted = (tags,) if isinstance(tags, str) else tuple(tags)
        if not wanted:
            raise InvalidArgument("no tag given")
        known = set(self.tags)
        for tag in wanted:
            if tag not in known:
                listed = ", ".join(sorted(known)[:20]) or "none"
                raise InvalidArgument(f"no needle has the tag {tag!r}",
                                      hint=f"tags of the {len(self)} needles: {listed}")
        return tuple(n for n in self.needles if set(n.tags) & set(wanted))
