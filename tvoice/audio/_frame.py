"""`AudioFrame`: a block of int16 PCM samples, shaped (samples, channels)."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any

import attrs
import numpy as np
import numpy.typing as npt

__all__ = ["AudioFrame", "Int16Array", "TimedText"]

Int16Array = npt.NDArray[np.int16]


def _positive_int(name: str, value: object) -> int:
    """Validate a rate or channel count, shared by every class in this package."""
    # bool is an int subclass; AudioFrame(x, True) is a bug, not a 1 Hz frame
    if not isinstance(value, int) or isinstance(value, bool) or value <= 0:
        raise ValueError(f"{name} must be a positive int, got {value!r}")
    return value


def _as_samples(data: Any, num_channels: int) -> Int16Array:
    if not isinstance(data, np.ndarray):
        raise TypeError(f"AudioFrame data must be a numpy int16 array, got {type(data).__name__}")
    if data.dtype != np.int16:
        raise TypeError(
            f"AudioFrame data must have dtype int16, got {data.dtype} "
            "(convert floats with (x * 32767).astype(np.int16))"
        )
    if data.ndim == 1 and num_channels == 1:
        data = data.reshape(-1, 1)
    if data.ndim != 2 or data.shape[1] != num_channels:
        raise ValueError(
            f"AudioFrame data must be shaped (samples, {num_channels}) for "
            f"num_channels={num_channels}, got shape {data.shape}"
        )
    samples: Int16Array = data
    return samples


@attrs.frozen
class TimedText:
    """A piece of text (a word, usually) that a frame of speech says, from ``start`` to ``end``
    seconds after the frame's first sample.

    A provider may tell a word's timing after the audio that says it, on a later frame, so the
    times may be negative, or past the frame's end (a word that goes on into the next frames).
    """

    text: str
    start: float
    end: float

    def __attrs_post_init__(self) -> None:
        if not self.end >= self.start:
            raise ValueError(f"a timed text must not end before it starts: {self!r}")


def _timed(words: Iterable[TimedText]) -> tuple[TimedText, ...]:
    return tuple(words)


@attrs.frozen(eq=False)
class AudioFrame:
    """Interleaved int16 PCM: ``data`` has shape (samples_per_channel, num_channels).

    A 1-D array is accepted for mono. Any other dtype or shape is rejected at construction, so a
    frame that exists is always well-formed.

    ``timed_text``: the words this frame of speech says and when (a TTS that tells its timings
    puts them there); they travel with the frame to the output, which follows them to show the
    transcript and to know what was heard. Frames made from other frames (resampled, combined,
    cut) do not keep them, and equality ignores them.
    """

    data: Int16Array
    sample_rate: int
    num_channels: int = 1
    timed_text: tuple[TimedText, ...] = attrs.field(default=(), kw_only=True, converter=_timed)

    def __attrs_post_init__(self) -> None:
        _positive_int("sample_rate", self.sample_rate)
        _positive_int("num_channels", self.num_channels)
        object.__setattr__(self, "data", _as_samples(self.data, self.num_channels))

    @property
    def samples_per_channel(self) -> int:
        """Number of samples in each channel."""
        return int(self.data.shape[0])

    @property
    def duration(self) -> float:
        """Length of the frame in seconds."""
        return self.samples_per_channel / self.sample_rate

    @classmethod
    def silence(cls, duration: float, sample_rate: int, num_channels: int = 1) -> AudioFrame:
        """A frame of zeros lasting ``duration`` seconds (rounded to whole samples)."""
        n = round(duration * sample_rate)
        return cls(np.zeros((n, num_channels), np.int16), sample_rate, num_channels)

    @classmethod
    def from_bytes(cls, pcm: bytes, sample_rate: int, num_channels: int = 1) -> AudioFrame:
        """Frame from little-endian interleaved int16 bytes (as WAV files and wires carry them)."""
        width = 2 * num_channels
        if len(pcm) % width:
            raise ValueError(
                f"{len(pcm)} bytes is not a whole number of {num_channels}-channel int16 samples"
            )
        data = np.frombuffer(pcm, dtype="<i2").astype(np.int16, copy=False)
        return cls(data.reshape(-1, num_channels), sample_rate, num_channels)

    def to_bytes(self) -> bytes:
        """Little-endian interleaved int16 bytes."""
        return self.data.astype("<i2", copy=False).tobytes()

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, AudioFrame):
            return NotImplemented
        return (
            self.sample_rate == other.sample_rate
            and self.num_channels == other.num_channels
            and np.array_equal(self.data, other.data)
        )

    __hash__ = None  # type: ignore[assignment]

    def __repr__(self) -> str:
        return (
            f"AudioFrame(samples_per_channel={self.samples_per_channel}, "
            f"sample_rate={self.sample_rate}, num_channels={self.num_channels})"
        )


def combine_frames(frames: Sequence[AudioFrame]) -> AudioFrame:
    """Concatenate frames of the same format into one."""
    if not frames:
        raise ValueError("combine_frames needs at least one frame")
    first = frames[0]
    for f in frames[1:]:
        if (f.sample_rate, f.num_channels) != (first.sample_rate, first.num_channels):
            raise ValueError(
                f"cannot combine {f.sample_rate} Hz x{f.num_channels} with "
                f"{first.sample_rate} Hz x{first.num_channels}"
            )
    if len(frames) == 1:
        return first
    return AudioFrame(
        np.concatenate([f.data for f in frames]), first.sample_rate, first.num_channels
    )
