"""Tests of duplex.aio: the engine under asyncio hosts, compared with the trio host."""
