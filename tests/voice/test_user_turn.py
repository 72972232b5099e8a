"""The user's turn and the reply to it (issue scenarios 1, 6, 8): turns committed, a turn that
goes on before the reply starts, preemptive generation."""

import pytest

from tests.voice.conftest import Assistant, Recorder
from tvoice.testing import Timeline


def basic_timeline(*, stt_delay=0.2, preflight=None, **tts):
    tl = Timeline()
    tl.user_speech(
        start=0.5,
        end=2.5,
        transcript="Hello, how are you?",
        stt_delay=stt_delay,
        preflight=preflight,
    )
    tl.llm(input="Hello, how are you?", content="I'm well.", ttft=0.1, duration=0.3)
    tl.tts(input="I'm well.", **({"audio_duration": 2.0, "ttfb": 0.2, "duration": 0.3} | tts))
    return tl


async def test_1_basic_turn(autojump_clock):
    tl = basic_timeline()
    async with tl.session() as session:
        rec = Recorder(session)
        await session.start(Assistant())
        await tl.wait_done()
        done_at = autojump_clock.current_time()
    assert rec.user_states == [("speaking", 0.55), ("listening", 3.0)]
    assert rec.agent_states == [
        ("listening", 0.0),
        ("thinking", 3.0),
        ("speaking", 3.5),
        ("listening", 5.5),
    ]
    assert done_at == 5.5
    assert [i.type for i in session.history.items] == ["agent_handoff", "message", "message"]
    assert session.history.items[1].text_content == "Hello, how are you?"
    assert session.history.items[2].text_content == "I'm well."
    assert not session.history.items[2].interrupted
    [eou] = rec.metrics("eou_metrics")
    assert eou.end_of_utterance_delay == pytest.approx(0.5)
    assert eou.transcription_delay == pytest.approx(0.2)
    [turn] = rec.metrics("turn_metrics")
    assert turn.e2e_latency == pytest.approx(1.0)
    assert turn.llm_ttft == pytest.approx(0.1)
    [llm] = rec.metrics("llm_metrics")
    assert (llm.ttft, llm.duration) == (pytest.approx(0.1), pytest.approx(0.3))
    [tts] = rec.metrics("tts_metrics")
    assert tts.audio_duration == pytest.approx(2.0)
    assert [(p.started_at, p.position, p.interrupted) for p in tl.audio_output.playbacks] == [
        (3.5, 2.0, False)
    ]
    assert tl.text_output.segments == ["I'm well."]
    assert [e.transcript for e in rec.of("user_input_transcribed")] == ["Hello, how are you?"] * 2
    assert [e.is_final for e in rec.of("user_input_transcribed")] == [False, True]


async def test_1_slow_transcript_commits_when_it_arrives(autojump_clock):
    tl = Timeline()
    tl.user_speech(start=0.5, end=2.5, transcript="Hello", stt_delay=1.0)
    tl.llm(input="Hello", content="Hi!")
    tl.tts(input="Hi!", audio_duration=1.0)
    async with tl.session() as session:
        rec = Recorder(session)
        await session.start(Assistant())
        await tl.wait_done()
    assert ("thinking", 3.5) in rec.agent_states
    [eou] = rec.metrics("eou_metrics")
    assert eou.end_of_utterance_delay == pytest.approx(1.0)
    assert eou.transcription_delay == pytest.approx(1.0)


async def test_6_user_speaks_again_before_the_reply_starts(autojump_clock):
    tl = basic_timeline()
    tl.user_speech(start=3.1, end=4.0, transcript="And the weather?")
    tl.llm(input="And the weather?", content="Sunny.")
    tl.tts(input="Sunny.", audio_duration=1.0)
    async with tl.session() as session:
        rec = Recorder(session)
        await session.start(Assistant())
        await tl.wait_done()
    assert rec.agent_states == [
        ("listening", 0.0),
        ("thinking", 3.0),
        ("listening", 4.1),
        ("thinking", 4.5),
        ("speaking", 5.0),
        ("listening", 6.0),
    ]
    assert [(m.role, m.text_content) for m in session.history.messages()] == [
        ("user", "Hello, how are you?"),
        ("user", "And the weather?"),
        ("assistant", "Sunny."),
    ]
    assert tl.llm_requests == ["Hello, how are you?", "And the weather?"]


async def test_8_preemptive_generation_starts_speaking_earlier(autojump_clock):
    results = {}
    for preemptive in (False, True):
        tl = basic_timeline()
        async with tl.session(preemptive_generation=preemptive) as session:
            rec = Recorder(session)
            await session.start(Assistant())
            await tl.wait_done()
        results[preemptive] = dict(rec.agent_states)["speaking"] - tl.origin
        assert tl.llm_requests == ["Hello, how are you?"]
    assert results[False] - results[True] == pytest.approx(0.3)  # the LLM's duration


async def test_8_preemptive_reply_discarded_when_the_user_keeps_talking(autojump_clock):
    tl = Timeline()
    tl.user_speech(start=0.5, end=2.5, transcript="Hello")
    tl.user_speech(start=2.8, end=4.0, transcript="how are you")
    tl.llm(input="Hello", content="Hi!")
    tl.tts(input="Hi!", audio_duration=1.0)
    tl.llm(input="Hello how are you", content="Fine.")
    tl.tts(input="Fine.", audio_duration=1.0)
    async with tl.session(preemptive_generation=True) as session:
        await session.start(Assistant())
        await tl.wait_done()
    assert tl.llm_requests == ["Hello", "Hello how are you"]
    assert tl.tts_requests == ["Fine."] or tl.tts_requests == ["Hi!", "Fine."]
    assert [(m.role, m.text_content) for m in session.history.messages()] == [
        ("user", "Hello how are you"),
        ("assistant", "Fine."),
    ]


async def test_8_preemptive_reply_starts_on_preflight_words(autojump_clock):
    """An STT that sends the words at a pause (a preflight transcript, 0.1 s after the speech)
    before its final ones (0.45 s after): the reply is prepared from the preflight, and plays
    as the turn ends."""
    results = {}
    for preflight in (None, 0.1):
        tl = basic_timeline(stt_delay=0.45, preflight=preflight)
        async with tl.session(preemptive_generation=True) as session:
            rec = Recorder(session)
            await session.start(Assistant())
            await tl.wait_done()
        results[preflight] = dict(rec.agent_states)["speaking"] - tl.origin
        # One request: the final words are the preflight's, so the prepared reply is adopted.
        assert tl.llm_requests == ["Hello, how are you?"]
        assert [(m.role, m.text_content) for m in session.history.messages()] == [
            ("user", "Hello, how are you?"),
            ("assistant", "I'm well."),
        ]
        events = rec.of("user_input_transcribed")
        assert [(e.transcript, e.is_final) for e in events][-1] == ("Hello, how are you?", True)
    # Without a preflight the reply starts with the final words (2.95): LLM 0.3, TTS 0.2.
    assert results[None] == pytest.approx(3.45)
    # With it the reply is made from 2.6 and ready at 3.1, after the turn's end at 3.0.
    assert results[0.1] == pytest.approx(3.1)
