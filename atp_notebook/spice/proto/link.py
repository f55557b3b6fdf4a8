"""The link handshake of one Spice channel, sans-I/O: link message, auth, link result.

Flow (protocol.h structs; spice-server reds.cpp and spice-gtk spice-channel.c behaviour):

1. client: SpiceLinkHeader ("REDQ", 2, 2, size) + SpiceLinkMess + caps   — :meth:`initiate`
2. server: SpiceLinkHeader + SpiceLinkReply (error, 162-byte RSA key, caps)
3. client, when the server has AUTH_SELECTION: u32 mechanism (1 = ticket, 2 = SASL)
4. ticket: 128 bytes, RSA-OAEP(SHA-1) of ``password + NUL`` — sent even with ticketing
   off (empty password); SASL: the exchange in :meth:`_sasl_challenge`, then u32 0
5. server: u32 link result (SpiceLinkErr); OK means the channel is open.

A server that rejects something after step 2 sends a whole second SpiceLinkHeader +
SpiceLinkReply carrying the error (reds_send_link_error); "REDQ" where a u32 is due is
that, never a length or result (all of those are far below 0x51444552).

Outgoing bytes: :meth:`initiate` returns the first message; everything later (mechanism,
ticket, SASL responses) accumulates for :meth:`data_to_send`, which the adapter drains
after every :meth:`receive_data`. Feeding ``b""`` means the server closed the connection.

Example::

    link = LinkHandshake(ChannelType.MAIN, 0, 0, password="secret")
    sock.sendall(link.initiate())
    while link.state not in (LinkState.SUCCEEDED, LinkState.FAILED):
        events = link.receive_data(sock.recv(4096)); sock.sendall(link.data_to_send())
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterable
from enum import Enum

from atp_notebook.errors import LocalProtocolError, RemoteProtocolError, SpiceAuthError
from atp_notebook.spice.proto.buffer import ReceiveBuffer
from atp_notebook.spice.proto.constants import (
    MAGIC,
    MAX_PASSWORD_LENGTH,
    VERSION_MAJOR,
    VERSION_MINOR,
    ChannelType,
    CommonCap,
    LinkError,
    enum_or_int,
)
from atp_notebook.spice.proto.link_wire import (
    LINK_ERROR_REASONS,
    LINK_HEADER,
    LINK_MESS,
    U32,
    AuthMethod,
    LinkEvent,
    LinkFailed,
    LinkReplyReceived,
    LinkSucceeded,
    NeedSecured,
    SaslMechanismChosen,
    caps_to_words,
    encrypt_ticket,
    read_link_reply,
)
from atp_notebook.spice.proto.sasl import (
    SaslCredentials,
    SaslMechanism,
    choose_mechanism,
    parse_mechlist,
    start_mechanism,
)

MAX_MECHLIST = 4 * 1024  # spice-gtk allows 300; Cyrus lists are < 200
MAX_SASL_DATA = 1024 * 1024  # red-stream.cpp: SASL_DATA_MAX_LEN, both directions
MAX_SASL_REASON = 4 * 1024
SASL_REJECTED = 1  # red-stream.cpp: "u32 1, u32 len, text" after a completed SASL exchange


class LinkState(Enum):
    IDLE = "idle"  # initiate() not called yet
    AWAIT_REPLY = "await-reply"
    SASL_MECHLIST = "sasl-mechlist"
    SASL_CHALLENGE = "sasl-challenge"  # u32 len, data (+NUL), u8 complete
    SASL_STATUS = "sasl-status"  # u32 0 = accepted
    AWAIT_RESULT = "await-result"  # the u32 link result
    SUCCEEDED = "succeeded"
    FAILED = "failed"


class LinkHandshake:
    """Link one channel: ``initiate()``, then ``receive_data()`` until SUCCEEDED or FAILED.

    Events: LinkReplyReceived, SaslMechanismChosen, then exactly one of LinkSucceeded,
    NeedSecured, LinkFailed. Garbage from the server raises RemoteProtocolError.
    ``common_caps``/``channel_caps`` are capability bit numbers; the auth caps
    (AUTH_SELECTION, AUTH_SPICE, and AUTH_SASL when ``sasl_credentials`` are given) are
    added here. ``rng`` (default os.urandom) makes the SCRAM nonce; tests pass their own.
    """

    def __init__(
        self,
        channel_type: ChannelType | int,
        channel_id: int = 0,
        connection_id: int = 0,
        *,
        common_caps: Iterable[int] = (CommonCap.MINI_HEADER,),
        channel_caps: Iterable[int] = (),
        password: str | None = None,
        sasl_credentials: SaslCredentials | None = None,
        rng: Callable[[int], bytes] | None = None,
    ) -> None:
        if not (0 < channel_type < 256 and 0 <= channel_id < 256
                and 0 <= connection_id < 2**32):
            raise LocalProtocolError(
                f"channel {channel_type}:{channel_id}, connection id {connection_id}: out of "
                "range (u8, u8, u32)")
        if len((password or "").encode("utf-8")) > MAX_PASSWORD_LENGTH:
            raise SpiceAuthError(
                f"a Spice password holds at most {MAX_PASSWORD_LENGTH} bytes",
                hint="Spice tickets carry at most 60 bytes; use a shorter password or SASL")
        self.channel_type = enum_or_int(ChannelType, channel_type)
        self.channel_id = channel_id
        self.connection_id = connection_id
        auth_caps = {CommonCap.PROTOCOL_AUTH_SELECTION, CommonCap.AUTH_SPICE}
        if sasl_credentials is not None:
            auth_caps.add(CommonCap.AUTH_SASL)
        self.common_caps = frozenset(common_caps) | auth_caps
        self.channel_caps = frozenset(channel_caps)
        self.state = LinkState.IDLE
        self.auth: AuthMethod | None = None
        self.mechanism: str | None = None
        self.bytes_received = 0
        self.bytes_sent = 0
        self._password = password or ""
        self._sasl_credentials = sasl_credentials
        self._rng = rng or os.urandom
        self._sasl: SaslMechanism | None = None
        self._buffer = ReceiveBuffer()
        self._out = bytearray()
        self._reply: LinkReplyReceived | None = None
        self._eof = False

    def __repr__(self) -> str:  # never the password
        return f"<LinkHandshake {self._channel_name()}:{self.channel_id} {self.state.value}>"

    # --- the adapter's side ---------------------------------------------------------

    def initiate(self) -> bytes:
        """The link message: SpiceLinkHeader + SpiceLinkMess + common caps + channel caps."""
        if self.state is not LinkState.IDLE:
            raise LocalProtocolError(f"initiate() in state {self.state.value}")
        common, channel = caps_to_words(self.common_caps), caps_to_words(self.channel_caps)
        body = LINK_MESS.pack(self.connection_id, self.channel_type, self.channel_id,
                              len(common), len(channel), LINK_MESS.size)
        body += b"".join(U32.pack(w) for w in common + channel)
        self.state = LinkState.AWAIT_REPLY
        data = LINK_HEADER.pack(MAGIC, VERSION_MAJOR, VERSION_MINOR, len(body)) + body
        self.bytes_sent += len(data)
        return data

    def data_to_send(self) -> bytes:
        """Bytes to write now (mechanism, ticket, SASL responses); empties the queue."""
        data = bytes(self._out)
        self._out.clear()
        self.bytes_sent += len(data)
        return data

    @property
    def trailing_data(self) -> tuple[bytes, bool]:
        """After SUCCEEDED: (bytes that followed the link result, whether EOF came too).
        Feed them to the channel protocol before anything read later."""
        return self._buffer.peek(len(self._buffer)) or b"", self._eof

    def receive_data(self, data: bytes) -> list[LinkEvent]:
        """Server bytes in (``b""``: it closed), events out; then send data_to_send()."""
        if self.state is LinkState.IDLE:
            raise LocalProtocolError("receive_data() before initiate()")
        if self.state is LinkState.FAILED:
            return []
        self.bytes_received += len(data)
        if self.state is LinkState.SUCCEEDED:
            self._buffer.feed(data)  # channel messages: kept for trailing_data
            self._eof = self._eof or not data
            return []
        if not data:
            return self._closed()
        self._buffer.feed(data)
        events: list[LinkEvent] = []
        while self.state not in (LinkState.SUCCEEDED, LinkState.FAILED):
            step = self._step()
            if step is None:
                break
            events.extend(step)
        return events

    # --- the states -------------------------------------------------------------------

    def _step(self) -> list[LinkEvent] | None:
        if self.state is LinkState.AWAIT_REPLY:
            return self._link_reply()
        if self._buffer.peek(4) == MAGIC:  # a late SpiceLinkReply carrying an error
            return self._late_error_reply()
        if self.state is LinkState.SASL_MECHLIST:
            return self._sasl_mechlist()
        if self.state is LinkState.SASL_CHALLENGE:
            return self._sasl_challenge()
        if self.state is LinkState.SASL_STATUS:
            return self._sasl_status()
        return self._link_result()

    def _link_reply(self) -> list[LinkEvent] | None:
        reply = read_link_reply(self._buffer)
        if reply is None:
            return None
        if reply.error != LinkError.OK:
            return self._refused(reply.error)
        common = reply.common_caps
        if CommonCap.PROTOCOL_AUTH_SELECTION not in common:
            auth = AuthMethod.SPICE  # an old server: the ticket, without a mechanism word
        elif CommonCap.AUTH_SASL in common and self._sasl_credentials is not None:
            auth = AuthMethod.SASL
        elif CommonCap.AUTH_SPICE in common:
            auth = AuthMethod.SPICE
        elif CommonCap.AUTH_SASL in common:
            return self._fail(None, "the server requires SASL authentication", auth=True,
                              hint="configure a username (and password) for this VM")
        else:
            raise RemoteProtocolError(
                f"the server offers no auth method we know (common caps {sorted(common)})")
        self.auth = auth
        self._reply = LinkReplyReceived(common, reply.channel_caps, auth, reply.minor_version)
        if CommonCap.PROTOCOL_AUTH_SELECTION in common:
            self._out += U32.pack(auth)
        if auth is AuthMethod.SPICE:
            self._out += encrypt_ticket(reply.public_key, self._password)
            self.state = LinkState.AWAIT_RESULT
        else:
            self.state = LinkState.SASL_MECHLIST
        return [self._reply]

    def _late_error_reply(self) -> list[LinkEvent] | None:
        reply = read_link_reply(self._buffer)
        if reply is None:
            return None
        if reply.error == LinkError.OK:
            raise RemoteProtocolError(f"a second link reply, without an error, in {self.state}")
        return self._refused(reply.error)

    def _sasl_mechlist(self) -> list[LinkEvent] | None:
        size = self._buffer.peek_u32()
        if size is None:
            return None
        if size > MAX_MECHLIST:
            raise RemoteProtocolError(f"SASL mechanism list of {size} bytes (max {MAX_MECHLIST})")
        if len(self._buffer) < 4 + size:
            return None
        self._buffer.take(4)
        offered = parse_mechlist(self._buffer.take(size))
        credentials = self._sasl_credentials
        assert credentials is not None  # SASL is chosen only with credentials
        try:
            name = choose_mechanism(offered, credentials)
            self._sasl = start_mechanism(name, credentials, self._rng)
            first = self._sasl.initial_response()
        except SpiceAuthError as exc:
            return self._fail(None, exc.message, auth=True, hint=exc.hint)
        self.mechanism = name
        self._out += U32.pack(len(name)) + name.encode("ascii")
        self._send_sasl_data(first)
        self.state = LinkState.SASL_CHALLENGE
        return [SaslMechanismChosen(name, offered)]

    def _sasl_challenge(self) -> list[LinkEvent] | None:
        size = self._buffer.peek_u32()
        if size is None:
            return None
        if size > MAX_SASL_DATA:
            raise RemoteProtocolError(f"SASL server data of {size} bytes (max {MAX_SASL_DATA})")
        if len(self._buffer) < 4 + size + 1:
            return None
        self._buffer.take(4)
        raw = self._buffer.take(size)
        complete = self._buffer.take(1)[0]
        if complete > 1:
            raise RemoteProtocolError(f"SASL 'complete' byte is {complete}, not 0 or 1")
        # red-stream.cpp sends serveroutlen + 1 bytes: the data and its NUL terminator
        challenge = raw[:-1] if raw else b""
        assert self._sasl is not None
        try:
            response = self._sasl.step(challenge, bool(complete))
        except SpiceAuthError as exc:
            return self._fail(None, exc.message, auth=True, hint=exc.hint)
        if complete:
            self.state = LinkState.SASL_STATUS
        elif response is None:
            raise RemoteProtocolError(f"SASL {self.mechanism}: the server wants more data")
        else:
            self._send_sasl_data(response)
        return []

    def _send_sasl_data(self, data: bytes) -> None:
        # spice-channel.c: the length counts a trailing NUL that is sent too (0 = no data)
        if len(data) + 1 > MAX_SASL_DATA:
            raise LocalProtocolError(f"SASL client data of {len(data)} bytes is too long")
        self._out += U32.pack(len(data) + 1) + data + b"\0"

    def _sasl_status(self) -> list[LinkEvent] | None:
        status = self._buffer.peek_u32()
        if status is None:
            return None
        if status == LinkError.OK:
            self._buffer.take(4)
            self.state = LinkState.AWAIT_RESULT
            return []
        if status != SASL_REJECTED:
            raise RemoteProtocolError(f"SASL result {status}, expected 0 (accepted) or 1")
        size = self._buffer.peek_u32(4)
        if size is None:
            return None
        if size > MAX_SASL_REASON:
            raise RemoteProtocolError(f"SASL rejection text of {size} bytes")
        if len(self._buffer) < 8 + size:
            return None
        self._buffer.take(8)
        text = self._buffer.take(size).rstrip(b"\0").decode("utf-8", "replace")
        return self._fail(None, f"SASL {self.mechanism} authentication rejected: {text}",
                          auth=True)

    def _link_result(self) -> list[LinkEvent] | None:
        result = self._buffer.peek_u32()
        if result is None:
            return None
        self._buffer.take(4)
        if result != LinkError.OK:
            return self._refused(result)
        self.state = LinkState.SUCCEEDED
        reply = self._reply
        assert reply is not None
        mini = (CommonCap.MINI_HEADER in reply.common_caps
                and CommonCap.MINI_HEADER in self.common_caps)
        return [LinkSucceeded(self.channel_type, self.channel_id, reply.common_caps,
                              reply.channel_caps, mini, reply.minor_version)]

    # --- endings ----------------------------------------------------------------------

    def _refused(self, code: int) -> list[LinkEvent]:
        error = enum_or_int(LinkError, code)
        if error == LinkError.NEED_SECURED:
            self.state = LinkState.FAILED
            return [NeedSecured()]
        what, hint = LINK_ERROR_REASONS.get(error, ("the server refused the link", None))
        name = error.name if isinstance(error, LinkError) else str(error)
        return self._fail(error, f"{what} ({name}; {self._channel_name()} channel "
                                 f"{self.channel_id})",
                          auth=error == LinkError.PERMISSION_DENIED, hint=hint)

    def _channel_name(self) -> str:
        return (self.channel_type.name if isinstance(self.channel_type, ChannelType)
                else f"type-{self.channel_type}")

    def _fail(self, error: LinkError | int | None, reason: str, *, auth: bool,
              hint: str | None = None) -> list[LinkEvent]:
        self.state = LinkState.FAILED
        self._out.clear()
        return [LinkFailed(error, reason, auth, hint)]

    def _closed(self) -> list[LinkEvent]:
        if self.state in (LinkState.SASL_CHALLENGE, LinkState.SASL_STATUS):
            # red-stream.cpp: a failed SASL step just closes the connection
            return self._fail(None, f"the server closed the connection during SASL "
                                    f"{self.mechanism}: wrong username or password?",
                              auth=True)
        if self.state is LinkState.AWAIT_REPLY and not self._buffer:
            # reds.cpp reds_send_link_ack: a channel the server lacks is closed unanswered
            return self._fail(None, f"the server closed the connection without a link reply: "
                                    f"it has no {self._channel_name()} channel "
                                    f"{self.channel_id}", auth=False,
                              hint="ATTACH_CHANNELS' CHANNELS_LIST names the channels it has")
        raise RemoteProtocolError(
            f"the server closed the connection while we were in {self.state.value} "
            f"({self.bytes_received} bytes received)")
