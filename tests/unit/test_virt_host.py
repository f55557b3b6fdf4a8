"""Pieces of the libvirt reuse mode that need no host: backoff, Spice endpoint from XML."""

from __future__ import annotations

import pytest

from atp_notebook.transport import spice_from_domain_xml
from atp_notebook.virt.host import Backoff


def test_backoff_doubles_up_to_its_cap_without_jitter() -> None:
    backoff = Backoff(initial=0.1, factor=2.0, maximum=1.0, jitter=0.0)
    assert [backoff.next_delay() for _ in range(6)] == [0.1, 0.2, 0.4, 0.8, 1.0, 1.0]
    backoff.reset()
    assert backoff.next_delay() == 0.1


@pytest.mark.parametrize("step", range(8))
def test_backoff_jitter_stays_within_its_band(step: int) -> None:
    backoff = Backoff(initial=1.0, factor=2.0, maximum=8.0, jitter=0.25)
    for _ in range(step):
        backoff.next_delay()
    nominal = min(1.0 * 2.0**step, 8.0)
    delays = [Backoff(initial=1.0, factor=2.0, maximum=8.0, jitter=0.25) for _ in range(50)]
    for b in delays:
        for _ in range(step):
            b.next_delay()
    values = [b.next_delay() for b in delays]
    assert all(nominal * 0.75 <= v <= nominal * 1.25 for v in values)
    assert len(set(values)) > 1  # jitter spreads reconnecting clients apart


SPICE_XML = [
    ("<graphics type='spice' port='5901' autoport='no' listen='127.0.0.1'/>",
     ("127.0.0.1", 5901, None, None)),
    ("<graphics type='spice' tlsPort='5902' listen='127.0.0.1' passwd='pw'/>",
     ("127.0.0.1", None, 5902, "pw")),
    ("<graphics type='spice' port='-1' tlsPort='5903' autoport='yes' listen='0.0.0.0'/>",
     ("0.0.0.0", None, 5903, None)),
    ("<graphics type='vnc' port='5900'/><graphics type='spice' port='5904'/>",
     (None, 5904, None, None)),
    ("<graphics type='vnc' port='5900'/>", None),
    ("", None),
]


@pytest.mark.parametrize(("devices", "expected"), SPICE_XML)
def test_spice_endpoint_from_domain_xml(
    devices: str, expected: tuple[str | None, int | None, int | None, str | None] | None
) -> None:
    xml = f"<domain type='qemu'><name>x</name><devices>{devices}</devices></domain>"
    assert spice_from_domain_xml(xml) == expected
