"""stt.StreamAdapter (VAD-segmented batch STT) and stt.FallbackAdapter, on exact times."""

import pytest
import trio

from tvoice import APIConnectionError, APIStatusError, APITimeoutError
from tvoice._utils import DEFAULT_API_CONNECT_OPTIONS, APIConnectOptions
from tvoice.audio import AudioFrame
from tvoice.metrics import STTMetrics, UsageCollector
from tvoice.stt import (
    STT,
    FallbackAdapter,
    RecognizeStream,
    SpeechData,
    SpeechEvent,
    SpeechEventType,
    StreamAdapter,
    StreamAdapterWrapper,
    STTCapabilities,
)
from tvoice.testing import Timeline
from tvoice.vad import VAD, VADCapabilities, VADEvent, VADEventType, VADStream

START, INTERIM, PREFLIGHT, FINAL, END = (
    SpeechEventType.START_OF_SPEECH,
    SpeechEventType.INTERIM_TRANSCRIPT,
    SpeechEventType.PREFLIGHT_TRANSCRIPT,
    SpeechEventType.FINAL_TRANSCRIPT,
    SpeechEventType.END_OF_SPEECH,
)


class BatchSTT(STT):
    """Answers the scripted ``transcripts`` in order, each after ``delay`` s.

    ``failures`` first calls raise ``error``; ``hang`` never answers. ``heard`` records the
    audio duration of each call.
    """

    def __init__(
        self,
        transcripts=("hello",),
        *,
        delay: float = 0.0,
        failures: int = 0,
        error=None,
        hang: bool = False,
        name: str = "batch",
    ) -> None:
        super().__init__(capabilities=STTCapabilities(streaming=False))
        self.transcripts = list(transcripts)
        self.delay = delay
        self.failures = failures
        self.error = error or APIConnectionError(f"{name} is down")
        self.hang = hang
        self.name = name
        self.calls: list[float] = []
        self.heard: list[float] = []

    @property
    def label(self) -> str:
        return self.name

    def __repr__(self) -> str:
        return f"<STT {self.name}>"

    async def _recognize_impl(self, frame, *, language, conn_options) -> SpeechEvent:
        self.calls.append(trio.current_time())
        if self.hang:
            await trio.sleep_forever()
        await trio.sleep(self.delay)
        if len(self.calls) <= self.failures:
            raise self.error
        self.heard.append(frame.duration)
        text = self.transcripts.pop(0) if len(self.transcripts) > 1 else self.transcripts[0]
        return SpeechEvent(
            type=FINAL, alternatives=[SpeechData(text=text, language=language or "")]
        )


class StreamingSTT(STT):
    """Counts the frames it receives; a FINAL "<n> frames" at each flush and at the end.

    With ``break_after`` it emits START_OF_SPEECH, a FINAL, then breaks after that many frames.
    ``frames`` records the timestamp of every frame received.
    """

    def __init__(
        self, name: str, *, break_after: int | None = None, error=None, fail_at_once=False
    ) -> None:
        super().__init__(capabilities=STTCapabilities(streaming=True, interim_results=True))
        self.name = name
        self.break_after = break_after
        self.error = error or APIConnectionError(f"{name} stream broke")
        self.fail_at_once = fail_at_once
        self.frames: list[float] = []
        self.streams = 0
        self.cleanup: list[float] = []

    @property
    def label(self) -> str:
        return self.name

    def __repr__(self) -> str:
        return f"<STT {self.name}>"

    async def _recognize_impl(self, frame, *, language, conn_options):
        if self.fail_at_once:
            raise self.error
        return SpeechEvent(type=FINAL, alternatives=[SpeechData(text=self.name)])

    def stream(self, *, language=None, conn_options=DEFAULT_API_CONNECT_OPTIONS):
        self.streams += 1
        return CountingStream(self, language=language, conn_options=conn_options)


class CountingStream(RecognizeStream):
    async def _run(self) -> None:
        stt = self._stt
        try:
            if stt.fail_at_once:
                raise stt.error
            count = 0
            async for item in self._input:
                if not isinstance(item, AudioFrame):
                    await self._final(count)
                    count = 0
                    continue
                stt.frames.append(trio.current_time())
                count += 1
                if count == 1:
                    await self._emit(SpeechEvent(type=START))
                if stt.break_after is not None and len(stt.frames) == stt.break_after:
                    await self._final(count)
                    raise stt.error
            await self._final(count)
        finally:
            stt.cleanup.append(trio.current_time())

    async def _final(self, count: int) -> None:
        data = SpeechData(text=f"{self._stt.name}: {count} frames")
        await self._emit(SpeechEvent(type=FINAL, alternatives=[data]))


async def push_audio(stream, audio_input, until: float) -> None:
    """Push the timeline's microphone into ``stream`` in virtual real time, then end input."""
    async for frame in audio_input:
        await stream.push_frame(frame)
        if trio.current_time() >= until:
            break
    stream.end_input()


async def collect_timed(stream) -> list[tuple[float, SpeechEventType, str]]:
    return [(trio.current_time(), e.type, e.text) async for e in stream]


def frame(duration: float = 1.0) -> AudioFrame:
    return AudioFrame.silence(duration, 16000)


# -- StreamAdapter --------------------------------------------------------------------------


async def test_stream_adapter_events_at_exact_times(autojump_clock):
    tl = Timeline()
    tl.user_speech(start=0.5, end=2.5, transcript="ignored: the batch STT decides")
    tl.user_speech(start=4.0, end=5.0, transcript="")
    tl.start()
    stt = BatchSTT(["Hello there.", "Bye."], delay=0.3)
    adapter = StreamAdapter(stt=stt, vad=tl.fake_vad)
    async with adapter.stream(language="en") as stream, trio.open_nursery() as nursery:
        nursery.start_soon(push_audio, stream, tl.audio_input, 7.0)
        events = await collect_timed(stream)
    assert events == [
        (0.55, START, ""),
        # the VAD ends the speech 0.5 s after it ends; recognition takes 0.3 s more
        (pytest.approx(3.3), FINAL, "Hello there."),
        (pytest.approx(3.3), END, ""),
        (4.05, START, ""),
        (pytest.approx(5.8), FINAL, "Bye."),
        (pytest.approx(5.8), END, ""),
    ]
    assert stt.calls == [3.0, 5.5]
    # each utterance is sent with its audio (some padding before it, the silence after it)
    assert stt.heard[0] >= 2.5
    assert stt.heard[1] >= 1.5


async def test_stream_adapter_ignores_flush(autojump_clock):
    # Utterances are cut by the VAD; a flush from the caller changes nothing.
    tl = Timeline()
    tl.user_speech(start=0.5, end=1.0, transcript="")
    tl.start()
    stt = BatchSTT(["hi"])
    async with StreamAdapter(stt=stt, vad=tl.fake_vad).stream() as stream:
        async for frame in tl.audio_input:
            await stream.push_frame(frame)
            await stream.flush()
            if trio.current_time() >= 2.0:
                break
        stream.end_input()
        events = await collect_timed(stream)
    assert [e[1:] for e in events] == [(START, ""), (FINAL, "hi"), (END, "")]
    assert stt.calls == [1.5]


async def test_stream_adapter_sends_no_final_for_an_empty_transcript(autojump_clock):
    tl = Timeline()
    tl.user_speech(start=0.5, end=1.0, transcript="")
    tl.start()
    stt = BatchSTT(["  "], delay=0.25)
    async with (
        StreamAdapter(stt=stt, vad=tl.fake_vad).stream() as stream,
        trio.open_nursery() as nursery,
    ):
        nursery.start_soon(push_audio, stream, tl.audio_input, 3.0)
        events = await collect_timed(stream)
    assert events == [(0.55, START, ""), (1.75, END, "")]


async def test_stream_adapter_skips_recognition_when_the_vad_gives_no_audio(autojump_clock):
    tl = Timeline()
    tl.user_speech(start=0.5, end=1.0, transcript="")
    tl.start()
    stt = BatchSTT()
    async with StreamAdapter(stt=stt, vad=tl.fake_vad).stream() as stream:
        stream.end_input()  # no audio at all
        events = await collect_timed(stream)
    assert events == [(0.55, START, ""), (1.5, END, "")]
    assert stt.calls == []


async def test_stream_adapter_properties_and_recognize(autojump_clock):
    tl = Timeline()
    stt = BatchSTT(["one"], delay=0.5)
    adapter = StreamAdapter(stt=stt, vad=tl.fake_vad)
    assert adapter.wrapped_stt is stt
    assert adapter.vad is tl.fake_vad
    assert adapter.label == "StreamAdapter(batch)"
    assert adapter.capabilities == STTCapabilities(streaming=True, interim_results=False)
    assert isinstance(adapter.stream(), StreamAdapterWrapper)
    metrics: list[STTMetrics] = []
    adapter.on("metrics_collected", metrics.append)
    event = await adapter.recognize(frame(2.0), language="de")
    assert (event.text, event.alternatives[0].language) == ("one", "de")
    assert trio.current_time() == 0.5
    # one recognition, one record (the wrapped STT's)
    assert [(m.label, m.duration, m.audio_duration) for m in metrics] == [("batch", 0.5, 2.0)]


async def test_stream_adapter_recognize_retries_once_per_attempt(autojump_clock):
    stt = BatchSTT(["ok"], failures=1)
    adapter = StreamAdapter(stt=stt, vad=Timeline().fake_vad)
    assert (await adapter.recognize(frame())).text == "ok"
    assert stt.calls == [0.0, 0.5]


async def test_stream_adapter_forwards_metrics_of_each_utterance(autojump_clock):
    tl = Timeline()
    tl.user_speech(start=0.5, end=1.0, transcript="x")
    tl.start()
    stt = BatchSTT(["x"], delay=0.2)
    adapter = StreamAdapter(stt=stt, vad=tl.fake_vad)
    usage = UsageCollector()
    adapter.on("metrics_collected", usage.collect)
    async with adapter.stream() as stream, trio.open_nursery() as nursery:
        nursery.start_soon(push_audio, stream, tl.audio_input, 2.0)
        await stream.collect()
    assert usage.get_summary().stt_audio_duration == pytest.approx(stt.heard[0])


async def test_stream_adapter_raises_when_recognition_fails(autojump_clock):
    tl = Timeline()
    tl.user_speech(start=0.5, end=1.0, transcript="x")
    tl.start()
    stt = BatchSTT(failures=100, error=APIStatusError("quota", status_code=429))
    options = APIConnectOptions(max_retry=1)
    async with (
        StreamAdapter(stt=stt, vad=tl.fake_vad).stream(conn_options=options) as stream,
        trio.open_nursery() as nursery,
    ):
        nursery.start_soon(push_audio, stream, tl.audio_input, 5.0)
        with pytest.raises(APIStatusError, match="quota"):
            await stream.collect()
        nursery.cancel_scope.cancel()
    assert stt.calls == [1.5, 2.0]


async def test_cancelling_the_stream_adapter_leaves_nothing_running(autojump_clock):
    tl = Timeline()
    tl.user_speech(start=0.5, end=1.0, transcript="x")
    tl.start()
    stt = BatchSTT(hang=True)
    me = trio.lowlevel.current_task()
    with trio.move_on_after(1.7) as scope:
        async with (
            StreamAdapter(stt=stt, vad=tl.fake_vad).stream() as stream,
            trio.open_nursery() as nursery,
        ):
            nursery.start_soon(push_audio, stream, tl.audio_input, 100.0)
            await stream.collect()
    assert scope.cancelled_caught
    assert stt.calls == [1.5]
    assert tasks_below(me) == []


def tasks_below(task: trio.lowlevel.Task) -> list[trio.lowlevel.Task]:
    out = []
    for nursery in task.child_nurseries:
        for child in nursery.child_tasks:
            out += [child, *tasks_below(child)]
    return out


# -- FallbackAdapter: recognize -------------------------------------------------------------


async def test_recognize_falls_back_after_the_primary_retries(autojump_clock):
    primary = BatchSTT(failures=100, name="primary")
    backup = BatchSTT(["from backup"], delay=0.2, name="backup")
    adapter = FallbackAdapter([primary, backup], vad=Timeline().fake_vad)
    metrics: list[STTMetrics] = []
    adapter.on("metrics_collected", metrics.append)
    event = await adapter.recognize(frame(1.5))
    assert event.text == "from backup"
    assert primary.calls == [0.0, 0.5]
    assert backup.calls == [0.5]
    assert trio.current_time() == 0.7
    assert [(m.label, m.audio_duration) for m in metrics] == [("backup", 1.5)]
    assert adapter.pool.candidates() == adapter.stts[1:]


async def test_recognize_falls_back_from_a_hanging_primary(autojump_clock):
    primary = BatchSTT(hang=True, name="primary")
    backup = BatchSTT(["ok"], name="backup")
    options = APIConnectOptions(max_retry=0, timeout=3.0)
    adapter = FallbackAdapter([primary, backup], vad=Timeline().fake_vad, conn_options=options)
    assert (await adapter.recognize(frame())).text == "ok"
    assert trio.current_time() == 3.0
    assert primary.calls == [0.0]


async def test_recognize_gives_a_hanging_primary_its_full_retries(autojump_clock):
    # Default per-STT options: 10 s timeout, one retry 0.5 s later. Nothing outside them may
    # cut the primary off earlier (the caller's own conn_options are not a second timeout).
    primary = BatchSTT(hang=True, name="primary")
    backup = BatchSTT(["ok"], name="backup")
    adapter = FallbackAdapter([primary, backup], vad=Timeline().fake_vad)
    metrics = []
    adapter.on("metrics_collected", metrics.append)
    assert (await adapter.recognize(frame())).text == "ok"
    assert primary.calls == [0.0, 10.5]
    assert trio.current_time() == 20.5
    assert [m.label for m in metrics] == ["backup"]


async def test_recognize_all_failing_names_each(autojump_clock):
    primary = BatchSTT(failures=100, name="primary")
    backup = StreamingSTT("backup", fail_at_once=True, error=APITimeoutError("backup slow"))
    adapter = FallbackAdapter([primary, backup], vad=Timeline().fake_vad)
    with pytest.raises(APIConnectionError, match=r"all STTs failed: primary is down.*backup slow"):
        await adapter.recognize(frame())
    # the backup's own retry came 0.5 s after its first attempt
    assert trio.current_time() == 1.0


async def test_recognize_tries_a_recovered_primary_first(autojump_clock):
    primary = BatchSTT(["primary"], failures=2, name="primary")
    backup = BatchSTT(["backup"], name="backup")
    adapter = FallbackAdapter([primary, backup], vad=Timeline().fake_vad, recovery_interval=5.0)
    assert (await adapter.recognize(frame())).text == "backup"
    await trio.sleep(1.0)
    assert (await adapter.recognize(frame())).text == "backup"
    await trio.sleep(5.0)
    assert (await adapter.recognize(frame())).text == "primary"
    assert primary.calls == [0.0, 0.5, 6.5]


def test_batch_stt_without_vad_is_refused():
    with pytest.raises(ValueError, match="batch does not stream: pass vad="):
        FallbackAdapter([StreamingSTT("ok"), BatchSTT(name="batch")])


def test_fallback_wraps_batch_stts_and_reports_capabilities():
    vad = Timeline().fake_vad
    batch = BatchSTT()
    streaming = StreamingSTT("s")
    adapter = FallbackAdapter([streaming, batch], vad=vad)
    wrapped = adapter.stts[1]
    assert isinstance(wrapped, StreamAdapter)
    assert wrapped.wrapped_stt is batch
    assert adapter.stts[0] is streaming
    assert adapter.capabilities == STTCapabilities(streaming=True, interim_results=False)
    assert FallbackAdapter([streaming]).capabilities.interim_results is True
    assert adapter.stt_conn_options == APIConnectOptions(max_retry=1, timeout=10.0)


# -- FallbackAdapter: streams ---------------------------------------------------------------


async def push_frames(stream, n: int, *, every: float = 0.1) -> None:
    for _ in range(n):
        await stream.push_frame(frame(every))
        await trio.sleep(every)
    stream.end_input()


async def test_stream_falls_back_mid_stream_and_keeps_receiving_audio(autojump_clock):
    primary = StreamingSTT("primary", break_after=3)
    backup = StreamingSTT("backup")
    adapter = FallbackAdapter([primary, backup])
    async with adapter.stream() as stream, trio.open_nursery() as nursery:
        nursery.start_soon(push_frames, stream, 10)
        events = await collect_timed(stream)
    assert events == [
        (0.0, START, ""),
        (pytest.approx(0.2), FINAL, "primary: 3 frames"),
        (pytest.approx(0.3), START, ""),
        (pytest.approx(1.0), FINAL, "backup: 7 frames"),
    ]
    assert len(primary.frames) == 3
    assert backup.frames == pytest.approx([0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9])
    assert primary.streams == 1  # it had emitted: no retry, straight to the backup
    assert adapter.pool.candidates() == [backup]


async def test_stream_forwards_flush_to_the_inner_stream(autojump_clock):
    backup = StreamingSTT("only")
    async with FallbackAdapter([backup]).stream() as stream:
        await stream.push_frame(frame())
        await stream.push_frame(frame())
        await stream.flush()
        await stream.push_frame(frame())
        stream.end_input()
        texts = [e.text for e in await stream.collect() if e.type == FINAL]
    assert texts == ["only: 2 frames", "only: 1 frames"]


async def test_stream_whose_providers_all_fail_raises(autojump_clock):
    primary = StreamingSTT("primary", fail_at_once=True)
    backup = StreamingSTT("backup", fail_at_once=True)
    async with FallbackAdapter([primary, backup]).stream() as stream:
        with pytest.raises(APIConnectionError, match=r"primary stream broke.*backup stream broke"):
            await stream.collect()
    # each stream retried once (0.5 s) before the next was tried
    assert (primary.streams, backup.streams) == (1, 1)
    assert trio.current_time() == 1.0


async def test_stream_uses_a_batch_stt_through_the_vad(autojump_clock):
    tl = Timeline()
    tl.user_speech(start=0.5, end=1.0, transcript="x")
    tl.start()
    primary = StreamingSTT(
        "primary", fail_at_once=True, error=APIStatusError("401", status_code=401)
    )
    backup = BatchSTT(["from batch"], delay=0.1, name="backup")
    adapter = FallbackAdapter([primary, backup], vad=tl.fake_vad)
    async with adapter.stream() as stream, trio.open_nursery() as nursery:
        nursery.start_soon(push_audio, stream, tl.audio_input, 2.0)
        events = await collect_timed(stream)
    assert events == [
        (0.55, START, ""),
        (pytest.approx(1.6), FINAL, "from batch"),
        (pytest.approx(1.6), END, ""),
    ]


async def test_cancelling_a_fallback_stream_leaves_nothing_running(autojump_clock):
    primary = StreamingSTT("primary")
    me = trio.lowlevel.current_task()
    with trio.move_on_after(0.55) as scope:
        async with FallbackAdapter([primary]).stream() as stream:
            await push_frames(stream, 100)
    assert scope.cancelled_caught
    assert primary.cleanup == [0.55]
    assert tasks_below(me) == []


# -- StreamAdapter: transcribing on a pause --------------------------------------------------


class PausingVAD(VAD):
    """A VAD that reports what a real one does around a pause: START_OF_SPEECH, then an
    INFERENCE_DONE every 0.1 s whose ``silence_duration`` grows through each silence in
    ``speech`` (a list of (start, end) spans of one utterance), then END_OF_SPEECH
    ``min_silence`` after the last span, carrying the audio heard since it started."""

    def __init__(self, speech: list[tuple[float, float]], *, min_silence: float = 0.55) -> None:
        super().__init__(capabilities=VADCapabilities(update_interval=0.1))
        self.speech = speech
        self.min_silence = min_silence

    def stream(self) -> VADStream:
        return PausingVADStream(self)


class PausingVADStream(VADStream):
    async def _run(self) -> None:
        vad = self._vad
        heard: list[AudioFrame] = []

        async def listen() -> None:
            async for frame in self._input:
                heard.append(frame)

        async with trio.open_nursery() as nursery:
            nursery.start_soon(listen)
            first, last = vad.speech[0][0], vad.speech[-1][1]
            await trio.sleep_until(first)
            await self._emit(VADEvent(type=VADEventType.START_OF_SPEECH, timestamp=first))
            t = round(first + 0.1, 3)
            while t < last + vad.min_silence - 1e-9:
                await trio.sleep_until(t)
                silence = min((t - end for start, end in vad.speech if t >= end), default=0.0)
                if any(start <= t < end for start, end in vad.speech):
                    silence = 0.0
                await self._emit(
                    VADEvent(
                        type=VADEventType.INFERENCE_DONE,
                        timestamp=t,
                        speaking=True,
                        silence_duration=round(silence, 3),
                    )
                )
                t = round(t + 0.1, 3)
            await trio.sleep_until(last + vad.min_silence)
            await self._emit(
                VADEvent(type=VADEventType.END_OF_SPEECH, timestamp=t, frames=tuple(heard))
            )
            nursery.cancel_scope.cancel()


async def feed_silence(stream, until: float) -> None:
    """20 ms frames in virtual real time until ``until``, then the end of input."""
    while trio.current_time() < until - 1e-9:
        await stream.push_frame(AudioFrame.silence(0.02, 16000))
        await trio.sleep(0.02)
    stream.end_input()


async def transcribe_with_pauses(stt, speech, *, pause=0.2, until=4.0, min_silence=0.55, **options):
    vad = PausingVAD(speech, min_silence=min_silence)
    adapter = StreamAdapter(stt=stt, vad=vad, transcribe_on_pause=pause)
    async with adapter.stream(**options) as stream, trio.open_nursery() as nursery:
        nursery.start_soon(feed_silence, stream, until)
        return await collect_timed(stream)


async def test_a_pause_transcribes_early_and_the_end_of_speech_does_not_wait(autojump_clock):
    stt = BatchSTT(["What is the weather in Paris?"], delay=0.3)
    events = await transcribe_with_pauses(stt, [(0.5, 2.0)])
    assert events == [
        (0.5, START, ""),
        # transcribed from 2.2 (0.2 s into the silence) to 2.5, before the VAD's end at 2.55
        (2.55, FINAL, "What is the weather in Paris?"),
        (2.55, END, ""),
    ]
    assert stt.calls == [pytest.approx(2.2)]
    # the speech so far, with its padding and the silence heard: not the end's audio again
    assert 1.7 <= stt.heard[0] <= 2.2


async def test_an_early_transcript_is_told_as_a_preflight_at_the_next_vad_window(autojump_clock):
    stt = BatchSTT(["What is the weather in Paris?"], delay=0.15)
    events = await transcribe_with_pauses(stt, [(0.5, 2.0)])
    assert events == [
        (0.5, START, ""),
        # ready at 2.35; the VAD's next window is at 2.4: the session may prepare its reply
        # there, while the VAD waits until 2.55 to end the speech
        (2.4, PREFLIGHT, "What is the weather in Paris?"),
        (2.55, FINAL, "What is the weather in Paris?"),
        (2.55, END, ""),
    ]
    assert stt.calls == [pytest.approx(2.2)]  # one transcription for both


async def test_a_preflight_the_user_goes_on_from_is_followed_by_the_whole_words(autojump_clock):
    stt = BatchSTT(["What is the weather", "What is the weather in Paris?"], delay=0.05)
    events = await transcribe_with_pauses(stt, [(0.5, 1.5), (2.0, 2.5)])
    assert events == [
        (0.5, START, ""),
        (1.8, PREFLIGHT, "What is the weather"),  # ready at 1.75; the user goes on at 2.0
        (2.8, PREFLIGHT, "What is the weather in Paris?"),
        (3.05, FINAL, "What is the weather in Paris?"),
        (3.05, END, ""),
    ]
    assert stt.calls == [pytest.approx(1.7), pytest.approx(2.7)]


def test_a_preflight_ready_at_a_vad_window_is_told_at_the_next_in_every_order():
    """The transcription ends at 2.5, the instant of a VAD window: whichever trio runs first,
    the words go out at the next window (2.6), never at 2.5."""
    from tests.voice.test_scheduling_order import seed_scheduler

    async def play():
        stt = BatchSTT(["Hello."], delay=0.3)
        return await transcribe_with_pauses(stt, [(0.5, 2.0)], min_silence=0.75)

    for seed in range(20):
        seed_scheduler(seed)
        events = trio.run(play, clock=trio.testing.MockClock(autojump_threshold=0))
        assert events == [
            (0.5, START, ""),
            (2.6, PREFLIGHT, "Hello."),
            (2.75, FINAL, "Hello."),
            (2.75, END, ""),
        ], seed


async def test_speech_after_a_pause_cancels_the_early_transcript(autojump_clock):
    stt = BatchSTT(["What is the weather in Paris?"], delay=0.3)
    events = await transcribe_with_pauses(stt, [(0.5, 1.5), (1.8, 2.5)])
    # 1.7: a pause of 0.2 s starts a transcription; 1.8: the user goes on, it is cancelled;
    # 2.7: the next pause starts another, whose words are the final ones, ready by 3.0
    assert stt.calls == [pytest.approx(1.7), pytest.approx(2.7)]
    assert events == [
        (0.5, START, ""),
        (3.05, FINAL, "What is the weather in Paris?"),
        (3.05, END, ""),
    ]
    assert len(stt.heard) == 1  # the cancelled one never answered
    assert stt.heard[0] >= 2.2  # the second heard all the speech


async def test_the_end_of_speech_waits_for_a_slow_early_transcript(autojump_clock):
    stt = BatchSTT(["Hello."], delay=0.5)
    events = await transcribe_with_pauses(stt, [(0.5, 2.0)])
    assert events == [(0.5, START, ""), (2.7, FINAL, "Hello."), (2.7, END, "")]
    assert stt.calls == [pytest.approx(2.2)]


async def test_a_failed_early_transcript_is_redone_at_the_end_of_speech(autojump_clock):
    stt = BatchSTT(["Hello."], delay=0.1, failures=1)
    events = await transcribe_with_pauses(
        stt, [(0.5, 2.0)], conn_options=APIConnectOptions(max_retry=0)
    )
    assert stt.calls == [pytest.approx(2.2), 2.55]
    assert events == [(0.5, START, ""), (2.65, FINAL, "Hello."), (2.65, END, "")]


async def test_without_transcribe_on_pause_only_the_end_is_transcribed(autojump_clock):
    stt = BatchSTT(["Hello."], delay=0.3)
    events = await transcribe_with_pauses(stt, [(0.5, 2.0)], pause=None)
    assert events == [
        (0.5, START, ""),
        (pytest.approx(2.85), FINAL, "Hello."),
        (pytest.approx(2.85), END, ""),
    ]
    assert stt.calls == [2.55]


def test_transcribe_on_pause_is_checked():
    stt, vad = BatchSTT(), PausingVAD([(0.5, 1.0)])
    assert StreamAdapter(stt=stt, vad=vad).transcribe_on_pause is None
    assert StreamAdapter(stt=stt, vad=vad, transcribe_on_pause=0.2).transcribe_on_pause == 0.2
    with pytest.raises(ValueError, match="transcribe_on_pause"):
        StreamAdapter(stt=stt, vad=vad, transcribe_on_pause=-1)
