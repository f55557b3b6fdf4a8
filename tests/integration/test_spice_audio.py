"""Spice Playback and Record against the lab's real QEMU / spice-server (issue 16, sound).

One audio VM boots for the module (``AUDIO_SETTING``: the VGA text console and an ich6 HDA
card wired to Spice); its guest loads the driver with ``atp-audio-on``. Checked: a 1 kHz
tone written through QGA and played with aplay arrives through Playback with its frequency
(FFT) and no gap longer than :data:`GAP_BOUND_S`; a 440 Hz tone sent through Record is
recorded by arecord in the guest, read back through QGA, with its frequency; killing
either channel under its user leaves Main, Inputs and Display working and it reopens on
its next use; bad input is a typed error of that call. Run it under the lab lock.
"""

from __future__ import annotations

import time
from collections.abc import Iterator

import numpy as np
import pytest

from atp_notebook.errors import ChannelClosed, InvalidArgument, OperationTimeout
from atp_notebook.lab.display_vms import AUDIO_SETTING, display_vm
from atp_notebook.lab.guest_audio import AUDIO_DEVICE
from atp_notebook.lab.paths import LabPaths
from atp_notebook.loop import get_loop
from atp_notebook.session import Vm, connect
from atp_notebook.spice.audio_clip import read_wav, tone
from atp_notebook.spice.proto.constants import ChannelType
from tests.conftest import require_lab

TIMEOUT = 60.0
# the longest silence tolerated inside a played tone: measured 0 gaps on the TCG guest;
# 100 ms (ten server frames) leaves room for a busy 2-core host
GAP_BOUND_S = 0.1
TONE_WAV = "/tmp/atp-tone.wav"  # in the guest
RECORDED_WAV = "/tmp/atp-recorded.wav"  # in the guest
FREQUENCY_TOLERANCE_HZ = 3.0


@pytest.fixture(scope="module")
def vm(lab_paths: LabPaths) -> Iterator[Vm]:
    require_lab(lab_paths)
    with connect(lab_paths.config_file) as session, display_vm(AUDIO_SETTING) as dvm:
        audio_vm = session.vm(dvm.name)
        on = audio_vm.exec(["/usr/bin/atp-audio-on"], timeout=TIMEOUT)
        on.check()
        assert on.stdout == b"pcmC0D0p pcmC0D0c\n"
        audio_vm.write_file(TONE_WAV, tone(1000, 2.0).to_wav())
        yield audio_vm


def play_tone(vm: Vm) -> None:
    vm.exec(["aplay", "-q", "-D", AUDIO_DEVICE, TONE_WAV], timeout=TIMEOUT).check()


def start_arecord(vm: Vm, seconds: int) -> int:
    """arecord in the guest, in the background (guest-exec returns at once): its pid."""
    started = vm.qga("guest-exec", path="/usr/bin/arecord", arg=[
        "-q", "-D", AUDIO_DEVICE, "-f", "S16_LE", "-r", "48000", "-c", "2", "-d", str(seconds),
        RECORDED_WAV])
    return int(started["pid"])


def wait_exited(vm: Vm, pid: int) -> int:
    deadline = time.monotonic() + TIMEOUT
    while time.monotonic() < deadline:
        status = vm.qga("guest-exec-status", pid=pid)
        if status.get("exited"):
            return int(status.get("exitcode", -1))
        time.sleep(0.2)
    raise AssertionError(f"guest process {pid} still running after {TIMEOUT} s")


def test_a_tone_played_in_the_guest_arrives_with_its_frequency_and_no_gap(vm: Vm) -> None:
    with vm.audio.start_capture(timeout=TIMEOUT) as capture:
        assert vm.audio.playback.open and vm.audio.playback.mode == "RAW"
        play_tone(vm)
        time.sleep(0.5)  # the last frames are on their way
    clip = capture.clip
    assert clip is not None
    assert clip.rate == 48000 and clip.channels == 2
    assert clip.duration >= 1.9  # a 2 s tone; the server may drop one frame at the start
    assert clip.dominant_frequency(0) == pytest.approx(1000, abs=FREQUENCY_TOLERANCE_HZ)
    assert clip.dominant_frequency(1) == pytest.approx(1000, abs=FREQUENCY_TOLERANCE_HZ)
    assert clip.longest_gap <= GAP_BOUND_S, clip.gaps
    assert clip.peak() > 8000  # the tone's amplitude is half scale (16384)
    assert not vm.audio.playback.started  # aplay ended: the server said STOP
    assert clip.to_wav()[:4] == b"RIFF"


def test_a_tone_sent_through_record_is_recorded_in_the_guest(vm: Vm) -> None:
    pid = start_arecord(vm, 3)
    sent = vm.audio.send(tone(440, 2.5), timeout=TIMEOUT)
    assert sent == 120_000
    assert wait_exited(vm, pid) == 0
    recorded = read_wav(vm.read_file(RECORDED_WAV))
    assert recorded.rate == 48000 and recorded.duration == pytest.approx(3.0, abs=0.05)
    assert recorded.dominant_frequency() == pytest.approx(440, abs=FREQUENCY_TOLERANCE_HZ)
    assert recorded.peak() > 8000
    assert vm.audio.record.open and vm.audio.record.mode == "RAW"


def others_live(vm: Vm) -> None:
    vm.screenshot(timeout=TIMEOUT)
    vm.press("shift", timeout=TIMEOUT)
    assert {(r.type, r.status) for r in vm.spice.channels()} >= {
        ("main", "open"), ("inputs", "open"), ("display", "open")}


def test_a_killed_playback_channel_fails_alone_and_reopens(vm: Vm) -> None:
    others_live(vm)
    capture = vm.audio.start_capture(timeout=TIMEOUT)
    channel = vm.spice.channel(ChannelType.PLAYBACK)
    get_loop().call(channel.abort(ChannelClosed("killed by the test")), timeout=TIMEOUT)
    with pytest.raises(ChannelClosed, match="playback channel ended during the capture"):
        capture.stop()
    assert not vm.audio.playback.open
    others_live(vm)
    with vm.audio.start_capture(timeout=TIMEOUT) as again:
        play_tone(vm)
        time.sleep(0.5)
    assert again.clip is not None
    assert again.clip.dominant_frequency() == pytest.approx(1000, abs=FREQUENCY_TOLERANCE_HZ)


def test_a_killed_record_channel_fails_alone_and_reopens(vm: Vm) -> None:
    others_live(vm)
    vm.spice  # noqa: B018 - connected
    get_loop().call(vm.spice.open_channel(ChannelType.RECORD, timeout=TIMEOUT),
                    timeout=TIMEOUT)
    channel = vm.spice.channel(ChannelType.RECORD)
    get_loop().call(channel.abort(ChannelClosed("killed by the test")), timeout=TIMEOUT)
    assert not vm.audio.record.open
    others_live(vm)
    pid = start_arecord(vm, 2)
    assert vm.audio.send(tone(440, 1.5), timeout=TIMEOUT) == 72_000
    assert wait_exited(vm, pid) == 0
    recorded = read_wav(vm.read_file(RECORDED_WAV))
    assert recorded.dominant_frequency() == pytest.approx(440, abs=FREQUENCY_TOLERANCE_HZ)


def test_bad_input_is_an_error_of_the_call_only(vm: Vm) -> None:
    with pytest.raises(InvalidArgument, match="dtype"):
        vm.audio.send(np.arange(10), timeout=TIMEOUT)
    with pytest.raises(InvalidArgument, match="not a PCM WAV"):
        vm.audio.send(b"not a wav file", timeout=TIMEOUT)
    with pytest.raises(InvalidArgument, match="capture for 0 s"):
        vm.audio.capture(0)
    # nothing records in the guest: the send waits for a START that never comes
    with pytest.raises(OperationTimeout, match="0 of 24000 frames sent and the guest is "
                                               "not recording"):
        vm.audio.send(tone(440, 0.5), timeout=3)
    others_live(vm)
