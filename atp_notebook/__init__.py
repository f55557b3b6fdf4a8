"""atp-notebook: drive QEMU/KVM virtual machines from Jupyter.

Example::

    from atp_notebook import connect
    s = connect()                      # $ATP_CONFIG, ./atp.yaml, else the lab's atp.yaml
    s.vm("atp-vm1").state()            # "running"
"""

from atp_notebook.config import HostInfo, TransportConfig, load_config
from atp_notebook.errors import AtpError
from atp_notebook.session import Session, Vm, connect
from atp_notebook.transport import TransportManager

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
]
__version__ = "0.1.0"
