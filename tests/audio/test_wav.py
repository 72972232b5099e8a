import io
import struct
import sys
import wave

import numpy as np
import pytest

from tvoice.audio import AudioFrame, read_wav, wav_bytes, write_wav


def noise(n: int, channels: int) -> np.ndarray:
    rng = np.random.default_rng(n + channels)
    return rng.integers(-32768, 32768, (n, channels)).astype(np.int16)


def chunk(chunk_id: bytes, payload: bytes) -> bytes:
    pad = b"\x00" if len(payload) % 2 else b""
    return chunk_id + struct.pack("<I", len(payload)) + payload + pad


def riff(*chunks: bytes) -> bytes:
    body = b"WAVE" + b"".join(chunks)
    return b"RIFF" + struct.pack("<I", len(body)) + body


def fmt(tag: int, channels: int, rate: int, bits: int, extra: bytes = b"") -> bytes:
    block = channels * bits // 8
    return chunk(
        b"fmt ", struct.pack("<HHIIHH", tag, channels, rate, rate * block, block, bits) + extra
    )


def extensible(subformat: int, channels: int, rate: int, bits: int) -> bytes:
    guid_tail = b"\x00\x00\x00\x00\x10\x00\x80\x00\x00\xaa\x00\x38\x9b\x71"
    extra = struct.pack("<HHI", 22, bits, 0) + struct.pack("<H", subformat) + guid_tail
    return fmt(0xFFFE, channels, rate, bits, extra)


def write_raw_wav(path, width: int, channels: int = 1, rate: int = 16000) -> None:
    with wave.open(str(path), "wb") as w:
        w.setnchannels(channels)
        w.setsampwidth(width)
        w.setframerate(rate)
        w.writeframes(b"\x00" * width * channels * 10)


@pytest.mark.parametrize(("channels", "rate"), [(1, 16000), (2, 44100), (3, 8000)])
def test_round_trip(tmp_path, channels, rate):
    frame = AudioFrame(noise(1234, channels), rate, channels)
    path = tmp_path / "a.wav"
    write_wav(path, frame)
    assert read_wav(path) == frame
    assert read_wav(str(path)) == frame


def test_file_is_standard_pcm(tmp_path):
    path = tmp_path / "a.wav"
    frame = AudioFrame(noise(100, 2), 24000, 2)
    write_wav(path, frame)
    with wave.open(str(path), "rb") as w:
        params = w.getparams()
        assert (params.nchannels, params.sampwidth, params.framerate, params.nframes) == (
            (2, 2, 24000, 100)
        )
        assert params.comptype == "NONE"
        assert w.readframes(100) == frame.to_bytes()


def test_write_several_frames(tmp_path):
    x = noise(1000, 1)
    path = tmp_path / "a.wav"
    write_wav(path, (AudioFrame(x[i : i + 100], 16000) for i in range(0, 1000, 100)))
    assert read_wav(path) == AudioFrame(x, 16000)


def test_write_empty_frame(tmp_path):
    path = tmp_path / "a.wav"
    write_wav(path, AudioFrame(np.zeros((0, 2), np.int16), 8000, 2))
    assert read_wav(path) == AudioFrame(np.zeros((0, 2), np.int16), 8000, 2)


def test_write_no_frames(tmp_path):
    path = tmp_path / "a.wav"
    with pytest.raises(ValueError, match="at least one frame"):
        write_wav(path, [])
    assert not path.exists()


def test_write_mixed_formats(tmp_path):
    frames = [AudioFrame(noise(10, 1), 16000), AudioFrame(noise(10, 1), 8000)]
    with pytest.raises(ValueError, match=r"one format: got 8000 Hz x1 after 16000 Hz x1"):
        write_wav(tmp_path / "a.wav", frames)
    with pytest.raises(ValueError, match="one format"):
        wav_bytes(frames)


def test_wav_bytes():
    frame = AudioFrame(noise(500, 1), 16000)
    data = wav_bytes(frame)
    assert data[:4] == b"RIFF"
    assert data[8:12] == b"WAVE"
    with wave.open(io.BytesIO(data), "rb") as w:
        assert (w.getnchannels(), w.getsampwidth(), w.getframerate()) == (1, 2, 16000)
        assert w.readframes(w.getnframes()) == frame.to_bytes()
    assert wav_bytes([frame, frame]) == wav_bytes(
        AudioFrame(np.concatenate([frame.data] * 2), 16000)
    )


@pytest.mark.parametrize(("width", "bits"), [(1, 8), (3, 24), (4, 32)])
def test_other_pcm_widths_rejected(tmp_path, width, bits):
    path = tmp_path / "a.wav"
    write_raw_wav(path, width)
    with pytest.raises(ValueError, match=f"only 16-bit PCM .* found {bits}-bit PCM"):
        read_wav(path)


def test_float_wav_rejected(tmp_path):
    path = tmp_path / "f.wav"
    path.write_bytes(riff(fmt(3, 1, 48000, 32), chunk(b"data", b"\x00" * 40)))
    with pytest.raises(ValueError, match=r"found 32-bit IEEE float, 1 channel\(s\) at 48000 Hz"):
        read_wav(path)


def test_extensible_float_rejected(tmp_path):
    path = tmp_path / "f.wav"
    path.write_bytes(riff(extensible(3, 2, 44100, 32), chunk(b"data", b"\x00" * 40)))
    with pytest.raises(ValueError, match="found 32-bit IEEE float in a WAVE_FORMAT_EXTENSIBLE"):
        read_wav(path)


def test_extensible_pcm16(tmp_path):
    # Some tools write 16-bit PCM in an EXTENSIBLE header; Python 3.12's wave reads it, 3.11's not
    path = tmp_path / "e.wav"
    x = noise(10, 1)
    path.write_bytes(riff(extensible(1, 1, 16000, 16), chunk(b"data", x.tobytes())))
    if sys.version_info >= (3, 12):
        assert read_wav(path) == AudioFrame(x, 16000)
    else:
        with pytest.raises(ValueError, match="re-save it as a plain PCM WAV"):
            read_wav(path)


def test_fmt_found_after_other_chunks(tmp_path):
    path = tmp_path / "a.wav"
    path.write_bytes(riff(chunk(b"JUNK", b"\x00" * 27), fmt(6, 1, 8000, 8), chunk(b"data", b"")))
    with pytest.raises(ValueError, match=r"found 8-bit A-law"):
        read_wav(path)


def test_unknown_format_tag(tmp_path):
    path = tmp_path / "a.wav"
    path.write_bytes(riff(fmt(0x55, 1, 8000, 0), chunk(b"data", b"")))
    with pytest.raises(ValueError, match=r"found 0-bit format tag 0x0055"):
        read_wav(path)


@pytest.mark.parametrize(
    "content",
    [
        b"",
        b"not a wav file at all",
        riff(chunk(b"LIST", b"abcd")),
        riff(chunk(b"LIST", b"abcd")) + b"fmt",
        riff(chunk(b"fmt ", b"\x01\x00")),
    ],
    ids=["empty", "garbage", "no-fmt", "truncated-chunk", "short-fmt"],
)
def test_not_a_wav(tmp_path, content):
    path = tmp_path / "a.wav"
    path.write_bytes(content)
    with pytest.raises(ValueError, match="only 16-bit PCM WAV files are supported, not a readable"):
        read_wav(path)


def test_truncated_data_keeps_whole_samples(tmp_path):
    path = tmp_path / "a.wav"
    x = noise(10, 2)
    # the header promises 10 stereo samples, the file stops 3 bytes into the 7th
    data = chunk(b"data", x.tobytes())[: 8 + 6 * 4 + 3]
    path.write_bytes(riff(fmt(1, 2, 16000, 16), data))
    assert read_wav(path) == AudioFrame(x[:6], 16000, 2)


def test_missing_file(tmp_path):
    with pytest.raises(FileNotFoundError):
        read_wav(tmp_path / "nope.wav")
