"""Streams a batch STT: the VAD cuts the audio into utterances, each one is transcribed."""

from __future__ import annotations

from collections.abc import Sequence

from .._utils import DEFAULT_API_CONNECT_OPTIONS, APIConnectOptions, BackgroundTasks
from ..audio import AudioFrame, combine_frames
from ..vad import VAD, VADEventType, VADStream
from ._stt import STT, RecognizeStream, SpeechEvent, SpeechEventType, STTCapabilities

__all__ = ["StreamAdapter", "StreamAdapterWrapper"]


class StreamAdapter(STT):
    """``StreamAdapter(stt=whisper, vad=silero)``: a streaming STT made of a batch one.

    Each utterance the VAD finds is sent to ``stt.recognize`` when the VAD reports its end:
    START_OF_SPEECH, then FINAL_TRANSCRIPT (when there is text), then END_OF_SPEECH.
    """

    def __init__(self, *, stt: STT, vad: VAD) -> None:
        super().__init__(capabilities=STTCapabilities(streaming=True, interim_results=False))
        self._stt = stt
        self._vad = vad
        # Metrics of the wrapped STT are ours to report.
        stt.on("metrics_collected", lambda m: self.emit("metrics_collected", m))

    @property
    def wrapped_stt(self) -> STT:
        """The batch STT doing the transcription."""
        return self._stt

    @property
    def vad(self) -> VAD:
        """The VAD that cuts the audio into utterances."""
        return self._vad

    @property
    def label(self) -> str:
        return f"StreamAdapter({self._stt.label})"

    async def recognize(
        self,
        frames: AudioFrame | Sequence[AudioFrame],
        *,
        language: str | None = None,
        conn_options: APIConnectOptions = DEFAULT_API_CONNECT_OPTIONS,
    ) -> SpeechEvent:
        """The wrapped STT's ``recognize``: its retries and its metrics, not a second layer."""
        frame = frames if isinstance(frames, AudioFrame) else combine_frames(list(frames))
        return await self._recognize_impl(frame, language=language, conn_options=conn_options)

    async def _recognize_impl(
        self, frame: AudioFrame, *, language: str | None, conn_options: APIConnectOptions
    ) -> SpeechEvent:
        return await self._stt.recognize(frame, language=language, conn_options=conn_options)

    def stream(
        self,
        *,
        language: str | None = None,
        conn_options: APIConnectOptions = DEFAULT_API_CONNECT_OPTIONS,
    ) -> RecognizeStream:
        return StreamAdapterWrapper(self, language=language, conn_options=conn_options)


class StreamAdapterWrapper(RecognizeStream):
    """The stream of a :class:`StreamAdapter`."""

    def __init__(
        self,
        adapter: StreamAdapter,
        *,
        language: str | None,
        conn_options: APIConnectOptions,
    ) -> None:
        super().__init__(adapter, language=language, conn_options=conn_options)
        self._adapter = adapter

    def _report(self, *, cancelled: bool) -> None:
        # The wrapped STT reports each recognize() call itself.
        pass

    async def _run(self) -> None:
        async with self._adapter.vad.stream() as vad_stream, BackgroundTasks() as nursery:
            nursery.start_soon(self._forward, vad_stream)
            async for event in vad_stream:
                if event.type == VADEventType.START_OF_SPEECH:
                    await self._emit(SpeechEvent(type=SpeechEventType.START_OF_SPEECH))
                elif event.type == VADEventType.END_OF_SPEECH:
                    await self._transcribe(event.frames)
                    await self._emit(SpeechEvent(type=SpeechEventType.END_OF_SPEECH))

    async def _transcribe(self, frames: tuple[AudioFrame, ...]) -> None:
        if not frames:
            return
        event = await self._adapter.wrapped_stt.recognize(
            frames, language=self._language, conn_options=self._conn_options
        )
        if event.text.strip():
            await self._emit(
                SpeechEvent(
                    type=SpeechEventType.FINAL_TRANSCRIPT,
                    alternatives=event.alternatives,
                    request_id=event.request_id,
                )
            )

    async def _forward(self, vad_stream: VADStream) -> None:
        async for item in self._input:
            if isinstance(item, AudioFrame):
                await vad_stream.push_frame(item)
        vad_stream.end_input()
