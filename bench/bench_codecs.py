"""The image decoders vs raw anchors on the same pixels, in the same run.

Two sources of images, both sent by the lab's real Spice server (QEMU 7.2 / spice-server
0.15.1):

- **corpus**: every image of the golden corpus (``tests/fixtures/spice/corpus``, all
  settings); figures ``codec_<codec>.corpus.vs_<anchor>``;
- **server1024** (full runs only, not ``--quick``): 1024x768 known images (photo, text,
  gradient, flat) written to a display VM's framebuffer under each setting (quic, lz, glz,
  lz4, jpeg, zlib) and recorded as the server compressed them; figures
  ``codec_<codec>.server1024.<image>.vs_<anchor>``. Takes a few minutes (one VM per
  setting). It takes the lab lock itself, per VM: do not run it under
  ``flock /tmp/atp-lab.lock`` (a second flock of the same file waits for ever).

``ours`` is :func:`decode_image` on each image in arrival order with a fresh session state
per round (GLZ images need the ones they copy from), timed per image and summed per codec.
The anchors decode the same decoded pixels, prepared once: Pillow's PNG decode for QUIC,
``zlib.decompress`` (level 6) for LZ, GLZ and ZLIB_GLZ, ``lz4.block.decompress`` for LZ4,
Pillow's decode of the same JPEG bytes for JPEG, and a copy of the output (``bytearray``:
allocation + memcpy, like ours with no ``out``) as the physical limit for every codec.
Ours and the anchor alternate per image. Ratio = ours / anchor time: below 1 is faster. The
extra fields give Mpix/s. Goals (issue 12): LZ and GLZ <= 1.0 vs zlib, LZ4 <= 1.25 (0.8x
speed) vs lz4, QUIC <= 2.0 (0.5x speed) vs PNG.
"""

from __future__ import annotations

import io
import statistics
import time
import zlib
from collections import defaultdict
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from functools import partial

import lz4.block
from PIL import Image

from atp_notebook.spice.codecs import GlzWindow, ImageState, decode_image
from atp_notebook.spice.proto.constants import ImageType
from atp_notebook.spice.proto.display import SpiceImage
from bench.codec_frames import INITIAL, capture_frames
from bench.measure import emit, is_quick, iterations, ms
from tests.corpus import available_settings, load_setting

CODEC = {
    ImageType.BITMAP: "bitmap", ImageType.QUIC: "quic", ImageType.LZ_RGB: "lz",
    ImageType.LZ_PLT: "lz", ImageType.GLZ_RGB: "glz", ImageType.ZLIB_GLZ_RGB: "zlib_glz",
    ImageType.LZ4: "lz4", ImageType.JPEG: "jpeg",
}
ANCHOR = {"quic": "png", "lz": "zlib", "glz": "zlib", "zlib_glz": "zlib", "lz4": "lz4",
          "jpeg": "pillow_jpeg", "bitmap": None}
ANCHOR_IS = {
    "png": "PIL.Image.open(png).load() of the decoded pixels as PNG (RGB)",
    "zlib": "zlib.decompress of the decoded B,G,R,X pixels (level 6)",
    "lz4": "lz4.block.decompress of the decoded B,G,R,X pixels",
    "pillow_jpeg": "PIL.Image.open(jpeg).load() of the same JPEG bytes",
    "memcpy": "bytearray(pixels): allocating and copying the output",
}
GLZ_WINDOW = 1 << 23
LIVE_SETTINGS = ("quic", "lz", "glz", "lz4", "jpeg", "zlib")
LIVE_IMAGES = ("photo", "text", "gradients", "flat")


@dataclass
class Timed:
    """One image of a recording, with the anchors' inputs made from its decoded pixels."""

    image: SpiceImage
    label: str  # what the figure is named after (the setting, or the known image)
    codec: str
    anchors: dict[str, Callable[[], object]]
    pixels: int


@dataclass
class Recording:
    source: str
    images: list[Timed]
    glz_window: int


def _pillow_load(data: bytes) -> None:
    with Image.open(io.BytesIO(data)) as image:
        image.load()


def _jpeg_bytes(image: SpiceImage) -> bytes:
    size = int.from_bytes(image.payload[:4], "little")
    return bytes(image.payload[4:4 + size])


def prepare(source: str, stream: Sequence[tuple[SpiceImage, str]], window: int) -> Recording:
    """Decode once in order (as a session would) and build each image's anchor calls."""
    state = ImageState(glz=GlzWindow(window) if window else None)
    timed = []
    for image, label in stream:
        img = decode_image(image, state)
        raw = bytes(img.pixels)
        codec = CODEC[ImageType(image.type)]
        anchors: dict[str, Callable[[], object]] = {"memcpy": partial(bytearray, raw)}
        kind = ANCHOR[codec]
        if kind == "zlib":
            packed = zlib.compress(raw, 6)
            anchors[kind] = partial(zlib.decompress, packed)
        elif kind == "lz4":
            block = lz4.block.compress(raw, store_size=False)
            anchors[kind] = partial(lz4.block.decompress, block, uncompressed_size=len(raw))
        elif kind == "png":
            png = io.BytesIO()
            Image.frombuffer("RGB", (img.width, img.height), raw, "raw", "BGRX", 0, 1).save(
                png, "PNG")
            anchors[kind] = partial(_pillow_load, png.getvalue())
        elif kind == "pillow_jpeg":
            anchors[kind] = partial(_pillow_load, _jpeg_bytes(image))
        timed.append(Timed(image, label, codec, anchors, img.width * img.height))
    return Recording(source, timed, window)


def measure(rec: Recording, rounds: int) -> dict[tuple[str, str, str], list[int]]:
    """Per (label, codec, side) the summed time of each round, in ns; side is "ours" or an
    anchor's name. A fresh session state each round; ours and the anchors alternate."""
    sums: dict[tuple[str, str, str], list[int]] = defaultdict(list)
    for r in range(rounds):
        state = ImageState(glz=GlzWindow(rec.glz_window) if rec.glz_window else None)
        this: dict[tuple[str, str, str], int] = defaultdict(int)
        for i, item in enumerate(rec.images):
            calls: list[tuple[str, Callable[[], object]]] = [
                ("ours", partial(decode_image, item.image, state)), *item.anchors.items()]
            if (r + i) % 2:
                calls.reverse()  # the anchors first every other time
            for side, call in calls:
                start = time.perf_counter_ns()
                call()
                this[(item.label, item.codec, side)] += time.perf_counter_ns() - start
        for key, value in this.items():
            sums[key].append(value)
    return sums


def _emit(name: str, codec: str, count: int, medians: dict[str, float], ours_is: str) -> None:
    ours = medians["ours"]
    for anchor in (ANCHOR[codec], "memcpy"):
        if anchor is None:
            continue
        theirs = medians[anchor]
        emit(f"{name}.vs_{anchor}", ms(ours), ms(theirs), "ms", ours_is=ours_is,
             anchor_is=ANCHOR_IS[anchor], mpix=round(count / 1e6, 3),
             mpix_s=round(count / ours * 1e3, 1), anchor_mpix_s=round(count / theirs * 1e3, 1))


def report(rec: Recording, rounds: int, setting: str) -> None:
    """One figure per known image and codec of a server1024 recording."""
    sums = measure(rec, rounds)
    pixels: dict[tuple[str, str], int] = defaultdict(int)
    for item in rec.images:
        if item.label != INITIAL:
            pixels[(item.label, item.codec)] += item.pixels
    for (label, codec), count in sorted(pixels.items()):
        medians = {side: statistics.median(v) for (lbl, c, side), v in sums.items()
                   if (lbl, c) == (label, codec)}
        _emit(f"codec_{codec}.server1024.{label}.{setting}", codec, count, medians,
              f"decode_image of the server's {codec} images of the {label} screen")


def corpus_recordings() -> list[Recording]:
    recs = []
    for name in available_settings():
        setting = load_setting(name)
        images = [(e.draw.image, name) for e in setting.draws
                  if e.draw is not None and e.draw.image is not None]
        recs.append(prepare(f"corpus.{name}", images,
                            int(setting.manifest["client"].get("glz_window") or 0)))
    return recs


def corpus() -> None:
    """Every corpus image, per codec over all settings (each setting decodes in its own
    session state; the rounds are added up per codec)."""
    rounds = iterations(15, 2)
    total: dict[tuple[str, str], list[int]] = {}
    pixels: dict[str, int] = defaultdict(int)
    for rec in corpus_recordings():
        for (_, codec, side), values in measure(rec, rounds).items():
            before = total.get((codec, side), [0] * rounds)
            total[(codec, side)] = [a + b for a, b in zip(before, values, strict=True)]
        for item in rec.images:
            pixels[item.codec] += item.pixels
    for codec, count in sorted(pixels.items()):
        _emit(f"codec_{codec}.corpus", codec, count,
              {side: statistics.median(v) for (c, side), v in total.items() if c == codec},
              f"decode_image of the corpus's {codec} images in arrival order")


def main() -> None:
    corpus()
    if is_quick():
        return
    for setting in LIVE_SETTINGS:
        stream = capture_frames(setting, LIVE_IMAGES, GLZ_WINDOW)
        rec = prepare(f"server1024.{setting}", stream, GLZ_WINDOW)
        report(rec, 9, setting)


if __name__ == "__main__":
    main()
