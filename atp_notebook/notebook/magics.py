"""The IPython magics: ``%atp``, ``%qmp``/``%%qmp``, ``%qga``/``%%qga``, ``%virtio``,
``%type``, ``%key``, ``%click``, ``%spice`` (live screen and channels), ``%screenshot``,
``%needle`` (a needle editor).

``AtpMagics`` only routes: each magic parses its line with a plain function from
:mod:`atp_notebook.notebook.commands` and runs the request through the session's ``Vm``.
Settings are traitlets, so ``%config AtpMagics.timeout = 10`` works. Magics that take JSON
or guest text are ``@no_var_expand``: ``$x`` and ``{x}`` reach the VM as typed.

Example (in a notebook)::

    %load_ext atp_notebook
    %config AtpMagics.timeout = 10
    r = %qmp atp-vm1 query-status
    r.value["status"]                      # 'running'
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING, Any

from IPython.core.interactiveshell import InteractiveShell
from IPython.core.magic import Magics, line_cell_magic, line_magic, magics_class, no_var_expand
from traitlets import Bool, Float, TraitError, Unicode, observe, validate
from traitlets.config import Configurable

from atp_notebook.notebook.commands.atp import (
    AtpConnect,
    AtpDisconnect,
    AtpHosts,
    AtpStatus,
    hosts_table,
    parse_atp_line,
    status_table,
    vms_table,
)
from atp_notebook.notebook.commands.needle import parse_needle_line, run_needle
from atp_notebook.notebook.commands.qga import parse_qga_cell, parse_qga_line, run_qga
from atp_notebook.notebook.commands.qmp import (
    parse_qmp_cell,
    parse_qmp_line,
    run_qmp_line,
    run_qmp_script,
)
from atp_notebook.notebook.commands.screen import parse_screenshot_line, run_screenshot
from atp_notebook.notebook.commands.spice import (
    SpiceDisplay,
    parse_click_line,
    parse_key_line,
    parse_spice_line,
    parse_type_line,
    run_channels,
    run_click,
    run_display,
    run_key,
    run_type,
)
from atp_notebook.notebook.commands.virtio import VirtioClose, parse_virtio_line, run_virtio
from atp_notebook.notebook.context import NotebookContext
from atp_notebook.notebook.failures import errors_shown_briefly
from atp_notebook.notebook.results import NoteResult, Result
from atp_notebook.notebook.screen_failure import register_mismatch_view, unregister_mismatch_view

if TYPE_CHECKING:
    from atp_notebook.notebook.needle_editor import NeedleEditor
    from atp_notebook.notebook.widget import DisplayWidget

log = logging.getLogger("atp.notebook")


@magics_class
class AtpMagics(Magics, Configurable):
    """Magics for VMs: QMP, the guest agent and virtio-serial ports, on a lazy session.

    Example: ``%config AtpMagics.default_vm = "atp-vm1"`` then ``%qmp query-status``.
    """

    timeout = Float(30.0, help="Seconds a guest command, an agent wait or a port read may "
                               "take unless the magic says --timeout").tag(config=True)
    events_window = Float(2.0, help="Seconds %qmp --events collects events unless the magic "
                                    "says --timeout").tag(config=True)
    config_path = Unicode(None, allow_none=True,
                          help="atp.yaml to connect with; None searches $ATP_CONFIG, "
                               "./atp.yaml, then the lab's").tag(config=True)
    default_vm = Unicode(None, allow_none=True,
                         help="VM (NAME or NAME@HOST) used when a magic names none"
                         ).tag(config=True)
    progress = Bool(True, help="Show a progress bar while waiting, in notebooks only"
                    ).tag(config=True)

    def __init__(self, shell: InteractiveShell | None = None, **kwargs: Any) -> None:
        # first: loading the shell's config below already fires the config_path observer
        self.context = NotebookContext(self)
        self._constructed = False
        # Magics.__init__ adds us to shell.configurables (so %config finds us) and takes
        # the shell's config as parent: earlier %config lines and ipython_config.py apply
        super().__init__(shell=shell, **kwargs)
        self._constructed = True

    @validate("timeout", "events_window")
    def _positive(self, proposal: Any) -> float:
        value = float(proposal["value"])
        if value > 0:
            return value
        trait = proposal["trait"]
        message = f"AtpMagics.{trait.name} must be more than 0 seconds, not {value:g}"
        if not getattr(self, "_constructed", True):
            # %config keeps even a rejected value in the shell's config; it must not make a
            # later %reload_ext fail, so at construction warn and use the default
            log.warning("%s; using %g", message, trait.default_value)
            return float(trait.default_value)
        raise TraitError(message)

    @observe("config_path")
    def _config_path_changed(self, _change: Any) -> None:
        self.context.disconnect()  # the next magic connects with the new file

    # --- %atp -------------------------------------------------------------------------

    @line_magic
    def atp(self, line: str) -> Result:
        """The session: ``%atp [status | hosts | vms | connect [PATH] | disconnect]``.

        The first magic that needs a VM connects with ``AtpMagics.config_path`` (default:
        ``$ATP_CONFIG``, ``./atp.yaml``, then the lab's). Passwords are never shown.

        Example::

            %atp vms
            %atp connect /var/lib/atp-lab/atp.yaml
        """
        request = parse_atp_line(line)
        with errors_shown_briefly():
            if isinstance(request, AtpDisconnect):
                done = self.context.disconnect()
                return NoteResult("disconnected" if done else "not connected", done)
            if isinstance(request, AtpConnect):
                if request.path != self.config_path:
                    self.config_path = request.path  # observed: drops the old session
                session = self.context.reconnect()
                return NoteResult(f"connected: {session.config.source or 'in-memory config'}"
                                  f" ({len(session.config.hosts)} hosts)", session)
            session = self.context.session
            if isinstance(request, AtpHosts):
                return hosts_table(session)
            if isinstance(request, AtpStatus):
                return status_table(session, self._settings(), self.context.open_ports())
            return vms_table(session)

    def _settings(self) -> list[tuple[str, str]]:
        return [("timeout", f"{self.timeout:g} s"),
                ("events_window", f"{self.events_window:g} s"),
                ("default_vm", self.default_vm or "(none)")]

    # --- %qmp / %%qmp -----------------------------------------------------------------

    @line_cell_magic
    @no_var_expand
    def qmp(self, line: str, cell: str | None = None) -> Result:
        """QMP commands, HMP lines and QMP events of a VM (``NAME`` or ``NAME@HOST``).

        Line: ``%qmp VM COMMAND [JSON-ARGS]``, ``%qmp --hmp VM LINE``,
        ``%qmp --events VM [NAMES...] [--timeout S] [--count N]`` (collects for
        ``AtpMagics.events_window`` s unless told). Cell: ``%%qmp VM``, one ``name {json}`` a
        line (or a JSON list of ``{"execute": ...}``), run in order, stopping at the first
        error, which names its line; ``%%qmp --events VM [NAMES...]`` also collects the events
        seen while the cell runs. JSON is passed as typed (no ``$var`` expansion).

        Example::

            r = %qmp atp-vm1 query-status
            %qmp atp-vm1 human-monitor-command {"command-line": "info status"}
            %qmp --hmp atp-vm1 info name
        """
        with errors_shown_briefly():
            if cell is None:
                request = parse_qmp_line(line, self.context.selector())
                with self.context.using(request.vm) as vm:
                    return run_qmp_line(request, vm, self.events_window)
            script = parse_qmp_cell(line, cell, self.context.selector())
            with self.context.using(script.vm) as vm:
                return run_qmp_script(script, vm, self.events_window)

    # --- %qga / %%qga -----------------------------------------------------------------

    @line_cell_magic
    @no_var_expand
    def qga(self, line: str, cell: str | None = None) -> Result:
        """Guest agent commands, programs and shell scripts in a VM.

        Line: ``%qga VM COMMAND [JSON-ARGS]``, ``%qga VM exec [--timeout S] [--check] --
        ARGV...``, ``%qga VM wait [--timeout S]`` (a progress bar in notebooks). Cell:
        ``%%qga VM [--timeout S] [--check]`` runs the cell as ``/bin/sh -c CELL``. Output
        shows when the program has ended, not as it comes: qemu-ga hands out a process's
        output only once it has exited. A non-zero exit is shown, or with ``--check`` raised.
        Waits default to ``AtpMagics.timeout``.

        Example::

            %qga atp-vm1 guest-get-host-name
            %qga atp-vm1 exec -- cat /etc/hostname
            %%qga atp-vm1
            echo hello from $(hostname)
        """
        with errors_shown_briefly():
            if cell is None:
                request = parse_qga_line(line, self.context.selector())
            else:
                request = parse_qga_cell(line, cell, self.context.selector())
            with self.context.using(request.vm) as vm:
                return run_qga(request, vm, self.timeout, self.context.progress)

    # --- %virtio ----------------------------------------------------------------------

    @line_magic
    @no_var_expand
    def virtio(self, line: str) -> Result:
        """Send to or receive from a virtio-serial port (it stays open between magics).

        ``%virtio VM PORT send TEXT`` (UTF-8; ``\\n \\r \\t \\0 \\\\ \\xNN`` escapes),
        ``%virtio VM PORT recv [--timeout S] [--line] [--max N]`` (what has arrived, at least
        one byte, or one line), ``%virtio VM PORT close``.

        Example::

            %virtio atp-vm1 com.atp.test.0 send hello\\n
            %virtio atp-vm1 com.atp.test.0 recv --line
        """
        with errors_shown_briefly():
            request = parse_virtio_line(line, self.context.selector())
            if isinstance(request, VirtioClose):
                closed = self.context.close_serial(request.vm, request.port)
                where = f"{request.vm}:{request.port}"
                return NoteResult(f"closed {where}" if closed else f"{where} was not open",
                                  closed)
            stream = self.context.serial(request.vm, request.port)
            return run_virtio(request, stream, self.timeout)

    # --- %type / %key / %spice (Spice Inputs; the Spice vm_id is the VM name) ----------

    @line_magic
    @no_var_expand
    def type(self, line: str) -> Result:
        """Type text on a VM's keyboard through Spice: ``%type VM [--layout L] [--] TEXT``.

        TEXT is the rest of the line, as typed (no ``$var`` expansion), with ``\\n \\r
        \\t \\0 \\\\ \\xNN`` escapes. Every character must be on the layout (us, de, fr)
        or nothing is sent.

        Example::

            %type atp-vm1 echo hello\\n
            %type atp-vm1 --layout de echo hallo@welt\\n
        """
        with errors_shown_briefly():
            request = parse_type_line(line, self.context.selector())
            with self.context.using(request.vm) as vm:
                return run_type(request, vm)

    @line_magic
    @no_var_expand
    def key(self, line: str) -> Result:
        """Press and release a key combination: ``%key VM [--layout L] COMBO``.

        Example::

            %key atp-vm1 ctrl-alt-delete
            %key atp-vm1 ctrl-c
        """
        with errors_shown_briefly():
            request = parse_key_line(line, self.context.selector())
            with self.context.using(request.vm) as vm:
                return run_key(request, vm)

    @line_magic
    def click(self, line: str) -> Result:
        """Click at a display position: ``%click VM X Y [--button left|middle|right]``.

        Exact in client mouse mode (the toolkit takes it whenever the VM offers it: a tablet
        or a vdagent); a best effort in server mode. The value is the mode used.

        Example::

            %click atp-vm1 100 50
            %click atp-vm1 10 10 --button right
        """
        with errors_shown_briefly():
            request = parse_click_line(line, self.context.selector())
            with self.context.using(request.vm) as vm:
                return run_click(request, vm)

    @line_magic
    def spice(self, line: str) -> Result | DisplayWidget:
        """The VM's live screen, or its Spice channels.

        ``%spice VM [--channel N] [--fps F] [--quality Q]`` shows a DisplayWidget of display
        channel N (0, the first head): the screen as it changes, at most F frames a second
        (30, up to 60), JPEG quality Q (1..100) while it moves and exact once still; click
        into it to type and point. The result can be assigned and shown again; the display
        opens first (up to ``AtpMagics.timeout``), so a head that cannot be shown fails here.
        ``%spice --channels VM`` is the channel table: every channel the server offers and
        its state (not opened, connecting, open, closed, failed and why), plain/TLS, bytes
        in/out, messages, pings, link time, RTT.

        Example::

            w = %spice atp-vm1 --fps 10
            w                              # shows it (again)
            %spice --channels atp-vm1
        """
        with errors_shown_briefly():
            request = parse_spice_line(line, self.context.selector())
            with self.context.using(request.vm) as vm:
                if isinstance(request, SpiceDisplay):
                    return run_display(request, vm, self.timeout)
                return run_channels(request, vm, self.timeout)

    @line_magic
    def screenshot(self, line: str) -> Result:
        """The VM's screen drawn from Spice: ``%screenshot VM [--region X,Y,W,H]
        [--channel N] [--save FILE]``; ``.value`` is the PIL image (``vm.screenshot()``;
        QEMU's own picture stays ``vm.screendump()``).

        Example::

            %screenshot atp-vm1
            %screenshot atp-vm1 --region 0,0,720,40 --save top.png
        """
        with errors_shown_briefly():
            request = parse_screenshot_line(line, self.context.selector())
            with self.context.using(request.vm) as vm:
                return run_screenshot(request, vm)

    @line_magic
    def needle(self, line: str) -> NeedleEditor:
        """A needle editor on the VM's screen now: ``%needle VM NAME [--tags a,b]
        [--properties p,name=value] [--dir DIR]``; draw areas, set the click point, each
        area's match and margin, Save writes DIR/NAME.json and .png (DIR: ``$ATP_NEEDLES``
        or ./needles). See NeedleEditor for its Python API.

        Example::

            editor = %needle atp-vm1 login-prompt --tags login
            editor.add_area(0, 0, 200, 16); editor.save()
        """
        with errors_shown_briefly():
            request = parse_needle_line(line, self.context.selector())
            with self.context.using(request.vm) as vm:
                return run_needle(request, vm)


def load_ipython_extension(ip: InteractiveShell) -> None:
    """``%load_ext atp_notebook``: register the magics (loading twice is harmless)."""
    unload_ipython_extension(ip)
    ip.register_magics(AtpMagics(shell=ip))
    register_mismatch_view(ip)  # a ScreenMismatch from any cell shows its evidence


def unload_ipython_extension(ip: InteractiveShell) -> None:
    """``%unload_ext atp_notebook``: close the session and drop the magics."""
    unregister_mismatch_view(ip)
    for configurable in list(ip.configurables):
        if isinstance(configurable, AtpMagics):
            configurable.context.disconnect()
            ip.configurables.remove(configurable)
            for kind, table in ip.magics_manager.magics.items():
                for name in configurable.magics.get(kind, {}):
                    # only our bound methods: another extension may have taken the name since
                    if getattr(table.get(name), "__self__", None) is configurable:
                        del table[name]
