"""Scripted audio input and virtual-real-time outputs that record what was heard."""

from __future__ import annotations

from fractions import Fraction

import attrs
import numpy as np
import trio

from ..audio import AudioFrame
from ..io import AudioInput, AudioOutput, TextOutput
from ._script import Script

__all__ = ["FakeAudioInput", "FakeAudioOutput", "FakeTextOutput", "Playback"]


class FakeAudioInput(AudioInput):
    """The user's microphone: one frame every ``frame_duration`` on the timeline, a quiet tone
    while scripted speech lasts and silence otherwise. Never ends by itself."""

    label = "fake_audio_input"

    def __init__(
        self, script: Script, *, sample_rate: int = 16000, frame_duration: float = 0.02
    ) -> None:
        self._script = script
        self.sample_rate = sample_rate
        self.frame_duration = frame_duration
        n = round(sample_rate * frame_duration)
        t = np.arange(n) / sample_rate
        self._voice = AudioFrame((np.sin(2 * np.pi * 180 * t) * 2000).astype(np.int16), sample_rate)
        self._silence = AudioFrame(np.zeros(n, np.int16), sample_rate)

        self._next: int | None = None

    def _speaking(self, t: float) -> bool:
        return any(s.start <= t < s.end for s in self._script.speech)

    async def __anext__(self) -> AudioFrame:
        # Frame k covers [(k-1)*d, k*d) of the timeline and is delivered at k*d.
        origin, d = self._script.origin, self.frame_duration
        if self._next is None:
            self._next = max(0, int((trio.current_time() - origin) / d)) + 1
        k, self._next = self._next, self._next + 1
        await trio.sleep_until(origin + k * d)
        return self._voice if self._speaking((k - 0.5) * d) else self._silence


@attrs.frozen
class Playback:
    """One segment of agent audio as the user heard it: when it started, how many seconds of
    it were heard, and whether it was cut by an interruption."""

    started_at: float
    position: float
    interrupted: bool


class FakeAudioOutput(AudioOutput):
    """Plays in virtual real time and records every segment in ``playbacks``.

    Playback is exact: durations are kept as fractions of samples, so a 2 s reply that starts
    at 3.5 ends at exactly 5.5. Run it with ``await nursery.start(output.run)``.
    """

    def __init__(self, *, sample_rate: int | None = None) -> None:
        super().__init__(sample_rate=sample_rate, label="fake_audio_output")
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

    def _advance(self) -> None:
        now = trio.current_time()
        if self._resumed_at is not None:
            heard = min(Fraction(now - self._resumed_at), self._queued)
            if heard == self._queued or self._queued - heard < Fraction(1, 10**9):
                heard = self._queued
            self._played += heard
            self._queued -= heard
            self._resumed_at = now if self._queued else None
        if self._active and not self._queued and self._flushed:
            self._finish(interrupted=False)
        elif self._active and self._queued and not self._paused and self._resumed_at is None:
            if self._started_at is None:
                self._started_at = now
                self.on_playback_started(created_at=now)
            self._resumed_at = now

    def _finish(self, *, interrupted: bool) -> None:
        assert self._started_at is not None or interrupted
        started = self._started_at if self._started_at is not None else trio.current_time()
        self.playbacks.append(Playback(started, float(self._played), interrupted))
        self._active = False
        self._started_at = None
        self._resumed_at = None
        self._queued = Fraction(0)
        self._played = Fraction(0)
        self.on_playback_finished(
            playback_position=self.playbacks[-1].position, interrupted=interrupted
        )

    def _poke(self) -> None:
        self._advance()
        self._changed.set()

    async def capture_frame(self, frame: AudioFrame) -> None:
        await super().capture_frame(frame)
        self._advance()
        if not self._active:
            self._active, self._flushed = True, False
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
        self._changed.set()

    def resume(self) -> None:
        if self._paused:
            self.paused_periods.append((self._paused_at, trio.current_time()))
            self._paused = False
        self._poke()


class FakeTextOutput(TextOutput):
    """Records the agent's text: ``segments`` holds one string per flushed segment."""

    label = "fake_text_output"

    def __init__(self) -> None:
        self.segments: list[str] = []
        self._current: list[str] = []

    async def capture_text(self, text: str) -> None:
        self._current.append(text)

    def flush(self) -> None:
        if self._current:
            self.segments.append("".join(self._current))
            self._current = []
