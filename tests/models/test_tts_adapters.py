"""tts.StreamAdapter (sentence by sentence) and tts.FallbackAdapter (replay, resampling)."""

import numpy as np
import pytest
import trio

from tvoice import APIConnectionError, APIStatusError
from tvoice._utils import DEFAULT_API_CONNECT_OPTIONS, APIConnectOptions
from tvoice.audio import AudioFrame
from tvoice.metrics import TTSMetrics
from tvoice.tokenize import SentenceTokenizer
from tvoice.tts import (
    TTS,
    ChunkedStream,
    FallbackAdapter,
    StreamAdapter,
    StreamAdapterWrapper,
    SynthesizeStream,
    TTSCapabilities,
)

SECONDS_PER_CHAR = 0.02


def tone(duration: float, rate: int) -> AudioFrame:
    t = np.arange(round(duration * rate)) / rate
    return AudioFrame((np.sin(2 * np.pi * 200 * t) * 5000).astype(np.int16), rate)


class BatchTTS(TTS):
    """Speaks ``text`` as 0.02 s of audio per character, in one frame, ``delay`` s after the
    request. The first ``failures`` requests fail (after ``delay``, or after one frame with
    ``fail_after_audio``); ``hang`` never answers. ``requests``: (time, text) of each."""

    def __init__(
        self,
        name: str = "batch",
        *,
        sample_rate: int = 16000,
        delay: float = 0.2,
        failures: int = 0,
        error=None,
        fail_after_audio: bool = False,
        hang: bool = False,
    ) -> None:
        super().__init__(
            sample_rate=sample_rate, num_channels=1, capabilities=TTSCapabilities(streaming=False)
        )
        self.name = name
        self.delay = delay
        self.failures = failures
        self.error = error or APIConnectionError(f"{name} is down")
        self.fail_after_audio = fail_after_audio
        self.hang = hang
        self.requests: list[tuple[float, str]] = []

    @property
    def label(self) -> str:
        return self.name

    def __repr__(self) -> str:
        return f"<TTS {self.name}>"

    def synthesize(self, text, *, conn_options=DEFAULT_API_CONNECT_OPTIONS) -> ChunkedStream:
        return BatchChunked(self, text, conn_options=conn_options)

    @property
    def texts(self) -> list[str]:
        return [t for _, t in self.requests]


class BatchChunked(ChunkedStream):
    async def _run(self) -> None:
        tts: BatchTTS = self._tts
        tts.requests.append((trio.current_time(), self.input_text))
        if tts.hang:
            await trio.sleep_forever()
        await trio.sleep(tts.delay)
        audio = tone(SECONDS_PER_CHAR * len(self.input_text), tts.sample_rate)
        if len(tts.requests) <= tts.failures:
            if tts.fail_after_audio:
                await self._emit_frame(audio)
            raise tts.error
        await self._emit_frame(audio)


class StreamTTS(TTS):
    """A streaming TTS: at each flush (and at the end) it speaks the segment's text, 0.02 s
    per character, ``delay`` s later. Segment number ``fail_segment`` (counting every segment
    it is asked to speak) fails, before its audio or after one frame of it."""

    def __init__(
        self,
        name: str,
        *,
        sample_rate: int = 16000,
        delay: float = 0.1,
        fail_segment: int | None = None,
        fail_always: bool = False,
        fail_after_audio: bool = False,
        error=None,
    ) -> None:
        super().__init__(
            sample_rate=sample_rate, num_channels=1, capabilities=TTSCapabilities(streaming=True)
        )
        self.name = name
        self.delay = delay
        self.fail_segment = fail_segment
        self.fail_always = fail_always
        self.fail_after_audio = fail_after_audio
        self.error = error or APIConnectionError(f"{name} broke")
        self.segments: list[tuple[float, str]] = []
        self.options: list[APIConnectOptions] = []
        self.cleanup: list[float] = []

    @property
    def label(self) -> str:
        return self.name

    def __repr__(self) -> str:
        return f"<TTS {self.name}>"

    def synthesize(self, text, *, conn_options=DEFAULT_API_CONNECT_OPTIONS) -> ChunkedStream:
        raise AssertionError("only streamed in these tests")

    def stream(self, *, conn_options=DEFAULT_API_CONNECT_OPTIONS) -> SynthesizeStream:
        self.options.append(conn_options)
        return SegmentStream(self, conn_options=conn_options)

    @property
    def texts(self) -> list[str]:
        return [t for _, t in self.segments]


class SegmentStream(SynthesizeStream):
    async def _run(self) -> None:
        tts: StreamTTS = self._tts
        text = ""
        try:
            async for item in self._input:
                if isinstance(item, str):
                    text += item
                    continue
                await self._speak(text)
                text = ""
            if text:
                await self._speak(text)
        finally:
            tts.cleanup.append(trio.current_time())

    async def _speak(self, text: str) -> None:
        tts: StreamTTS = self._tts
        tts.segments.append((trio.current_time(), text))
        segment_id = f"{tts.name}{len(tts.segments) - 1}"
        await trio.sleep(tts.delay)
        audio = tone(SECONDS_PER_CHAR * len(text), tts.sample_rate)
        if tts.fail_always or len(tts.segments) - 1 == tts.fail_segment:
            if tts.fail_after_audio:
                await self._emit_frame(audio, segment_id=segment_id)
            raise tts.error
        await self._emit_frame(audio, segment_id=segment_id)
        await self._end_segment(segment_id)


async def push_in_pieces(stream, text: str, *, size: int = 3, every: float = 0.1) -> None:
    """Push ``text`` ``size`` characters at a time, piece k at exactly k * every."""
    for k in range(0, len(text), size):
        await trio.sleep_until(k // size * every)
        await stream.push_text(text[k : k + size])


def audio_of(items) -> float:
    return sum(i.frame.duration for i in items if not i.is_final)


# -- StreamAdapter --------------------------------------------------------------------------

TEXT = "Hello there, how are you today? I am fine, thank you very much. Bye now."
SENTENCES = ["Hello there, how are you today?", "I am fine, thank you very much.", "Bye now."]


async def test_stream_adapter_synthesizes_one_sentence_at_a_time(autojump_clock):
    tts = BatchTTS(delay=0.2)
    adapter = StreamAdapter(tts=tts)
    timed = []
    async with adapter.stream() as stream, trio.open_nursery() as nursery:

        async def write():
            await push_in_pieces(stream, TEXT)
            stream.end_input()

        nursery.start_soon(write)
        async for item in stream:
            timed.append((trio.current_time(), item))
    assert tts.texts == SENTENCES
    # "I" (index 32) is what proves the first sentence over; it is in piece 10, pushed at 1.0
    assert tts.requests[0][0] == 1.0
    first_audio = next(t for t, i in timed if not i.is_final)
    assert first_audio == 1.2
    last_push = (len(TEXT) - 1) // 3 * 0.1
    assert first_audio < last_push
    assert [i.is_final for _, i in timed] == [False, False, False, True]
    assert {i.segment_id for _, i in timed} == {"seg_0"}
    assert audio_of(i for _, i in timed) == pytest.approx(
        SECONDS_PER_CHAR * sum(map(len, SENTENCES))
    )


async def test_stream_adapter_one_is_final_per_flushed_segment(autojump_clock):
    tts = BatchTTS(delay=0.0)
    async with StreamAdapter(tts=tts).stream() as stream:
        await stream.push_text("First sentence is here. Second one.")
        await stream.flush()
        await stream.push_text("Third sentence now.")
        await stream.flush()
        await stream.push_text("x")
        stream.end_input()
        items = await stream.collect()
    assert tts.texts == ["First sentence is here.", "Second one.", "Third sentence now.", "x"]
    finals = [i.segment_id for i in items if i.is_final]
    assert finals == ["seg_0", "seg_1", "seg_2"]
    assert [i.segment_id for i in items if not i.is_final] == ["seg_0", "seg_0", "seg_1", "seg_2"]


async def test_stream_adapter_end_input_without_flush_ends_the_segment(autojump_clock):
    tts = BatchTTS(delay=0.0)
    async with StreamAdapter(tts=tts).stream() as stream:
        await stream.push_text("Only text.")
        stream.end_input()
        items = await stream.collect()
    assert [(i.is_final, i.segment_id) for i in items] == [(False, "seg_0"), (True, "seg_0")]


async def test_stream_adapter_flush_then_end_input_ends_the_segment_once(autojump_clock):
    tts = BatchTTS(delay=0.0)
    async with StreamAdapter(tts=tts).stream() as stream:
        await stream.push_text("Only text.")
        await stream.flush()
        stream.end_input()
        items = await stream.collect()
    assert [i.is_final for i in items] == [False, True]


async def test_stream_adapter_with_its_own_tokenizer(autojump_clock):
    tts = BatchTTS(delay=0.0)
    tokenizer = SentenceTokenizer(min_sentence_len=0)
    adapter = StreamAdapter(tts=tts, sentence_tokenizer=tokenizer)
    assert adapter.sentence_tokenizer is tokenizer
    async with adapter.stream() as stream:
        await stream.push_text("Hi. Yes. No.")
        stream.end_input()
        await stream.collect()
    assert tts.texts == ["Hi.", "Yes.", "No."]


async def test_stream_adapter_properties_synthesize_and_metrics(autojump_clock):
    tts = BatchTTS(sample_rate=22050, delay=0.25)
    adapter = StreamAdapter(tts=tts)
    assert adapter.wrapped_tts is tts
    assert adapter.label == "StreamAdapter(batch)"
    assert (adapter.sample_rate, adapter.num_channels) == (22050, 1)
    assert adapter.capabilities.streaming
    assert isinstance(adapter.stream(), StreamAdapterWrapper)
    metrics: list[TTSMetrics] = []
    adapter.on("metrics_collected", metrics.append)
    async with adapter.synthesize("Hello.") as chunked:
        items = await chunked.collect()
    assert [i.is_final for i in items] == [False, True]
    assert [(m.label, m.ttfb, m.characters_count) for m in metrics] == [("batch", 0.25, 6)]


async def test_stream_adapter_retries_a_sentence_then_goes_on(autojump_clock):
    tts = BatchTTS(delay=0.0, failures=1)
    async with StreamAdapter(tts=tts).stream() as stream:
        await stream.push_text("First sentence is here. Second sentence is here.")
        stream.end_input()
        items = await stream.collect()
    assert tts.requests == [
        (0.0, "First sentence is here."),
        (0.5, "First sentence is here."),
        (0.5, "Second sentence is here."),
    ]
    assert [i.is_final for i in items] == [False, False, True]


async def test_stream_adapter_raises_when_a_sentence_fails_for_good(autojump_clock):
    # The sentence used up its retries; the stream must say so, not go on without it.
    tts = BatchTTS(delay=0.0, failures=4)
    async with StreamAdapter(tts=tts).stream() as stream:
        await stream.push_text("First sentence is here. Second sentence is here.")
        stream.end_input()
        with pytest.raises(APIConnectionError, match="batch is down"):
            await stream.collect()
    assert tts.texts == ["First sentence is here."] * 4
    assert trio.current_time() == 0.5 + 1.0 + 2.0


async def test_cancelling_the_stream_adapter_leaves_nothing_running(autojump_clock):
    tts = BatchTTS(hang=True)
    me = trio.lowlevel.current_task()
    with trio.move_on_after(2.0) as scope:
        async with StreamAdapter(tts=tts).stream() as stream:
            await stream.push_text("A first sentence that hangs.")
            stream.end_input()
            await stream.collect()
    assert scope.cancelled_caught
    assert tasks_below(me) == []


def tasks_below(task: trio.lowlevel.Task) -> list[trio.lowlevel.Task]:
    out = []
    for nursery in task.child_nurseries:
        for child in nursery.child_tasks:
            out += [child, *tasks_below(child)]
    return out


# -- FallbackAdapter: synthesize ------------------------------------------------------------


async def test_synthesize_falls_back_before_audio_and_resamples(autojump_clock):
    primary = BatchTTS("primary", sample_rate=24000, failures=100, delay=0.0)
    backup = BatchTTS("backup", sample_rate=16000, delay=0.2)
    adapter = FallbackAdapter([primary, backup])
    assert (adapter.sample_rate, adapter.num_channels) == (24000, 1)
    timed = []
    async with adapter.synthesize("Hello there.") as chunked:
        async for item in chunked:
            timed.append((trio.current_time(), item))
    assert primary.requests == [(0.0, "Hello there."), (0.5, "Hello there.")]
    assert backup.requests == [(0.5, "Hello there.")]
    frames = [i.frame for _, i in timed if not i.is_final]
    assert timed[0][0] == 0.7
    assert {f.sample_rate for f in frames} == {24000}
    assert sum(f.duration for f in frames) == pytest.approx(12 * SECONDS_PER_CHAR, abs=1e-3)
    assert [i.is_final for _, i in timed][-1] is True
    assert sum(i.is_final for _, i in timed) == 1


async def test_synthesize_raises_a_failure_after_audio(autojump_clock):
    primary = BatchTTS("primary", failures=1, fail_after_audio=True)
    backup = BatchTTS("backup")
    got = []
    async with FallbackAdapter([primary, backup]).synthesize("Hello.") as chunked:
        with pytest.raises(APIConnectionError, match="primary is down"):
            async for item in chunked:
                got.append(item.is_final)
    assert got == [False]
    assert backup.requests == []


async def test_synthesize_falls_back_from_a_hanging_primary(autojump_clock):
    # The primary gets its own full turn (10 s timeout, one retry 0.5 s later); the adapter's
    # stream has no idle timeout of its own to cut it short.
    primary = BatchTTS("primary", hang=True)
    backup = BatchTTS("backup", delay=0.2)
    async with FallbackAdapter([primary, backup]).synthesize("Hi.") as chunked:
        items = await chunked.collect()
    assert audio_of(items) == pytest.approx(3 * SECONDS_PER_CHAR)
    assert [t for t, _ in primary.requests] == [0.0, 10.5]
    assert trio.current_time() == 20.5 + 0.2


async def test_synthesize_all_failing_names_each(autojump_clock):
    primary = BatchTTS("primary", failures=100, delay=0.0)
    backup = BatchTTS(
        "backup", failures=100, delay=0.0, error=APIStatusError("401", status_code=401)
    )
    async with FallbackAdapter([primary, backup]).synthesize("Hi.") as chunked:
        with pytest.raises(APIConnectionError, match=r"all TTSs failed: primary is down.*401"):
            await chunked.collect()


async def test_synthesize_same_rate_is_not_resampled(autojump_clock):
    primary = BatchTTS("primary", delay=0.0)
    adapter = FallbackAdapter([primary, BatchTTS("backup")])
    assert adapter.resampler_for(primary) is None
    async with adapter.synthesize("Hello.") as chunked:
        items = await chunked.collect()
    assert items[0].frame == tone(6 * SECONDS_PER_CHAR, 16000)


def test_fallback_construction():
    with pytest.raises(ValueError, match="at least one TTS"):
        FallbackAdapter([])

    class Stereo(BatchTTS):
        @property
        def num_channels(self) -> int:
            return 2

    with pytest.raises(ValueError, match="same num_channels"):
        FallbackAdapter([BatchTTS(), Stereo()])
    batch, streaming = BatchTTS(), StreamTTS("s")
    adapter = FallbackAdapter([batch, streaming])
    assert adapter.capabilities.streaming
    assert isinstance(adapter.pool.models[0], StreamAdapter)
    assert adapter.pool.models[1] is streaming
    assert adapter.tts_conn_options == APIConnectOptions(max_retry=1, timeout=10.0)


# -- FallbackAdapter: streams ---------------------------------------------------------------


async def test_stream_replays_the_unfinished_segment_to_the_backup(autojump_clock):
    primary = StreamTTS("primary", fail_segment=1, error=APIStatusError("401", status_code=401))
    backup = StreamTTS("backup")
    adapter = FallbackAdapter([primary, backup])
    async with adapter.stream() as stream:
        await stream.push_text("Segment one.")
        await stream.flush()
        await stream.push_text("Segment ")
        await stream.push_text("two.")
        await stream.flush()
        await stream.push_text("Three.")
        stream.end_input()
        items = await stream.collect()
    assert primary.texts == ["Segment one.", "Segment two."]
    # only what was not yet spoken goes to the backup: segment two, then three
    assert backup.segments == [(0.2, "Segment two."), (pytest.approx(0.3), "Three.")]
    finals = [i.segment_id for i in items if i.is_final]
    assert finals == ["primary0", "backup0", "backup1"]
    assert audio_of(items) == pytest.approx(
        SECONDS_PER_CHAR * len("Segment one.Segment two.Three.")
    )
    assert adapter.pool.candidates() == [backup]


async def test_stream_replays_text_pushed_before_the_failure(autojump_clock):
    primary = StreamTTS("primary", fail_segment=0, error=APIStatusError("400", status_code=400))
    backup = StreamTTS("backup")
    async with FallbackAdapter([primary, backup]).stream() as stream:
        await push_in_pieces(stream, "Hello there, how are you?")
        stream.end_input()
        items = await stream.collect()
    assert primary.texts == ["Hello there, how are you?"]
    assert backup.texts == ["Hello there, how are you?"]
    assert [i.is_final for i in items] == [False, True]


async def test_stream_retries_the_same_tts_with_the_segment_replayed(autojump_clock):
    # A retryable failure before any audio: the TTS gets its own retry first (0.5 s later)
    # and must hear the whole unfinished segment again, not only the text still to come.
    primary = StreamTTS("primary", fail_segment=0)
    backup = StreamTTS("backup")
    adapter = FallbackAdapter([primary, backup])
    async with adapter.stream() as stream:
        await stream.push_text("Hello there.")
        stream.end_input()
        items = await stream.collect()
    assert primary.segments == [(0.0, "Hello there."), (0.6, "Hello there.")]
    assert backup.segments == []
    assert audio_of(items) == pytest.approx(12 * SECONDS_PER_CHAR)
    assert [i.is_final for i in items] == [False, True]


async def test_stream_falls_back_after_the_retries_of_the_primary(autojump_clock):
    primary = StreamTTS("primary", fail_always=True)
    backup = StreamTTS("backup")
    adapter = FallbackAdapter([primary, backup])
    timed = []
    async with adapter.stream() as stream:
        await stream.push_text("Hi.")
        stream.end_input()
        async for item in stream:
            timed.append((trio.current_time(), item.is_final))
    # primary fails 0.1 s into each try; its retry comes 0.5 s later; then the backup
    assert primary.segments == [(0.0, "Hi."), (pytest.approx(0.6), "Hi.")]
    assert backup.segments == [(pytest.approx(0.7), "Hi.")]
    assert timed == [(pytest.approx(0.8), False), (pytest.approx(0.8), True)]
    # inner streams do not retry by themselves: the adapter does, replaying the text
    assert [o.max_retry for o in primary.options] == [0, 0]
    assert primary.options[0].timeout == adapter.tts_conn_options.timeout


async def test_stream_raises_a_failure_after_audio_of_the_segment(autojump_clock):
    primary = StreamTTS("primary", fail_segment=0, fail_after_audio=True)
    backup = StreamTTS("backup")
    got = []
    async with FallbackAdapter([primary, backup]).stream() as stream:
        await stream.push_text("Hello.")
        stream.end_input()
        with pytest.raises(APIConnectionError, match="primary broke"):
            async for item in stream:
                got.append(item.is_final)
    assert got == [False]
    assert backup.segments == []


async def test_stream_resamples_the_backup_to_the_first_tts_rate(autojump_clock):
    primary = StreamTTS(
        "primary", sample_rate=48000, fail_segment=0, error=APIStatusError("x", status_code=403)
    )
    backup = StreamTTS("backup", sample_rate=22050)
    adapter = FallbackAdapter([primary, backup])
    async with adapter.stream() as stream:
        await stream.push_text("One two three.")
        await stream.flush()
        await stream.push_text("Four five.")
        stream.end_input()
        items = await stream.collect()
    frames = [i.frame for i in items if not i.is_final]
    assert {f.sample_rate for f in frames} == {48000}
    assert {i.frame.sample_rate for i in items if i.is_final} == {48000}
    assert sum(f.duration for f in frames) == pytest.approx(24 * SECONDS_PER_CHAR, abs=2e-3)
    assert [i.segment_id for i in items if i.is_final] == ["backup0", "backup1"]


async def test_stream_falls_back_from_a_batch_tts(autojump_clock):
    primary = BatchTTS("primary", failures=100, delay=0.0)
    backup = StreamTTS("backup")
    async with FallbackAdapter([primary, backup]).stream() as stream:
        await stream.push_text("First sentence is here. Second sentence is here.")
        stream.end_input()
        items = await stream.collect()
    assert primary.texts == ["First sentence is here."] * 2
    assert backup.texts == ["First sentence is here. Second sentence is here."]
    assert [i.is_final for i in items] == [False, True]


async def test_stream_all_failing_raises(autojump_clock):
    primary = StreamTTS("primary", fail_segment=0, error=APIStatusError("p", status_code=400))
    backup = StreamTTS("backup", fail_segment=0, error=APIStatusError("b", status_code=400))
    metrics = []
    adapter = FallbackAdapter([primary, backup])
    adapter.on("metrics_collected", metrics.append)
    async with adapter.stream() as stream:
        await stream.push_text("Hi.")
        stream.end_input()
        with pytest.raises(APIConnectionError, match="all TTSs failed"):
            await stream.collect()
    assert [(m.label, m.cancelled) for m in metrics] == [("primary", True), ("backup", True)]


async def test_cancelling_a_fallback_stream_leaves_nothing_running(autojump_clock):
    primary = StreamTTS("primary", delay=100.0)
    me = trio.lowlevel.current_task()
    with trio.move_on_after(1.0) as scope:
        async with FallbackAdapter([primary]).stream() as stream:
            await stream.push_text("Hi.")
            stream.end_input()
            await stream.collect()
    assert scope.cancelled_caught
    assert primary.cleanup == [1.0]
    assert tasks_below(me) == []


class WarmedTTS(BatchTTS):
    """Records what it was asked to get ready; its ``keep_warm`` runs until cancelled."""

    def __init__(self, name: str) -> None:
        super().__init__(name)
        self.warmed: list[str] = []

    async def prewarm(self) -> None:
        self.warmed.append("prewarm")

    async def keep_warm(self) -> None:
        self.warmed.append("keep_warm")
        await trio.sleep_forever()


async def test_a_fallback_adapter_gets_its_first_tts_ready(autojump_clock):
    primary, backup = WarmedTTS("primary"), WarmedTTS("backup")
    adapter = FallbackAdapter([primary, backup])
    await adapter.prewarm()
    with trio.move_on_after(5.0):
        await adapter.keep_warm()  # as long as the session runs: until cancelled
    assert primary.warmed == ["prewarm", "keep_warm"]
    assert backup.warmed == []  # it speaks only when the first fails


async def test_a_stream_adapter_gets_its_tts_ready(autojump_clock):
    batch = WarmedTTS("batch")
    adapter = StreamAdapter(tts=batch)
    await adapter.prewarm()
    with trio.move_on_after(5.0):
        await adapter.keep_warm()
    assert batch.warmed == ["prewarm", "keep_warm"]


async def test_by_default_keep_warm_prewarms_and_returns():
    class Ready(BatchTTS):
        prewarmed = 0

        async def prewarm(self) -> None:
            self.prewarmed += 1

    tts = Ready()
    await tts.keep_warm()
    assert tts.prewarmed == 1
