import numpy as np
import trio

from tvoice.audio import AudioFrame
from tvoice.io import ClockedAudioOutput, HeardSpan, render_playbacks


def ramp(seconds, rate=1000):
    return AudioFrame(np.arange(round(seconds * rate), dtype=np.int16) + 1, rate)


async def test_spans_record_what_was_heard_around_a_pause(autojump_clock):
    out = ClockedAudioOutput(keep_audio=True)
    async with trio.open_nursery() as nursery:
        await nursery.start(out.run)
        await trio.sleep(1.0)
        await out.capture_frame(ramp(3.0))
        out.flush()
        await trio.sleep(1.0)
        out.pause()
        await trio.sleep(0.5)
        out.resume()
        finished = await out.wait_for_playout()
        nursery.cancel_scope.cancel()
    assert trio.current_time() == 4.5
    assert (finished.playback_position, finished.interrupted) == (3.0, False)
    [playback] = out.playbacks
    assert playback.spans == (HeardSpan(1.0, 0.0, 1.0), HeardSpan(2.5, 1.0, 2.0))
    heard = render_playbacks(out.playbacks, origin=0.0, sample_rate=1000, length=5.0)
    assert heard[:1000].sum() == 0
    assert list(heard[1000:2000]) == list(range(1, 1001))
    assert heard[2000:2500].sum() == 0  # the pause
    assert list(heard[2500:4500]) == list(range(1001, 3001))


async def test_a_cleared_segment_renders_up_to_the_cut(autojump_clock):
    out = ClockedAudioOutput(keep_audio=True)
    async with trio.open_nursery() as nursery:
        await nursery.start(out.run)
        await out.capture_frame(ramp(3.0))
        out.flush()
        await trio.sleep(1.25)
        out.clear_buffer()
        nursery.cancel_scope.cancel()
    [playback] = out.playbacks
    assert (playback.position, playback.interrupted) == (1.25, True)
    heard = render_playbacks(out.playbacks, origin=0.0, sample_rate=1000, length=3.0)
    assert np.count_nonzero(heard) == 1250
