"""A speech-to-text stream that fails is opened again with backoff, and the agent hears again;
one that keeps failing ends the session with the error, instead of leaving the agent deaf."""

import pytest
import trio

from tests.voice.conftest import Assistant, Recorder
from tvoice import Agent, APIError
from tvoice.stt import STT, RecognizeStream, STTCapabilities
from tvoice.testing import Timeline
from tvoice.voice._recognition import STT_RESTARTS


class FlakySTT(STT):
    """The timeline's STT, whose first ``failures`` streams fail ``after`` seconds in."""

    def __init__(self, tl, *, failures, after=0.0):
        super().__init__(capabilities=STTCapabilities(streaming=True, interim_results=True))
        self.fake = tl.fake_stt
        self.failures = failures
        self.after = after
        self.opened: list[float] = []

    async def _recognize_impl(self, frame, *, language, conn_options):
        raise NotImplementedError

    def stream(self, *, language=None, conn_options=None):
        self.opened.append(trio.current_time())
        if len(self.opened) <= self.failures:
            return _Failing(self, self.after)
        return self.fake.stream()


class _Failing(RecognizeStream):
    def __init__(self, stt, after):
        super().__init__(stt)
        self.after = after

    async def _run(self):
        await trio.sleep(self.after)
        raise APIError("the STT connection is gone", retryable=False)


async def test_a_failed_stream_is_opened_again_and_the_user_is_heard(autojump_clock):
    tl = Timeline()
    tl.user_speech(start=5.0, end=6.0, transcript="Are you there?")
    tl.llm(input="Are you there?", content="Yes.")
    tl.tts(input="Yes.", audio_duration=1.0)
    stt = FlakySTT(tl, failures=2, after=0.25)
    async with tl.session(stt=stt) as session:
        rec = Recorder(session)
        await session.start(Assistant())
        await tl.wait_done()
    # Failed at 0.25, opened again 0.5 s later; failed 0.25 s later, opened again 1 s later.
    assert stt.opened == [0.0, 0.75, 2.0]
    assert [e.error.message for e in rec.of("error")] == ["the STT connection is gone"] * 2
    assert [m.text_content for m in session.history.messages()] == ["Are you there?", "Yes."]
    assert not rec.of("close") or rec.of("close")[0].reason != "error"


async def test_a_stream_that_keeps_failing_ends_the_session_with_its_error(autojump_clock):
    tl = Timeline()
    stt = FlakySTT(tl, failures=100)
    async with tl.session(stt=stt) as session:
        rec = Recorder(session)
        await session.start(Assistant())
        with trio.fail_after(60):
            await session.wait_closed()
    # The first attempt and STT_RESTARTS more, after 0.5, 1, 2, 4, 8 s of backoff.
    assert len(stt.opened) == STT_RESTARTS + 1
    assert stt.opened == [0.0, 0.5, 1.5, 3.5, 7.5, 15.5]
    (close,) = rec.of("close")
    assert close.reason == "error"
    assert close.error.message == "the STT connection is gone"


async def test_a_stream_that_heard_something_starts_its_count_again(autojump_clock):
    # Each stream fails after 3 s, having heard the user: the agent never goes deaf for long,
    # and the session is not ended however often it happens.
    tl = Timeline()
    for i in range(STT_RESTARTS + 3):
        tl.user_speech(start=4.0 * i + 0.5, end=4.0 * i + 1.0, transcript="")

    class HearsThenFails(FlakySTT):
        def stream(self, *, language=None, conn_options=None):
            self.opened.append(trio.current_time())
            return _HeardThenFailed(self)

    class _HeardThenFailed(RecognizeStream):
        async def _run(self):
            from tvoice.stt import SpeechEvent, SpeechEventType

            await trio.sleep(1.0)
            await self._emit(SpeechEvent(type=SpeechEventType.START_OF_SPEECH))
            await trio.sleep(2.0)
            raise APIError("the STT connection is gone", retryable=False)

    stt = HearsThenFails(tl, failures=0)
    async with tl.session(stt=stt) as session:
        rec = Recorder(session)
        await session.start(Assistant())
        await trio.sleep(4.0 * (STT_RESTARTS + 3))
    assert len(stt.opened) > STT_RESTARTS + 1
    assert all(
        b - a == pytest.approx(3.5) for a, b in zip(stt.opened, stt.opened[1:], strict=False)
    )
    assert not [e for e in rec.of("close") if e.reason == "error"]


async def test_an_agents_own_stt_node_that_fails_is_run_again(autojump_clock):
    tl = Timeline()
    tl.user_speech(start=5.0, end=6.0, transcript="Hello?")
    tl.llm(input="Hello?", content="Hi.")
    tl.tts(input="Hi.", audio_duration=1.0)
    runs: list[float] = []

    class OwnNode(Assistant):
        async def stt_node(self, audio, model_settings):
            runs.append(trio.current_time())
            if len(runs) == 1:
                raise APIError("my STT broke", retryable=False)
            async for event in Agent.stt_node(self, audio, model_settings):
                yield event

    async with tl.session() as session:
        rec = Recorder(session)
        await session.start(OwnNode())
        await tl.wait_done()
    assert runs == [0.0, 0.5]
    assert [e.error.message for e in rec.of("error")] == ["my STT broke"]
    assert [m.text_content for m in session.history.messages()] == ["Hello?", "Hi."]
