"""espeak-ng's side of the conversation: its command line, and the WAV stream it writes.

``espeak-ng --stdout`` writes a WAV header whose sizes are placeholders (it cannot know them
in advance), then 16-bit PCM as it synthesizes, long before it exits.
"""

from __future__ import annotations

import struct

import attrs

from tvoice.audio import AudioChunker, AudioFrame, AudioResampler

__all__ = ["FRAME_DURATION", "PcmDecoder", "command", "parse_wav_header"]

FRAME_DURATION = 0.05
"""Length of the frames emitted, in seconds: small enough for a player to start and stop
quickly, large enough not to flood the output with tiny frames."""

# A header is 44 bytes in practice; anything this long without the samples starting is not one.
_MAX_HEADER = 4096
_WAVE_FORMAT_PCM = 1
_WAVE_FORMAT_EXTENSIBLE = 0xFFFE


def command(executable: str, *, voice: str, speed: int, pitch: int) -> list[str]:
    """The argument list of one synthesis. The text goes on stdin, never on the command line,
    so nothing it holds ("-v", "--help") can be taken for an option; no shell is involved."""
    return [
        executable,
        "--stdout",  # WAV on stdout, nothing played
        "--stdin",  # the whole of stdin is the text
        "-b",
        "1",  # stdin is UTF-8, whatever the locale
        "-v",
        voice,
        "-s",
        str(speed),
        "-p",
        str(pitch),
    ]


@attrs.frozen
class PcmFormat:
    """What a WAV header says about the samples that follow it."""

    sample_rate: int
    num_channels: int


def parse_wav_header(buf: bytes) -> tuple[PcmFormat, int] | None:
    """``(format, offset of the first sample)`` once ``buf`` holds the whole header, else None.

    Raises ValueError if ``buf`` does not start a 16-bit PCM WAV stream.
    """
    if len(buf) < 12:
        return None
    if buf[:4] != b"RIFF" or buf[8:12] != b"WAVE":
        raise ValueError(f"not a WAV stream (starts with {buf[:12]!r})")
    fmt: PcmFormat | None = None
    pos = 12
    while len(buf) >= pos + 8:
        chunk_id, size = buf[pos : pos + 4], int.from_bytes(buf[pos + 4 : pos + 8], "little")
        body = pos + 8
        if chunk_id == b"data":
            if fmt is None:
                raise ValueError("WAV samples before their format")
            return fmt, body
        if len(buf) < body + size:
            break
        if chunk_id == b"fmt ":
            fmt = _parse_fmt(buf[body : body + size])
        pos = body + size + (size & 1)  # chunks are padded to an even length
    if len(buf) > _MAX_HEADER:
        raise ValueError(f"no WAV samples within the first {_MAX_HEADER} bytes")
    return None


def _parse_fmt(body: bytes) -> PcmFormat:
    if len(body) < 16:
        raise ValueError(f"WAV format chunk of {len(body)} bytes")
    tag, channels, rate, _, _, bits = struct.unpack_from("<HHIIHH", body)
    if tag not in (_WAVE_FORMAT_PCM, _WAVE_FORMAT_EXTENSIBLE) or bits != 16:
        raise ValueError(f"WAV format {tag:#x} with {bits}-bit samples, not 16-bit PCM")
    if channels < 1 or rate < 1:
        raise ValueError(f"WAV of {channels} channels at {rate} Hz")
    return PcmFormat(sample_rate=rate, num_channels=channels)


class PcmDecoder:
    """Bytes of a WAV stream in, mono frames of :data:`FRAME_DURATION` at ``sample_rate`` out.

    The header is read once; audio at another rate (espeak-ng's MBROLA voices speak at
    16 kHz) is resampled, so the frames always have the rate the TTS announced.
    """

    def __init__(self, sample_rate: int) -> None:
        self._sample_rate = sample_rate
        self._header = b""
        self._chunker: AudioChunker | None = None
        self._resampler = AudioResampler(sample_rate, sample_rate)

    def push(self, data: bytes | bytearray) -> list[AudioFrame]:
        """Frames completed by ``data``. Raises ValueError if the stream is not 16-bit WAV."""
        if self._chunker is None:
            self._header += data
            parsed = parse_wav_header(self._header)
            if parsed is None:
                return []
            fmt, offset = parsed
            if fmt.num_channels != 1:
                raise ValueError(f"{fmt.num_channels} channels, not mono")
            self._chunker = AudioChunker(fmt.sample_rate, frame_duration=FRAME_DURATION)
            # A pass-through when the rates agree, which they do for espeak-ng's own voices.
            self._resampler = AudioResampler(fmt.sample_rate, self._sample_rate)
            data, self._header = self._header[offset:], b""
        return self._convert(self._chunker.push_bytes(data))

    def flush(self) -> list[AudioFrame]:
        """The last, shorter frame(s), at the end of the stream.

        Raises ValueError if the stream ended within its header.
        """
        if self._chunker is None:
            if self._header:
                raise ValueError(f"the stream ended within its WAV header: {self._header!r}")
            return []
        frames = self._convert(self._chunker.flush())
        return frames + [f for f in self._resampler.flush() if f.samples_per_channel]

    def _convert(self, frames: list[AudioFrame]) -> list[AudioFrame]:
        out = [r for f in frames for r in self._resampler.push(f)]
        return [f for f in out if f.samples_per_channel]
