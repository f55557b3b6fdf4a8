"""A 1 MB echo through a Spice port channel vs through virtio-serial via libvirt, same VM.

The port VM (``PORT_SETTING``: two spiceport chardevs on guest virtio-serial ports) also
has the display VMs' UNIX-socket virtio-serial channel ``com.atp.upload.0``, which libvirt's
``virDomainOpenChannel`` opens (the toolkit's :class:`VirtioSerial`). The guest runs the same
echo on both (:mod:`atp_notebook.lab.port_echo`: busybox ``cat`` from the port to itself),
so the two paths differ only on the host side: ours is a Spice port channel this process
reads (client -> spice-server -> QEMU chardev), the anchor libvirt's stream (client ->
libvirtd's RPC stream -> QEMU's chardev socket). One round sends 1 MB (10^6 bytes) and
reads it back, byte-exact; the rounds alternate ABBA. Both figures are times (ms) with the
throughput (MB/s, both directions' payload counted once) as extra keys.

The bench takes the lab lock itself (``lab_lock``), unless a process it runs under holds it.

    .venv/bin/python -m bench.bench_port [--quick]
"""

from __future__ import annotations

import statistics
import sys

from atp_notebook.lab.display_capture import lab_lock
from atp_notebook.lab.display_vms import PORT_NAMES, PORT_SETTING, UPLOAD_PORT_NAME, display_vm
from atp_notebook.lab.port_echo import guest_echo
from atp_notebook.session import connect
from atp_notebook.spice.port import SpicePort
from atp_notebook.virt.virtio_serial import VirtioSerial
from bench.measure import emit, interleave, is_quick, iterations, ms

SIZE = 1_000_000
TIMEOUT_S = 120.0  # a TCG guest's cat moves a few MB/s
WARMUP = 2
ECHO = PORT_NAMES[0]
DATA = bytes((i * 7 + i // 251) & 0xFF for i in range(SIZE))


def echo_once(stream: SpicePort | VirtioSerial) -> None:
    stream.send(DATA, timeout=TIMEOUT_S)
    if stream.recv_exactly(SIZE, timeout=TIMEOUT_S) != DATA:
        raise RuntimeError(f"{stream!r}: the echo came back different")


def main() -> int:
    rounds = iterations(10, 2)
    with lab_lock(), connect() as session, display_vm(PORT_SETTING) as dvm:
        vm = session.vm(dvm.name)
        port = vm.port(ECHO, timeout=TIMEOUT_S)
        # the host sides open first: the guest's cat reads EOF from a port nobody holds
        serial = VirtioSerial(vm, UPLOAD_PORT_NAME).open(TIMEOUT_S)
        try:
            with guest_echo(vm, ECHO), guest_echo(vm, UPLOAD_PORT_NAME):
                port.wait_guest(opened=True, timeout=TIMEOUT_S)
                for _ in range(WARMUP):
                    echo_once(port)
                    echo_once(serial)
                ours, anchor = interleave(lambda: echo_once(port), lambda: echo_once(serial),
                                          rounds)
        finally:
            serial.close()
            port.close()
    ours_ms, anchor_ms = ms(statistics.median(ours)), ms(statistics.median(anchor))
    emit("port_echo_1mb.p50", ours_ms, anchor_ms, "ms",
         ours_is="vm.port(name): send 1 MB, recv_exactly 1 MB through a Spice port channel",
         anchor_is="VirtioSerial (virDomainOpenChannel): the same echo through libvirt",
         n=rounds, p="p50", ours_mb_s=round(SIZE / 1e6 / (ours_ms / 1000), 2),
         anchor_mb_s=round(SIZE / 1e6 / (anchor_ms / 1000), 2))
    if is_quick():
        print("port: quick run", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
