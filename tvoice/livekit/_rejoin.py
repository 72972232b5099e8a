"""Rejoining a room through another server of the same LiveKit deployment: the pure decisions.

A job joins its room through one server (the one that assigned it). In LiveKit's distributed
mode that server may only relay the agent's signalling to the node hosting the room; if it
dies, the room lives on and the agent can join it again through any other node (LiveKit routes
the connection to the room's node). These rules decide whether a lost connection calls for that
(:func:`is_lost_connection`) and which URL to dial when (:func:`rejoin_schedule`); the room
(``_room.py``) does the dialling, on trio's clock.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence

import attrs
import livekit.rtc as rtc

__all__ = ["RejoinPolicy", "is_lost_connection", "rejoin_schedule"]

# The server or the SDK ended the connection on purpose: the room (or the agent's place in it)
# is gone, and joining again anywhere would be wrong.
_FINAL_REASONS = frozenset(
    {
        rtc.DisconnectReason.CLIENT_INITIATED,
        rtc.DisconnectReason.DUPLICATE_IDENTITY,
        rtc.DisconnectReason.PARTICIPANT_REMOVED,
        rtc.DisconnectReason.ROOM_DELETED,
        rtc.DisconnectReason.ROOM_CLOSED,
        rtc.DisconnectReason.USER_UNAVAILABLE,
        rtc.DisconnectReason.USER_REJECTED,
        rtc.DisconnectReason.SIP_TRUNK_FAILURE,
        rtc.DisconnectReason.AGENT_ERROR,
    }
)


def is_lost_connection(reason: int) -> bool:
    """Whether a ``disconnected`` event with ``reason`` (an ``rtc.DisconnectReason``) is the
    connection lost (signalling closed, timed out, a server shutting down or asking the client
    to go elsewhere, the SDK's own reconnect failing) rather than the room or the server
    ending the agent's place in it."""
    return reason not in _FINAL_REASONS


@attrs.frozen(kw_only=True)
class RejoinPolicy:
    """How hard a room tries to join again once its connection is lost.

    Attempts go through the other URLs first, then the lost one, round and round; the first
    waits ``first_delay``, each later one twice as long as the one before, at most
    ``max_delay``. Attempts stop ``timeout`` seconds after the loss (the job then ends). Each
    attempt's connection may take ``attempt_timeout`` at most.
    """

    timeout: float = 30.0
    first_delay: float = 0.0
    max_delay: float = 4.0
    attempt_timeout: float = 10.0
    probe_interval: float = 1.0
    """While the SDK reconnects on its own, how often the lost server is checked for a
    listener: a server that refuses connections is not waited for."""
    probe_timeout: float = 2.0


def rejoin_schedule(
    lost_url: str, urls: Sequence[str], policy: RejoinPolicy = RejoinPolicy()
) -> Iterator[tuple[float, str]]:
    """The attempts to join again after losing ``lost_url``: ``(seconds to wait first, url)``,
    without end (the caller bounds them by ``policy.timeout``). ``urls`` are all the URLs the
    room may be reached through; the lost one goes last in each round."""
    unique = list(dict.fromkeys(urls))
    if lost_url in unique:
        at = unique.index(lost_url)
        order = unique[at + 1 :] + unique[:at] + [lost_url]
    else:
        order = [*unique, lost_url]
    delay = policy.first_delay
    step = policy.first_delay or min(0.5, policy.max_delay)
    while True:
        for url in order:
            yield delay, url
            delay = min(max(delay * 2, step), policy.max_delay)
