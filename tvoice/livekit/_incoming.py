"""What a participant sends the agent on data streams, read and decoded with limits: it is
untrusted input, and a bad stream is a ValueError (the room logs it and drops it).

- Text on ``lk.chat`` (:func:`read_text`): at most the room's ``max_text_input_chars``.
- Pre-connect audio on ``lk.agent.pre-connect-audio-buffer``: what the user said while the agent
  was joining, played to the session before the live microphone. At most
  :data:`MAX_PRE_CONNECT_BYTES` are read (:func:`read_bytes`) and
  :data:`MAX_PRE_CONNECT_SECONDS` decoded (:func:`decode_pre_connect`): raw PCM or Opus in the
  container it names, at a sane rate and channel count, and nothing else.
"""

from __future__ import annotations

import io
from typing import Any

import livekit.rtc as rtc
import numpy as np

from ..audio import AudioFrame, resample
from ._room_audio import CHUNK_DURATION

__all__ = [
    "MAX_PRE_CONNECT_BYTES",
    "MAX_PRE_CONNECT_SECONDS",
    "decode_pre_connect",
    "read_bytes",
    "read_text",
]

MAX_PRE_CONNECT_BYTES = 10 * 1024 * 1024
MAX_PRE_CONNECT_SECONDS = 30.0
"""Pre-connect audio is what the user said while the agent was joining: seconds, not minutes."""
MIN_PRE_CONNECT_RATE, MAX_PRE_CONNECT_RATE = 8000, 48000
# What clients call raw little-endian int16 PCM (the type is often left empty).
_RAW_PCM_TYPES = ("", "application/octet-stream", "audio/pcm", "audio/raw", "audio/l16")


async def read_text(reader: rtc.TextStreamReader, limit: int) -> str:
    """asyncio side: the whole text of a stream, at most ``limit`` characters."""
    pieces: list[str] = []
    size = 0
    try:
        async for chunk in reader:
            size += len(chunk)
            if size > limit:
                raise ValueError(f"text input longer than {limit} characters")
            pieces.append(chunk)
    finally:
        reader.close()
    return "".join(pieces)


async def read_bytes(reader: rtc.ByteStreamReader, limit: int) -> bytes:
    """asyncio side: the whole payload of a byte stream, at most ``limit`` bytes."""
    data = bytearray()
    try:
        async for chunk in reader:
            data += chunk
            if len(data) > limit:
                raise ValueError(f"byte stream larger than {limit} bytes")
    finally:
        reader.close()
    return bytes(data)


def decode_pre_connect(
    info: rtc.ByteStreamInfo, data: bytes, *, sample_rate: int, num_channels: int
) -> list[AudioFrame]:
    """The pre-connect audio as frames of ``sample_rate`` and ``num_channels`` (the session's
    input format). It comes as raw little-endian int16 PCM (``sampleRate``, ``channels``
    attributes: the mobile SDKs), or as Opus in a WebM or Ogg container (what browsers record;
    decoded with PyAV).

    A participant sends it: anything but that (another format, a rate outside 8-48 kHz, more
    than 2 channels, over :data:`MAX_PRE_CONNECT_SECONDS`) is a ValueError. Blocking: call it
    in a thread."""
    if not data:
        return []
    mime = (info.mime_type or "").lower()
    kind = mime.split(";")[0].strip()
    if "webm" in kind or "ogg" in kind or kind == "audio/opus":
        frame = _decode_compressed(data, mime, "webm" if "webm" in kind else "ogg")
    elif kind in _RAW_PCM_TYPES:
        attributes = info.attributes or {}
        rate = _int_attribute(attributes, "sampleRate")
        channels = _int_attribute(attributes, "channels")
        if not MIN_PRE_CONNECT_RATE <= rate <= MAX_PRE_CONNECT_RATE:
            raise ValueError(
                f"sampleRate {rate}: raw pre-connect audio must be"
                f" {MIN_PRE_CONNECT_RATE} to {MAX_PRE_CONNECT_RATE} Hz"
            )
        if channels not in (1, 2):
            raise ValueError(f"channels {channels}: raw pre-connect audio has 1 or 2 channels")
        usable = len(data) - len(data) % (2 * channels)
        _check_duration(usable // (2 * channels) / rate)
        frame = AudioFrame.from_bytes(data[:usable], rate, channels)
    else:
        raise ValueError(f"{mime!r} is not a pre-connect audio format (raw PCM, WebM, Ogg)")
    if frame.num_channels != num_channels:
        mono = frame.data.mean(axis=1, dtype=np.float32).astype(np.int16)
        frame = AudioFrame(
            np.repeat(mono[:, None], num_channels, axis=1), frame.sample_rate, num_channels
        )
    frame = resample(frame, sample_rate)
    size = round(CHUNK_DURATION * frame.sample_rate)
    return [
        AudioFrame(frame.data[i : i + size], frame.sample_rate, frame.num_channels)
        for i in range(0, frame.samples_per_channel, size)
    ]


def _int_attribute(attributes: dict[str, str], name: str) -> int:
    try:
        return int(attributes[name])
    except (KeyError, ValueError):
        raise ValueError(f"raw pre-connect audio needs an integer {name} attribute") from None


def _check_duration(seconds: float) -> None:
    if seconds > MAX_PRE_CONNECT_SECONDS:
        raise ValueError(f"pre-connect audio longer than {MAX_PRE_CONNECT_SECONDS:g} s")


def _decode_compressed(data: bytes, mime: str, container_format: str) -> AudioFrame:
    """The first audio stream of a ``container_format`` file (FFmpeg probes nothing: only that
    demuxer reads the sender's bytes), as one mono 48 kHz frame."""
    try:
        import av
    except ImportError:
        raise ValueError(
            f"{mime} pre-connect audio needs PyAV to decode it: pip install av"
        ) from None
    limit = int(MAX_PRE_CONNECT_SECONDS * 48000)
    try:
        with av.open(io.BytesIO(data), mode="r", format=container_format) as container:
            if not container.streams.audio:
                raise ValueError(f"{mime} pre-connect audio has no audio stream")
            to_pcm = av.AudioResampler(format="s16", layout="mono", rate=48000)
            chunks: list[np.ndarray[Any, Any]] = []
            decoded_samples = 0
            for decoded in container.decode(container.streams.audio[0]):
                for out in to_pcm.resample(decoded):
                    chunks.append(out.to_ndarray().reshape(-1))
                    decoded_samples += chunks[-1].size
                # Checked as it decodes: a small file can hold hours of silence.
                _check_duration(decoded_samples / 48000)
            chunks += [out.to_ndarray().reshape(-1) for out in to_pcm.resample(None)]
    except av.FFmpegError as e:
        raise ValueError(f"cannot decode {mime} pre-connect audio: {e}") from None
    samples = np.concatenate(chunks)[:limit] if chunks else np.zeros(0, np.int16)
    return AudioFrame(samples.astype(np.int16)[:, None], 48000, 1)
