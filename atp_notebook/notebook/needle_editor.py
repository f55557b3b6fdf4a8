"""``NeedleEditor``: make an os-autoinst needle in the notebook, on a screenshot.

An anywidget (its ESM is ``needle_editor.js`` beside this file; nothing to build): the
screenshot on a ``<canvas>``; drag on it to draw an area of the type the selector says
(match, exclude, ocr), click without dragging to set the click point; the areas are listed
under it, each with its match percentage and margin to edit (match and ocr areas) and
removable; a name field, tags and properties fields (comma-separated; a property may be
``name=value``) and a Save button that writes the needle's JSON and PNG
(:meth:`Needle.save`) into ``directory``. The browser only edits the synced traits
(``areas``, ``click``, ``name``, ``tags``, ``properties``) and marks a value out of range;
Save sends one message with them and the kernel checks and writes the files (a match outside
0-100 or a negative margin is refused in the status line, nothing written), so the Python
API does the same thing without a browser: :meth:`add_area`, :meth:`set_area`,
:meth:`set_click_point`, :meth:`save` (nbval and tests drive it that way).

``directory`` defaults to the session's needle folder (``$ATP_NEEDLES``, else ``./needles``,
as ``Session.needle_set`` loads); a needle saved from an editor made on a VM is also put
into ``session.needles`` once that is loaded, so ``vm.assert_screen(tag)`` finds it at once.

Example::

    editor = NeedleEditor(vm, name="login-prompt", tags=["login"], properties=["colour"])
    editor                                          # draw in the browser, or:
    editor.add_area(0, 0, 200, 16)                  # x, y, width, height; type="match"
    editor.set_area(0, match=90, margin=10)         # percent, pixels
    editor.add_area(0, 384, 720, 16, type="exclude")
    editor.set_click_point(100, 8)                  # screen coordinates, in a match area
    path = editor.save()                            # needles/login-prompt.json (+ .png)
    vm.assert_screen("login")
"""

from __future__ import annotations

import io
import logging
import os
import pathlib
import re
from pathlib import Path
from typing import TYPE_CHECKING, Any

import anywidget
import numpy as np
import traitlets
from PIL import Image

from atp_notebook.errors import AtpError, InvalidArgument
from atp_notebook.screen.needle import (
    AREA_TYPES,
    DEFAULT_MARGIN,
    DEFAULT_MATCH,
    ClickPoint,
    Needle,
    NeedleArea,
    NeedleProperty,
    NeedleSet,
)

if TYPE_CHECKING:
    from atp_notebook.session import Vm

__all__ = ["NEEDLE_NAME", "NeedleEditor", "default_needle_dir"]

log = logging.getLogger("atp.notebook.needle_editor")
# a needle's name is its files' name: no folders, nothing a shell or openQA would trip on
NEEDLE_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]*")
Screen = Image.Image | np.ndarray[Any, np.dtype[np.uint8]]


def default_needle_dir() -> Path:
    """Where the session looks for needles: ``$ATP_NEEDLES``, else ``./needles``."""
    return Path(os.environ.get("ATP_NEEDLES") or "needles")


def _tag_list(tags: str | list[str] | tuple[str, ...]) -> list[str]:
    words = tags.split(",") if isinstance(tags, str) else list(tags)
    return list(dict.fromkeys(t.strip() for t in words if t.strip()))


def _property_list(text: str) -> list[NeedleProperty]:
    """``"workaround, colour, bug=bsc#1"``: names, or ``name=value`` pairs."""
    found = []
    for word in _tag_list(text):
        name, equals, value = word.partition("=")
        if not name.strip():
            raise InvalidArgument(f"property {word!r} has no name",
                                  hint="properties are names or name=value, comma-separated")
        found.append(NeedleProperty(name.strip(), value.strip() if equals else None))
    return found


def _property_text(properties: str | list[str] | tuple[str, ...]) -> str:
    return ", ".join(_tag_list(properties))


def _checked_levels(where: str, match: object, margin: object) -> tuple[float, int]:
    """An area's match percentage and margin as typed (the browser may send anything)."""
    if isinstance(match, bool) or not isinstance(match, int | float) \
            or not 0 <= match <= 100:
        raise InvalidArgument(f"{where}: match {match!r} is not a percentage 0-100")
    if isinstance(margin, bool) or not isinstance(margin, int | float) \
            or not float(margin).is_integer() or margin < 0:
        raise InvalidArgument(f"{where}: margin {margin!r} is not a whole number of pixels "
                              ">= 0")
    return float(match), int(margin)


class NeedleEditor(anywidget.AnyWidget):
    """Draw a needle's areas on a screenshot (of ``source``: a Vm, a PIL image or a
    B,G,R[,X] array) and save it in os-autoinst's format."""

    _esm = pathlib.Path(__file__).with_name("needle_editor.js")
    screen_png = traitlets.Bytes(b"").tag(sync=True)
    screen_width = traitlets.Int(0).tag(sync=True)
    screen_height = traitlets.Int(0).tag(sync=True)
    # [{"x", "y", "width", "height", "type", "match", "margin"}], screen pixels
    areas = traitlets.List(traitlets.Dict()).tag(sync=True)
    click = traitlets.List(traitlets.Float(), maxlen=2).tag(sync=True)  # [] or [x, y]
    area_type = traitlets.Unicode("match").tag(sync=True)
    name = traitlets.Unicode("").tag(sync=True)
    tags = traitlets.Unicode("").tag(sync=True)  # comma-separated, as typed
    properties = traitlets.Unicode("").tag(sync=True)  # comma-separated names or name=value
    directory = traitlets.Unicode("").tag(sync=True)
    status = traitlets.Unicode("").tag(sync=True)

    def __init__(self, source: Vm | Screen, name: str = "",
                 tags: str | list[str] | tuple[str, ...] = (),
                 directory: str | Path | None = None,
                 properties: str | list[str] | tuple[str, ...] = ()) -> None:
        if isinstance(source, Image.Image | np.ndarray):
            image, self.vm = source, None
        else:
            image, self.vm = source.screenshot(), source
        picture = _as_picture(image)
        png = io.BytesIO()
        picture.save(png, format="PNG", compress_level=1)
        super().__init__(screen_png=png.getvalue(), screen_width=picture.width,
                         screen_height=picture.height, name=name,
                         tags=", ".join(_tag_list(tags)),
                         properties=_property_text(properties),
                         directory=str(directory if directory is not None
                                       else default_needle_dir()))
        self.screen = picture
        self.saved: Path | None = None
        self.on_msg(self._on_message)

    def __repr__(self) -> str:
        return (f"<NeedleEditor {self.name or '(unnamed)'} {self.screen_width}x"
                f"{self.screen_height}, {len(self.areas)} areas>")

    # --- the Python face of what the browser does -----------------------------------------

    def add_area(self, x: int, y: int, width: int, height: int, *, type: str = "match",
                 match: float = DEFAULT_MATCH, margin: int = DEFAULT_MARGIN) -> int:
        """Add an area (screen pixels); its index in :attr:`areas`."""
        if type not in AREA_TYPES:
            raise InvalidArgument(f"area type {type!r}: one of {', '.join(AREA_TYPES)}")
        if min(x, y) < 0 or width < 1 or height < 1 or x + width > self.screen_width \
                or y + height > self.screen_height:
            raise InvalidArgument(f"area {width}x{height} at {x},{y} is not inside the "
                                  f"{self.screen_width}x{self.screen_height} screenshot")
        match, margin = _checked_levels("the new area", match, margin)
        self.areas = [*self.areas, {"x": int(x), "y": int(y), "width": int(width),
                                    "height": int(height), "type": type,
                                    "match": match, "margin": margin}]
        return len(self.areas) - 1

    def set_area(self, index: int, *, match: float | None = None,
                 margin: int | None = None) -> None:
        """Change area ``index``'s match percentage (0-100) and/or margin (pixels >= 0),
        as the fields of its row in the browser do."""
        if not 0 <= index < len(self.areas):
            raise InvalidArgument(f"no area {index}: there are {len(self.areas)}")
        area = self.areas[index]
        levels = _checked_levels(f"area {index}",
                                 area.get("match", DEFAULT_MATCH) if match is None else match,
                                 area.get("margin", DEFAULT_MARGIN) if margin is None
                                 else margin)
        changed = {**area, "match": levels[0], "margin": levels[1]}
        self.areas = [changed if i == index else a for i, a in enumerate(self.areas)]

    def remove_area(self, index: int) -> None:
        if not 0 <= index < len(self.areas):
            raise InvalidArgument(f"no area {index}: there are {len(self.areas)}")
        self.areas = [a for i, a in enumerate(self.areas) if i != index]

    def set_click_point(self, x: float, y: float) -> None:
        """Where assert_and_click clicks, in screen pixels (saved relative to the match
        area it falls in, os-autoinst's way)."""
        self.click = [float(x), float(y)]

    def clear_click_point(self) -> None:
        self.click = []

    def needle(self) -> Needle:
        """The needle as drawn; NeedleError/InvalidArgument say what is missing."""
        name = self.name.strip()
        if not NEEDLE_NAME.fullmatch(name):
            raise InvalidArgument(f"needle name {name!r}: letters, digits, '.', '_' and '-' "
                                  "(it names the JSON and PNG files)")
        tags = _tag_list(self.tags)
        if not tags:
            raise InvalidArgument(f"needle {name!r} has no tag",
                                  hint="assert_screen finds needles by tag: add at least one")
        areas = [_area(i, a) for i, a in enumerate(self.areas)]
        if self.click:
            areas = self._with_click_point(areas, *self.click)
        return Needle.from_screen(name, self.screen, areas, tags,
                                  _property_list(self.properties))

    def _with_click_point(self, areas: list[NeedleArea], x: float,
                          y: float) -> list[NeedleArea]:
        for i, area in enumerate(areas):
            left, top, right, bottom = area.box
            if area.type == "match" and left <= x <= right and top <= y <= bottom:
                areas[i] = NeedleArea(area.x, area.y, area.width, area.height, area.type,
                                      area.match, area.margin,
                                      ClickPoint(x - left, y - top))
                return areas
        raise InvalidArgument(f"the click point {x:g},{y:g} is in no match area",
                              hint="os-autoinst keeps a click point relative to its area")

    def save(self, directory: str | Path | None = None) -> Path:
        """Write NAME.json and NAME.png into ``directory`` (default: :attr:`directory`);
        the JSON's path. The session's loaded needles get it too (same name: replaced)."""
        needle = self.needle()
        path = needle.save(directory if directory is not None else self.directory)
        saved = Needle(needle.name, needle.image, needle.areas, needle.tags,
                       needle.properties, path)
        self._add_to_session(saved)
        self.saved = path
        self.status = f"saved {path}"
        return path

    def _add_to_session(self, needle: Needle) -> None:
        session = getattr(self.vm, "session", None)
        if session is None or session.needles is None:
            return  # loaded later from the folder, if it is the session's
        others = tuple(n for n in session.needles if n.name != needle.name)
        session.needles = NeedleSet((*others, needle))

    def _on_message(self, _widget: Any, content: Any, _buffers: Any) -> None:
        if not isinstance(content, dict) or content.get("type") != "save":
            return
        try:
            self._take_state(content.get("state"))
            self.save()
        except AtpError as exc:  # shown in the widget: a click has no cell to fail
            self.status = f"not saved: {exc.message}" + (f" ({exc.hint})" if exc.hint else "")
        except (OSError, traitlets.TraitError) as exc:
            self.status = f"not saved: {exc}"
        log.info("needle editor: %s", self.status)

    def _take_state(self, state: object) -> None:
        """The view's state as it was when Save was pressed (see needle_editor.js)."""
        if not isinstance(state, dict):
            return
        with self.hold_sync():  # one update back to the views, not four
            for key in ("name", "tags", "properties", "areas", "click"):
                if key in state:
                    setattr(self, key, state[key])  # traitlets checks the types


def _area(index: int, raw: dict[str, Any]) -> NeedleArea:
    """Area ``index`` as the view or :meth:`NeedleEditor.add_area` left it, checked."""
    where = f"area {index}"
    box: list[int] = []
    for key in ("x", "y", "width", "height"):
        value = raw.get(key)
        if isinstance(value, bool) or not isinstance(value, int | float) \
                or not float(value).is_integer():
            raise InvalidArgument(f"{where}: {key} is a whole number, not {value!r}")
        box.append(int(value))
    kind = raw.get("type", "match")
    if kind not in AREA_TYPES:
        raise InvalidArgument(f"{where}: type {kind!r} is not one of {', '.join(AREA_TYPES)}")
    match, margin = _checked_levels(where, raw.get("match", DEFAULT_MATCH),
                                     raw.get("margin", DEFAULT_MARGIN))
    x, y, width, height = box
    return NeedleArea(x, y, width, height, str(kind), match, margin)


def _as_picture(image: Screen) -> Image.Image:
    if isinstance(image, Image.Image):
        return image.convert("RGB")
    if image.ndim != 3 or image.shape[2] not in (3, 4) or image.dtype != np.uint8:
        raise InvalidArgument(f"a screen is a PIL image or a (h, w, 3|4) uint8 B,G,R[,X] "
                              f"array, not {image.dtype} {image.shape}")
    return Image.fromarray(np.ascontiguousarray(image[:, :, 2::-1]), "RGB")
