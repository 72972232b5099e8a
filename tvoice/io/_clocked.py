"""An audio output that plays on trio's clock, with no device: for tests, files and tools."""

from __future__ import annotations

from fractions import Fraction

import attrs
import numpy as np
import trio

from ..audio import AudioFrame, combine_frames, resample
from ._io import AudioOutput

__all__ = ["ClockedAudioOutput", "HeardSpan", "Playback", "render_playbacks"]


@attrs.frozen
class HeardSpan:
    """A stretch of a segment heard without a break: from ``offset`` seconds into the segment,
    for ``duration`` seconds, starting at trio time ``at``."""

    at: float
    offset: float
    duration: float


@attrs.frozen
class Playback:
    """One segment of agent audio as the listener heard it: when it started, how many seconds
    of it were heard, and whether it was cut by an interruption."""

    started_at: float
    position: float
    interrupted: bool
    spans: tuple[HeardSpan, ...] = attrs.field(default=(), eq=False, repr=False)
    audio: AudioFrame | None = attrs.field(default=None, eq=False, repr=False)


class ClockedAudioOutput(AudioOutput):
    """Plays in real time on trio's clock and records every segment in ``playbacks``.

    Nothing is sent to a device: a segment "plays" for as long as its audio lasts, pauses and
    clears take effect at once, and durations are kept as exact fractions of samples (a 2 s
    reply that starts at 3.5 ends at exactly 5.5 under MockClock). With ``keep_audio`` each
    playback keeps its audio, so :func:`render_playbacks` can rebuild what was heard. Run it
    with ``await nursery.start(output.run)``.
    """

    def __init__(
        self,
        *,
        sample_rate: int | None = None,
        keep_audio: bool = False,
        label: str = "clocked_audio_output",
    ) -> None:
        super().__init__(sample_rate=sample_rate, label=label)
        self.keep_audio = keep_audio
        self.playbacks: list[Playback] = []
        self.paused_periods: list[tuple[float, float]] = []
        self._active = False
        self._flushed = False
        self._paused = False
        self._paused_at = 0.0
        self._started_at: float | None = None
        self._queued = Fraction(0)
        self._played = Fraction(0)
        self._resumed_at: float | None = None
        self._spans: list[HeardSpan] = []
        self._span_start: tuple[float, Fraction] | None = None
        self._frames: list[AudioFrame] = []
        self._changed = trio.Event()

    @property
    def playing(self) -> bool:
        """Audio is being heard right now."""
        return self._resumed_at is not None

    def position(self) -> float:
        """Seconds of the current segment heard so far."""
        self._advance()
        return float(self._played)

    async def run(self, *, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED) -> None:
        """The playout clock: fires the moment queued audio runs out."""
        task_status.started()
        while True:
            self._changed = trio.Event()
            run_out = (
                self._resumed_at + float(self._queued) if self._resumed_at is not None else None
            )
            if run_out is None:
                await self._changed.wait()
            else:
                with trio.move_on_at(run_out):
                    await self._changed.wait()
            self._advance()

    def _close_span(self) -> None:
        if self._span_start is not None:
            at, offset = self._span_start
            self._spans.append(HeardSpan(at, float(offset), float(self._played - offset)))
            self._span_start = None

    def _advance(self) -> None:
        now = trio.current_time()
        if self._resumed_at is not None:
            heard = min(Fraction(now - self._resumed_at), self._queued)
            if heard == self._queued or self._queued - heard < Fraction(1, 10**9):
                heard = self._queued
            self._played += heard
            self._queued -= heard
            self._resumed_at = now if self._queued else None
            if self._resumed_at is None:
                self._close_span()
        if self._active and not self._queued and self._flushed:
            self._finish(interrupted=False)
        elif self._active and self._queued and not self._paused and self._resumed_at is None:
            if self._started_at is None:
                self._started_at = now
                self.on_playback_started(created_at=now)
            self._resumed_at = now
            self._span_start = (now, self._played)

    def _finish(self, *, interrupted: bool) -> None:
        self._close_span()
        started = self._started_at if self._started_at is not None else trio.current_time()
        audio = combine_frames(self._frames) if self._frames else None
        playback = Playback(started, float(self._played), interrupted, tuple(self._spans), audio)
        self.playbacks.append(playback)
        self._active = False
        self._started_at = None
        self._resumed_at = None
        self._queued = Fraction(0)
        self._played = Fraction(0)
        self._spans, self._frames = [], []
        self.on_playback_finished(playback_position=playback.position, interrupted=interrupted)

    def _poke(self) -> None:
        self._advance()
        self._changed.set()

    async def capture_frame(self, frame: AudioFrame) -> None:
        await super().capture_frame(frame)
        self._advance()
        if not self._active:
            self._active, self._flushed = True, False
        if self.keep_audio:
            self._frames.append(frame)
        self._queued += Fraction(frame.samples_per_channel, frame.sample_rate)
        self._poke()

    def flush(self) -> None:
        super().flush()
        if self._active:
            self._flushed = True
        self._poke()

    def clear_buffer(self) -> None:
        self._advance()
        if self._active:
            self._finish(interrupted=True)
        self._changed.set()

    def pause(self) -> None:
        self._advance()
        if not self._paused:
            self._paused, self._paused_at = True, trio.current_time()
            self._resumed_at = None
            self._close_span()
        self._changed.set()

    def resume(self) -> None:
        if self._paused:
            self.paused_periods.append((self._paused_at, trio.current_time()))
            self._paused = False
        self._poke()


def render_playbacks(
    playbacks: list[Playback], *, origin: float, sample_rate: int, length: float
) -> np.ndarray:
    """What a listener heard from ``origin`` for ``length`` seconds, as mono int32 samples
    (add other tracks, then clip to int16). Needs playbacks recorded with ``keep_audio``."""
    out = np.zeros(round(length * sample_rate), np.int32)
    for playback in playbacks:
        if playback.audio is None:
            continue
        audio = resample(playback.audio, sample_rate).data.mean(axis=1).astype(np.int32)
        for span in playback.spans:
            src = round(span.offset * sample_rate)
            dst = round((span.at - origin) * sample_rate)
            n = min(round(span.duration * sample_rate), len(audio) - src, len(out) - dst)
            if n > 0 and dst >= 0:
                out[dst : dst + n] += audio[src : src + n]
    return out
