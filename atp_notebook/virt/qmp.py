"""QMP, the hypervisor's command plane, through the VM's shared libvirt connection.

Commands go through ``qemuMonitorCommand``; libvirt serialises them with its own use of the
monitor. A ``{"error": ...}`` reply becomes :class:`QmpCommandError`; the connection stays
usable for the next call.

Example::

    qmp = Qmp(vm)
    qmp.execute("query-status")["status"]        # "running"
    qmp.execute("send-key", keys=[{"type": "qcode", "data": "ret"}])
    qmp.hmp("info block")                          # str
"""

from __future__ import annotations

import io
import json
import logging
import time
import uuid
from collections.abc import Mapping, Sequence
from typing import Any

import libvirt
import libvirt_qemu
from PIL import Image

from atp_notebook.bridge import async_twin
from atp_notebook.errors import CommandError, InvalidArgument, OperationTimeout, QmpCommandError
from atp_notebook.virt.handle import DomainHandle

# A QMP reply is bounded by libvirt's own RPC string limit (4 MiB); anything past this is not
# a reply we can use, and parsing it would only cost memory.
MAX_REPLY_BYTES = 4 * 1024 * 1024
JOB_TIMEOUT_S = 120.0


def parse_reply(command: str, text: str) -> Any:
    """The ``return`` value of a QMP reply text; errors and garbage become typed errors."""
    if len(text) > MAX_REPLY_BYTES:
        raise CommandError(f"QMP {command!r}: reply of {len(text)} bytes exceeds "
                           f"{MAX_REPLY_BYTES}")
    try:
        reply = json.loads(text)
    except ValueError as exc:
        raise CommandError(f"QMP {command!r}: reply is not JSON ({exc})") from None
    if not isinstance(reply, dict):
        raise CommandError(f"QMP {command!r}: reply is not a JSON object")
    if "error" in reply:
        error = reply["error"]
        if not isinstance(error, dict):
            raise CommandError(f"QMP {command!r}: malformed error reply")
        raise QmpCommandError(command, str(error.get("class", "GenericError")),
                              str(error.get("desc", "")))
    if "return" not in reply:
        raise CommandError(f"QMP {command!r}: reply has neither 'return' nor 'error'")
    return reply["return"]


def build_command(command: str, arguments: Mapping[str, Any]) -> str:
    """The QMP JSON text for ``command``; non-JSON arguments fail before anything is sent."""
    if not command or not isinstance(command, str):
        raise InvalidArgument(f"QMP command must be a non-empty string, not {command!r}")
    message: dict[str, Any] = {"execute": command}
    if arguments:
        message["arguments"] = dict(arguments)
    try:
        return json.dumps(message, allow_nan=False)  # NaN is not JSON; QEMU would refuse it
    except (TypeError, ValueError) as exc:
        raise InvalidArgument(f"QMP {command!r}: arguments are not JSON-serialisable: "
                              f"{exc}") from None


class Qmp:
    """QMP and HMP for one VM; typed helpers for what tests use most."""

    def __init__(self, handle: DomainHandle) -> None:
        self.handle = handle
        self.log = logging.getLogger(f"atp.virt.{handle.name}.qmp")

    def __repr__(self) -> str:
        return f"<Qmp {self.handle.name}>"

    # --- raw ----------------------------------------------------------------------------

    def execute(self, command: str, arguments: Mapping[str, Any] | None = None,
                /, **kwargs: Any) -> Any:
        """Run a QMP command and return its ``return`` value.

        Arguments come as a mapping (for names with dashes) and/or keywords::

            qmp.execute("send-key", {"keys": [{"type": "qcode", "data": "a"}], "hold-time": 50})
        """
        text = build_command(command, {**(arguments or {}), **kwargs})
        dom = self.handle.domain()
        try:
            reply = self.handle.call(lambda: libvirt_qemu.qemuMonitorCommand(dom, text, 0))
        except libvirt.libvirtError as exc:
            raise CommandError(f"QMP {command!r} on {self.handle.name}: "
                               f"{exc.get_error_message()}") from exc
        return parse_reply(command, reply)

    def hmp(self, line: str) -> str:
        """Run a human-monitor command line and return its text output."""
        if not line.strip():
            raise InvalidArgument("HMP command line is empty")
        dom = self.handle.domain()
        flags = libvirt_qemu.VIR_DOMAIN_QEMU_MONITOR_COMMAND_HMP
        try:
            out = self.handle.call(lambda: libvirt_qemu.qemuMonitorCommand(dom, line, flags))
        except libvirt.libvirtError as exc:
            raise CommandError(f"HMP {line!r} on {self.handle.name}: "
                               f"{exc.get_error_message()}") from exc
        return str(out).replace("\r\n", "\n")

    # --- typed helpers ------------------------------------------------------------------

    def status(self) -> str:
        """The run state: ``running``, ``paused``, ``shutdown``, ..."""
        return str(self.execute("query-status")["status"])

    def stop(self) -> None:
        self.execute("stop")

    def cont(self) -> None:
        self.execute("cont")

    def system_reset(self) -> None:
        self.execute("system_reset")

    def system_powerdown(self) -> None:
        self.execute("system_powerdown")

    def query_block(self) -> list[dict[str, Any]]:
        return list(self.execute("query-block"))

    def send_key(self, keys: Sequence[str], hold_time_ms: int | None = None) -> None:
        """Press ``keys`` (QEMU qcodes, e.g. ``["ctrl", "alt", "delete"]``) together."""
        arguments: dict[str, Any] = {"keys": [{"type": "qcode", "data": k} for k in keys]}
        if hold_time_ms is not None:
            arguments["hold-time"] = hold_time_ms
        self.execute("send-key", arguments)

    def screendump(self, screen: int = 0) -> Image.Image:
        """The VM's screen as a PIL image, streamed over the libvirt connection (so it works
        for remote hosts too, unlike QMP ``screendump``, which writes a file on the host)."""
        dom = self.handle.domain()
        conn = self.handle.host.connection()

        def grab() -> bytes:
            stream = conn.newStream(0)
            try:
                dom.screenshot(stream, screen, 0)
                chunks: list[bytes] = []
                stream.recvAll(lambda _s, data, acc: acc.append(data), chunks)
                stream.finish()
            except BaseException:
                stream.abort()
                raise
            return b"".join(chunks)

        data = self.handle.call(grab)
        image = Image.open(io.BytesIO(data))
        image.load()
        return image

    # --- snapshots (internal, stored in the VM's qcow2 disk) --------------------------

    def snapshot_save(self, tag: str, timeout: float = JOB_TIMEOUT_S) -> None:
        """Save the whole VM state (RAM, devices, disks) as snapshot ``tag``."""
        devices = self._snapshot_devices()
        self._run_job("snapshot-save", {"tag": tag, "vmstate": devices[0],
                                        "devices": devices}, timeout)

    def snapshot_load(self, tag: str, timeout: float = JOB_TIMEOUT_S) -> None:
        """Restore snapshot ``tag``. The guest agent reconnects afterwards: call
        ``vm.wait_for_agent()`` before the next agent command."""
        devices = self._snapshot_devices()
        was_running = self.status() == "running"
        try:
            self._run_job("snapshot-load", {"tag": tag, "vmstate": devices[0],
                                            "devices": devices}, timeout)
        except QmpCommandError:
            # QEMU stops the VM for the load and leaves it stopped when the load fails
            if was_running and self.status() != "running":
                self.cont()
            raise

    def snapshot_delete(self, tag: str, timeout: float = JOB_TIMEOUT_S) -> None:
        self._run_job("snapshot-delete", {"tag": tag, "devices": self._snapshot_devices()},
                      timeout)

    def snapshots(self) -> list[str]:
        """Tags of the internal snapshots on the VM's first writable qcow2 disk."""
        devices = self._snapshot_devices()
        for block in self.query_block():
            inserted = block.get("inserted") or {}
            if inserted.get("node-name") == devices[0]:
                image = inserted.get("image", {})
                return [s["name"] for s in image.get("snapshots", [])]
        return []

    def _snapshot_devices(self) -> list[str]:
        nodes = []
        for block in self.query_block():
            inserted = block.get("inserted")
            if (inserted and not inserted.get("ro")
                    and inserted.get("image", {}).get("format") == "qcow2"):
                nodes.append(str(inserted["node-name"]))
        if not nodes:
            raise CommandError(f"{self.handle.name} has no writable qcow2 disk to hold "
                               "internal snapshots", hint="add a qcow2 disk to the domain")
        return nodes

    def _run_job(self, command: str, arguments: dict[str, Any], timeout: float) -> None:
        """Start a QMP job and wait for it to conclude; its error becomes QmpCommandError."""
        job_id = f"atp-{command}-{uuid.uuid4().hex[:8]}"
        self.execute(command, {"job-id": job_id, **arguments})
        deadline = time.monotonic() + timeout
        delay = 0.01
        while True:
            job = next((j for j in self.execute("query-jobs") if j["id"] == job_id), None)
            if job is None:  # auto-dismissed: it concluded without error
                return
            if job["status"] == "concluded":
                self.execute("job-dismiss", id=job_id)
                if "error" in job:
                    raise QmpCommandError(command, "GenericError", str(job["error"]))
                return
            if time.monotonic() > deadline:
                raise OperationTimeout(f"QMP {command!r} job {job_id} did not conclude within "
                                       f"{timeout:g} s (status {job['status']})")
            time.sleep(delay)
            delay = min(delay * 2, 0.2)

    # --- async forms, made from the blocking definitions (run on an executor thread) ----

    execute_async = async_twin(execute)
    hmp_async = async_twin(hmp)
    status_async = async_twin(status)
    stop_async = async_twin(stop)
    cont_async = async_twin(cont)
    system_reset_async = async_twin(system_reset)
    system_powerdown_async = async_twin(system_powerdown)
    query_block_async = async_twin(query_block)
    send_key_async = async_twin(send_key)
    screendump_async = async_twin(screendump)
    snapshot_save_async = async_twin(snapshot_save)
    snapshot_load_async = async_twin(snapshot_load)
    snapshot_delete_async = async_twin(snapshot_delete)
    snapshots_async = async_twin(snapshots)
