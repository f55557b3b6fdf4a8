"""Sound as numpy arrays: a captured clip with its gaps, WAV in and out, a notebook player.

:class:`ClipAssembler` lays the playback channel's frames on a timeline by the server's
DATA time field (ms): a frame stamped later than where the previous one ended, by more
than ``tolerance_ms``, leaves a gap -- filled with silence in the samples and listed in
``clip.gaps``, so a stutter is visible and measurable. Frames stamped early (the server's
clock is read when a frame is queued, and frames come in bursts) are placed right after
the previous one: a burst never overlaps itself.

Example::

    clip = vm.audio.capture(2.0)         # an AudioClip
    clip.samples.shape                   # (96000, 2), int16
    clip.dominant_frequency()            # 1000.0 for a 1 kHz tone
    clip.gaps                            # () when nothing was lost
    clip.to_wav("out.wav"); clip.widget()
"""

from __future__ import annotations

import base64
import html
import io
import wave
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

from atp_notebook.errors import InvalidArgument

# two 10 ms frames: the server's clock is read per frame, and a TCG guest's frames jitter
GAP_TOLERANCE_MS = 20.0
MAX_CHANNELS = 8
Samples = npt.NDArray[np.int16]


@dataclass(frozen=True)
class Gap:
    """Missing sound: ``length_s`` seconds of silence inserted at ``at_s`` in the clip."""

    at_s: float
    length_s: float


@dataclass(frozen=True, eq=False)
class AudioClip:
    """Interleaved S16 samples (``frames x channels``) at ``rate`` Hz, with the gaps found.

    ``first_arrival`` is the host's ``time.monotonic()`` when the first frame arrived (None
    for a clip made here); ``server_time_ms`` the first frame's DATA time.
    """

    samples: Samples
    rate: int
    gaps: tuple[Gap, ...] = ()
    first_arrival: float | None = None
    server_time_ms: int | None = None

    def __repr__(self) -> str:
        return (f"<AudioClip {self.duration:.3f} s, {self.channels} ch @ {self.rate} Hz, "
                f"{len(self.gaps)} gaps>")

    @property
    def channels(self) -> int:
        return int(self.samples.shape[1])

    @property
    def duration(self) -> float:
        return len(self.samples) / self.rate

    @property
    def longest_gap(self) -> float:
        """The longest gap in seconds (0.0 without any)."""
        return max((g.length_s for g in self.gaps), default=0.0)

    def peak(self) -> int:
        """The largest absolute sample value (0 for silence)."""
        return int(np.abs(self.samples.astype(np.int32)).max()) if self.samples.size else 0

    def dominant_frequency(self, channel: int = 0) -> float:
        """The strongest frequency in Hz of one channel (FFT of the whole clip, Hann
        window); 0.0 for an empty clip."""
        if not len(self.samples):
            return 0.0
        mono = self.samples[:, channel].astype(np.float64)
        spectrum = np.abs(np.fft.rfft(mono * np.hanning(len(mono))))
        spectrum[0] = 0.0  # a DC offset is no tone
        return float(np.argmax(spectrum) * self.rate / len(mono))

    def to_wav(self, path: str | Path | None = None) -> bytes:
        """The clip as a 16-bit PCM WAV file's bytes; written to ``path`` too if given."""
        out = io.BytesIO()
        with wave.open(out, "wb") as wav:
            wav.setnchannels(self.channels)
            wav.setsampwidth(2)
            wav.setframerate(self.rate)
            wav.writeframes(self.samples.astype("<i2").tobytes())
        data = out.getvalue()
        if path is not None:
            Path(path).write_bytes(data)
        return data

    def widget(self) -> AudioPlayer:
        """A player for notebooks: an HTML ``<audio>`` element fed this clip as WAV (shown
        when it is the cell's value)."""
        return AudioPlayer(self.to_wav(), repr(self))

    def _repr_html_(self) -> str:
        return self.widget()._repr_html_()


class AudioPlayer:
    """An ``<audio controls>`` element playing a WAV file, for Jupyter's rich output."""

    def __init__(self, wav_bytes: bytes, title: str = "") -> None:
        self.wav_bytes = wav_bytes
        self.title = title

    def __repr__(self) -> str:
        return f"<AudioPlayer {self.title or f'{len(self.wav_bytes)} bytes of WAV'}>"

    def _repr_html_(self) -> str:
        data = base64.b64encode(self.wav_bytes).decode("ascii")
        return (f'<audio controls title="{html.escape(self.title)}" '
                f'src="data:audio/wav;base64,{data}"></audio>')


def tone(frequency: float, seconds: float, rate: int = 48000, channels: int = 2,
         amplitude: float = 0.5) -> AudioClip:
    """A sine tone as a clip (handy to send, or to write to the guest as WAV).
    Example: ``tone(1000, 2.0).to_wav()``."""
    if not 0 < amplitude <= 1 or seconds <= 0 or not 0 < frequency < rate / 2:
        raise InvalidArgument(f"tone({frequency} Hz, {seconds} s, amplitude {amplitude}): "
                              f"want 0 < frequency < {rate / 2}, seconds > 0, "
                              "0 < amplitude <= 1")
    t = np.arange(round(seconds * rate)) / rate
    wave_ = np.round(amplitude * 32767 * np.sin(2 * np.pi * frequency * t)).astype(np.int16)
    return AudioClip(np.repeat(wave_[:, None], channels, axis=1), rate)


def read_wav(data: bytes | str | Path) -> AudioClip:
    """A 16-bit PCM WAV file (its bytes or its path) as a clip."""
    source: Any = io.BytesIO(data) if isinstance(data, bytes) else str(data)
    try:
        with wave.open(source, "rb") as wav:
            width, channels, rate = wav.getsampwidth(), wav.getnchannels(), wav.getframerate()
            frames = wav.readframes(wav.getnframes())
    except (wave.Error, EOFError) as exc:
        raise InvalidArgument(f"not a PCM WAV file: {exc}") from exc
    except OSError as exc:
        raise InvalidArgument(f"cannot read the WAV file {data!s}: {exc}") from exc
    if width != 2:
        raise InvalidArgument(f"the WAV file has {8 * width}-bit samples; 16-bit only")
    samples = np.frombuffer(frames, dtype="<i2").astype(np.int16)
    return AudioClip(samples.reshape(-1, channels), rate)


def as_clip(audio: AudioClip | bytes | str | Path | npt.NDArray[Any], rate: int) -> AudioClip:
    """What ``vm.audio.send`` takes as a clip: a clip, WAV bytes or path, or an array
    (frames, or frames x channels; int16, or float in -1..1) at ``rate``."""
    if isinstance(audio, AudioClip):
        return audio
    if isinstance(audio, bytes | str | Path):
        return read_wav(audio)
    array = np.asarray(audio)
    if array.ndim == 1:
        array = array[:, None]
    if array.ndim != 2 or not 1 <= array.shape[1] <= MAX_CHANNELS:
        raise InvalidArgument(f"audio array of shape {array.shape}: want (frames,) or "
                              f"(frames, channels) with 1..{MAX_CHANNELS} channels")
    if np.issubdtype(array.dtype, np.floating):
        array = np.round(np.clip(array, -1.0, 1.0) * 32767)
    elif array.dtype != np.int16:
        raise InvalidArgument(f"audio array of dtype {array.dtype}: want int16, or float "
                              "in -1..1")
    return AudioClip(array.astype(np.int16), rate)


def as_stereo(clip: AudioClip) -> Samples:
    """The clip's samples as 2 channels (mono doubled; more channels refused)."""
    if clip.channels == 2:
        return clip.samples
    if clip.channels == 1:
        return np.repeat(clip.samples, 2, axis=1)
    raise InvalidArgument(f"{clip.channels}-channel audio: the record channel takes mono "
                          "or stereo")


class ClipAssembler:
    """Frames in (server time, bytes, arrival), a clip with its gaps out (sans-I/O).

    Example::

        asm = ClipAssembler(rate=48000, channels=2)
        asm.add(1000, frame_bytes, arrived=time.monotonic())
        clip = asm.clip()
    """

    def __init__(self, rate: int, channels: int,
                 tolerance_ms: float = GAP_TOLERANCE_MS) -> None:
        self.rate = rate
        self.channels = channels
        self.tolerance_ms = tolerance_ms
        self._parts: list[Samples] = []
        self._frames = 0
        self._gaps: list[Gap] = []
        self._t0: int | None = None
        self._first_arrival: float | None = None

    @property
    def frames(self) -> int:
        return self._frames

    def add(self, time_ms: int, data: bytes, arrived: float) -> None:
        samples = np.frombuffer(data, dtype="<i2").astype(np.int16).reshape(-1, self.channels)
        if self._t0 is None:
            self._t0, self._first_arrival = time_ms, arrived
        # u32 ms wraps after 49.7 days: a difference modulo 2**32 stays right across it
        offset_ms = (time_ms - self._t0) & 0xFFFFFFFF
        end_ms = self._frames * 1000 / self.rate
        if offset_ms - end_ms > self.tolerance_ms and offset_ms < 0x80000000:
            missing = round((offset_ms - end_ms) * self.rate / 1000)
            self._gaps.append(Gap(self._frames / self.rate, missing / self.rate))
            self._parts.append(np.zeros((missing, self.channels), dtype=np.int16))
            self._frames += missing
        self._parts.append(samples)
        self._frames += len(samples)

    def clip(self) -> AudioClip:
        samples = (np.concatenate(self._parts) if self._parts
                   else np.zeros((0, self.channels), dtype=np.int16))
        return AudioClip(samples, self.rate, tuple(self._gaps), self._first_arrival, self._t0)
