"""Interruptions (issue scenarios 3-5, 7): the reply cut, min_interruption_words, interruptions
disabled, a false interruption paused then resumed."""

import pytest

from tests.voice.conftest import Assistant, Recorder
from tvoice.testing import Timeline

TEN_WORDS = "One two three four five six seven eight nine ten."


def long_reply_timeline(*, interruption, **speech):
    tl = Timeline()
    tl.user_speech(start=0.5, end=2.5, transcript="Tell me a story.")
    tl.llm(input="Tell me a story.", content=TEN_WORDS)
    tl.tts(input=TEN_WORDS, audio_duration=10.0)
    if interruption:
        tl.user_speech(transcript=interruption, **speech)
        tl.llm(input=interruption, content="Sure.")
        tl.tts(input="Sure.", audio_duration=1.0)
    return tl


async def test_3_interruption_cuts_the_reply(autojump_clock):
    tl = long_reply_timeline(interruption="Stop!", start=5.0, end=6.0)
    async with tl.session() as session:
        rec = Recorder(session)
        await session.start(Assistant())
        await tl.wait_done()
    first, second = tl.audio_output.playbacks
    # Paused at 5.05 + 0.5 (min_interruption_duration), cut when the words arrive (6.1).
    assert (first.started_at, first.position, first.interrupted) == (3.5, 2.05, True)
    assert tl.audio_output.paused_periods == [(5.55, 6.1)]
    assert (second.started_at, second.interrupted) == (7.0, False)
    messages = session.history.messages()
    assert [(m.role, m.text_content, m.interrupted) for m in messages] == [
        ("user", "Tell me a story.", False),
        ("assistant", "One two", True),
        ("user", "Stop!", False),
        ("assistant", "Sure.", False),
    ]
    assert rec.agent_states[3:6] == [("listening", 6.1), ("thinking", 6.5), ("speaking", 7.0)]
    assert tl.llm_requests == ["Tell me a story.", "Stop!"]


async def test_3_without_pausing_the_interruption_cuts_at_min_duration(autojump_clock):
    tl = long_reply_timeline(interruption="Stop!", start=5.0, end=6.0)
    async with tl.session(resume_false_interruption=False) as session:
        await session.start(Assistant())
        await tl.wait_done()
    first = tl.audio_output.playbacks[0]
    assert (first.position, first.interrupted) == (2.05, True)
    assert tl.audio_output.paused_periods == []


async def test_4_min_interruption_words(autojump_clock):
    tl = long_reply_timeline(interruption=None)
    tl.user_speech(start=5.0, end=6.0, transcript="Stop!")
    tl.user_speech(start=7.0, end=8.0, transcript="ok, please stop")
    tl.llm(input="ok, please stop", content="Sure.")
    tl.tts(input="Sure.", audio_duration=1.0)
    async with tl.session(min_interruption_words=3) as session:
        await session.start(Assistant())
        await tl.wait_done()
    first = tl.audio_output.playbacks[0]
    # Not paused by "Stop!", cut when the three words arrive (interim at 8.1).
    assert tl.audio_output.paused_periods == []
    assert (first.position, first.interrupted) == (pytest.approx(4.6), True)
    assert [m.text_content for m in session.history.messages() if m.role == "user"] == [
        "Tell me a story.",
        "ok, please stop",
    ]
    assert tl.llm_requests == ["Tell me a story.", "ok, please stop"]


async def test_5_interruptions_disabled(autojump_clock):
    tl = long_reply_timeline(interruption=None)
    tl.user_speech(start=5.0, end=6.0, transcript="Stop!")
    async with tl.session(allow_interruptions=False) as session:
        await session.start(Assistant())
        await tl.wait_done()
        assert autojump_clock.current_time() == 13.5
    [playback] = tl.audio_output.playbacks
    assert (playback.position, playback.interrupted) == (10.0, False)
    assert [m.text_content for m in session.history.messages()] == ["Tell me a story.", TEN_WORDS]
    assert tl.llm_requests == ["Tell me a story."]


async def test_7_false_interruption_pauses_then_resumes(autojump_clock):
    tl = Timeline()
    tl.user_speech(start=0.5, end=2.5, transcript="Tell me a story.")
    tl.llm(input="Tell me a story.", content=TEN_WORDS)
    tl.tts(input=TEN_WORDS, audio_duration=5.0)
    tl.user_speech(start=4.0, end=4.3, transcript="")  # a cough
    async with tl.session() as session:
        rec = Recorder(session)
        await session.start(Assistant())
        await tl.wait_done()
    assert tl.audio_output.paused_periods == [(4.55, 6.8)]
    [playback] = tl.audio_output.playbacks
    assert (playback.position, playback.interrupted) == (5.0, False)
    [false] = rec.of("agent_false_interruption")
    assert (false.resumed, false.created_at) == (True, 6.8)
    assert rec.agent_states[-1] == ("listening", pytest.approx(10.75))
    assert [m.text_content for m in session.history.messages()] == ["Tell me a story.", TEN_WORDS]
