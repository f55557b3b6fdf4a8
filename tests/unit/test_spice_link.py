"""LinkHandshake: golden bytes from the lab and a SASL QEMU, the ticket, every failure path."""

from __future__ import annotations

import struct
from pathlib import Path

import pytest
import scramp  # type: ignore[import-untyped]
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import padding, rsa

from atp_notebook.errors import (
    LocalProtocolError,
    RemoteProtocolError,
    SpiceAuthError,
    TransportError,
)
from atp_notebook.spice.proto.constants import (
    ChannelType,
    InputsCap,
    LinkError,
    MainCap,
)
from atp_notebook.spice.proto.link import LinkHandshake, LinkState
from atp_notebook.spice.proto.link_wire import (
    AuthMethod,
    LinkEvent,
    LinkFailed,
    LinkReplyReceived,
    LinkSucceeded,
    NeedSecured,
    SaslMechanismChosen,
    caps_to_words,
    encrypt_ticket,
    words_to_caps,
)
from atp_notebook.spice.proto.sasl import SaslCredentials, choose_mechanism, parse_mechlist

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures" / "spice"
U32 = struct.Struct("<I")
MAIN_CAPS = [MainCap.NAME_AND_UUID, MainCap.AGENT_CONNECTED_TOKENS]
SASL_USER = SaslCredentials("tester", "throwaway-pw")  # the throwaway capture server's user


def fixture(name: str) -> bytes:
    return (FIXTURES / name).read_bytes()


def fixed_rng(n: int) -> bytes:
    return bytes(range(n))  # what the SASL capture used: the SCRAM nonce is reproducible


def reply(error: int = 0, pubkey: bytes = bytes(162), common: tuple[int, ...] = (0, 1, 3),
          channel: tuple[int, ...] = (), *, magic: bytes = b"REDQ", major: int = 2) -> bytes:
    """A SpiceLinkHeader + SpiceLinkReply + caps, as reds_send_link_ack builds it."""
    c, h = caps_to_words(common), caps_to_words(channel)
    body = struct.pack("<I162sIII", error, pubkey, len(c), len(h), 178)
    body += b"".join(U32.pack(w) for w in c + h)
    return struct.pack("<4sIII", magic, major, 2, len(body)) + body


def feed(link: LinkHandshake, data: bytes, chunk: int | None = None) -> list[LinkEvent]:
    step = chunk or max(len(data), 1)
    events: list[LinkEvent] = []
    for i in range(0, len(data), step):
        events += link.receive_data(data[i : i + step])
    return events


def main_link(**kwargs: object) -> LinkHandshake:
    link = LinkHandshake(ChannelType.MAIN, 0, 0, channel_caps=MAIN_CAPS, **kwargs)  # type: ignore[arg-type]
    link.initiate()
    return link


@pytest.fixture(scope="module")
def rsa_key() -> rsa.RSAPrivateKey:
    return rsa.generate_private_key(public_exponent=65537, key_size=1024)


def pubkey_der(key: rsa.RSAPrivateKey) -> bytes:
    return key.public_key().public_bytes(serialization.Encoding.DER,
                                         serialization.PublicFormat.SubjectPublicKeyInfo)


def decrypt(key: rsa.RSAPrivateKey, ticket: bytes) -> bytes:
    return key.decrypt(ticket, padding.OAEP(mgf=padding.MGF1(hashes.SHA1()),
                                            algorithm=hashes.SHA1(), label=None))


# --- the link message ------------------------------------------------------------------

@pytest.mark.parametrize(("link", "expected"), [
    (LinkHandshake(ChannelType.MAIN, 0, 0, channel_caps=MAIN_CAPS),
     "52454451 02000000 02000000 1a000000 00000000 01 00 01000000 01000000 12000000"
     " 0b000000 06000000"),
    (LinkHandshake(ChannelType.INPUTS, 0, 0x9b40e31f, channel_caps=[InputsCap.KEY_SCANCODE]),
     "52454451 02000000 02000000 1a000000 1fe3409b 03 00 01000000 01000000 12000000"
     " 0b000000 01000000"),
    (LinkHandshake(ChannelType.DISPLAY, 1, 7, common_caps=(), sasl_credentials=SASL_USER),
     "52454451 02000000 02000000 16000000 07000000 02 01 01000000 00000000 12000000"
     " 07000000"),
], ids=["main", "inputs", "display-sasl-no-mini"])
def test_initiate_builds_the_link_message(link: LinkHandshake, expected: str) -> None:
    assert link.initiate() == bytes.fromhex(expected.replace(" ", ""))
    assert link.state is LinkState.AWAIT_REPLY


def test_caps_words_round_trip() -> None:
    assert caps_to_words([0, 3]) == [0b1001]
    assert caps_to_words([]) == []
    assert caps_to_words([33]) == [0, 2]
    assert words_to_caps([0b1001, 2]) == {0, 3, 33}


# --- golden bytes from the lab -----------------------------------------------------------

@pytest.mark.parametrize("chunk", [None, 1, 7])
def test_lab_main_link_succeeds_with_a_ticket(chunk: int | None) -> None:
    link = main_link()
    events = feed(link, fixture("main-link-reply.bin") + fixture("link-result-ok.bin"), chunk)
    assert events == [
        LinkReplyReceived(frozenset({0, 1, 3}), frozenset({0, 1, 2, 3}), AuthMethod.SPICE, 2),
        LinkSucceeded(ChannelType.MAIN, 0, frozenset({0, 1, 3}), frozenset({0, 1, 2, 3}),
                      True, 2),
    ]
    out = link.data_to_send()
    assert out[:4] == U32.pack(1) and len(out) == 4 + 128  # AUTH_SPICE, then the ticket
    assert link.data_to_send() == b""
    assert link.state is LinkState.SUCCEEDED


@pytest.mark.parametrize(("reply_file", "caps"), [
    ("inputs-link-reply.bin", frozenset({InputsCap.KEY_SCANCODE})),
    ("cursor-link-reply.bin", frozenset()),
    ("tls-main-link-reply.bin", frozenset({0, 1, 2, 3})),
])
def test_lab_link_replies_parse(reply_file: str, caps: frozenset[int]) -> None:
    link = main_link()
    (event,) = feed(link, fixture(reply_file))
    assert isinstance(event, LinkReplyReceived) and event.channel_caps == caps
    assert link.state is LinkState.AWAIT_RESULT


@pytest.mark.parametrize(("result_file", "error", "auth", "exc_type"), [
    ("link-result-permission-denied.bin", LinkError.PERMISSION_DENIED, True, SpiceAuthError),
    ("link-result-bad-connection-id.bin", LinkError.BAD_CONNECTION_ID, False, TransportError),
])
def test_lab_link_results_that_refuse(result_file: str, error: LinkError, auth: bool,
                                      exc_type: type[Exception]) -> None:
    link = main_link(password="wrong")
    events = feed(link, fixture("tls-main-link-reply.bin") + fixture(result_file))
    failed = events[-1]
    assert isinstance(failed, LinkFailed)
    assert (failed.error, failed.auth) == (error, auth)
    assert error.name in failed.reason
    exc = failed.exception()
    assert type(exc) is exc_type
    assert link.state is LinkState.FAILED
    assert link.receive_data(b"more") == []  # a failed link ignores what follows


def test_need_secured_is_its_own_event() -> None:
    link = main_link()
    assert feed(link, fixture("link-reply-need-secured.bin"), 5) == [NeedSecured()]
    assert link.state is LinkState.FAILED and link.data_to_send() == b""


def test_bytes_after_the_result_are_trailing_data() -> None:
    link = main_link()
    ping = bytes.fromhex("0400 0c000000 01000000 0828bc5601000000".replace(" ", ""))
    feed(link, fixture("main-link-reply.bin") + fixture("link-result-ok.bin") + ping[:5])
    link.receive_data(ping[5:])
    link.receive_data(b"")
    assert link.trailing_data == (ping, True)


# --- the ticket --------------------------------------------------------------------------

@pytest.mark.parametrize("password", ["secret", "", None, "ünïcode-ok", "x" * 60])
def test_ticket_decrypts_to_password_and_nul(rsa_key: rsa.RSAPrivateKey,
                                             password: str | None) -> None:
    der = pubkey_der(rsa_key)
    assert len(der) == 162  # SPICE_TICKET_PUBKEY_BYTES for RSA-1024
    link = main_link(password=password)
    feed(link, reply(pubkey=der))
    out = link.data_to_send()
    assert out[:4] == U32.pack(AuthMethod.SPICE)
    assert decrypt(rsa_key, out[4:]) == (password or "").encode() + b"\0"


def test_old_server_without_auth_selection_gets_the_bare_ticket(rsa_key: rsa.RSAPrivateKey) -> None:
    link = main_link(password="pw")
    feed(link, reply(pubkey=pubkey_der(rsa_key), common=(3,)))
    out = link.data_to_send()
    assert len(out) == 128 and decrypt(rsa_key, out) == b"pw\0"


def test_ticket_with_a_garbage_key_is_a_remote_error() -> None:
    with pytest.raises(RemoteProtocolError, match="public key"):
        encrypt_ticket(b"\x30\x81" + bytes(160), "pw")
    with pytest.raises(RemoteProtocolError):
        feed(main_link(), reply(pubkey=b"\xff" * 162))


def test_password_longer_than_a_ticket_holds_is_refused_early() -> None:
    with pytest.raises(SpiceAuthError, match="60 bytes"):
        LinkHandshake(ChannelType.MAIN, password="x" * 61)


def test_repr_never_shows_secrets() -> None:
    link = LinkHandshake(ChannelType.MAIN, password="hunter2",
                         sasl_credentials=SaslCredentials("u", "hunter3"))
    assert "hunter" not in repr(link) and "hunter" not in repr(SaslCredentials("u", "hunter3"))


# --- garbage and misuse ------------------------------------------------------------------

def caps_past_the_end() -> bytes:
    body = struct.pack("<I162sIII", 0, bytes(162), 9, 0, 178) + bytes(12)  # 9 caps, room for 3
    return struct.pack("<4sIII", b"REDQ", 2, 2, len(body)) + body


@pytest.mark.parametrize(("data", "match"), [
    (b"HTTP/1.1 400 Bad Request\r\n\r\n", "HTTP"),
    (reply(major=3), "protocol 3.2"),
    (struct.pack("<4sIII", b"REDQ", 2, 2, 10), "size 10"),
    (struct.pack("<4sIII", b"REDQ", 2, 2, 1 << 20), "size 1048576"),
    (caps_past_the_end(), "caps"),
], ids=["http", "major-3", "too-small", "too-large", "caps-past-end"])
def test_garbage_reply_raises_remote_error(data: bytes, match: str) -> None:
    with pytest.raises(RemoteProtocolError, match=match):
        feed(main_link(), data)


def test_late_error_reply_instead_of_a_result() -> None:
    """reds_send_link_error after the ack (e.g. an auth method the server won't take)."""
    link = main_link()
    events = feed(link, fixture("main-link-reply.bin") + reply(LinkError.INVALID_DATA), 3)
    assert isinstance(events[-1], LinkFailed) and events[-1].error is LinkError.INVALID_DATA


@pytest.mark.parametrize(("before", "outcome"), [
    (b"", LinkFailed),  # nothing at all: spice-server closes links to channels it lacks
    (b"REDQ", RemoteProtocolError),
    (fixture("main-link-reply.bin"), RemoteProtocolError),  # no link result
])
def test_eof_during_the_link(before: bytes, outcome: type) -> None:
    link = main_link()
    feed(link, before)
    if outcome is LinkFailed:
        (failed,) = link.receive_data(b"")
        assert isinstance(failed, LinkFailed) and "no MAIN channel" in failed.reason
    else:
        with pytest.raises(RemoteProtocolError, match="closed"):
            link.receive_data(b"")


def test_misuse_is_a_local_error() -> None:
    link = LinkHandshake(ChannelType.MAIN)
    with pytest.raises(LocalProtocolError):
        link.receive_data(b"x")
    link.initiate()
    with pytest.raises(LocalProtocolError):
        link.initiate()


def test_server_requiring_sasl_without_credentials() -> None:
    (failed,) = feed(main_link(), reply(common=(0, 2, 3)))
    assert isinstance(failed, LinkFailed) and failed.auth
    assert isinstance(failed.exception(), SpiceAuthError)


# --- SASL: transcripts from a real spice-server with Cyrus SASL -------------------------

@pytest.mark.parametrize("chunk", [None, 1, 13])
@pytest.mark.parametrize(("name", "creds", "mechanism"), [
    ("sasl-scram-sha-256", SASL_USER, "SCRAM-SHA-256"),
    ("sasl-plain", SaslCredentials("tester", "throwaway-pw", mechanisms=("PLAIN",)), "PLAIN"),
])
def test_sasl_transcript_replays_byte_for_byte(name: str, creds: SaslCredentials,
                                               mechanism: str, chunk: int | None) -> None:
    link = LinkHandshake(ChannelType.MAIN, 0, 0, channel_caps=[MainCap.NAME_AND_UUID],
                         sasl_credentials=creds, rng=fixed_rng)
    sent = bytearray(link.initiate())
    server = fixture(f"{name}-server.bin")
    events: list[LinkEvent] = []
    step = chunk or len(server)
    for i in range(0, len(server), step):
        events += link.receive_data(server[i : i + step])
        sent += link.data_to_send()
    assert bytes(sent) == fixture(f"{name}-client.bin")
    assert [type(e) for e in events] == [LinkReplyReceived, SaslMechanismChosen, LinkSucceeded]
    chosen = events[1]
    assert isinstance(chosen, SaslMechanismChosen)
    assert chosen == SaslMechanismChosen(mechanism, ("SCRAM-SHA-256", "DIGEST-MD5", "PLAIN"))
    assert link.auth is AuthMethod.SASL and link.state is LinkState.SUCCEEDED


def test_sasl_wrong_password_server_closes() -> None:
    link = LinkHandshake(ChannelType.MAIN, 0, 0, channel_caps=[MainCap.NAME_AND_UUID],
                         sasl_credentials=SaslCredentials("tester", "bad"), rng=fixed_rng)
    sent = bytearray(link.initiate())
    link.receive_data(fixture("sasl-scram-wrong-server.bin"))
    sent += link.data_to_send()
    assert bytes(sent) == fixture("sasl-scram-wrong-client.bin")
    (failed,) = link.receive_data(b"")
    assert isinstance(failed, LinkFailed) and failed.auth and "SCRAM-SHA-256" in failed.reason


def test_sasl_on_a_plain_port_says_use_tls() -> None:
    link = main_link(sasl_credentials=SASL_USER)
    events = feed(link, fixture("sasl-digest-only-server.bin"))
    failed = events[-1]
    assert isinstance(failed, LinkFailed) and failed.auth
    exc = failed.exception()
    assert isinstance(exc, SpiceAuthError) and "TLS" in str(exc) and "DIGEST-MD5" in str(exc)
    assert link.data_to_send() == b""


def _sasl_to_mechlist(mechlist: bytes, creds: SaslCredentials = SASL_USER) -> LinkHandshake:
    link = main_link(sasl_credentials=creds, rng=fixed_rng)
    feed(link, reply(common=(0, 2, 3)))
    assert link.data_to_send() == U32.pack(AuthMethod.SASL)
    feed(link, U32.pack(len(mechlist)) + mechlist)
    return link


def _client_data(data: bytes, offset: int = 0) -> tuple[bytes, int]:
    """One client SASL data message: u32 length counting a trailing NUL, the data, NUL."""
    (size,) = U32.unpack_from(data, offset)
    payload = data[offset + 4 : offset + 4 + size]
    assert size == 0 or payload.endswith(b"\0")
    return payload[:-1], offset + 4 + size


def _server_data(data: bytes | None, complete: int) -> bytes:
    """u32 length (+1 for the NUL, 0 = none), data, NUL, u8 complete (red-stream.cpp)."""
    if data is None:
        return U32.pack(0) + bytes([complete])
    return U32.pack(len(data) + 1) + data + b"\0" + bytes([complete])


def _scram_against_scramp(mech: str, forge_final: bool = False) -> list[LinkEvent]:
    server_mech = scramp.ScramMechanism(mech)
    auth = server_mech.make_auth_info("throwaway-pw", iteration_count=4096)
    server = server_mech.make_server(lambda username: auth)
    link = _sasl_to_mechlist(f",{mech},PLAIN,".encode())
    out = link.data_to_send()
    (name_len,) = U32.unpack_from(out)
    assert out[4 : 4 + name_len] == mech.encode()  # the name goes without a NUL
    first, _ = _client_data(out, 4 + name_len)
    server.set_client_first(first.decode())
    feed(link, _server_data(server.get_server_first().encode(), 0))
    final, _ = _client_data(link.data_to_send())
    server.set_client_final(final.decode())
    server_final = server.get_server_final().encode()
    if forge_final:
        server_final = b"v=" + bytes(reversed(server_final[2:]))
    return feed(link, _server_data(server_final, 1) + U32.pack(0) + U32.pack(0))


@pytest.mark.parametrize("mech", ["SCRAM-SHA-1", "SCRAM-SHA-256"])
def test_scram_against_scramp_server(mech: str) -> None:
    events = _scram_against_scramp(mech)
    assert isinstance(events[-1], LinkSucceeded)


def test_scram_server_with_a_bad_signature_fails_auth() -> None:
    (failed,) = _scram_against_scramp("SCRAM-SHA-256", forge_final=True)
    assert isinstance(failed, LinkFailed) and failed.auth and "prove" in failed.reason


def test_scram_server_asking_for_absurd_iterations() -> None:
    link = _sasl_to_mechlist(b",SCRAM-SHA-256,")
    link.data_to_send()
    nonce = "AAECAwQFBgcICQoLDA0ODxAR"
    first = f"r={nonce}xyz,s=QSXCR+Q6sek8bf92,i=999999999".encode()
    with pytest.raises(RemoteProtocolError, match="iterations"):
        feed(link, _server_data(first, 0))


def test_sasl_rejection_after_completion() -> None:
    link = _sasl_to_mechlist(b",PLAIN,")
    text = b"Authentication failed\0"
    (failed,) = feed(link, _server_data(None, 1) + U32.pack(1) + U32.pack(len(text)) + text, 1)
    assert isinstance(failed, LinkFailed) and failed.auth
    assert failed.reason.endswith("Authentication failed")


@pytest.mark.parametrize(("data", "match"), [
    (U32.pack(1 << 20), "mechanism list"),
    (U32.pack(4) + b",\xff,,", "not ASCII"),
])
def test_sasl_mechlist_garbage(data: bytes, match: str) -> None:
    link = main_link(sasl_credentials=SASL_USER)
    feed(link, reply(common=(0, 2, 3)))
    with pytest.raises(RemoteProtocolError, match=match):
        feed(link, data)


def test_sasl_server_data_too_large() -> None:
    link = _sasl_to_mechlist(b",PLAIN,")
    with pytest.raises(RemoteProtocolError, match="SASL server data"):
        feed(link, U32.pack((1 << 20) + 1))


def test_sasl_bad_complete_byte_and_status() -> None:
    link = _sasl_to_mechlist(b",PLAIN,")
    with pytest.raises(RemoteProtocolError, match="complete"):
        feed(link, _server_data(None, 7))
    link = _sasl_to_mechlist(b",PLAIN,")
    with pytest.raises(RemoteProtocolError, match="SASL result 9"):
        feed(link, _server_data(None, 1) + U32.pack(9))


@pytest.mark.parametrize(("offered", "wanted", "chosen"), [
    (("PLAIN", "SCRAM-SHA-1", "SCRAM-SHA-256"), SaslCredentials("u", "p"), "SCRAM-SHA-256"),
    (("DIGEST-MD5", "PLAIN", "SCRAM-SHA-1"), SaslCredentials("u", "p"), "SCRAM-SHA-1"),
    (("ANONYMOUS", "PLAIN"), SaslCredentials("u", "p"), "PLAIN"),
    (("SCRAM-SHA-256", "PLAIN"), SaslCredentials("u", "p", mechanisms=("plain",)), "PLAIN"),
])
def test_mechanism_preference(offered: tuple[str, ...], wanted: SaslCredentials,
                              chosen: str) -> None:
    assert choose_mechanism(offered, wanted) == chosen


def test_no_common_mechanism_names_both_sides() -> None:
    with pytest.raises(SpiceAuthError, match="ANONYMOUS"):
        choose_mechanism(("ANONYMOUS", "CRAM-MD5"), SaslCredentials("u", "p"))


def test_mechlist_parsing() -> None:
    assert parse_mechlist(b",SCRAM-SHA-256,DIGEST-MD5,PLAIN,") == (
        "SCRAM-SHA-256", "DIGEST-MD5", "PLAIN")
    assert parse_mechlist(b"plain scram-sha-1") == ("PLAIN", "SCRAM-SHA-1")
    with pytest.raises(RemoteProtocolError):
        parse_mechlist(b",PL@IN,")


@pytest.mark.parametrize(("args"), [(0, 0, 0), (256, 0, 0), (1, 256, 0), (1, 0, 2**32)])
def test_out_of_range_ids_are_local_errors(args: tuple[int, int, int]) -> None:
    with pytest.raises(LocalProtocolError, match="out of range"):
        LinkHandshake(*args)


def test_failure_hint_reaches_the_exception() -> None:
    (failed,) = feed(main_link(), reply(common=(0, 2, 3)))
    assert isinstance(failed, LinkFailed)
    exc = failed.exception()
    assert exc.hint is not None and exc.hint in str(exc)
