"""``vm.audio`` against the small Spice server on loopback (tests/hostile_spice.py): a capture
of the frames it plays, laid on their DATA times with the gap it leaves; garbage on the
playback channel (a mode never announced, an oversized message) fails that capture alone
with a typed error, Main and Inputs go on, and the next capture links the channel again."""

from __future__ import annotations

import struct
import time
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path

import numpy as np
import pytest

from atp_notebook.errors import ChannelClosed
from atp_notebook.session import Vm, connect
from atp_notebook.spice.audio_clip import tone
from atp_notebook.spice.proto.constants import ChannelType
from atp_notebook.spice.proto.playback import (
    AUDIO_MAX_MESSAGE,
    PLAYBACK_DATA,
    PLAYBACK_MODE,
    PLAYBACK_START,
    PLAYBACK_STOP,
    PLAYBACK_VOLUME,
)
from tests.hostile_spice import Gate, HostileSpiceServer, Raw, Send, ServerThread, Step

TIMEOUT = 10.0
MINI = struct.Struct("<HI")
TONE = tone(1000, 0.1)  # 10 frames of 480


def frames(start_ms: int, late_after: int | None = None, late_ms: int = 0) -> list[Step]:
    raw = TONE.samples.astype("<i2").tobytes()
    steps: list[Step] = []
    for i in range(10):
        time_ms = start_ms + 10 * i + (late_ms if late_after is not None and i >= late_after
                                       else 0)
        steps.append(Send(PLAYBACK_DATA, struct.pack("<I", time_ms) + raw[i * 1920:(i + 1) * 1920]))
    return steps


HELLO: list[Step] = [Send(PLAYBACK_MODE, struct.pack("<IH", 1, 1)),
                     Send(PLAYBACK_VOLUME, struct.pack("<BHH", 2, 100, 200))]
START: list[Step] = [Send(PLAYBACK_START, struct.pack("<IHII", 2, 1, 48000, 500))]


def harness(tmp_path: Path, playback: Sequence[Sequence[Step]]) -> Iterator[
        tuple[ServerThread, Vm]]:
    server = HostileSpiceServer(playback=playback)
    with ServerThread(server) as thread:
        config = tmp_path / "atp.yaml"
        config.write_text("transport:\n  spice:\n    vms:\n    - vm_id: hostile\n"
                          f"      server_addr: 127.0.0.1\n      port: {server.port}\n")
        session = connect(config)
        try:
            yield thread, session.vm("hostile")
        finally:
            session.close()


def wait_for(predicate: Callable[[], bool], what: str) -> None:
    """Poll a client-side condition (the server's wait_until sees only its own events)."""
    deadline = time.monotonic() + TIMEOUT
    while not predicate():
        assert time.monotonic() < deadline, f"no {what} within {TIMEOUT} s ({predicate})"
        time.sleep(0.01)


def main_and_inputs_live(thread: ServerThread, vm: Vm) -> None:
    vm.press("shift", timeout=TIMEOUT)  # Inputs (and Main, opened first)
    assert len(thread.run(thread.server.ping(ChannelType.MAIN, count=2))) == 2


@pytest.fixture
def gapped(tmp_path: Path) -> Iterator[tuple[ServerThread, Vm]]:
    script = [*HELLO, Gate(), *START, *frames(1000, late_after=5, late_ms=200),
              Send(PLAYBACK_STOP)]
    yield from harness(tmp_path, [script])


def test_capture_lays_frames_on_the_server_clock_with_the_gap(
        gapped: tuple[ServerThread, Vm]) -> None:
    thread, vm = gapped
    capture = vm.audio.start_capture(timeout=TIMEOUT)
    thread.call(thread.server.open_gate)
    wait_for(lambda: capture.frames_seen >= 4800 + 9600, "the frames")
    clip = capture.stop()
    assert clip.rate == 48000 and clip.channels == 2
    assert [(g.at_s, round(g.length_s, 3)) for g in clip.gaps] == [(0.05, 0.2)]
    assert np.array_equal(clip.samples[:2400], TONE.samples[:2400])
    assert not clip.samples[2400:2400 + 9600].any()
    assert np.array_equal(clip.samples[12000:], TONE.samples[2400:])
    assert clip.server_time_ms == 1000 and capture.first_sound is not None
    state = vm.audio.playback
    assert state.open and state.mode == "RAW" and state.volumes == (100, 200)


@pytest.fixture
def hostile(tmp_path: Path) -> Iterator[tuple[ServerThread, Vm]]:
    garbage_mode = [*HELLO, Gate(), *START, *frames(0)[:3],
                    Send(PLAYBACK_MODE, struct.pack("<IH", 9, 3))]  # OPUS: never announced
    oversized = [*HELLO, Gate(), Raw(MINI.pack(PLAYBACK_DATA, AUDIO_MAX_MESSAGE + 1))]
    fine = [*HELLO, Gate(), *START, *frames(0)]
    yield from harness(tmp_path, [garbage_mode, oversized, fine])


def test_garbage_fails_the_capture_alone_and_the_next_one_relinks(
        hostile: tuple[ServerThread, Vm]) -> None:
    thread, vm = hostile
    main_and_inputs_live(thread, vm)
    for why in ("OPUS", "larger|limit|size"):
        capture = vm.audio.start_capture(timeout=TIMEOUT)
        thread.call(thread.server.open_gate)
        wait_for(lambda: not vm.audio.playback.open, "the playback channel's end")
        with pytest.raises(ChannelClosed, match=f"playback channel ended.*({why})"):
            capture.stop()
        main_and_inputs_live(thread, vm)
        thread.call(thread.server._gate.clear)
    capture = vm.audio.start_capture(timeout=TIMEOUT)
    thread.call(thread.server.open_gate)
    wait_for(lambda: capture.frames_seen >= 4800, "the frames")
    clip = capture.stop()
    assert np.array_equal(clip.samples, TONE.samples) and clip.gaps == ()
