"""The record channel (spice.proto ``channel RecordChannel``): sound into the guest.

What the server sends (spice-server 0.15 ``sound.cpp``): START (101: u32 channels, u16
format, u32 frequency) when the guest opens its capture device, STOP (102) when it closes
it, VOLUME (103) and MUTE (104) to a client announcing RECORD_CAP_VOLUME.

What the client sends: MODE (102: u32 time, u16 mode, no mode data for RAW), START_MARK
(103: u32 time) before the first samples of a recording, then DATA (101: u32 time, S16LE
interleaved samples). The server reads each client message into a buffer of one codec
frame plus 64 bytes (1984) and drops the connection on a larger one, so a DATA carries at
most one frame: 480 stereo frames, 1920 bytes (:data:`MAX_RECORD_SAMPLES`). It counts RAW
samples as 4-byte stereo frames, so only 2-channel data is sent. It keeps the last 8192
frames in a ring and hands the guest nothing until 4096 have arrived: about 85 ms of
sound always goes in before the guest hears any.

Example::

    record = RecordProtocol.from_link(linked)
    record.receive_data(chunk)               # [AudioStart(channels=2, ..., frequency=48000)]
    record.send_start(time_ms)               # MODE RAW + START_MARK
    record.send_samples(time_ms, pcm_bytes)  # DATA messages of at most 1920 bytes
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from atp_notebook.errors import LocalProtocolError, RemoteProtocolError
from atp_notebook.spice.proto.channel import ChannelProtocol
from atp_notebook.spice.proto.common import ChannelEvent, unpack_body
from atp_notebook.spice.proto.constants import ChannelType, RecordCap
from atp_notebook.spice.proto.framing import RawMessage
from atp_notebook.spice.proto.playback import (
    AUDIO_MAX_MESSAGE,
    MODE_HEAD,
    RECORD_START_BODY,
    TIME,
    AudioDataMode,
    AudioStart,
    AudioState,
    AudioStop,
    check_start,
    parse_mute,
    parse_volume,
)

# spice.proto RecordChannel
RECORD_START = 101  # server
RECORD_STOP = 102
RECORD_VOLUME = 103
RECORD_MUTE = 104
MSGC_RECORD_DATA = 101  # client
MSGC_RECORD_MODE = 102
MSGC_RECORD_START_MARK = 103

RECORD_CHANNELS = 2  # the server counts RAW samples as 4-byte frames: stereo S16
FRAME_BYTES = 2 * RECORD_CHANNELS
# sound.cpp: the receive buffer is SND_CODEC_MAX_FRAME_BYTES (480 x 2 x 2) + 64
MAX_RECORD_SAMPLES = 480 * FRAME_BYTES
RECORD_CLIENT_CAPS = (RecordCap.VOLUME,)


def parse_record_start(body: bytes) -> AudioStart:
    channels, fmt, frequency = unpack_body(RECORD_START_BODY, body, "RECORD_START")
    return AudioStart(channels, check_start(channels, fmt, frequency, "RECORD_START"),
                      frequency)


_RECORD_PARSERS: dict[int, Callable[[bytes], ChannelEvent]] = {
    RECORD_START: parse_record_start,
    RECORD_STOP: lambda _body: AudioStop(),
    RECORD_VOLUME: lambda body: parse_volume(body, "RECORD_VOLUME"),
    RECORD_MUTE: lambda body: parse_mute(body, "RECORD_MUTE"),
}


class RecordProtocol(ChannelProtocol):
    """The record channel: the guest's start/stop/volume/mute in, samples out.

    ``audio`` holds the state (``audio.start`` is None while the guest does not record);
    ``marked`` says whether MODE and START_MARK went out since the last START.
    """

    channel_kind = ChannelType.RECORD

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        kwargs.setdefault("max_message_size", AUDIO_MAX_MESSAGE)
        super().__init__(*args, **kwargs)
        self.audio = AudioState()
        self.marked = False
        self.frames_out = 0

    def handle_channel_message(self, message: RawMessage) -> ChannelEvent | None:
        parser = _RECORD_PARSERS.get(message.msg_type)
        if parser is None:
            return None
        event = parser(message.body)
        if isinstance(event, AudioStart) and event.channels != RECORD_CHANNELS:
            raise RemoteProtocolError(f"RECORD_START: {event.channels} channels; the server "
                                      f"takes RAW samples as {RECORD_CHANNELS}-channel frames")
        if isinstance(event, AudioStart | AudioStop):
            self.marked = False  # a new recording starts with its own MODE and START_MARK
        self.audio.apply(event)
        return event

    def send_start(self, time_ms: int) -> None:
        """Queue MODE (RAW) and START_MARK: what precedes the samples of a recording."""
        self._check_started()
        self.send_message(MSGC_RECORD_MODE, MODE_HEAD.pack(time_ms & 0xFFFFFFFF,
                                                           AudioDataMode.RAW))
        self.send_message(MSGC_RECORD_START_MARK, TIME.pack(time_ms & 0xFFFFFFFF))
        self.marked = True
        self.audio.mode = AudioDataMode.RAW  # the client chooses the record mode

    def send_samples(self, time_ms: int, samples: bytes | bytearray | memoryview) -> int:
        """Queue stereo S16LE ``samples`` (whole frames) as DATA messages of at most
        :data:`MAX_RECORD_SAMPLES` bytes; returns how many messages."""
        self._check_started()
        if not self.marked:
            raise LocalProtocolError(f"{self!r}: send_start() first (MODE and START_MARK)")
        view = memoryview(samples).cast("B")
        if len(view) % FRAME_BYTES:
            raise LocalProtocolError(f"{len(view)} bytes are not whole stereo S16 frames")
        count = 0
        stamp = TIME.pack(time_ms & 0xFFFFFFFF)
        for start in range(0, len(view), MAX_RECORD_SAMPLES):
            self.send_message(MSGC_RECORD_DATA, stamp + view[start:start + MAX_RECORD_SAMPLES])
            count += 1
        self.frames_out += len(view) // FRAME_BYTES
        return count

    def _check_started(self) -> None:
        if self.audio.start is None:
            raise LocalProtocolError(f"{self!r}: the guest is not recording (no RECORD_START)")
