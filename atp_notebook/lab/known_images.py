"""Known screen images for the display tests: made on the host, written to a guest's qxl
framebuffer (``atp-fb-show``), then compared with what Spice and QEMU show.

Each image is 1024x768 by default (the qxl framebuffer's mode, DESIGN §6) and depends only on
its name and size: the pseudo-random parts come from a ``random.Random`` seeded with the name,
drawing uses Pillow alone. The kinds cover what the Spice server compresses differently:
flat areas and text (LZ/GLZ territory), gradients and photo-like noise ("high graduality":
QUIC, or JPEG when lossy is allowed — research/display.md §1.7).

``mixed`` stacks all of them in five horizontal bands (:data:`MIXED_BANDS`), its photo part
a thin strip, so that a screen of it stays a few hundred KB even in LZ: what the golden
corpus shows.

Example::

    image = known_image("mixed")              # PIL RGB image, 1024x768
    raw = framebuffer_bytes(image)            # B,G,R,X rows, what /dev/fb0 takes
    print(len(raw), image_digest(image)[:12])
    frames = animation_frames(4, rows=96)     # four different 1024x96 photo-like bands
"""

from __future__ import annotations

import hashlib
import random
from collections.abc import Callable

from PIL import Image, ImageChops, ImageDraw, ImageFont

from atp_notebook.errors import InvalidArgument

WIDTH = 1024
HEIGHT = 768
# (first row, row count) of the mixed image's bands at 1024x768: text, gradients, a photo
# strip, flat blocks, radial gradient + text
MIXED_BANDS = ((0, 192), (192, 160), (352, 32), (384, 192), (576, 192))

LINES = (
    "The quick brown fox jumps over the lazy dog 0123456789",
    "Spice sends DRAW_COPY images: QUIC, LZ, GLZ, LZ4, JPEG or a plain BITMAP.",
    "atp-notebook drives QEMU/KVM VMs from Jupyter: QMP, guest agent, Spice.",
    "!\"#$%&'()*+,-./:;<=>?@[\\]^_`{|}~  ABCDEFGHIJKLMNOPQRSTUVWXYZ abcdefghijklmnopqrstuvwxyz",
)
PALETTE = ((0, 0, 0), (200, 30, 30), (20, 110, 40), (30, 60, 190), (120, 60, 150))


def _rng(name: str, width: int, height: int) -> random.Random:
    # seeded from a hash, not hash(): str hashing is salted per process
    seed = hashlib.sha256(f"{name}:{width}x{height}".encode()).digest()
    return random.Random(int.from_bytes(seed[:8], "big"))  # noqa: S311 - pictures, not keys


def _font(size: int) -> ImageFont.FreeTypeFont | ImageFont.ImageFont:
    return ImageFont.load_default(size=size)


def draw_text(image: Image.Image, box: tuple[int, int, int, int], rng: random.Random,
              background: tuple[int, int, int] = (255, 255, 255), size: int = 14) -> None:
    """Fill ``box`` (left, top, right, bottom) with lines of text in a few colours (drawn
    apart and pasted: a line longer than the box is cut at its edge)."""
    left, top, right, bottom = box
    field = Image.new("RGB", (right - left, bottom - top), background)
    draw = ImageDraw.Draw(field)
    font = _font(size)
    y = 4
    while y + size + 2 <= field.height:
        line = LINES[rng.randrange(len(LINES))]
        offset = rng.randrange(len(line))
        draw.text((6, y), line[offset:] + "  " + line[:offset], font=font,
                  fill=PALETTE[rng.randrange(len(PALETTE))])
        y += size + 10  # sparse lines: antialiased text is costly in every codec
    image.paste(field, (left, top))


def _ramp(width: int, height: int, across: bool) -> Image.Image:
    """An 8-bit ramp 0..255 left to right (``across``) or top to bottom."""
    ramp = Image.linear_gradient("L")  # 256x256, black at the top
    if across:
        ramp = ramp.transpose(Image.Transpose.ROTATE_270)  # black at the left
    return ramp.resize((width, height), Image.Resampling.BILINEAR)


def gradient(width: int, height: int, kind: str) -> Image.Image:
    """A smooth RGB gradient: ``horizontal``, ``vertical``, ``diagonal`` or ``radial``."""
    across, down = _ramp(width, height, True), _ramp(width, height, False)
    if kind == "horizontal":
        return Image.merge("RGB", (across, Image.new("L", (width, height), 64),
                                   ImageChops.invert(across)))
    if kind == "vertical":
        return Image.merge("RGB", (Image.new("L", (width, height), 30), down,
                                   ImageChops.invert(down)))
    if kind == "diagonal":
        # a function of x + y: each row is the one above shifted by a pixel, as in a
        # rendered diagonal blend (LZ copies it from the row above; QUIC predicts it)
        span = width + height - 1
        ramp = b"".join(bytes((t * 255 // span, 255 - t * 255 // span,
                               255 - abs(t * 510 // span - 255))) for t in range(span))
        return Image.frombytes("RGB", (width, height), b"".join(
            ramp[3 * (height - 1 - y):3 * (height - 1 - y + width)] for y in range(height)))
    if kind == "radial":
        distance = Image.radial_gradient("L").resize((width, height),
                                                     Image.Resampling.BILINEAR)
        return Image.merge("RGB", (ImageChops.invert(distance), down, distance))
    raise InvalidArgument(f"unknown gradient {kind!r}: horizontal, vertical, diagonal, radial")


def photo(width: int, height: int, rng: random.Random, grain: int = 3) -> Image.Image:
    """Photo-like content: a smooth random field (a coarse random grid upscaled bicubically)
    plus fine grain of +-``grain``: no two rows repeat, so LZ finds little to copy."""
    cw, ch = max(width // 24, 2), max(height // 24, 2)
    coarse = Image.frombytes("RGB", (cw, ch), rng.randbytes(3 * cw * ch))
    smooth = coarse.resize((width, height), Image.Resampling.BICUBIC)
    if grain <= 0:
        return smooth
    span = 2 * grain + 1
    noise = Image.frombytes("RGB", (width, height), rng.randbytes(3 * width * height))
    noise = noise.point([v % span for v in range(256)] * 3)
    return ImageChops.add(smooth, noise, scale=1.0, offset=-grain)


def _flat(width: int, height: int, rng: random.Random) -> Image.Image:
    image = Image.new("RGB", (width, height), (40, 44, 52))
    draw = ImageDraw.Draw(image)
    for _ in range(12):
        # max(): the smallest size (64) leaves no room; the same draws at every other size
        x0, y0 = rng.randrange(max(width - 64, 1)), rng.randrange(max(height - 64, 1))
        x1, y1 = x0 + 32 + rng.randrange(width // 3), y0 + 32 + rng.randrange(height // 3)
        draw.rectangle((x0, y0, min(x1, width - 1), min(y1, height - 1)),
                       fill=tuple(rng.randrange(256) for _ in range(3)))
    return image


def _gradients(width: int, height: int, _rng: random.Random) -> Image.Image:
    image = Image.new("RGB", (width, height))
    w, h = width // 2, height // 2
    for kind, (x, y) in zip(("horizontal", "vertical", "diagonal", "radial"),
                            ((0, 0), (w, 0), (0, h), (w, h)), strict=True):
        image.paste(gradient(width - w if x else w, height - h if y else h, kind), (x, y))
    return image


def _text(width: int, height: int, rng: random.Random) -> Image.Image:
    image = Image.new("RGB", (width, height))
    draw_text(image, (0, 0, width, height), rng)
    return image


def _photo(width: int, height: int, rng: random.Random) -> Image.Image:
    return photo(width, height, rng)


def _mixed(width: int, height: int, rng: random.Random) -> Image.Image:
    """Five bands (:data:`MIXED_BANDS` at 1024x768, scaled otherwise), each content kind in
    a modest area: a whole screen of it costs about 0.3 MB in LZ, the dearest codec here.

    Each band is meant to be written on its own, so that the server chooses a codec for it
    alone: the qxl driver sends what a write dirtied, always whole rows. The photo strip
    is photo-like from edge to edge because spice-server's auto_glz/auto_lz pick QUIC (or
    JPEG) only for an image whose sampled neighbours are mostly close but not equal
    (spice-bitmap-utils.c, score < -0.03); a patch beside flat areas scores as flat.
    """
    image = Image.new("RGB", (width, height), (40, 44, 52))
    tops = [height * top // HEIGHT for top, _ in MIXED_BANDS] + [height]
    text, gradients, strip, flat, radial = (
        (tops[i], tops[i + 1] - tops[i]) for i in range(len(MIXED_BANDS)))
    # text on white beside a flat sidebar
    sidebar = width // 5
    ImageDraw.Draw(image).rectangle((0, text[0], sidebar - 1, text[0] + text[1] - 1),
                                    fill=(30, 90, 160))
    draw_text(image, (sidebar, text[0], width, text[0] + text[1]), rng)
    # gradients: rows that repeat, and rows that shift
    half = width // 2
    image.paste(gradient(half, gradients[1], "horizontal"), (0, gradients[0]))
    image.paste(gradient(width - half, gradients[1], "diagonal"), (half, gradients[0]))
    # a photo-like strip across the whole width (noise hardly compresses: keep it thin)
    image.paste(photo(width, strip[1], rng), (0, strip[0]))
    # flat blocks
    draw = ImageDraw.Draw(image)
    for i, colour in enumerate(PALETTE[1:]):
        x0 = 48 + i * (width - 64) // 4
        draw.rectangle((x0, flat[0] + 24, x0 + 120, flat[0] + flat[1] - 24), fill=colour)
    # a radial gradient beside text on a coloured field
    image.paste(gradient(radial[1], radial[1], "radial"), (16, radial[0]))
    draw_text(image, (radial[1] + 32, radial[0], width, height), rng,
              background=(250, 240, 200))
    return image


_MAKERS: dict[str, Callable[[int, int, random.Random], Image.Image]] = {
    "flat": _flat,
    "gradients": _gradients,
    "text": _text,
    "photo": _photo,
    "mixed": _mixed,
}
KNOWN_IMAGES = tuple(_MAKERS)


def known_image(name: str, width: int = WIDTH, height: int = HEIGHT) -> Image.Image:
    """The known image ``name`` (one of :data:`KNOWN_IMAGES`) as an RGB PIL image."""
    maker = _MAKERS.get(name)
    if maker is None:
        raise InvalidArgument(f"unknown known image {name!r}",
                              hint=f"one of: {', '.join(KNOWN_IMAGES)}")
    if not (64 <= width <= 4096 and 64 <= height <= 4096):
        raise InvalidArgument(f"known images are 64..4096 px a side, not {width}x{height}")
    return maker(width, height, _rng(name, width, height))


ANIMATION_KINDS = ("photo", "flat")
MAX_ANIMATION_FRAMES = 64


def animation_frames(count: int, rows: int = HEIGHT, width: int = WIDTH,
                     kind: str = "photo") -> tuple[Image.Image, ...]:
    """``count`` different frames of ``width`` x ``rows`` for a guest animation
    (``DisplayGuest.animate``): ``photo`` frames are photo-like noise, each its own (what
    spice-server's ``streaming-video=filter`` takes for video as well as ``all``); ``flat``
    ones are a solid colour each with a bar that moves across (cheap in LZ/GLZ, never a
    stream under ``filter``). Frame i depends only on i, the size and the kind."""
    if kind not in ANIMATION_KINDS:
        raise InvalidArgument(f"unknown animation kind {kind!r}",
                              hint=f"one of: {', '.join(ANIMATION_KINDS)}")
    if not 1 <= count <= MAX_ANIMATION_FRAMES:
        raise InvalidArgument(f"an animation has 1..{MAX_ANIMATION_FRAMES} frames, not {count}")
    if not (64 <= width <= 4096 and 1 <= rows <= 4096):
        raise InvalidArgument(f"animation frames are 64..4096 px wide and 1..4096 rows, not "
                              f"{width}x{rows}")
    frames = []
    for i in range(count):
        rng = _rng(f"{kind}-frame-{i}", width, rows)
        if kind == "photo":
            frames.append(photo(width, rows, rng))
            continue
        frame = Image.new("RGB", (width, rows), PALETTE[1 + i % (len(PALETTE) - 1)])
        bar = width // 8
        x = i * width // 16 % (width - bar)  # a step to the right per frame
        ImageDraw.Draw(frame).rectangle((x, 0, x + bar - 1, rows - 1), fill=(250, 250, 250))
        frames.append(frame)
    return tuple(frames)


def framebuffer_bytes(image: Image.Image) -> bytes:
    """``image`` as the qxl framebuffer holds it: 32 bpp rows, bytes B,G,R,X (X = 0)."""
    return image.convert("RGB").tobytes("raw", "BGRX")


def image_digest(image: Image.Image) -> str:
    """sha256 of the image's RGB pixels (size included): names it in manifests."""
    rgb = image.convert("RGB")
    return hashlib.sha256(b"%dx%d:" % rgb.size + rgb.tobytes()).hexdigest()
