"""Capture the golden codec corpus (issue 12) from the lab's real Spice server: one display VM
per compression setting, known images written to its two qxl framebuffers, every display
message recorded, QEMU's screendump of each head as the reference.

Per setting (each under the lab lock, one VM at a time):

1. start ``atp-disp-<vm setting>`` (atp_notebook/lab/display_vms.py), bring up fb0 and fb1,
   clear both (the text console is unbound) and upload the known image;
2. link Main and display channels 0 and 1 with DISPLAY_INIT naming one GLZ dictionary for
   both (so channel 1's GLZ images may copy from channel 0's), plus the setting's caps and
   compression preference; wait until the initial screens (MARK) are in and all is still;
3. write the ``mixed`` image to fb0 band by band (one DRAW_COPY each: text, gradients,
   photo + flat, radial + text), then its top half (text and gradients again) to fb1 in
   one write, waiting for stillness after each write;
4. take QEMU's screendump of both heads: each must equal what was written (the known image
   on black), independently of Spice;
5. write ``tests/fixtures/spice/corpus/<setting>/`` (see tests/corpus.py for the layout).

Run on a machine whose lab is up (a few minutes for all settings)::

    .venv/bin/python scripts/capture-codec-corpus.py [SETTING ...]

Settings: the server's image compressions (auto_glz auto_lz quic glz lz off), jpeg
(jpeg-wan-compression=always), zlib (zlib-glz-wan-compression=always) and lz4 (the client
announces LZ4 and prefers it). The script ends with a table of image types per setting.
"""

from __future__ import annotations

import argparse
import gzip
import json
import shutil
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))  # for tests.corpus, which reads what this writes

from PIL import Image  # noqa: E402

from atp_notebook.lab.display_capture import (  # noqa: E402
    QUIET_S,
    STEP_TIMEOUT_S,
    Recorder,
    lab_lock,
)
from atp_notebook.lab.display_vms import DisplayGuest, display_vm, setting_named  # noqa: E402
from atp_notebook.lab.known_images import MIXED_BANDS, image_digest, known_image  # noqa: E402
from atp_notebook.loop import get_loop  # noqa: E402
from atp_notebook.session import Session, connect  # noqa: E402
from atp_notebook.spice.endpoint import SpiceEndpoint  # noqa: E402
from atp_notebook.spice.proto.constants import (  # noqa: E402
    ChannelType,
    DisplayCap,
    ImageCompression,
    ImageType,
)
from atp_notebook.spice.proto.display import (  # noqa: E402
    DisplayOptions,
    DisplayProtocol,
    DisplayReset,
    DrawCopy,
    Mark,
    ModeChanged,
    SurfaceCreated,
    SurfaceDestroyed,
)
from atp_notebook.spice.vm import SpiceVmConnection  # noqa: E402
from tests.corpus import CORPUS_DIR, REFERENCES_DIR, glz_header, glz_image_distances, glz_stream  # noqa: E402

# pixels; both display channels name dictionary 1. Far more than two screens' worth, so no
# image of this capture leaves the window (an image must also be smaller than the window)
GLZ_WINDOW = 1 << 23
IMAGE = "mixed"
# (fb, (first row, rows) or None for all): fb0 band by band, then on fb1 content that
# channel 1's GLZ images can copy from channel 0's (a second whole screen would double the
# corpus where nothing copies: LZ, QUIC, BITMAP)
PLAN: tuple[tuple[int, tuple[int, int] | None], ...] = (
    *((0, band) for band in MIXED_BANDS),
    (1, (0, MIXED_BANDS[1][0] + MIXED_BANDS[1][1])),
)
GZIP_IF_SAVES = 0.1  # store a record gzip'd when that saves at least a tenth


@dataclass(frozen=True)
class Capture:
    name: str
    vm_setting: str
    caps: tuple[DisplayCap, ...] = ()
    preferred: ImageCompression | None = None

    def options(self) -> DisplayOptions:
        return DisplayOptions(caps=self.caps, glz_dictionary_id=1, glz_window=GLZ_WINDOW,
                              preferred_compression=self.preferred)


CAPTURES = {c.name: c for c in (
    *(Capture(n, n) for n in ("auto_glz", "auto_lz", "quic", "glz", "lz", "off")),
    Capture("jpeg", "jpeg"),
    Capture("zlib", "zlib"),
    Capture("lz4", "auto_glz", caps=(DisplayCap.LZ4_COMPRESSION,),
            preferred=ImageCompression.LZ4),
)}


def _rect(r: Any) -> list[int]:
    return [r.top, r.left, r.bottom, r.right]


def event_entry(seq: int, t: float, channel: int, event: object) -> dict[str, Any] | None:
    base: dict[str, Any] = {"seq": seq, "t_ms": round(t * 1000, 1), "channel": channel}
    if isinstance(event, SurfaceCreated):
        return base | {"kind": "surface_create", "surface": event.surface_id,
                       "width": event.width, "height": event.height, "format": event.format,
                       "primary": event.primary}
    if isinstance(event, SurfaceDestroyed):
        return base | {"kind": "surface_destroy", "surface": event.surface_id}
    if isinstance(event, ModeChanged):
        return base | {"kind": "mode", "width": event.width, "height": event.height}
    if isinstance(event, Mark | DisplayReset):
        return base | {"kind": "mark" if isinstance(event, Mark) else "reset"}
    if not isinstance(event, DrawCopy):
        return None
    entry = base | {"kind": "draw_copy", "surface": event.surface_id,
                    "box": _rect(event.box),
                    "clip": None if event.clip is None else [_rect(c) for c in event.clip],
                    "src_area": _rect(event.src_area), "rop": event.rop,
                    "scale_mode": event.scale_mode, "mask_flags": event.mask_flags,
                    "has_mask": event.has_mask, "image": None}
    image = event.image
    if image is not None:
        entry["image"] = {"id": image.id, "type": image.type,
                          "type_name": image_type_name(image.type), "flags": image.flags,
                          "width": image.width, "height": image.height,
                          "payload_offset": image.at,
                          "payload_bytes": len(image.body) - image.at}
    return entry


def image_type_name(value: int) -> str:
    try:
        return ImageType(value).name
    except ValueError:
        return f"TYPE_{value}"


def write_record(directory: Path, entry: dict[str, Any], body: bytes) -> int:
    """Store a DRAW_COPY body; the bytes it takes on disk."""
    name = f"records/{entry['seq']:04d}-ch{entry['channel']}-" \
           f"{entry['image']['type_name'].lower()}.bin"
    packed = gzip.compress(body, 9, mtime=0)
    if len(packed) <= len(body) * (1 - GZIP_IF_SAVES):
        name, body = name + ".gz", packed
    (directory / name).write_bytes(body)
    entry["file"] = name
    return len(body)


def glz_summary(events: list[dict[str, Any]], draws: dict[int, DrawCopy]) -> dict[str, Any]:
    """GLZ image ids per channel and, per GLZ image, the ids it copies from; references to
    an image that arrived on the other display channel are listed apart."""
    channel_of: dict[int, int] = {}
    images = []
    for entry in events:
        draw = draws.get(entry["seq"])
        if draw is None or draw.image is None or draw.image.type not in (
                ImageType.GLZ_RGB, ImageType.ZLIB_GLZ_RGB):
            continue
        stream = glz_stream(draw.image)
        header = glz_header(stream)
        channel_of[header.image_id] = entry["channel"]
        refs = sorted(header.image_id - d for d in glz_image_distances(stream))
        entry["glz"] = {"image_id": header.image_id, "win_head_dist": header.win_head_dist,
                        "references": refs}
        images.append((entry, header.image_id, refs))
    cross = [{"seq": e["seq"], "channel": e["channel"], "image_id": i,
              "references_from_other_channel": [r for r in refs
                                                if channel_of.get(r, e["channel"])
                                                != e["channel"]]}
             for e, i, refs in images]
    return {"images": len(images),
            "cross_channel": [c for c in cross if c["references_from_other_channel"]]}


def save_reference(image: Image.Image, what: str) -> str:
    REFERENCES_DIR.mkdir(parents=True, exist_ok=True)
    name = f"{what}-{image_digest(image)[:12]}.png"
    path = REFERENCES_DIR / name
    if not path.exists():
        image.save(path, optimize=True)
    return f"../references/{name}"


@dataclass
class Captured:
    recorder: Recorder
    steps: list[dict[str, Any]]
    unknown: dict[str, dict[str, int]]  # channel -> message type -> count
    boot_seconds: float
    vm_seconds: float


def capture(spec: Capture, session: Session) -> dict[str, Any]:
    setting = setting_named(spec.vm_setting)
    known = known_image(IMAGE)
    began = time.monotonic()
    with lab_lock(), display_vm(setting) as dvm:
        vm = session.vm(dvm.name)
        guest = DisplayGuest(vm)
        fbs = guest.framebuffers_on()
        if [f.name for f in fbs] != ["fb0", "fb1"]:
            raise SystemExit(f"{dvm.name}: framebuffers {fbs}, wanted fb0 and fb1")
        for fb in (0, 1):
            guest.show(None, fb)  # black, console unbound: tiny initial images
        guest.image_path(known)  # uploaded before the capture starts
        time.sleep(QUIET_S)

        spice = SpiceVmConnection(dvm.name, SpiceEndpoint(dvm.spice_host, port=dvm.spice_port),
                                  display=spec.options())
        recorder = Recorder()
        steps: list[dict[str, Any]] = []
        loop = get_loop()
        with spice.add_listener(recorder):
            try:
                for channel_id in (0, 1):
                    loop.call(spice.open_channel(ChannelType.DISPLAY, channel_id), 30)
                deadline = time.monotonic() + STEP_TIMEOUT_S
                while recorder.marks() != {0, 1} and time.monotonic() < deadline:
                    time.sleep(0.05)
                recorder.wait_still()
                for fb, rows in PLAN:
                    first = recorder.count()
                    guest.show(known, fb, rows)
                    recorder.wait_still(after=first + 1)
                    steps.append({"action": "show", "image": IMAGE, "fb": fb,
                                  "rows": list(rows) if rows else None,
                                  "first_seq": first, "end_seq": recorder.count()})
                heads = [vm.screendump(head).convert("RGB") for head in (0, 1)]
                unknown = {}
                for channel_id in (0, 1):
                    protocol = spice.channel(ChannelType.DISPLAY, channel_id).protocol
                    assert isinstance(protocol, DisplayProtocol)
                    unknown[str(channel_id)] = {str(k): v for k, v in
                                                protocol.metrics.unknown_types.items()}
            finally:
                loop.call(spice.close(), 60)
        vm_seconds = time.monotonic() - began
    for head, shot in enumerate(heads):
        if shot.tobytes() != expected_screen(known, head).tobytes():
            raise SystemExit(f"{spec.name}: QEMU's screendump of head {head} differs from "
                             f"what was written to fb{head}")
    return write_setting(spec, Captured(recorder, steps, unknown, dvm.boot_seconds,
                                        vm_seconds), known)


def expected_screen(known: Image.Image, fb: int) -> Image.Image:
    """What PLAN leaves on ``fb``: the rows written, black elsewhere."""
    screen = Image.new("RGB", known.size)
    for target, rows in PLAN:
        if target == fb:
            top, count = rows or (0, known.height)
            screen.paste(known.crop((0, top, known.width, top + count)), (0, top))
    return screen


def write_setting(spec: Capture, captured: Captured, known: Image.Image) -> dict[str, Any]:
    directory = CORPUS_DIR / spec.name
    if directory.exists():
        shutil.rmtree(directory)
    (directory / "records").mkdir(parents=True)
    events: list[dict[str, Any]] = []
    draws: dict[int, DrawCopy] = {}
    types: dict[str, dict[str, int]] = {}
    stored = 0
    for seq, (t, channel, event) in enumerate(captured.recorder.events):
        entry = event_entry(seq, t, channel, event)
        if entry is None:
            continue
        events.append(entry)
        if isinstance(event, DrawCopy) and event.image is not None:
            draws[seq] = event
            stored += write_record(directory, entry, event.image.body)
            tally = types.setdefault(entry["image"]["type_name"], {"count": 0, "bytes": 0})
            tally["count"] += 1
            tally["bytes"] += entry["image"]["payload_bytes"]
    glz = glz_summary(events, draws)
    setting = setting_named(spec.vm_setting)
    manifest = {
        "setting": spec.name,
        "server": {"vm": setting.vm_name, "image_compression": setting.image_compression,
                   "jpeg_wan_compression": setting.jpeg,
                   "zlib_glz_wan_compression": setting.zlib,
                   "streaming_video": setting.streaming},
        "client": {"display_caps": [c.name for c in spec.caps], "glz_dictionary_id": 1,
                   "glz_window": GLZ_WINDOW,
                   "preferred_compression": spec.preferred.name if spec.preferred else None},
        "known_image": {"name": IMAGE, "digest": image_digest(known),
                        "made_by": "atp_notebook.lab.known_images.known_image"},
        "references": {str(h): {"file": save_reference(expected_screen(known, h),
                                                        f"{IMAGE}-fb{h}"),
                                "head": h, "equals_screendump": True} for h in (0, 1)},
        "steps": captured.steps,
        "image_types": types,
        "glz": glz,
        "unknown_messages": captured.unknown,
        "timing": {"boot_s": round(captured.boot_seconds, 1),
                   "vm_s": round(captured.vm_seconds, 1)},
        "stored_bytes": stored,
        "events": events,
    }
    (directory / "manifest.json").write_text(json.dumps(manifest, indent=1) + "\n")
    return manifest


def summary_table(manifests: list[dict[str, Any]]) -> str:
    lines = ["| setting | image types: count (payload bytes) | GLZ images copying across "
             "channels | stored | VM time |", "|---|---|---|---|---|"]
    for m in manifests:
        kinds = ", ".join(f"{k} {v['count']} ({v['bytes']:,})"
                          for k, v in sorted(m["image_types"].items()))
        cross = len(m["glz"]["cross_channel"])
        glz = f"{cross} of {m['glz']['images']} GLZ" if m["glz"]["images"] else "-"
        lines.append(f"| {m['setting']} | {kinds} | {glz} | "
                     f"{m['stored_bytes'] // 1024} KiB | {m['timing']['vm_s']} s |")
    return "\n".join(lines)


README_HEAD = """# Golden codec corpus

What the lab's Spice server (QEMU 7.2, spice-server 0.15.1) sent on the two display channels
of a display VM per compression setting while the guest wrote the known `mixed` image
(atp_notebook/lab/known_images.py) to fb0 band by band and its top 352 rows to fb1; with
QEMU's screendump of each head in `references/`. Made by `scripts/capture-codec-corpus.py`;
read by `tests/corpus.py` (layout there); checked by `tests/unit/test_codecs_corpus.py`.

"""


def write_readme() -> str:
    manifests = [json.loads(p.read_text()) for p in sorted(CORPUS_DIR.glob("*/manifest.json"))]
    order = {name: i for i, name in enumerate(CAPTURES)}
    manifests.sort(key=lambda m: order.get(m["setting"], len(order)))
    table = summary_table(manifests)
    (CORPUS_DIR / "README.md").write_text(README_HEAD + table + "\n")
    return table


def main(argv: list[str]) -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("settings", nargs="*", metavar="SETTING",
                        help=f"default: all of {', '.join(CAPTURES)}")
    parser.add_argument("--readme-only", action="store_true",
                        help="only rewrite the corpus README from the manifests")
    args = parser.parse_args(argv)
    unknown = [n for n in args.settings if n not in CAPTURES]
    if unknown:
        parser.error(f"unknown setting {', '.join(unknown)}: one of {', '.join(CAPTURES)}")
    if not args.readme_only:
        session = connect()
        try:
            for name in args.settings or list(CAPTURES):
                manifest = capture(CAPTURES[name], session)
                print(summary_table([manifest]).splitlines()[-1], flush=True)
        finally:
            session.close()
    print(write_readme())


if __name__ == "__main__":
    main(sys.argv[1:])
