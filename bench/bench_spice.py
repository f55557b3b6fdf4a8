"""Spice channel connect time and input latency, against the lab's real servers.

``spice_connect.<plain|tls>``: open an Inputs channel (TCP or TLS connect, link, ticket,
link result) on a VM whose Main is already open — ours through ``SpiceChannel.open``; the
anchor is a bare TCP (or TLS) connect to the same port in the same run, interleaved, so the
ratio is what the Spice link adds on top of the socket. Targets: ours <= 20 ms plain,
<= 50 ms TLS on loopback (DESIGN §9).

``spice_input_to_wire``: a ``SpiceKeyboard.press`` call until its bytes have been handed to
the socket (``writer.write`` + ``drain``), p50/p99; anchor: the same ``writer.write`` +
``drain`` of the same bytes without our layers. Target: p99 <= 1 ms.
"""

from __future__ import annotations

import asyncio
import sys
import time
from pathlib import Path

from atp_notebook.lab.paths import LabPaths
from atp_notebook.spice.aio.channel import SpiceChannel, SpiceTarget
from atp_notebook.spice.aio.connect import SpiceTls, open_stream
from atp_notebook.spice.inputs import SpiceKeyboard
from atp_notebook.spice.proto import InputsProtocol
from atp_notebook.spice.proto.constants import ChannelType
from atp_notebook.spice.vm import SpiceVmConnection
from bench.measure import emit, iterations, ms, percentile


async def time_connect(vm: SpiceVmConnection, n: int) -> tuple[list[int], list[int]]:
    target = vm.target
    port = target.tls_port if target.port is None else target.port
    assert port is not None
    tls = target.tls if target.port is None else None
    ours: list[int] = []
    anchor: list[int] = []
    for _ in range(n):
        start = time.perf_counter_ns()
        _, writer = await open_stream(target.host, port, tls)
        anchor.append(time.perf_counter_ns() - start)
        writer.close()
        await writer.wait_closed()
        channel = SpiceChannel(target, ChannelType.INPUTS, connection_id=vm.session_id or 0,
                               protocol_factory=InputsProtocol.from_link)
        start = time.perf_counter_ns()
        await channel.open()
        ours.append(time.perf_counter_ns() - start)
        await channel.close()
    return ours, anchor


async def time_input(vm: SpiceVmConnection, n: int) -> tuple[list[int], list[int]]:
    channel = await vm.open_channel(ChannelType.INPUTS)
    keyboard = SpiceKeyboard(channel, rate=None)
    writer = channel._writer  # the anchor writes the same bytes to the same socket
    assert writer is not None
    payload = bytes(16)
    ours: list[int] = []
    anchor: list[int] = []
    for _ in range(n):
        start = time.perf_counter_ns()
        await keyboard.press("shift")
        ours.append(time.perf_counter_ns() - start)
        await asyncio.sleep(0.01)  # the guest's keyboard drains between presses
        start = time.perf_counter_ns()
        writer.write(payload[:0])  # an empty write: the socket call alone
        await writer.drain()
        anchor.append(time.perf_counter_ns() - start)
    return ours, anchor


async def main_async() -> None:
    paths = LabPaths.default()
    password = paths.spice_password_file("atp-vm2").read_text().strip()
    plain = SpiceVmConnection("atp-vm1", SpiceTarget("127.0.0.1", port=5901))
    tls = SpiceVmConnection("atp-vm2", SpiceTarget(
        "127.0.0.1", tls_port=5902, tls=SpiceTls(Path(paths.spice_pki / "ca-cert.pem")),
        password=password))
    n = iterations(50, 3)
    for label, vm in (("plain", plain), ("tls", tls)):
        await vm.open_channel(ChannelType.MAIN)
        ours, anchor = await time_connect(vm, n)
        emit(f"spice_connect.{label}", ms(percentile(ours, 50)), ms(percentile(anchor, 50)),
             "ms", n=n, p="p50")
        print(f"spice: connect {label} done", file=sys.stderr)
    ours, anchor = await time_input(plain, iterations(300, 10))
    for label, p in (("p50", 50.0), ("p99", 99.0)):
        emit(f"spice_input_to_wire.{label}", ms(percentile(ours, p)),
             ms(percentile(anchor, p)), "ms", n=len(ours), p=label)
    await plain.close()
    await tls.close()


def main() -> int:
    asyncio.run(main_async())
    return 0


if __name__ == "__main__":
    sys.exit(main())
