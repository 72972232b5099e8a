"""Audio from a file, paced like a microphone."""

from __future__ import annotations

import numpy as np
import trio
import trio.lowlevel

from ..audio import AudioChunker, AudioFrame
from ._io import AudioInput

__all__ = ["FileAudioInput"]


class FileAudioInput(AudioInput):
    """Plays ``audio`` into a session as a microphone would: one ``frame_duration`` frame at a
    time on trio's clock, then silence (a call does not end when the caller stops talking).

    ``started_at`` is the trio time of the first frame; ``finished`` is set when the whole
    file has been delivered (at ``finished_at``). With ``paced=False`` the file is delivered as
    fast as it is read (the silence after it is still paced).
    """

    label = "file_audio_input"

    def __init__(
        self,
        audio: AudioFrame,
        *,
        frame_duration: float = 0.02,
        then_silence: bool = True,
        paced: bool = True,
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
        self.paced = paced
        self.started_at: float | None = None
        self.finished_at: float | None = None
        self.finished = trio.Event()
        self._index = 0
        self._silence_from = 0.0

    async def __anext__(self) -> AudioFrame:
        now = trio.current_time()
        if self.started_at is None:
            self.started_at = now
        k = self._index
        self._index += 1
        if k < len(self._frames):
            if self.paced:
                await trio.sleep_until(self.started_at + (k + 1) * self.frame_duration)
            else:
                await trio.lowlevel.checkpoint()
            return self._frames[k]
        if not self.finished.is_set():
            self.finished_at = now
            self._silence_from = now - (k - len(self._frames)) * self.frame_duration
            self.finished.set()
        if not self.then_silence:
            raise StopAsyncIteration
        silent = k - len(self._frames) + 1
        await trio.sleep_until(self._silence_from + silent * self.frame_duration)
        return self._silence
