"""Speech-to-text: the ABC, its streams and events."""

from __future__ import annotations

import enum
from abc import ABC, abstractmethod
from collections.abc import Iterable, Sequence
from typing import Literal

import attrs
import trio

from .._utils import (
    DEFAULT_API_CONNECT_OPTIONS,
    APIConnectOptions,
    EventEmitter,
    InputStream,
    call_with_retry,
    short_id,
)
from ..audio import AudioFrame, combine_frames
from ..metrics import STTMetrics

__all__ = [
    "STT",
    "RecognizeStream",
    "STTCapabilities",
    "SpeechData",
    "SpeechEvent",
    "SpeechEventType",
]


class SpeechEventType(enum.Enum):
    """What a recognition stream reports."""

    START_OF_SPEECH = "start_of_speech"
    INTERIM_TRANSCRIPT = "interim_transcript"
    PREFLIGHT_TRANSCRIPT = "preflight_transcript"
    """The words so far, ready for the LLM though the user may still go on (a pause that may
    end the turn): the session may prepare a reply on them (``preemptive_generation``). A
    FINAL_TRANSCRIPT still follows; if the user went on, its words differ."""
    FINAL_TRANSCRIPT = "final_transcript"
    END_OF_SPEECH = "end_of_speech"


@attrs.frozen(kw_only=True)
class SpeechData:
    """One transcription hypothesis; times are seconds from the start of the stream's audio."""

    text: str
    confidence: float = 0.0
    language: str = ""
    start_time: float = 0.0
    end_time: float = 0.0


def _alternatives(items: Iterable[SpeechData]) -> tuple[SpeechData, ...]:
    return tuple(items)


@attrs.frozen(kw_only=True)
class SpeechEvent:
    """A recognition event; transcripts carry one or more ``alternatives``, best first."""

    type: SpeechEventType
    alternatives: tuple[SpeechData, ...] = attrs.field(default=(), converter=_alternatives)
    request_id: str = ""

    @property
    def text(self) -> str:
        """Text of the best alternative ('' if none)."""
        return self.alternatives[0].text if self.alternatives else ""


@attrs.frozen(kw_only=True)
class STTCapabilities:
    """``streaming``: has a native ``stream()``; ``interim_results``: sends interim transcripts."""

    streaming: bool
    interim_results: bool = False


class STT(ABC, EventEmitter[Literal["metrics_collected"]]):
    """A speech-to-text model. Batch ones implement ``_recognize_impl``; streaming ones also
    override :meth:`stream`. Wrap a batch STT in ``stt.StreamAdapter(stt, vad)`` to stream it."""

    def __init__(self, *, capabilities: STTCapabilities) -> None:
        super().__init__()
        self._capabilities = capabilities

    @property
    def capabilities(self) -> STTCapabilities:
        """What this STT can do."""
        return self._capabilities

    @property
    def label(self) -> str:
        """Name used in metrics and logs."""
        return f"{type(self).__module__}.{type(self).__name__}"

    @abstractmethod
    async def _recognize_impl(
        self, frame: AudioFrame, *, language: str | None, conn_options: APIConnectOptions
    ) -> SpeechEvent:
        """Transcribe one block of audio into a FINAL_TRANSCRIPT event."""

    async def recognize(
        self,
        frames: AudioFrame | Sequence[AudioFrame],
        *,
        language: str | None = None,
        conn_options: APIConnectOptions = DEFAULT_API_CONNECT_OPTIONS,
    ) -> SpeechEvent:
        """Transcribe audio in one request, with retries; emits ``metrics_collected``."""
        frame = frames if isinstance(frames, AudioFrame) else combine_frames(list(frames))
        start = trio.current_time()
        event = await call_with_retry(
            lambda: self._recognize_impl(frame, language=language, conn_options=conn_options),
            conn_options,
            label=self.label,
        )
        self.emit(
            "metrics_collected",
            STTMetrics(
                label=self.label,
                request_id=event.request_id or short_id("stt"),
                timestamp=trio.current_time(),
                duration=trio.current_time() - start,
                audio_duration=frame.duration,
            ),
        )
        return event

    def stream(
        self,
        *,
        language: str | None = None,
        conn_options: APIConnectOptions = DEFAULT_API_CONNECT_OPTIONS,
    ) -> RecognizeStream:
        """A streaming recognition: ``async with stt.stream() as s``. Streaming STTs only."""
        raise NotImplementedError(
            f"{self.label} does not stream; wrap it: stt.StreamAdapter(stt=..., vad=...)"
        )

    async def aclose(self) -> None:
        """Release connections and models held by this STT."""


class _Flush:
    """Marks a segment boundary in a recognition stream's input."""


FLUSH = _Flush()


class RecognizeStream(InputStream[AudioFrame | _Flush, SpeechEvent]):
    """Audio in, :class:`SpeechEvent` out: ``push_frame``, ``flush``, ``end_input``, iterate."""

    _output_capacity = 64
    _input_capacity = 256

    def __init__(
        self,
        stt: STT,
        *,
        language: str | None = None,
        conn_options: APIConnectOptions = DEFAULT_API_CONNECT_OPTIONS,
    ) -> None:
        super().__init__(conn_options=conn_options)
        self._stt = stt
        self._language = language
        self._audio_duration = 0.0

    async def push_frame(self, frame: AudioFrame) -> None:
        """Feed one frame of audio (waits if the recognizer is behind)."""
        if not isinstance(frame, AudioFrame):
            raise TypeError(f"push_frame expects an AudioFrame, got {type(frame).__name__}")
        self._audio_duration += frame.duration
        await self._push(frame)

    async def flush(self) -> None:
        """End the current segment: the provider finalises what it has heard so far."""
        await self._push(FLUSH)

    def _report(self, *, cancelled: bool) -> None:
        if self._audio_duration > 0:
            self._stt.emit(
                "metrics_collected",
                STTMetrics(
                    label=self._stt.label,
                    request_id=short_id("stt"),
                    timestamp=trio.current_time(),
                    duration=trio.current_time() - self._started_at,
                    audio_duration=self._audio_duration,
                    streamed=True,
                ),
            )
