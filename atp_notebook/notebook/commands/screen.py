"""``%screenshot``: the VM's screen as drawn from its Spice display channel.

Forms::

    %screenshot VM [--region X,Y,W,H] [--channel N] [--save FILE]

The result shows the picture (``image/png``) with one stable line of text (nbval compares
the text, never the image); ``.value`` is the PIL image. ``--channel`` picks another display
channel (a second head), ``--save`` also writes the picture to FILE (PNG, or any format
PIL knows by the suffix).

Example::

    parse_screenshot_line("atp-vm1 --region 0,0,200,100")
    # Screenshot(vm=VmRef('atp-vm1'), region=(0, 0, 200, 100), channel=0, save=None)
"""

from __future__ import annotations

import argparse
import io
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from PIL import Image

from atp_notebook.notebook.commands.words import (
    OptionParser,
    VmRef,
    VmSelector,
    split_args,
    usage,
)
from atp_notebook.notebook.results import Result
from atp_notebook.session import Vm

SCREENSHOT_USAGE = "%screenshot VM [--region X,Y,W,H] [--channel N] [--save FILE]"


@dataclass(frozen=True)
class Screenshot:
    vm: VmRef
    region: tuple[int, int, int, int] | None = None
    channel: int = 0
    save: Path | None = None


def _region(text: str) -> tuple[int, int, int, int]:
    parts = text.split(",")
    try:
        x, y, w, h = (int(p) for p in parts)
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"{text!r} is not X,Y,W,H (four whole numbers, e.g. 0,0,200,100)") from None
    if x < 0 or y < 0 or w <= 0 or h <= 0:
        raise argparse.ArgumentTypeError(f"{text!r}: X and Y >= 0, W and H > 0")
    return x, y, w, h


def _channel(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a display channel id") from None
    if not 0 <= value <= 255:
        raise argparse.ArgumentTypeError(f"{text!r}: a display channel id is 0..255")
    return value


def parse_screenshot_line(line: str, vms: VmSelector | None = None) -> Screenshot:
    """What a ``%screenshot`` line asks; UsageError (one line + hint) otherwise."""
    vm, rest = (vms or VmSelector()).take(line, SCREENSHOT_USAGE)
    parser = OptionParser("%screenshot", SCREENSHOT_USAGE)
    parser.add_argument("--region", type=_region)
    parser.add_argument("--channel", type=_channel, default=0)
    parser.add_argument("--save", type=Path)
    options = parser.parse(split_args(rest, SCREENSHOT_USAGE))
    if options.save is not None and options.save.suffix.lower().lstrip(".") not in {
            e.lstrip(".") for e in Image.registered_extensions()}:
        raise usage(f"--save {str(options.save)!r}: no image format for that suffix",
                    "end the file name in .png (or .jpg, .bmp, ...)")
    return Screenshot(vm, options.region, options.channel, options.save)


class ImageResult(Result):
    """A picture with one stable line of text; ``.value`` is the PIL image."""

    def __init__(self, image: Image.Image, caption: str) -> None:
        self.value = image
        self.caption = caption

    def text(self) -> str:
        return self.caption

    def mimebundle(self) -> dict[str, Any]:
        png = io.BytesIO()
        self.value.save(png, format="PNG", compress_level=1)
        # no text/html: an inline image there would change on every run (nbval compares it)
        return {"text/plain": self.text(), "image/png": png.getvalue()}


def run_screenshot(request: Screenshot, vm: Vm) -> Result:
    image = vm.display_channel(request.channel).screenshot(request.region)
    where = "" if request.channel == 0 else f" display {request.channel}"
    region = "" if request.region is None else " region {},{},{},{}".format(*request.region)
    note = f"{request.vm}{where}: screenshot {image.width}x{image.height}{region}"
    if request.save is not None:
        image.save(request.save)
        note += f", saved to {request.save}"
    return ImageResult(image, note)
