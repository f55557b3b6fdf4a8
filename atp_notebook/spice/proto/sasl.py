"""SASL client mechanisms for the Spice link: SCRAM (scramp) first, PLAIN (pure-sasl) last.

What Spice servers offer (spice-server red-stream.cpp, Cyrus SASL): over TLS the mechanisms
the server's ``mech_list`` allows, e.g. SCRAM-SHA-256, SCRAM-SHA-1, DIGEST-MD5, PLAIN; over
plain TCP the server demands a SASL security layer (min_ssf 56, no plaintext), which leaves
DIGEST-MD5 with auth-conf — no Python library implements that layer, so we say "use TLS".
The wire framing of the exchange lives in :mod:`.link`; this module only turns server
challenges into client responses.

Example::

    mech = start_mechanism(choose_mechanism(("SCRAM-SHA-256", "PLAIN"), creds), creds, rng)
    first = mech.initial_response()         # b"n,,n=user,r=..."
"""

from __future__ import annotations

import base64
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Protocol

import scramp  # type: ignore[import-untyped]
from puresasl.client import SASLClient  # type: ignore[import-untyped]

from atp_notebook.errors import RemoteProtocolError, SpiceAuthError

# Preference order: SCRAM proves the server knows the password and never reveals ours;
# PLAIN sends the password (inside TLS) and is the fallback.
SUPPORTED_MECHANISMS = ("SCRAM-SHA-256", "SCRAM-SHA-1", "PLAIN")
# Mechanisms that need a SASL security layer or a Kerberos stack we do not have.
_LAYER_ONLY = frozenset({"DIGEST-MD5", "GSSAPI", "GS2-KRB5"})
_MECH_NAME = re.compile(r"^[A-Z0-9_-]{1,20}$")  # RFC 4422 §3.1 mechanism names
# PBKDF2 rounds a server may ask of us: Cyrus uses 10000 by default; more than this is a
# (deliberate or not) denial of service on the client (scramp's own guard is 10 million)
MAX_SCRAM_ITERATIONS = 1_000_000
_SCRAM_ERRORS = (scramp.ScramException, ValueError, TypeError, KeyError)


@dataclass(frozen=True, slots=True)
class SaslCredentials:
    """Who we are for SASL. The password never shows in ``repr``.

    ``mechanisms`` limits and orders what we are willing to use.
    """

    username: str
    password: str = field(repr=False)
    mechanisms: tuple[str, ...] = SUPPORTED_MECHANISMS


class SaslMechanism(Protocol):
    """One client-side SASL exchange."""

    name: str

    def initial_response(self) -> bytes:
        """The data sent with the mechanism name (SASL "client-first")."""
        ...

    def step(self, challenge: bytes, complete: bool) -> bytes | None:
        """The response to a server challenge; None once the exchange needs nothing more.

        Raises RemoteProtocolError for a malformed challenge, SpiceAuthError when the
        server fails to prove itself (SCRAM server signature).
        """
        ...


def parse_mechlist(raw: bytes) -> tuple[str, ...]:
    """The server's mechanism list: Cyrus ``sasl_listmech`` with "," as prefix, separator
    and suffix (red-stream.cpp), e.g. ``b",SCRAM-SHA-256,PLAIN,"``."""
    try:
        text = raw.decode("ascii")
    except UnicodeDecodeError as exc:
        raise RemoteProtocolError(f"SASL mechanism list is not ASCII: {raw[:80]!r}") from exc
    names = tuple(name.upper() for name in re.split(r"[,\s]+", text) if name)
    for name in names:
        if not _MECH_NAME.match(name):
            raise RemoteProtocolError(f"SASL mechanism list holds an invalid name {name!r}")
    return names


def choose_mechanism(offered: tuple[str, ...], credentials: SaslCredentials) -> str:
    """The first of our mechanisms the server offers, or SpiceAuthError saying why none."""
    ours = [m.upper() for m in credentials.mechanisms if m.upper() in SUPPORTED_MECHANISMS]
    for name in ours:
        if name in offered:
            return name
    if offered and set(offered) <= _LAYER_ONLY:
        raise SpiceAuthError(
            f"SASL needs TLS here: the server offers only {', '.join(offered)}, which "
            "require a SASL security layer (plain TCP port); atp-notebook does SASL over TLS",
            hint="connect to the VM's Spice tls-port (spice.vms[].tls: true, tls_port); "
                 "over TLS the server offers SCRAM-SHA-256 and PLAIN")
    raise SpiceAuthError(
        f"no common SASL mechanism: the server offers {', '.join(offered) or 'none'}, "
        f"we use {', '.join(ours) or 'none'}",
        hint="add scram-sha-256 (or plain) to mech_list in the server's SASL config")


def start_mechanism(
    name: str, credentials: SaslCredentials, rng: Callable[[int], bytes]
) -> SaslMechanism:
    """A fresh exchange for mechanism ``name`` (one of SUPPORTED_MECHANISMS)."""
    if name.startswith("SCRAM-"):
        return ScramMechanism(name, credentials, rng)
    if name == "PLAIN":
        return PlainMechanism(credentials)
    raise SpiceAuthError(f"SASL mechanism {name} is not supported")


class ScramMechanism:
    """SCRAM-SHA-* (RFC 5802/7677) through scramp, without channel binding (gs2 "n,,")."""

    def __init__(
        self, name: str, credentials: SaslCredentials, rng: Callable[[int], bytes]
    ) -> None:
        self.name = name
        # RFC 5802 nonce: printable, no ","; base64 of 18 random bytes is 24 such chars
        nonce = base64.b64encode(rng(18)).decode("ascii")
        try:
            self._client = scramp.ScramClient(
                [name], credentials.username, credentials.password, c_nonce=nonce)
        except scramp.ScramException as exc:
            raise SpiceAuthError(f"SASL {name}: unusable username or password: {exc}") from exc
        self._stage = 0  # 0: sent client-first, 1: sent client-final, 2: verified server

    def initial_response(self) -> bytes:
        return str(self._client.get_client_first()).encode("utf-8")

    def step(self, challenge: bytes, complete: bool) -> bytes | None:
        try:
            text = challenge.decode("utf-8")
        except UnicodeDecodeError as exc:
            raise RemoteProtocolError(f"SASL {self.name}: challenge is not UTF-8") from exc
        if self._stage == 0:
            if complete:
                raise RemoteProtocolError(f"SASL {self.name}: server completed before proof")
            self._check_iterations(text)
            try:
                self._client.set_server_first(text)
                final = str(self._client.get_client_final())
            except _SCRAM_ERRORS as exc:
                raise RemoteProtocolError(
                    f"SASL {self.name}: bad server-first message: {exc}") from exc
            self._stage = 1
            return final.encode("utf-8")
        if self._stage == 1:
            try:
                self._client.set_server_final(text)
            except _SCRAM_ERRORS as exc:
                raise SpiceAuthError(
                    f"SASL {self.name}: the server did not prove it knows the password "
                    f"({exc})") from exc
            self._stage = 2
            # with SASL_SUCCESS_DATA the server-final comes with complete=1; without it the
            # server asks for one more, empty, response
            return None if complete else b""
        if challenge or not complete:
            raise RemoteProtocolError(f"SASL {self.name}: server continued after its proof")
        return None

    def _check_iterations(self, server_first: str) -> None:
        for attribute in server_first.split(","):
            count = attribute[2:]
            if (attribute.startswith("i=") and count.isascii() and count.isdigit()
                    and (len(count) > 9 or int(count) > MAX_SCRAM_ITERATIONS)):
                raise RemoteProtocolError(
                    f"SASL {self.name}: the server asks for {count[:12]} PBKDF2 iterations "
                    f"(we allow {MAX_SCRAM_ITERATIONS})")


class PlainMechanism:
    """PLAIN (RFC 4616) through pure-sasl: one message, ``authzid NUL authcid NUL passwd``."""

    name = "PLAIN"

    def __init__(self, credentials: SaslCredentials) -> None:
        self._client = SASLClient(
            "", "spice", mechanism="PLAIN",
            username=credentials.username, password=credentials.password)

    def initial_response(self) -> bytes:
        return bytes(self._client.process())

    def step(self, challenge: bytes, complete: bool) -> bytes | None:
        if not complete or challenge:
            raise RemoteProtocolError("SASL PLAIN: the server asked for more than one message")
        return None
