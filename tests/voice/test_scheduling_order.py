"""The same conversation gives the same history whichever order trio runs the tasks that are
ready at one instant in (trio picks a random order; seeding its scheduler fixes one)."""

from __future__ import annotations

import trio
import trio.testing

from tests.voice.conftest import Assistant
from tvoice.testing import Timeline

ORDERS = 100  # scheduler seeds per timeline


def seed_scheduler(seed: int) -> None:
    """Fix the order in which trio runs the tasks that are ready together."""
    trio._core._run._r.seed(seed)


def run_in_order(seed: int, play) -> object:
    seed_scheduler(seed)
    return trio.run(play, clock=trio.testing.MockClock(autojump_threshold=0))


def history_of(session) -> list[tuple[object, ...]]:
    """What a test compares: kinds, roles (or tool names), texts and timestamps."""
    return [
        (
            item.type,
            getattr(item, "role", None) or getattr(item, "name", None),
            getattr(item, "text_content", None) or getattr(item, "output", None),
            item.created_at,
        )
        for item in session.history.items
    ]


def test_a_pause_shorter_than_the_vad_silence_is_one_turn_in_every_order() -> None:
    """Was: the STT's verdict on "w0x0" (2.8 s, while the VAD still heard speech) was taken to
    cover the whole speech; at 5.01875 the VAD's end and the final "w1x0" came at one instant,
    and when the VAD's ran first the turn was committed without "w1x0", which then made a turn
    of its own: two user messages and two replies in 22 of 40 orders."""

    async def play() -> tuple[list[str], list[str], list[tuple[object, ...]]]:
        tl = Timeline()
        tl.user_speech(start=1.3, end=2.3, transcript="w0x0", stt_delay=0.5)
        tl.user_speech(start=2.51875, end=4.51875, transcript="w1x0", stt_delay=0.5)
        for text in ("w0x0", "w1x0", "w0x0 w1x0"):
            tl.llm(input=text, content=f"Reply to {text}.")
            tl.tts(input=f"Reply to {text}.", audio_duration=1.0)
        async with tl.session(min_interruption_words=0, resume_false_interruption=False) as s:
            await s.start(Assistant())
            await tl.wait_done()
        said = [m.text_content for m in s.history.messages() if m.role == "user"]
        return said, tl.llm_requests, history_of(s)

    outcomes = {seed: run_in_order(seed, play) for seed in range(ORDERS)}
    for seed, (said, requests, _) in outcomes.items():
        assert (said, requests) == (["w0x0 w1x0"], ["w0x0 w1x0"]), seed
    assert len({repr(history) for _, _, history in outcomes.values()}) == 1
