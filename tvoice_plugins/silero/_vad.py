"""`silero.VAD`: Silero voice activity detection on onnxruntime, one core, no network."""

from __future__ import annotations

import logging
import math
import os
import time
from collections import deque
from typing import Any

import attrs
import numpy as np
import trio

from tvoice import vad
from tvoice.audio import AudioFrame, AudioResampler, Int16Array
from tvoice.metrics import VADMetrics

from ._onnx import SUPPORTED_RATES, SileroModel, WindowInference, load_model

__all__ = ["VAD", "VADOptions"]

logger = logging.getLogger("tvoice_plugins.silero")
_EventType = vad.VADEventType
# How much audio one VADMetrics record covers.
_METRICS_PERIOD = 1.0


def _default_deactivation(options: VADOptions) -> float:
    # Never 0: silence scores about 0.01, and a threshold it cannot fall below ends no speech.
    return max(options.activation_threshold - 0.15, 0.01)


def _check_options(options: VADOptions) -> None:
    if options.sample_rate not in SUPPORTED_RATES:
        raise ValueError(
            f"Silero VAD runs at 8000 or 16000 Hz, not {options.sample_rate} "
            "(audio at any other rate is resampled to sample_rate)"
        )
    if not 0.0 < options.activation_threshold <= 1.0:
        raise ValueError(
            f"activation_threshold must be in (0, 1], got {options.activation_threshold}"
        )
    if not 0.0 < options.deactivation_threshold <= options.activation_threshold:
        raise ValueError(
            f"deactivation_threshold must be in (0, activation_threshold], "
            f"got {options.deactivation_threshold}"
        )
    for name in ("min_speech_duration", "min_silence_duration", "prefix_padding_duration"):
        value = getattr(options, name)
        if not (math.isfinite(value) and value >= 0):
            raise ValueError(f"{name} must be a non-negative number of seconds, got {value}")
    if not (math.isfinite(options.max_buffered_speech) and options.max_buffered_speech > 0):
        raise ValueError(f"max_buffered_speech must be positive, got {options.max_buffered_speech}")


@attrs.frozen(kw_only=True)
class VADOptions:
    """Settings of a :class:`VAD`; see its docstring. Validated at construction (ValueError)."""

    sample_rate: int = 16000
    activation_threshold: float = 0.5
    deactivation_threshold: float = attrs.field(
        default=attrs.Factory(_default_deactivation, takes_self=True)
    )
    min_speech_duration: float = 0.05
    min_silence_duration: float = 0.55
    prefix_padding_duration: float = 0.5
    max_buffered_speech: float = 60.0

    def __attrs_post_init__(self) -> None:
        _check_options(self)


class VAD(vad.VAD):
    """Silero VAD (v5/v6 ONNX model from the ``silero-vad`` package) on onnxruntime.

    ``sample_rate`` is the model's rate, 8000 or 16000; streams take frames at any rate and
    channel count (stereo is downmixed, other rates are resampled) and hand back speech audio at
    the rate it was pushed. The model scores windows of 32 ms; speech starts after
    ``min_speech_duration`` of windows scoring at least ``activation_threshold``, and ends after
    ``min_silence_duration`` below ``deactivation_threshold`` (default: 0.15 below the
    activation threshold). END_OF_SPEECH carries the speech with ``prefix_padding_duration`` of
    audio before it, at most ``max_buffered_speech`` seconds of it (the beginning is kept).

    Events: INFERENCE_DONE once per pushed frame that completes at least one window (so about
    every 32 ms with the usual 10-30 ms frames; a frame of several windows gets one event for
    all of them, saving task switches), with the last window's ``probability``. START_OF_SPEECH
    and END_OF_SPEECH come before the INFERENCE_DONE of the same frame. ``samples_index``
    counts input samples (per channel, at the input's rate) up to the end of the last window
    scored; ``speech_duration`` runs from the first to the last speech window, trailing silence
    excluded; ``inference_duration`` is the CPU cost of the frame's model calls. At the end of
    the input an ongoing speech ends. ``metrics_collected`` gets a
    :class:`tvoice.metrics.VADMetrics` per 32 windows (1.024 s of audio) and one at the end.

    :meth:`detector` gives the same detection to run in the caller's task (a session runs it in
    the task that reads the user's audio: a window costs about 0.1 ms). The model is loaded by
    the first stream or detector (off the event loop), or now by :meth:`load`. One onnxruntime
    session per model file serves every VAD, stream and detector of the process, on one core.
    A missing model raises ``tvoice.APIError(retryable=False)``.
    """

    def __init__(
        self,
        *,
        sample_rate: int = 16000,
        activation_threshold: float = 0.5,
        deactivation_threshold: float | None = None,
        min_speech_duration: float = 0.05,
        min_silence_duration: float = 0.55,
        prefix_padding_duration: float = 0.5,
        max_buffered_speech: float = 60.0,
        model_path: str | os.PathLike[str] | None = None,
    ) -> None:
        options = VADOptions(
            sample_rate=sample_rate,
            activation_threshold=activation_threshold,
            min_speech_duration=min_speech_duration,
            min_silence_duration=min_silence_duration,
            prefix_padding_duration=prefix_padding_duration,
            max_buffered_speech=max_buffered_speech,
        )
        if deactivation_threshold is not None:
            options = attrs.evolve(options, deactivation_threshold=deactivation_threshold)
        window = 512 if sample_rate == 16000 else 256
        super().__init__(capabilities=vad.VADCapabilities(update_interval=window / sample_rate))
        self._options = options
        self._model_path = model_path
        self._model: SileroModel | None = None

    @classmethod
    def load(cls, **options: Any) -> VAD:
        """A VAD (same options as the constructor) whose model is loaded now (blocking):
        call it from a worker's prewarm."""
        self = cls(**options)
        self._model = load_model(self._model_path)
        return self

    @property
    def options(self) -> VADOptions:
        """The settings of this VAD."""
        return self._options

    @property
    def model(self) -> SileroModel | None:
        """The shared model, or None until :meth:`load` or a first stream loaded it."""
        return self._model

    @property
    def label(self) -> str:
        return "silero.VAD"

    def stream(self) -> vad.VADStream:
        """A new stream with its own model state; the session is shared."""
        return _SileroStream(self)

    async def detector(self) -> vad.VADDetector:
        """A new detector with its own model state, run in the caller's task (a window
        costs about 0.1 ms). Loads the model first if no stream or :meth:`load` has."""
        if self._model is None:
            # Loading reads and optimises the model for tens of milliseconds: not on the loop.
            self._model = await trio.to_thread.run_sync(load_model, self._model_path)
        return _SileroDetector(self, self._model)


def _check_format(so_far: tuple[int, int] | None, frame: AudioFrame) -> tuple[int, int]:
    """The format of the frames of one stream or detector: its first frame's."""
    if not isinstance(frame, AudioFrame):
        raise TypeError(f"push_frame expects an AudioFrame, got {type(frame).__name__}")
    fmt = (frame.sample_rate, frame.num_channels)
    if so_far is not None and fmt != so_far:
        raise ValueError(
            f"a VAD stream takes one audio format: {so_far[0]} Hz "
            f"x{so_far[1]} so far, then {fmt[0]} Hz x{fmt[1]}"
        )
    return fmt


class _SileroStream(vad.VADStream):
    """The detector in the stream's task: a wrong frame is refused as it is pushed."""

    def __init__(self, vad_: VAD) -> None:
        super().__init__(vad_)
        self._silero = vad_
        self._format: tuple[int, int] | None = None

    async def push_frame(self, frame: AudioFrame) -> None:
        self._format = _check_format(self._format, frame)
        await super().push_frame(frame)

    async def _run(self) -> None:
        detector = await self._silero.detector()
        async for frame in self._input:
            for event in detector.push_frame(frame):
                await self._emit(event)
        for event in detector.flush():
            await self._emit(event)


class _SileroDetector(vad.VADDetector):
    """The detection of one source; what depends on the audio format is made at its first
    frame."""

    __slots__ = ("_core", "_format", "_model", "_vad")

    def __init__(self, vad_: VAD, model: SileroModel) -> None:
        self._vad = vad_
        self._model = model
        self._format: tuple[int, int] | None = None
        self._core: _Detector | None = None

    def push_frame(self, frame: AudioFrame) -> list[vad.VADEvent]:
        self._format = _check_format(self._format, frame)
        core = self._core
        if core is None:
            core = self._core = _Detector(self._vad, self._model, frame)
        return core.push(frame)

    def flush(self) -> list[vad.VADEvent]:
        return [] if self._core is None else self._core.finish()


class _Gap:
    """Input samples the history skipped (past ``max_buffered_speech``): a length, no audio."""

    __slots__ = ("n",)

    def __init__(self, n: int) -> None:
        self.n = n

    def __len__(self) -> int:
        return self.n


class _History:
    """The input audio an END_OF_SPEECH may need: consecutive chunks from input sample
    ``_first`` on. A chunk is the pushed array itself (or its start, at the buffering limit),
    so an idle stream holds its padding's frames and nothing more per frame."""

    __slots__ = ("_chunks", "_first", "_stored", "end")

    def __init__(self) -> None:
        self._chunks: deque[Int16Array | _Gap] = deque()
        self._first = 0  # input index of the first chunk
        self._stored = 0  # input index past the last chunk
        self.end = 0

    def append(self, data: Int16Array, limit: float) -> None:
        """Add the next input samples, keeping only those before index ``limit``."""
        start, self.end = self.end, self.end + len(data)
        if start >= limit:
            return
        if not self._chunks:
            self._first = start
        elif start > self._stored:
            self._chunks.append(_Gap(start - self._stored))
        kept = data if self.end <= limit else data[: int(limit) - start]
        self._chunks.append(kept)
        self._stored = start + len(kept)

    def forget_before(self, index: int) -> None:
        chunks = self._chunks
        while chunks and self._first + len(chunks[0]) <= index:
            self._first += len(chunks.popleft())

    def audio(self, start: int, end: int) -> list[Int16Array]:
        out: list[Int16Array] = []
        at = self._first
        for data in self._chunks:
            n = len(data)
            if at < end and at + n > start and not isinstance(data, _Gap):
                out.append(data[max(start - at, 0) : end - at])
            at += n
        return out


class _Detector:
    """One stream's detection: input conversion, inference and the speech state machine.

    Works per pushed frame: the frame is converted to mono float at the model's rate in a few
    numpy calls, every window it completes is scored, and the windows' probabilities drive the
    state machine (a handful of comparisons each). Positions are counted in samples at the
    model's rate; ``samples_index`` and the speech audio are at the input's rate.
    """

    def __init__(self, owner: VAD, model: SileroModel, first: AudioFrame) -> None:
        opts = owner.options
        self._vad = owner
        self._rate = opts.sample_rate
        self._inference: WindowInference = model.inference(opts.sample_rate)
        window = self._inference.window
        self._window_s = window / self._rate
        self._activation = opts.activation_threshold
        self._deactivation = opts.deactivation_threshold
        # Durations become whole windows once, so the per-window work is integer comparisons.
        self._min_speech = max(1, math.ceil(opts.min_speech_duration / self._window_s - 1e-9))
        self._min_silence = max(1, math.ceil(opts.min_silence_duration / self._window_s - 1e-9))
        self._in_rate, self._channels = first.sample_rate, first.num_channels
        self._resampler: AudioResampler | None = None
        if self._in_rate != self._rate:
            self._resampler = AudioResampler(self._in_rate, self._rate)
        self._prefix = round(opts.prefix_padding_duration * self._in_rate)
        self._max_speech = round(opts.max_buffered_speech * self._in_rate)
        self._history = _History()
        self._limit = math.inf  # input index past which speech audio is not kept

        self._processed = 0  # model samples scored so far
        self._speaking = False
        self._speech_start = 0  # first sample of the current (or candidate) speech
        self._speech_end = 0  # end of its last speech window
        self._speech_run = 0  # consecutive speech windows before speech is declared
        self._silence_run = 0  # consecutive non-speech windows

        self._last_activity = trio.current_time()
        self._metric_windows = 0
        self._metric_inference = 0.0

    def _to_input(self, model_index: int) -> int:
        return model_index * self._in_rate // self._rate

    def push(self, frame: AudioFrame) -> list[vad.VADEvent]:
        self._history.append(frame.data, self._limit)
        data = frame.data
        if self._channels == 1:
            mono: Int16Array = data[:, 0]
        else:
            mono = (data.sum(axis=1, dtype=np.int32) // self._channels).astype(np.int16)
        if self._resampler is None:
            return self._score(mono)
        out = self._resampler.push(AudioFrame(mono, self._in_rate))
        return self._score(out[0].data[:, 0]) if out else []

    def finish(self) -> list[vad.VADEvent]:
        """End of input: score what the resampler held back, end ongoing speech."""
        events: list[vad.VADEvent] = []
        if self._resampler is not None:
            for tail in self._resampler.flush():
                events += self._score(tail.data[:, 0])
        if self._speaking:
            events.append(self._end_of_speech(trio.current_time(), 0.0, 0.0))
        if self._metric_windows:
            self._report_metrics(trio.current_time())
        return events

    def _score(self, mono: Int16Array) -> list[vad.VADEvent]:
        # perf_counter, not trio's clock: this measures the CPU cost of inference, a figure
        # for metrics, and never decides anything about time in the pipeline.
        started = time.perf_counter()
        probabilities = self._inference.run(mono)
        took = time.perf_counter() - started
        if not probabilities:
            return []
        now = trio.current_time()
        events: list[vad.VADEvent] = []
        window = self._inference.window
        for p in probabilities:
            start, self._processed = self._processed, self._processed + window
            if p >= (self._deactivation if self._speaking else self._activation):
                self._speech_end = self._processed
                self._silence_run = 0
                if not self._speaking:
                    if not self._speech_run:
                        self._speech_start = start
                    self._speech_run += 1
                    if self._speech_run >= self._min_speech:
                        events.append(self._start_of_speech(now, p, took))
            else:
                self._speech_run = 0
                self._silence_run += 1
                if self._speaking and self._silence_run >= self._min_silence:
                    events.append(self._end_of_speech(now, p, took))
        if not self._speaking:
            # Outside speech keep only the audio the next speech's padding may need.
            candidate = self._speech_start if self._speech_run else self._processed
            self._history.forget_before(self._to_input(candidate) - self._prefix)
        events.append(
            vad.VADEvent(
                type=_EventType.INFERENCE_DONE,
                timestamp=now,
                samples_index=self._to_input(self._processed),
                speech_duration=self._speech_seconds() if self._speaking else 0.0,
                silence_duration=self._silence_run * self._window_s,
                probability=p,
                inference_duration=took,
                speaking=self._speaking,
            )
        )
        self._metric_windows += len(probabilities)
        self._metric_inference += took
        if self._metric_windows * self._window_s >= _METRICS_PERIOD:
            self._report_metrics(now)
        return events

    def _speech_seconds(self) -> float:
        return (self._speech_end - self._speech_start) / self._rate

    def _start_of_speech(self, now: float, p: float, took: float) -> vad.VADEvent:
        self._speaking = True
        self._speech_run = 0
        self._last_activity = now
        self._limit = self._to_input(self._speech_start) + self._max_speech
        return vad.VADEvent(
            type=_EventType.START_OF_SPEECH,
            timestamp=now,
            samples_index=self._to_input(self._processed),
            speech_duration=self._speech_seconds(),
            probability=p,
            inference_duration=took,
            speaking=True,
        )

    def _end_of_speech(self, now: float, p: float, took: float) -> vad.VADEvent:
        self._speaking = False
        self._last_activity = now
        start = self._to_input(self._speech_start)
        end = min(self._to_input(self._speech_end), start + self._max_speech)
        if self._to_input(self._speech_end) > end:
            logger.warning(
                "speech longer than max_buffered_speech (%.1f s): END_OF_SPEECH holds its start",
                self._max_speech / self._in_rate,
            )
        chunks = self._history.audio(max(start - self._prefix, 0), end)
        self._limit = math.inf
        frames = (
            (AudioFrame(np.concatenate(chunks), self._in_rate, self._channels),) if chunks else ()
        )
        return vad.VADEvent(
            type=_EventType.END_OF_SPEECH,
            timestamp=now,
            samples_index=self._to_input(self._processed),
            speech_duration=self._speech_seconds(),
            silence_duration=self._silence_run * self._window_s,
            probability=p,
            inference_duration=took,
            frames=frames,
        )

    def _report_metrics(self, now: float) -> None:
        self._vad.emit(
            "metrics_collected",
            VADMetrics(
                label=self._vad.label,
                timestamp=now,
                idle_time=now - self._last_activity,
                inference_duration_total=self._metric_inference,
                inference_count=self._metric_windows,
            ),
        )
        self._metric_windows, self._metric_inference = 0, 0.0
