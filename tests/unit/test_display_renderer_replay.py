"""DisplayRenderer on what the lab's real spice-server sent (QEMU 7.2 / spice-server 0.15.1):

- the golden codec corpus (tests/fixtures/spice/corpus): each setting's display messages of
  both channels, in arrival order, into two renderers sharing one GLZ window, end on QEMU's
  screendump of each head — exactly for the lossless settings, within the JPEG tolerance
  of the codec corpus test for jpeg — and every draw takes the fast path;
- the same with each channel on its own thread, channel 1 first (GLZ images wait for the
  channel-0 images they copy from);
- atp-vm1's opening session renders its screendump, the blinking cursor on or off;
- the streaming session's MJPEG frames are decoded into the stream's band.
"""

from __future__ import annotations

import math
import threading

import numpy as np
import pytest
import simplejpeg
from PIL import Image

from atp_notebook.spice.codecs import GlzWindow
from atp_notebook.spice.display.renderer import DisplayRenderer
from atp_notebook.spice.proto.constants import ChannelType
from atp_notebook.spice.proto.display import DisplayProtocol, DrawCopy
from atp_notebook.spice.proto.display_monitors import Head
from atp_notebook.spice.proto.display_stream import StreamData
from tests.corpus import CorpusSetting, available_settings, display_events, load_setting
from tests.unit.test_codecs_corpus import GLZ_SETTINGS, JPEG_TOLERANCE
from tests.unit.test_spice_display_session import FIXTURES, SESSION, STREAMING, session_bytes

SCREENDUMP = FIXTURES / "atp-vm1-first-image-type101-720x400.screendump.png"


def renderers(setting: CorpusSetting, wait: float = 5.0) -> dict[int, DisplayRenderer]:
    """One renderer per display channel, sharing the session's GLZ window."""
    window = int(setting.manifest["client"].get("glz_window") or 0)
    glz = GlzWindow(window, wait_timeout=wait) if window else None
    return {ch: DisplayRenderer(glz, glz_timeout=wait) for ch in (0, 1)}


def rgb(r: DisplayRenderer) -> np.ndarray:
    assert r.primary is not None
    return r.primary.pixels[..., 2::-1]  # B,G,R,X -> R,G,B


def check_heads(setting: CorpusSetting, rs: dict[int, DisplayRenderer]) -> None:
    for channel, r in rs.items():
        got = rgb(r).astype(np.int64)
        ref = np.asarray(setting.reference(channel), dtype=np.int64)
        if setting.name != "jpeg":
            assert np.array_equal(got, ref), f"{setting.name}: head {channel} differs"
            continue
        diff = np.abs(got - ref)
        psnr = 20 * math.log10(255 / math.sqrt(float(np.mean(diff ** 2))))
        assert psnr >= JPEG_TOLERANCE[0], f"head {channel}: PSNR {psnr:.1f} dB"
        assert diff.mean(axis=(0, 1)).max() <= JPEG_TOLERANCE[1], f"head {channel}"


@pytest.mark.parametrize("name", available_settings())
def test_the_corpus_renders_each_heads_screendump(name: str) -> None:
    setting = load_setting(name)
    rs = renderers(setting)
    for channel, event in display_events(setting):
        rs[channel].apply(event)
    check_heads(setting, rs)
    # what QEMU's qxl sends is all fast path: whole images onto boxes they fill
    assert sum(r.fast_copies for r in rs.values()) == len(setting.draws)


@pytest.mark.parametrize("name", GLZ_SETTINGS)
def test_each_channel_on_its_own_thread_channel_one_first(name: str) -> None:
    setting = load_setting(name)
    rs = renderers(setting, wait=30.0)
    events = display_events(setting)
    errors: list[BaseException] = []

    def run(channel: int) -> None:
        try:
            for ch, event in events:
                if ch == channel:
                    rs[channel].apply(event)
        except BaseException as exc:  # reported by the main thread
            errors.append(exc)

    second = threading.Thread(target=run, args=(1,))
    second.start()
    run(0)
    second.join(60)
    assert not second.is_alive() and errors == []
    check_heads(setting, rs)


def test_the_opening_session_renders_the_screendump_with_the_cursor_blinking() -> None:
    events = DisplayProtocol(ChannelType.DISPLAY).receive_data(session_bytes(SESSION))
    reference = np.asarray(Image.open(SCREENDUMP).convert("RGB"))
    r = DisplayRenderer()
    draws = 0
    for event in events:
        r.apply(event)
        if not isinstance(event, DrawCopy):
            continue
        draws += 1
        differs = np.argwhere((rgb(r) != reference).any(axis=2))
        if draws % 2 == 0:  # the screendump caught the cursor on; every 2nd cursor draw
            assert differs.size == 0, f"after draw {draws}"
        else:  # the screen and cursor-off draws differ in the cursor cell (9x2 at 93, 99)
            assert differs.size and differs.min(axis=0).tolist() == [93, 99]
            assert differs.max(axis=0).tolist() == [94, 107]
    assert draws >= 3
    assert r.monitors is not None and r.monitors.heads == (Head(0, 0, 720, 400, 0, 0, 0),)


def test_the_streaming_session_draws_its_mjpeg_frames_into_the_band() -> None:
    events = DisplayProtocol(ChannelType.DISPLAY).receive_data(session_bytes(STREAMING))
    r = DisplayRenderer()
    frames = [e for e in events if isinstance(e, StreamData)]
    before = None
    for event in events:
        if isinstance(event, StreamData) and before is None:
            assert r.primary is not None
            before = r.primary.pixels.copy()
        r.apply(event)
    assert r.stream_frames == len(frames) == 3
    assert r.primary is not None and before is not None
    band = slice(100, 116)
    last = simplejpeg.decode_jpeg(frames[-1].data, "BGRX").copy()
    last[..., 3] = 0
    assert np.array_equal(r.primary.pixels[band], last)
    assert np.array_equal(r.primary.pixels[:100], before[:100])
    assert np.array_equal(r.primary.pixels[116:], before[116:])
    assert not r.streams.streams  # destroyed at the end
