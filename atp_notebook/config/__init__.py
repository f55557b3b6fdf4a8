"""Configuration: libvirt URIs, the typed transport config, and the ``atp.yaml`` loader.

Example::

    from atp_notebook.config import load_config
    cfg = load_config()                 # $ATP_CONFIG, ./atp.yaml, else the lab's
    cfg.host("tls").effective_uri       # LibvirtUri(transport='tls', ...)

This package imports nothing of ours but :mod:`atp_notebook.errors` (DESIGN §2).
"""

from atp_notebook.config.loader import find_config, load_config, parse_config
from atp_notebook.config.schema import (
    SPICE_CHANNELS,
    HostInfo,
    Secret,
    SpiceVmConfig,
    TransportConfig,
)
from atp_notebook.config.uri import LibvirtUri, parse_host, parse_libvirt_uri

__all__ = [
    "SPICE_CHANNELS",
    "HostInfo",
    "LibvirtUri",
    "Secret",
    "SpiceVmConfig",
    "TransportConfig",
    "find_config",
    "load_config",
    "parse_config",
    "parse_host",
    "parse_libvirt_uri",
]
