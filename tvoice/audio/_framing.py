"""`AudioChunker`: cut a stream of arbitrarily sized frames into fixed-duration frames.

VAD models, echo cancellers and most realtime STT endpoints want exactly 10, 20 or 30 ms per call,
while microphones, rooms and TTS engines hand out whatever size they like. The chunker sits
between the two.
"""

from __future__ import annotations

import math

import numpy as np

from ._frame import AudioFrame, Int16Array, _positive_int

__all__ = ["AudioChunker"]


class AudioChunker:
    """Re-frame a stream into frames of exactly ``frame_duration`` seconds.

    `push` (or `push_bytes` for raw little-endian int16 PCM off the wire) takes frames of any
    size and returns every complete fixed-size frame available so far, in order; `flush` ends the
    stream and returns the leftover partial frame. The audio out, concatenated, is exactly the
    audio in.

    Frames are treated as immutable, like every `AudioFrame`: an output frame may be a view of an
    input frame's data rather than a copy.
    """

    __slots__ = (
        "_num_channels",
        "_partial",
        "_pending",
        "_pending_samples",
        "_sample_rate",
        "_samples_per_frame",
    )

    def __init__(
        self, sample_rate: int, num_channels: int = 1, *, frame_duration: float = 0.02
    ) -> None:
        self._sample_rate = _positive_int("sample_rate", sample_rate)
        self._num_channels = _positive_int("num_channels", num_channels)
        if not (math.isfinite(frame_duration) and frame_duration > 0):
            raise ValueError(f"frame_duration must be a positive number, got {frame_duration!r}")
        size = round(frame_duration * sample_rate)
        if size < 1:
            raise ValueError(
                f"frame_duration={frame_duration} s is shorter than one sample at {sample_rate} Hz"
            )
        self._samples_per_frame = size
        # Arrays waiting to make up a frame, and their total length. Kept as a list and joined
        # once per output batch: appending to one growing array would copy it on every push
        # (quadratic in the number of small pushes).
        self._pending: list[Int16Array] = []
        self._pending_samples = 0
        # Bytes of an incomplete sample (or incomplete multichannel sample frame) left over from
        # the last push_bytes, since a network read may end anywhere.
        self._partial = b""

    @property
    def sample_rate(self) -> int:
        """Sample rate of the frames in and out."""
        return self._sample_rate

    @property
    def num_channels(self) -> int:
        """Channel count of the frames in and out."""
        return self._num_channels

    @property
    def samples_per_frame(self) -> int:
        """Samples per channel in each output frame (``frame_duration`` rounded to samples)."""
        return self._samples_per_frame

    @property
    def pending_samples(self) -> int:
        """Samples per channel held back, waiting to complete a frame (always < one frame)."""
        return self._pending_samples

    def push(self, frame: AudioFrame) -> list[AudioFrame]:
        """Add a frame of any size; return every complete fixed-size frame now available.

        Raises ValueError if the frame's rate or channel count differs from the chunker's.
        """
        if (frame.sample_rate, frame.num_channels) != (self._sample_rate, self._num_channels):
            raise ValueError(
                f"AudioChunker expects {self._sample_rate} Hz x{self._num_channels} frames, "
                f"got {frame.sample_rate} Hz x{frame.num_channels}"
            )
        n = frame.samples_per_channel
        if not n:
            return []
        self._pending.append(frame.data)
        self._pending_samples += n
        if self._pending_samples < self._samples_per_frame:
            return []
        return self._cut()

    def push_bytes(self, pcm: bytes | bytearray | memoryview) -> list[AudioFrame]:
        """Like `push`, for interleaved little-endian int16 bytes in the chunker's format.

        ``pcm`` may end in the middle of a sample: the stray bytes are kept and completed by the
        next call.
        """
        if not isinstance(pcm, bytes):
            # output frames may be views of this buffer, and a bytearray is often reused for
            # the next network read: take a private copy
            pcm = bytes(pcm)
        if self._partial:
            pcm = self._partial + pcm
        width = 2 * self._num_channels
        whole = len(pcm) - len(pcm) % width
        self._partial = pcm[whole:]
        if not whole:
            return []
        # frombuffer shares the immutable bytes object rather than copying it
        data = np.frombuffer(pcm, dtype="<i2", count=whole // 2).astype(np.int16, copy=False)
        frame = AudioFrame(
            data.reshape(-1, self._num_channels), self._sample_rate, self._num_channels
        )
        return self.push(frame)

    def flush(self, *, pad: bool = False) -> list[AudioFrame]:
        """End the stream: return the leftover partial frame, if any, and reset.

        With ``pad=True`` the leftover is zero-padded to a full frame, for consumers that only
        accept the fixed size. A trailing incomplete sample from `push_bytes` is dropped: a stream
        that ends mid-sample carries no usable audio in those bytes.
        """
        self._partial = b""
        if not self._pending_samples:
            return []
        rest = self._join()
        self._pending, self._pending_samples = [], 0
        if pad:
            fill = np.zeros((self._samples_per_frame - len(rest), self._num_channels), np.int16)
            rest = np.concatenate([rest, fill])
        return [AudioFrame(rest, self._sample_rate, self._num_channels)]

    def _join(self) -> Int16Array:
        if len(self._pending) == 1:
            return self._pending[0]
        return np.concatenate(self._pending)

    def _cut(self) -> list[AudioFrame]:
        buf = self._join()
        size = self._samples_per_frame
        end = len(buf) - len(buf) % size
        out = [
            AudioFrame(buf[i : i + size], self._sample_rate, self._num_channels)
            for i in range(0, end, size)
        ]
        # Copy the remainder (less than one frame) so that it does not keep a possibly huge
        # input buffer alive through a view.
        rest = buf[end:].copy()
        self._pending = [rest] if len(rest) else []
        self._pending_samples = len(rest)
        return out

    def __repr__(self) -> str:
        return (
            f"AudioChunker({self._sample_rate}, {self._num_channels}, "
            f"samples_per_frame={self._samples_per_frame})"
        )
