"""Several STTs in order of preference: when one fails, the next takes over."""

from __future__ import annotations

from collections.abc import Sequence

from .._errors import APIError
from .._utils import (
    DEFAULT_API_CONNECT_OPTIONS,
    FALLBACK_CONNECT_OPTIONS,
    APIConnectOptions,
    BackgroundTasks,
    FallbackPool,
)
from ..audio import AudioFrame, combine_frames
from ..vad import VAD
from ._stream_adapter import StreamAdapter
from ._stt import STT, RecognizeStream, SpeechEvent, STTCapabilities

__all__ = ["FallbackAdapter"]


class FallbackAdapter(STT):
    """``FallbackAdapter([primary, backup], vad=...)``.

    Each STT gets its own retries (``conn_options``); when they are used up it is skipped for
    ``recovery_interval`` seconds and the next one answers. A stream that breaks mid-way is
    replaced by the next STT's stream and the audio goes on flowing into it. Batch STTs are
    streamed through ``StreamAdapter`` with ``vad``.
    """

    def __init__(
        self,
        stts: Sequence[STT],
        *,
        vad: VAD | None = None,
        recovery_interval: float = 30.0,
        conn_options: APIConnectOptions = FALLBACK_CONNECT_OPTIONS,
    ) -> None:
        streaming = [s if s.capabilities.streaming else _adapt(s, vad) for s in stts]
        super().__init__(
            capabilities=STTCapabilities(
                streaming=True, interim_results=all(s.capabilities.interim_results for s in stts)
            )
        )
        self._pool = FallbackPool(streaming, recovery_interval=recovery_interval, kind="STT")
        self._conn_options = conn_options
        for s in streaming:
            s.on("metrics_collected", lambda m: self.emit("metrics_collected", m))

    @property
    def stts(self) -> list[STT]:
        """The STTs in order of preference (batch ones wrapped in a StreamAdapter)."""
        return self._pool.models

    async def recognize(
        self,
        frames: AudioFrame | Sequence[AudioFrame],
        *,
        language: str | None = None,
        conn_options: APIConnectOptions = DEFAULT_API_CONNECT_OPTIONS,
    ) -> SpeechEvent:
        """Ask each STT in turn. Each has its own retries and timeout (``stt_conn_options``)
        and reports its own metrics; an outer retry or timeout here would cut a slow STT off
        before its turn was over and count the audio twice."""
        frame = frames if isinstance(frames, AudioFrame) else combine_frames(list(frames))
        return await self._recognize_impl(frame, language=language, conn_options=conn_options)

    async def _recognize_impl(
        self, frame: AudioFrame, *, language: str | None, conn_options: APIConnectOptions
    ) -> SpeechEvent:
        errors: list[APIError] = []
        for stt in self._pool.candidates():
            try:
                event = await stt.recognize(
                    frame, language=language, conn_options=self._conn_options
                )
            except APIError as e:
                errors.append(e)
                self._pool.mark_failed(stt, e)
            else:
                self._pool.mark_ok(stt)
                return event
        raise self._pool.all_failed(errors)

    def stream(
        self,
        *,
        language: str | None = None,
        conn_options: APIConnectOptions = DEFAULT_API_CONNECT_OPTIONS,
    ) -> RecognizeStream:
        return _FallbackRecognizeStream(self, language=language, conn_options=conn_options)

    @property
    def pool(self) -> FallbackPool[STT]:
        """The STTs and their availability."""
        return self._pool

    @property
    def stt_conn_options(self) -> APIConnectOptions:
        """Retries and timeout applied to each STT before falling back."""
        return self._conn_options


def _adapt(stt: STT, vad: VAD | None) -> STT:
    if vad is None:
        raise ValueError(f"{stt.label} does not stream: pass vad= to the FallbackAdapter")
    return StreamAdapter(stt=stt, vad=vad)


class _FallbackRecognizeStream(RecognizeStream):
    def __init__(
        self, adapter: FallbackAdapter, *, language: str | None, conn_options: APIConnectOptions
    ) -> None:
        # Retries happen per STT inside; the fallback itself does not retry.
        super().__init__(adapter, language=language, conn_options=APIConnectOptions(max_retry=0))
        self._pool = adapter.pool
        self._stt_options = adapter.stt_conn_options

    def _report(self, *, cancelled: bool) -> None:
        pass

    async def _run(self) -> None:
        errors: list[APIError] = []
        for stt in self._pool.candidates():
            try:
                await self._run_one(stt)
            except APIError as e:
                errors.append(e)
                self._pool.mark_failed(stt, e)
            else:
                return
        raise self._pool.all_failed(errors)

    async def _run_one(self, stt: STT) -> None:
        async with (
            stt.stream(language=self._language, conn_options=self._stt_options) as inner,
            BackgroundTasks() as nursery,
        ):

            async def forward() -> None:
                async for item in self._input:
                    if isinstance(item, AudioFrame):
                        await inner.push_frame(item)
                    else:
                        await inner.flush()
                inner.end_input()

            nursery.start_soon(forward)
            async for event in inner:
                await self._emit(event)
