"""Audio from a file, paced like a microphone."""

from __future__ import annotations

import numpy as np
import trio

from ..audio import AudioChunker, AudioFrame
from ._io import AudioInput

__all__ = ["FileAudioInput"]


class FileAudioInput(AudioInput):
    """Plays ``audio`` into a session as a microphone would: one ``frame_duration`` frame at a
    time on trio's clock, then silence (a call does not end when the caller stops talking).

    ``started_at`` is the trio time of the first frame; ``finished`` is set when the whole
    file has been delivered.
    """

    label = "file_audio_input"

    def __init__(
        self, audio: AudioFrame, *, frame_duration: float = 0.02, then_silence: bool = True
    ) -> None:
        chunker = AudioChunker(audio.sample_rate, audio.num_channels, frame_duration=frame_duration)
        self._frames = chunker.push(audio) + chunker.flush(pad=True)
        self._silence = AudioFrame(
            np.zeros((chunker.samples_per_frame, audio.num_channels), np.int16),
            audio.sample_rate,
            audio.num_channels,
        )
        self.audio = audio
        self.frame_duration = frame_duration
        self.then_silence = then_silence
        self.started_at: float | None = None
        self.finished = trio.Event()
        self._index = 0

    async def __anext__(self) -> AudioFrame:
        now = trio.current_time()
        if self.started_at is None:
            self.started_at = now
        k = self._index
        self._index += 1
        await trio.sleep_until(self.started_at + (k + 1) * self.frame_duration)
        if k < len(self._frames):
            return self._frames[k]
        self.finished.set()
        if not self.then_silence:
            raise StopAsyncIteration
        return self._silence
