"""A VAD that offers a detector runs in the task that reads the user's audio: the session hears
with it as with a stream, and a detector that fails or cannot open leaves the STT listening."""

import numpy as np
import pytest
import trio

from tests.voice.conftest import Assistant, Recorder
from tvoice import APIError
from tvoice.testing import Timeline
from tvoice.vad import VAD, VADCapabilities, VADDetector, VADEvent, VADEventType


class LoudnessVAD(VAD):
    """Speech is any frame with sound; it ends after ``silence`` seconds of silent frames.
    Only its detector exists: the session must not ask for a stream."""

    def __init__(self, *, silence=0.5, fail_at=None, fail_to_open=False):
        super().__init__(capabilities=VADCapabilities(update_interval=0.02))
        self.silence = silence
        self.fail_at = fail_at
        self.fail_to_open = fail_to_open
        self.detectors = []

    def stream(self):
        raise AssertionError("a VAD with a detector runs inline")

    async def detector(self):
        if self.fail_to_open:
            raise APIError("no model here", retryable=False)
        detector = _Loudness(self)
        self.detectors.append(detector)
        return detector


class _Loudness(VADDetector):
    def __init__(self, vad):
        self.vad = vad
        self.frames = 0
        self.speaking = False
        self.quiet = 0.0
        self.speech = 0.0

    def push_frame(self, frame):
        self.frames += 1
        if self.frames == self.vad.fail_at:
            raise APIError("the detector broke", retryable=False)
        events = []
        loud = bool(np.any(frame.data))
        if loud:
            self.quiet = 0.0
            self.speech += frame.duration
            if not self.speaking:
                self.speaking = True
                events.append(self._event(VADEventType.START_OF_SPEECH))
        elif self.speaking:
            self.quiet += frame.duration
            if self.quiet >= self.vad.silence - 1e-9:
                self.speaking = False
                events.append(self._event(VADEventType.END_OF_SPEECH))
                self.speech = 0.0
        events.append(self._event(VADEventType.INFERENCE_DONE))
        return events

    def flush(self):
        return []

    def _event(self, kind):
        return VADEvent(
            type=kind,
            timestamp=trio.current_time(),
            speech_duration=self.speech,
            silence_duration=self.quiet,
            speaking=self.speaking,
        )


def hello(tl):
    tl.user_speech(start=1.0, end=2.0, transcript="Hello")
    tl.llm(input="Hello", content="Hi!")
    tl.tts(input="Hi!", audio_duration=1.0)


async def test_the_detector_runs_on_the_users_audio(autojump_clock):
    tl = Timeline()
    hello(tl)
    vad = LoudnessVAD()
    async with tl.session(vad=vad) as session:
        rec = Recorder(session)
        await session.start(Assistant())
        await tl.wait_done()
    # The frame that covers [1.00, 1.02) comes at 1.02; the last loud one at 2.00, and 25
    # silent frames later (2.50) the speech ends, 0.5 s after it did: the turn is due then.
    assert rec.user_states[:2] == [
        ("speaking", pytest.approx(1.02)),
        ("listening", pytest.approx(2.5)),
    ]
    assert [t for s, t in rec.agent_states if s == "thinking"] == [pytest.approx(2.5)]
    assert [m.text_content for m in session.history.messages()] == ["Hello", "Hi!"]
    assert len(vad.detectors) == 1


@pytest.mark.parametrize("broken", ["fails", "cannot open"])
async def test_without_its_vad_the_session_hears_through_the_stt(autojump_clock, broken):
    tl = Timeline()
    hello(tl)
    if broken == "fails":
        vad, message = LoudnessVAD(fail_at=10), "the detector broke"
    else:
        vad, message = LoudnessVAD(fail_to_open=True), "no model here"
    async with tl.session(vad=vad) as session:
        rec = Recorder(session)
        await session.start(Assistant())
        await tl.wait_done()
    assert [(e.error.message, e.source) for e in rec.of("error")] == [(message, vad)]
    assert [m.text_content for m in session.history.messages()] == ["Hello", "Hi!"]


async def test_a_frame_the_detector_refuses_is_a_failure_too(autojump_clock):
    class OneRate(LoudnessVAD):
        async def detector(self):
            inner = await super().detector()

            class Checked(VADDetector):
                def push_frame(self, frame):
                    if frame.sample_rate != 8000:
                        raise ValueError(f"8000 Hz only, not {frame.sample_rate}")
                    return inner.push_frame(frame)

                def flush(self):
                    return inner.flush()

            return Checked()

    tl = Timeline()
    hello(tl)
    vad = OneRate()
    async with tl.session(vad=vad) as session:
        rec = Recorder(session)
        await session.start(Assistant())
        await tl.wait_done()
    assert [str(e.error) for e in rec.of("error")] == ["8000 Hz only, not 16000"]
    assert [m.text_content for m in session.history.messages()] == ["Hello", "Hi!"]
