"""Every documented offset of the Timeline fakes, asserted exactly on the autojump clock."""

import pytest
import trio

from tvoice.audio import AudioFrame
from tvoice.llm import ChatContext, FunctionCall
from tvoice.stt import SpeechEventType
from tvoice.testing import Timeline
from tvoice.vad import VADEventType


async def collect_timed(stream, *, until: float):
    out = []
    with trio.move_on_at(until):
        async for item in stream:
            out.append((trio.current_time(), item))
    return out


async def test_vad_reports_start_after_50ms_and_end_after_500ms(autojump_clock):
    tl = Timeline()
    tl.user_speech(start=0.5, end=2.5, transcript="Hello, how are you?")
    tl.user_speech(start=4.0, end=4.3, transcript="")
    tl.start()
    async with tl.fake_vad.stream() as stream:
        events = await collect_timed(stream, until=10)
    key = [(t, e.type) for t, e in events if e.type != VADEventType.INFERENCE_DONE]
    assert key == [
        (pytest.approx(0.55), VADEventType.START_OF_SPEECH),
        (pytest.approx(3.0), VADEventType.END_OF_SPEECH),
        (pytest.approx(4.05), VADEventType.START_OF_SPEECH),
        (pytest.approx(4.8), VADEventType.END_OF_SPEECH),
    ]
    end = next(e for _, e in events if e.type == VADEventType.END_OF_SPEECH)
    assert end.silence_duration == 0.5
    assert end.speech_duration == pytest.approx(2.0)
    inference = [e for _, e in events if e.type == VADEventType.INFERENCE_DONE]
    assert inference
    assert all(e.speaking for e in inference)


async def test_vad_stream_opened_midway_reports_only_what_is_to_come(autojump_clock):
    tl = Timeline()
    tl.user_speech(start=0.5, end=1.0, transcript="one")
    tl.user_speech(start=3.0, end=4.0, transcript="two")
    tl.start()
    await trio.sleep(2.0)
    async with tl.fake_vad.stream() as stream:
        events = await collect_timed(stream, until=10)
    starts = [t for t, e in events if e.type == VADEventType.START_OF_SPEECH]
    assert starts == [pytest.approx(3.05)]


async def test_stt_interim_at_half_delay_final_at_delay(autojump_clock):
    tl = Timeline()
    tl.user_speech(start=0.5, end=2.5, transcript="Hello, how are you?", stt_delay=0.2)
    tl.user_speech(start=3.0, end=3.3, transcript="")  # noise: no words
    tl.start()
    async with tl.fake_stt.stream() as stream:
        events = await collect_timed(stream, until=10)
    assert [(t, e.type, e.text) for t, e in events] == [
        (pytest.approx(0.55), SpeechEventType.START_OF_SPEECH, ""),
        (pytest.approx(2.6), SpeechEventType.INTERIM_TRANSCRIPT, "Hello, how are you?"),
        (pytest.approx(2.7), SpeechEventType.FINAL_TRANSCRIPT, "Hello, how are you?"),
        (pytest.approx(2.7), SpeechEventType.END_OF_SPEECH, ""),
        # Noise: heard, no words.
        (pytest.approx(3.05), SpeechEventType.START_OF_SPEECH, ""),
        (pytest.approx(3.5), SpeechEventType.END_OF_SPEECH, ""),
    ]


async def test_stt_recognize_returns_last_finished_speech(autojump_clock):
    tl = Timeline()
    tl.user_speech(start=0.5, end=1.0, transcript="first")
    tl.user_speech(start=2.0, end=3.0, transcript="second")
    tl.start()
    frame = AudioFrame.silence(0.1, 16000)
    await trio.sleep(1.5)
    assert (await tl.fake_stt.recognize(frame)).text == "first"
    await trio.sleep(2.0)
    assert (await tl.fake_stt.recognize(frame)).text == "second"


async def test_llm_ttft_duration_and_tool_calls(autojump_clock):
    tl = Timeline()
    call = FunctionCall(call_id="c1", name="get_weather", arguments='{"city": "Paris"}')
    tl.llm(
        input="What's the weather?",
        content="Let me check.",
        tool_calls=[call],
        ttft=0.1,
        duration=0.3,
    )
    tl.start()
    ctx = ChatContext()
    ctx.add_message(role="user", content="What's the weather?")
    t0 = trio.current_time()
    async with tl.fake_llm.chat(chat_ctx=ctx) as stream:
        chunks = await collect_timed(stream, until=10)
    texts = [(t - t0, c.delta.content) for t, c in chunks if c.delta and c.delta.content]
    assert texts == [
        (pytest.approx(0.1), "Let "),
        (pytest.approx(0.2), "me "),
        (pytest.approx(0.3), "check."),
    ]
    calls = [(t - t0, c.delta.tool_calls) for t, c in chunks if c.delta and c.delta.tool_calls]
    assert calls == [(pytest.approx(0.3), (call,))]
    assert chunks[-1][1].usage is not None
    assert tl.llm_requests == ["What's the weather?"]


async def test_llm_answers_tool_output_and_uses_replies_in_order(autojump_clock):
    tl = Timeline()
    tl.llm(input="sunny", content="It is sunny.")
    tl.llm(input="Hi", content="Hello!")
    tl.llm(input="Hi", content="Hello again!")
    tl.start()
    from tvoice.llm import FunctionCallOutput

    ctx = ChatContext()
    ctx.items.append(FunctionCallOutput(call_id="c1", name="w", output="sunny", is_error=False))
    async with tl.fake_llm.chat(chat_ctx=ctx) as s:
        assert "".join(await s.to_str_iterable()) == "It is sunny."
    replies = []
    for _ in range(3):
        ctx = ChatContext()
        ctx.add_message(role="user", content="Hi")
        async with tl.fake_llm.chat(chat_ctx=ctx) as s:
            replies.append("".join(await s.to_str_iterable()))
    assert replies == ["Hello!", "Hello again!", "Hello again!"]


async def test_llm_unscripted_input_is_a_clear_api_error(autojump_clock):
    from tvoice import APIStatusError

    tl = Timeline()
    tl.llm(input="Hi", content="Hello!")
    tl.start()
    ctx = ChatContext()
    ctx.add_message(role="user", content="Bye")
    async with tl.fake_llm.chat(chat_ctx=ctx) as s:
        with pytest.raises(APIStatusError, match=r"no LLM reply scripted for 'Bye'.*'Hi'"):
            await s.collect()


async def test_tts_stream_first_frame_after_ttfb_from_flush(autojump_clock):
    tl = Timeline()
    tl.tts(input="I'm well.", audio_duration=2.0, ttfb=0.2, duration=0.3)
    tl.start()
    async with tl.fake_tts.stream() as stream:
        await stream.push_text("I'm ")
        await trio.sleep(0.5)
        await stream.push_text("well.")
        await stream.flush()
        t_flush = trio.current_time()
        stream.end_input()
        items = await collect_timed(stream, until=10)
    frames = [(t, a) for t, a in items if not a.is_final]
    assert frames[0][0] - t_flush == pytest.approx(0.2)
    assert frames[-1][0] - t_flush == pytest.approx(0.3)
    total = sum(a.frame.samples_per_channel for _, a in frames)
    assert total == 2.0 * tl.fake_tts.sample_rate
    assert items[-1][1].is_final
    assert tl.tts_requests == ["I'm well."]


async def test_audio_output_plays_in_virtual_real_time(autojump_clock):
    tl = Timeline(tts_frame_duration=0.1)
    out = tl.audio_output
    async with trio.open_nursery() as nursery:
        await nursery.start(out.run)
        await trio.sleep(1.0)
        for _ in range(20):
            await out.capture_frame(AudioFrame.silence(0.1, 24000))
        out.flush()
        finished = await out.wait_for_playout()
        assert trio.current_time() == 3.0
        assert finished.playback_position == 2.0
        assert not finished.interrupted
        nursery.cancel_scope.cancel()
    assert out.playbacks[0].started_at == 1.0


async def test_audio_output_clear_records_exact_position(autojump_clock):
    tl = Timeline()
    out = tl.audio_output
    async with trio.open_nursery() as nursery:
        await nursery.start(out.run)
        await out.capture_frame(AudioFrame.silence(10.0, 24000))
        out.flush()
        await trio.sleep(1.25)
        out.pause()
        await trio.sleep(1.0)
        out.resume()
        await trio.sleep(0.5)
        out.clear_buffer()
        finished = await out.wait_for_playout()
        nursery.cancel_scope.cancel()
    assert finished.interrupted
    assert finished.playback_position == 1.75
    assert out.paused_periods == [(1.25, 2.25)]
    assert [(p.started_at, p.position, p.interrupted) for p in out.playbacks] == [(0, 1.75, True)]


async def test_audio_input_follows_the_script(autojump_clock):
    tl = Timeline(frame_duration=0.02)
    tl.user_speech(start=0.1, end=0.2, transcript="hi")
    tl.start()
    loud = []
    async for frame in tl.audio_input:
        assert frame.duration == pytest.approx(0.02)
        loud.append((round(trio.current_time(), 2), bool(abs(frame.data).max())))
        if trio.current_time() >= 0.3:
            break
    assert [t for t, speaking in loud if speaking] == [0.12, 0.14, 0.16, 0.18, 0.2]


async def test_vad_merges_speech_closer_than_its_silence_window(autojump_clock):
    tl = Timeline()
    tl.user_speech(start=0.5, end=2.5, transcript="Hello")
    tl.user_speech(start=2.8, end=4.0, transcript="how are you")  # 2.85 < 2.5 + 0.5
    tl.user_speech(start=6.0, end=7.0, transcript="bye")
    tl.start()
    async with tl.fake_vad.stream() as stream:
        events = await collect_timed(stream, until=10)
    key = [(t, e.type) for t, e in events if e.type != VADEventType.INFERENCE_DONE]
    assert key == [
        (pytest.approx(0.55), VADEventType.START_OF_SPEECH),
        (pytest.approx(4.5), VADEventType.END_OF_SPEECH),
        (pytest.approx(6.05), VADEventType.START_OF_SPEECH),
        (pytest.approx(7.5), VADEventType.END_OF_SPEECH),
    ]
