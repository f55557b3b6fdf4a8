"""The shared open attempt: one outcome, many blocking and async waiters, timeouts."""

from __future__ import annotations

import asyncio
import threading

import pytest

from atp_notebook.virt.attempt import Attempt
from tests.unit.loop_ticks import loop_ticks


def finish_soon(attempt: Attempt[int], delay: float, *, value: int | None = None,
                error: BaseException | None = None) -> threading.Thread:
    timer = threading.Timer(delay, attempt.finish, kwargs={"value": value, "error": error})
    timer.start()
    return timer


def test_every_blocking_waiter_gets_the_value() -> None:
    attempt: Attempt[int] = Attempt()
    seen: list[int] = []
    lock = threading.Lock()

    def waiter() -> None:
        assert attempt.wait(5)
        with lock:
            seen.append(attempt.result())

    threads = [threading.Thread(target=waiter) for _ in range(8)]
    for t in threads:
        t.start()
    finish_soon(attempt, 0.05, value=7).join()
    for t in threads:
        t.join(5)
    assert seen == [7] * 8
    assert attempt.done()
    assert attempt.wait(0)  # later waiters return at once


def test_the_error_reaches_every_waiter() -> None:
    attempt: Attempt[int] = Attempt()
    finish_soon(attempt, 0.01, error=ConnectionRefusedError("no daemon")).join()
    for _ in range(3):
        assert attempt.wait(1)
        with pytest.raises(ConnectionRefusedError, match="no daemon"):
            attempt.result()


def test_a_wait_that_times_out_says_so_and_leaves_the_attempt_usable() -> None:
    attempt: Attempt[int] = Attempt()
    assert not attempt.wait(0.02)
    assert not attempt.wait(0)
    assert not attempt.done()
    attempt.finish(3)
    assert attempt.wait(0)
    assert attempt.result() == 3


@pytest.mark.parametrize("timeout", [None, 1e12, float("inf")])
def test_an_unbounded_or_huge_timeout_waits_for_the_outcome(timeout: float | None) -> None:
    attempt: Attempt[int] = Attempt()
    finish_soon(attempt, 0.05, value=4)
    assert attempt.wait(timeout)
    assert attempt.result() == 4
    later: Attempt[int] = Attempt()
    finish_soon(later, 0.05, value=5)
    assert asyncio.run(later.wait_async(timeout))
    assert later.result() == 5


def test_only_the_first_outcome_counts() -> None:
    attempt: Attempt[int] = Attempt()
    attempt.finish(1)
    attempt.finish(2)
    attempt.finish(error=RuntimeError("late"))
    assert attempt.result() == 1


def test_result_before_the_outcome_is_a_programming_error() -> None:
    with pytest.raises(RuntimeError, match="before the attempt finished"):
        Attempt[int]().result()


def test_callbacks_run_once_whether_added_before_or_after_finishing() -> None:
    attempt: Attempt[int] = Attempt()
    calls: list[str] = []
    attempt.add_done_callback(lambda: calls.append("before"))
    assert calls == []
    attempt.finish(5)
    attempt.add_done_callback(lambda: calls.append("after"))
    attempt.finish(6)
    assert calls == ["before", "after"]


def test_async_waiters_on_two_loops_and_a_thread_share_one_outcome() -> None:
    attempt: Attempt[int] = Attempt()
    results: list[int] = []

    async def waiter() -> None:
        assert await attempt.wait_async(5)
        results.append(attempt.result())

    loops = [threading.Thread(target=asyncio.run, args=(waiter(),)) for _ in range(2)]
    for t in loops:
        t.start()
    finish_soon(attempt, 0.05, value=11).join()
    for t in loops:
        t.join(5)
    assert results == [11, 11]


def test_an_async_wait_times_out_without_blocking_its_loop() -> None:
    attempt: Attempt[int] = Attempt()

    async def scenario() -> tuple[bool, int]:
        async with loop_ticks() as ticks:
            finished = await attempt.wait_async(0.1)
        return finished, ticks.count

    finished, ticks = asyncio.run(scenario())
    assert not finished
    assert ticks > 3  # the loop kept running while it waited
    assert attempt._callbacks == []  # the waiter that gave up left nothing behind
    attempt.finish(1)  # a late outcome finds the timed-out waiter's loop closed: no error
    assert attempt.result() == 1


def test_an_async_wait_on_a_finished_attempt_returns_at_once() -> None:
    attempt: Attempt[int] = Attempt()
    attempt.finish(9)
    assert asyncio.run(attempt.wait_async(0))
    assert repr(attempt) == "<Attempt done>"


def test_waiters_that_give_up_on_an_attempt_that_never_ends_leave_nothing_behind() -> None:
    attempt: Attempt[int] = Attempt()

    async def impatient() -> bool:
        return await attempt.wait_async(0.001)

    for _ in range(200):
        assert not asyncio.run(impatient())
    assert attempt._callbacks == []
    assert not attempt.done()
