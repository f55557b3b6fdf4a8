"""asyncio adapters for the Spice protocol: one stream (TCP or TLS) per channel."""
