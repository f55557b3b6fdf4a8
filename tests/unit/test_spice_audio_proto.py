"""The playback and record channels' sans-I/O cores: bytes in, events out; bytes out;
garbage, oversized messages and modes never announced refused."""

from __future__ import annotations

import struct

import pytest

from atp_notebook.errors import LocalProtocolError, RemoteProtocolError
from atp_notebook.spice.proto.constants import ChannelType
from atp_notebook.spice.proto.framing import MessageReader, RawMessage
from atp_notebook.spice.proto.playback import (
    AUDIO_MAX_MESSAGE,
    AudioData,
    AudioDataMode,
    AudioFormat,
    AudioMode,
    AudioMute,
    AudioStart,
    AudioStop,
    AudioVolume,
    PlaybackLatency,
    PlaybackProtocol,
)
from atp_notebook.spice.proto.record import (
    MAX_RECORD_SAMPLES,
    MSGC_RECORD_DATA,
    MSGC_RECORD_MODE,
    MSGC_RECORD_START_MARK,
    RecordProtocol,
)

MINI = struct.Struct("<HI")
FRAME = bytes(range(256)) * 7 + bytes(128)  # 1920 bytes: one RAW frame of 480 x 2 x S16


def frame(msg_type: int, body: bytes = b"") -> bytes:
    return MINI.pack(msg_type, len(body)) + body


def mode(value: int = 1, time: int = 7) -> bytes:
    return frame(102, struct.pack("<IH", time, value))


def playback_start(channels: int = 2, fmt: int = 1, frequency: int = 48000,
                   time: int = 100) -> bytes:
    return frame(103, struct.pack("<IHII", channels, fmt, frequency, time))


def started_playback() -> PlaybackProtocol:
    chan = PlaybackProtocol(ChannelType.PLAYBACK, 0)
    chan.receive_data(mode() + playback_start())
    return chan


def test_playback_session_events_and_state() -> None:
    chan = PlaybackProtocol(ChannelType.PLAYBACK, 0)
    events = chan.receive_data(
        mode() + frame(105, struct.pack("<BHH", 2, 0x8000, 0xFFFF)) + frame(106, b"\1")
        + frame(107, struct.pack("<I", 60)) + playback_start()
        + frame(101, struct.pack("<I", 110) + FRAME) + frame(104))
    assert events == [
        AudioMode(7, AudioDataMode.RAW), AudioVolume((0x8000, 0xFFFF)), AudioMute(True),
        PlaybackLatency(60), AudioStart(2, AudioFormat.S16, 48000, 100),
        AudioData(110, FRAME), AudioStop()]
    assert chan.audio.volumes == (0x8000, 0xFFFF) and chan.audio.muted is True
    assert chan.latency_ms == 60 and chan.audio.start is None
    assert chan.frames_in == 480


def test_playback_data_split_across_reads() -> None:
    chan = started_playback()
    wire = frame(101, struct.pack("<I", 5) + FRAME)
    assert chan.receive_data(wire[:1000]) == []
    assert chan.receive_data(wire[1000:]) == [AudioData(5, FRAME)]


@pytest.mark.parametrize("value", [AudioDataMode.OPUS, AudioDataMode.CELT_0_5_1, 0, 9])
def test_playback_refuses_a_mode_never_announced(value: int) -> None:
    chan = PlaybackProtocol(ChannelType.PLAYBACK, 0)
    with pytest.raises(RemoteProtocolError, match="announced RAW only"):
        chan.receive_data(mode(value))


@pytest.mark.parametrize(("wire", "match"), [
    (playback_start(), "before PLAYBACK_MODE"),
    (mode() + frame(101, struct.pack("<I", 1) + FRAME), "while stopped"),
    (mode() + playback_start(fmt=2), "sample format 2"),
    (mode() + playback_start(channels=0), "0 channels"),
    (mode() + playback_start(channels=99), "99 channels"),
    (mode() + playback_start(frequency=0), "0 Hz"),
    (mode() + playback_start() + frame(101, struct.pack("<I", 1) + b"\0" * 6), "whole frames"),
    (mode() + playback_start() + frame(101, b"\1\2"), "PLAYBACK_DATA: 2-byte body"),
    (mode() + frame(105, struct.pack("<BH", 3, 1)), "needs 7"),
    (mode() + frame(105, struct.pack("<B", 0)), "0 channels"),
    (mode() + frame(106, b"\2"), "mute is 2"),
    (mode() + frame(106), "PLAYBACK_MUTE: 0-byte body"),
    (mode() + frame(107, b"\0"), "PLAYBACK_LATENCY: 1-byte body"),
    (frame(102, b"\0\0"), "PLAYBACK_MODE: 2-byte body"),
])
def test_playback_garbage_is_a_protocol_error(wire: bytes, match: str) -> None:
    chan = PlaybackProtocol(ChannelType.PLAYBACK, 0)
    with pytest.raises(RemoteProtocolError, match=match):
        chan.receive_data(wire)


def test_playback_oversized_message_refused_from_its_header() -> None:
    chan = started_playback()
    with pytest.raises(RemoteProtocolError):
        chan.receive_data(MINI.pack(101, AUDIO_MAX_MESSAGE + 1))


def test_playback_unknown_message_is_reported_not_fatal() -> None:
    chan = started_playback()
    (event,) = chan.receive_data(frame(150, b"x"))
    assert type(event).__name__ == "UnknownMessage"


def sent(chan: RecordProtocol) -> list[RawMessage]:
    reader = MessageReader(max_message_size=AUDIO_MAX_MESSAGE)
    reader.feed(chan.data_to_send())
    return reader.read_messages()


def record_start(channels: int = 2) -> bytes:
    return frame(101, struct.pack("<IHI", channels, 1, 48000))


def test_record_start_mark_and_samples_in_server_sized_messages() -> None:
    chan = RecordProtocol(ChannelType.RECORD, 0)
    events = chan.receive_data(frame(103, struct.pack("<BHH", 2, 5, 6)) + frame(104, b"\0")
                               + record_start())
    assert events == [AudioVolume((5, 6)), AudioMute(False),
                      AudioStart(2, AudioFormat.S16, 48000)]
    chan.send_start(1234)
    pcm = bytes(range(256)) * 16  # 4096 bytes: 1024 frames -> 1920 + 1920 + 256
    assert chan.send_samples(1240, pcm) == 3
    out = sent(chan)
    assert [m.msg_type for m in out] == [MSGC_RECORD_MODE, MSGC_RECORD_START_MARK] + \
        [MSGC_RECORD_DATA] * 3
    assert out[0].body == struct.pack("<IH", 1234, AudioDataMode.RAW)
    assert out[1].body == struct.pack("<I", 1234)
    assert all(m.body[:4] == struct.pack("<I", 1240) for m in out[2:])
    assert b"".join(m.body[4:] for m in out[2:]) == pcm
    assert max(len(m.body) - 4 for m in out[2:]) == MAX_RECORD_SAMPLES
    assert chan.frames_out == 1024


def test_record_honours_start_and_stop() -> None:
    chan = RecordProtocol(ChannelType.RECORD, 0)
    with pytest.raises(LocalProtocolError, match="not recording"):
        chan.send_start(0)
    chan.receive_data(record_start())
    with pytest.raises(LocalProtocolError, match="send_start"):
        chan.send_samples(0, b"\0" * 4)
    chan.send_start(0)
    with pytest.raises(LocalProtocolError, match="whole stereo"):
        chan.send_samples(0, b"\0" * 6)
    assert chan.receive_data(frame(102)) == [AudioStop()]
    with pytest.raises(LocalProtocolError, match="not recording"):
        chan.send_samples(0, b"\0" * 4)
    chan.receive_data(record_start())
    assert not chan.marked  # a new recording needs its own MODE and START_MARK


@pytest.mark.parametrize(("wire", "match"), [
    (record_start(channels=1), "1 channels"),
    (frame(101, struct.pack("<IHI", 2, 0, 48000)), "sample format 0"),
    (frame(101, b"\0" * 9), "RECORD_START: 9-byte body"),
    (frame(104, b"\5"), "mute is 5"),
])
def test_record_garbage_is_a_protocol_error(wire: bytes, match: str) -> None:
    chan = RecordProtocol(ChannelType.RECORD, 0)
    with pytest.raises(RemoteProtocolError, match=match):
        chan.receive_data(wire)
