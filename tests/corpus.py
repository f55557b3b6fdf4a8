"""The golden codec corpus (``tests/fixtures/spice/corpus``): reading it back, composing it.

``scripts/capture-codec-corpus.py`` records, per compression setting, what the lab's real
Spice server (QEMU 7.2 / spice-server 0.15.1) sent on a display VM's two display channels
while the guest wrote known images to its two qxl framebuffers: every display message in
arrival order, the raw body of every DRAW_COPY, and QEMU's screendump of each head (equal to
the known image written, checked at capture time). Layout of ``corpus/<setting>/``:

- ``manifest.json``: the server and client settings, ``events`` (arrival order, with the
  channel id; DRAW_COPY fields and image descriptor, and the file holding its body),
  ``references`` (channel -> PNG of that head's final screen), ``image_types`` (count and
  payload bytes per image type), ``glz`` (GLZ image ids and which other images each one
  copies from), ``unknown_messages`` (per channel: types nothing parses yet) and timings.
- ``records/NNNN-chC-TYPE.bin[.gz]``: a DRAW_COPY message body (gzip where that saves a
  tenth: raw BITMAPs of flat screens).
- the reference PNGs live in ``corpus/references/`` (shared: every setting shows the same
  known images).

:func:`compose` replays a setting's DRAW_COPYs onto one surface per channel with the
decoders it is given (ROP PUT only, clipped, src_area -> box), so a test can compare the
result with the screendump pixel for pixel.

Example::

    setting = load_setting("lz")
    surfaces = compose(setting, session_decoder(setting))
    assert surfaces[0].tobytes() == setting.reference(0).tobytes()
"""

from __future__ import annotations

import gzip
import io
import json
import struct
import zlib
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from PIL import Image

from atp_notebook.spice.codecs import GlzWindow
from atp_notebook.spice.codecs.images import ImageState, decode_image
from atp_notebook.spice.proto.common import ChannelEvent
from atp_notebook.spice.proto.constants import ImageType, SurfaceFlags
from atp_notebook.spice.proto.display import (
    DisplayReset,
    DrawCopy,
    Mark,
    ModeChanged,
    Rect,
    SpiceImage,
    SurfaceCreated,
    SurfaceDestroyed,
    parse_draw_copy,
)

CORPUS_DIR = Path(__file__).resolve().parent / "fixtures" / "spice" / "corpus"
REFERENCES_DIR = CORPUS_DIR / "references"
ROP_PUT = 1 << 3  # SPICE_ROPD_OP_PUT

# GLZ stream header, big-endian: magic, version, type | top_down << 4, width, height,
# stride, image id, win_head_dist (spice-gtk decode-glz.c decode_header)
GLZ_HEADER = struct.Struct(">IIBIIIQI")
GLZ_MAGIC = 0x20205A4C  # "  ZL"
GLZ_RGB32 = 8
GLZ_MAX_COPY = 32  # control bytes below this start a run of literal pixels


@dataclass(frozen=True)
class CorpusEvent:
    """One display message as recorded: ``fields`` is its manifest entry; ``draw`` the
    DRAW_COPY parsed again from its recorded body (None for other kinds)."""

    seq: int
    channel: int
    kind: str  # surface_create, surface_destroy, mark, reset, mode, draw_copy
    fields: Mapping[str, Any]
    draw: DrawCopy | None = None


@dataclass(frozen=True)
class CorpusSetting:
    name: str
    directory: Path
    manifest: Mapping[str, Any]
    events: tuple[CorpusEvent, ...]

    @property
    def draws(self) -> tuple[CorpusEvent, ...]:
        return tuple(e for e in self.events if e.draw is not None)

    def reference(self, channel: int) -> Image.Image:
        """QEMU's screendump of head ``channel`` at the end of the capture, RGB."""
        entry = self.manifest["references"][str(channel)]
        with Image.open(self.directory / entry["file"]) as image:
            return image.convert("RGB")

    def image_types(self) -> dict[str, int]:
        """Image type name -> how many DRAW_COPYs carried one."""
        return {name: int(v["count"]) for name, v in self.manifest["image_types"].items()}


def available_settings() -> list[str]:
    return sorted(p.parent.name for p in CORPUS_DIR.glob("*/manifest.json"))


def read_record(directory: Path, name: str) -> bytes:
    data = (directory / name).read_bytes()
    return gzip.decompress(data) if name.endswith(".gz") else data


def load_setting(name: str) -> CorpusSetting:
    """The corpus of setting ``name`` (a directory under :data:`CORPUS_DIR`)."""
    directory = CORPUS_DIR / name
    manifest = json.loads((directory / "manifest.json").read_text())
    events = []
    for entry in manifest["events"]:
        draw = None
        if entry["kind"] == "draw_copy" and entry.get("file"):
            draw = parse_draw_copy(read_record(directory, entry["file"]))
        events.append(CorpusEvent(int(entry["seq"]), int(entry["channel"]), str(entry["kind"]),
                                  entry, draw))
    return CorpusSetting(name, directory, manifest, tuple(events))


def display_events(setting: CorpusSetting) -> list[tuple[int, ChannelEvent]]:
    """(channel, event) for every recorded display message, in arrival order, as the
    channel's parser gives them: DRAW_COPY parsed from its recorded body, the others rebuilt
    from their manifest entry (the capture keeps no other bodies; MODE records no depth, the
    capture's server never sends it)."""
    out: list[tuple[int, ChannelEvent]] = []
    for e in setting.events:
        f = e.fields
        event: ChannelEvent
        if e.draw is not None:
            event = e.draw
        elif e.kind == "surface_create":
            event = SurfaceCreated(int(f["surface"]), int(f["width"]), int(f["height"]),
                                   int(f["format"]), SurfaceFlags.PRIMARY if f["primary"]
                                   else SurfaceFlags(0))
        elif e.kind == "surface_destroy":
            event = SurfaceDestroyed(int(f["surface"]))
        elif e.kind == "mode":
            event = ModeChanged(int(f["width"]), int(f["height"]), 32)
        elif e.kind == "mark":
            event = Mark()
        elif e.kind == "reset":
            event = DisplayReset()
        else:
            raise ValueError(f"corpus {setting.name}: event {e.seq} of unknown kind {e.kind}")
        out.append((e.channel, event))
    return out


# --- GLZ: which earlier images a GLZ image copies from ---------------------------------


@dataclass(frozen=True)
class GlzHeader:
    lz_type: int
    top_down: bool
    width: int
    height: int
    stride: int
    image_id: int
    win_head_dist: int


def glz_stream(image: SpiceImage) -> bytes:
    """The GLZ stream of a GLZ_RGB image, or of a ZLIB_GLZ_RGB one once inflated."""
    payload = image.payload
    if image.type == ImageType.GLZ_RGB:
        (size,) = struct.unpack_from("<I", payload)
        return bytes(payload[4:4 + size])
    if image.type == ImageType.ZLIB_GLZ_RGB:
        glz_size, size = struct.unpack_from("<II", payload)
        stream = zlib.decompress(bytes(payload[8:8 + size]))
        if len(stream) != glz_size:
            raise ValueError(f"ZLIB_GLZ_RGB inflates to {len(stream)} bytes, not {glz_size}")
        return stream
    raise ValueError(f"image type {image.type} carries no GLZ stream")


def glz_header(stream: bytes) -> GlzHeader:
    magic, _version, kind, width, height, stride, image_id, win_head_dist = \
        GLZ_HEADER.unpack_from(stream)
    if magic != GLZ_MAGIC:
        raise ValueError(f"not a GLZ stream (magic {magic:#x})")
    return GlzHeader(kind & 0x0F, bool(kind >> 4), width, height, stride, image_id,
                     win_head_dist)


def glz_image_distances(stream: bytes) -> set[int]:
    """The image distances (> 0) of every reference into an earlier image of an RGB32 GLZ
    stream: the image copied from has id ``header.image_id - distance``.

    Walks the control bytes without producing pixels (layout: spice-gtk decode-glz-tmpl.c):
    ctrl < 32 is ctrl + 1 literal pixels of 3 bytes; otherwise a match whose length is
    ctrl >> 5 (7: more length bytes while 255), then a byte of pixel offset, then a byte
    whose top two bits count the extra bytes of image distance (or, with the pixel flag
    ctrl bit 4, of a longer offset form whose image distance is those bytes alone).
    """
    header = glz_header(stream)
    if header.lz_type != GLZ_RGB32:
        raise ValueError(f"GLZ type {header.lz_type}: only RGB32 is walked here")
    total = header.width * header.height
    ip, done, distances = GLZ_HEADER.size, 0, set()
    while done < total:
        ctrl = stream[ip]
        ip += 1
        if ctrl < GLZ_MAX_COPY:
            count = ctrl + 1
            ip += 3 * count
            done += count
            continue
        length = ctrl >> 5
        if length == 7:
            while True:
                code = stream[ip]
                ip += 1
                length += code
                if code != 255:
                    break
        ip += 1  # pixel offset bits 4..11
        code = stream[ip]
        ip += 1
        extra = code >> 6
        if not (ctrl >> 4) & 1:
            distance = code & 0x3F
            for i in range(extra):
                distance += stream[ip + i] << (6 + 8 * i)
        else:
            distance = sum(stream[ip + i] << (8 * i) for i in range(extra))
            if (code >> 5) & 1:
                ip += 1  # pixel offset bits 17..24
        ip += extra
        done += length  # RGB32: lengths carry no bias
        if distance:
            distances.add(distance)
    # the walk must end exactly where the stream does: a misread length or offset shows
    if done != total or ip != len(stream):
        raise ValueError(f"GLZ stream covers {done} of {total} pixels, reads {ip} of "
                         f"{len(stream)} bytes")
    return distances


# --- decoding and composing ---------------------------------------------------------------

Decoder = Callable[[SpiceImage], Image.Image]


def session_decoder(setting: CorpusSetting, *, glz_timeout: float = 5.0) -> Decoder:
    """What a client session decodes with: one GLZ window of the size the capture announced
    (shared by both display channels) and one palette cache, fed every image in order."""
    window = int(setting.manifest["client"].get("glz_window") or 0)
    state = ImageState(glz=GlzWindow(window) if window else None, glz_timeout=glz_timeout)

    def decode(image: SpiceImage) -> Image.Image:
        img = decode_image(image, state)
        return bgrx_image(img.pixels, img.width, img.height)

    return decode


def reference_decoder(setting: CorpusSetting) -> Decoder:
    """Like :func:`session_decoder`, but JPEG images are decoded by Pillow (libjpeg's own
    decode of the same bytes): the oracle for the lossy settings."""
    ours = session_decoder(setting)

    def decode(image: SpiceImage) -> Image.Image:
        if image.type != ImageType.JPEG:
            return ours(image)
        (size,) = struct.unpack_from("<I", image.payload)
        with Image.open(io.BytesIO(bytes(image.payload[4:4 + size]))) as jpeg:
            return jpeg.convert("RGB")

    return decode


def bgrx_image(pixels: bytes | bytearray | memoryview, width: int, height: int) -> Image.Image:
    return Image.frombuffer("RGB", (width, height), bytes(pixels), "raw", "BGRX", 0, 1)


def _intersect(a: Rect, b: Rect) -> Rect | None:
    top, left = max(a.top, b.top), max(a.left, b.left)
    bottom, right = min(a.bottom, b.bottom), min(a.right, b.right)
    return Rect(top, left, bottom, right) if top < bottom and left < right else None


def apply_draw_copy(surface: Image.Image, draw: DrawCopy, decoded: Image.Image) -> None:
    """Put ``decoded``'s ``src_area`` at ``draw.box`` of ``surface``, inside the clip rects
    (all of the box when there are none). ROP PUT, no mask, no scaling: what QEMU's qxl
    and VGA paths send (research/display.md §1.10)."""
    if draw.rop != ROP_PUT or draw.has_mask:
        raise AssertionError(f"the replay does ROP PUT without a mask, not rop {draw.rop:#x}"
                             f" mask {draw.has_mask}")
    box, src = draw.box, draw.src_area
    if (src.width, src.height) != (box.width, box.height):
        raise AssertionError(f"the replay does not scale: DRAW_COPY {src} -> {box}")
    for clip in (box,) if draw.clip is None else draw.clip:
        part = _intersect(box, clip)
        if part is None:
            continue
        dx, dy = src.left - box.left, src.top - box.top
        piece = decoded.crop((part.left + dx, part.top + dy, part.right + dx, part.bottom + dy))
        surface.paste(piece, (part.left, part.top))


def compose(setting: CorpusSetting, decode: Decoder) -> dict[int, Image.Image]:
    """Replay the setting's events: each channel's primary surface at the end, RGB."""
    surfaces: dict[tuple[int, int], Image.Image] = {}
    primary: dict[int, int] = {}
    for event in setting.events:
        key = (event.channel, int(event.fields.get("surface", 0)))
        if event.kind == "surface_create":
            size = (int(event.fields["width"]), int(event.fields["height"]))
            surfaces[key] = Image.new("RGB", size)
            if event.fields.get("primary"):
                primary[event.channel] = key[1]
        elif event.kind == "surface_destroy":
            surfaces.pop(key, None)
        elif event.draw is not None and event.draw.image is not None:
            apply_draw_copy(surfaces[key], event.draw, decode(event.draw.image))
    return {channel: surfaces[(channel, sid)] for channel, sid in primary.items()
            if (channel, sid) in surfaces}
