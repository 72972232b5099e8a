"""The conformance suites pass on the Timeline fakes and fail (AssertionError) on broken doubles."""

import numpy as np
import pytest
import trio

from tvoice import APIStatusError
from tvoice._utils import DEFAULT_API_CONNECT_OPTIONS
from tvoice.audio import AudioFrame
from tvoice.llm import LLM, ChatChunk, ChoiceDelta, FunctionCall, LLMStream, function_tool
from tvoice.stt import (
    STT,
    RecognizeStream,
    SpeechData,
    SpeechEvent,
    SpeechEventType,
    STTCapabilities,
)
from tvoice.testing import FakeTextOutput, Timeline, check_llm, check_stt, check_tts, check_vad
from tvoice.tts import TTS, ChunkedStream, SynthesizeStream, TTSCapabilities
from tvoice.vad import VAD, VADCapabilities, VADDetector, VADEvent, VADEventType, VADStream

TTS_TEXT = "Hello there. This is a test of speech synthesis."


def speech_audio(duration: float = 1.0, rate: int = 16000) -> AudioFrame:
    t = np.arange(round(duration * rate)) / rate
    return AudioFrame((np.sin(2 * np.pi * 180 * t) * 4000).astype(np.int16), rate)


@function_tool
async def get_weather(city: str) -> str:
    """The weather in a city."""
    return f"sunny in {city}"


# -- the fakes pass -------------------------------------------------------------------------


async def test_check_vad_passes_on_fake_vad(autojump_clock):
    tl = Timeline()
    # check_vad pushes 1 s of speech and 1 s of silence from time 0
    tl.user_speech(start=0.2, end=0.8, transcript="hello")
    tl.start()
    await check_vad(tl.fake_vad, speech_audio())


async def test_check_stt_passes_on_fake_stt(autojump_clock):
    tl = Timeline()
    # recognize() answers with the speech that ended last; the stream reports what is to come
    tl.user_speech(start=0.0, end=0.5, transcript="hello world")
    tl.user_speech(start=1.2, end=1.8, transcript="hello world")
    tl.start()
    await trio.sleep(1.0)
    await check_stt(
        tl.fake_stt, speech_audio(), expected_words=["hello", "world"], broken=BrokenSTT()
    )


async def test_check_tts_passes_on_fake_tts(autojump_clock):
    tl = Timeline()
    tl.tts(input=TTS_TEXT, audio_duration=2.0)
    tl.start()
    await check_tts(tl.fake_tts, broken=Timeline().fake_tts)


async def test_check_llm_passes_on_fake_llm(autojump_clock):
    tl = Timeline()
    tl.llm(input="Say hello.", content="Hello!")
    call = FunctionCall(call_id="c1", name="get_weather", arguments='{"city": "Paris"}')
    tl.llm(input="Say hello.", content="", tool_calls=[call])
    tl.start()
    await check_llm(tl.fake_llm, tools=[get_weather], broken=Timeline().fake_llm)


# -- VAD doubles ----------------------------------------------------------------------------


class DoubleVAD(VAD):
    """Emits ``events`` after the input ends; can refuse to end, or accept anything."""

    def __init__(self, events=(), *, hang=False, lax=False) -> None:
        super().__init__(capabilities=VADCapabilities(update_interval=0.1))
        self.events = events
        self.hang = hang
        self.lax = lax

    def stream(self) -> VADStream:
        return DoubleVADStream(self)


class DoubleVADStream(VADStream):
    async def push_frame(self, frame) -> None:
        if self._vad.lax and not isinstance(frame, AudioFrame):
            return
        await super().push_frame(frame)

    async def _run(self) -> None:
        async for _ in self._input:
            pass
        for kind, speech in self._vad.events:
            await self._emit(
                VADEvent(type=kind, timestamp=trio.current_time(), speech_duration=speech)
            )
        if self._vad.hang:
            await trio.sleep_forever()


GOOD_VAD = ((VADEventType.START_OF_SPEECH, 0.0), (VADEventType.END_OF_SPEECH, 1.0))


async def test_check_vad_passes_on_a_correct_double(autojump_clock):
    await check_vad(DoubleVAD(GOOD_VAD), speech_audio())


@pytest.mark.parametrize(
    ("vad", "message"),
    [
        (DoubleVAD([(VADEventType.END_OF_SPEECH, 1.0)]), "no START_OF_SPEECH"),
        (DoubleVAD([(VADEventType.START_OF_SPEECH, 0.0)]), "no END_OF_SPEECH"),
        (DoubleVAD(GOOD_VAD[::-1]), "START_OF_SPEECH"),
        (DoubleVAD([GOOD_VAD[0], (VADEventType.END_OF_SPEECH, 0.0)]), "without a speech dur"),
        (DoubleVAD(GOOD_VAD, lax=True), "accepted something that is not a frame"),
        (DoubleVAD(GOOD_VAD, hang=True), "VAD stream: no result within 60.0 s"),
    ],
)
async def test_check_vad_fails_on_broken_vads(autojump_clock, vad, message):
    with pytest.raises(AssertionError, match=message):
        await check_vad(vad, speech_audio())


class DeafDetector(VADDetector):
    def push_frame(self, frame):
        return [VADEvent(type=VADEventType.INFERENCE_DONE, timestamp=trio.current_time())]

    def flush(self):
        return []


async def test_check_vad_fails_when_its_detector_hears_otherwise(autojump_clock):
    class Inline(DoubleVAD):
        async def detector(self):
            return DeafDetector()

    with pytest.raises(AssertionError, match="the detector hears"):
        await check_vad(Inline(GOOD_VAD), speech_audio())


async def test_check_vad_fails_when_timestamps_go_backwards(autojump_clock):
    class Backwards(DoubleVADStream):
        async def _run(self) -> None:
            async for _ in self._input:
                pass
            for t, kind in ((5.0, VADEventType.START_OF_SPEECH), (1.0, VADEventType.END_OF_SPEECH)):
                await self._emit(VADEvent(type=kind, timestamp=t, speech_duration=1.0))

    class BackwardsVAD(DoubleVAD):
        def stream(self):
            return Backwards(self)

    with pytest.raises(AssertionError, match="timestamps go backwards"):
        await check_vad(BackwardsVAD(), speech_audio())


# -- STT doubles ----------------------------------------------------------------------------


class BrokenSTT(STT):
    """Refuses every request, as a provider with a wrong key does."""

    def __init__(self) -> None:
        super().__init__(capabilities=STTCapabilities(streaming=False))

    async def _recognize_impl(self, frame, *, language, conn_options):
        raise APIStatusError("invalid key", status_code=401)


class DoubleSTT(STT):
    """Recognizes ``text``; its stream sends ``stream_events`` after the input ends and then,
    with ``hang``, never ends; with ``slow_close`` it takes 30 s to stop when cancelled."""

    def __init__(
        self,
        text="hello world",
        *,
        stream_events=(SpeechEventType.FINAL_TRANSCRIPT,),
        hang=False,
        slow_close=False,
        recognize_type=SpeechEventType.FINAL_TRANSCRIPT,
        streaming=True,
    ) -> None:
        super().__init__(capabilities=STTCapabilities(streaming=streaming))
        self.text = text
        self.stream_events = stream_events
        self.hang = hang
        self.slow_close = slow_close
        self.recognize_type = recognize_type

    async def _recognize_impl(self, frame, *, language, conn_options):
        return SpeechEvent(type=self.recognize_type, alternatives=[SpeechData(text=self.text)])

    def stream(self, *, language=None, conn_options=DEFAULT_API_CONNECT_OPTIONS):
        return DoubleRecognizeStream(self, language=language, conn_options=conn_options)


class DoubleRecognizeStream(RecognizeStream):
    async def _run(self) -> None:
        stt: DoubleSTT = self._stt
        try:
            async for _ in self._input:
                pass
            for kind in stt.stream_events:
                data = [SpeechData(text=stt.text)]
                await self._emit(SpeechEvent(type=kind, alternatives=data))
            if stt.hang:
                await trio.sleep_forever()
        finally:
            if stt.slow_close:
                with trio.CancelScope(shield=True):
                    await trio.sleep(30)


async def test_check_stt_passes_on_a_correct_double(autojump_clock):
    await check_stt(DoubleSTT(), speech_audio(), expected_words=["Hello"], broken=BrokenSTT())


@pytest.mark.parametrize(
    ("kwargs", "check", "message"),
    [
        ({"recognize_type": SpeechEventType.END_OF_SPEECH}, {}, "recognize gave"),
        ({"text": "goodbye"}, {"expected_words": ["hello"]}, "recognize: transcript 'goodbye'"),
        ({"stream_events": (SpeechEventType.INTERIM_TRANSCRIPT,)}, {}, "no final transcript"),
        ({"hang": True}, {}, "STT stream: no result within 120.0 s"),
        ({"slow_close": True}, {}, "STT stream: took 30.00 s to stop after cancellation"),
        ({}, {"broken": DoubleSTT()}, "STT.recognize: a failing provider did not raise"),
    ],
)
async def test_check_stt_fails_on_broken_stts(autojump_clock, kwargs, check, message):
    with pytest.raises(AssertionError, match=message):
        await check_stt(DoubleSTT(**kwargs), speech_audio(), **check)


async def test_check_stt_fails_on_a_stream_that_loses_words(autojump_clock):
    stt = DoubleSTT()

    class Forgetful(DoubleRecognizeStream):
        async def _run(self) -> None:
            async for _ in self._input:
                pass
            data = [SpeechData(text="hello")]
            await self._emit(SpeechEvent(type=SpeechEventType.FINAL_TRANSCRIPT, alternatives=data))

    stt.stream = lambda **kw: Forgetful(stt)
    with pytest.raises(AssertionError, match=r"stream: transcript 'hello' lacks \['world'\]"):
        await check_stt(stt, speech_audio(), expected_words=["hello", "world"])


async def test_check_stt_skips_streaming_for_batch_stts(autojump_clock):
    # a batch STT whose stream would hang: it is not streamed
    batch = DoubleSTT(streaming=False, hang=True)
    await check_stt(batch, speech_audio(), expected_words=["world"], broken=BrokenSTT())


# -- TTS doubles ----------------------------------------------------------------------------


class DoubleTTS(TTS):
    """``seconds`` of a tone per synthesis; the stream speaks each segment with an is_final
    unless ``no_final``; ``amplitude``, ``rate_lie`` and ``hang_on_first`` break things."""

    def __init__(
        self,
        *,
        seconds=0.5,
        amplitude=3000,
        no_final=False,
        rate_lie=False,
        mono_lie=False,
        streaming=True,
    ) -> None:
        super().__init__(
            sample_rate=16000,
            num_channels=1,
            capabilities=TTSCapabilities(streaming=streaming),
        )
        self.seconds = seconds
        self.amplitude = amplitude
        self.no_final = no_final
        self.rate_lie = rate_lie
        self.mono_lie = mono_lie

    def audio(self) -> AudioFrame:
        rate = 8000 if self.rate_lie else 16000
        channels = 2 if self.mono_lie else 1
        n = round(self.seconds * rate)
        data = np.full((n, channels), self.amplitude, np.int16)
        return AudioFrame(data, rate, channels)

    def synthesize(self, text, *, conn_options=DEFAULT_API_CONNECT_OPTIONS) -> ChunkedStream:
        return DoubleChunked(self, text, conn_options=conn_options)

    def stream(self, *, conn_options=DEFAULT_API_CONNECT_OPTIONS) -> SynthesizeStream:
        return DoubleSynthesize(self, conn_options=conn_options)


class DoubleChunked(ChunkedStream):
    async def _run(self) -> None:
        await trio.sleep(0.1)
        if self._tts.seconds:
            await self._emit_frame(self._tts.audio())
        await trio.sleep(0.1)


class DoubleSynthesize(SynthesizeStream):
    async def _run(self) -> None:
        text = ""
        async for item in self._input:
            if isinstance(item, str):
                text += item
            else:
                await self._speak()
                text = ""
        if text:
            await self._speak()

    async def _speak(self) -> None:
        await self._emit_frame(self._tts.audio())
        if not self._tts.no_final:
            await self._end_segment()


class BrokenTTS(DoubleTTS):
    def synthesize(self, text, *, conn_options=DEFAULT_API_CONNECT_OPTIONS):
        raise_at_run = DoubleChunked(self, text, conn_options=conn_options)

        async def fail() -> None:
            raise APIStatusError("no voice", status_code=404)

        raise_at_run._run = fail
        return raise_at_run


async def test_check_tts_passes_on_a_correct_double(autojump_clock):
    await check_tts(DoubleTTS(), broken=BrokenTTS())
    await check_tts(DoubleTTS(streaming=False))


@pytest.mark.parametrize(
    ("tts", "check", "message"),
    [
        (DoubleTTS(no_final=True), {}, "two segments gave 0 is_final items"),
        (DoubleTTS(seconds=0.0), {}, "synthesize: no audio"),
        (DoubleTTS(seconds=0.05), {}, "less than 0.1 s of audio"),
        (DoubleTTS(amplitude=0), {}, "the audio is silent"),
        (DoubleTTS(rate_lie=True), {}, "8000 Hz != tts.sample_rate"),
        (DoubleTTS(mono_lie=True), {}, "channels != tts.num_channels"),
        (DoubleTTS(), {"broken": DoubleTTS()}, "TTS.synthesize: a failing provider did not"),
    ],
)
async def test_check_tts_fails_on_broken_ttss(autojump_clock, tts, check, message):
    with pytest.raises(AssertionError, match=message):
        await check_tts(tts, **check)


async def test_check_tts_fails_on_a_synthesis_with_no_output(autojump_clock):
    class Mute(DoubleTTS):
        def synthesize(self, text, *, conn_options=DEFAULT_API_CONNECT_OPTIONS):
            return MuteChunked(self, text, conn_options=conn_options)

    class MuteChunked(ChunkedStream):
        async def _run(self) -> None:
            pass

        async def _attempts(self) -> None:
            pass  # not even the is_final item

    with pytest.raises(AssertionError, match="synthesize: no output"):
        await check_tts(Mute())


async def test_check_tts_fails_when_a_failing_provider_hangs(autojump_clock):
    class Hanging(DoubleTTS):
        def synthesize(self, text, *, conn_options=DEFAULT_API_CONNECT_OPTIONS):
            return HangingChunked(self, text, conn_options=conn_options)

    class HangingChunked(ChunkedStream):
        _idle_timeout = False  # a provider with no timeout of its own

        async def _run(self) -> None:
            await trio.sleep_forever()

    with pytest.raises(AssertionError, match="a failing provider hung instead of raising"):
        await check_tts(DoubleTTS(), broken=Hanging(), time_limit=5.0)
    assert trio.current_time() == pytest.approx(5.0 + 0.2 + 0.01, abs=0.1)


# -- LLM doubles ----------------------------------------------------------------------------


class DoubleLLM(LLM):
    """Answers ``text`` (and ``calls`` when tools are required); ``fail`` raises instead."""

    def __init__(self, text="Hello!", *, calls=(), fail=False, slow_close=False) -> None:
        super().__init__()
        self.text = text
        self.calls = calls
        self.fail = fail
        self.slow_close = slow_close

    def chat(self, *, chat_ctx, tools=(), tool_choice="auto", conn_options=None, extra=None):
        return DoubleLLMStream(self, chat_ctx=chat_ctx, tools=tools, tool_choice=tool_choice)


class DoubleLLMStream(LLMStream):
    async def _run(self) -> None:
        llm: DoubleLLM = self._llm
        if llm.fail:
            raise APIStatusError("bad request", status_code=400)
        await self._emit_chunk(ChatChunk(id="1", delta=ChoiceDelta(content=llm.text)))
        if self.tool_choice == "required":
            await self._emit_chunk(ChatChunk(id="1", delta=ChoiceDelta(tool_calls=llm.calls)))

    async def aclose(self) -> None:
        if self._llm.slow_close:
            # a goodbye to the server with no timeout, shielded from cancellation: a bug
            with trio.CancelScope(shield=True):
                await trio.sleep(5.0)
        await super().aclose()


WEATHER = FunctionCall(call_id="c", name="get_weather", arguments="{}")


async def test_check_llm_passes_on_a_correct_double(autojump_clock):
    await check_llm(DoubleLLM(calls=[WEATHER]), tools=[get_weather], broken=DoubleLLM(fail=True))


@pytest.mark.parametrize(
    ("llm", "check", "message"),
    [
        (DoubleLLM(text="  "), {}, "the reply has no text"),
        (DoubleLLM(), {"tools": [get_weather]}, "tool_choice='required' gave no tool call"),
        (
            DoubleLLM(calls=[FunctionCall(call_id="c", name="nope", arguments="{}")]),
            {"tools": [get_weather]},
            "calls to unknown tools",
        ),
        (DoubleLLM(slow_close=True), {}, "LLM stream: took 5.00 s to stop after cancellation"),
        (DoubleLLM(), {"broken": DoubleLLM()}, "LLM.chat: a failing provider did not raise"),
    ],
)
async def test_check_llm_fails_on_broken_llms(autojump_clock, llm, check, message):
    with pytest.raises(AssertionError, match=message):
        await check_llm(llm, **check)


async def test_check_llm_fails_on_a_stream_that_swallows_cancellation(autojump_clock):
    class Swallows(DoubleLLM):
        """Its streams swallow the cancellation: read_forever returns normally."""

        def chat(self, **kwargs):
            return SwallowingStream(self, chat_ctx=kwargs["chat_ctx"])

    class SwallowingStream(DoubleLLMStream):
        async def __aexit__(self, *exc_info):
            await super().__aexit__(*exc_info)
            return True  # a bug: it hides every exception, Cancelled included

    with pytest.raises(AssertionError, match="finished before it could be cancelled"):
        await check_llm(Swallows())


# -- the other fakes ------------------------------------------------------------------------


async def test_fake_text_output_records_flushed_segments(autojump_clock):
    out = FakeTextOutput()
    assert out.label == "fake_text_output"
    out.flush()  # nothing to flush
    await out.capture_text("Hello ")
    await out.capture_text("there.")
    out.flush()
    await out.capture_text("Bye.")
    out.flush()
    assert out.segments == ["Hello there.", "Bye."]


async def test_fake_audio_input_is_a_tone_while_the_user_speaks(autojump_clock):
    tl = Timeline(input_sample_rate=8000, frame_duration=0.1)
    tl.user_speech(start=0.25, end=0.45, transcript="hi")
    tl.start()
    await trio.sleep(0.05)
    heard = []
    async for frame in tl.audio_input:
        heard.append((trio.current_time(), bool(np.abs(frame.data).max() > 0)))
        assert frame.sample_rate == 8000
        assert frame.duration == pytest.approx(0.1)
        if len(heard) == 6:
            break
    # frame k covers [(k-1)*0.1, k*0.1) and arrives at k*0.1; speech covers 0.25-0.45
    assert heard == [
        (0.1, False),
        (0.2, False),
        (pytest.approx(0.3), True),
        (0.4, True),
        (0.5, False),
        (pytest.approx(0.6), False),
    ]


async def test_fake_stt_stream_ends_with_its_input(autojump_clock):
    tl = Timeline()
    tl.user_speech(start=0.5, end=1.0, transcript="one", stt_delay=0.25)
    tl.start()
    async with tl.fake_stt.stream() as stream:
        stream.end_input()
        events = [(trio.current_time(), e.type) async for e in stream]
    assert events[-1] == (1.25, SpeechEventType.END_OF_SPEECH)
    assert trio.current_time() == 1.25


async def test_fake_vad_end_of_speech_carries_the_audio_heard(autojump_clock):
    tl = Timeline(frame_duration=0.1)
    tl.user_speech(start=2.0, end=3.0, transcript="x")
    tl.start()
    ends = []
    async with tl.fake_vad.stream() as stream, trio.open_nursery() as nursery:

        async def push():
            async for frame in tl.audio_input:
                await stream.push_frame(frame)
                if trio.current_time() >= 4.0:
                    break
            stream.end_input()

        nursery.start_soon(push)
        async for event in stream:
            if event.type == VADEventType.END_OF_SPEECH:
                ends.append(event)
    (end,) = ends
    # 0.5 s of padding before the start of speech (2.05), then everything until the end (3.5)
    assert sum(f.duration for f in end.frames) == pytest.approx(0.5 + 1.5, abs=0.11)
    assert trio.current_time() == 4.0


async def test_fake_tts_unscripted_text_is_a_clear_error(autojump_clock):
    tl = Timeline()
    tl.start()
    async with tl.fake_tts.synthesize("Unknown.") as chunked:
        with pytest.raises(APIStatusError, match=r"no TTS audio scripted for 'Unknown\.'"):
            await chunked.collect()


async def test_fake_tts_stream_skips_empty_segments(autojump_clock):
    tl = Timeline()
    tl.tts(input="One.", audio_duration=0.5)
    tl.start()
    async with tl.fake_tts.stream() as stream:
        await stream.push_text("  ")
        await stream.flush()
        await stream.push_text("One.")
        await stream.flush()
        stream.end_input()
        items = await stream.collect()
    assert [i.segment_id for i in items if i.is_final] == ["seg_1"]
    assert tl.tts_requests == ["One."]


def test_timeline_validation_and_properties():
    tl = Timeline()
    with pytest.raises(ValueError, match="0 <= start < end"):
        tl.user_speech(start=2.0, end=1.0, transcript="x")
    with pytest.raises(ValueError, match="stt_delay must be >= 0"):
        tl.user_speech(start=0.0, end=1.0, transcript="x", stt_delay=-1)
    with pytest.raises(ValueError, match="0 <= ttft <= duration"):
        tl.llm(input="x", ttft=1.0, duration=0.5)
    with pytest.raises(ValueError, match="0 <= ttfb <= duration"):
        tl.tts(input="x", audio_duration=1.0, ttfb=1.0, duration=0.5)
    with pytest.raises(ValueError, match="audio_duration must be > 0"):
        tl.tts(input="x", audio_duration=0.0)
    assert tl.end_of_script == 0.0
    tl.user_speech(start=0.0, end=1.0, transcript="x", stt_delay=0.2)
    tl.user_speech(start=2.0, end=3.0, transcript="y", stt_delay=0.8)
    assert tl.end_of_script == 3.8


async def test_timeline_starts_once(autojump_clock):
    tl = Timeline()
    await trio.sleep(2.0)
    tl.start()
    assert tl.origin == 2.0
    with pytest.raises(RuntimeError, match="started only once"):
        tl.start()
