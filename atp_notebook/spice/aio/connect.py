"""Opening one Spice channel's byte stream: TCP, or TLS with the server verified.

Every failure is a typed error naming the address: a refused or unreachable port is a
``TransportError``, a certificate that does not verify against the configured CA is a
``TlsVerificationError`` (and nothing has been sent: the link message, and with it the
ticket, only goes out after the handshake), a wait past the timeout is ``OperationTimeout``.

Example::

    reader, writer = await open_stream("127.0.0.1", 5902, SpiceTls(ca_file=ca), timeout=5)
"""

from __future__ import annotations

import asyncio
import ssl

from atp_notebook.errors import OperationTimeout, TlsVerificationError, TransportError
from atp_notebook.spice.endpoint import SpiceTls

CONNECT_TIMEOUT_S = 10.0


def tls_context(tls: SpiceTls) -> ssl.SSLContext:
    try:
        context = ssl.create_default_context(
            cafile=str(tls.ca_file) if tls.ca_file is not None else None)
    except (OSError, ssl.SSLError) as exc:
        raise TransportError(f"cannot load the Spice CA file {tls.ca_file}: {exc}") from exc
    if not tls.verify:
        context.check_hostname = False
        context.verify_mode = ssl.CERT_NONE
    return context


async def open_stream(
    host: str,
    port: int,
    tls: SpiceTls | None = None,
    timeout: float = CONNECT_TIMEOUT_S,
) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
    """A connected (and, with ``tls``, verified) stream to ``host:port``."""
    where = f"{'spice+tls' if tls else 'spice'}://{host}:{port}"
    context = tls_context(tls) if tls is not None else None
    server_hostname = (tls.server_name or host) if tls is not None else None
    try:
        return await asyncio.wait_for(
            asyncio.open_connection(host, port, ssl=context, server_hostname=server_hostname),
            timeout,
        )
    except TimeoutError:
        raise OperationTimeout(f"{where}: no connection within {timeout:g} s") from None
    except ssl.SSLCertVerificationError as exc:
        raise TlsVerificationError(
            f"{where}: the server's certificate does not verify: {exc.verify_message}",
            hint="check ca_file (the CA that signed the Spice server's certificate) and "
            "server_name",
        ) from exc
    except ssl.SSLError as exc:
        raise TransportError(f"{where}: TLS handshake failed: {exc.reason or exc}") from exc
    except OSError as exc:
        raise TransportError(f"{where}: {exc.strerror or exc}") from exc
