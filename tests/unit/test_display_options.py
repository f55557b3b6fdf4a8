"""DisplayOptions presets: what each asks of the server (caps, compression, GLZ), and the
channel protocol's manual acknowledgements that let the display ack what it has drawn."""

from __future__ import annotations

import struct

import pytest

from atp_notebook.errors import InvalidArgument
from atp_notebook.spice.proto.channel import ChannelProtocol
from atp_notebook.spice.proto.constants import ChannelType, DisplayCap, ImageCompression, Msgc
from atp_notebook.spice.proto.display import DisplayOptions
from atp_notebook.spice.proto.framing import MessageReader, MessageWriter


def test_lossless_prefers_lz4_and_refuses_streams() -> None:
    options = DisplayOptions.lossless()
    assert options.preferred_compression is ImageCompression.LZ4
    assert DisplayCap.LZ4_COMPRESSION in options.caps  # else the server sends LZ
    assert DisplayCap.MULTI_CODEC in options.caps and not options.streams
    assert options.glz_window == 0 and DisplayCap.MONITORS_CONFIG in options.caps


def test_lossy_lets_the_server_choose_and_takes_mjpeg_streams() -> None:
    options = DisplayOptions.lossy(glz_window=1 << 20)
    assert options.preferred_compression is None and options.streams
    assert DisplayCap.CODEC_MJPEG in options.caps
    assert (options.glz_window, options.glz_dictionary_id) == (1 << 20, 1)


def test_server_choice_sends_no_preference_and_no_streams() -> None:
    options = DisplayOptions.server_choice()
    assert options.preferred_compression is None and not options.streams
    assert options.glz_window == 0
    # the bare constructor announces no MULTI_CODEC: the server may stream MJPEG to it
    assert DisplayOptions().streams


def test_a_glz_window_past_the_servers_limit_is_refused() -> None:
    with pytest.raises(InvalidArgument, match="GLZ window"):
        DisplayOptions.server_choice(glz_window=1 << 26)


SET_ACK = struct.Struct("<II")


def _received(window: int, count: int, *, manual: bool) -> ChannelProtocol:
    protocol = ChannelProtocol(ChannelType.DISPLAY, manual_acks=manual)
    writer = MessageWriter(mini_header=True)
    data = writer.pack(3, SET_ACK.pack(1, window))  # SPICE_MSG_SET_ACK {generation, window}
    data += b"".join(writer.pack(104, b"") for _ in range(count))  # COPY_BITS stand-ins
    protocol.receive_data(data)
    return protocol


def _acks(protocol: ChannelProtocol) -> int:
    reader = MessageReader(mini_header=True)
    reader.feed(protocol.data_to_send())
    types = []
    while (message := reader.next_message()) is not None:
        types.append(message.msg_type)
    return types.count(Msgc.ACK)


@pytest.mark.parametrize(("window", "count", "expected"), [(4, 3, 0), (4, 4, 1), (4, 9, 2),
                                                            (1, 3, 3)])
def test_automatic_acks_go_out_on_arrival(window: int, count: int, expected: int) -> None:
    assert _acks(_received(window, count, manual=False)) == expected


@pytest.mark.parametrize(("window", "count", "expected"), [(4, 3, 0), (4, 4, 1), (4, 9, 2),
                                                            (1, 3, 3)])
def test_manual_acks_go_out_only_when_handed_back(window: int, count: int,
                                                  expected: int) -> None:
    protocol = _received(window, count, manual=True)
    assert _acks(protocol) == 0  # the ACK_SYNC only
    taken = protocol.take_unacknowledged()
    assert taken == count and protocol.take_unacknowledged() == 0
    protocol.acknowledge(taken - 1)
    protocol.acknowledge(1)
    assert _acks(protocol) == expected
