"""libvirt's error printing, switched off where we use libvirt.

By default libvirt prints every error on stderr as well as raising it, so a notebook cell
that catches an expected error (a lost host, an agent that is not up yet) still shows red
text. We raise every error as an exception, so the printing is noise. The handler is
process-wide; it is registered by what uses libvirt (the atp loop at start, the lab before
it opens a connection), never on import, so importing a module changes nothing.

Example::

    silence_libvirt()
    conn = libvirt.open("qemu:///system")
"""

from __future__ import annotations

import libvirt


def _discard(_ctx: object, _err: object) -> None:
    """libvirt's error callback: the error is raised as libvirtError anyway."""


def silence_libvirt() -> None:
    """Stop libvirt from printing its errors on stderr (idempotent)."""
    libvirt.registerErrorHandler(_discard, None)
