"""The Silero VAD plugin on real speech (espeak-ng) and the real ONNX model."""

import importlib.util
import logging
import tracemalloc
from pathlib import Path

import numpy as np
import onnxruntime
import pytest
import trio
import trio.testing

from tvoice import APIError
from tvoice.audio import AudioChunker, AudioFrame
from tvoice.metrics import VADMetrics
from tvoice.testing import check_vad
from tvoice.vad import VADEvent, VADEventType
from tvoice_plugins import silero

from ..conftest import QUESTION

START, DONE, END = (
    VADEventType.START_OF_SPEECH,
    VADEventType.INFERENCE_DONE,
    VADEventType.END_OF_SPEECH,
)


# -- helpers ------------------------------------------------------------------------------------


def frames_of(audio: AudioFrame, duration: float = 0.02) -> list[AudioFrame]:
    chunker = AudioChunker(audio.sample_rate, audio.num_channels, frame_duration=duration)
    return chunker.push(audio) + chunker.flush(pad=True)


def silence(seconds: float, rate: int = 16000) -> np.ndarray:
    return np.zeros(round(seconds * rate), np.int16)


def mono(*parts: np.ndarray, rate: int = 16000) -> AudioFrame:
    return AudioFrame(np.concatenate(parts), rate)


def samples(frame: AudioFrame) -> np.ndarray:
    return frame.data[:, 0]


def voiced_length(frame: AudioFrame) -> float:
    """Seconds from the first to the last clearly audible sample."""
    level = np.abs(samples(frame).astype(np.int32))
    loud = np.flatnonzero(level > 0.02 * level.max())
    return (loud[-1] - loud[0]) / frame.sample_rate


async def collect(vad: silero.VAD, audio: AudioFrame, duration: float = 0.02) -> list[VADEvent]:
    async with vad.stream() as stream, trio.open_nursery() as nursery:

        async def push() -> None:
            for frame in frames_of(audio, duration):
                await stream.push_frame(frame)
            stream.end_input()

        nursery.start_soon(push)
        return await stream.collect()


async def lockstep(vad: silero.VAD, audio: AudioFrame) -> list[tuple[float, VADEvent]]:
    """Push 20 ms at a time and let the VAD catch up after each frame: each event comes with
    the seconds of audio pushed when it arrived."""
    got: list[tuple[float, VADEvent]] = []
    pushed = 0.0
    async with vad.stream() as stream, trio.open_nursery() as nursery:

        async def read() -> None:
            async for event in stream:
                got.append((pushed, event))

        nursery.start_soon(read)
        for frame in frames_of(audio):
            await stream.push_frame(frame)
            pushed += frame.duration
            await trio.testing.wait_all_tasks_blocked()
        stream.end_input()
    return got


def boundaries(events: list[VADEvent]) -> list[VADEvent]:
    return [e for e in events if e.type != DONE]


# -- conformance --------------------------------------------------------------------------------


async def test_conformance_16k(question_audio):
    await check_vad(silero.VAD(), question_audio)


@pytest.mark.parametrize("model_rate", [8000, 16000])
async def test_conformance_8k_input(speak, model_rate):
    await check_vad(silero.VAD(sample_rate=model_rate), speak(QUESTION, 8000))


async def test_conformance_48k_stereo(speak):
    audio = speak(QUESTION, 48000)
    stereo = AudioFrame(np.repeat(audio.data, 2, axis=1), 48000, 2)
    await check_vad(silero.VAD(), stereo)


def test_capabilities():
    assert silero.VAD().capabilities.update_interval == 0.032
    assert silero.VAD(sample_rate=8000).capabilities.update_interval == 0.032
    assert silero.VAD().label == "silero.VAD"


# -- speech boundaries --------------------------------------------------------------------------


async def test_one_utterance_boundaries(question_audio):
    audio = mono(silence(1.0), samples(question_audio), silence(1.0))
    got = await lockstep(silero.VAD.load(), audio)
    marks = [(pushed, e) for pushed, e in got if e.type != DONE]
    assert [e.type for _, e in marks] == [START, END]
    (start_pushed, start), (end_pushed, end) = marks
    assert 0.9 <= start_pushed <= 1.4
    assert 0.9 <= start.samples_index / 16000 <= start_pushed
    assert start.speaking
    assert start.speech_duration >= 0.05
    assert abs(end.speech_duration - voiced_length(question_audio)) <= 0.4
    assert 0.55 <= end.silence_duration < 0.65
    # The end is reported once the silence is long enough, not when the input ends.
    assert end_pushed < audio.duration
    assert not end.speaking
    assert end.timestamp >= start.timestamp


async def test_two_utterances_two_pairs(question_audio, speak):
    second = speak("Thank you very much.")
    audio = mono(silence(1.0), samples(question_audio), silence(1.5), samples(second), silence(1.0))
    events = boundaries(await collect(silero.VAD.load(), audio))
    assert [e.type for e in events] == [START, END, START, END]
    second_start = 1.0 + question_audio.duration + 1.5
    assert second_start <= events[2].samples_index / 16000 <= second_start + 0.4


@pytest.mark.parametrize("kind", ["silence", "noise"])
async def test_no_speech_no_events(kind):
    if kind == "silence":
        audio = mono(silence(5.0))
    else:
        noise = np.random.default_rng(7).integers(-100, 101, 5 * 16000).astype(np.int16)
        audio = mono(noise)
    events = await collect(silero.VAD.load(), audio)
    assert not boundaries(events)
    done = [e for e in events if e.type == DONE]
    assert len(done) == 5 * 16000 // 512
    assert max(e.probability for e in done) < 0.5


async def test_end_of_input_ends_ongoing_speech(question_audio):
    cut = samples(question_audio)[: len(samples(question_audio)) // 2]
    events = boundaries(await collect(silero.VAD.load(), mono(silence(0.5), cut)))
    assert [e.type for e in events] == [START, END]
    assert events[1].frames
    assert events[1].silence_duration < 0.55


# -- the speech audio ---------------------------------------------------------------------------


@pytest.mark.parametrize(("rate", "channels"), [(16000, 1), (8000, 1), (48000, 2)])
async def test_end_of_speech_frames_hold_the_speech(speak, rate, channels):
    speech = speak(QUESTION, rate)
    data = np.concatenate([silence(1.0, rate), samples(speech), silence(1.0, rate)])
    audio = AudioFrame(np.repeat(data[:, None], channels, axis=1), rate, channels)
    end = next(e for e in await collect(silero.VAD(), audio) if e.type == END)
    (frame,) = end.frames
    assert (frame.sample_rate, frame.num_channels) == (rate, channels)
    # The speech, plus the prefix padding before it (durations are whole 32 ms windows).
    assert abs(frame.duration - (end.speech_duration + 0.5)) < 0.002
    kept = np.sum(frame.data[:, 0].astype(np.float64) ** 2)
    spoken = np.sum(samples(speech).astype(np.float64) ** 2)
    assert kept >= 0.97 * spoken


async def test_prefix_padding_and_max_buffered_speech(question_audio, caplog):
    audio = mono(silence(1.0), samples(question_audio), silence(1.0))
    vad = silero.VAD(prefix_padding_duration=0.2, max_buffered_speech=0.5)
    with caplog.at_level(logging.WARNING, logger="tvoice_plugins.silero"):
        end = next(e for e in await collect(vad, audio) if e.type == END)
    assert end.speech_duration > 1.0
    assert end.frames[0].duration == pytest.approx(0.2 + 0.5, abs=1 / 16000)
    assert "max_buffered_speech" in caplog.text


async def test_frame_size_does_not_matter(question_audio):
    audio = mono(silence(1.0), samples(question_audio), silence(1.0))
    vad = silero.VAD.load()

    def marks(events: list[VADEvent]) -> list[tuple[VADEventType, int, float]]:
        return [(e.type, e.samples_index, e.speech_duration) for e in boundaries(events)]

    reference = await collect(vad, audio)
    assert marks(await collect(vad, audio, duration=0.007)) == marks(reference)
    whole = await collect(vad, audio, duration=audio.duration)
    assert marks(whole) == marks(reference)
    # One pushed frame, one INFERENCE_DONE for all the windows it completes.
    assert [e.type for e in whole] == [START, END, DONE]
    assert whole[-1].samples_index == len(samples(audio)) // 512 * 512


async def test_inference_done_cadence(question_audio):
    events = await collect(silero.VAD.load(), question_audio)
    done = [e for e in events if e.type == DONE]
    indexes = [e.samples_index for e in done]
    # 20 ms frames: each INFERENCE_DONE covers the one 32 ms window its frame completed.
    assert indexes == list(range(512, indexes[-1] + 1, 512))
    assert all(0 < e.inference_duration < 0.1 for e in done)
    assert all(0.0 <= e.probability <= 1.0 for e in done)


async def test_metrics_about_once_per_second(question_audio):
    vad = silero.VAD.load()
    metrics: list[VADMetrics] = []
    vad.on("metrics_collected", metrics.append)
    audio = mono(silence(1.0), samples(question_audio), silence(1.0))
    await collect(vad, audio)
    # A record per 32 windows (1.024 s), then the rest at the end of the input.
    windows = sum(f.samples_per_channel for f in frames_of(audio)) // 512
    assert [m.inference_count for m in metrics] == [32] * (windows // 32) + [windows % 32]
    assert all(m.label == "silero.VAD" and m.inference_duration_total > 0 for m in metrics)
    assert all(m.idle_time >= 0 for m in metrics)


# -- one session, independent streams -----------------------------------------------------------


async def test_session_is_shared(question_audio):
    a, b = silero.VAD.load(), silero.VAD.load(activation_threshold=0.6)
    assert a.model is b.model is silero.load_model()
    assert a.model is not None
    assert a.model.session is b.model.session
    lazy = silero.VAD()
    assert lazy.model is None
    await collect(lazy, question_audio)
    assert lazy.model is a.model


def test_16k_windows_run_on_the_sequence_export_with_the_same_probabilities(question_audio):
    # The package ships the same network exported for 16 kHz sequences; it scores a window for
    # about a fifth less CPU. It must score exactly what silero_vad.onnx scores, one window per
    # call (20 ms frames) or many (a long block), and carry the state across calls.
    model = silero.load_model()
    if len(model.sessions) == 1:
        pytest.skip("this silero-vad release has no silero_vad_16k_sequence.onnx")
    assert model.sessions[0] is model.session
    assert [i.name for i in model.sessions[1].get_inputs()] == ["input", "h", "c"]
    pcm = samples(mono(silence(0.3), samples(question_audio), silence(0.5)))
    audio = (pcm / 32768).astype(np.float32)
    expected, state, rate = [], np.zeros((2, 1, 128), np.float32), np.array(16000, np.int64)
    padded = np.concatenate((np.zeros(64, np.float32), audio))
    for start in range(0, len(audio) - 511, 512):
        window = padded[start : start + 576].reshape(1, 576)
        output, state = model.session.run(None, {"input": window, "state": state, "sr": rate})
        expected.append(float(output[0, 0]))
    framed = model.inference(16000)
    got = [p for start in range(0, len(audio), 320) for p in framed.run(audio[start : start + 320])]
    assert got == expected
    assert max(got) > 0.9 > 0.1 > min(got)  # it heard speech and silence
    as_pcm = model.inference(16000)  # int16 frames are scaled as they are copied in
    assert [
        p for start in range(0, len(pcm), 320) for p in as_pcm.run(pcm[start : start + 320])
    ] == expected
    blocks = model.inference(16000)
    half = len(audio) // 2 + 100  # not on a window boundary
    assert blocks.run(audio[:half]) + blocks.run(audio[half:]) == expected
    assert len(blocks.run(audio[:0])) == 0


def test_a_stream_does_not_keep_the_buffer_of_a_long_block():
    # A file pushed whole is scored in one go; its float copy goes with it.
    inference = silero.load_model().inference(16000)
    tracemalloc.start()
    try:
        before = tracemalloc.get_traced_memory()[0]
        assert len(inference.run(np.zeros(160_000, np.int16))) == 312  # 10 s: 640 KB as floats
        kept = tracemalloc.get_traced_memory()[0] - before
    finally:
        tracemalloc.stop()
    assert kept < 20_000
    assert len(inference.run(np.zeros(320, np.int16))) == 1  # and it goes on from there


def test_8k_windows_and_a_lone_model_file_run_on_the_file(tmp_path):
    model = silero.load_model()
    assert model.inference(8000).run(np.zeros(288, np.float32)) == pytest.approx([0.0], abs=0.1)
    copy = tmp_path / "silero_vad.onnx"  # no sequence export beside it
    copy.write_bytes(Path(silero.default_model_path()).read_bytes())
    alone = silero.load_model(copy)
    assert alone.sessions == (alone.session,)
    assert len(alone.inference(16000).run(np.zeros(1024, np.float32))) == 2


def test_session_runs_on_the_calling_thread_without_spinning(tmp_path):
    # A worker runs many sessions' streams on one core: a pool thread would only add hand-offs,
    # and one left spinning between windows burns the core the other sessions need (measured:
    # onnxruntime's defaults cost 19-32 ms of CPU per 32 ms window, ours 0.5-0.7 ms; see
    # bench/results/onnxruntime.md). These options are set explicitly, not left to defaults.
    for session in silero.load_model().sessions:
        options = session.get_session_options()
        assert options.intra_op_num_threads == 1
        assert options.inter_op_num_threads == 1
        assert options.execution_mode == onnxruntime.ExecutionMode.ORT_SEQUENTIAL
        assert options.get_session_config_entry("session.intra_op.allow_spinning") == "0"
        assert options.get_session_config_entry("session.inter_op.allow_spinning") == "0"
    tasks = Path("/proc/self/task")
    if not tasks.is_dir():
        return
    copy = tmp_path / "silero_vad.onnx"  # another file: a session of its own
    copy.write_bytes(Path(silero.default_model_path()).read_bytes())
    before = {t.name for t in tasks.iterdir()}
    model = silero.load_model(copy)
    model.inference(16000).run(np.zeros(2048, np.float32))
    assert {t.name for t in tasks.iterdir()} - before == set()  # no thread of its own


async def test_streams_are_independent(question_audio):
    speech = samples(question_audio)
    early = mono(silence(0.5), speech, silence(2.0))
    late = mono(silence(2.0), speech, silence(0.5))
    vad = silero.VAD.load()
    alone = [await collect(vad, early), await collect(vad, late)]

    together: list[list[VADEvent]] = [[], []]
    async with vad.stream() as one, vad.stream() as two, trio.open_nursery() as nursery:
        for stream, out in ((one, together[0]), (two, together[1])):
            nursery.start_soon(lambda s=stream, o=out: _read_into(s, o))
        for f1, f2 in zip(frames_of(early), frames_of(late), strict=True):
            await one.push_frame(f1)
            await two.push_frame(f2)
        one.end_input()
        two.end_input()

    def marks(events: list[VADEvent]) -> list[tuple[VADEventType, int, float]]:
        return [(e.type, e.samples_index, e.probability) for e in events]

    assert marks(together[0]) == marks(alone[0])
    assert marks(together[1]) == marks(alone[1])
    starts = [next(e for e in out if e.type == START).samples_index / 16000 for out in together]
    assert 0.5 <= starts[0] <= 0.8
    assert 2.0 <= starts[1] <= 2.3


async def _read_into(stream, out: list[VADEvent]) -> None:
    async for event in stream:
        out.append(event)


async def test_the_detector_gives_what_the_stream_gives(question_audio):
    # A session runs the detector in its listening task: it must hear what a stream hears.
    audio = mono(silence(1.0), samples(question_audio), silence(1.0))
    vad = silero.VAD.load()
    detector = await vad.detector()
    inline = [e for f in frames_of(audio) for e in detector.push_frame(f)] + detector.flush()

    def marks(events: list[VADEvent]) -> list[tuple[VADEventType, int, float, float, int]]:
        return [
            (e.type, e.samples_index, e.probability, e.speech_duration, len(e.frames))
            for e in events
        ]

    assert marks(inline) == marks(await collect(vad, audio))
    assert {START, END} <= {e.type for e in inline}
    with pytest.raises(ValueError, match="one audio format"):
        detector.push_frame(AudioFrame.silence(0.02, 8000))
    with pytest.raises(TypeError, match="AudioFrame"):
        detector.push_frame(np.zeros(160, np.int16))  # type: ignore[arg-type]


async def test_a_detector_loads_the_model_off_the_loop():
    lazy = silero.VAD()
    detector = await lazy.detector()
    assert lazy.model is silero.load_model()
    assert detector.flush() == []


# -- bad input and errors -----------------------------------------------------------------------


def test_a_float_frame_cannot_exist():
    with pytest.raises(TypeError, match="int16"):
        AudioFrame(np.zeros(160, np.float32), 16000)


async def test_pushing_a_non_frame_raises_type_error():
    async with silero.VAD.load().stream() as stream:
        with pytest.raises(TypeError, match="AudioFrame"):
            await stream.push_frame(np.zeros(160, np.int16))  # type: ignore[arg-type]


async def test_one_format_per_stream():
    async with silero.VAD.load().stream() as stream:
        await stream.push_frame(AudioFrame.silence(0.02, 16000))
        with pytest.raises(ValueError, match="one audio format"):
            await stream.push_frame(AudioFrame.silence(0.02, 48000))


@pytest.mark.parametrize(
    "options",
    [
        {"sample_rate": 44100},
        {"sample_rate": 48000},
        {"activation_threshold": 0.0},
        {"activation_threshold": 1.5},
        {"deactivation_threshold": 0.7},
        {"min_silence_duration": -1.0},
        {"prefix_padding_duration": float("nan")},
        {"max_buffered_speech": 0.0},
    ],
)
def test_bad_options_raise_value_error(options):
    with pytest.raises(ValueError, match=next(iter(options))[:10]):
        silero.VAD(**options)


def test_options_defaults():
    options = silero.VAD(activation_threshold=0.6).options
    assert options.deactivation_threshold == pytest.approx(0.45)
    assert silero.VAD(activation_threshold=0.1).options.deactivation_threshold == 0.01
    assert silero.VADOptions(deactivation_threshold=0.2).deactivation_threshold == 0.2


@pytest.fixture
def no_silero_package(monkeypatch):
    real = importlib.util.find_spec

    def find_spec(name, package=None):
        return None if name == "silero_vad" else real(name, package)

    monkeypatch.setattr(importlib.util, "find_spec", find_spec)


def test_missing_model_load_raises_api_error(no_silero_package):
    with pytest.raises(APIError, match=r"silero_vad\.onnx not found: pip install --no-deps") as e:
        silero.VAD.load()
    assert not e.value.retryable


async def test_missing_model_surfaces_from_the_stream(no_silero_package):
    async with silero.VAD().stream() as stream:
        await stream.push_frame(AudioFrame.silence(0.02, 16000))
        stream.end_input()
        with pytest.raises(APIError, match=r"silero_vad\.onnx not found") as e:
            await stream.collect()
    assert not e.value.retryable


def test_package_without_the_model_file(monkeypatch, tmp_path):
    spec = importlib.util.spec_from_file_location(
        "silero_vad", tmp_path / "__init__.py", submodule_search_locations=[str(tmp_path)]
    )
    real = importlib.util.find_spec
    monkeypatch.setattr(
        importlib.util, "find_spec", lambda n, p=None: spec if n == "silero_vad" else real(n, p)
    )
    with pytest.raises(APIError, match=r"silero_vad\.onnx not found"):
        silero.default_model_path()


def test_bad_model_files(tmp_path):
    with pytest.raises(APIError, match="model not found") as e:
        silero.load_model(tmp_path / "nothing.onnx")
    assert not e.value.retryable
    garbage = tmp_path / "garbage.onnx"
    garbage.write_bytes(b"not a model")
    with pytest.raises(APIError, match="cannot load the Silero VAD model") as e:
        silero.load_model(garbage)
    assert not e.value.retryable


async def test_inference_failure_is_a_non_retryable_api_error():
    # A real onnxruntime failure: this variant of the model has no `sr` input.
    other = Path(silero.default_model_path()).with_name("silero_vad_half.onnx")
    if not other.is_file():
        pytest.skip("this silero-vad release has no silero_vad_half.onnx")
    vad = silero.VAD.load(model_path=other)
    async with vad.stream() as stream:
        await stream.push_frame(AudioFrame.silence(0.1, 16000))
        stream.end_input()
        with pytest.raises(APIError, match="Silero VAD inference failed") as e:
            await stream.collect()
    assert not e.value.retryable
