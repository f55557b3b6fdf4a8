"""Hostile input to every Spice parser and state machine: only RemoteProtocolError, ever.

Random bytes, truncations of the real server bytes, and well-framed messages with random
bodies; plus round-trip properties of the wire helpers.
"""

from __future__ import annotations

import contextlib
import gzip
import struct
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from atp_notebook.errors import RemoteProtocolError
from atp_notebook.spice.proto.channel import ChannelProtocol
from atp_notebook.spice.proto.common import COMMON_PARSERS
from atp_notebook.spice.proto.constants import ChannelType
from atp_notebook.spice.proto.framing import (
    MessageReader,
    MessageWriter,
    RawMessage,
    expand_sub_messages,
)
from atp_notebook.spice.proto.inputs import (
    InputsProtocol,
    key_bytes,
    key_code,
    parse_init,
    parse_key_modifiers,
)
from atp_notebook.spice.proto.link import LinkHandshake
from atp_notebook.spice.proto.link_wire import caps_to_words, words_to_caps
from atp_notebook.spice.proto.main import MAIN_PARSERS, MainProtocol
from atp_notebook.spice.proto.sasl import SaslCredentials, parse_mechlist

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures" / "spice"
FUZZ = settings(deadline=None, max_examples=300)
FEW = settings(deadline=None, max_examples=60)
MINI = struct.Struct("<HI")
U32 = struct.Struct("<I")
CREDS = SaslCredentials("tester", "throwaway-pw")
NONCE = "AAECAwQFBgcICQoLDA0ODxAR"  # the client nonce the fixed rng below makes


def fixed_rng(n: int) -> bytes:
    return bytes(range(n))


def fixture(name: str) -> bytes:
    data = (FIXTURES / name).read_bytes()
    return gzip.decompress(data) if name.endswith(".gz") else data


def only_remote_errors(action: Callable[[], Any]) -> None:
    """Run ``action``; RemoteProtocolError is the one allowed failure, anything else fails."""
    with contextlib.suppress(RemoteProtocolError):
        action()


PARSERS: dict[str, Callable[[bytes], object]] = {
    **{f"common-{t}": p for t, p in COMMON_PARSERS.items()},
    **{f"main-{t}": p for t, p in MAIN_PARSERS.items()},
    "inputs-init": parse_init,
    "inputs-key-modifiers": parse_key_modifiers,
    "msg-list": lambda body: expand_sub_messages(RawMessage(8, body)),
    "sub-list": lambda body: expand_sub_messages(RawMessage(101, body, 1, 1)),
    "mechlist": parse_mechlist,
}


@pytest.mark.parametrize("name", sorted(PARSERS))
@settings(deadline=None, max_examples=150)
@given(body=st.binary(max_size=120))
def test_every_parser_raises_only_remote_errors(name: str, body: bytes) -> None:
    only_remote_errors(lambda: PARSERS[name](body))


def _channels() -> list[ChannelProtocol]:
    return [MainProtocol(ChannelType.MAIN), InputsProtocol(ChannelType.INPUTS),
            ChannelProtocol(ChannelType.DISPLAY, max_message_size=4096)]


@FUZZ
@given(chunks=st.lists(st.binary(max_size=80), max_size=12), close=st.booleans())
def test_channels_take_random_bytes(chunks: list[bytes], close: bool) -> None:
    for chan in _channels():
        def run(chan: ChannelProtocol = chan) -> None:
            for chunk in [*chunks, *([b""] if close else [])]:
                if chunk:
                    chan.receive_data(chunk)
            if close:
                chan.receive_data(b"")
            chan.data_to_send()
        only_remote_errors(run)


INTERESTING_TYPES = sorted({*COMMON_PARSERS, 8, *MAIN_PARSERS, 101, 102, 111, 150})


@FUZZ
@given(messages=st.lists(st.tuples(st.one_of(st.sampled_from(INTERESTING_TYPES),
                                             st.integers(0, 0xFFFF)),
                                   st.binary(max_size=60)), max_size=10),
       cut=st.integers(1, 50))
def test_channels_take_well_framed_random_messages(messages: list[tuple[int, bytes]],
                                                   cut: int) -> None:
    stream = b"".join(MINI.pack(t, len(b)) + b for t, b in messages)
    for chan in _channels():
        def run(chan: ChannelProtocol = chan) -> None:
            for i in range(0, len(stream), cut):
                chan.receive_data(stream[i : i + cut])
        only_remote_errors(run)


def _link(sasl: bool) -> LinkHandshake:
    link = LinkHandshake(ChannelType.MAIN, 0, 0, password="pw",
                         sasl_credentials=CREDS if sasl else None, rng=fixed_rng)
    link.initiate()
    return link


def _feed(link: LinkHandshake, data: bytes, cut: int = 0) -> None:
    step = cut or max(len(data), 1)
    for i in range(0, len(data), step):
        link.receive_data(data[i : i + step])
        link.data_to_send()


def _reply(common: tuple[int, ...]) -> bytes:
    words = caps_to_words(common)
    body = struct.pack("<I162sIII", 0, bytes(162), len(words), 0, 178)
    body += b"".join(U32.pack(w) for w in words)
    return struct.pack("<4sIII", b"REDQ", 2, 2, len(body)) + body


SASL_PREFIX = _reply((0, 2, 3))
SCRAM_PREFIX = SASL_PREFIX + U32.pack(15) + b",SCRAM-SHA-256,"


@FUZZ
@given(data=st.binary(max_size=300), sasl=st.booleans(), cut=st.integers(0, 40))
def test_link_takes_random_bytes(data: bytes, sasl: bool, cut: int) -> None:
    only_remote_errors(lambda: _feed(_link(sasl), data, cut))


@FUZZ
@given(tail=st.binary(max_size=200),
       prefix=st.sampled_from([fixture("main-link-reply.bin"), SASL_PREFIX, SCRAM_PREFIX,
                               SASL_PREFIX + U32.pack(7) + b",PLAIN,"]),
       close=st.booleans())
def test_link_takes_a_valid_start_then_garbage(tail: bytes, prefix: bytes, close: bool) -> None:
    def run() -> None:
        link = _link(sasl=prefix != fixture("main-link-reply.bin"))
        _feed(link, prefix + tail)
        if close:
            link.receive_data(b"")
    only_remote_errors(run)


def _challenge(text: str, complete: int) -> bytes:
    data = text.encode("utf-8", "surrogatepass")
    return U32.pack(len(data) + 1) + data + b"\0" + bytes([complete])


@FEW
@given(server_first=st.one_of(
           st.text(max_size=80),
           st.builds(lambda t: f"r={NONCE}{t}", st.text(max_size=40)),
           st.builds(lambda salt, i: f"r={NONCE}x,s={salt},i={i}",
                     st.text(max_size=30), st.sampled_from(["4096", "0", "", "x", "٤٠٩٦"]))),
       server_final=st.text(max_size=60), complete=st.integers(0, 2))
def test_scram_takes_hostile_server_messages(server_first: str, server_final: str,
                                             complete: int) -> None:
    def run() -> None:
        link = _link(sasl=True)
        _feed(link, SCRAM_PREFIX + _challenge(server_first, 0)
              + _challenge(server_final, complete) + U32.pack(0) + U32.pack(0))
    only_remote_errors(run)


LINK_TRANSCRIPTS = [
    (False, fixture("main-link-reply.bin") + fixture("link-result-ok.bin")),
    (False, fixture("tls-main-link-reply.bin") + fixture("link-result-permission-denied.bin")),
    (False, fixture("link-reply-need-secured.bin")),
    (True, fixture("sasl-scram-sha-256-server.bin")),
    (True, fixture("sasl-plain-server.bin")),
    (True, fixture("sasl-scram-wrong-server.bin")),
    (True, fixture("sasl-digest-only-server.bin")),
]


@pytest.mark.parametrize(("sasl", "transcript"), LINK_TRANSCRIPTS)
def test_every_truncation_of_real_link_bytes(sasl: bool, transcript: bytes) -> None:
    for end in range(len(transcript) + 1):
        def run(end: int = end) -> None:
            link = _link(sasl)
            _feed(link, transcript[:end])
            link.receive_data(b"")
        only_remote_errors(run)


@pytest.mark.parametrize("name", ["main-session.bin.gz", "inputs-messages.bin",
                                  "cursor-messages.bin"])
def test_every_truncation_of_real_channel_bytes(name: str) -> None:
    stream = fixture(name)
    ends = range(0, len(stream) + 1, max(1, len(stream) // 2000))
    for end in ends:
        for chan in _channels():
            def run(chan: ChannelProtocol = chan, end: int = end) -> None:
                chan.receive_data(stream[:end])
                chan.receive_data(b"")
            only_remote_errors(run)


@FUZZ
@given(bits=st.frozensets(st.integers(0, 200)))
def test_caps_round_trip(bits: frozenset[int]) -> None:
    assert words_to_caps(caps_to_words(bits)) == bits


@FUZZ
@given(messages=st.lists(st.tuples(st.integers(0, 0xFFFF), st.binary(max_size=100)),
                         max_size=8), cut=st.integers(1, 30), mini=st.booleans())
def test_framing_round_trip(messages: list[tuple[int, bytes]], cut: int, mini: bool) -> None:
    writer = MessageWriter(mini_header=mini)
    stream = b"".join(writer.pack(t, b) for t, b in messages)
    reader = MessageReader(mini_header=mini)
    got = []
    for i in range(0, len(stream), cut):
        reader.feed(stream[i : i + cut])
        got += reader.read_messages()
    assert [(m.msg_type, m.body) for m in got] == messages


@given(code=st.integers(1, 0x7F), extended=st.booleans(), release=st.booleans())
def test_key_code_and_key_bytes_agree(code: int, extended: bool, release: bool) -> None:
    scancode = code | (0x100 if extended else 0)
    wire = key_code(scancode, release=release).to_bytes(4, "little").rstrip(b"\0")
    assert wire == key_bytes(scancode, release=release)
