"""Streams a batch STT: the VAD cuts the audio into utterances, each one is transcribed."""

from __future__ import annotations

import logging
import math
from collections.abc import Sequence

import trio

from .._errors import APIError
from .._utils import DEFAULT_API_CONNECT_OPTIONS, APIConnectOptions, BackgroundTasks
from ..audio import AudioFrame, combine_frames
from ..vad import VAD, VADEventType, VADStream
from ._stt import STT, RecognizeStream, SpeechEvent, SpeechEventType, STTCapabilities

__all__ = ["StreamAdapter", "StreamAdapterWrapper"]

logger = logging.getLogger("tvoice.stt")

# Audio kept before an utterance for an early transcription (the VAD's own padding is similar),
# and the longest utterance transcribed early (Whisper reads 30 s at a time).
_PADDING = 0.5
_EARLY_LIMIT = 30.0


class StreamAdapter(STT):
    """``StreamAdapter(stt=whisper, vad=silero)``: a streaming STT made of a batch one.

    Each utterance the VAD finds is sent to ``stt.recognize`` when the VAD reports its end:
    START_OF_SPEECH, then FINAL_TRANSCRIPT (when there is text), then END_OF_SPEECH (with a
    PREFLIGHT_TRANSCRIPT before them on a pause, see ``transcribe_on_pause``).

    ``transcribe_on_pause``: seconds of silence after which the speech so far is transcribed
    at once, while the VAD still waits for its ``min_silence_duration`` to end the speech. Its
    words come as a PREFLIGHT_TRANSCRIPT as soon as they are ready, so the session may prepare
    its reply during the rest of the pause (``preemptive_generation``). If the user says
    nothing more before the end, that transcript is the final one and the turn does not wait
    for the STT; if they go on, the early transcription is cancelled or its words superseded.
    It costs a transcription per pause, so it suits a local model (a hosted batch STT bills
    each one). ``None``, the default, transcribes at the end only.
    """

    def __init__(self, *, stt: STT, vad: VAD, transcribe_on_pause: float | None = None) -> None:
        if transcribe_on_pause is not None and not transcribe_on_pause >= 0:
            raise ValueError(f"transcribe_on_pause must be >= 0 or None, got {transcribe_on_pause}")
        super().__init__(capabilities=STTCapabilities(streaming=True, interim_results=False))
        self._stt = stt
        self._vad = vad
        self._transcribe_on_pause = transcribe_on_pause
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
    def transcribe_on_pause(self) -> float | None:
        """Seconds of silence after which the speech so far is transcribed (None: never)."""
        return self._transcribe_on_pause

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


class _Early:
    """A transcription of the speech so far, started on a pause, used if the speech ends."""

    def __init__(self) -> None:
        self.scope = trio.CancelScope()
        self.done = trio.Event()
        self.event: SpeechEvent | None = None
        self.ready_at: float | None = None  # when it was done
        self.told = False  # its words went out as a preflight transcript

    async def result(self) -> SpeechEvent | None:
        """The transcript once it is done (None if it failed)."""
        await self.done.wait()
        return self.event


class _Recording:
    """The input audio of the current utterance, with ``padding`` seconds before its start
    (kept while no one speaks), so an early transcription hears what the VAD's own
    END_OF_SPEECH audio would hold. Holds at most ``limit`` seconds; past that, it stops
    recording until the next utterance (the VAD's audio is transcribed instead)."""

    def __init__(self, *, padding: float, limit: float) -> None:
        self._padding = padding
        self._limit = limit
        self._frames: list[AudioFrame] = []
        self._seconds = 0.0
        self._speaking = False
        self.complete = True

    def add(self, frame: AudioFrame) -> None:
        if not self.complete:
            return
        self._frames.append(frame)
        self._seconds += frame.duration
        if self._speaking:
            if self._seconds > self._limit:
                self.complete = False
                self._frames, self._seconds = [], 0.0
            return
        while self._frames and self._seconds - self._frames[0].duration >= self._padding:
            self._seconds -= self._frames.pop(0).duration

    def start(self, speech_duration: float) -> None:
        """Speech began ``speech_duration`` seconds ago: keep the padding before it."""
        self._speaking, self.complete = True, True
        keep = speech_duration + self._padding
        while self._frames and self._seconds - self._frames[0].duration >= keep:
            self._seconds -= self._frames.pop(0).duration

    def end(self) -> None:
        self._speaking, self.complete = False, True
        self._frames, self._seconds = [], 0.0

    def audio(self) -> tuple[AudioFrame, ...]:
        return tuple(self._frames)


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
        pause = self._adapter.transcribe_on_pause
        recording = _Recording(padding=_PADDING, limit=_EARLY_LIMIT) if pause is not None else None
        early: _Early | None = None
        async with self._adapter.vad.stream() as vad_stream, BackgroundTasks() as nursery:
            nursery.start_soon(self._forward, vad_stream, recording)
            async for event in vad_stream:
                if event.type == VADEventType.START_OF_SPEECH:
                    if recording is not None:
                        recording.start(event.speech_duration)
                    await self._emit(SpeechEvent(type=SpeechEventType.START_OF_SPEECH))
                elif event.type == VADEventType.END_OF_SPEECH:
                    transcript = await early.result() if early is not None else None
                    early = None
                    if recording is not None:
                        recording.end()
                    if transcript is None:
                        transcript = await self._recognize(event.frames)
                    if transcript is not None and transcript.text.strip():
                        await self._emit_transcript(SpeechEventType.FINAL_TRANSCRIPT, transcript)
                    await self._emit(SpeechEvent(type=SpeechEventType.END_OF_SPEECH))
                elif recording is not None and pause is not None and event.speaking:
                    if event.silence_duration < pause or not recording.complete:
                        if early is not None:  # the user went on: that transcript is stale
                            early.scope.cancel()
                            early = None
                    elif early is None:
                        early = _Early()
                        nursery.start_soon(self._transcribe_early, early, recording.audio())
                    elif not early.told and trio.current_time() > (early.ready_at or math.inf):
                        # Told at the first VAD window after the instant it was ready (32 ms at
                        # most later), from this one task. Not at a window of that very instant:
                        # trio may run that window before or after the transcription's end, and
                        # the user going on at that instant must cancel it either way.
                        early.told = True
                        if early.event is not None and early.event.text.strip():
                            await self._emit_transcript(
                                SpeechEventType.PREFLIGHT_TRANSCRIPT, early.event
                            )

    async def _transcribe_early(self, early: _Early, frames: tuple[AudioFrame, ...]) -> None:
        # A failure here costs nothing: the VAD's audio is transcribed at the end instead,
        # with the usual retries and errors.
        with early.scope:
            try:
                early.event = await self._recognize(frames)
            except APIError as e:
                logger.debug("early transcription failed, transcribing at the end: %s", e)
        early.ready_at = trio.current_time()
        early.done.set()

    async def _recognize(self, frames: tuple[AudioFrame, ...]) -> SpeechEvent | None:
        if not frames:
            return None
        return await self._adapter.wrapped_stt.recognize(
            frames, language=self._language, conn_options=self._conn_options
        )

    async def _emit_transcript(self, kind: SpeechEventType, event: SpeechEvent) -> None:
        await self._emit(
            SpeechEvent(type=kind, alternatives=event.alternatives, request_id=event.request_id)
        )

    async def _forward(self, vad_stream: VADStream, recording: _Recording | None) -> None:
        async for item in self._input:
            if isinstance(item, AudioFrame):
                if recording is not None:
                    recording.add(item)
                await vad_stream.push_frame(item)
        vad_stream.end_input()
