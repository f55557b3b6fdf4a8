"""The live display widget: a VM's screen, keyboard and pointer in a notebook.

Example::

    from atp_notebook.notebook.widget import DisplayWidget
    DisplayWidget(connect().vm("atp-vm1"))
"""

from atp_notebook.notebook.widget.display_widget import DisplayWidget, WidgetStats

__all__ = ["DisplayWidget", "WidgetStats"]
