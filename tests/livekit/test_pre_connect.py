"""Pre-connect audio is untrusted input: what a participant sends is decoded only when it is
raw PCM or Opus in the container it names, at a sane rate and channel count, and not too long.
Anything else is a ValueError (the room logs it and drops the audio), never another error."""

from __future__ import annotations

import io

import av
import numpy as np
import pytest
from livekit import rtc

from tvoice.livekit._incoming import MAX_PRE_CONNECT_SECONDS, decode_pre_connect

INPUT = {"sample_rate": 16000, "num_channels": 1}  # the session's input format


def _info(mime: str = "", **attributes: str) -> rtc.ByteStreamInfo:
    return rtc.ByteStreamInfo(
        stream_id="s",
        mime_type=mime,
        topic="lk.agent.pre-connect-audio-buffer",
        timestamp=0,
        size=None,
        attributes={"trackId": "TR_1", **attributes},
        name="",
    )


def _tone(rate: int, seconds: float) -> np.ndarray:
    t = np.arange(int(rate * seconds)) / rate
    return (10000 * np.sin(2 * np.pi * 300 * t)).astype(np.int16)


def _encoded(samples: np.ndarray, rate: int, container: str, codec: str) -> bytes:
    buffer = io.BytesIO()
    with av.open(buffer, "w", format=container) as out:
        stream = out.add_stream(codec, rate=48000 if codec == "libopus" else rate)
        stream.layout = "mono"
        frame = av.AudioFrame.from_ndarray(samples[None, :], format="s16", layout="mono")
        frame.sample_rate = rate
        for packet in stream.encode(frame):
            out.mux(packet)
        for packet in stream.encode(None):
            out.mux(packet)
    return buffer.getvalue()


def test_raw_pcm_is_decoded_at_the_session_rate():
    frames = decode_pre_connect(
        _info(sampleRate="8000", channels="1"), _tone(8000, 1.0).tobytes(), **INPUT
    )
    assert {f.sample_rate for f in frames} == {16000}
    assert sum(f.duration for f in frames) == pytest.approx(1.0, abs=0.01)


@pytest.mark.parametrize(
    ("attributes", "error"),
    [
        ({"sampleRate": "16000", "channels": "0"}, "1 or 2 channels"),
        ({"sampleRate": "16000", "channels": "3"}, "1 or 2 channels"),
        ({"sampleRate": "100", "channels": "1"}, "8000 to 48000"),
        ({"sampleRate": "96000", "channels": "1"}, "8000 to 48000"),
        ({"sampleRate": "fast", "channels": "1"}, "sampleRate"),
        ({"channels": "1"}, "sampleRate"),
        ({"sampleRate": "16000"}, "channels"),
    ],
)
def test_raw_pcm_with_a_bad_format_is_refused(attributes: dict[str, str], error: str):
    with pytest.raises(ValueError, match=error):
        decode_pre_connect(_info(**attributes), _tone(16000, 0.1).tobytes(), **INPUT)


def test_raw_pcm_longer_than_the_limit_is_refused():
    # 8 kHz: 31 s is only 496 KB, well under the byte cap, and would be 4x that resampled.
    data = _tone(8000, MAX_PRE_CONNECT_SECONDS + 1).tobytes()
    with pytest.raises(ValueError, match=f"longer than {MAX_PRE_CONNECT_SECONDS:g} s"):
        decode_pre_connect(_info(sampleRate="8000", channels="1"), data, **INPUT)


def test_opus_in_webm_is_decoded():
    data = _encoded(_tone(48000, 0.5), 48000, "webm", "libopus")
    frames = decode_pre_connect(_info("audio/webm;codecs=opus"), data, **INPUT)
    assert sum(f.duration for f in frames) == pytest.approx(0.5, abs=0.03)


def test_compressed_audio_longer_than_the_limit_is_refused():
    data = _encoded(_tone(48000, MAX_PRE_CONNECT_SECONDS + 1), 48000, "webm", "libopus")
    with pytest.raises(ValueError, match=f"longer than {MAX_PRE_CONNECT_SECONDS:g} s"):
        decode_pre_connect(_info("audio/webm;codecs=opus"), data, **INPUT)


def test_a_webm_without_audio_is_refused():
    buffer = io.BytesIO()
    with av.open(buffer, "w", format="webm") as out:
        stream = out.add_stream("libvpx", rate=10)
        stream.width, stream.height, stream.pix_fmt = 16, 16, "yuv420p"
        image = av.VideoFrame.from_ndarray(np.zeros((16, 16, 3), np.uint8), format="rgb24")
        for packet in [*stream.encode(image), *stream.encode(None)]:
            out.mux(packet)
    with pytest.raises(ValueError, match="no audio stream"):
        decode_pre_connect(_info("audio/webm"), buffer.getvalue(), **INPUT)


def test_the_container_is_the_one_named_not_whatever_ffmpeg_finds():
    # A WAV file sent as WebM: FFmpeg would probe and read it; the sender named WebM.
    wav = _encoded(_tone(16000, 0.5), 16000, "wav", "pcm_s16le")
    with pytest.raises(ValueError, match="cannot decode"):
        decode_pre_connect(_info("audio/webm;codecs=opus"), wav, **INPUT)


@pytest.mark.parametrize("mime", ["audio/mpeg", "video/mp4", "audio/aac"])
def test_a_compressed_format_other_than_webm_or_ogg_is_refused(mime: str):
    with pytest.raises(ValueError, match="not a pre-connect audio format"):
        decode_pre_connect(_info(mime), b"\x00" * 100, **INPUT)
