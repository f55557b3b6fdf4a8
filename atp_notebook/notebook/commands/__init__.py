"""What each magic does, as plain functions: ``parse_*`` (pure: a line in, a frozen request
out, or a UsageError) and ``run_*`` (a request and a ``Vm`` in, a result object out).

Example::

    from atp_notebook.notebook.commands.qmp import parse_qmp_line
    parse_qmp_line("atp-vm1 query-status").command     # 'query-status'
"""
