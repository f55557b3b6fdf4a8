"""Hostile input to every display-channel parser: mutated valid bodies, random bodies and
random well-framed streams only ever raise RemoteProtocolError (the pattern of
test_spice_fuzz.py)."""

from __future__ import annotations

import contextlib
import struct
from collections.abc import Callable
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from atp_notebook.errors import RemoteProtocolError
from atp_notebook.spice.proto.constants import ChannelType, DisplayMsg
from atp_notebook.spice.proto.display import _PARSERS, DisplayProtocol

from .test_spice_display_draw import CASES as DRAW_CASES
from .test_spice_display_streams import CASES as OTHER_CASES

MINI = struct.Struct("<HI")
VALID = {**{f"draw-{k}": v for k, v in DRAW_CASES.items()},
         **{f"other-{k}": v for k, v in OTHER_CASES.items()}}


def only_remote_errors(action: Callable[[], Any]) -> None:
    with contextlib.suppress(RemoteProtocolError):
        action()


def _parse(msg_type: int, body: bytes) -> None:
    # parsed events are compared, hashed and printed by users: all of that must work
    event = _PARSERS[msg_type](body)
    assert event == event
    repr(event)


Edit = tuple[int, int, int]  # kind (0 overwrite, 1 insert, 2 delete), position, byte


def _mutate(body: bytes, edits: list[Edit]) -> bytes:
    out = bytearray(body)
    for kind, pos, value in edits:
        at = pos % (len(out) + 1)
        if kind == 0 and at < len(out):
            out[at] = value
        elif kind == 1:
            out[at:at] = bytes([value])
        elif at < len(out):
            del out[at]
    return bytes(out)


@pytest.mark.parametrize("name", sorted(VALID))
@settings(deadline=None, max_examples=120)
@given(edits=st.lists(st.tuples(st.integers(0, 2), st.integers(0, 1 << 16),
                                st.integers(0, 255)), min_size=1, max_size=6),
       cut=st.one_of(st.none(), st.integers(0, 400)))
def test_mutated_valid_bodies_raise_only_remote_errors(name: str, edits: list[Edit],
                                                       cut: int | None) -> None:
    msg_type, body, _ = VALID[name]()
    mutated = _mutate(body, edits)[:cut]
    only_remote_errors(lambda: _parse(msg_type, mutated))


@pytest.mark.parametrize("msg_type", sorted(_PARSERS))
@settings(deadline=None, max_examples=100)
@given(body=st.binary(max_size=160))
def test_random_bodies_raise_only_remote_errors(msg_type: int, body: bytes) -> None:
    only_remote_errors(lambda: _parse(msg_type, body))


@settings(deadline=None, max_examples=200)
@given(messages=st.lists(st.tuples(st.sampled_from(sorted({*_PARSERS, 5, 8})),
                                   st.binary(max_size=80)), max_size=10),
       cut=st.integers(1, 50))
def test_a_display_channel_takes_random_well_framed_messages(
        messages: list[tuple[int, bytes]], cut: int) -> None:
    stream = b"".join(MINI.pack(t, len(b)) + b for t, b in messages)
    display = DisplayProtocol(ChannelType.DISPLAY)

    def run() -> None:
        for i in range(0, len(stream), cut):
            display.receive_data(stream[i : i + cut])
    only_remote_errors(run)


def test_every_display_message_but_gl_and_quality_has_a_parser() -> None:
    unparsed = {DisplayMsg.GL_SCANOUT_UNIX, DisplayMsg.GL_DRAW, DisplayMsg.QUALITY_INDICATOR}
    assert set(_PARSERS) == {int(m) for m in DisplayMsg} - unparsed
