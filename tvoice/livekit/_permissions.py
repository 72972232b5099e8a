"""What a worker asks the server for: the kind of job it takes and the agent's room permissions.

Plain values with no livekit import, so that ``WorkerOptions`` can hold them in processes that
never load the SDK; :mod:`tvoice.livekit.protocol` puts them on the wire.
"""

from __future__ import annotations

import enum
from collections.abc import Iterable

import attrs

__all__ = ["WorkerPermissions", "WorkerType"]


class WorkerType(enum.Enum):
    """Which jobs the server dispatches to the worker: one per room, or one per participant
    publishing in a room (LiveKit's ``JT_ROOM`` and ``JT_PUBLISHER``)."""

    ROOM = "room"
    PUBLISHER = "publisher"


# livekit.proto TrackSource numbers, by the name WorkerPermissions takes.
_TRACK_SOURCES = {"camera": 1, "microphone": 2, "screen_share": 3, "screen_share_audio": 4}


def _sources(values: Iterable[str | int]) -> tuple[str, ...]:
    by_number = {number: name for name, number in _TRACK_SOURCES.items()}
    names = []
    for value in values:
        name = by_number.get(value) if isinstance(value, int) else str(value).lower()
        if name not in _TRACK_SOURCES:
            raise ValueError(
                f"unknown track source {value!r}: use one of {', '.join(_TRACK_SOURCES)}"
            )
        names.append(name)
    return tuple(names)


@attrs.frozen(kw_only=True)
class WorkerPermissions:
    """What the agent participant may do in the rooms it joins. The server writes these into
    the token of every job it assigns to the worker.

    ``can_publish_sources``: the track sources the agent may publish ("microphone", "camera",
    "screen_share", "screen_share_audio", or livekit's ``TrackSource`` numbers); empty: any.
    They go to the server with the rest, but livekit-server v1.13.5 leaves them out of the job
    tokens it builds (it copies the other fields).
    ``hidden``: the agent is invisible to the room's other participants.
    """

    can_publish: bool = True
    can_subscribe: bool = True
    can_publish_data: bool = True
    can_update_metadata: bool = True
    can_publish_sources: tuple[str, ...] = attrs.field(default=(), converter=_sources)
    hidden: bool = False
