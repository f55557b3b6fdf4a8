"""MONITORS_CONFIG (spice.proto ``monitors_config``, the MONITORS_CONFIG cap): which part of
which surface each monitor of this display channel shows.

One qxl card per display channel is what QEMU configures by default; a multi-head qxl
card (``max_outputs``) reports several heads on one channel. spice-server handles at most
16 monitors (red-qxl.cpp MAX_MONITORS_COUNT); MAX_HEADS leaves room above that and stops a
hostile count.

Example::

    parse_monitors_config(body).heads[0]
    # Head(monitor_id=0, surface_id=0, width=1024, height=768, x=0, y=0, flags=0)
"""

from __future__ import annotations

import struct
from collections.abc import Callable
from dataclasses import dataclass

from atp_notebook.spice.proto.common import ChannelEvent
from atp_notebook.spice.proto.constants import DisplayMsg
from atp_notebook.spice.proto.display_wire import BodyReader

HEAD = struct.Struct("<7I")  # monitor id, surface id, width, height, x, y, flags
MAX_HEADS = 64


@dataclass(frozen=True, slots=True)
class Head:
    monitor_id: int
    surface_id: int
    width: int
    height: int
    x: int
    y: int
    flags: int


@dataclass(frozen=True, slots=True)
class MonitorsConfig(ChannelEvent):
    heads: tuple[Head, ...]
    max_allowed: int


def parse_monitors_config(body: bytes) -> MonitorsConfig:
    r = BodyReader(body, "MONITORS_CONFIG")
    count = r.u16("head count")
    max_allowed = r.u16("max allowed")
    r.count("heads", count, MAX_HEADS, HEAD.size)
    return MonitorsConfig(tuple(Head(*r.take(HEAD, "head")) for _ in range(count)),
                          max_allowed)


MONITORS_PARSERS: dict[int, Callable[[bytes], ChannelEvent]] = {
    DisplayMsg.MONITORS_CONFIG: parse_monitors_config,
}
