"""Closing a Spice channel while the caller itself is cancelled (a small honest server on
loopback, tests/hostile_spice.py): the caller's cancellation must reach it, and the socket
must still be closed."""

from __future__ import annotations

import asyncio

import pytest

from atp_notebook.spice.aio.channel import ChannelStatus
from atp_notebook.spice.proto.constants import ChannelType
from atp_notebook.spice.vm import SpiceVmConnection
from tests.hostile_spice import HostileSpiceServer

TIMEOUT = 10.0


def test_a_caller_cancelled_while_closing_is_cancelled_and_the_socket_is_closed() -> None:
    async def scenario() -> None:
        async with HostileSpiceServer([]) as server:
            vm = SpiceVmConnection("hostile", server.endpoint, autostart=(ChannelType.INPUTS,))
            await vm.connect(timeout=TIMEOUT)
            try:
                inputs = vm.channel(ChannelType.INPUTS)
                closer = asyncio.create_task(inputs.close())
                await asyncio.sleep(0)  # the closer now waits for the reader to end
                closer.cancel()
                with pytest.raises(asyncio.CancelledError):
                    await closer
                assert inputs.status is ChannelStatus.CLOSED
                await asyncio.wait_for(inputs.wait_closed(), TIMEOUT)
            finally:
                await vm.close()

    asyncio.run(asyncio.wait_for(scenario(), 3 * TIMEOUT))
