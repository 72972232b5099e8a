import numpy as np
import pytest
import trio

from tvoice.audio import AudioFrame
from tvoice.io import FileAudioInput


def tone(seconds, rate=16000):
    return AudioFrame(np.full(round(seconds * rate), 1000, np.int16), rate)


async def test_paced_like_a_microphone_then_silence(autojump_clock):
    source = FileAudioInput(tone(0.1), frame_duration=0.02)
    times, loud = [], []
    async for frame in source:
        times.append(round(trio.current_time(), 3))
        loud.append(bool(frame.data.any()))
        if len(times) == 8:
            break
    assert times == [0.02, 0.04, 0.06, 0.08, 0.1, 0.12, 0.14, 0.16]
    assert loud == [True] * 5 + [False] * 3
    assert source.finished_at == pytest.approx(0.1)


async def test_unpaced_delivers_the_file_at_once(autojump_clock):
    await trio.sleep(1.0)
    source = FileAudioInput(tone(0.1), frame_duration=0.02, paced=False)
    times = []
    async for _ in source:
        times.append(round(trio.current_time(), 3))
        if len(times) == 7:
            break
    assert times == [1.0] * 5 + [1.02, 1.04]
    assert (source.started_at, source.finished_at) == (1.0, 1.0)


async def test_without_silence_the_input_ends(autojump_clock):
    source = FileAudioInput(tone(0.05), frame_duration=0.02, then_silence=False)
    frames = [frame async for frame in source]
    assert [f.samples_per_channel for f in frames] == [320, 320, 320]  # the last one padded
    assert source.finished.is_set()
