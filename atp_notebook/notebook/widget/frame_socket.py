"""A loopback WebSocket that carries the display widget's frames past Jupyter's comm path.

Why: a frame sent as a comm message goes kernel → ZMQ → the Jupyter server (which parses
and re-frames every message) → the browser's kernel connection → JupyterLab's message
dispatch → the widget, and each acknowledgement back is a shell request that makes the
kernel publish busy and idle, which JupyterLab redraws. Measured here (2 cores, chromium
``--disable-gpu``, 1024x768 JPEG frames of ~150 KB): that path costs 66-86 ms of CPU a frame
and tops out at 11-18 fps, while the same frames over a plain WebSocket into a canvas inside
JupyterLab paint at 66 fps for 17 ms of chromium's CPU a frame. Acknowledgements on the
socket also reach the kernel while a cell blocks its shell thread.

One :class:`FrameServer` per process (:func:`frame_server`) listens on 127.0.0.1 on a port
the kernel picks, on a thread and event loop of its own (a slow browser never holds up the
atp loop). Each widget registers an :class:`FrameEndpoint`: its URL carries a random token,
the only credential (the socket is on loopback; a page of another origin cannot learn the
token). The widget tells its views the URL; a view that cannot reach it (a browser on
another machine, an https page) falls back to the comm path, as does everything when the
server cannot start. Tokens never reach a log: tornado's access log is off.

A frame is one binary message (:func:`pack_frame`): a little-endian uint32 header length,
the header (the comm message's JSON content plus ``sizes``, each buffer's length), then the
buffers back to back. From the browser come small JSON texts (``{"type": "ack", "n": 7}``);
anything else (binary, over ``MAX_MESSAGE`` bytes, not a JSON object) closes that socket.

Example::

    endpoint = frame_server().endpoint(receiver)   # receiver: socket_opened / _message / _closed
    endpoint.url                                    # ws://127.0.0.1:PORT/frames/TOKEN
    endpoint.send(pack_frame(content, buffers))     # to every socket of that widget
    endpoint.close()
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import secrets
import struct
import threading
from collections.abc import Sequence
from typing import Any, Protocol

import tornado.httpserver
import tornado.netutil
import tornado.web
import tornado.websocket

from atp_notebook.errors import TransportError

__all__ = ["FrameEndpoint", "FrameReceiver", "FrameServer", "frame_server", "pack_frame"]

START_TIMEOUT_S = 10.0
MAX_MESSAGE = 4096  # an acknowledgement is ~25 bytes
MAX_SOCKETS = 8  # per widget: a page has one, a few tabs of one notebook a few more
_HEADER = struct.Struct("<I")
_log = logging.getLogger("atp.widget.frames")


def pack_frame(content: dict[str, Any], buffers: Sequence[bytes]) -> bytes:
    """One frame message for the socket: header length, JSON header, the buffers."""
    header = json.dumps({**content, "sizes": [len(b) for b in buffers]},
                        separators=(",", ":")).encode()
    return b"".join((_HEADER.pack(len(header)), header, *buffers))


class FrameReceiver(Protocol):
    """What a widget hears of its sockets, on the frame server's thread."""

    def socket_opened(self) -> None: ...

    def socket_message(self, message: dict[str, Any]) -> None: ...

    def socket_closed(self) -> None: ...


class FrameEndpoint:
    """One widget's sockets: where views connect (:attr:`url`) and what it sends them."""

    def __init__(self, server: FrameServer, token: str, receiver: FrameReceiver) -> None:
        self._server = server
        self.token = token
        self.receiver = receiver
        self.url = f"ws://{server.host}:{server.port}/frames/{token}"
        self.sockets: set[_FrameHandler] = set()  # touched on the server's loop only
        self.closed = False

    def __repr__(self) -> str:  # the token is a credential
        return f"<FrameEndpoint {len(self.sockets)} sockets{' closed' if self.closed else ''}>"

    def send(self, payload: bytes) -> None:
        """``payload`` to every socket open now (from any thread; never blocks)."""
        self._server.call(self._write, payload)

    def close(self) -> None:
        """Close every socket and refuse new ones (from any thread)."""
        self.closed = True
        self._server.forget(self.token)
        self._server.call(self._close_all)

    def _write(self, payload: bytes) -> None:
        for socket in list(self.sockets):
            try:
                done = socket.write_message(payload, binary=True)
            except tornado.websocket.WebSocketClosedError:
                continue
            done.add_done_callback(_consume)  # a socket closing mid-write is on_close's

    def _close_all(self) -> None:
        for socket in list(self.sockets):
            socket.close(1000, "the widget closed")


def _consume(done: asyncio.Future[None]) -> None:
    if not done.cancelled():
        done.exception()


class _FrameHandler(tornado.websocket.WebSocketHandler):
    """One browser page's socket for one widget."""

    def initialize(self, server: FrameServer) -> None:
        self._frame_server = server
        self._endpoint: FrameEndpoint | None = None

    def check_origin(self, origin: str) -> bool:
        # the page is JupyterLab's, on another port or host name than this socket: the
        # token in the path is what admits a page, not its origin
        return True

    def open(self, *args: str, **kwargs: str) -> None:
        endpoint = self._frame_server.lookup(args[0] if args else "")
        if endpoint is None:
            self.close(4003, "unknown widget")
            return
        if len(endpoint.sockets) >= MAX_SOCKETS:
            self.close(4008, "too many sockets for this widget")
            return
        self._endpoint = endpoint
        endpoint.sockets.add(self)
        _guarded(endpoint.receiver.socket_opened)

    def on_message(self, message: str | bytes) -> None:
        endpoint = self._endpoint
        if endpoint is None:
            return
        try:
            if isinstance(message, bytes):
                raise ValueError("a binary message")
            content = json.loads(message)
            if not isinstance(content, dict):
                raise ValueError("not a JSON object")
        except ValueError as exc:  # json's errors are ValueErrors too
            _log.warning("frame socket closed: the page sent %s", exc)
            self.close(1003, "unexpected message")
            return
        _guarded(endpoint.receiver.socket_message, content)

    def on_close(self) -> None:
        endpoint, self._endpoint = self._endpoint, None
        if endpoint is not None and self in endpoint.sockets:
            endpoint.sockets.discard(self)
            _guarded(endpoint.receiver.socket_closed)


def _guarded(call: Any, *args: Any) -> None:
    try:
        call(*args)
    except Exception:  # a widget's bug must not take the server down for the others
        _log.exception("frame socket callback %r failed", call)


class FrameServer:
    """The process's frame sockets on ``host``, served by a thread of their own."""

    def __init__(self, host: str = "127.0.0.1") -> None:
        self.host = host
        self.port = 0
        self._endpoints: dict[str, FrameEndpoint] = {}
        self._lock = threading.Lock()
        self._loop = asyncio.new_event_loop()
        self._failure: BaseException | None = None
        started = threading.Event()
        self._thread = threading.Thread(target=self._serve, args=(started,), daemon=True,
                                        name="atp-frame-server")
        self._thread.start()
        if not started.wait(START_TIMEOUT_S):
            raise TransportError(f"the widget's frame socket on {host} did not start within "
                                 f"{START_TIMEOUT_S:g} s")
        if self._failure is not None:
            raise TransportError(f"the widget's frame socket cannot listen on {host}: "
                                 f"{self._failure}") from self._failure

    def __repr__(self) -> str:
        return f"<FrameServer ws://{self.host}:{self.port} {len(self._endpoints)} widgets>"

    @property
    def widgets(self) -> int:
        """Widgets registered now (each closed widget forgets its own)."""
        with self._lock:
            return len(self._endpoints)

    def _serve(self, started: threading.Event) -> None:
        asyncio.set_event_loop(self._loop)
        try:
            sockets = tornado.netutil.bind_sockets(0, self.host)
            app = tornado.web.Application(
                [(r"/frames/([A-Za-z0-9_-]{16,64})", _FrameHandler, {"server": self})],
                log_function=lambda _handler: None,  # the path holds a token
                websocket_max_message_size=MAX_MESSAGE)
            server = tornado.httpserver.HTTPServer(app)
            server.add_sockets(sockets)
            self.port = int(sockets[0].getsockname()[1])
        except Exception as exc:  # reported to the thread that started us
            self._failure = exc
            started.set()
            return
        started.set()
        self._loop.run_forever()

    def endpoint(self, receiver: FrameReceiver) -> FrameEndpoint:
        """A new widget's sockets, under a fresh token."""
        token = secrets.token_urlsafe(24)
        endpoint = FrameEndpoint(self, token, receiver)
        with self._lock:
            self._endpoints[token] = endpoint
        return endpoint

    def lookup(self, token: str) -> FrameEndpoint | None:
        with self._lock:
            return self._endpoints.get(token)

    def forget(self, token: str) -> None:
        with self._lock:
            self._endpoints.pop(token, None)

    def call(self, function: Any, *args: Any) -> None:
        """``function(*args)`` on the server's loop (from any thread)."""
        with contextlib.suppress(RuntimeError):  # the loop is gone: the process is exiting
            self._loop.call_soon_threadsafe(function, *args)


_servers: list[FrameServer] = []  # the process's one, once started
_server_lock = threading.Lock()


def frame_server() -> FrameServer:
    """The process's frame server, started on first use (raises TransportError when it
    cannot listen: widgets then use the comm path alone)."""
    with _server_lock:
        if not _servers:
            _servers.append(FrameServer())
        return _servers[0]
