"""Audio clips: frames laid on the server's clock with their gaps, WAV both ways, the
tone helper's frequency by FFT, bad input refused, the notebook player."""

from __future__ import annotations

import numpy as np
import pytest

from atp_notebook.errors import InvalidArgument
from atp_notebook.spice.audio_clip import (
    AudioClip,
    ClipAssembler,
    as_clip,
    as_stereo,
    read_wav,
    tone,
)

RATE = 48000


def frames_of(clip: AudioClip, count: int = 480) -> list[bytes]:
    raw = clip.samples.astype("<i2").tobytes()
    step = count * 4
    return [raw[i:i + step] for i in range(0, len(raw), step)]


def test_contiguous_frames_make_the_clip_back_without_gaps() -> None:
    source = tone(1000, 0.5)
    asm = ClipAssembler(RATE, 2)
    for i, data in enumerate(frames_of(source)):
        # a burst: stamps run early and late by a few ms, as a TCG guest's do
        asm.add(5000 + 10 * i + (i % 3) * 4 - 4, data, arrived=100.0 + i)
    clip = asm.clip()
    assert clip.gaps == ()
    assert np.array_equal(clip.samples, source.samples)
    assert clip.first_arrival == 100.0 and clip.server_time_ms == 4996
    assert clip.dominant_frequency() == pytest.approx(1000, abs=3)


def test_a_late_frame_leaves_a_gap_of_silence() -> None:
    frames = frames_of(tone(440, 0.1))  # 10 frames of 10 ms
    asm = ClipAssembler(RATE, 2)
    for i, data in enumerate(frames):
        asm.add(1000 + 10 * i + (150 if i >= 5 else 0), data, arrived=0.0)
    clip = asm.clip()
    assert len(clip.gaps) == 1
    assert clip.gaps[0].at_s == pytest.approx(0.05)
    assert clip.gaps[0].length_s == pytest.approx(0.15)
    assert clip.longest_gap == pytest.approx(0.15)
    gap = clip.samples[2400:2400 + 7200]
    assert not gap.any() and len(clip.samples) == 4800 + 7200


def test_server_clock_wrap_is_no_gap() -> None:
    frames = frames_of(tone(440, 0.05))
    asm = ClipAssembler(RATE, 2)
    for i, data in enumerate(frames):
        asm.add((0xFFFFFFF0 + 10 * i) & 0xFFFFFFFF, data, arrived=0.0)
    assert asm.clip().gaps == ()


def test_wav_round_trip_and_player() -> None:
    clip = tone(1000, 0.2, channels=1)
    wav = clip.to_wav()
    back = read_wav(wav)
    assert back.rate == RATE and back.channels == 1
    assert np.array_equal(back.samples, clip.samples)
    html = clip.widget()._repr_html_()
    assert html.startswith("<audio controls") and "data:audio/wav;base64,UklGR" in html


def test_as_clip_takes_arrays_and_refuses_bad_ones() -> None:
    floats = as_clip(np.array([0.0, 1.0, -1.0, 2.0]), RATE)
    assert floats.samples[:, 0].tolist() == [0, 32767, -32767, 32767]
    assert as_stereo(floats).shape == (4, 2)
    with pytest.raises(InvalidArgument, match="dtype int64"):
        as_clip(np.array([1, 2, 3]), RATE)
    with pytest.raises(InvalidArgument, match="shape"):
        as_clip(np.zeros((2, 2, 2), dtype=np.int16), RATE)
    with pytest.raises(InvalidArgument, match="not a PCM WAV"):
        read_wav(b"RIFF....junk")
    with pytest.raises(InvalidArgument, match="mono or stereo"):
        as_stereo(as_clip(np.zeros((4, 3), dtype=np.int16), RATE))
    with pytest.raises(InvalidArgument, match="tone"):
        tone(30000, 1.0)
