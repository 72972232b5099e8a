"""The LiveKit side of tvoice: the only package that imports ``livekit`` or ``asyncio``.

:func:`run_with_asyncio_host` runs trio as the guest of an asyncio loop (the livekit SDK's);
:class:`LiveKitRoom` is a :class:`tvoice.io.SessionRoom` made of a LiveKit room; the local
server config serves tests and development.

The public names are loaded on first use, so that importing ``tvoice`` (whose worker uses the
sans-IO ``tvoice.livekit.protocol``) does not import the livekit SDK or asyncio.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from ._bridge import AsyncioBridge as AsyncioBridge
    from ._bridge import AsyncioCancelled as AsyncioCancelled
    from ._bridge import CrossingChannel as CrossingChannel
    from ._bridge import current_bridge as current_bridge
    from ._bridge import run_with_asyncio_host as run_with_asyncio_host
    from ._room import LiveKitRoom as LiveKitRoom
    from ._room import RoomOptions as RoomOptions
    from ._room_audio import RoomAudioInput as RoomAudioInput
    from ._room_audio import RoomAudioOutput as RoomAudioOutput
    from ._room_text import TranscriptionSync as TranscriptionSync

_LAZY = {
    "AsyncioBridge": "._bridge",
    "AsyncioCancelled": "._bridge",
    "CrossingChannel": "._bridge",
    "current_bridge": "._bridge",
    "run_with_asyncio_host": "._bridge",
    "LiveKitRoom": "._room",
    "RoomOptions": "._room",
    "RoomAudioInput": "._room_audio",
    "RoomAudioOutput": "._room_audio",
    "TranscriptionSync": "._room_text",
}

__all__ = sorted(_LAZY)


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(importlib.import_module(module, __name__), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted([*globals(), *_LAZY])
