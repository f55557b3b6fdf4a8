"""The one error tree of atp-notebook.

Every error the toolkit raises on purpose derives from :class:`AtpError`. Each carries a
message that says what was wrong and where, and optionally a ``hint`` that says what to do.
The underlying cause is chained (``raise ... from exc``), never swallowed.

Example::

    try:
        vm.qmp("query-status")
    except AtpError as exc:
        print(exc)          # message, then "hint: ..." when there is one
"""

from __future__ import annotations

import builtins
from typing import TYPE_CHECKING

if TYPE_CHECKING:  # the screen package imports this module; only types go the other way
    from PIL import Image

    from atp_notebook.screen.match import NeedleMatch
    from atp_notebook.screen.needle import Needle


class AtpError(Exception):
    """Root of every error raised by atp-notebook."""

    def __init__(self, message: str, *, hint: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.hint = hint

    def __str__(self) -> str:
        if self.hint:
            return f"{self.message}\nhint: {self.hint}"
        return self.message


# --- configuration and user input -------------------------------------------------------


class ConfigError(AtpError):
    """A configuration file, URI or argument is invalid; says which file, line and key."""

    def __init__(
        self,
        message: str,
        *,
        source: str | None = None,
        line: int | None = None,
        key_path: str | None = None,
        hint: str | None = None,
    ) -> None:
        where = ""
        if source is not None:
            where = source if line is None else f"{source}:{line}"
        if key_path:
            where = f"{where}: {key_path}" if where else key_path
        super().__init__(f"{where}: {message}" if where else message, hint=hint)
        self.source = source
        self.line = line
        self.key_path = key_path


class InvalidArgument(AtpError, ValueError):
    """A call's arguments are wrong; found before anything was sent."""


class KeymapError(InvalidArgument):
    """A character or key name that cannot be turned into scancodes; says which and why."""


class UnknownVm(AtpError, LookupError):
    """A VM name that no configured host or Spice entry knows."""


class UnknownHost(AtpError, LookupError):
    """A host id that the configuration does not name."""


class NoLibvirtHost(AtpError, LookupError):
    """A Spice-only VM (no libvirt host) was asked for QMP, the guest agent or virtio-serial."""


class NeedleError(ConfigError):
    """A needle file (os-autoinst JSON + PNG) is unreadable or invalid; names the file and
    the field (``area[1].width``). Nothing of a directory is loaded when one file is bad."""


# --- screen assertions ----------------------------------------------------------------


class ScreenMismatch(AtpError, AssertionError):
    """The screen did not show what was asserted before the timeout.

    Carries the evidence: ``screen`` (the last screen checked, a PIL image), ``needles``
    (the candidates), ``best`` (the best candidate's :class:`NeedleMatch`: per-area
    similarity, best position, diff image), ``candidates`` (every needle's last match,
    best first) and, for a text wait, ``text`` (what OCR read last). An AssertionError too,
    so pytest reports it as a failed assertion.
    """

    def __init__(self, message: str, *, screen: Image.Image | None = None,
                 needles: tuple[Needle, ...] = (), best: NeedleMatch | None = None,
                 candidates: tuple[NeedleMatch, ...] = (), text: str | None = None,
                 hint: str | None = None) -> None:
        super().__init__(message, hint=hint)
        self.screen = screen
        self.needles = needles
        self.best = best
        self.candidates = candidates
        self.text = text


# --- the lab --------------------------------------------------------------------------


class LabError(AtpError):
    """``atp-lab`` could not bring up, check or tear down the lab; the hint says what to do."""


# --- transports ------------------------------------------------------------------------


class TransportError(AtpError):
    """Something went wrong talking to a host, a VM or a server."""


class HostUnavailable(TransportError):
    """A libvirt host cannot be reached (down, lost, or reconnecting)."""


class OperationTimeout(TransportError, builtins.TimeoutError):
    """A network wait ran out of time."""


class ChannelClosed(TransportError):
    """A channel (Spice, virtio-serial) was closed; it may be reopened."""


class ProtocolError(TransportError):
    """A protocol was violated."""


class LocalProtocolError(ProtocolError):
    """We tried to do something the protocol does not allow in this state."""


class RemoteProtocolError(ProtocolError):
    """The peer sent bytes that break the protocol (garbage, oversized, out of order)."""


class CodecError(RemoteProtocolError):
    """Compressed image data the server sent cannot be decoded; names the codec and byte offset."""

    def __init__(self, codec: str, offset: int, reason: str) -> None:
        super().__init__(f"{codec} image data is bad at byte {offset}: {reason}")
        self.codec = codec
        self.offset = offset
        self.reason = reason


class AuthError(TransportError):
    """Authentication or certificate verification failed."""


class SpiceAuthError(AuthError):
    """A Spice server refused our ticket or SASL credentials."""


class TlsVerificationError(AuthError):
    """The peer's TLS certificate did not verify against the configured CA."""


# --- commands --------------------------------------------------------------------------


class CommandError(AtpError):
    """A command reached its target and the target answered with an error."""


class QmpCommandError(CommandError):
    """QEMU answered a QMP command with ``{"error": {"class": ..., "desc": ...}}``."""

    def __init__(self, command: str, error_class: str, description: str) -> None:
        super().__init__(f"QMP {command!r} failed: {error_class}: {description}")
        self.command = command
        self.error_class = error_class
        self.description = description


class SpiceCommandError(CommandError):
    """The Spice server did not do what was asked (e.g. a mouse mode it does not offer)."""


class GuestAgentError(CommandError):
    """The guest agent answered with an error, or could not be asked."""


class AgentUnavailable(GuestAgentError):
    """The guest agent is not connected or does not answer."""


class AgentCommandDisabled(GuestAgentError):
    """The guest agent has this command disabled."""


class GuestTimeout(GuestAgentError, builtins.TimeoutError):
    """A command in the guest did not finish in time."""


# --- interrupts ---------------------------------------------------------------------


class Interrupted(KeyboardInterrupt):
    """The user interrupted a wait (Kernel > Interrupt, Ctrl-C); what it started in the
    guest was stopped where it could be, and the connection stays usable.

    A KeyboardInterrupt, not an :class:`AtpError`, on purpose: code that catches
    ``Exception`` must not swallow a user's interrupt. IPython shows it as one line
    (``_render_traceback_``), not a traceback through the toolkit.
    """

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message

    def __str__(self) -> str:
        return self.message

    def _render_traceback_(self) -> list[str]:
        return [f"Interrupted: {self.message}"]
