"""An ``AgentSession`` wired to a Timeline's fakes."""

from __future__ import annotations

from types import TracebackType
from typing import Any, Protocol

from .._utils import BackgroundTasks
from ..io import AudioInput, AudioOutput, SessionRoom, TextOutput
from ..llm import LLM
from ..stt import STT
from ..tts import TTS
from ..vad import VAD
from ..voice import Agent, AgentSession
from ._fake_io import FakeAudioOutput

__all__ = ["SessionTimeline", "TimelineSession"]

_MODELS = ("stt", "vad", "llm", "tts")


class SessionTimeline(Protocol):
    """What a session takes from its timeline (a ``Timeline``): the fakes it defaults to, and
    the calls that entering it makes."""

    @property
    def fake_stt(self) -> STT: ...
    @property
    def fake_vad(self) -> VAD: ...
    @property
    def fake_llm(self) -> LLM: ...
    @property
    def fake_tts(self) -> TTS: ...
    @property
    def audio_input(self) -> AudioInput: ...
    @property
    def audio_output(self) -> FakeAudioOutput: ...
    @property
    def text_output(self) -> TextOutput: ...
    def start(self) -> None: ...
    def attach(self, session: AgentSession[Any]) -> None: ...


class TimelineSession(AgentSession[Any]):
    """``async with tl.session(**options) as session``: the models default to the timeline's
    fakes (pass ``llm=None`` and so on to leave one out), ``start`` defaults to the timeline's
    audio input and outputs, and entering sets the timeline's origin."""

    def __init__(self, timeline: SessionTimeline, **options: Any) -> None:
        defaults = {
            "stt": timeline.fake_stt,
            "vad": timeline.fake_vad,
            "llm": timeline.fake_llm,
            "tts": timeline.fake_tts,
        }
        for name in _MODELS:
            options.setdefault(name, defaults[name])
        super().__init__(**options)
        self.timeline = timeline
        self._output_tasks = BackgroundTasks()

    async def __aenter__(self) -> TimelineSession:
        nursery = await self._output_tasks.__aenter__()
        await nursery.start(self.timeline.audio_output.run)
        self.timeline.start()
        self.timeline.attach(self)
        await super().__aenter__()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        try:
            await super().__aexit__(exc_type, exc, tb)
        finally:
            await self._output_tasks.__aexit__(exc_type, exc, tb)

    async def start(
        self,
        agent: Agent,
        *,
        room: SessionRoom | None = None,
        audio_input: AudioInput | None = None,
        audio_output: AudioOutput | None = None,
        text_output: TextOutput | None = None,
        text_only: bool = False,
    ) -> None:
        """Start ``agent`` with the timeline's audio (``text_only=True``: no audio at all)."""
        tl = self.timeline
        if not text_only:
            audio_input = audio_input or tl.audio_input
            audio_output = audio_output or tl.audio_output
        await super().start(
            agent,
            room=room,
            audio_input=audio_input,
            audio_output=audio_output,
            text_output=text_output or tl.text_output,
        )
