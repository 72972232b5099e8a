import itertools

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from tvoice.audio import AudioFrame, AudioResampler, combine_frames, resample

RATE_PAIRS = [
    (48000, 16000),
    (16000, 48000),
    (44100, 16000),
    (8000, 44100),
    (22050, 24000),
    (16000, 8000),
    (24000, 16000),
]


def tone(freq: float, rate: int, seconds: float = 1.0, amplitude: float = 0.5) -> np.ndarray:
    t = np.arange(round(rate * seconds)) / rate
    return np.round(np.sin(2 * np.pi * freq * t) * amplitude * 32767).astype(np.int16)


def middle(x: np.ndarray) -> np.ndarray:
    """Drop the first and last 10%, where filter start-up transients live."""
    cut = len(x) // 10
    return x[cut : len(x) - cut].astype(np.float64)


def rms_db(x: np.ndarray) -> float:
    return 20 * np.log10(np.sqrt(np.mean(np.square(middle(x)))))


def spectrum(x: np.ndarray) -> np.ndarray:
    x = x.astype(np.float64)
    return np.abs(np.fft.rfft(x * np.hanning(len(x))))


def peak_bin(x: np.ndarray) -> int:
    return int(np.argmax(spectrum(x)))


def noise(n: int, channels: int, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    return (rng.standard_normal((n, channels)) * 8000).clip(-32768, 32767).astype(np.int16)


def run_stream(resampler: AudioResampler, frames: list[AudioFrame]) -> list[AudioFrame]:
    out: list[AudioFrame] = []
    for frame in frames:
        out += resampler.push(frame)
    out += resampler.flush()
    return out


def split(x: np.ndarray, sizes: list[int], rate: int) -> list[AudioFrame]:
    bounds = np.cumsum([0, *sizes])
    return [AudioFrame(x[a:b], rate, x.shape[1]) for a, b in itertools.pairwise(bounds)]


# --- one-shot: measured signal properties ---


def test_downsample_keeps_frequency_and_amplitude():
    x = tone(1000, 48000)
    y = resample(AudioFrame(x, 48000), 16000).data[:, 0]
    assert len(y) == 16000
    bin_hz = 16000 / len(y)
    assert abs(peak_bin(y) * bin_hz - 1000) <= bin_hz
    assert abs(rms_db(y) - rms_db(x)) <= 1.0


def test_downsample_rejects_aliasing():
    # 7 kHz is above the 4 kHz Nyquist of 8 kHz audio: it must be filtered out, not folded to 1 kHz
    x = tone(7000, 48000)
    y = resample(AudioFrame(x, 48000), 8000).data[:, 0]
    assert rms_db(y) - rms_db(x) <= -40
    # the test has teeth: plain decimation keeps the (aliased) tone at full strength
    naive = x[::6]
    assert abs(rms_db(naive) - rms_db(x)) <= 1.0
    assert peak_bin(naive) * 8000 / len(naive) == pytest.approx(1000, abs=2)


def test_upsample_round_trip_preserves_tone():
    x = tone(500, 8000)
    up = resample(AudioFrame(x, 8000), 44100)
    assert up.sample_rate == 44100
    assert up.samples_per_channel == 44100
    assert abs(peak_bin(up.data[:, 0]) * 44100 / up.samples_per_channel - 500) <= 1
    back = resample(up, 8000).data[:, 0]
    assert len(back) == len(x)
    error = middle(back) - middle(x)
    # the residual is at least 40 dB below the signal
    assert 20 * np.log10(np.sqrt(np.mean(error**2))) <= rms_db(x) - 40


def test_stereo_channels_stay_independent():
    x = np.stack([tone(440, 48000), tone(1000, 48000)], axis=1)
    y = resample(AudioFrame(x, 48000, 2), 16000)
    assert y.num_channels == 2
    assert y.data.shape == (16000, 2)
    left, right = spectrum(y.data[:, 0]), spectrum(y.data[:, 1])  # 1 Hz per bin
    assert int(np.argmax(left)) == 440
    assert int(np.argmax(right)) == 1000
    # no crosstalk: the other channel's tone is more than 60 dB down
    assert 20 * np.log10(left[440] / left[1000]) > 60
    assert 20 * np.log10(right[1000] / right[440]) > 60


@pytest.mark.parametrize(("rate_in", "rate_out"), RATE_PAIRS)
def test_output_length_follows_ratio(rate_in, rate_out):
    n = 12345
    y = resample(AudioFrame(noise(n, 1), rate_in), rate_out)
    assert y.sample_rate == rate_out
    assert abs(y.samples_per_channel - n * rate_out / rate_in) <= 1


def test_same_rate_returns_frame_unchanged():
    frame = AudioFrame(tone(440, 16000), 16000)
    assert resample(frame, 16000) is frame


def test_empty_frame():
    y = resample(AudioFrame(np.zeros((0, 2), np.int16), 48000, 2), 16000)
    assert y.data.shape == (0, 2)
    assert y.sample_rate == 16000


def test_strided_input():
    # one channel sliced out of a stereo array is a non-contiguous view
    x = np.stack([tone(440, 48000), tone(1000, 48000)], axis=1)
    view = AudioFrame(x[:, 1:], 48000)
    assert resample(view, 16000) == resample(AudioFrame(x[:, 1].copy(), 48000), 16000)


@pytest.mark.parametrize("quality", ["LQ", "MQ", "HQ", "VHQ"])
def test_every_quality_is_anti_aliased(quality):
    x = tone(7000, 48000)
    y = resample(AudioFrame(x, 48000), 8000, quality=quality).data[:, 0]
    assert rms_db(y) - rms_db(x) <= -40
    y = resample(AudioFrame(tone(1000, 48000), 48000), 16000, quality=quality)
    assert abs(peak_bin(y.data[:, 0]) - 1000) <= 1


def test_quick_quality_refused():
    # libsoxr's "QQ" has no low-pass filter at all, so it cannot keep the anti-aliasing promise
    with pytest.raises(ValueError, match="quality must be one of"):
        resample(AudioFrame(tone(440, 16000), 16000), 8000, quality="QQ")


@pytest.mark.parametrize("rate", [0, -8000, 8000.0, True])
def test_bad_target_rate(rate):
    with pytest.raises(ValueError, match="rate must be a positive int"):
        resample(AudioFrame(tone(440, 16000), 16000), rate)


def test_bad_quality():
    with pytest.raises(ValueError, match=r"quality must be one of .*'HQ'.*got 'best'"):
        resample(AudioFrame(tone(440, 16000), 16000), 8000, quality="best")


# --- streaming ---


@settings(max_examples=60, deadline=None)
@given(
    rates=st.sampled_from(RATE_PAIRS),
    channels=st.integers(1, 2),
    sizes=st.lists(st.integers(0, 2500), min_size=1, max_size=25),
    seed=st.integers(0, 2**32 - 1),
)
def test_streaming_matches_one_shot(rates, channels, sizes, seed):
    rate_in, rate_out = rates
    x = noise(sum(sizes), channels, seed)
    out = run_stream(AudioResampler(rate_in, rate_out, channels), split(x, sizes, rate_in))
    assert all(f.samples_per_channel > 0 for f in out), "never an empty frame"
    assert all((f.sample_rate, f.num_channels) == (rate_out, channels) for f in out)
    ref = resample(AudioFrame(x, rate_in, channels), rate_out).data
    got = combine_frames(out).data if out else np.zeros((0, channels), np.int16)
    assert abs(len(got) - len(ref)) <= 3
    common = min(len(got), len(ref))
    diff = np.abs(got[:common].astype(np.int32) - ref[:common])
    assert common == 0 or diff.max() <= 2


def test_push_returns_at_most_one_frame():
    r = AudioResampler(48000, 16000)
    x = tone(1000, 48000)
    for frame in split(x.reshape(-1, 1), [480] * 100, 48000):
        assert len(r.push(frame)) <= 1
    assert len(r.flush()) <= 1


def test_flush_then_reuse_starts_a_new_segment():
    r = AudioResampler(16000, 48000)
    first = noise(5000, 1, seed=1)
    second = noise(7000, 1, seed=2)
    run_stream(r, split(first, [1000] * 5, 16000))
    again = combine_frames(run_stream(r, split(second, [700] * 10, 16000)))
    # the second segment owes nothing to the first: it equals a fresh one-shot conversion
    ref = resample(AudioFrame(second, 16000), 48000)
    assert again.samples_per_channel == ref.samples_per_channel
    assert np.abs(again.data.astype(np.int32) - ref.data).max() <= 2


def test_flush_with_nothing_pushed():
    assert AudioResampler(48000, 16000).flush() == []


def test_empty_push_returns_nothing():
    r = AudioResampler(48000, 16000, 2)
    assert r.push(AudioFrame(np.zeros((0, 2), np.int16), 48000, 2)) == []


def test_same_rate_passes_through_uncopied():
    r = AudioResampler(16000, 16000)
    frame = AudioFrame(tone(440, 16000), 16000)
    out = r.push(frame)
    assert len(out) == 1
    assert out[0] is frame
    assert r.push(AudioFrame(np.zeros(0, np.int16), 16000)) == []
    assert r.flush() == []


def test_properties_and_repr():
    r = AudioResampler(44100, 16000, 2, quality="VHQ")
    assert (r.input_rate, r.output_rate, r.num_channels, r.quality) == (44100, 16000, 2, "VHQ")
    assert repr(r) == "AudioResampler(44100, 16000, 2, quality='VHQ')"


@pytest.mark.parametrize(
    ("frame", "message"),
    [
        (AudioFrame(np.zeros(10, np.int16), 16000), r"expects 48000 Hz x1 frames, got 16000 Hz x1"),
        (
            AudioFrame(np.zeros((10, 2), np.int16), 48000, 2),
            r"expects 48000 Hz x1 frames, got 48000 Hz x2",
        ),
    ],
)
def test_push_rejects_mismatched_format(frame, message):
    with pytest.raises(ValueError, match=message):
        AudioResampler(48000, 16000).push(frame)


def test_passthrough_still_checks_format():
    with pytest.raises(ValueError, match="expects 16000 Hz x1"):
        AudioResampler(16000, 16000).push(AudioFrame(np.zeros(10, np.int16), 8000))


@pytest.mark.parametrize(
    ("args", "message"),
    [
        ((0, 16000), "input_rate"),
        ((16000, -1), "output_rate"),
        ((16000, 8000, 0), "num_channels"),
        ((16000.0, 8000), "input_rate"),
    ],
)
def test_bad_constructor_arguments(args, message):
    with pytest.raises(ValueError, match=f"{message} must be a positive int"):
        AudioResampler(*args)


def test_bad_stream_quality():
    with pytest.raises(ValueError, match="quality must be one of"):
        AudioResampler(16000, 8000, quality="hq")
