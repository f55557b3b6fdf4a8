"""The link's wire layouts, capability words, the ticket, and the handshake's events.

protocol.h structs: SpiceLinkHeader (16 bytes), SpiceLinkMess (18 bytes, then the caps
words), SpiceLinkReply (178 bytes: error, the server's 162-byte RSA-1024 public key as DER
SubjectPublicKeyInfo, caps counts and offset, then the caps words). The state machine
that uses them is :mod:`.link`.

Example::

    caps_to_words([CommonCap.PROTOCOL_AUTH_SELECTION, CommonCap.MINI_HEADER])   # [0b1001]
    encrypt_ticket(reply_public_key_der, "secret")                                 # 128 bytes
"""

from __future__ import annotations

import struct
from collections.abc import Iterable
from dataclasses import dataclass
from enum import IntEnum

from cryptography.exceptions import UnsupportedAlgorithm
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import padding, rsa

from atp_notebook.errors import AtpError, RemoteProtocolError, SpiceAuthError, TransportError
from atp_notebook.spice.proto.buffer import ReceiveBuffer
from atp_notebook.spice.proto.constants import (
    MAGIC,
    TICKET_PUBKEY_BYTES,
    VERSION_MAJOR,
    VERSION_MINOR,
    ChannelType,
    CommonCap,
    LinkError,
)

LINK_HEADER = struct.Struct("<4sIII")  # SpiceLinkHeader: magic, major, minor, size
LINK_MESS = struct.Struct("<IBBIII")  # SpiceLinkMess: conn id, type, id, #common, #chan, offset
LINK_REPLY = struct.Struct(f"<I{TICKET_PUBKEY_BYTES}sIII")  # SpiceLinkReply, 178 bytes
U32 = struct.Struct("<I")  # auth mechanism, link result, SASL lengths and status
MAX_LINK_REPLY = 64 * 1024  # real replies are 178 bytes + a few caps


class AuthMethod(IntEnum):
    """What we authenticate with; the values are the SpiceLinkAuthMechanism numbers."""

    SPICE = CommonCap.AUTH_SPICE  # RSA-encrypted ticket
    SASL = CommonCap.AUTH_SASL


@dataclass(frozen=True, slots=True)
class LinkReplyReceived:
    """The server accepted the link message; authentication follows with ``auth``."""

    common_caps: frozenset[int]
    channel_caps: frozenset[int]
    auth: AuthMethod
    minor_version: int


@dataclass(frozen=True, slots=True)
class SaslMechanismChosen:
    mechanism: str
    offered: tuple[str, ...]


@dataclass(frozen=True, slots=True)
class LinkSucceeded:
    """The channel is open: messages follow (start with :attr:`LinkHandshake.trailing_data`)."""

    channel_type: ChannelType | int
    channel_id: int
    common_caps: frozenset[int]  # the server's
    channel_caps: frozenset[int]  # the server's
    mini_header: bool  # both sides have MINI_HEADER: 6-byte message headers
    minor_version: int


@dataclass(frozen=True, slots=True)
class NeedSecured:
    """SPICE_LINK_ERR_NEED_SECURED: link this channel again over TLS, to the TLS port."""


@dataclass(frozen=True, slots=True)
class LinkFailed:
    """The link was refused. ``error`` is the server's SpiceLinkErr when it sent one;
    ``auth`` says the refusal was about credentials (raise SpiceAuthError)."""

    error: LinkError | int | None
    reason: str
    auth: bool = False
    hint: str | None = None

    def exception(self) -> AtpError:
        """The error the adapter raises for this refusal."""
        if self.auth:
            return SpiceAuthError(self.reason, hint=self.hint)
        return TransportError(self.reason, hint=self.hint)


@dataclass(frozen=True, slots=True)
class LinkReply:
    """A parsed SpiceLinkReply; the caps are read only when ``error`` is OK."""

    minor_version: int
    error: int
    public_key: bytes
    common_caps: frozenset[int]
    channel_caps: frozenset[int]


def read_link_reply(buffer: ReceiveBuffer) -> LinkReply | None:
    """Take one SpiceLinkHeader + SpiceLinkReply (+ caps) from ``buffer``, or None (and
    nothing taken) until all of it is there. Garbage raises RemoteProtocolError early:
    from the 16-byte header, before waiting for a body that may never come."""
    header = buffer.peek(LINK_HEADER.size)
    if header is None:
        return None
    magic, major, minor, size = LINK_HEADER.unpack(header)
    if magic != MAGIC:
        raise RemoteProtocolError(
            f"not a Spice server: the link reply starts {header[:8]!r}, not b'REDQ'")
    if major != VERSION_MAJOR:
        raise RemoteProtocolError(f"the server speaks Spice protocol {major}.{minor}; we "
                                  f"speak {VERSION_MAJOR}.{VERSION_MINOR}")
    if not LINK_REPLY.size <= size <= MAX_LINK_REPLY:
        raise RemoteProtocolError(
            f"link reply size {size} outside {LINK_REPLY.size}..{MAX_LINK_REPLY}")
    if len(buffer) < LINK_HEADER.size + size:
        return None
    buffer.take(LINK_HEADER.size)
    body = buffer.take(size)
    error, public_key, n_common, n_channel, caps_offset = LINK_REPLY.unpack_from(body)
    if error != LinkError.OK:  # reds_send_link_error zeroes everything but the error
        return LinkReply(minor, error, public_key, frozenset(), frozenset())
    caps_end = caps_offset + 4 * (n_common + n_channel)
    if caps_offset < LINK_REPLY.size or caps_end > len(body):
        raise RemoteProtocolError(
            f"link reply caps ({n_common}+{n_channel} at offset {caps_offset}) do not fit "
            f"its {len(body)} bytes")
    words = struct.unpack_from(f"<{n_common + n_channel}I", body, caps_offset)
    return LinkReply(minor, error, public_key, words_to_caps(words[:n_common]),
                     words_to_caps(words[n_common:]))


LinkEvent = LinkReplyReceived | SaslMechanismChosen | LinkSucceeded | NeedSecured | LinkFailed


def caps_to_words(caps: Iterable[int]) -> list[int]:
    """Capability bit numbers -> the u32 words of a caps array (bit n in word n // 32)."""
    bits = set(caps)
    words = [0] * ((max(bits) // 32 + 1) if bits else 0)
    for bit in bits:
        words[bit // 32] |= 1 << (bit % 32)
    return words


def words_to_caps(words: Iterable[int]) -> frozenset[int]:
    return frozenset(i * 32 + b for i, word in enumerate(words) for b in range(32)
                     if word >> b & 1)


def encrypt_ticket(public_key_der: bytes, password: str) -> bytes:
    """The Spice ticket: RSA-OAEP with SHA-1 (and MGF1-SHA-1) of ``password + NUL``, as
    OpenSSL's RSA_PKCS1_OAEP_PADDING does; 128 bytes for the server's RSA-1024 key."""
    try:
        key = serialization.load_der_public_key(public_key_der)
        if not isinstance(key, rsa.RSAPublicKey):
            raise TypeError(f"a {type(key).__name__}, not an RSA key")
        # SHA-1 is what the protocol fixes (RSA_PKCS1_OAEP_PADDING); the server decrypts
        # with nothing else
        oaep = padding.OAEP(mgf=padding.MGF1(algorithm=hashes.SHA1()),  # noqa: S303
                            algorithm=hashes.SHA1(), label=None)  # noqa: S303
        return key.encrypt(password.encode("utf-8") + b"\0", oaep)
    except (ValueError, TypeError, UnsupportedAlgorithm) as exc:
        raise RemoteProtocolError(f"the link reply's public key is unusable: {exc}") from exc


LINK_ERROR_REASONS: dict[int, tuple[str, str | None]] = {
    LinkError.PERMISSION_DENIED: ("the server refused the ticket: wrong or expired password",
                                  "check the VM's Spice password (password / password_file)"),
    LinkError.BAD_CONNECTION_ID: ("the server does not know this session (connection id)",
                                  "link the main channel first and use MAIN_INIT's session_id"),
    LinkError.CHANNEL_NOT_AVAILABLE: ("the server has no such channel", None),
    LinkError.VERSION_MISMATCH: ("the server refused the protocol version or auth selection",
                                 "a SASL server answers this to clients without SASL"),
    LinkError.INVALID_DATA: ("the server found the link data invalid", None),
    LinkError.NEED_UNSECURED: ("the server wants this channel over plain TCP, not TLS", None),
}
