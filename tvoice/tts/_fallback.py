"""Several TTSs in order of preference: when one fails, the next takes over."""

from __future__ import annotations

from collections.abc import Sequence

import attrs
import numpy as np
import trio

from .._errors import APIError
from .._utils import (
    DEFAULT_API_CONNECT_OPTIONS,
    FALLBACK_CONNECT_OPTIONS,
    APIConnectOptions,
    BackgroundTasks,
    FallbackPool,
    retry_delay,
)
from ..audio import AudioFrame, AudioResampler, TimedText
from ._stream_adapter import StreamAdapter
from ._tts import (
    TTS,
    ChunkedStream,
    SynthesizedAudio,
    SynthesizeStream,
    TTSCapabilities,
    _Flush,
)

__all__ = ["FallbackAdapter"]


class FallbackAdapter(TTS):
    """``FallbackAdapter([primary, backup])``: speak with the first TTS that works.

    A TTS that fails before producing audio for the current segment is skipped for
    ``recovery_interval`` seconds and the segment is spoken again by the next one; a failure
    after audio was heard is raised (words already spoken cannot be taken back). Output is
    resampled to the rate of the first TTS so a switch is seamless to the listener.
    """

    def __init__(
        self,
        tts: Sequence[TTS],
        *,
        recovery_interval: float = 30.0,
        conn_options: APIConnectOptions = FALLBACK_CONNECT_OPTIONS,
    ) -> None:
        if not tts:
            raise ValueError("a TTS FallbackAdapter needs at least one TTS")
        if len({t.num_channels for t in tts}) != 1:
            raise ValueError("the TTSs of a FallbackAdapter must have the same num_channels")
        super().__init__(
            sample_rate=tts[0].sample_rate,
            num_channels=tts[0].num_channels,
            capabilities=TTSCapabilities(streaming=True),
        )
        self._primary = tts[0]
        streaming = [t if t.capabilities.streaming else StreamAdapter(tts=t) for t in tts]
        self._pool = FallbackPool(streaming, recovery_interval=recovery_interval, kind="TTS")
        self._tts_options = conn_options
        for t in streaming:
            t.on("metrics_collected", lambda m: self.emit("metrics_collected", m))

    @property
    def pool(self) -> FallbackPool[TTS]:
        """The TTSs and their availability."""
        return self._pool

    @property
    def tts_conn_options(self) -> APIConnectOptions:
        """Retries and timeout applied to each TTS before falling back."""
        return self._tts_options

    def synthesize(
        self, text: str, *, conn_options: APIConnectOptions = DEFAULT_API_CONNECT_OPTIONS
    ) -> ChunkedStream:
        return _FallbackChunkedStream(self, text)

    def stream(
        self, *, conn_options: APIConnectOptions = DEFAULT_API_CONNECT_OPTIONS
    ) -> SynthesizeStream:
        return _FallbackSynthesizeStream(self)

    async def prewarm(self) -> None:
        """Get the first TTS ready: the others speak only when it fails."""
        await self._primary.prewarm()

    async def keep_warm(self) -> None:
        """Keep the first TTS warm (its ``keep_warm``) for as long as this runs."""
        await self._primary.keep_warm()

    def resampler_for(self, tts: TTS) -> AudioResampler | None:
        """A resampler to this adapter's rate for ``tts``'s audio (None when rates match)."""
        if tts.sample_rate == self.sample_rate:
            return None
        return AudioResampler(tts.sample_rate, self.sample_rate, self.num_channels)


class _Relay:
    """One TTS's audio on its way out of the adapter, each frame with the text it speaks:
    resampled to the adapter's rate when needed. A resampler holds some audio back, so the
    text and word timings of a frame go with the next frame that comes out, their times moved
    to it."""

    def __init__(self, adapter: FallbackAdapter, tts: TTS) -> None:
        self._resampler = adapter.resampler_for(tts)
        self._empty = AudioFrame(np.zeros((0, adapter.num_channels), np.int16), adapter.sample_rate)
        self._taken = 0.0  # seconds of the TTS's audio taken
        self._given = 0.0  # seconds given out
        self._text = ""
        self._timed: list[TimedText] = []  # in seconds from the start of the TTS's audio

    def push(self, audio: SynthesizedAudio) -> list[tuple[AudioFrame, str]]:
        if self._resampler is None:
            return [(audio.frame, audio.delta_text)]
        frame, at = audio.frame, self._taken
        self._text += audio.delta_text
        self._timed += [TimedText(t.text, at + t.start, at + t.end) for t in frame.timed_text]
        self._taken += frame.duration
        return [self._carry(f) for f in self._resampler.push(frame)]

    def flush(self) -> list[tuple[AudioFrame, str]]:
        """The end of a segment: what the resampler held, and the text nothing carried yet."""
        if self._resampler is None:
            return []
        out = [self._carry(f) for f in self._resampler.flush()]
        if self._text or self._timed:
            out.append(self._carry(self._empty))
        return out

    def _carry(self, frame: AudioFrame) -> tuple[AudioFrame, str]:
        text, at = self._text, self._given
        if self._timed:
            timed = [TimedText(t.text, t.start - at, t.end - at) for t in self._timed]
            frame = attrs.evolve(frame, timed_text=timed)
        self._text, self._timed = "", []
        self._given += frame.duration
        return frame, text


class _FallbackChunkedStream(ChunkedStream):
    _idle_timeout = False  # each inner synthesis has its own; ours would cut it short

    def __init__(self, adapter: FallbackAdapter, text: str) -> None:
        super().__init__(adapter, text, conn_options=APIConnectOptions(max_retry=0))
        self._adapter = adapter

    def _report(self, *, cancelled: bool) -> None:
        pass

    async def _run(self) -> None:
        pool = self._adapter.pool
        errors: list[APIError] = []
        for tts in pool.candidates():
            relay = _Relay(self._adapter, tts)
            try:
                async with tts.synthesize(
                    self.input_text, conn_options=self._adapter.tts_conn_options
                ) as inner:
                    async for audio in inner:
                        if not audio.is_final:
                            for frame, text in relay.push(audio):
                                await self._emit_frame(frame, delta_text=text)
                for frame, text in relay.flush():
                    await self._emit_frame(frame, delta_text=text)
            except APIError as e:
                if self._emitted:
                    raise
                errors.append(e)
                pool.mark_failed(tts, e)
            else:
                pool.mark_ok(tts)
                return
        raise pool.all_failed(errors)


class _FallbackSynthesizeStream(SynthesizeStream):
    def __init__(self, adapter: FallbackAdapter) -> None:
        super().__init__(adapter, conn_options=APIConnectOptions(max_retry=0))
        self._adapter = adapter
        # Text of the segments not yet fully spoken (the last one still open), replayed to the
        # next TTS if this one fails.
        self._segments: list[list[str]] = [[]]
        self._segment_audio = False

    def _report(self, *, cancelled: bool) -> None:
        pass

    async def _run(self) -> None:
        pool = self._adapter.pool
        options = self._adapter.tts_conn_options
        errors: list[APIError] = []
        for tts in pool.candidates():
            retries = 0
            while True:
                try:
                    await self._run_one(tts)
                except APIError as e:
                    if self._segment_audio:
                        raise
                    if e.retryable and retries < options.max_retry:
                        retries += 1
                        await trio.sleep(retry_delay(options, retries))
                        continue
                    errors.append(e)
                    pool.mark_failed(tts, e)
                    break
                else:
                    pool.mark_ok(tts)
                    return
        raise pool.all_failed(errors)

    async def _run_one(self, tts: TTS) -> None:
        relay = _Relay(self._adapter, tts)
        # The retries of each TTS are made here, where the unfinished segments are replayed:
        # a stream retrying by itself would go on with the text it has not read yet and drop
        # the words of the segment that failed.
        options = attrs.evolve(self._adapter.tts_conn_options, max_retry=0)
        async with (
            tts.stream(conn_options=options) as inner,
            BackgroundTasks() as nursery,
        ):

            async def forward() -> None:
                for i, segment in enumerate(list(self._segments)):
                    for text in segment:
                        await inner.push_text(text)
                    if i < len(self._segments) - 1:
                        await inner.flush()
                async for item in self._input:
                    if isinstance(item, _Flush):
                        self._segments.append([])
                        await inner.flush()
                    else:
                        self._segments[-1].append(item)
                        await inner.push_text(item)
                inner.end_input()

            nursery.start_soon(forward)
            async for audio in inner:
                if audio.is_final:
                    for frame, text in relay.flush():
                        await self._emit_frame(frame, segment_id=audio.segment_id, delta_text=text)
                    if len(self._segments) > 1:
                        self._segments.pop(0)
                    else:
                        self._segments = [[]]
                    self._segment_audio = False
                    await self._end_segment(audio.segment_id)
                    continue
                for frame, text in relay.push(audio):
                    self._segment_audio = True
                    await self._emit_frame(frame, segment_id=audio.segment_id, delta_text=text)
