"""Jupyter face of atp-notebook: the ``%atp``, ``%qmp``, ``%qga`` and ``%virtio`` magics.

This layer uses only :mod:`atp_notebook.session`, :mod:`atp_notebook.transport` and the
objects they return (DESIGN §2).

Example (in a notebook)::

    %load_ext atp_notebook
    %qmp atp-vm1 query-status
"""

from atp_notebook.notebook.magics import (
    AtpMagics,
    load_ipython_extension,
    unload_ipython_extension,
)

__all__ = ["AtpMagics", "load_ipython_extension", "unload_ipython_extension"]
