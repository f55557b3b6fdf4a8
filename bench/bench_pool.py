"""Connections through the toolkit's pool vs raw ``libvirt.open``, per lab transport.

``ours``: the time until a fresh :class:`HostConnection` hands out its connection —
``libvirt.open`` on the atp executor, the state published, the caller woken (the close
callback and keepalive are registered right after, off the caller's path; ``close()`` waits for
them, so no background work of one round spills into the next). ``anchor``: raw
``libvirt.open`` from the calling thread. Both are interleaved in the same run and closed
outside the timed part. The target is a ratio of at most 1.1.

``pool_reuse.<id>``: what every QMP/QGA call does with a shared connection — ask the ready
host for it, then make a call — against the same call on a raw ``virConnect`` kept in a
variable; the call is ``getLibVersion()``, the cheapest round trip to libvirtd. Interleaved.
(It used to be a hand-out divided by a full raw open, which compared unlike work.)
``pool_handout.<id>`` is the hand-out alone, a plain figure in µs: nothing raw hands out a
connection.
"""

from __future__ import annotations

import sys
import time
from functools import partial

import libvirt

from atp_notebook.lab.inventory import lab_hosts
from atp_notebook.lab.paths import LabPaths
from atp_notebook.loop import get_loop, run
from atp_notebook.virt.host import HostConnection
from bench.measure import emit, emit_plain, interleave, iterations, median, ms, sample, us


def timed_raw_open(uri: str) -> int:
    start = time.perf_counter_ns()
    conn = libvirt.open(uri)
    took = time.perf_counter_ns() - start
    conn.close()
    return took


def timed_pool_open(host_id: str, uri: str) -> int:
    host = HostConnection(host_id, uri)
    start = time.perf_counter_ns()
    host.connection(timeout=30)
    took = time.perf_counter_ns() - start
    run(host.close(), timeout=30)
    return took


def reuse(host_id: str, uri: str) -> None:
    host = HostConnection(host_id, uri)
    raw = libvirt.open(uri)
    try:
        host.connection(timeout=30).getLibVersion()  # unmeasured: the open, first calls
        raw.getLibVersion()
        n = iterations(2000 if host_id != "ssh" else 200, 20)
        raw_ns, ours_ns = interleave(raw.getLibVersion,
                                     lambda: host.connection(30).getLibVersion(), n)
        emit(f"pool_reuse.{host_id}", ms(median(ours_ns)), ms(median(raw_ns)), "ms",
             ours_is="host.connection().getLibVersion() on a ready host",
             anchor_is="getLibVersion() on a raw virConnect held in a variable", n=n, p="p50")
        handout = sample(partial(host.connection, 30), iterations(10_000, 100))
        emit_plain(f"pool_handout.{host_id}", us(median(handout)), "us",
                   ours_is="host.connection() on a ready host", n=len(handout), p="p50")
    finally:
        raw.close()
        run(host.close(), timeout=30)


def main() -> int:
    get_loop()  # start the loop and register libvirt's events before any open
    for h in lab_hosts(LabPaths.default()):
        n = iterations(20 if h.id == "ssh" else 1000, 3)
        timed_pool_open(h.id, h.uri)  # unmeasured warm-up of both paths
        timed_raw_open(h.uri)
        raw: list[int] = []
        ours: list[int] = []
        for i in range(n):  # alternate who goes first, as measure.interleave does
            pair = (partial(timed_raw_open, h.uri), partial(timed_pool_open, h.id, h.uri))
            first, second = pair if i % 2 == 0 else pair[::-1]
            a, b = first(), second()
            raw_ns, ours_ns = (a, b) if i % 2 == 0 else (b, a)
            raw.append(raw_ns)
            ours.append(ours_ns)
        anchor = ms(median(raw))
        overhead_us = (median(ours) - median(raw)) / 1000
        emit(f"pool_open.{h.id}", ms(median(ours)), anchor, "ms",
             ours_is="HostConnection(uri).connection() on a new host",
             anchor_is="libvirt.open(uri)", n=n, p="p50", overhead_us=round(overhead_us, 1))

        reuse(h.id, h.uri)
        print(f"pool: {h.id} done", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
