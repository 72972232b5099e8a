"""`Timeline`: one scripted conversation, its fakes wired together on trio's clock."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import trio
import trio.testing

from ..llm import FunctionCall
from ..voice import AgentSession
from ._fake_io import FakeAudioInput, FakeAudioOutput, FakeTextOutput
from ._fake_models import FakeLLM, FakeSTT, FakeTTS, FakeVAD
from ._script import LLMReply, Script, TTSReply, UserSpeech
from ._session import TimelineSession

__all__ = ["Timeline"]


class Timeline:
    """A scripted conversation: what the user says, when, and how each model answers.

    Times are seconds from the timeline's origin, which is set by :meth:`start` (or by
    entering :meth:`session`) to trio's current time: on ``MockClock`` that is 0.0, so the times
    in a test's assertions are the times in its script.

    The fakes (``fake_vad``, ``fake_stt``, ``fake_llm``, ``fake_tts``, ``audio_input``,
    ``audio_output``, ``text_output``) share the script and can also be used on their own.
    """

    def __init__(
        self,
        *,
        input_sample_rate: int = 16000,
        frame_duration: float = 0.02,
        tts_sample_rate: int = 24000,
        tts_frame_duration: float = 0.1,
    ) -> None:
        self.script = Script()
        self.fake_vad = FakeVAD(self.script)
        self.fake_stt = FakeSTT(self.script)
        self.fake_llm = FakeLLM(self.script)
        self.fake_tts = FakeTTS(
            self.script, sample_rate=tts_sample_rate, frame_duration=tts_frame_duration
        )
        self.audio_input = FakeAudioInput(
            self.script, sample_rate=input_sample_rate, frame_duration=frame_duration
        )
        self.audio_output = FakeAudioOutput()
        self.text_output = FakeTextOutput()
        self._started = False
        self._session: AgentSession[Any] | None = None

    # -- the script ---------------------------------------------------------------------------

    def user_speech(
        self,
        *,
        start: float,
        end: float,
        transcript: str,
        stt_delay: float = 0.2,
        preflight: float | None = None,
    ) -> UserSpeech:
        """The user speaks from ``start`` to ``end``; an empty transcript is noise. The final
        transcript comes ``stt_delay`` after the end; with ``preflight``, the words come that
        many seconds after the end as a preflight transcript (see :class:`UserSpeech`)."""
        speech = UserSpeech(
            start=start, end=end, transcript=transcript, stt_delay=stt_delay, preflight=preflight
        )
        self.script.speech.append(speech)
        return speech

    def llm(
        self,
        *,
        input: str,
        content: str = "",
        tool_calls: Sequence[FunctionCall] = (),
        ttft: float = 0.1,
        duration: float = 0.3,
    ) -> LLMReply:
        """How the LLM answers when the last chat item's text is ``input``."""
        reply = LLMReply(
            input=input, content=content, tool_calls=tool_calls, ttft=ttft, duration=duration
        )
        self.script.llm.setdefault(input.strip(), []).append(reply)
        return reply

    def tts(
        self, *, input: str, audio_duration: float, ttfb: float = 0.2, duration: float = 0.3
    ) -> TTSReply:
        """How the TTS speaks ``input``: ``audio_duration`` seconds of audio."""
        reply = TTSReply(input=input, audio_duration=audio_duration, ttfb=ttfb, duration=duration)
        self.script.tts.setdefault(input.strip(), []).append(reply)
        return reply

    # -- running it ---------------------------------------------------------------------------

    def start(self) -> None:
        """Set the origin of the timeline to now (trio's clock)."""
        if self._started:
            raise RuntimeError("a Timeline can be started only once")
        self._started = True
        self.script.origin = trio.current_time()

    @property
    def origin(self) -> float:
        """trio time of timeline time 0."""
        return self.script.origin

    @property
    def end_of_script(self) -> float:
        """Timeline time when the last scripted user speech has been fully reported."""
        ends = [s.end + max(s.stt_delay, 0.5) for s in self.script.speech]
        return max(ends, default=0.0)

    @property
    def llm_requests(self) -> list[str]:
        """One entry per LLM request: the text it was answering."""
        return self.fake_llm.requests

    @property
    def tts_requests(self) -> list[str]:
        """One entry per synthesized segment: its text."""
        return self.fake_tts.requests

    def session(self, **options: Any) -> TimelineSession:
        """An ``AgentSession`` wired to the fakes: ``async with tl.session() as session``.

        ``options`` are AgentSession's; the models default to the fakes.
        """
        return TimelineSession(self, **options)

    def attach(self, session: AgentSession[Any]) -> None:
        """The session :meth:`wait_done` waits for (set by :meth:`session`)."""
        self._session = session

    async def wait_done(self) -> None:
        """Return once every scripted event has happened and the session is idle: no speech
        queued or playing, no tool running, no user turn pending."""
        session = self._session
        if session is None:
            raise RuntimeError("wait_done needs a running `async with tl.session()`")
        await trio.sleep_until(self.origin + self.end_of_script)
        # Let everything due at that very instant run before judging idleness.
        await trio.testing.wait_all_tasks_blocked()
        await session.wait_for_idle()
