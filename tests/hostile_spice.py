"""A small Spice server for tests: an honest link and Main/Inputs, a display that lies.

It links every channel as spice-server does (SpiceLinkHeader + SpiceLinkMess in, a link
reply carrying a fresh RSA-1024 public key as DER SubjectPublicKeyInfo, the auth mechanism
and the 128-byte RSA-OAEP ticket checked against ``password``, then the u32 link result),
with the mini header when the client has MINI_HEADER. A channel other than Main must name
Main's session id, or gets BAD_CONNECTION_ID. After the link:

- Main: SET_ACK, MAIN_INIT with ``session_id``; ATTACH_CHANNELS is answered with a
  CHANNELS_LIST naming main, display and inputs. :meth:`HostileSpiceServer.ping` sends PINGs
  and waits for their PONGs (a live Main answers them).
- Port (``ports``: names of port channels 0, 1, ...): no SET_ACK (vmc channels have no acks),
  PORT_INIT, the port's ``port_scripts`` steps on its first link, then an echo of the data
  the client sends; :meth:`HostileSpiceServer.port_event` sends the guest's PORT_EVENTs.
- Cursor (listed only with ``cursor``): SET_ACK, then the steps of that link (the first
  link plays ``cursor[0]``, a relink ``cursor[1]``, ...), then it reads until the client
  closes.
- Playback (``playback``): as Cursor, the steps of each link in turn (not listed).
- Inputs: SET_ACK, INPUTS_INIT; every message the client sends is kept, the keys among
  them in order (:meth:`key_messages`).
- Display: SET_ACK, then once DISPLAY_INIT (and the ACK_SYNC: the client has taken the
  SET_ACK) arrived, ``display`` is played: :class:`Send` (a framed message), :class:`Raw`
  (bytes as they are: a header that lies), :class:`Pause`, :class:`Gate` (wait for the
  test), :class:`Close` and :class:`Trickle` (a slowloris: one byte per interval). Like
  spice-server it sends no more than twice the ACK window ahead of the client's ACKs.
  Afterwards it reads until the client closes the channel. Display channels linked later
  (the client opening it again) get ``display_after`` instead.

Framing comes from the project (``MessageReader`` reads the client, ``MessageWriter``
frames for it): one framer, used from both ends.

Example (on an event loop)::

    async with HostileSpiceServer([Send(DisplayMsg.SURFACE_CREATE, body)]) as server:
        vm = SpiceVmConnection("hostile", server.endpoint)
        await vm.open_channel(ChannelType.DISPLAY)
        await server.display_closed.wait()
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import struct
import threading
import time
from collections.abc import Callable, Coroutine, Sequence
from dataclasses import dataclass, field
from types import TracebackType
from typing import Any, TypeVar

from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import padding, rsa

from atp_notebook.config import Secret
from atp_notebook.spice.endpoint import SpiceEndpoint
from atp_notebook.spice.proto.common import PING, PONG, SET_ACK
from atp_notebook.spice.proto.constants import (
    MAGIC,
    TICKET_BYTES,
    TICKET_KEY_BITS,
    VERSION_MAJOR,
    VERSION_MINOR,
    ChannelType,
    CommonCap,
    DisplayMsgc,
    InputsCap,
    InputsMsg,
    InputsMsgc,
    LinkError,
    MainMsg,
    MainMsgc,
    MouseMode,
    Msg,
    Msgc,
)
from atp_notebook.spice.proto.display import DISPLAY_INIT
from atp_notebook.spice.proto.framing import MessageReader, MessageWriter, RawMessage
from atp_notebook.spice.proto.inputs import MODIFIERS
from atp_notebook.spice.proto.link_wire import (
    LINK_HEADER,
    LINK_MESS,
    LINK_REPLY,
    U32,
    caps_to_words,
    words_to_caps,
)
from atp_notebook.spice.proto.main import CHANNEL_ID, CHANNELS_COUNT, INIT
from atp_notebook.spice.proto.port import PORT_EVENT, PORT_INIT, SPICEVMC_DATA

T = TypeVar("T")
SERVER_COMMON_CAPS = (CommonCap.PROTOCOL_AUTH_SELECTION, CommonCap.AUTH_SPICE,
                      CommonCap.MINI_HEADER)
SERVER_CHANNEL_CAPS: dict[int, tuple[int, ...]] = {
    ChannelType.INPUTS: (InputsCap.KEY_SCANCODE,),
}
SERVED = (ChannelType.MAIN, ChannelType.DISPLAY, ChannelType.INPUTS, ChannelType.PORT,
          ChannelType.CURSOR, ChannelType.PLAYBACK)
KEY_MESSAGES = (InputsMsgc.KEY_DOWN, InputsMsgc.KEY_UP, InputsMsgc.KEY_SCANCODE)
MAX_LINK_MESS = 4096  # a real link message is 18 bytes + a few caps words
STEP_TIMEOUT_S = 10.0  # every wait of the server on its client is bounded


@dataclass(frozen=True, slots=True)
class Send:
    """One display message, framed as the link agreed (``count`` times)."""

    msg_type: int
    body: bytes = b""
    count: int = 1


@dataclass(frozen=True, slots=True)
class Raw:
    """Bytes written as they are (a header announcing what never comes, say)."""

    data: bytes


@dataclass(frozen=True, slots=True)
class Pause:
    seconds: float


@dataclass(frozen=True, slots=True)
class Trickle:
    """``data`` one byte every ``interval`` seconds, until it is all sent or the client
    closed the channel (a slowloris)."""

    data: bytes
    interval: float


@dataclass(frozen=True, slots=True)
class Gate:
    """Wait until the test calls :meth:`HostileSpiceServer.open_gate` (bounded by the
    server's step timeout): a test sees the honest part drawn before the lie comes."""


@dataclass(frozen=True, slots=True)
class Close:
    """Close the display connection (a server gone in the middle of a message, say)."""


Step = Send | Raw | Pause | Trickle | Gate | Close


@dataclass(frozen=True, slots=True)
class DisplayInit:
    """The client's DISPLAY_INIT (spice.proto ``init = 101``)."""

    pixmap_cache_id: int
    pixmap_cache_size: int
    glz_dictionary_id: int
    glz_window: int


@dataclass
class Link:
    """One linked connection, as the server sees it."""

    channel_type: int
    channel_id: int
    common_caps: frozenset[int]
    channel_caps: frozenset[int]
    mini_header: bool
    writer: asyncio.StreamWriter
    framer: MessageWriter
    received: list[RawMessage] = field(default_factory=list)
    closed: asyncio.Event = field(default_factory=asyncio.Event)
    acks: int = 0  # ACK messages: one per ACK window of messages handled
    sent: int = 0  # messages sent after SET_ACK (what the ACKs count)

    def send(self, msg_type: int, body: bytes = b"") -> None:
        self.writer.write(self.framer.pack(msg_type, body))
        self.sent += 1


@functools.cache
def server_key() -> rsa.RSAPrivateKey:
    """The server's ticket key pair (spice-server makes one per channel link; one per test
    process is as good and saves the key generation)."""
    return rsa.generate_private_key(public_exponent=65537, key_size=TICKET_KEY_BITS)


def public_key_der() -> bytes:
    return server_key().public_key().public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)


def decrypt_ticket(ticket: bytes) -> bytes | None:
    """The ticket's password bytes (without the NUL), or None when it does not decrypt."""
    oaep = padding.OAEP(mgf=padding.MGF1(algorithm=hashes.SHA1()),
                        algorithm=hashes.SHA1(), label=None)
    try:
        plain = server_key().decrypt(ticket, oaep)
    except ValueError:
        return None
    return plain.split(b"\0", 1)[0]


class HostileSpiceServer:
    """Main, Inputs and one Display channel on 127.0.0.1 (a free port); see the module.

    ``ack_window`` is the SET_ACK window every channel gets (spice-server: 20).
    """

    def __init__(self, display: Sequence[Step] = (), *, display_after: Sequence[Step] = (),
                 session_id: int = 0x5EC1D, password: str = "", ack_window: int = 20,
                 step_timeout: float = STEP_TIMEOUT_S, ports: Sequence[str] = (),
                 port_scripts: dict[str, Sequence[Step]] | None = None,
                 cursor: Sequence[Sequence[Step]] = (),
                 playback: Sequence[Sequence[Step]] = ()) -> None:
        # playback: the steps of the playback channel's first link, second link, ... (as
        # cursor; the channel is not listed in CHANNELS_LIST)
        self.playback_scripts = tuple(tuple(steps) for steps in playback)
        # cursor: the steps of cursor channel 0's first link, second link, ...; the channel
        # is listed only when given (after the steps, it reads until the client closes)
        self.cursor_scripts = tuple(tuple(steps) for steps in cursor)
        # ports: port channels 0, 1, ... of these names; each echoes the data it gets and
        # first plays its port_scripts entry (on its first link only), as a display does
        self.ports = tuple(ports)
        self.port_scripts = dict(port_scripts or {})
        self.port_guest_opened = True  # PORT_INIT's opened
        self.scenario = tuple(display)
        self.scenario_after = tuple(display_after)
        self.session_id = session_id
        self.password = password
        self.ack_window = ack_window
        self.step_timeout = step_timeout
        self.links: list[Link] = []
        self.refused: list[str] = []  # why links were refused
        self.display_init: DisplayInit | None = None
        # the first display channel's: every step played (or the client left); closed
        self.scenario_done = asyncio.Event()
        self.display_closed = asyncio.Event()
        self.stalled = False  # the client stopped ACKing: the scenario stopped there
        self.trickled = 0  # Trickle bytes written before the client closed
        self._changed = asyncio.Condition()
        self._gate = asyncio.Event()
        self._server: asyncio.Server | None = None
        self._handlers: set[asyncio.Task[None]] = set()
        self._ping_id = 0

    # --- lifetime -------------------------------------------------------------------------

    async def start(self) -> HostileSpiceServer:
        self._server = await asyncio.start_server(self._accept, "127.0.0.1", 0)
        return self

    @property
    def port(self) -> int:
        assert self._server is not None, "start() first"
        port: int = self._server.sockets[0].getsockname()[1]
        return port

    @property
    def endpoint(self) -> SpiceEndpoint:
        return SpiceEndpoint("127.0.0.1", port=self.port,
                             password=Secret(self.password) if self.password else None)

    async def close(self) -> None:
        """Stop listening and end every connection: closed sockets end the handlers that
        read; the ones waiting in a step (a Gate, a Pause) are cancelled."""
        if self._server is not None:
            self._server.close()
        for link in self.links:
            link.writer.close()
        self._gate.set()
        if self._handlers:
            await asyncio.wait(self._handlers, timeout=1.0)
        for task in list(self._handlers):
            task.cancel()
        if self._handlers:
            await asyncio.wait(self._handlers, timeout=self.step_timeout)
        if self._server is not None:
            await self._server.wait_closed()

    async def __aenter__(self) -> HostileSpiceServer:
        return await self.start()

    async def __aexit__(self, kind: type[BaseException] | None, exc: BaseException | None,
                        tb: TracebackType | None) -> None:
        await self.close()

    # --- what tests ask -------------------------------------------------------------------

    def link(self, channel_type: int, channel_id: int = 0) -> Link:
        """The latest link of that channel."""
        for link in reversed(self.links):
            if (link.channel_type, link.channel_id) == (channel_type, channel_id):
                return link
        raise LookupError(f"no {channel_type}:{channel_id} link yet")

    def key_messages(self) -> list[RawMessage]:
        """Every key message the Inputs channels sent, in order."""
        return [m for link in self.links if link.channel_type == ChannelType.INPUTS
                for m in link.received if m.msg_type in KEY_MESSAGES]

    def open_gate(self) -> None:
        """Let the display scenario go on past its :class:`Gate`."""
        self._gate.set()

    def display_links(self) -> list[Link]:
        return [link for link in self.links if link.channel_type == ChannelType.DISPLAY]

    async def wait_until(self, predicate: Callable[[], bool], timeout: float,
                         what: str) -> None:
        """Until ``predicate()`` holds (checked at each client message, each message the
        display scenario sent, and each channel end)."""
        try:
            async with asyncio.timeout(timeout):
                async with self._changed:
                    await self._changed.wait_for(predicate)
        except TimeoutError:
            raise AssertionError(f"hostile server: no {what} within {timeout:g} s") from None

    async def ping(self, channel_type: int = ChannelType.MAIN, count: int = 3,
                   timeout: float = 5.0) -> list[int]:
        """Send ``count`` PINGs on the channel; the PONG ids, once every one came back."""
        link = self.link(channel_type)
        ids = []
        for _ in range(count):
            self._ping_id += 1
            ids.append(self._ping_id)
            link.send(Msg.PING, PING.pack(self._ping_id, time.monotonic_ns()))
        await link.writer.drain()

        def pongs() -> list[int]:
            return [PONG.unpack_from(m.body)[0] for m in link.received
                    if m.msg_type == Msgc.PONG and len(m.body) >= PONG.size]

        await self.wait_until(lambda: set(ids) <= set(pongs()), timeout,
                              f"PONG for pings {ids}")
        return [i for i in pongs() if i in ids]

    # --- the link ---------------------------------------------------------------------------

    async def _accept(self, reader: asyncio.StreamReader,
                      writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        assert task is not None
        self._handlers.add(task)
        try:
            link = await asyncio.wait_for(self._link(reader, writer), self.step_timeout)
            if link is not None:
                await self._serve(link, reader)
        except (ConnectionError, asyncio.IncompleteReadError, TimeoutError):
            pass  # the client went away: what a hostile test expects of it
        except asyncio.CancelledError:
            # only close() cancels; ending normally keeps asyncio's stream callback (3.11)
            # from logging the cancellation as an error
            pass
        finally:
            self._handlers.discard(task)
            writer.close()

    async def _link(self, reader: asyncio.StreamReader,
                    writer: asyncio.StreamWriter) -> Link | None:
        magic, major, _minor, size = LINK_HEADER.unpack(
            await reader.readexactly(LINK_HEADER.size))
        if magic != MAGIC or major != VERSION_MAJOR or not LINK_MESS.size <= size <= MAX_LINK_MESS:
            self.refused.append(f"bad link header {magic!r} {major} {size}")
            return None
        mess = await reader.readexactly(size)
        connection_id, channel_type, channel_id, n_common, n_channel, offset = \
            LINK_MESS.unpack_from(mess)
        words = struct.unpack_from(f"<{n_common + n_channel}I", mess, offset)
        common, caps = words_to_caps(words[:n_common]), words_to_caps(words[n_common:])
        ids = len(self.ports) if channel_type == ChannelType.PORT else 1
        if channel_type not in SERVED or not 0 <= channel_id < ids:
            # reds.cpp: a channel the server lacks is closed without a reply
            self.refused.append(f"no channel {channel_type}:{channel_id}")
            return None
        ours_common = caps_to_words(SERVER_COMMON_CAPS)
        ours_channel = caps_to_words(SERVER_CHANNEL_CAPS.get(channel_type, ()))
        reply = LINK_REPLY.pack(LinkError.OK, public_key_der(), len(ours_common),
                                len(ours_channel), LINK_REPLY.size)
        reply += b"".join(U32.pack(w) for w in ours_common + ours_channel)
        writer.write(LINK_HEADER.pack(MAGIC, VERSION_MAJOR, VERSION_MINOR, len(reply)) + reply)
        await writer.drain()
        if CommonCap.PROTOCOL_AUTH_SELECTION in common:
            (mechanism,) = U32.unpack(await reader.readexactly(U32.size))
            if mechanism != CommonCap.AUTH_SPICE:
                self._refuse(writer, LinkError.INVALID_DATA, f"mechanism {mechanism}")
                return None
        password = decrypt_ticket(await reader.readexactly(TICKET_BYTES))
        if password != self.password.encode("utf-8"):
            self._refuse(writer, LinkError.PERMISSION_DENIED, "wrong ticket")
            return None
        if channel_type != ChannelType.MAIN and connection_id != self.session_id:
            self._refuse(writer, LinkError.BAD_CONNECTION_ID, f"connection id {connection_id:#x}")
            return None
        writer.write(U32.pack(LinkError.OK))
        mini = CommonCap.MINI_HEADER in common
        link = Link(channel_type, channel_id, common, caps, mini, writer,
                    MessageWriter(mini_header=mini))
        self.links.append(link)
        return link

    def _refuse(self, writer: asyncio.StreamWriter, error: LinkError, why: str) -> None:
        self.refused.append(why)
        writer.write(U32.pack(error))

    # --- the channels -------------------------------------------------------------------------

    async def _serve(self, link: Link, reader: asyncio.StreamReader) -> None:
        if link.channel_type == ChannelType.PORT:
            await self._serve_port(link, reader)
            return
        # the first message on every channel: spice-server's push_set_ack
        link.writer.write(link.framer.pack(Msg.SET_ACK, SET_ACK.pack(1, self.ack_window)))
        if link.channel_type == ChannelType.MAIN:
            link.send(MainMsg.INIT, INIT.pack(
                self.session_id, 1, MouseMode.SERVER | MouseMode.CLIENT, MouseMode.SERVER,
                0, 0, 0, 0))
        elif link.channel_type == ChannelType.INPUTS:
            link.send(InputsMsg.INIT, MODIFIERS.pack(0))
        await link.writer.drain()
        reading = asyncio.ensure_future(self._read_client(link, reader))
        try:
            if link.channel_type == ChannelType.DISPLAY:
                await self._play_display(link)
            elif link.channel_type == ChannelType.CURSOR:
                nth = sum(x.channel_type == ChannelType.CURSOR for x in self.links) - 1
                if nth < len(self.cursor_scripts):
                    await self._play(link, self.cursor_scripts[nth], acked=True)
            elif link.channel_type == ChannelType.PLAYBACK:
                nth = sum(x.channel_type == ChannelType.PLAYBACK for x in self.links) - 1
                if nth < len(self.playback_scripts):
                    await self._play(link, self.playback_scripts[nth], acked=True)
            await reading
        finally:
            reading.cancel()
            if link.channel_type == ChannelType.DISPLAY and self.display_links()[0] is link:
                self.display_closed.set()
                self.scenario_done.set()

    async def _read_client(self, link: Link, reader: asyncio.StreamReader) -> None:
        """Every client message, kept and answered, until the client closes."""
        messages = MessageReader(mini_header=link.mini_header)
        try:
            while data := await reader.read(64 * 1024):
                messages.feed(data)
                for message in messages.read_messages():
                    self._on_client_message(link, message)
                await self._notify()
        finally:
            link.closed.set()
            await self._notify()

    async def _notify(self) -> None:
        async with self._changed:
            self._changed.notify_all()

    def _on_client_message(self, link: Link, message: RawMessage) -> None:
        link.received.append(message)
        if message.msg_type == Msgc.ACK:
            link.acks += 1
        elif link.channel_type == ChannelType.MAIN and message.msg_type == MainMsgc.ATTACH_CHANNELS:
            listed = [(ChannelType.MAIN, 0), (ChannelType.DISPLAY, 0), (ChannelType.INPUTS, 0),
                      *((ChannelType.PORT, i) for i in range(len(self.ports))),
                      *(((ChannelType.CURSOR, 0),) if self.cursor_scripts else ())]
            link.send(MainMsg.CHANNELS_LIST, CHANNELS_COUNT.pack(len(listed)) + b"".join(
                CHANNEL_ID.pack(t, i) for t, i in listed))
        elif link.channel_type == ChannelType.PORT and message.msg_type == SPICEVMC_DATA:
            link.send(SPICEVMC_DATA, message.body)  # an echo
        elif (link.channel_type == ChannelType.DISPLAY and message.msg_type == DisplayMsgc.INIT
              and len(message.body) >= DISPLAY_INIT.size):
            self.display_init = DisplayInit(*DISPLAY_INIT.unpack_from(message.body))

    def _received(self, link: Link, msg_type: int) -> bool:
        return any(m.msg_type == msg_type for m in link.received)

    async def _play_display(self, link: Link) -> None:
        # spice-server sends nothing after SET_ACK until DISPLAY_INIT; waiting for the
        # ACK_SYNC too makes sure the client has taken the SET_ACK before any lie arrives
        await self.wait_until(lambda: link.closed.is_set() or (
            self._received(link, DisplayMsgc.INIT) and self._received(link, Msgc.ACK_SYNC)),
            self.step_timeout, "DISPLAY_INIT and ACK_SYNC")
        first = self.display_links()[0] is link
        if await self._play(link, self.scenario if first else self.scenario_after,
                            acked=True) and first:
            self.scenario_done.set()

    async def _play(self, link: Link, steps: Sequence[Step], *, acked: bool) -> bool:
        """Play ``steps`` on ``link``; ``acked``: like spice-server, no more than twice the
        ACK window ahead of the client's ACKs (a vmc channel has none: TCP holds it back).
        False when the client went away in the middle of a Send."""
        for step in steps:
            if link.closed.is_set():
                break
            if isinstance(step, Send):
                for _ in range(step.count):
                    if acked and not await self._window_open(link):
                        return False
                    link.send(step.msg_type, step.body)
                    await link.writer.drain()  # blocks while the client does not read
                    await self._notify()  # a test may wait for what was sent
            elif isinstance(step, Raw):
                link.writer.write(step.data)
                await link.writer.drain()
            elif isinstance(step, Pause):
                await asyncio.sleep(step.seconds)
            elif isinstance(step, Gate):
                await asyncio.wait_for(self._gate.wait(), self.step_timeout)
            elif isinstance(step, Close):
                link.writer.close()
                break
            else:
                await self._trickle(link, step)
        return True

    async def _serve_port(self, link: Link, reader: asyncio.StreamReader) -> None:
        """spice-server's port channel: no SET_ACK (a vmc channel has no acks), PORT_INIT
        first, then its script (first link of the port), then an echo until the client
        closes."""
        name = self.ports[link.channel_id].encode() + b"\0"
        link.send(PORT_INIT, struct.pack("<IIB", len(name), 9, self.port_guest_opened) + name)
        await link.writer.drain()
        reading = asyncio.ensure_future(self._read_client(link, reader))
        try:
            first = next(x for x in self.links if (x.channel_type, x.channel_id) == (
                link.channel_type, link.channel_id)) is link
            if first:
                await self._play(link, self.port_scripts.get(self.ports[link.channel_id], ()),
                                 acked=False)
            await reading
        finally:
            reading.cancel()

    def port_event(self, channel_id: int, event: int) -> None:
        """Send PORT_EVENT (the guest opened: 0, closed: 1) on the port's latest link."""
        self.link(ChannelType.PORT, channel_id).send(PORT_EVENT, bytes((event,)))

    async def _window_open(self, link: Link) -> bool:
        """Wait, as spice-server does, while more than twice the ACK window is unacked;
        False (and ``stalled``) when the client stopped acking or left."""
        def room() -> bool:
            return link.closed.is_set() or (
                link.sent - link.acks * self.ack_window < 2 * self.ack_window)

        if not room():
            try:
                await self.wait_until(room, self.step_timeout, "ACK")
            except AssertionError:
                self.stalled = True
                return False
        return not link.closed.is_set()

    async def _trickle(self, link: Link, step: Trickle) -> None:
        for i in range(len(step.data)):
            if link.closed.is_set():
                return
            with contextlib.suppress(ConnectionError):
                link.writer.write(step.data[i : i + 1])
                await link.writer.drain()
                self.trickled += 1
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(link.closed.wait(), step.interval)


class ServerThread:
    """A HostileSpiceServer on an event loop of its own thread, for blocking tests (a
    Session runs its own loop)::

        with ServerThread(HostileSpiceServer(steps)) as thread:
            connect(config_naming(thread.server.port)).vm("hostile").screenshot()
            thread.call(thread.server.open_gate)
    """

    def __init__(self, server: HostileSpiceServer) -> None:
        self.server = server
        self.loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self.loop.run_forever, name="hostile-spice",
                                        daemon=True)

    def __enter__(self) -> ServerThread:
        self._thread.start()
        self.run(self._start())
        return self

    async def _start(self) -> None:
        # the server's events and conditions belong to the loop that makes them
        await self.server.start()

    def __exit__(self, kind: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        try:
            self.run(self.server.close())
        finally:
            self.loop.call_soon_threadsafe(self.loop.stop)
            self._thread.join(STEP_TIMEOUT_S)
            self.loop.close()

    def run(self, coroutine: Coroutine[Any, Any, T], timeout: float = STEP_TIMEOUT_S) -> T:
        """Run ``coroutine`` on the server's loop and wait (bounded) for its result."""
        return asyncio.run_coroutine_threadsafe(coroutine, self.loop).result(timeout)

    def call(self, function: Callable[[], T], timeout: float = STEP_TIMEOUT_S) -> T:
        async def on_loop() -> T:
            return function()
        return self.run(on_loop(), timeout)
