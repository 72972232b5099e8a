import itertools

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from tvoice.audio import AudioChunker, AudioFrame


def ramp(n: int, channels: int = 1) -> np.ndarray:
    # distinct, recognisable values so any reordering or duplication shows up
    return (np.arange(n * channels) % 65536 - 32768).astype(np.int16).reshape(n, channels)


def split(x: np.ndarray, sizes: list[int], rate: int) -> list[AudioFrame]:
    bounds = np.cumsum([0, *sizes])
    return [AudioFrame(x[a:b], rate, x.shape[1]) for a, b in itertools.pairwise(bounds)]


def joined(frames: list[AudioFrame], channels: int) -> np.ndarray:
    if not frames:
        return np.zeros((0, channels), np.int16)
    return np.concatenate([f.data for f in frames])


@settings(max_examples=200, deadline=None)
@given(
    rate=st.sampled_from([8000, 16000, 24000, 44100, 48000]),
    channels=st.integers(1, 2),
    duration=st.sampled_from([0.01, 0.02, 0.03]),
    sizes=st.lists(st.integers(0, 5000), max_size=30),
)
def test_any_input_sizes_give_exact_frames(rate, channels, duration, sizes):
    chunker = AudioChunker(rate, channels, frame_duration=duration)
    size = round(rate * duration)
    x = ramp(sum(sizes), channels)
    out: list[AudioFrame] = []
    for frame in split(x, sizes, rate):
        pushed = chunker.push(frame)
        assert all(f.samples_per_channel == size for f in pushed)
        assert chunker.pending_samples < size
        out += pushed
    tail = chunker.flush()
    assert len(tail) == (1 if len(x) % size else 0)
    assert all((f.sample_rate, f.num_channels) == (rate, channels) for f in out + tail)
    np.testing.assert_array_equal(joined(out + tail, channels), x)


@settings(max_examples=200, deadline=None)
@given(
    channels=st.integers(1, 3),
    cuts=st.lists(st.integers(0, 2000), max_size=20),
    samples=st.integers(0, 2000),
)
def test_push_bytes_handles_any_split(channels, cuts, samples):
    x = ramp(samples, channels)
    pcm = x.astype("<i2").tobytes()
    chunker = AudioChunker(16000, channels, frame_duration=0.01)
    out: list[AudioFrame] = []
    bounds = [0, *sorted(min(c, len(pcm)) for c in cuts), len(pcm)]
    for a, b in itertools.pairwise(bounds):
        out += chunker.push_bytes(pcm[a:b])
    assert all(f.samples_per_channel == 160 for f in out)
    out += chunker.flush()
    np.testing.assert_array_equal(joined(out, channels), x)


def test_odd_byte_is_kept_for_next_push():
    chunker = AudioChunker(1000, frame_duration=0.002)  # 2 samples = 4 bytes per frame
    assert chunker.push_bytes(b"\x01\x00\x02") == []
    [frame] = chunker.push_bytes(b"\x00\x03\x00")
    assert frame.data[:, 0].tolist() == [1, 2]
    [rest] = chunker.flush()
    assert rest.data[:, 0].tolist() == [3]


def test_push_bytes_accepts_bytearray_and_copies_it():
    chunker = AudioChunker(1000, frame_duration=0.002)
    buf = bytearray(b"\x01\x00\x02\x00")
    [frame] = chunker.push_bytes(buf)
    buf[:] = b"\xff\xff\xff\xff"  # a reused read buffer must not change audio already handed out
    assert frame.data[:, 0].tolist() == [1, 2]
    assert chunker.push_bytes(memoryview(b"\x05\x00")) == []
    assert chunker.flush()[0].data[:, 0].tolist() == [5]


def test_flush_drops_incomplete_trailing_sample():
    chunker = AudioChunker(1000, frame_duration=0.002)
    chunker.push_bytes(b"\x01\x00\x02")
    [rest] = chunker.flush()
    assert rest.data[:, 0].tolist() == [1]
    # nothing of the stray byte survives into the next stream
    [frame] = chunker.push_bytes(b"\x07\x00\x08\x00")
    assert frame.data[:, 0].tolist() == [7, 8]


def test_flush_pad():
    chunker = AudioChunker(16000, 2)
    assert chunker.samples_per_frame == 320
    assert chunker.push(AudioFrame(ramp(100, 2), 16000, 2)) == []
    [padded] = chunker.flush(pad=True)
    assert padded.data.shape == (320, 2)
    np.testing.assert_array_equal(padded.data[:100], ramp(100, 2))
    assert not padded.data[100:].any()


def test_flush_without_pad_returns_remainder():
    chunker = AudioChunker(16000)
    chunker.push(AudioFrame(ramp(30), 16000))
    chunker.push(AudioFrame(ramp(20), 16000))
    [rest] = chunker.flush()
    assert rest.samples_per_channel == 50


@pytest.mark.parametrize("pad", [False, True])
def test_flush_empty_returns_nothing(pad):
    chunker = AudioChunker(16000)
    assert chunker.flush(pad=pad) == []
    chunker.push(AudioFrame(ramp(320), 16000))
    assert chunker.flush(pad=pad) == []


def test_reuse_after_flush():
    chunker = AudioChunker(16000)
    chunker.push(AudioFrame(ramp(100), 16000))
    chunker.flush()
    assert chunker.pending_samples == 0
    out = chunker.push(AudioFrame(ramp(640), 16000))
    assert len(out) == 2
    np.testing.assert_array_equal(out[0].data, ramp(320))


def test_one_big_frame_gives_many_frames():
    out = AudioChunker(48000).push(AudioFrame(ramp(48000 + 5), 48000))
    assert len(out) == 50
    assert all(f.samples_per_channel == 960 for f in out)


def test_many_tiny_frames():
    chunker = AudioChunker(8000, frame_duration=0.01)
    out: list[AudioFrame] = []
    x = ramp(1000)
    for i in range(1000):
        out += chunker.push(AudioFrame(x[i : i + 1], 8000))
    assert len(out) == 12
    np.testing.assert_array_equal(joined(out, 1), x[:960])
    assert chunker.pending_samples == 40


def test_remainder_does_not_alias_input():
    chunker = AudioChunker(16000)
    x = ramp(330)
    chunker.push(AudioFrame(x, 16000))
    x[:] = 0  # misuse, but the held-back tail is a private copy
    np.testing.assert_array_equal(chunker.flush()[0].data[:, 0], ramp(330)[320:, 0])


def test_empty_push():
    assert AudioChunker(16000).push(AudioFrame(np.zeros(0, np.int16), 16000)) == []
    assert AudioChunker(16000).push_bytes(b"") == []


@pytest.mark.parametrize(
    ("frame", "message"),
    [
        (AudioFrame(np.zeros(10, np.int16), 8000), r"expects 16000 Hz x1 frames, got 8000 Hz x1"),
        (
            AudioFrame(np.zeros((10, 2), np.int16), 16000, 2),
            r"expects 16000 Hz x1 frames, got 16000 Hz x2",
        ),
    ],
)
def test_rejects_mismatched_format(frame, message):
    with pytest.raises(ValueError, match=message):
        AudioChunker(16000).push(frame)


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"sample_rate": 0}, "sample_rate must be a positive int"),
        ({"sample_rate": 16000, "num_channels": 0}, "num_channels must be a positive int"),
        ({"sample_rate": 16000, "frame_duration": 0}, "frame_duration must be a positive"),
        ({"sample_rate": 16000, "frame_duration": -0.02}, "frame_duration must be a positive"),
        ({"sample_rate": 16000, "frame_duration": float("nan")}, "frame_duration must be"),
        ({"sample_rate": 16000, "frame_duration": 1e-6}, "shorter than one sample"),
    ],
)
def test_bad_constructor_arguments(kwargs, message):
    with pytest.raises(ValueError, match=message):
        AudioChunker(**kwargs)


def test_properties_and_repr():
    chunker = AudioChunker(44100, 2, frame_duration=0.01)
    assert (chunker.sample_rate, chunker.num_channels, chunker.samples_per_frame) == (44100, 2, 441)
    assert repr(chunker) == "AudioChunker(44100, 2, samples_per_frame=441)"
