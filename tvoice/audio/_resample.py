"""Sample-rate conversion: one-shot `resample` and the streaming `AudioResampler`.

Both use libsoxr (through the ``soxr`` package): a proper polyphase low-pass filter, so content
above the target Nyquist frequency is removed instead of folding back as aliasing, and int16 is
converted natively with no float round trip in Python.
"""

from __future__ import annotations

from typing import Protocol

import numpy as np
import soxr

from ._frame import AudioFrame, Int16Array, _positive_int

__all__ = ["AudioResampler", "resample"]

# libsoxr's presets, fastest first. "HQ" (the default) is transparent for speech at a small CPU
# cost; "VHQ" is for music. libsoxr's "QQ" is left out on purpose: it is plain cubic
# interpolation with no low-pass filter (measured: a 7 kHz tone taken from 48 to 8 kHz comes out
# at full strength, folded to 1 kHz), and everything here promises anti-aliasing.
_QUALITIES = ("LQ", "MQ", "HQ", "VHQ")


class _SoxrStream(Protocol):
    """The part of ``soxr.ResampleStream`` we use; soxr ships no type information."""

    def resample_chunk(self, x: Int16Array, last: bool = False) -> Int16Array: ...

    def clear(self) -> None: ...


def _check_quality(quality: str) -> str:
    if quality not in _QUALITIES:
        raise ValueError(f"quality must be one of {_QUALITIES}, got {quality!r}")
    return quality


def resample(frame: AudioFrame, rate: int, *, quality: str = "HQ") -> AudioFrame:
    """Convert a whole frame to ``rate`` Hz in one go, with anti-aliasing.

    Use this for complete clips (a TTS reply, a WAV file); for audio that arrives in pieces use
    `AudioResampler`, which keeps filter state across frames so there are no clicks at frame
    edges. The output is aligned with the input (the filter delay is compensated) and holds about
    ``frame.samples_per_channel * rate / frame.sample_rate`` samples per channel. A frame already
    at ``rate`` is returned as is.

    ``quality`` is a libsoxr preset: "LQ", "MQ", "HQ" (the default) or "VHQ".
    """
    _positive_int("rate", rate)
    _check_quality(quality)
    if rate == frame.sample_rate:
        return frame
    # soxr's C extension takes C-ordered buffers; converting here costs nothing for the usual
    # contiguous frame, and a strided view (one channel sliced out of stereo) does not depend on
    # the binding's implicit conversion
    out: Int16Array = soxr.resample(
        np.ascontiguousarray(frame.data), frame.sample_rate, rate, quality=quality
    )
    return AudioFrame(out, rate, frame.num_channels)


class AudioResampler:
    """Streaming sample-rate converter for audio that arrives frame by frame.

    `push` takes frames at ``input_rate`` and returns the converted audio produced so far;
    `flush` returns the held-back tail at the end of a segment. libsoxr works in blocks, so output
    comes in bursts: at "HQ", 10 ms pushes return nothing for the first 30 ms, then about 30 ms
    of audio on every third push ("LQ" roughly halves both). Concatenated, the output matches
    `resample` of the concatenated input to within a couple of LSB. After `flush` the resampler
    starts afresh, so one instance can serve one segment after another.

    When ``input_rate == output_rate`` frames pass straight through, uncopied.
    """

    __slots__ = ("_input_rate", "_num_channels", "_output_rate", "_quality", "_stream")

    def __init__(
        self, input_rate: int, output_rate: int, num_channels: int = 1, *, quality: str = "HQ"
    ) -> None:
        self._input_rate = _positive_int("input_rate", input_rate)
        self._output_rate = _positive_int("output_rate", output_rate)
        self._num_channels = _positive_int("num_channels", num_channels)
        self._quality = _check_quality(quality)
        self._stream: _SoxrStream | None = None
        if input_rate != output_rate:
            self._stream = soxr.ResampleStream(
                input_rate, output_rate, num_channels, dtype="int16", quality=quality
            )

    @property
    def input_rate(self) -> int:
        """Sample rate of the frames `push` accepts."""
        return self._input_rate

    @property
    def output_rate(self) -> int:
        """Sample rate of the frames `push` and `flush` return."""
        return self._output_rate

    @property
    def num_channels(self) -> int:
        """Channel count of the frames in and out."""
        return self._num_channels

    @property
    def quality(self) -> str:
        """The libsoxr quality preset in use."""
        return self._quality

    def push(self, frame: AudioFrame) -> list[AudioFrame]:
        """Convert one more frame of the stream; returns zero or one (non-empty) frame.

        Raises ValueError if the frame's rate or channel count is not the resampler's input
        format: mixing formats mid-stream would garble the audio silently.
        """
        if (frame.sample_rate, frame.num_channels) != (self._input_rate, self._num_channels):
            raise ValueError(
                f"AudioResampler expects {self._input_rate} Hz x{self._num_channels} frames, "
                f"got {frame.sample_rate} Hz x{frame.num_channels}"
            )
        if self._stream is None:
            return [frame] if frame.samples_per_channel else []
        return self._wrap(self._stream.resample_chunk(np.ascontiguousarray(frame.data)))

    def flush(self) -> list[AudioFrame]:
        """End the current segment: return the filter's held-back tail (zero or one frame).

        The resampler is reset, so the next `push` starts a new, independent segment.
        """
        if self._stream is None:
            return []
        empty = np.empty((0, self._num_channels), np.int16)
        tail = self._stream.resample_chunk(empty, last=True)
        # libsoxr refuses input after ``last``; clearing keeps the configured filter (cheaper
        # than building a new stream) and forgets the old segment
        self._stream.clear()
        return self._wrap(tail)

    def _wrap(self, out: Int16Array) -> list[AudioFrame]:
        if not len(out):
            return []
        return [AudioFrame(out, self._output_rate, self._num_channels)]

    def __repr__(self) -> str:
        return (
            f"AudioResampler({self._input_rate}, {self._output_rate}, {self._num_channels}, "
            f"quality={self._quality!r})"
        )
