"""Sans-I/O Spice protocol core: no sockets, no asyncio, no clocks.

- :mod:`.link` — ``LinkHandshake``: link message, ticket or SASL, link result
- :mod:`.channel` — ``ChannelProtocol``: framing, SET_ACK/ACK, PING/PONG, metrics
- :mod:`.main`, :mod:`.inputs` — the main and inputs channels
- :mod:`.framing`, :mod:`.common`, :mod:`.constants` — wire layouts and numbers

Bytes in with ``receive_data(data)`` (``b""`` = the peer closed), typed events out;
bytes to write with ``data_to_send()``.
"""

from atp_notebook.spice.proto.channel import ChannelMetrics, ChannelProtocol, ConnectionClosed
from atp_notebook.spice.proto.inputs import InputsProtocol
from atp_notebook.spice.proto.link import LinkHandshake, LinkState
from atp_notebook.spice.proto.link_wire import LinkFailed, LinkSucceeded, NeedSecured
from atp_notebook.spice.proto.main import MainProtocol
from atp_notebook.spice.proto.sasl import SaslCredentials

__all__ = [
    "ChannelMetrics",
    "ChannelProtocol",
    "ConnectionClosed",
    "InputsProtocol",
    "LinkFailed",
    "LinkHandshake",
    "LinkState",
    "LinkSucceeded",
    "MainProtocol",
    "NeedSecured",
    "SaslCredentials",
]
