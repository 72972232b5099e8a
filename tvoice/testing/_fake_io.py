"""Scripted audio input and virtual-real-time outputs that record what was heard."""

from __future__ import annotations

import numpy as np
import trio

from ..audio import AudioFrame
from ..io import AudioInput, ClockedAudioOutput, Playback, TextOutput
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


class FakeAudioOutput(ClockedAudioOutput):
    """Plays in virtual real time and records every segment in ``playbacks``
    (a :class:`tvoice.io.ClockedAudioOutput`). Run it with ``await nursery.start(output.run)``;
    ``tl.session()`` does."""

    def __init__(self, *, sample_rate: int | None = None, keep_audio: bool = False) -> None:
        super().__init__(sample_rate=sample_rate, keep_audio=keep_audio, label="fake_audio_output")


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
