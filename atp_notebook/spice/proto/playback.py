"""The playback channel (spice.proto ``channel PlaybackChannel``): the guest's sound out,
and the audio messages the record channel shares with it.

What the server sends (spice-server 0.15 ``sound.cpp``):

- MODE (102): u32 time, u16 mode, then mode data (none for RAW). Sent first on every link:
  the server picks OPUS only for a client announcing PLAYBACK_CAP_OPUS (and a 48 kHz
  guest); this client does not, so any mode but RAW is a protocol error.
- START (103): u32 channels, u16 format (S16 = 1), u32 frequency, u32 time -- the guest
  opened its audio output. STOP (104, empty): it closed it.
- DATA (101): u32 time, then the samples: in RAW mode one codec frame of S16LE
  interleaved samples, 480 frames (10 ms at 48 kHz) of 2 channels. ``time`` is the server's
  multimedia clock in ms when the frame was produced: consecutive frames differ by their
  duration, so a larger step is a gap.
- VOLUME (105): u8 n, u16 volume[n]; MUTE (106): u8 -- to a client announcing
  PLAYBACK_CAP_VOLUME. LATENCY (107): u32 ms -- to a client announcing PLAYBACK_CAP_LATENCY.

The client sends nothing of its own on this channel (the base channel's ACK/PONG only).
Opus: no binding is a dependency (opuslib's last release is from 2018; its fork
opuslib-next is not evaluated yet), so OPUS is never announced and never accepted.

Example::

    playback = PlaybackProtocol.from_link(linked)
    playback.receive_data(chunk)  # [PlaybackMode(time=.., mode=RAW), PlaybackStart(...)]
    playback.receive_data(chunk)  # [PlaybackData(time=1234, data=b'...')]
"""

from __future__ import annotations

import enum
import struct
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from atp_notebook.errors import RemoteProtocolError
from atp_notebook.spice.proto.channel import ChannelProtocol
from atp_notebook.spice.proto.common import ChannelEvent, unpack_body
from atp_notebook.spice.proto.constants import ChannelType, PlaybackCap, enum_or_int
from atp_notebook.spice.proto.framing import RawMessage

# spice.proto PlaybackChannel, server side
PLAYBACK_DATA = 101
PLAYBACK_MODE = 102
PLAYBACK_START = 103
PLAYBACK_STOP = 104
PLAYBACK_VOLUME = 105
PLAYBACK_MUTE = 106
PLAYBACK_LATENCY = 107

TIME = struct.Struct("<I")  # data / start_mark: u32 time (then the samples)
MODE_HEAD = struct.Struct("<IH")  # mode: u32 time, u16 audio_data_mode (then mode data)
PLAYBACK_START_BODY = struct.Struct("<IHII")  # channels, audio_fmt format, frequency, time
RECORD_START_BODY = struct.Struct("<IHI")  # channels, audio_fmt format, frequency
VOLUME_HEAD = struct.Struct("<B")  # u8 nchannels, then u16 volume[nchannels]
MUTE_BODY = struct.Struct("<B")
LATENCY_BODY = struct.Struct("<I")

# snd_codec.h: one frame is 480 samples per channel; a RAW frame of 2 x S16 is 1920 bytes
FRAME_SAMPLES = 480
MAX_CHANNELS = 8  # QEMU gives 2; anything above 8 is garbage
MAX_FREQUENCY = 384_000
# a RAW data message is one frame (1920 bytes); 64 KiB leaves room for any sane server
MAX_AUDIO_DATA = 64 * 1024
AUDIO_MAX_MESSAGE = MAX_AUDIO_DATA + 64
# the caps this client announces (no OPUS: see the module docstring)
PLAYBACK_CLIENT_CAPS = (PlaybackCap.VOLUME, PlaybackCap.LATENCY)


class AudioDataMode(enum.IntEnum):
    """spice.proto ``audio_data_mode``."""

    INVALID = 0
    RAW = 1
    CELT_0_5_1 = 2  # deprecated; no server sends it any more
    OPUS = 3


class AudioFormat(enum.IntEnum):
    """spice.proto ``audio_fmt``."""

    INVALID = 0
    S16 = 1


@dataclass(frozen=True, slots=True)
class AudioMode(ChannelEvent):
    """The encoding of the data from now on (only RAW is ever accepted)."""

    time: int
    mode: AudioDataMode


@dataclass(frozen=True, slots=True)
class AudioStart(ChannelEvent):
    """The guest opened its audio device: what the samples are. ``time`` is the server's
    clock in ms (playback only; None for record)."""

    channels: int
    format: AudioFormat
    frequency: int
    time: int | None = None


@dataclass(frozen=True, slots=True)
class AudioStop(ChannelEvent):
    """The guest closed its audio device."""


@dataclass(frozen=True, slots=True)
class AudioData(ChannelEvent):
    """One frame of samples (S16LE interleaved) produced at server time ``time`` (ms)."""

    time: int
    data: bytes


@dataclass(frozen=True, slots=True)
class AudioVolume(ChannelEvent):
    """The guest's mixer volume per channel, 0..65535."""

    volumes: tuple[int, ...]


@dataclass(frozen=True, slots=True)
class AudioMute(ChannelEvent):
    muted: bool


@dataclass(frozen=True, slots=True)
class PlaybackLatency(ChannelEvent):
    """The latency the server wants the client to keep (it lines video up with it)."""

    latency_ms: int


def _mode_name(mode: int) -> str:
    found = enum_or_int(AudioDataMode, mode)
    return found.name if isinstance(found, AudioDataMode) else str(mode)


def parse_mode(body: bytes, what: str) -> AudioMode:
    time, mode = unpack_body(MODE_HEAD, body, what)
    if mode != AudioDataMode.RAW:
        raise RemoteProtocolError(f"{what}: mode {_mode_name(mode)}, but this client "
                                  "announced RAW only (no OPUS or CELT cap)")
    return AudioMode(time, AudioDataMode.RAW)


def check_start(channels: int, fmt: int, frequency: int, what: str) -> AudioFormat:
    if fmt != AudioFormat.S16:
        raise RemoteProtocolError(f"{what}: sample format {fmt}, want S16 (1)")
    if not 1 <= channels <= MAX_CHANNELS:
        raise RemoteProtocolError(f"{what}: {channels} channels, want 1..{MAX_CHANNELS}")
    if not 1 <= frequency <= MAX_FREQUENCY:
        raise RemoteProtocolError(f"{what}: {frequency} Hz, want 1..{MAX_FREQUENCY}")
    return AudioFormat.S16


def parse_playback_start(body: bytes) -> AudioStart:
    channels, fmt, frequency, time = unpack_body(PLAYBACK_START_BODY, body, "PLAYBACK_START")
    return AudioStart(channels, check_start(channels, fmt, frequency, "PLAYBACK_START"),
                      frequency, time)


def parse_volume(body: bytes, what: str) -> AudioVolume:
    (count,) = unpack_body(VOLUME_HEAD, body, what)
    if not 1 <= count <= MAX_CHANNELS:
        raise RemoteProtocolError(f"{what}: {count} channels, want 1..{MAX_CHANNELS}")
    need = VOLUME_HEAD.size + 2 * count
    if len(body) < need:
        raise RemoteProtocolError(f"{what}: {len(body)}-byte body for {count} channels, "
                                  f"needs {need}")
    return AudioVolume(struct.unpack_from(f"<{count}H", body, VOLUME_HEAD.size))


def parse_mute(body: bytes, what: str) -> AudioMute:
    (mute,) = unpack_body(MUTE_BODY, body, what)
    if mute > 1:
        raise RemoteProtocolError(f"{what}: mute is {mute}, want 0 or 1")
    return AudioMute(bool(mute))


class AudioState:
    """What the server said so far on one audio channel (both channels keep one)."""

    def __init__(self) -> None:
        self.mode: AudioDataMode | None = None
        self.start: AudioStart | None = None  # None while stopped
        self.volumes: tuple[int, ...] | None = None
        self.muted: bool | None = None

    def apply(self, event: ChannelEvent) -> None:
        if isinstance(event, AudioMode):
            self.mode = event.mode
        elif isinstance(event, AudioStart):
            self.start = event
        elif isinstance(event, AudioStop):
            self.start = None
        elif isinstance(event, AudioVolume):
            self.volumes = event.volumes
        elif isinstance(event, AudioMute):
            self.muted = event.muted


_PLAYBACK_PARSERS: dict[int, Callable[[bytes], ChannelEvent]] = {
    PLAYBACK_MODE: lambda body: parse_mode(body, "PLAYBACK_MODE"),
    PLAYBACK_STOP: lambda _body: AudioStop(),
    PLAYBACK_VOLUME: lambda body: parse_volume(body, "PLAYBACK_VOLUME"),
    PLAYBACK_MUTE: lambda body: parse_mute(body, "PLAYBACK_MUTE"),
}


class PlaybackProtocol(ChannelProtocol):
    """The playback channel: mode, start/stop, samples, volume, mute and latency.

    ``audio`` holds the current state; ``latency_ms`` the last LATENCY. DATA outside a
    START..STOP, or whose size is not whole frames of the started channel count, is a
    protocol error.
    """

    channel_kind = ChannelType.PLAYBACK

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        kwargs.setdefault("max_message_size", AUDIO_MAX_MESSAGE)
        super().__init__(*args, **kwargs)
        self.audio = AudioState()
        self.latency_ms: int | None = None
        self.frames_in = 0  # sample frames received

    def handle_channel_message(self, message: RawMessage) -> ChannelEvent | None:
        event = self._parse(message)
        if event is not None:
            self.audio.apply(event)
        return event

    def _parse(self, message: RawMessage) -> ChannelEvent | None:
        kind, body = message.msg_type, message.body
        if kind == PLAYBACK_DATA:
            return self._data(body)
        if kind == PLAYBACK_START:
            if self.audio.mode is None:
                raise RemoteProtocolError(f"{self!r}: PLAYBACK_START before PLAYBACK_MODE")
            return parse_playback_start(body)
        if kind == PLAYBACK_LATENCY:
            (latency,) = unpack_body(LATENCY_BODY, body, "PLAYBACK_LATENCY")
            self.latency_ms = latency
            return PlaybackLatency(latency)
        parser = _PLAYBACK_PARSERS.get(kind)
        return parser(body) if parser is not None else None

    def _data(self, body: bytes) -> AudioData:
        start = self.audio.start
        if start is None:
            raise RemoteProtocolError(f"{self!r}: PLAYBACK_DATA while stopped "
                                      "(no PLAYBACK_START)")
        (time,) = unpack_body(TIME, body, "PLAYBACK_DATA")
        samples = body[TIME.size:]
        frame_bytes = 2 * start.channels
        if len(samples) % frame_bytes:
            raise RemoteProtocolError(f"PLAYBACK_DATA: {len(samples)} bytes of samples, not "
                                      f"whole frames of {start.channels} x S16")
        self.frames_in += len(samples) // frame_bytes
        return AudioData(time, samples)
