"""The main channel: the lab's real session stream, every message table-driven, builders."""

from __future__ import annotations

import gzip
import struct
import uuid
from pathlib import Path

import pytest

from atp_notebook.errors import LocalProtocolError, RemoteProtocolError
from atp_notebook.spice.proto.common import ChannelEvent, Ping
from atp_notebook.spice.proto.constants import ChannelType, LinkError, MouseMode
from atp_notebook.spice.proto.framing import MessageReader, RawMessage
from atp_notebook.spice.proto.main import (
    AgentConnected,
    AgentData,
    AgentDisconnected,
    AgentTokens,
    ChannelId,
    ChannelsList,
    MainInit,
    MainProtocol,
    MigrateBegin,
    MigrateCancel,
    MigrateDstSeamlessResult,
    MigrateEnd,
    MigrateSwitchHost,
    MigrationTarget,
    MouseModeChanged,
    MultiMediaTime,
    VmName,
    VmUuid,
)

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures" / "spice"
MINI = struct.Struct("<HI")
SESSION = gzip.decompress((FIXTURES / "main-session.bin.gz").read_bytes())


def mini(msg_type: int, body: bytes = b"") -> bytes:
    return MINI.pack(msg_type, len(body)) + body


def sent(main: MainProtocol) -> list[RawMessage]:
    reader = MessageReader()
    reader.feed(main.data_to_send())
    return reader.read_messages()


def dst_info(port: int, sport: int, host: bytes, subject: bytes | None,
             extra: bytes = b"") -> bytes:
    """DstInfo with its two pointers (u32 offsets from the body start) to trailing data."""
    fixed = 20 + len(extra)
    host_at = fixed
    subject_at = 0 if subject is None else fixed + len(host)
    head = struct.pack("<HHIIII", port, sport, len(host), host_at,
                       0 if subject is None else len(subject), subject_at)
    return head + extra + host + (subject or b"")


@pytest.mark.parametrize("chunk", [None, 1, 4096])
def test_lab_session_stream(chunk: int | None) -> None:
    main = MainProtocol(ChannelType.MAIN)
    events: list[ChannelEvent] = []
    step = chunk or len(SESSION)
    for i in range(0, len(SESSION), step):
        events += main.receive_data(SESSION[i : i + step])
    init, name, vm_uuid, *pings_and_list = events
    assert isinstance(init, MainInit)
    # atp-vm1: one display, no agent (busybox guest), server mouse mode
    assert (init.display_channels_hint, init.supported_mouse_modes, init.current_mouse_mode,
            init.agent_connected, init.agent_tokens) == (1, MouseMode.SERVER, MouseMode.SERVER,
                                                         False, 10)
    assert init.session_id == int.from_bytes(SESSION[6:10], "little")
    assert name == VmName("atp-vm1")
    assert vm_uuid == VmUuid(uuid.UUID("ba0c1091-7622-450c-9b2a-678b4e9fdf34"))
    pings = [e for e in pings_and_list if isinstance(e, Ping)]
    assert [p.payload_size for p in pings[:3]] == [0, 0, 256000]  # the bandwidth test
    (listing,) = [e for e in pings_and_list if isinstance(e, ChannelsList)]
    assert listing.channels == (ChannelId(ChannelType.DISPLAY, 0),
                                ChannelId(ChannelType.CURSOR, 0),
                                ChannelId(ChannelType.INPUTS, 0))
    assert main.channels == listing.channels and main.name == "atp-vm1"
    assert main.init == init and main.mouse_mode is MouseMode.SERVER
    out = sent(main)
    assert out[0] == RawMessage(104, b"")  # ATTACH_CHANNELS, queued by MAIN_INIT
    assert [m.msg_type for m in out[1:]] == [3] * len(pings)
    assert main.metrics.pings == len(pings) == 5


def test_attach_on_init_can_be_left_to_the_caller() -> None:
    main = MainProtocol(ChannelType.MAIN, attach_on_init=False)
    main.receive_data(mini(103, struct.pack("<8I", 7, 1, 3, 2, 1, 10, 0, 0)))
    assert main.data_to_send() == b""
    assert main.agent_connected and main.agent_tokens == 10
    assert main.mouse_modes == MouseMode.SERVER | MouseMode.CLIENT


@pytest.mark.parametrize(("msg_type", "body", "event"), [
    (103, struct.pack("<8I", 0xB3904703, 1, 1, 1, 0, 10, 5749738, 50323456),
     MainInit(0xB3904703, 1, MouseMode.SERVER, MouseMode.SERVER, False, 10, 5749738, 50323456)),
    (104, bytes.fromhex("03000000 0200 0400 0300".replace(" ", "")),
     ChannelsList((ChannelId(ChannelType.DISPLAY, 0), ChannelId(ChannelType.CURSOR, 0),
                   ChannelId(ChannelType.INPUTS, 0)))),
    (104, struct.pack("<I", 1) + bytes([42, 3]), ChannelsList((ChannelId(42, 3),))),
    (105, struct.pack("<HH", 3, 2), MouseModeChanged(MouseMode.SERVER | MouseMode.CLIENT,
                                                     MouseMode.CLIENT)),
    (106, struct.pack("<I", 1234), MultiMediaTime(1234)),
    (107, b"", AgentConnected(None)),
    (108, struct.pack("<I", 1), AgentDisconnected(LinkError.ERROR)),
    (109, b"\x01\x00\x00\x00agent", AgentData(b"\x01\x00\x00\x00agent")),
    (110, struct.pack("<I", 5), AgentTokens(5)),
    (111, dst_info(5900, 5901, b"dst.example\0", b"CN=dst\0"),
     MigrateSwitchHost(MigrationTarget(5900, 5901, "dst.example", "CN=dst"))),
    (112, b"", MigrateEnd()),
    (113, bytes.fromhex("08000000") + b"atp-vm1\0", VmName("atp-vm1")),
    (114, bytes.fromhex("ba0c10917622450c9b2a678b4e9fdf34"),
     VmUuid(uuid.UUID("ba0c1091-7622-450c-9b2a-678b4e9fdf34"))),
    (115, struct.pack("<I", 10), AgentConnected(10)),
    (101, dst_info(1, 2, b"h\0", None), MigrateBegin(MigrationTarget(1, 2, "h", None),
                                                     False, None)),
    (116, dst_info(1, 2, b"h\0", None, extra=struct.pack("<I", 9)),
     MigrateBegin(MigrationTarget(1, 2, "h", None), True, 9)),
    (102, b"", MigrateCancel()),
    (117, b"", MigrateDstSeamlessResult(True)),
    (118, b"", MigrateDstSeamlessResult(False)),
])
def test_main_messages_table(msg_type: int, body: bytes, event: ChannelEvent) -> None:
    main = MainProtocol(ChannelType.MAIN, attach_on_init=False)
    assert main.receive_data(mini(msg_type, body)) == [event]


@pytest.mark.parametrize(("msg_type", "body", "match"), [
    (103, bytes(31), "MAIN_INIT"),
    (104, struct.pack("<I", 3) + bytes(5), "3 channels"),
    (105, bytes(3), "MOUSE_MODE"),
    (113, struct.pack("<I", 9) + b"short", "name_len 9"),
    (113, struct.pack("<I", 2) + b"\xff\xfe", "UTF-8"),
    (114, bytes(15), "MAIN_UUID"),
    (111, struct.pack("<HHIIII", 1, 2, 50, 20, 0, 0), "run past"),
    (111, struct.pack("<HHIIII", 1, 2, 0, 0, 0, 0), "no host"),
    (111, struct.pack("<HHIIII", 1, 2, 2, 20, 0, 0) + b"\xff\0", "not UTF-8"),
    (116, dst_info(1, 2, b"h\0", None), "MAIN_MIGRATE_BEGIN_SEAMLESS"),
])
def test_bad_main_messages_are_remote_errors(msg_type: int, body: bytes, match: str) -> None:
    with pytest.raises(RemoteProtocolError, match=match):
        MainProtocol(ChannelType.MAIN).receive_data(mini(msg_type, body))


def test_client_messages_golden() -> None:
    main = MainProtocol(ChannelType.MAIN)
    main.attach_channels()
    main.request_mouse_mode(MouseMode.CLIENT)
    main.agent_start()
    main.agent_token(3)
    assert main.data_to_send() == bytes.fromhex(
        "6800 00000000"  # ATTACH_CHANNELS
        "6900 02000000 0200"  # MOUSE_MODE_REQUEST: flags16 CLIENT
        "6a00 04000000 ffffffff"  # AGENT_START: all the tokens (spice-gtk grants ~0)
        "6c00 04000000 03000000".replace(" ", ""))  # AGENT_TOKEN


def test_mouse_mode_request_is_one_mode() -> None:
    with pytest.raises(LocalProtocolError):
        MainProtocol(ChannelType.MAIN).request_mouse_mode(MouseMode.SERVER | MouseMode.CLIENT)


def test_agent_data_needs_an_agent_and_tokens() -> None:
    main = MainProtocol(ChannelType.MAIN, attach_on_init=False)
    with pytest.raises(LocalProtocolError, match="VDAgent"):
        main.send_agent_data(b"x")
    main.receive_data(mini(115, struct.pack("<I", 1)))  # AGENT_CONNECTED_TOKENS: 1 token
    with pytest.raises(LocalProtocolError, match="2048"):
        main.send_agent_data(bytes(2049))
    main.send_agent_data(b"x")
    assert sent(main) == [RawMessage(107, b"x")]
    with pytest.raises(LocalProtocolError, match="tokens"):
        main.send_agent_data(b"y")
    main.receive_data(mini(110, struct.pack("<I", 2)))
    assert main.agent_tokens == 2
    main.receive_data(mini(108, struct.pack("<I", 0)))
    assert not main.agent_connected


def test_mouse_mode_state_follows_the_server() -> None:
    main = MainProtocol(ChannelType.MAIN)
    main.receive_data(mini(105, struct.pack("<HH", 3 | 0xFF00, 2)))  # unknown bits dropped
    assert (main.mouse_modes, main.mouse_mode) == (MouseMode.SERVER | MouseMode.CLIENT,
                                                   MouseMode.CLIENT)


def init_body(supported: int, current: int) -> bytes:
    return struct.pack("<8I", 7, 1, supported, current, 0, 10, 0, 0)


S, C = int(MouseMode.SERVER), int(MouseMode.CLIENT)
REQUEST = {MouseMode.SERVER: RawMessage(105, struct.pack("<H", S)),
           MouseMode.CLIENT: RawMessage(105, struct.pack("<H", C))}


@pytest.mark.parametrize(("preferred", "messages", "requests"), [
    # (what the client prefers, what the server sends, the mode requests that follow)
    (MouseMode.CLIENT, [(103, init_body(S | C, S))], [MouseMode.CLIENT]),
    (MouseMode.CLIENT, [(103, init_body(S | C, C))], []),
    (MouseMode.CLIENT, [(103, init_body(S, S))], []),  # no tablet, no agent
    # the tablet comes up after the link: the server says so with MOUSE_MODE
    (MouseMode.CLIENT, [(103, init_body(S, S)), (105, struct.pack("<HH", S | C, S))],
     [MouseMode.CLIENT]),
    # one request per word from the server, never a storm
    (MouseMode.CLIENT, [(103, init_body(S | C, S)), (106, struct.pack("<I", 1)),
                        (106, struct.pack("<I", 2))], [MouseMode.CLIENT]),
    (MouseMode.CLIENT, [(103, init_body(S | C, S)), (105, struct.pack("<HH", S | C, S))],
     [MouseMode.CLIENT, MouseMode.CLIENT]),
    (MouseMode.CLIENT, [(103, init_body(S | C, S)), (105, struct.pack("<HH", S | C, C))],
     [MouseMode.CLIENT]),
    (MouseMode.SERVER, [(103, init_body(S | C, C))], [MouseMode.SERVER]),
    (None, [(103, init_body(S | C, S))], []),
])
def test_the_preferred_mouse_mode_is_requested_when_offered(
    preferred: MouseMode | None, messages: list[tuple[int, bytes]],
    requests: list[MouseMode],
) -> None:
    main = MainProtocol(ChannelType.MAIN, attach_on_init=False, mouse_mode=preferred)
    for msg_type, body in messages:
        main.receive_data(mini(msg_type, body))
    assert sent(main) == [REQUEST[mode] for mode in requests]


def test_prefer_mouse_mode_asks_at_once_when_linked_and_waits_otherwise() -> None:
    main = MainProtocol(ChannelType.MAIN, attach_on_init=False, mouse_mode=None)
    main.prefer_mouse_mode(MouseMode.CLIENT)
    assert main.data_to_send() == b""  # no MAIN_INIT yet: nothing to compare with
    main.receive_data(mini(103, init_body(S | C, C)))
    assert main.data_to_send() == b""
    main.prefer_mouse_mode(MouseMode.SERVER)
    assert sent(main) == [REQUEST[MouseMode.SERVER]]
    with pytest.raises(LocalProtocolError):
        main.prefer_mouse_mode(MouseMode.SERVER | MouseMode.CLIENT)
