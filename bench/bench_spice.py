"""Spice channel connect time and input latency, against the lab's real servers.

``spice_connect.<plain|tls>``: open an Inputs channel (TCP or TLS connect, link, ticket,
link result) on a VM whose Main is already open — ours through ``SpiceChannel.open``; the
anchor is spice-gtk doing the same work: from ``spice_channel_connect`` until its
channel-event says OPENED, on a session whose Main is linked (``bench/spice_gtk_connect.py``,
a separate process under the system interpreter, which has spice-gtk's GObject bindings).
The line records spice-gtk's version (``spice_gtk``). The server takes one client at a time
— a new Main drops the previous client — so spice-gtk runs while ours is disconnected: half
its samples before ours and half after, spreading drift over both. Targets: ours <= 20 ms
plain, <= 50 ms TLS on loopback (DESIGN §9).

``spice_socket_connect.<plain|tls>``: the bare TCP (or TLS) connect to the same port,
interleaved with ours, as a plain figure: it is part of the work above, not the same work,
so it is no anchor (it was, and the ratio of 34 said only that a link costs more than a
socket).

``spice_input_to_wire.<p50|p99>``: a ``SpiceKeyboard.press("shift")`` call until its bytes
have been handed to the socket (``writer.write`` + ``drain``); anchor: the very bytes that
press puts on the wire (one framed KEY_SCANCODE message, built once before timing) written
with the same writer + ``drain``, alternating with ours. The ratio is the cost of our layers
alone: the layout lookup, the framing and the channel's send path. Target: p99 <= 1 ms.
"""

from __future__ import annotations

import asyncio
import json
import subprocess
import sys
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path

from atp_notebook.config import Secret
from atp_notebook.lab.paths import LabPaths
from atp_notebook.spice.aio.channel import SpiceChannel
from atp_notebook.spice.aio.connect import open_stream
from atp_notebook.spice.endpoint import SpiceEndpoint, SpiceTls
from atp_notebook.spice.inputs import SpiceKeyboard
from atp_notebook.spice.proto import InputsProtocol
from atp_notebook.spice.proto.constants import ChannelType, InputsMsgc
from atp_notebook.spice.proto.framing import MINI_HEADER
from atp_notebook.spice.vm import SpiceVmConnection
from bench.measure import emit, emit_plain, iterations, ms, percentile

BENCH_DIR = Path(__file__).resolve().parent
# spice-gtk's introspection bindings are Debian packages (scripts/setup.sh installs them):
# the system interpreter sees them, the project's venv does not
SYSTEM_PYTHON = "/usr/bin/python3"
SPICE_GTK_SCRIPT = BENCH_DIR / "spice_gtk_connect.py"
SPICE_GTK_TIMEOUT_S = 60.0  # for the whole run, sessions included; a sample takes ~10 ms
KEY_PAUSE_S = 0.01  # the guest's PS/2 keyboard drains between presses


async def time_connect(vm: SpiceVmConnection, n: int) -> tuple[list[int], list[int]]:
    """``n`` Inputs channel opens (ours) and as many bare socket connects, alternating."""
    target = vm.endpoint
    assert target is not None
    port = target.tls_port if target.port is None else target.port
    assert port is not None
    tls = target.tls if target.port is None else None
    ours: list[int] = []
    bare: list[int] = []
    for _ in range(n):
        start = time.perf_counter_ns()
        _, writer = await open_stream(target.host, port, tls)
        bare.append(time.perf_counter_ns() - start)
        writer.close()
        await writer.wait_closed()
        channel = SpiceChannel(target, ChannelType.INPUTS, connection_id=vm.session_id or 0,
                               protocol_factory=InputsProtocol.from_link)
        start = time.perf_counter_ns()
        await channel.open()
        ours.append(time.perf_counter_ns() - start)
        await channel.close()
    return ours, bare


@dataclass(frozen=True)
class GtkSamples:
    version: str  # spice-gtk's own (spice_util_get_version_string)
    connect_ns: list[int]


def spice_gtk_connect(target: SpiceEndpoint, n: int) -> GtkSamples:
    """``n`` samples of spice-gtk's Inputs connect to ``target``, in ns (blocks: run in a
    thread). Raises RuntimeError with the script's stderr when it cannot measure."""
    settings = {
        "host": target.host, "port": target.port, "tls_port": target.tls_port,
        "ca_file": str(target.tls.ca_file) if target.tls.ca_file else None,
        "password": target.ticket, "n": n, "timeout": SPICE_GTK_TIMEOUT_S,
    }
    try:
        proc = subprocess.run(
            [SYSTEM_PYTHON, str(SPICE_GTK_SCRIPT)], input=json.dumps(settings),
            capture_output=True, text=True, timeout=SPICE_GTK_TIMEOUT_S + 15, check=False)
    except (OSError, subprocess.TimeoutExpired) as exc:
        raise RuntimeError(f"spice-gtk: {exc}") from exc
    if proc.returncode != 0:
        raise RuntimeError(
            f"spice-gtk exited with status {proc.returncode}: {proc.stderr.strip()[-2000:]}\n"
            "(it needs python3-gi and gir1.2-spiceclientglib-2.0; scripts/setup.sh "
            "installs them)")
    try:
        doc = json.loads(proc.stdout)
        samples: list[int] = doc["connect_ns"]
        version = doc["spice_gtk"]
    except (json.JSONDecodeError, KeyError, TypeError) as exc:
        raise RuntimeError(f"spice-gtk printed no samples: {proc.stdout[:200]!r}") from exc
    if len(samples) != n or not all(isinstance(s, int) and s > 0 for s in samples):
        raise RuntimeError(f"spice-gtk: want {n} positive samples, got {samples!r}")
    if not isinstance(version, str) or not version:
        raise RuntimeError(f"spice-gtk: no version in {proc.stdout[:200]!r}")
    return GtkSamples(version, samples)


async def compare_connect(vm_id: str, target: SpiceEndpoint, n: int) -> tuple[
        list[int], list[int], GtkSamples]:
    """Ours, the bare socket and spice-gtk: spice-gtk before and after ours (see above)."""
    before = await asyncio.to_thread(spice_gtk_connect, target, n // 2)
    vm = SpiceVmConnection(vm_id, target)
    try:
        await vm.open_channel(ChannelType.MAIN)
        ours, socket_ns = await time_connect(vm, n)
    finally:
        await vm.close()
    after = await asyncio.to_thread(spice_gtk_connect, target, n - n // 2)
    if before.version != after.version:
        raise RuntimeError(f"spice-gtk changed version mid-run: {before.version} then "
                           f"{after.version}")
    return ours, socket_ns, GtkSamples(before.version, before.connect_ns + after.connect_ns)


def press_wire(keyboard: SpiceKeyboard, combo: str) -> bytes:
    """The bytes ``keyboard.press(combo)`` writes, built once through the same protocol."""
    inputs = keyboard.channel.protocol
    assert isinstance(inputs, InputsProtocol)
    body = keyboard.layout.combo(combo).to_bytes()
    inputs.send_scancodes(body)
    wire = inputs.data_to_send()
    # with the mini header a message carries no serial, so every press sends these bytes
    if wire != MINI_HEADER.pack(InputsMsgc.KEY_SCANCODE, len(body)) + body:
        raise RuntimeError(f"press({combo!r}) is not one mini-header KEY_SCANCODE message: "
                           f"{wire.hex()}")
    return wire


async def time_input(vm: SpiceVmConnection, n: int) -> tuple[list[int], list[int]]:
    channel = await vm.open_channel(ChannelType.INPUTS)
    keyboard = SpiceKeyboard(channel, rate=None)
    writer = channel._writer  # the anchor writes the same bytes to the same socket
    assert writer is not None
    wire = press_wire(keyboard, "shift")

    async def ours() -> None:
        await keyboard.press("shift")

    async def anchor() -> None:
        writer.write(wire)
        await writer.drain()

    times: dict[Callable[[], Awaitable[None]], list[int]] = {ours: [], anchor: []}
    for i in range(n):
        # ABBA order, as measure.interleave: neither always goes first
        for fn in (ours, anchor) if i % 2 == 0 else (anchor, ours):
            start = time.perf_counter_ns()
            await fn()
            times[fn].append(time.perf_counter_ns() - start)
            await asyncio.sleep(KEY_PAUSE_S)
    return times[ours], times[anchor]


async def main_async() -> None:
    paths = LabPaths.default()
    password = paths.spice_password_file("atp-vm2").read_text().strip()
    plain = ("atp-vm1", SpiceEndpoint("127.0.0.1", port=5901))
    tls = ("atp-vm2", SpiceEndpoint(
        "127.0.0.1", tls_port=5902, tls=SpiceTls(Path(paths.spice_pki / "ca-cert.pem")),
        password=Secret(password)))
    n = iterations(50, 3)
    for label, (vm_id, target) in (("plain", plain), ("tls", tls)):
        ours, socket_ns, gtk = await compare_connect(vm_id, target, n)
        emit(f"spice_connect.{label}", ms(percentile(ours, 50)),
             ms(percentile(gtk.connect_ns, 50)), "ms",
             ours_is="SpiceChannel.open(INPUTS), Main linked",
             anchor_is=f"spice-gtk {gtk.version}: spice_channel_connect(inputs) to OPENED, "
                       "Main linked",
             spice_gtk=gtk.version, n=n, p="p50")
        emit_plain(f"spice_socket_connect.{label}", ms(percentile(socket_ns, 50)), "ms",
                   ours_is="open_stream: TCP connect" + (" + TLS handshake" if label == "tls"
                                                         else ""), n=n, p="p50")
        print(f"spice: connect {label} done", file=sys.stderr)
    vm = SpiceVmConnection(*plain)
    try:
        ours, anchor = await time_input(vm, iterations(300, 10))
    finally:
        await vm.close()
    for label, p in (("p50", 50.0), ("p99", 99.0)):
        emit(f"spice_input_to_wire.{label}", ms(percentile(ours, p)),
             ms(percentile(anchor, p)), "ms", ours_is='SpiceKeyboard.press("shift")',
             anchor_is="writer.write(the same framed bytes) + drain, same socket",
             n=len(ours), p=label)


def main() -> int:
    asyncio.run(main_async())
    return 0


if __name__ == "__main__":
    sys.exit(main())
