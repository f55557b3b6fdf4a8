"""Spice: our own client for the Spice remote-display protocol.

``proto`` is the sans-I/O core (wire layouts, link handshake, channel state machines);
asyncio adapters and the display pipeline build on it.
"""
