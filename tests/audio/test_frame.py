import numpy as np
import pytest

from tvoice.audio import AudioFrame, combine_frames


def test_mono_accepts_1d_and_stores_2d():
    frame = AudioFrame(np.arange(160, dtype=np.int16), 16000)
    assert frame.data.shape == (160, 1)
    assert frame.samples_per_channel == 160
    assert frame.num_channels == 1


def test_stereo_shape():
    frame = AudioFrame(np.zeros((480, 2), np.int16), 48000, 2)
    assert frame.samples_per_channel == 480
    assert frame.duration == 0.01


def test_duration():
    assert AudioFrame(np.zeros(320, np.int16), 16000).duration == 0.02
    assert AudioFrame(np.zeros(0, np.int16), 16000).duration == 0.0


@pytest.mark.parametrize("dtype", [np.float32, np.float64, np.int32, np.uint8, np.int8])
def test_wrong_dtype_rejected(dtype):
    with pytest.raises(TypeError, match=r"dtype int16, got"):
        AudioFrame(np.zeros(10, dtype), 16000)


def test_float_rejection_says_how_to_convert():
    with pytest.raises(TypeError, match=r"\(x \* 32767\)\.astype\(np\.int16\)"):
        AudioFrame(np.zeros(10, np.float32), 16000)


def test_big_endian_int16_rejected():
    with pytest.raises(TypeError, match="int16"):
        AudioFrame(np.zeros(10, ">i2"), 16000)


@pytest.mark.parametrize("data", [[0, 1, 2], (0, 1), b"\x00\x00", 5])
def test_non_array_rejected(data):
    with pytest.raises(TypeError, match=r"numpy int16 array, got"):
        AudioFrame(data, 16000)


def test_3d_rejected():
    with pytest.raises(ValueError, match=r"shaped \(samples, 1\).*got shape \(2, 2, 1\)"):
        AudioFrame(np.zeros((2, 2, 1), np.int16), 16000)


def test_channel_mismatch_rejected():
    with pytest.raises(ValueError, match=r"shaped \(samples, 2\) for num_channels=2"):
        AudioFrame(np.zeros((10, 1), np.int16), 16000, 2)
    with pytest.raises(ValueError, match=r"shaped \(samples, 1\)"):
        AudioFrame(np.zeros((10, 2), np.int16), 16000)


def test_1d_needs_mono():
    with pytest.raises(ValueError, match=r"\(samples, 2\).*got shape \(10,\)"):
        AudioFrame(np.zeros(10, np.int16), 16000, 2)


@pytest.mark.parametrize("rate", [0, -16000, 16000.0, "16000", None, True])
def test_bad_sample_rate(rate):
    with pytest.raises(ValueError, match="sample_rate must be a positive int"):
        AudioFrame(np.zeros(10, np.int16), rate)


@pytest.mark.parametrize("channels", [0, -1, 1.0, False])
def test_bad_num_channels(channels):
    with pytest.raises(ValueError, match="num_channels must be a positive int"):
        AudioFrame(np.zeros(10, np.int16), 16000, channels)


def test_frozen():
    frame = AudioFrame(np.zeros(10, np.int16), 16000)
    with pytest.raises(AttributeError):
        frame.sample_rate = 8000  # type: ignore[misc]


def test_silence():
    frame = AudioFrame.silence(0.02, 48000, 2)
    assert frame.data.shape == (960, 2)
    assert not frame.data.any()


def test_bytes_round_trip():
    data = np.array([[0, -1], [32767, -32768], [1234, -4321]], np.int16)
    frame = AudioFrame(data, 8000, 2)
    pcm = frame.to_bytes()
    # little-endian interleaved: L0 R0 L1 R1 ...
    assert pcm[:4] == b"\x00\x00\xff\xff"
    assert len(pcm) == 12
    assert AudioFrame.from_bytes(pcm, 8000, 2) == frame


@pytest.mark.parametrize(("size", "channels"), [(3, 1), (6, 2), (1, 1)])
def test_from_bytes_partial_sample_rejected(size, channels):
    with pytest.raises(ValueError, match="not a whole number"):
        AudioFrame.from_bytes(b"\x00" * size, 16000, channels)


def test_equality():
    a = AudioFrame(np.arange(10, dtype=np.int16), 16000)
    assert a == AudioFrame(np.arange(10, dtype=np.int16), 16000)
    assert a != AudioFrame(np.arange(10, dtype=np.int16), 8000)
    assert a != AudioFrame(np.arange(1, 11, dtype=np.int16), 16000)
    assert a != AudioFrame(np.arange(10, dtype=np.int16).reshape(5, 2), 16000, 2)
    assert a != "not a frame"
    with pytest.raises(TypeError, match="unhashable"):
        hash(a)


def test_repr():
    assert repr(AudioFrame(np.zeros(10, np.int16), 16000)) == (
        "AudioFrame(samples_per_channel=10, sample_rate=16000, num_channels=1)"
    )


def test_combine_frames():
    a = AudioFrame(np.arange(4, dtype=np.int16), 16000)
    b = AudioFrame(np.arange(4, 10, dtype=np.int16), 16000)
    assert combine_frames([a, b]) == AudioFrame(np.arange(10, dtype=np.int16), 16000)
    assert combine_frames([a]) is a


def test_combine_frames_empty():
    with pytest.raises(ValueError, match="at least one frame"):
        combine_frames([])


def test_combine_frames_rate_mismatch():
    a = AudioFrame(np.zeros(4, np.int16), 16000)
    b = AudioFrame(np.zeros(4, np.int16), 8000)
    with pytest.raises(ValueError, match=r"8000 Hz x1 with 16000 Hz x1"):
        combine_frames([a, b])


def test_combine_frames_channel_mismatch():
    a = AudioFrame(np.zeros(4, np.int16), 16000)
    b = AudioFrame(np.zeros((4, 2), np.int16), 16000, 2)
    with pytest.raises(ValueError, match=r"16000 Hz x2 with 16000 Hz x1"):
        combine_frames([a, b])
