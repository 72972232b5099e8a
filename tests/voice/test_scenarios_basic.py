"""Issue scenarios 1-8: turns, interruptions, false interruptions, preemptive generation."""

import pytest

from tests.voice.conftest import Assistant, Recorder, kinds
from tvoice.testing import Timeline

TEN_WORDS = "One two three four five six seven eight nine ten."


def basic_timeline(**tts):
    tl = Timeline()
    tl.user_speech(start=0.5, end=2.5, transcript="Hello, how are you?", stt_delay=0.2)
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


async def test_2_tool_call_with_text_before_it(autojump_clock):
    from tvoice import function_tool
    from tvoice.llm import FunctionCall

    class Weather(Assistant):
        @function_tool
        async def get_weather(self, city: str) -> str:
            """Current weather in a city."""
            return f"Sunny in {city}."

    tl = Timeline()
    tl.user_speech(start=0.5, end=2.5, transcript="Weather in Paris?")
    call = FunctionCall(call_id="call_1", name="get_weather", arguments='{"city": "Paris"}')
    tl.llm(input="Weather in Paris?", content="Let me check.", tool_calls=[call])
    tl.tts(input="Let me check.", audio_duration=1.0)
    tl.llm(input="Sunny in Paris.", content="It is sunny in Paris.")
    tl.tts(input="It is sunny in Paris.", audio_duration=2.0)
    async with tl.session() as session:
        rec = Recorder(session)
        await session.start(Weather())
        await tl.wait_done()
    assert rec.agent_states == [
        ("listening", 0.0),
        ("thinking", 3.0),
        ("speaking", 3.5),
        ("thinking", 4.5),
        ("speaking", 5.0),
        ("listening", 7.0),
    ]
    assert kinds(session.history) == [
        ("message", "user"),
        ("message", "assistant"),
        ("function_call", "get_weather"),
        ("function_call_output", "get_weather"),
        ("message", "assistant"),
    ]
    [executed] = rec.of("function_tools_executed")
    assert executed.function_call_outputs[0].output == "Sunny in Paris."
    assert tl.llm_requests == ["Weather in Paris?", "Sunny in Paris."]


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
