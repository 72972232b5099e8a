"""The rules that decide when and where a room is joined again after a lost connection."""

from __future__ import annotations

import itertools

import livekit.rtc as rtc
import pytest

from tvoice.livekit._rejoin import RejoinPolicy, is_lost_connection, rejoin_schedule

A, B, C = "ws://a:7880", "ws://b:7880", "ws://c:7880"


def _first(n: int, lost: str, urls: list[str], policy: RejoinPolicy) -> list[tuple[float, str]]:
    return list(itertools.islice(rejoin_schedule(lost, urls, policy), n))


def test_the_other_urls_come_first_in_turn_then_the_lost_one_with_a_bounded_backoff() -> None:
    policy = RejoinPolicy(first_delay=0.0, max_delay=4.0)
    assert _first(8, B, [A, B, C], policy) == [
        (0.0, C),
        (0.5, A),
        (1.0, B),
        (2.0, C),
        (4.0, A),
        (4.0, B),
        (4.0, C),
        (4.0, A),
    ]


def test_a_first_delay_doubles_up_to_the_maximum() -> None:
    policy = RejoinPolicy(first_delay=1.0, max_delay=3.0)
    assert _first(4, A, [A, B], policy) == [(1.0, B), (2.0, A), (3.0, B), (3.0, A)]


def test_a_lost_url_outside_the_list_is_tried_last_and_duplicates_once() -> None:
    policy = RejoinPolicy()
    assert [url for _, url in _first(3, C, [A, A, B], policy)] == [A, B, C]


def test_a_single_url_is_retried_alone() -> None:
    assert [url for _, url in _first(3, A, [A], RejoinPolicy())] == [A, A, A]


@pytest.mark.parametrize(
    "reason",
    [
        rtc.DisconnectReason.UNKNOWN_REASON,
        rtc.DisconnectReason.SIGNAL_CLOSE,
        rtc.DisconnectReason.CONNECTION_TIMEOUT,
        rtc.DisconnectReason.JOIN_FAILURE,
        rtc.DisconnectReason.STATE_MISMATCH,
        rtc.DisconnectReason.SERVER_SHUTDOWN,
        rtc.DisconnectReason.MIGRATION,
        rtc.DisconnectReason.MEDIA_FAILURE,
    ],
)
def test_a_lost_connection_calls_for_a_rejoin(reason: int) -> None:
    assert is_lost_connection(reason)


@pytest.mark.parametrize(
    "reason",
    [
        rtc.DisconnectReason.CLIENT_INITIATED,
        rtc.DisconnectReason.DUPLICATE_IDENTITY,
        rtc.DisconnectReason.PARTICIPANT_REMOVED,
        rtc.DisconnectReason.ROOM_DELETED,
        rtc.DisconnectReason.ROOM_CLOSED,
        rtc.DisconnectReason.USER_REJECTED,
        rtc.DisconnectReason.AGENT_ERROR,
    ],
)
def test_the_room_ending_the_agents_place_is_final(reason: int) -> None:
    assert not is_lost_connection(reason)
