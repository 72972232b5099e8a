"""Metrics from the fakes on exact times, usage sums, log lines; io base classes; EventEmitter."""

import logging

import numpy as np
import pytest
import trio

from tvoice._utils import EventEmitter
from tvoice.audio import AudioFrame
from tvoice.io import (
    AudioInput,
    AudioOutput,
    ChannelAudioInput,
    ClockedAudioOutput,
    FileAudioInput,
    Playback,
    PlaybackFinished,
    PlaybackStarted,
    TextOutput,
    render_playbacks,
)
from tvoice.llm import ChatContext
from tvoice.metrics import (
    EOUMetrics,
    LLMMetrics,
    STTMetrics,
    TTSMetrics,
    TurnMetrics,
    UsageCollector,
    UsageSummary,
    VADMetrics,
    log_metrics,
)
from tvoice.testing import Timeline

# -- metrics from the fakes -----------------------------------------------------------------


async def test_llm_metrics_from_fake_llm_are_exact(autojump_clock):
    tl = Timeline()
    tl.llm(input="How are you today?", content="Fine, thanks. And you?", ttft=0.25, duration=1.0)
    tl.start()
    metrics: list[LLMMetrics] = []
    tl.fake_llm.on("metrics_collected", metrics.append)
    await trio.sleep(2.0)
    ctx = ChatContext()
    ctx.add_message(role="user", content="How are you today?")
    async with tl.fake_llm.chat(chat_ctx=ctx) as stream:
        await stream.collect()
    (m,) = metrics
    assert m == LLMMetrics(
        label="tvoice.testing._fake_models.FakeLLM",
        request_id=stream.request_id,
        timestamp=3.0,
        ttft=0.25,
        duration=1.0,
        cancelled=False,
        prompt_tokens=4,  # the words of the request
        completion_tokens=4,  # the pieces of the reply
        total_tokens=8,
        tokens_per_second=4.0,
    )


async def test_llm_metrics_of_a_cancelled_request(autojump_clock):
    tl = Timeline()
    tl.llm(input="Hi", content="A long answer", ttft=0.5, duration=3.0)
    tl.start()
    metrics: list[LLMMetrics] = []
    tl.fake_llm.on("metrics_collected", metrics.append)
    ctx = ChatContext()
    ctx.add_message(role="user", content="Hi")
    with trio.move_on_after(1.0):
        async with tl.fake_llm.chat(chat_ctx=ctx) as stream:
            await stream.collect()
    (m,) = metrics
    assert (m.ttft, m.duration, m.cancelled, m.completion_tokens) == (0.5, 1.0, True, 0)


async def test_tts_metrics_from_fake_tts_are_exact(autojump_clock):
    tl = Timeline()
    tl.tts(input="I'm well.", audio_duration=2.0, ttfb=0.25, duration=0.5)
    tl.start()
    metrics: list[TTSMetrics] = []
    tl.fake_tts.on("metrics_collected", metrics.append)
    async with tl.fake_tts.synthesize("I'm well.") as chunked:
        await chunked.collect()
    async with tl.fake_tts.stream() as stream:
        await stream.push_text("I'm ")
        await trio.sleep(1.0)
        await stream.push_text("well.")
        stream.end_input()
        await stream.collect()
    batch, streamed = metrics
    assert batch == TTSMetrics(
        label="tvoice.testing._fake_models.FakeTTS",
        request_id=chunked.request_id,
        timestamp=0.5,
        ttfb=0.25,
        duration=0.5,
        audio_duration=pytest.approx(2.0),  # a sum of 20 frames
        characters_count=9,
    )
    # streamed: ttfb counts from the first text pushed (at 0.5); the text was complete at 1.5
    assert streamed.streamed
    assert streamed.ttfb == 1.0 + 0.25
    assert streamed.duration == 1.5
    assert streamed.audio_duration == pytest.approx(2.0)
    assert streamed.characters_count == 9


async def test_stt_metrics_from_fake_stt(autojump_clock):
    tl = Timeline()
    tl.user_speech(start=0.5, end=1.0, transcript="Hi")
    tl.start()
    metrics: list[STTMetrics] = []
    tl.fake_stt.on("metrics_collected", metrics.append)
    await trio.sleep(1.5)
    await tl.fake_stt.recognize(AudioFrame.silence(0.75, 16000))
    async with tl.fake_stt.stream() as stream:
        for _ in range(10):
            await stream.push_frame(AudioFrame.silence(0.1, 16000))
        await trio.sleep(2.0)
        stream.end_input()
        await stream.collect()
    batch, streamed = metrics
    assert (batch.timestamp, batch.duration, batch.audio_duration, batch.streamed) == (
        1.5,
        0.0,
        0.75,
        False,
    )
    assert (streamed.duration, streamed.streamed) == (2.0, True)
    assert streamed.audio_duration == pytest.approx(1.0)


# -- usage and logs -------------------------------------------------------------------------

LLM_M = LLMMetrics(label="l", request_id="r", timestamp=1.0, ttft=0.2, duration=0.5,
                   prompt_tokens=10, completion_tokens=5, total_tokens=15)  # fmt: skip
TTS_M = TTSMetrics(label="t", request_id="r", timestamp=1.0, ttfb=0.1, duration=0.4,
                   audio_duration=2.5, characters_count=30)  # fmt: skip
STT_M = STTMetrics(label="s", request_id="r", timestamp=1.0, duration=0.3, audio_duration=1.5)
VAD_M = VADMetrics(label="v", timestamp=1.0, idle_time=0.5, inference_duration_total=0.0125,
                   inference_count=32)  # fmt: skip
EOU_M = EOUMetrics(timestamp=1.0, end_of_utterance_delay=0.5, transcription_delay=0.2)
TURN_M = TurnMetrics(timestamp=1.0, speech_id="speech_1", e2e_latency=1.25, llm_ttft=0.2)


def test_usage_collector_sums_every_kind():
    usage = UsageCollector()
    assert usage.get_summary() == UsageSummary()
    for m in (LLM_M, LLM_M, TTS_M, TTS_M, STT_M, STT_M, VAD_M, EOU_M, TURN_M):
        usage.collect(m)
    assert usage.get_summary() == UsageSummary(
        llm_prompt_tokens=20,
        llm_completion_tokens=10,
        tts_characters_count=60,
        tts_audio_duration=5.0,
        stt_audio_duration=3.0,
    )


async def test_usage_collector_on_metrics_events(autojump_clock):
    tl = Timeline()
    tl.llm(input="Hi", content="Hello there")
    tl.tts(input="Hello there", audio_duration=1.5)
    tl.start()
    usage = UsageCollector()
    tl.fake_llm.on("metrics_collected", usage.collect)
    tl.fake_tts.on("metrics_collected", usage.collect)
    ctx = ChatContext()
    ctx.add_message(role="user", content="Hi")
    async with tl.fake_llm.chat(chat_ctx=ctx) as stream:
        text = "".join(await stream.to_str_iterable())
    async with tl.fake_tts.synthesize(text) as chunked:
        await chunked.collect()
    assert usage.get_summary() == UsageSummary(
        llm_prompt_tokens=1,
        llm_completion_tokens=2,
        tts_characters_count=11,
        tts_audio_duration=pytest.approx(1.5),
    )


@pytest.mark.parametrize(
    ("metrics", "line"),
    [
        (LLM_M, "LLM ttft=0.200s duration=0.500s tokens=10/5"),
        (TTS_M, "TTS ttfb=0.100s duration=0.400s audio=2.500s"),
        (STT_M, "STT duration=0.300s audio=1.500s"),
        (EOU_M, "EOU delay=0.500s transcription_delay=0.200s"),
        (TURN_M, "turn e2e latency=1.250s"),
        (VAD_M, "VAD inference 0.0125s over 32 windows"),
    ],
)
def test_log_metrics_writes_one_line_per_record(caplog, metrics, line):
    with caplog.at_level(logging.INFO, logger="tvoice.metrics"):
        log_metrics(metrics)
    assert [(r.name, r.levelno, r.getMessage()) for r in caplog.records] == [
        ("tvoice.metrics", logging.INFO, line)
    ]


def test_log_metrics_to_a_given_logger(caplog):
    with caplog.at_level(logging.INFO, logger="my.app"):
        log_metrics(STT_M, logger=logging.getLogger("my.app"))
    assert [r.name for r in caplog.records] == ["my.app"]


def test_metric_records_are_frozen_with_their_type_tags():
    assert [m.type for m in (LLM_M, TTS_M, STT_M, VAD_M, EOU_M, TURN_M)] == [
        "llm_metrics",
        "tts_metrics",
        "stt_metrics",
        "vad_metrics",
        "eou_metrics",
        "turn_metrics",
    ]
    with pytest.raises(AttributeError):
        LLM_M.ttft = 1.0
    assert TURN_M.tts_ttfb is None
    assert EOU_M.on_user_turn_completed_delay == 0.0


# -- io -------------------------------------------------------------------------------------


class InstantOutput(AudioOutput):
    """Plays nothing: each flushed segment finishes when the test says so."""

    def __init__(self) -> None:
        super().__init__(sample_rate=24000, label="instant")
        self.captured: list[AudioFrame] = []
        self.cleared = 0

    async def capture_frame(self, frame: AudioFrame) -> None:
        await super().capture_frame(frame)
        self.captured.append(frame)

    def clear_buffer(self) -> None:
        self.cleared += 1
        self.on_playback_finished(playback_position=0.25, interrupted=True)


async def test_wait_for_playout_waits_for_every_segment(autojump_clock):
    out = InstantOutput()
    assert (out.sample_rate, out.label, out.can_pause) == (24000, "instant", True)
    out.pause()  # no-ops in the base class
    out.resume()
    started, finished = [], []
    out.on("playback_started", started.append)
    out.on("playback_finished", finished.append)
    frame = AudioFrame.silence(0.1, 24000)
    for _ in range(2):  # two frames, one segment
        await out.capture_frame(frame)
    out.flush()
    await out.capture_frame(frame)  # a second segment
    out.flush()
    done = []

    async def wait():
        done.append(await out.wait_for_playout())
        done.append(trio.current_time())

    async with trio.open_nursery() as nursery:
        nursery.start_soon(wait)
        await trio.sleep(1.0)
        out.on_playback_started(created_at=trio.current_time())
        out.on_playback_finished(playback_position=0.2, interrupted=False)
        await trio.sleep(1.0)
        assert done == []  # one segment is still playing
        out.on_playback_finished(
            playback_position=0.1, interrupted=False, synchronized_transcript="x"
        )
    assert done[1] == 2.0
    assert done[0].playback_position == 0.1
    assert done[0].synchronized_transcript == "x"
    assert done[0].created_at == 2.0
    assert started == [PlaybackStarted(created_at=1.0)]
    assert [f.playback_position for f in finished] == [0.2, 0.1]


async def test_wait_for_playout_with_nothing_played_returns_at_once(autojump_clock):
    out = InstantOutput()
    finished = await out.wait_for_playout()
    assert finished == PlaybackFinished(playback_position=0.0, interrupted=False, created_at=0.0)
    assert trio.current_time() == 0.0


async def test_a_clear_with_nothing_playing_reports_nothing(autojump_clock):
    out = InstantOutput()
    finished = []
    out.on("playback_finished", finished.append)
    out.clear_buffer()
    assert finished == []
    await out.capture_frame(AudioFrame.silence(0.1, 24000))
    out.clear_buffer()  # the open segment finishes as interrupted
    out.clear_buffer()
    assert [(f.playback_position, f.interrupted) for f in finished] == [(0.25, True)]
    assert (await out.wait_for_playout()).interrupted


async def test_an_unflushed_segment_is_waited_for_too(autojump_clock):
    out = InstantOutput()
    await out.capture_frame(AudioFrame.silence(0.1, 24000))
    with trio.move_on_after(5.0) as scope:
        await out.wait_for_playout()
    assert scope.cancelled_caught


def test_playback_finished_outside_trio_has_time_zero():
    assert PlaybackFinished(playback_position=1.0, interrupted=False).created_at == 0.0


async def test_channel_audio_input_push_close_and_iterate(autojump_clock):
    source = ChannelAudioInput(capacity=2, label="mic")
    assert source.label == "mic"
    assert isinstance(source, AudioInput)
    frames = [AudioFrame.silence(0.01 * (i + 1), 16000) for i in range(5)]
    got = []

    async def consume():
        async for frame in source:
            got.append((trio.current_time(), frame))
            await trio.sleep(1.0)

    async with trio.open_nursery() as nursery:
        nursery.start_soon(consume)
        for frame in frames:
            await source.push(frame)  # waits while the consumer is two frames behind
        pushed_at = trio.current_time()
        source.close()
    assert pushed_at == 2.0
    assert [f for _, f in got] == frames
    assert [t for t, _ in got] == [0.0, 1.0, 2.0, 3.0, 4.0]
    with pytest.raises(trio.ClosedResourceError):
        await source.push(frames[0])


def test_io_base_labels():
    class Text(TextOutput):
        async def capture_text(self, text: str) -> None:
            pass

        def flush(self) -> None:
            pass

    assert Text().label == "text_output"
    assert AudioInput.label == "audio_input"
    assert AudioOutput.__init__.__kwdefaults__["label"] == "audio_output"


# -- EventEmitter ---------------------------------------------------------------------------


def test_event_emitter_on_off_once_and_decorator():
    emitter: EventEmitter[str] = EventEmitter()
    calls = []

    def on_a(*args):
        calls.append(("a", args))

    assert emitter.on("a", on_a) is on_a

    @emitter.on("b")
    def on_b(x):
        calls.append(("b", x))

    emitter.once("a", lambda *args: calls.append(("once", args)))
    emitter.emit("a", 1, 2)
    emitter.emit("a", 3)
    emitter.emit("b", "x")
    emitter.emit("nobody", "listens")
    emitter.off("a", on_a)
    emitter.off("a", on_a)  # twice is fine
    emitter.off("never", on_a)
    emitter.emit("a", 4)
    assert calls == [("a", (1, 2)), ("once", (1, 2)), ("a", (3,)), ("b", "x")]
    assert on_b.__name__ == "on_b"  # the decorator returns the function


def test_event_emitter_logs_a_failing_callback_and_goes_on(caplog):
    emitter: EventEmitter[str] = EventEmitter()
    calls = []

    def broken(x):
        raise ValueError(f"bad {x}")

    emitter.on("e", broken)
    emitter.on("e", calls.append)
    emitter.emit("e", 7)
    assert calls == [7]
    (record,) = caplog.records
    assert record.name == "tvoice"
    assert record.levelno == logging.ERROR
    assert "error in 'e' callback" in record.getMessage()
    assert record.exc_info[0] is ValueError


def test_event_emitter_callback_may_remove_itself_while_emitting():
    emitter: EventEmitter[str] = EventEmitter()
    calls = []

    def first(x):
        calls.append(("first", x))
        emitter.off("e", first)

    emitter.on("e", first)
    emitter.on("e", lambda x: calls.append(("second", x)))
    emitter.emit("e", 1)
    emitter.emit("e", 2)
    assert calls == [("first", 1), ("second", 1), ("second", 2)]


# -- file input, clocked output -------------------------------------------------------------


def tone(duration: float, rate: int = 16000) -> AudioFrame:
    return AudioFrame(np.full(round(duration * rate), 1000, np.int16), rate)


async def test_file_audio_input_paces_frames_like_a_microphone(autojump_clock):
    source = FileAudioInput(tone(0.05), frame_duration=0.02)
    assert source.label == "file_audio_input"
    await trio.sleep(1.0)
    got = []
    async for frame in source:
        got.append((trio.current_time(), int(np.abs(frame.data).max()), frame.duration))
        if len(got) == 5:
            break
    assert source.started_at == 1.0
    # three frames of the file (the last one padded), then silence: a call goes on
    assert got == [
        (1.02, 1000, 0.02),
        (1.04, 1000, 0.02),
        (pytest.approx(1.06), 1000, 0.02),
        (1.08, 0, 0.02),
        (1.1, 0, 0.02),
    ]
    assert source.finished.is_set()


async def test_file_audio_input_can_end_with_the_file(autojump_clock):
    source = FileAudioInput(tone(0.04), frame_duration=0.02, then_silence=False)
    frames = [frame async for frame in source]
    assert len(frames) == 2
    assert source.finished.is_set()
    assert trio.current_time() == pytest.approx(0.04)  # ends with the last frame


async def test_clocked_output_position_and_playing(autojump_clock):
    out = ClockedAudioOutput(keep_audio=True)
    async with trio.open_nursery() as nursery:
        await nursery.start(out.run)
        assert not out.playing
        await out.capture_frame(tone(2.0, 24000))
        out.flush()
        await trio.sleep(0.5)
        assert out.playing
        assert out.position() == 0.5
        await out.wait_for_playout()
        assert not out.playing
        nursery.cancel_scope.cancel()
    # rendering skips audio outside the window, and playbacks recorded without audio
    heard = render_playbacks(
        [*out.playbacks, Playback(0.0, 1.0, False)], origin=5.0, sample_rate=8000, length=1.0
    )
    assert not heard.any()
