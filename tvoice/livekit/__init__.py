"""The LiveKit side of tvoice: the only package that imports ``livekit`` or ``asyncio``.

For now it holds the configuration of a local LiveKit server (tests and development); the
asyncio bridge, room I/O and the worker protocol are being built here.
"""
