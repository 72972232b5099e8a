"""16-bit PCM WAV files in and out: test fixtures, recordings, and uploads to HTTP STT APIs.

Only 16-bit integer PCM is handled, because that is what `AudioFrame` holds: other sample formats
are rejected with a message naming what the file contains, rather than converted behind the
caller's back.
"""

from __future__ import annotations

import io
import itertools
import os
import struct
import wave
from collections.abc import Iterable, Iterator
from typing import IO

from ._frame import AudioFrame

__all__ = ["read_wav", "wav_bytes", "write_wav"]

_StrPath = str | os.PathLike[str]

# WAVE format tags a caller is likely to meet, for error messages
_FORMAT_NAMES = {1: "PCM", 3: "IEEE float", 6: "A-law", 7: "mu-law"}
_EXTENSIBLE = 0xFFFE


def read_wav(source: _StrPath | bytes) -> AudioFrame:
    """Read a 16-bit PCM WAV file (any rate, any channel count) into one frame; ``source`` is
    its path, or its bytes (an upload).

    Raises ValueError for anything else (8-, 24- or 32-bit PCM, float, compressed formats, or a
    file that is not a WAV at all), saying what was found.
    """
    path = "the WAV data" if isinstance(source, bytes) else os.fspath(source)
    try:
        with wave.open(io.BytesIO(source) if isinstance(source, bytes) else path, "rb") as w:
            width, channels, rate = w.getsampwidth(), w.getnchannels(), w.getframerate()
            if width != 2:
                raise ValueError(
                    f"{path}: only 16-bit PCM WAV files are supported, found {8 * width}-bit PCM"
                )
            pcm = w.readframes(w.getnframes())
    except (wave.Error, EOFError) as e:
        # The wave module rejects non-PCM formats with a bare "unknown format: 3"; read the
        # header ourselves to say what the file actually holds.
        found = _describe_format(source if isinstance(source, bytes) else path)
        detail = f"found {found}" if found else f"not a readable WAV file ({e})"
        raise ValueError(f"{path}: only 16-bit PCM WAV files are supported, {detail}") from e
    # A truncated file can end mid-sample; keep the whole samples rather than refuse the file.
    block = 2 * channels
    return AudioFrame.from_bytes(pcm[: len(pcm) - len(pcm) % block], rate, channels)


def write_wav(path: _StrPath, frames: AudioFrame | Iterable[AudioFrame]) -> None:
    """Write one frame, or frames of one format in order, as a 16-bit PCM WAV file.

    Frames are written as they are iterated, so a long generator is never held in memory. Raises
    ValueError if there are no frames (a WAV header needs a format) or if a frame's format differs
    from the first one's; in the latter case the file holds the frames before the odd one.
    """
    first, rest = _first_and_rest(frames)
    with open(os.fspath(path), "wb") as f:
        _write(f, first, rest)


def wav_bytes(frames: AudioFrame | Iterable[AudioFrame]) -> bytes:
    """A complete 16-bit PCM WAV file in memory, e.g. for an HTTP speech-to-text upload.

    Takes the same arguments as `write_wav` and raises the same errors.
    """
    first, rest = _first_and_rest(frames)
    buf = io.BytesIO()
    _write(buf, first, rest)
    return buf.getvalue()


def _first_and_rest(
    frames: AudioFrame | Iterable[AudioFrame],
) -> tuple[AudioFrame, Iterator[AudioFrame]]:
    # Take the first frame before opening anything: it fixes the header's format, and an empty
    # input must fail without leaving an empty file behind.
    if isinstance(frames, AudioFrame):
        return frames, iter(())
    it = iter(frames)
    first = next(it, None)
    if first is None:
        raise ValueError("no frames to write: a WAV file needs at least one frame for its format")
    return first, it


def _write(f: IO[bytes], first: AudioFrame, rest: Iterator[AudioFrame]) -> None:
    with wave.open(f, "wb") as w:
        w.setnchannels(first.num_channels)
        w.setsampwidth(2)
        w.setframerate(first.sample_rate)
        for frame in itertools.chain([first], rest):
            if (frame.sample_rate, frame.num_channels) != (first.sample_rate, first.num_channels):
                raise ValueError(
                    f"all frames of a WAV file must share one format: got {frame.sample_rate} Hz "
                    f"x{frame.num_channels} after {first.sample_rate} Hz x{first.num_channels}"
                )
            # writeframesraw leaves the header alone; close() fixes the length once, where
            # writeframes would seek back and rewrite it after every frame
            w.writeframesraw(frame.to_bytes())


def _describe_format(source: str | bytes) -> str | None:
    """Describe the sample format in a WAV file's fmt chunk, or None if there is none to find."""
    with io.BytesIO(source) if isinstance(source, bytes) else open(source, "rb") as f:
        riff = f.read(12)
        if len(riff) < 12 or riff[:4] != b"RIFF" or riff[8:] != b"WAVE":
            return None
        while len(header := f.read(8)) == 8:
            chunk_id, size = header[:4], struct.unpack("<I", header[4:])[0]
            if chunk_id == b"fmt ":
                return _describe_fmt_chunk(f.read(size))
            # chunks are padded to an even length
            f.seek(size + size % 2, os.SEEK_CUR)
    return None


def _describe_fmt_chunk(fmt: bytes) -> str | None:
    if len(fmt) < 16:
        return None
    tag, channels, rate, _, _, bits = struct.unpack("<HHIIHH", fmt[:16])
    container = hint = ""
    if tag == _EXTENSIBLE and len(fmt) >= 26:
        # the real format tag is the first two bytes of the SubFormat GUID
        (tag,) = struct.unpack("<H", fmt[24:26])
        container = " in a WAVE_FORMAT_EXTENSIBLE header"
        if tag == 1 and bits == 16:
            # the samples are fine; only Python < 3.12's wave module cannot read the container
            hint = "; re-save it as a plain PCM WAV"
    name = _FORMAT_NAMES.get(tag, f"format tag {tag:#06x}")
    return f"{bits}-bit {name}{container}, {channels} channel(s) at {rate} Hz{hint}"
