"""Every public blocking operation has an async form made from the same definition, with
the same parameters; the bridge's forms behave (interrupts included)."""

from __future__ import annotations

import asyncio
import inspect
import signal
import threading
from collections.abc import Callable

import pytest

from atp_notebook.bridge import async_twin, atp_async, atp_blocking, definition_of, within
from atp_notebook.errors import Interrupted, OperationTimeout
from atp_notebook.loop import get_loop
from atp_notebook.session import Vm
from atp_notebook.spice.cursor_facade import VmCursor
from atp_notebook.spice.display_facade import VmDisplay
from atp_notebook.spice.facade import VmSpice
from atp_notebook.spice.port import SpicePort
from atp_notebook.virt.guest_agent import GuestAgent
from atp_notebook.virt.qmp import Qmp
from atp_notebook.virt.virtio_serial import VirtioSerial

# public callables that are not operations with a blocking wait, each with its reason
NOT_OPERATIONS = {
    (Vm, "call"): "the DomainHandle hook: runs the caller's own libvirt callable",
    (Vm, "protocol"): "returns a client object, no I/O",
    (GuestAgent, "supports"): "no I/O",
    (Vm, "display_channel"): "returns a client object, no I/O",
    (VmDisplay, "frames"): "an async iterator (no blocking form makes sense)",
    (SpicePort, "add_listener"): "registers a callback, no I/O",
    (SpicePort, "on_channel_event"): "VmPorts' routing hook, on the atp loop, no wait",
}
CLASSES = [Vm, VmSpice, VmDisplay, VmCursor, GuestAgent, VirtioSerial, Qmp, SpicePort]


def operations(cls: type) -> list[str]:
    names = []
    for name, value in inspect.getmembers(cls):
        if name.startswith("_") or name.endswith(("_async", "_nowait")):
            continue
        if isinstance(inspect.getattr_static(cls, name), property | classmethod | staticmethod):
            continue
        if callable(value) and (cls, name) not in NOT_OPERATIONS:
            names.append(name)
    return names


def params(fn: Callable[..., object]) -> list[tuple[str, object, object]]:
    """The parameters after ``self``: name, kind and default (annotations are strings)."""
    sig = inspect.signature(fn)
    return [(p.name, p.kind, p.default) for p in list(sig.parameters.values())[1:]]


@pytest.mark.parametrize("cls", CLASSES, ids=lambda c: c.__name__)
def test_every_blocking_operation_has_an_async_form_from_the_same_definition(
    cls: type,
) -> None:
    names = operations(cls)
    assert names, f"{cls.__name__}: no operations found"
    for name in names:
        blocking = getattr(cls, name)
        twin = getattr(cls, f"{name}_async", None)
        assert twin is not None, f"{cls.__name__}.{name} has no {name}_async"
        assert inspect.iscoroutinefunction(twin), f"{cls.__name__}.{name}_async"
        assert definition_of(blocking) is definition_of(twin), (
            f"{cls.__name__}.{name} and {name}_async are written twice")
        assert params(blocking) == params(twin), f"{cls.__name__}.{name}"


def test_the_pairs_the_review_found_drifting_now_agree() -> None:
    # type took a timeout that type_async did not; exec_async dropped kill_on_timeout
    assert "timeout" in [p[0] for p in params(Vm.type_async)]
    assert "kill_on_timeout" in [p[0] for p in params(Vm.exec_async)]
    assert hasattr(Vm, "set_mouse_mode_async") and hasattr(Vm, "state_async")


class Counter:
    name = "counter"

    def __init__(self) -> None:
        self.cleaned = threading.Event()

    def add(self, a: int, b: int = 1) -> int:
        return a + b

    add_async = async_twin(add)

    async def _slow(self, seconds: float) -> str:
        try:
            await asyncio.sleep(seconds)
            return "done"
        finally:
            self.cleaned.set()

    slow = atp_blocking(_slow)
    slow_async = atp_async(_slow)


def test_the_forms_return_the_same_results() -> None:
    c = Counter()
    assert asyncio.run(c.add_async(2, b=3)) == c.add(2, b=3) == 5
    assert c.slow(0.01) == "done"
    assert asyncio.run(c.slow_async(0.01)) == "done"  # another loop: hops to the atp loop
    assert Counter.slow.__name__ == "slow" and Counter.slow_async.__name__ == "slow_async"


def interrupt_main_thread() -> None:
    """What Kernel > Interrupt does: SIGINT, which wakes the main thread's blocking wait
    (``_thread.interrupt_main`` only sets a flag that a blocked wait never reads)."""
    main = threading.main_thread().ident
    assert main is not None
    signal.pthread_kill(main, signal.SIGINT)


def test_an_interrupt_cancels_the_coroutine_lets_it_clean_up_and_reads_one_line() -> None:
    c = Counter()
    threading.Timer(0.2, interrupt_main_thread).start()
    with pytest.raises(Interrupted) as caught:
        c.slow(30)
    assert c.cleaned.is_set()  # its finally ran on the loop before we returned
    assert caught.value._render_traceback_() == ["Interrupted: slow on counter: interrupted"]
    assert isinstance(caught.value, KeyboardInterrupt)
    assert not isinstance(caught.value, Exception)  # `except Exception` cannot swallow it
    assert get_loop().call(asyncio.sleep(0, "still usable")) == "still usable"


def test_within_names_what_ran_out_of_time() -> None:
    async def late() -> None:
        async with within(0.01, "atp-vm1: typing 3 characters"):
            await asyncio.sleep(5)

    with pytest.raises(OperationTimeout, match=r"atp-vm1: typing 3 characters: not done "
                                               r"within 0\.01 s"):
        get_loop().call(late())
