"""Text-to-speech: the ABC, its chunked and streaming synthesis."""

from __future__ import annotations

import contextlib
from abc import ABC, abstractmethod
from typing import Literal

import attrs
import numpy as np
import trio

from .._utils import (
    DEFAULT_API_CONNECT_OPTIONS,
    APIConnectOptions,
    EventEmitter,
    InputStream,
    OutputStream,
    short_id,
)
from ..audio import AudioFrame, TimedText
from ..metrics import TTSMetrics

__all__ = ["TTS", "ChunkedStream", "SynthesizeStream", "SynthesizedAudio", "TTSCapabilities"]


@attrs.frozen(kw_only=True)
class SynthesizedAudio:
    """A piece of synthesized audio.

    ``is_final`` marks the end of a segment (a ``synthesize`` call, or what came before a
    ``flush()``); that item carries an empty frame. ``delta_text`` is the text this audio
    speaks, when the provider tells; ``timed_text`` (the frame's) says when it speaks each
    word, when the provider tells that too.
    """

    frame: AudioFrame
    request_id: str
    segment_id: str = ""
    is_final: bool = False
    delta_text: str = ""

    @property
    def timed_text(self) -> tuple[TimedText, ...]:
        """The words of this audio and their times in its frame (``AudioFrame.timed_text``)."""
        return self.frame.timed_text


@attrs.frozen(kw_only=True)
class TTSCapabilities:
    """``streaming``: has a native ``stream()`` that takes text as it is written."""

    streaming: bool


class TTS(ABC, EventEmitter[Literal["metrics_collected"]]):
    """A text-to-speech model producing ``sample_rate`` Hz, ``num_channels`` audio.

    Batch ones implement :meth:`synthesize`; wrap them in ``tts.StreamAdapter`` to stream.
    """

    def __init__(
        self, *, sample_rate: int, num_channels: int, capabilities: TTSCapabilities
    ) -> None:
        super().__init__()
        self._sample_rate = sample_rate
        self._num_channels = num_channels
        self._capabilities = capabilities

    @property
    def sample_rate(self) -> int:
        """Rate of the audio this TTS produces."""
        return self._sample_rate

    @property
    def num_channels(self) -> int:
        """Channels of the audio this TTS produces."""
        return self._num_channels

    @property
    def capabilities(self) -> TTSCapabilities:
        """What this TTS can do."""
        return self._capabilities

    @property
    def label(self) -> str:
        """Name used in metrics and logs."""
        return f"{type(self).__module__}.{type(self).__name__}"

    @abstractmethod
    def synthesize(
        self, text: str, *, conn_options: APIConnectOptions = DEFAULT_API_CONNECT_OPTIONS
    ) -> ChunkedStream:
        """Speak ``text``: ``async with tts.synthesize("Hi") as s: async for audio in s``."""

    def stream(
        self, *, conn_options: APIConnectOptions = DEFAULT_API_CONNECT_OPTIONS
    ) -> SynthesizeStream:
        """Streaming synthesis: push text as it is written. Streaming TTSs only."""
        raise NotImplementedError(
            f"{self.label} does not stream; wrap it: tts.StreamAdapter(tts=...)"
        )

    def end_of_segment(self, request_id: str, segment_id: str = "") -> SynthesizedAudio:
        """The empty ``is_final`` item that closes a segment."""
        empty = AudioFrame(np.zeros((0, self._num_channels), np.int16), self._sample_rate)
        return SynthesizedAudio(
            frame=empty, request_id=request_id, segment_id=segment_id, is_final=True
        )

    async def prewarm(self) -> None:
        """Get ready to speak now, before the first reply (a WebSocket TTS opens its
        connection), and return. The default does nothing."""

    async def keep_warm(self) -> None:
        """Stay ready to speak for as long as this runs; cancel it to stop.

        A session runs it in its nursery from its start and cancels it when it closes. The
        default calls :meth:`prewarm` and returns. A TTS that keeps a connection between
        replies overrides it to keep one open, opening it again (with a backoff) when it
        drops; it never blocks a reply, and a connection that fails is no error of its: the
        next reply connects, and says if it cannot.
        """
        await self.prewarm()

    async def aclose(self) -> None:
        """Release connections and models held by this TTS."""


class ChunkedStream(OutputStream[SynthesizedAudio]):
    """The audio of one ``synthesize(text)`` call. ``_run`` emits frames then returns."""

    _idle_timeout = True

    def __init__(
        self,
        tts: TTS,
        input_text: str,
        *,
        conn_options: APIConnectOptions = DEFAULT_API_CONNECT_OPTIONS,
    ) -> None:
        super().__init__(conn_options=conn_options)
        self._tts = tts
        self._input_text = input_text
        self._request_id = short_id("tts")
        self._audio_duration = 0.0

    @property
    def input_text(self) -> str:
        """The text being spoken."""
        return self._input_text

    @property
    def request_id(self) -> str:
        """Id of this synthesis, in its audio items and metrics."""
        return self._request_id

    async def _emit_frame(
        self, frame: AudioFrame, *, segment_id: str = "", delta_text: str = ""
    ) -> None:
        """Emit one frame of the synthesis, with the text it speaks if known (for ``_run``
        implementations)."""
        self._audio_duration += frame.duration
        await self._emit(
            SynthesizedAudio(
                frame=frame,
                request_id=self._request_id,
                segment_id=segment_id,
                delta_text=delta_text,
            )
        )

    async def _attempts(self) -> None:
        await super()._attempts()
        if self._error is None:
            await self._send_final()

    async def _send_final(self) -> None:
        with contextlib.suppress(trio.BrokenResourceError):
            await self._send.send(self._tts.end_of_segment(self._request_id))

    def _report(self, *, cancelled: bool) -> None:
        now = trio.current_time()
        first = self._first_output_at
        self._tts.emit(
            "metrics_collected",
            TTSMetrics(
                label=self._tts.label,
                request_id=self._request_id,
                timestamp=now,
                ttfb=(first - self._started_at) if first is not None else -1.0,
                duration=now - self._started_at,
                audio_duration=self._audio_duration,
                characters_count=len(self._input_text),
                cancelled=cancelled,
            ),
        )


class _Flush:
    """Marks the end of a segment in a synthesis stream's input."""


FLUSH = _Flush()


class SynthesizeStream(InputStream[str | _Flush, SynthesizedAudio]):
    """Text in, audio out: ``push_text``, ``flush`` (end of a segment), ``end_input``."""

    _input_capacity = 256

    def __init__(
        self, tts: TTS, *, conn_options: APIConnectOptions = DEFAULT_API_CONNECT_OPTIONS
    ) -> None:
        super().__init__(conn_options=conn_options)
        self._tts = tts
        self._request_id = short_id("tts")
        self._characters = 0
        self._audio_duration = 0.0
        self._first_input_at: float | None = None

    @property
    def request_id(self) -> str:
        """Id of this stream, in its audio items and metrics."""
        return self._request_id

    async def push_text(self, text: str) -> None:
        """Add text to the current segment."""
        if not isinstance(text, str):
            raise TypeError(f"push_text expects a str, got {type(text).__name__}")
        if text:
            self._note_input(text)
            await self._push(text)

    def _note_input(self, text: str) -> None:
        if self._first_input_at is None:
            self._first_input_at = trio.current_time()
        self._characters += len(text)

    async def flush(self) -> None:
        """End the current segment: speak everything pushed so far."""
        await self._push(FLUSH)

    async def _emit_frame(
        self, frame: AudioFrame, *, segment_id: str = "", delta_text: str = ""
    ) -> None:
        """Emit one frame of the current segment, with the text it speaks if known (for
        ``_run`` implementations)."""
        self._audio_duration += frame.duration
        await self._emit(
            SynthesizedAudio(
                frame=frame,
                request_id=self._request_id,
                segment_id=segment_id,
                delta_text=delta_text,
            )
        )

    async def _end_segment(self, segment_id: str = "") -> None:
        """Emit the ``is_final`` item of a segment (for ``_run`` implementations)."""
        await self._emit(self._tts.end_of_segment(self._request_id, segment_id))

    def _report(self, *, cancelled: bool) -> None:
        now = trio.current_time()
        first_in, first_out = self._first_input_at, self._first_output_at
        self._tts.emit(
            "metrics_collected",
            TTSMetrics(
                label=self._tts.label,
                request_id=self._request_id,
                timestamp=now,
                ttfb=(
                    (first_out - first_in)
                    if first_in is not None and first_out is not None
                    else -1.0
                ),
                duration=now - self._started_at,
                audio_duration=self._audio_duration,
                characters_count=self._characters,
                cancelled=cancelled,
                streamed=True,
            ),
        )
