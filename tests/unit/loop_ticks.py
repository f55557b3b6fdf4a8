"""Proof that an event loop kept running while a coroutine waited: count its ticks.

Example::

    async with loop_ticks() as ticks:
        await something_that_waits()
    assert ticks.count > 3     # the loop was never blocked
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass


@dataclass
class Ticks:
    count: int = 0


@asynccontextmanager
async def loop_ticks(interval: float = 0.005) -> AsyncIterator[Ticks]:
    """Count how often a task sleeping ``interval`` seconds got to run inside the block."""
    ticks = Ticks()

    async def ticker() -> None:
        while True:
            await asyncio.sleep(interval)
            ticks.count += 1

    task = asyncio.create_task(ticker())
    try:
        yield ticks
    finally:
        task.cancel()
