"""Full 1024x768 frames as the lab's real Spice server compresses them, for bench_codecs.

:func:`capture_frames` starts the display VM of a setting (atp_notebook/lab/display_vms.py),
links Main and display channel 0 (one GLZ window; LZ4 announced and preferred for the
``lz4`` setting), writes each known image to fb0 whole and waits until the screen is still,
and returns every DRAW_COPY image in arrival order, labelled with the known image on screen
(:data:`INITIAL` for the screens before the first one: they are decoded, so that GLZ chains
hold, but not reported). Each known image must arrive whole: the function checks that the
images labelled with it cover the screen.
"""

from __future__ import annotations

import time
from collections.abc import Sequence

from atp_notebook.lab.display_capture import QUIET_S, Recorder, lab_lock
from atp_notebook.lab.display_vms import DisplayGuest, display_vm, setting_named
from atp_notebook.lab.known_images import HEIGHT, WIDTH, known_image
from atp_notebook.loop import get_loop
from atp_notebook.session import connect
from atp_notebook.spice.endpoint import SpiceEndpoint
from atp_notebook.spice.proto.constants import ChannelType, DisplayCap, ImageCompression
from atp_notebook.spice.proto.display import DisplayOptions, DrawCopy, SpiceImage
from atp_notebook.spice.vm import SpiceVmConnection

INITIAL = "initial"
# bench setting -> (display VM setting, extra display caps, preferred compression)
SETTINGS: dict[str, tuple[str, tuple[DisplayCap, ...], ImageCompression | None]] = {
    "quic": ("quic", (), None),
    "lz": ("lz", (), None),
    "glz": ("glz", (), None),
    "lz4": ("auto_glz", (DisplayCap.LZ4_COMPRESSION,), ImageCompression.LZ4),
    "jpeg": ("jpeg", (), None),
    "zlib": ("zlib", (), None),
}


def capture_frames(setting: str, images: Sequence[str],
                   glz_window: int) -> list[tuple[SpiceImage, str]]:
    vm_setting, caps, preferred = SETTINGS[setting]
    options = DisplayOptions(caps=caps, glz_dictionary_id=1, glz_window=glz_window,
                             preferred_compression=preferred)
    session = connect()
    try:
        with lab_lock(), display_vm(setting_named(vm_setting)) as dvm:
            guest = DisplayGuest(session.vm(dvm.name))
            guest.framebuffers_on()
            guest.show(None, 0)  # black, console unbound
            known = {name: known_image(name) for name in images}
            for image in known.values():
                guest.image_path(image)  # uploaded before the recording starts
            time.sleep(QUIET_S)
            spice = SpiceVmConnection(dvm.name,
                                      SpiceEndpoint(dvm.spice_host, port=dvm.spice_port),
                                      display=options)
            recorder = Recorder()
            loop = get_loop()
            starts: list[tuple[int, str]] = []
            with spice.add_listener(recorder):
                try:
                    loop.call(spice.open_channel(ChannelType.DISPLAY, 0), 30)
                    recorder.wait_still()
                    for name, image in known.items():
                        first = recorder.count()
                        starts.append((first, name))
                        guest.show(image, 0)
                        recorder.wait_still(after=first + 1)
                finally:
                    loop.call(spice.close(), 60)
    finally:
        session.close()
    return _labelled(recorder, starts)


def _labelled(recorder: Recorder, starts: list[tuple[int, str]]) -> list[tuple[SpiceImage, str]]:
    out: list[tuple[SpiceImage, str]] = []
    covered: dict[str, int] = {}
    for seq, (_t, channel, event) in enumerate(recorder.events):
        if channel != 0 or not isinstance(event, DrawCopy) or event.image is None:
            continue
        label = INITIAL
        for first, name in starts:
            if seq >= first:
                label = name
        out.append((event.image, label))
        if label != INITIAL:
            covered[label] = covered.get(label, 0) + event.box.width * event.box.height
    for _first, name in starts:
        if covered.get(name, 0) < WIDTH * HEIGHT:
            raise RuntimeError(f"the server's images of {name} cover {covered.get(name, 0)}"
                               f" of {WIDTH * HEIGHT} pixels")
    return out
