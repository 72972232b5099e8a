"""The same conversation gives the same history whichever order trio runs the tasks that are
ready at one instant in (trio picks a random order; seeding its scheduler fixes one)."""

from __future__ import annotations

import os

import hypothesis.strategies as st
import trio
import trio.testing
from hypothesis import given

from tests.voice.conftest import Assistant, Recorder
from tests.voice.test_properties import (
    Burst,
    Call,
    Reply,
    Scenario,
    numbered,
    run_scenario,
    scenarios,
)
from tvoice.stt import SpeechData, SpeechEvent, SpeechEventType
from tvoice.testing import Playback, Timeline

ORDERS = 100  # scheduler seeds per timeline
SEEDS = int(os.environ.get("TVOICE_TEST_ORDERS", "3"))  # per example of the property test


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
        tl = Timeline(frame_duration=0.1)  # the fakes follow the script: big frames save CPU
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


@given(
    scenarios(min_gap=0.05),
    st.lists(st.integers(0, 2**32 - 1), min_size=SEEDS, max_size=SEEDS, unique=True),
)
def test_random_timelines_do_not_depend_on_scheduling_order(sc: Scenario, seeds: list[int]):
    """The history and the LLM requests of a random conversation (bursts close enough to be
    one VAD speech, tools, interruptions, handoffs, early closes) are the same in three
    scheduling orders (``TVOICE_TEST_ORDERS`` for more)."""
    outcomes = []
    for seed in seeds:
        seed_scheduler(seed)
        o = run_scenario(sc)
        outcomes.append((history_of(o.session), o.tl.llm_requests))
    first = outcomes[0]
    for seed, outcome in zip(seeds[1:], outcomes[1:], strict=True):
        assert outcome == first, f"seed {seeds[0]}: {first}\nseed {seed}: {outcome}"


def test_outputs_of_tools_that_outlive_their_speech_keep_the_order_of_the_calls() -> None:
    """Was: two tools of an interrupted reply ending at one instant each recorded its own
    output as its task ran: the history's order of the outputs was trio's order."""
    # "hello0" (0.5-1.0): the LLM calls `slow` twice (3 s each, 1.5-4.5); "stop1" (2.0-2.5)
    # interrupts that reply at 2.6, before the tools end.
    slow = Call(tool="slow", seconds=3.0, reply=Reply("Alpha."))
    sc = numbered(
        Scenario(
            bursts=(
                Burst(
                    start=0.5,
                    end=1.0,
                    transcript="hello0",
                    reply=Reply(content="", calls=(slow, slow), ttft=0.0, duration=0.0),
                ),
                Burst(start=2.0, end=2.5, transcript="stop1", reply=Reply("Bravo.")),
            ),
            merged=(Reply("Charlie."),),
        )
    )
    for seed in range(ORDERS):
        seed_scheduler(seed)
        o = run_scenario(sc)
        outputs = [i.call_id for i in o.session.history.items if i.type == "function_call_output"]
        assert outputs == ["call_t1", "call_t2"], seed


def test_speech_that_starts_as_the_turn_ends_is_heard_over_the_reply_in_every_order() -> None:
    """The STT's verdict on "hello" (1.75) ends the turn at the instant the user starts again
    (1.7 + 0.05): the turn is committed, the new speech is the next turn's, and the reply that
    starts at that instant is held while the user speaks, whichever task trio runs first."""

    async def play():
        tl = Timeline(frame_duration=0.1)
        tl.user_speech(start=0.5, end=1.0, transcript="hello", stt_delay=0.75)
        tl.user_speech(start=1.7, end=3.0, transcript="", stt_delay=0.2)  # noise
        tl.llm(input="hello", content="Hi there.")
        tl.tts(input="Hi there.", audio_duration=1.0)
        async with tl.session(false_interruption_timeout=1.0) as session:
            await session.start(Assistant())
            await tl.wait_done()
        paused = tl.audio_output.paused_periods
        return history_of(session), tl.llm_requests, tl.audio_output.playbacks, paused

    outcomes = {repr(run_in_order(seed, play)) for seed in range(ORDERS)}
    assert len(outcomes) == 1, outcomes
    history, requests, playbacks, paused = run_in_order(0, play)
    assert [(kind, role, text) for kind, role, text, _ in history[1:]] == [
        ("message", "user", "hello"),
        ("message", "assistant", "Hi there."),
    ]
    assert requests == ["hello"]
    assert playbacks == [Playback(started_at=4.5, position=1.0, interrupted=False)]
    assert paused == [(1.75, 4.5)]  # from the start of the noise to its end + 1.0


def test_a_transcript_final_at_the_instant_of_the_close_is_kept_in_every_order() -> None:
    """Was: leaving the session at the instant the final transcript came kept the user's words
    (as a message) only when the STT's task happened to run before the close."""

    async def play():
        tl = Timeline(frame_duration=0.1)
        tl.user_speech(start=0.5, end=1.0, transcript="hello", stt_delay=0.5)  # final at 1.5
        async with tl.session(min_endpointing_delay=1.0) as session:
            await session.start(Assistant())
            await trio.sleep_until(1.5)
        said = [(m.text_content, round(m.created_at, 6)) for m in session.history.messages()]
        return said, tl.llm_requests

    outcomes = {repr(run_in_order(seed, play)) for seed in range(ORDERS)}
    assert outcomes == {repr(([("hello", 1.5)], []))}


def test_words_heard_as_a_speech_is_queued_interrupt_it_before_the_scheduler_runs() -> None:
    """A speech queued at an instant is the one the user's words at that instant cut, whether
    or not the scheduler's task has taken it out of the queue yet (trio runs that task and the
    one with the words in either order)."""

    async def play():
        tl = Timeline(frame_duration=0.1)
        tl.tts(input="Hello there.", audio_duration=1.0)
        words = SpeechEvent(
            type=SpeechEventType.INTERIM_TRANSCRIPT, alternatives=[SpeechData(text="stop")]
        )
        async with tl.session() as session:
            await session.start(Assistant())
            queued = trio.Event()
            handles = []

            async def agent() -> None:
                handles.append(session.say("Hello there."))
                queued.set()  # wakes the user's task along with the scheduler's

            async def user() -> None:
                await queued.wait()
                session._runtime.activity.on_transcript(words, turn_text="stop")

            async with trio.open_nursery() as nursery:
                nursery.start_soon(agent)
                nursery.start_soon(user)
            await tl.wait_done()
        return handles[0].interrupted, tl.audio_output.playbacks

    assert {repr(run_in_order(seed, play)) for seed in range(ORDERS)} == {repr((True, []))}


def test_noise_that_ends_as_it_would_interrupt_interrupts_in_every_order() -> None:
    """The interruption timer (min_interruption_duration of voice) falls due at the instant the
    VAD ends the noise: the speech is interrupted, whichever of the two tasks trio runs first."""

    async def play():
        tl = Timeline(frame_duration=0.1)
        tl.user_speech(start=0.5, end=1.0, transcript="hello")
        tl.user_speech(start=2.0, end=2.5, transcript="")  # noise: VAD 2.05-3.0
        tl.llm(input="hello", content="Hi there.")
        tl.tts(input="Hi there.", audio_duration=3.0)
        options = {"resume_false_interruption": False, "min_interruption_duration": 0.95}
        async with tl.session(**options) as session:
            await session.start(Assistant())
            await tl.wait_done()
        return tl.audio_output.playbacks

    outcomes = {repr(run_in_order(seed, play)) for seed in range(ORDERS)}
    assert outcomes == {repr([Playback(started_at=2.0, position=1.0, interrupted=True)])}


def test_voice_that_starts_as_a_false_interruption_ends_resumes_it_first_in_every_order() -> None:
    """The false-interruption timer falls due at the instant the user makes noise again: the
    paused speech resumes (and the event says so) before the new noise is heard over it,
    whichever of the two tasks trio runs first."""

    async def play():
        tl = Timeline(frame_duration=0.1)
        tl.user_speech(start=0.5, end=1.0, transcript="hello")
        tl.user_speech(start=2.0, end=2.5, transcript="")  # paused 2.55, resumes at 3.0 + 2.0
        tl.user_speech(start=4.95, end=5.2, transcript="")  # VAD from 5.0
        tl.llm(input="hello", content="Hi there.")
        tl.tts(input="Hi there.", audio_duration=6.0)
        async with tl.session() as session:
            rec = Recorder(session)
            await session.start(Assistant())
            await tl.wait_done()
        resumed = [(e.resumed, e.created_at) for e in rec.of("agent_false_interruption")]
        return resumed, tl.audio_output.paused_periods, tl.audio_output.playbacks

    resumed, paused, _ = run_in_order(0, play)
    assert resumed == [(True, 5.0), (True, 7.7)]
    assert paused == [(2.55, 5.0), (5.5, 7.7)]  # the new noise pauses it again at 5.0 + 0.5
    assert {repr(run_in_order(seed, play)) for seed in range(1, ORDERS)} == {
        repr(run_in_order(0, play))
    }


def test_a_frame_pushed_at_the_instant_of_a_cut_does_not_count_in_every_order() -> None:
    """The words that cut a reply (1.8) come at the instant its TTS pushes a frame: what the
    history says was heard does not depend on whether that frame got in first."""

    async def play():
        tl = Timeline(frame_duration=0.1)
        tl.user_speech(start=0.5, end=1.0, transcript="hello")  # committed at 1.5
        tl.user_speech(start=1.6, end=1.7, transcript="stop", stt_delay=0.2)  # words at 1.8
        tl.llm(input="hello", content="One two three four.", ttft=0.0, duration=0.0)
        tl.tts(input="One two three four.", audio_duration=0.5, ttfb=0.0, duration=0.4)
        tl.llm(input="stop", content="Stopped.")
        tl.tts(input="Stopped.", audio_duration=0.5)
        async with tl.session(resume_false_interruption=False) as session:
            await session.start(Assistant())
            await tl.wait_done()
        return [(m.role, m.text_content, m.interrupted) for m in session.history.messages()]

    # Was "One two" (0.3 s heard of the 0.4 s pushed) or all of it (0.3 of 0.3), by order.
    outcomes = {repr(run_in_order(seed, play)) for seed in range(ORDERS)}
    assert outcomes == {
        repr(
            [
                ("user", "hello", False),
                ("assistant", "One two three four.", True),  # all of what was pushed was heard
                ("user", "stop", False),
                ("assistant", "Stopped.", False),
            ]
        )
    }
