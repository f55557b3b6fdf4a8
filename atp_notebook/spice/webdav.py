"""A local folder shared with the guest over Spice: ``vm.share_folder(path)``.

The guest's ``spice-webdavd`` listens on its loopback (port 9843) and forwards every TCP
connection over the Spice port ``org.spice-space.webdav.0``, multiplexed
(:mod:`atp_notebook.spice.proto.webdav_mux`). :class:`FolderShare` holds that port open and
serves each guest connection with WsgiDAV (a maintained WSGI WebDAV server) over the
standard library's HTTP/1.1 request handler (``wsgiref``).

No TCP port is opened on the host, not even on loopback: each guest connection gets an
``AF_UNIX`` socketpair, one end read and written on the atp loop (the mux side), the other
handed to the request handler on a thread of the share's own pool (WSGI apps block on files).
The handler serves one request and closes; the guest's next request on the same socket
arrives as a new connection with the same id, as in spice-gtk.

Read-only unless asked: WsgiDAV's filesystem provider then answers every write (PUT,
DELETE, MKCOL, MOVE, COPY, PROPPATCH, LOCK) with 403. It resolves every path inside the
folder (``..`` and symlinks leading out are 403 too), so nothing is read or written outside
the share.

Faults stay in the share: a guest opening too many connections is refused one by one
(:class:`~atp_notebook.spice.proto.webdav_mux.ClientRefused`, logged, counted in
``refused``); a request the handler cannot parse is a 400 for that connection; when the
port channel ends or the guest's daemon closes the port, every connection is dropped and
the share opens the channel again by itself (the guest cannot ask for it), while Main,
Inputs and Display go on.

Example::

    with vm.share_folder("/srv/data") as share:   # read-only
        vm.exec(["wget", "-O", "/tmp/f", "http://127.0.0.1:9843/f"])
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextlib
import io
import logging
import os
import socket
import socketserver
import weakref
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol
from wsgiref.simple_server import WSGIRequestHandler

from atp_notebook.bridge import atp_async, atp_blocking, within
from atp_notebook.errors import (
    ChannelClosed,
    InvalidArgument,
    OperationTimeout,
    ProtocolError,
    TransportError,
)
from atp_notebook.listeners import ListenerHandle
from atp_notebook.spice.proto.port import PortEvent, PortEventKind
from atp_notebook.spice.proto.webdav_mux import (
    DEFAULT_MAX_CLIENTS,
    MAX_FRAME_DATA,
    WEBDAV_PORT_NAME,
    ClientClosed,
    ClientData,
    ClientOpened,
    ClientRefused,
    WebdavMux,
)

OPEN_TIMEOUT_S = 15.0
IO_TIMEOUT_S = 30.0  # one write towards the guest or towards a request handler
# a request handler waiting this long for the rest of a request gives up (its thread ends)
HANDLER_IDLE_S = 60.0
# the serving loop's wait for guest data: idle is normal, the wait is only re-armed
IDLE_POLL_S = 30.0
RECONNECT_DELAY_S = 1.0  # after the port channel ended, before linking it again
STOP_TIMEOUT_S = 10.0
READY_POLL_S = 0.05
# port -> the share serving it: a second share on one port would read half its frames
_SHARES: weakref.WeakKeyDictionary[Any, FolderShare] = weakref.WeakKeyDictionary()


class SharePort(Protocol):
    """What the share needs of its port (a :class:`~atp_notebook.spice.port.SpicePort`)."""

    @property
    def buffered(self) -> int: ...

    @property
    def guest_opened(self) -> bool: ...

    async def open_async(self, timeout: float = ...) -> Any: ...

    async def recv_async(self, max_bytes: int = ..., timeout: float = ...) -> bytes: ...

    async def send_async(self, data: bytes, timeout: float = ...) -> None: ...

    async def close_async(self) -> None: ...

    def add_listener(self, listener: Callable[[PortEvent], None]) -> ListenerHandle: ...


def webdav_app(folder: Path, read_only: bool) -> Any:
    """WsgiDAV serving ``folder`` at the root, anonymous, read-only unless told otherwise."""
    from wsgidav.fs_dav_provider import FilesystemProvider  # noqa: PLC0415 - 0.3 s import
    from wsgidav.wsgidav_app import WsgiDAVApp  # noqa: PLC0415

    config = {
        "provider_mapping": {"/": FilesystemProvider(str(folder), readonly=read_only,
                                                     fs_opts={"follow_symlinks": False})},
        "simple_dc": {"user_mapping": {"*": True}},  # the guest is the only client
        "verbose": 1,
        "logging": {"enable": False},  # WsgiDAV logs under "wsgidav"; we set no handlers
        "lock_storage": True,  # in memory: davfs2 and gvfs lock before they write
        "property_manager": True,
        "dir_browser": {"enable": True},
    }
    return WsgiDAVApp(config)


class _BoundedInput:
    """``wsgi.input`` ending after the request's Content-Length bytes. WsgiDAV's PUT reads
    until b"" (its usual server, cheroot, bounds the stream); wsgiref hands over the raw
    socket file, which would block there until the guest's connection idles out."""

    def __init__(self, raw: io.BufferedIOBase, length: int) -> None:
        self.raw = raw
        self.left = length

    def read(self, size: int | None = -1) -> bytes:
        want = self.left if size is None or size < 0 else min(size, self.left)
        data = self.raw.read(want) if want else b""
        self.left -= len(data)
        return data

    def readline(self, size: int | None = -1) -> bytes:
        want = self.left if size is None or size < 0 else min(size, self.left)
        data = self.raw.readline(want) if want else b""
        self.left -= len(data)
        return data

    def __iter__(self) -> Iterator[bytes]:
        while line := self.readline():
            yield line

    def close(self) -> None:
        self.raw.close()


class _RequestHandler(WSGIRequestHandler):
    """wsgiref's handler on one end of a socketpair; logs to the share's logger."""

    timeout = HANDLER_IDLE_S  # StreamRequestHandler applies it to the socket

    def parse_request(self) -> bool:
        if not super().parse_request():
            return False
        # chunked bodies are WsgiDAV's to decode from the raw stream
        if "chunked" not in self.headers.get("Transfer-Encoding", "").lower():
            try:
                length = int(self.headers.get("Content-Length") or 0)
            except ValueError:
                length = -1
            if length < 0:
                self.send_error(400, "bad Content-Length")
                return False
            self.rfile = _BoundedInput(self.rfile, length)  # type: ignore[assignment]
        return True

    def log_message(self, format: str, *args: Any) -> None:
        server = self.server
        assert isinstance(server, _HandlerServer)
        server.log.debug("%s " + format, self.client_address[0], *args)


class _HandlerServer(socketserver.BaseServer):
    """What the request handler reads from its server: the app and the base environ. It
    never listens: :meth:`serve_one` is given each connected socket."""

    def __init__(self, app: Any, log: logging.Logger) -> None:
        # no server_address: nothing is bound; the handler class is set for the base's sake
        super().__init__(("spice-webdav", 0), _RequestHandler)
        self.app = app
        self.log = log
        self.base_environ = {"SERVER_NAME": "127.0.0.1", "SERVER_PORT": "9843",
                             "GATEWAY_INTERFACE": "CGI/1.1", "SCRIPT_NAME": "",
                             "CONTENT_LENGTH": "", "REMOTE_HOST": ""}

    def get_app(self) -> Any:
        return self.app

    def serve_one(self, sock: socket.socket, client_id: int) -> None:
        """Serve one request on ``sock`` (blocking, on a pool thread), then close it."""
        with sock:
            try:
                _RequestHandler(sock, (f"guest-{client_id}", 0), self)
            except OSError as exc:  # the guest went away mid-request
                self.log.debug("connection %d: %s", client_id, exc)
            with contextlib.suppress(OSError):
                sock.shutdown(socket.SHUT_RDWR)


@dataclass(eq=False)
class _GuestConnection:
    client_id: int
    reader: asyncio.StreamReader
    writer: asyncio.StreamWriter
    handler: asyncio.Future[None]
    pump: asyncio.Task[None] | None = field(default=None)

    def abort(self) -> None:
        if self.pump is not None:
            self.pump.cancel()
        self.writer.close()


class FolderShare:
    """One folder shared through one VM's webdav port (see the module docstring).

    Get it from ``vm.share_folder(path, read_only=True)`` (started) and end it with
    :meth:`unshare` or a ``with`` block.

    Example::

        share = vm.share_folder("/tmp/out", read_only=False)
        ...                      # the guest PUTs files into /tmp/out
        share.unshare()
    """

    def __init__(self, port: SharePort, folder: str | os.PathLike[str], *,
                 read_only: bool = True, max_clients: int = DEFAULT_MAX_CLIENTS,
                 name: str = WEBDAV_PORT_NAME) -> None:
        path = Path(folder)
        if not path.is_dir():
            what = "does not exist" if not path.exists() else "is not a folder"
            raise InvalidArgument(f"share_folder: {str(path)!r} {what}",
                                  hint="share a folder; the guest reads it at /")
        self.folder = path.resolve()
        self.read_only = read_only
        self.port = port
        self.name = name
        self.log = logging.getLogger(f"atp.spice.webdav.{self.folder.name or 'root'}")
        self._mux = WebdavMux(max_clients)
        self._server = _HandlerServer(webdav_app(self.folder, read_only), self.log)
        self._pool: concurrent.futures.ThreadPoolExecutor | None = None
        self._connections: dict[int, _GuestConnection] = {}
        self._serving: asyncio.Task[None] | None = None
        self._listener: ListenerHandle | None = None
        self._send_lock: asyncio.Lock | None = None
        self._reset_after: int | None = None  # bytes left before a guest close takes effect
        self.served = 0  # guest connections accepted since the start
        self.losses = 0  # times the port channel ended under the share

    def __repr__(self) -> str:
        mode = "read-only" if self.read_only else "read-write"
        state = "shared" if self.sharing else "not shared"
        return f"<FolderShare {str(self.folder)!r} {mode} {state}>"

    @property
    def sharing(self) -> bool:
        return self._serving is not None and not self._serving.done()

    @property
    def refused(self) -> int:
        """Guest connections turned away because ``max_clients`` were open."""
        return self._mux.refused

    @property
    def connections(self) -> int:
        """Guest connections open now."""
        return len(self._connections)

    async def _start(self, timeout: float = OPEN_TIMEOUT_S) -> FolderShare:
        """Open the port and serve (idempotent); returns self. Example: ``share.start()``."""
        if self.sharing:
            return self
        other = _SHARES.get(self.port)
        if other is not None and other.sharing:
            raise InvalidArgument(f"share_folder: {other!r} already uses the VM's webdav "
                                  "port (one shared folder per VM)",
                                  hint="unshare() it first")
        _SHARES[self.port] = self
        async with within(timeout, f"{self!r}: start"):
            await self.port.open_async(timeout)
        self._pool = concurrent.futures.ThreadPoolExecutor(
            self._mux.max_clients, thread_name_prefix="atp-webdav")
        self._send_lock = asyncio.Lock()
        self._listener = self.port.add_listener(self._on_port_event)
        self._serving = asyncio.get_running_loop().create_task(self._serve())
        self._serving.add_done_callback(self._served)
        self.log.info("sharing %s (%s)", self.folder,
                      "read-only" if self.read_only else "read-write")
        return self

    async def _unshare(self, timeout: float = STOP_TIMEOUT_S) -> None:
        """Stop serving: every guest connection is closed (the guest told so), the handler
        threads end, the port channel closes. Idempotent. Example: ``share.unshare()``."""
        serving, self._serving = self._serving, None
        if serving is None:
            return
        serving.cancel()
        try:
            await serving
        except asyncio.CancelledError:
            pass
        except Exception:  # a bug in the serving loop: logged, the share still ends
            self.log.exception("the serving loop had failed")
        if self._listener is not None:
            self._listener.close()
        handlers = [c.handler for c in self._connections.values()]
        for client_id in list(self._connections):
            self._mux.close_client(client_id)
        with contextlib.suppress(TransportError, ProtocolError):
            await self._flush(timeout)
        self._drop_all()
        if handlers:  # their sockets are closed: each ends at its next read or write
            await asyncio.wait(handlers, timeout=timeout)
        if self._pool is not None:
            self._pool.shutdown(wait=False)
        await self.port.close_async()
        self.log.info("unshared %s", self.folder)

    async def _wait_ready(self, timeout: float = OPEN_TIMEOUT_S) -> None:
        """Until the channel is linked and the guest's daemon has the port open: after a
        lost channel, spice-webdavd drops the connections it accepts until it sees the host
        side again. Example: ``share.wait_ready(timeout=10)``."""
        async with within(timeout, f"{self!r}: the guest's spice-webdavd", "not connected"):
            while not (self.sharing and self.port.guest_opened):
                await asyncio.sleep(READY_POLL_S)

    start = atp_blocking(_start)
    start_async = atp_async(_start)
    unshare = atp_blocking(_unshare)
    unshare_async = atp_async(_unshare)
    wait_ready = atp_blocking(_wait_ready)
    wait_ready_async = atp_async(_wait_ready)

    def __enter__(self) -> FolderShare:
        return self

    def __exit__(self, *_: object) -> None:
        self.unshare()

    async def __aenter__(self) -> FolderShare:
        return self

    async def __aexit__(self, *_: object) -> None:
        await self.unshare_async()

    # --- the serving loop (on the loop the share was started on) ---------------------------

    def _served(self, task: asyncio.Task[None]) -> None:
        if not task.cancelled() and task.exception() is not None:
            self.log.error("%r stopped serving: %r", self, task.exception())

    async def _serve(self) -> None:
        while True:
            try:
                data = await self._next_data()
            except OperationTimeout:
                continue  # nobody asked for anything: wait again
            except (ChannelClosed, TransportError, ProtocolError) as exc:
                # the channel ended (or would not open): the connections are gone with it;
                # the guest cannot ask for the channel, so it is linked again from here
                self.losses += 1
                self.log.warning("the webdav port is gone (%s); linking it again", exc)
                self._reset_after = None  # the old stream is gone whole
                self._reset()
                await asyncio.sleep(RECONNECT_DELAY_S)
                with contextlib.suppress(TransportError, ProtocolError):
                    await self.port.open_async(OPEN_TIMEOUT_S)
                continue
            if data is None:  # the guest closed the port: a fresh stream follows
                self._reset()
                continue
            for event in self._mux.receive_data(data):
                await self._dispatch(event)
            await self._flush(IO_TIMEOUT_S)

    async def _next_data(self) -> bytes | None:
        """The next bytes from the port, or None where the guest closed its side (after the
        bytes it sent before)."""
        left = self._reset_after
        if left == 0:
            self._reset_after = None
            return None
        data = await self.port.recv_async(MAX_FRAME_DATA if left is None else left,
                                          IDLE_POLL_S)
        if left is not None and self._reset_after == left:  # no newer close meanwhile
            self._reset_after = left - len(data)
        return data

    def _on_port_event(self, event: PortEvent) -> None:
        if event.event == PortEventKind.CLOSED:
            # what is buffered now was sent before the close (events follow data in order):
            # the old stream ends after it; with nothing buffered, it ends here
            buffered = self.port.buffered
            if buffered:
                self._reset_after = buffered
            else:
                self._reset_after = None
                self._reset()

    def _reset(self) -> None:
        self._drop_all()
        self._mux.reset()

    def _drop_all(self) -> None:
        for conn in self._connections.values():
            conn.abort()
        self._connections.clear()

    async def _dispatch(self, event: ClientOpened | ClientData | ClientClosed | ClientRefused,
                        ) -> None:
        if isinstance(event, ClientOpened):
            await self._open_connection(event.client_id)
        elif isinstance(event, ClientData):
            conn = self._connections.get(event.client_id)
            if conn is not None:
                await self._to_handler(conn, event.data)
        elif isinstance(event, ClientClosed):
            conn = self._connections.pop(event.client_id, None)
            if conn is not None:
                conn.abort()
        else:
            self.log.warning("%s", event.error)

    async def _open_connection(self, client_id: int) -> None:
        ours, theirs = socket.socketpair()
        try:
            reader, writer = await asyncio.open_connection(sock=ours, limit=MAX_FRAME_DATA)
        except BaseException:
            ours.close()
            theirs.close()
            raise
        assert self._pool is not None
        handler = asyncio.get_running_loop().run_in_executor(
            self._pool, self._server.serve_one, theirs, client_id)
        conn = _GuestConnection(client_id, reader, writer, handler)
        self._connections[client_id] = conn
        conn.pump = asyncio.get_running_loop().create_task(self._pump(conn))
        self.served += 1

    async def _to_handler(self, conn: _GuestConnection, data: bytes) -> None:
        """Guest bytes to the request handler; one that does not take them within
        IO_TIMEOUT_S (or is gone) loses its connection, the others go on."""
        try:
            conn.writer.write(data)
            await asyncio.wait_for(conn.writer.drain(), IO_TIMEOUT_S)
        except (OSError, TimeoutError) as exc:
            self.log.debug("connection %d: the handler took no more (%r)", conn.client_id,
                           exc)
            self._close_from_here(conn)

    async def _pump(self, conn: _GuestConnection) -> None:
        """The handler's response to the guest, then the end of the connection."""
        try:
            while chunk := await conn.reader.read(MAX_FRAME_DATA):
                if self._connections.get(conn.client_id) is not conn:
                    return  # the guest closed it meanwhile
                self._mux.send_data(conn.client_id, chunk)
                await self._flush(IO_TIMEOUT_S)
        except (OSError, TransportError, ProtocolError) as exc:
            self.log.debug("connection %d: %r", conn.client_id, exc)
        finally:
            if self._connections.get(conn.client_id) is conn:
                self._close_from_here(conn)
                with contextlib.suppress(TransportError, ProtocolError):
                    await self._flush(IO_TIMEOUT_S)

    def _close_from_here(self, conn: _GuestConnection) -> None:
        if self._connections.get(conn.client_id) is conn:
            del self._connections[conn.client_id]
            self._mux.close_client(conn.client_id)
        conn.writer.close()

    async def _flush(self, timeout: float) -> None:
        """Send what the mux queued (under a lock: frames never interleave mid-frame)."""
        assert self._send_lock is not None
        async with self._send_lock:
            out = self._mux.data_to_send()
            if out:
                await self.port.send_async(out, timeout)
