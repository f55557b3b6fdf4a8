"""atp-notebook: drive QEMU/KVM virtual machines from Jupyter.

The lab (``atp-lab up``) gives a machine a libvirt host with test VMs; the rest of the
package talks to it over libvirt (QMP, guest agent, virtio-serial) and Spice.
"""

from atp_notebook.errors import AtpError

__all__ = ["AtpError", "__version__"]
__version__ = "0.1.0"
