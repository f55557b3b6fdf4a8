"""The main channel (spice.proto ``channel MainChannel``): session, channel list, mouse
mode, agent transport, migration notices.

Example::

    main = MainProtocol.from_link(linked)          # queues ATTACH_CHANNELS on MAIN_INIT
    for event in main.receive_data(chunk):
        if isinstance(event, MainInit):
            session_id = event.session_id          # connection_id for every other channel
        elif isinstance(event, ChannelsList):
            wanted = event.channels
    writer.write(main.data_to_send())
"""

from __future__ import annotations

import struct
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from atp_notebook.errors import LocalProtocolError, RemoteProtocolError
from atp_notebook.spice.proto.channel import ChannelProtocol
from atp_notebook.spice.proto.common import ChannelEvent, unpack_body
from atp_notebook.spice.proto.constants import (
    ChannelType,
    LinkError,
    MainMsg,
    MainMsgc,
    MouseMode,
    enum_or_int,
)
from atp_notebook.spice.proto.framing import RawMessage

# spice.proto MainChannel, server side
INIT = struct.Struct("<8I")  # session_id, display_channels_hint, supported_mouse_modes,
# current_mouse_mode, agent_connected, agent_tokens, multi_media_time, ram_hint
CHANNELS_COUNT = struct.Struct("<I")  # channels_list: num_of_channels, then ChannelId[]
CHANNEL_ID = struct.Struct("<BB")  # ChannelId: type, id
MOUSE_MODE = struct.Struct("<HH")  # mouse_mode: flags16 supported_modes, current_mode
U32 = struct.Struct("<I")  # multi_media_time, agent_disconnected, agent_token, tokens, name_len
UUID_BYTES = 16
# DstInfo / migrate_switch_host: port, sport, host_size, host_data (u32 offset into the
# body, spice.proto pointers), cert_subject_size, cert_subject_data (offset, 0 = none)
DST_INFO = struct.Struct("<HHIIII")
# client side
MOUSE_MODE_REQUEST = struct.Struct("<H")  # mouse_mode_request: flags16 mode
CLIENT_INFO = struct.Struct("<Q")  # client_info: cache_size
AGENT_MAX_DATA_SIZE = 2048  # vd_agent.h VD_AGENT_MAX_DATA_SIZE: one AGENT_DATA message


@dataclass(frozen=True, slots=True)
class MainInit(ChannelEvent):
    session_id: int
    display_channels_hint: int
    supported_mouse_modes: MouseMode
    current_mouse_mode: MouseMode
    agent_connected: bool
    agent_tokens: int
    multi_media_time: int
    ram_hint: int


@dataclass(frozen=True, slots=True)
class ChannelId:
    channel_type: ChannelType | int
    channel_id: int


@dataclass(frozen=True, slots=True)
class ChannelsList(ChannelEvent):
    channels: tuple[ChannelId, ...]


@dataclass(frozen=True, slots=True)
class MouseModeChanged(ChannelEvent):
    supported: MouseMode
    current: MouseMode


@dataclass(frozen=True, slots=True)
class MultiMediaTime(ChannelEvent):
    time: int  # ms, the server's clock for audio/video sync


@dataclass(frozen=True, slots=True)
class AgentConnected(ChannelEvent):
    tokens: int | None  # AGENT_CONNECTED_TOKENS carries fresh tokens; AGENT_CONNECTED none


@dataclass(frozen=True, slots=True)
class AgentDisconnected(ChannelEvent):
    error_code: LinkError | int


@dataclass(frozen=True, slots=True)
class AgentData(ChannelEvent):
    data: bytes  # a chunk of the VDAgent stream


@dataclass(frozen=True, slots=True)
class AgentTokens(ChannelEvent):
    num_tokens: int  # more AGENT_DATA messages we may send


@dataclass(frozen=True, slots=True)
class VmName(ChannelEvent):
    name: str


@dataclass(frozen=True, slots=True)
class VmUuid(ChannelEvent):
    uuid: uuid.UUID


@dataclass(frozen=True, slots=True)
class MigrationTarget:
    port: int
    sport: int  # the TLS port
    host: str
    cert_subject: str | None


@dataclass(frozen=True, slots=True)
class MigrateBegin(ChannelEvent):
    target: MigrationTarget
    seamless: bool
    src_version: int | None  # MIGRATE_BEGIN_SEAMLESS only


@dataclass(frozen=True, slots=True)
class MigrateSwitchHost(ChannelEvent):
    target: MigrationTarget


@dataclass(frozen=True, slots=True)
class MigrateCancel(ChannelEvent):
    pass


@dataclass(frozen=True, slots=True)
class MigrateEnd(ChannelEvent):
    pass


@dataclass(frozen=True, slots=True)
class MigrateDstSeamlessResult(ChannelEvent):
    accepted: bool  # MIGRATE_DST_SEAMLESS_ACK (True) or _NACK (False)


def _mouse_mode(value: int) -> MouseMode:
    return MouseMode(value & (MouseMode.SERVER | MouseMode.CLIENT))


def _pointed_string(body: bytes, offset: int, size: int, what: str) -> str | None:
    """A @zero_terminated uint8 array behind a spice.proto pointer (offset 0 = NULL)."""
    if offset == 0:
        return None
    if offset + size > len(body):
        raise RemoteProtocolError(f"{what}: {size} bytes at offset {offset} run past the "
                                  f"{len(body)}-byte body")
    try:
        return body[offset : offset + size].split(b"\0", 1)[0].decode("utf-8")
    except UnicodeDecodeError as exc:
        raise RemoteProtocolError(f"{what}: not UTF-8") from exc


def _parse_target(body: bytes, what: str) -> MigrationTarget:
    port, sport, host_size, host_ptr, cert_size, cert_ptr = unpack_body(DST_INFO, body, what)
    host = _pointed_string(body, host_ptr, host_size, f"{what} host")
    if host is None:
        raise RemoteProtocolError(f"{what}: no host (a NULL pointer spice.proto forbids)")
    return MigrationTarget(port, sport, host, _pointed_string(body, cert_ptr, cert_size,
                                                              f"{what} cert subject"))


def parse_init(body: bytes) -> MainInit:
    (session_id, displays, supported, current, agent, tokens, mm_time,
     ram_hint) = unpack_body(INIT, body, "MAIN_INIT")
    return MainInit(session_id, displays, _mouse_mode(supported), _mouse_mode(current),
                    bool(agent), tokens, mm_time, ram_hint)


def parse_channels_list(body: bytes) -> ChannelsList:
    (count,) = unpack_body(CHANNELS_COUNT, body, "MAIN_CHANNELS_LIST")
    if len(body) < CHANNELS_COUNT.size + count * CHANNEL_ID.size:
        raise RemoteProtocolError(
            f"MAIN_CHANNELS_LIST: {count} channels do not fit {len(body)} bytes")
    channels = tuple(
        ChannelId(enum_or_int(ChannelType, ctype), cid)
        for ctype, cid in CHANNEL_ID.iter_unpack(
            body[CHANNELS_COUNT.size : CHANNELS_COUNT.size + count * CHANNEL_ID.size]))
    return ChannelsList(channels)


def parse_mouse_mode(body: bytes) -> MouseModeChanged:
    supported, current = unpack_body(MOUSE_MODE, body, "MAIN_MOUSE_MODE")
    return MouseModeChanged(_mouse_mode(supported), _mouse_mode(current))


def parse_multi_media_time(body: bytes) -> MultiMediaTime:
    return MultiMediaTime(unpack_body(U32, body, "MAIN_MULTI_MEDIA_TIME")[0])


def parse_agent_connected(body: bytes) -> AgentConnected:
    return AgentConnected(None)


def parse_agent_connected_tokens(body: bytes) -> AgentConnected:
    return AgentConnected(unpack_body(U32, body, "MAIN_AGENT_CONNECTED_TOKENS")[0])


def parse_agent_disconnected(body: bytes) -> AgentDisconnected:
    code = unpack_body(U32, body, "MAIN_AGENT_DISCONNECTED")[0]
    return AgentDisconnected(enum_or_int(LinkError, code))


def parse_agent_data(body: bytes) -> AgentData:
    return AgentData(body)


def parse_agent_token(body: bytes) -> AgentTokens:
    return AgentTokens(unpack_body(U32, body, "MAIN_AGENT_TOKEN")[0])


def parse_name(body: bytes) -> VmName:
    (length,) = unpack_body(U32, body, "MAIN_NAME")
    if len(body) < U32.size + length:
        raise RemoteProtocolError(f"MAIN_NAME: name_len {length} runs past {len(body)} bytes")
    raw = body[U32.size : U32.size + length].split(b"\0", 1)[0]  # sent with its NUL
    try:
        return VmName(raw.decode("utf-8"))
    except UnicodeDecodeError as exc:
        raise RemoteProtocolError(f"MAIN_NAME: not UTF-8: {raw[:40]!r}") from exc


def parse_uuid(body: bytes) -> VmUuid:
    if len(body) < UUID_BYTES:
        raise RemoteProtocolError(f"MAIN_UUID: {len(body)}-byte body, needs {UUID_BYTES}")
    return VmUuid(uuid.UUID(bytes=body[:UUID_BYTES]))


def parse_migrate_begin(body: bytes) -> MigrateBegin:
    return MigrateBegin(_parse_target(body, "MAIN_MIGRATE_BEGIN"), False, None)


def parse_migrate_begin_seamless(body: bytes) -> MigrateBegin:
    target = _parse_target(body, "MAIN_MIGRATE_BEGIN_SEAMLESS")
    (version,) = unpack_body(U32, body, "MAIN_MIGRATE_BEGIN_SEAMLESS", DST_INFO.size)
    return MigrateBegin(target, True, version)


def parse_migrate_switch_host(body: bytes) -> MigrateSwitchHost:
    return MigrateSwitchHost(_parse_target(body, "MAIN_MIGRATE_SWITCH_HOST"))


MAIN_PARSERS: dict[int, Callable[[bytes], ChannelEvent]] = {
    MainMsg.MIGRATE_BEGIN: parse_migrate_begin,
    MainMsg.MIGRATE_CANCEL: lambda body: MigrateCancel(),
    MainMsg.INIT: parse_init,
    MainMsg.CHANNELS_LIST: parse_channels_list,
    MainMsg.MOUSE_MODE: parse_mouse_mode,
    MainMsg.MULTI_MEDIA_TIME: parse_multi_media_time,
    MainMsg.AGENT_CONNECTED: parse_agent_connected,
    MainMsg.AGENT_DISCONNECTED: parse_agent_disconnected,
    MainMsg.AGENT_DATA: parse_agent_data,
    MainMsg.AGENT_TOKEN: parse_agent_token,
    MainMsg.MIGRATE_SWITCH_HOST: parse_migrate_switch_host,
    MainMsg.MIGRATE_END: lambda body: MigrateEnd(),
    MainMsg.NAME: parse_name,
    MainMsg.UUID: parse_uuid,
    MainMsg.AGENT_CONNECTED_TOKENS: parse_agent_connected_tokens,
    MainMsg.MIGRATE_BEGIN_SEAMLESS: parse_migrate_begin_seamless,
    MainMsg.MIGRATE_DST_SEAMLESS_ACK: lambda body: MigrateDstSeamlessResult(True),
    MainMsg.MIGRATE_DST_SEAMLESS_NACK: lambda body: MigrateDstSeamlessResult(False),
}


def build_mouse_mode_request(mode: MouseMode) -> bytes:
    return MOUSE_MODE_REQUEST.pack(mode)


def build_agent_start(num_tokens: int) -> bytes:
    return U32.pack(num_tokens)


def build_agent_token(num_tokens: int) -> bytes:
    return U32.pack(num_tokens)


class MainProtocol(ChannelProtocol):
    """The main channel, with the session state its messages carry.

    With ``attach_on_init`` (default, as spice-gtk does) MAIN_INIT queues ATTACH_CHANNELS,
    which makes the server send CHANNELS_LIST. Agent data flows only after
    :meth:`agent_start` and spends one server token per message.
    """

    channel_kind = ChannelType.MAIN

    def __init__(self, *args: Any, attach_on_init: bool = True,
                 mouse_mode: MouseMode | None = MouseMode.CLIENT, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.attach_on_init = attach_on_init
        # like spice-gtk: ask for this mode whenever the server offers it and uses another
        # (None: leave the server's choice alone)
        self.preferred_mouse_mode = mouse_mode
        self._mode_requested = False  # asked since the server last said which mode it uses
        self.init: MainInit | None = None
        self.channels: tuple[ChannelId, ...] | None = None
        self.mouse_modes = MouseMode(0)  # supported
        self.mouse_mode = MouseMode(0)  # current
        self.agent_connected = False
        self.agent_tokens = 0  # AGENT_DATA messages the server still accepts from us
        self.name: str | None = None
        self.uuid: uuid.UUID | None = None

    def handle_channel_message(self, message: RawMessage) -> ChannelEvent | None:
        parser = MAIN_PARSERS.get(message.msg_type)
        if parser is None:
            return None
        event = parser(message.body)
        if isinstance(event, MainInit):
            self.init = event
            self.mouse_modes, self.mouse_mode = (event.supported_mouse_modes,
                                                 event.current_mouse_mode)
            self.agent_connected, self.agent_tokens = event.agent_connected, event.agent_tokens
            if self.attach_on_init:
                self.attach_channels()
            self._follow_mouse_preference()
        elif isinstance(event, ChannelsList):
            self.channels = event.channels
        elif isinstance(event, MouseModeChanged):
            self.mouse_modes, self.mouse_mode = event.supported, event.current
            self._mode_requested = False
            self._follow_mouse_preference()
        elif isinstance(event, AgentConnected):
            self.agent_connected = True
            if event.tokens is not None:
                self.agent_tokens = event.tokens
        elif isinstance(event, AgentDisconnected):
            self.agent_connected = False
        elif isinstance(event, AgentTokens):
            self.agent_tokens += event.num_tokens
        elif isinstance(event, VmName):
            self.name = event.name
        elif isinstance(event, VmUuid):
            self.uuid = event.uuid
        return event

    def attach_channels(self) -> None:
        self.send_message(MainMsgc.ATTACH_CHANNELS)

    def request_mouse_mode(self, mode: MouseMode) -> None:
        """Ask for SERVER (relative) or CLIENT (absolute) mode; a MouseModeChanged says."""
        if mode not in (MouseMode.SERVER, MouseMode.CLIENT):
            raise LocalProtocolError(f"request one mouse mode, not {mode!r}")
        self.send_message(MainMsgc.MOUSE_MODE_REQUEST, build_mouse_mode_request(mode))

    def prefer_mouse_mode(self, mode: MouseMode | None) -> None:
        """Keep asking for ``mode`` whenever the server offers it (None: stop asking)."""
        if mode is not None and mode not in (MouseMode.SERVER, MouseMode.CLIENT):
            raise LocalProtocolError(f"prefer one mouse mode, not {mode!r}")
        self.preferred_mouse_mode = mode
        self._mode_requested = False
        self._follow_mouse_preference()

    def _follow_mouse_preference(self) -> None:
        # one request per MOUSE_MODE from the server: a server that keeps its mode sends
        # nothing back, and asking again would only repeat the refusal
        want = self.preferred_mouse_mode
        if (want is None or self.init is None or self._mode_requested
                or want not in self.mouse_modes or want == self.mouse_mode):
            return
        self.request_mouse_mode(want)
        self._mode_requested = True

    def agent_start(self, num_tokens: int = 0xFFFFFFFF) -> None:
        """Start agent traffic, granting the server ``num_tokens`` AGENT_DATA messages
        (spice-gtk grants ~0: unlimited)."""
        self.send_message(MainMsgc.AGENT_START, build_agent_start(num_tokens))

    def agent_token(self, num_tokens: int) -> None:
        self.send_message(MainMsgc.AGENT_TOKEN, build_agent_token(num_tokens))

    def send_agent_data(self, data: bytes) -> None:
        """One AGENT_DATA message (≤ 2048 bytes); needs a connected agent and a token."""
        if not self.agent_connected:
            raise LocalProtocolError("no VDAgent is connected to this VM's main channel")
        if self.agent_tokens <= 0:
            raise LocalProtocolError("no agent tokens left: wait for MAIN_AGENT_TOKEN")
        if len(data) > AGENT_MAX_DATA_SIZE:
            raise LocalProtocolError(
                f"AGENT_DATA of {len(data)} bytes; split it into {AGENT_MAX_DATA_SIZE}-byte "
                "chunks")
        self.agent_tokens -= 1
        self.send_message(MainMsgc.AGENT_DATA, data)
