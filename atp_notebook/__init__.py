"""atp-notebook: drive QEMU/KVM virtual machines from Jupyter.

Example::

    from atp_notebook import connect
    s = connect()                      # $ATP_CONFIG, ./atp.yaml, else the lab's atp.yaml
    s.vm("atp-vm1").state()            # "running"
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from atp_notebook.config import HostInfo, TransportConfig, load_config
from atp_notebook.errors import AtpError
from atp_notebook.session import Session, Vm, connect
from atp_notebook.transport import TransportManager

if TYPE_CHECKING:
    from IPython.core.interactiveshell import InteractiveShell

__all__ = [
    "AtpError",
    "HostInfo",
    "Session",
    "TransportConfig",
    "TransportManager",
    "Vm",
    "__version__",
    "connect",
    "load_config",
    "load_ipython_extension",
    "unload_ipython_extension",
]
__version__ = "0.1.0"


def load_ipython_extension(ip: InteractiveShell) -> None:
    """``%load_ext atp_notebook`` registers the magics (IPython is imported only then)."""
    # lazily: `import atp_notebook` in a script must not pull in IPython
    from atp_notebook.notebook import load_ipython_extension as load  # noqa: PLC0415

    load(ip)


def unload_ipython_extension(ip: InteractiveShell) -> None:
    """``%unload_ext atp_notebook`` closes the magics' session and removes them."""
    from atp_notebook.notebook import unload_ipython_extension as unload  # noqa: PLC0415

    unload(ip)
