"""The sync/async bridge: one definition per operation, its blocking and async forms made
from it, so the two can never take different arguments.

Two kinds of definition exist in the toolkit:

- **blocking first** (libvirt calls: QMP, the guest agent, lookups): the definition is the
  blocking method, run on the caller's thread (the fast path: no thread hop per call);
  :func:`async_twin` makes its async form, which runs it on an executor thread of the
  caller's event loop (libvirt calls block and must never run on an event loop thread);
- **atp-loop first** (Spice, virtio-serial streams: their state lives on the atp loop):
  the definition is a coroutine that must run on the atp loop; :func:`atp_blocking` makes
  the blocking form (run it there, wait), :func:`atp_async` the async form (await it from
  any event loop).

:func:`delegate` forwards a pair to an attribute (``Vm.exec`` is ``Vm.agent.exec``) without
writing it again. Every generated function carries ``__atp_definition__``, the one function
both forms come from; ``tests/unit/test_bridge_pairs.py`` checks every public pair with it.

Example::

    class GuestAgent:
        def ping(self, timeout: float | None = None) -> None: ...
        ping_async = async_twin(ping)

    class VmSpice:
        async def _press(self, combo: str, timeout: float = 30.0) -> None: ...
        press = atp_blocking(_press)
        press_async = atp_async(_press)
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import inspect
from collections.abc import AsyncIterator, Callable, Coroutine
from typing import Any, Concatenate, ParamSpec, TypeVar, cast

from atp_notebook.errors import OperationTimeout
from atp_notebook.loop import get_loop

P = ParamSpec("P")
R = TypeVar("R")
S = TypeVar("S")

DEFINITION = "__atp_definition__"


def definition_of(fn: object) -> object:
    """The definition a generated form was made from (``fn`` itself for a plain function)."""
    return getattr(fn, DEFINITION, fn)


def _mark(form: Callable[..., Any], definition: Callable[..., Any]) -> None:
    setattr(form, DEFINITION, definition_of(definition))


def async_twin(
    fn: Callable[Concatenate[S, P], R],
) -> Callable[Concatenate[S, P], Coroutine[Any, Any, R]]:
    """The async form of a blocking method: the same call on an executor thread.

    Cancelling the await stops waiting; the blocking call itself runs to its own end (a
    libvirt call cannot be interrupted), bounded by its own timeout.
    """

    @functools.wraps(fn)
    async def twin(self: S, /, *args: P.args, **kwargs: P.kwargs) -> R:
        call = functools.partial(fn, self, *args, **kwargs)
        return await asyncio.get_running_loop().run_in_executor(None, call)

    twin.__name__ = twin.__qualname__ = f"{fn.__name__}_async"
    _mark(twin, fn)
    return twin


def atp_blocking(
    fn: Callable[Concatenate[S, P], Coroutine[Any, Any, R]],
) -> Callable[Concatenate[S, P], R]:
    """The blocking form of an atp-loop coroutine: run it there and wait for its result.

    The coroutine bounds itself (each takes a ``timeout``). Kernel > Interrupt (Ctrl-C)
    while waiting cancels it on the loop, lets its cleanup finish, and raises
    :class:`~atp_notebook.errors.Interrupted`.
    """

    @functools.wraps(fn)
    def blocking(self: S, /, *args: P.args, **kwargs: P.kwargs) -> R:
        return get_loop().call(fn(self, *args, **kwargs), what=_describe(self, fn))

    blocking.__name__ = blocking.__qualname__ = fn.__name__.lstrip("_")
    _mark(blocking, fn)
    return blocking


def atp_async(
    fn: Callable[Concatenate[S, P], Coroutine[Any, Any, R]],
) -> Callable[Concatenate[S, P], Coroutine[Any, Any, R]]:
    """The async form of an atp-loop coroutine, awaitable from any event loop (on the atp
    loop it is awaited directly; elsewhere it runs there and the caller awaits a future)."""

    @functools.wraps(fn)
    async def on_atp(self: S, /, *args: P.args, **kwargs: P.kwargs) -> R:
        return await on_atp_loop(fn(self, *args, **kwargs))

    on_atp.__name__ = on_atp.__qualname__ = f"{fn.__name__.lstrip('_')}_async"
    _mark(on_atp, fn)
    return on_atp


async def on_atp_loop(coro: Coroutine[Any, Any, R]) -> R:
    """Await ``coro`` run on the atp loop, from whatever event loop the caller is on."""
    atp = get_loop().loop
    if asyncio.get_running_loop() is atp:
        return await coro
    return await asyncio.wrap_future(asyncio.run_coroutine_threadsafe(coro, atp))


@contextlib.asynccontextmanager
async def within(timeout: float, what: str, outcome: str = "not done") -> AsyncIterator[None]:
    """Bound an atp-loop operation: past ``timeout`` it is cancelled and the caller gets an
    OperationTimeout ``"{what}: {outcome} within {timeout} s"`` (a timeout raised inside
    passes unchanged)."""
    try:
        async with asyncio.timeout(timeout):
            yield
    except TimeoutError as exc:
        if isinstance(exc, OperationTimeout):
            raise
        raise OperationTimeout(f"{what}: {outcome} within {timeout:g} s") from None


def delegate(attribute: str,
             method: Callable[Concatenate[Any, P], R]) -> Callable[Concatenate[Any, P], R]:
    """``method`` called on ``self.<attribute>``: a facade's method without a second copy of
    its signature (``Vm.exec = delegate("agent", GuestAgent.exec)``)."""

    if inspect.iscoroutinefunction(method):  # stays a coroutine function, like its target

        @functools.wraps(method)
        async def forward_async(self: Any, /, *args: P.args, **kwargs: P.kwargs) -> Any:
            return await method(getattr(self, attribute), *args, **kwargs)

        _mark(forward_async, method)
        return cast(Callable[Concatenate[Any, P], R], forward_async)

    @functools.wraps(method)
    def forward(self: Any, /, *args: P.args, **kwargs: P.kwargs) -> R:
        return method(getattr(self, attribute), *args, **kwargs)

    _mark(forward, method)
    return forward


def _describe(owner: object, fn: Callable[..., Any]) -> str:
    name = fn.__name__.lstrip("_")
    label = getattr(owner, "name", None) or getattr(owner, "vm_id", None)
    return f"{name} on {label}" if label else name
