"""`AgentSession`: one conversation, as its user sees it; it owns the nursery tree."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterable, Callable
from types import TracebackType
from typing import Any, Generic, TypeVar

import trio

from .._utils import BackgroundTasks
from ..io import AudioInput, AudioOutput, RoomIO, RoomSession, SessionRoom, TextOutput
from ..llm import LLM, ChatContext, ChatMessage, ToolChoice
from ..stt import STT
from ..tts import TTS
from ..vad import VAD
from ._agent import Agent
from ._events import AgentState, CloseReason, EventName, UserState
from ._options import SessionOptions
from ._run_result import RunResult
from ._runtime import SessionRuntime
from ._speech_handle import SpeechHandle
from ._turn import TurnDetection

__all__ = ["AgentSession", "SessionOptions"]

logger = logging.getLogger("tvoice.voice")
Userdata = TypeVar("Userdata")


class AgentSession(Generic[Userdata]):
    """One conversation between a user and agents. ``async with`` owns its nursery tree::

        async with AgentSession(stt=..., vad=..., llm=..., tts=...) as session:
            await session.start(MyAgent(), audio_input=..., audio_output=...)
            await session.wait_closed()

    Leaving the block closes the session within ``close_timeout`` seconds, whatever the models
    are doing: the pending user transcript is committed, the agent's ``on_exit`` runs, and the
    ``close`` event fires once.
    """

    def __init__(
        self,
        *,
        stt: STT | None = None,
        vad: VAD | None = None,
        llm: LLM | None = None,
        tts: TTS | None = None,
        turn_detection: TurnDetection | None = None,
        min_endpointing_delay: float = 0.5,
        max_endpointing_delay: float = 3.0,
        allow_interruptions: bool = True,
        min_interruption_duration: float = 0.5,
        min_interruption_words: int = 0,
        false_interruption_timeout: float = 2.0,
        resume_false_interruption: bool = True,
        preemptive_generation: bool = False,
        max_tool_steps: int = 3,
        user_away_timeout: float | None = 15.0,
        close_timeout: float = 10.0,
        userdata: Userdata | None = None,
    ) -> None:
        self._runtime = SessionRuntime(
            self,
            stt=stt,
            vad=vad,
            llm=llm,
            tts=tts,
            options=SessionOptions(
                turn_detection=turn_detection,
                min_endpointing_delay=min_endpointing_delay,
                max_endpointing_delay=max_endpointing_delay,
                allow_interruptions=allow_interruptions,
                min_interruption_duration=min_interruption_duration,
                min_interruption_words=min_interruption_words,
                false_interruption_timeout=false_interruption_timeout,
                resume_false_interruption=resume_false_interruption,
                preemptive_generation=preemptive_generation,
                max_tool_steps=max_tool_steps,
                user_away_timeout=user_away_timeout,
                close_timeout=close_timeout,
            ),
        )
        self._userdata = userdata
        self._tasks = BackgroundTasks()
        self._started = False

    # -- public state -------------------------------------------------------------------------

    @property
    def userdata(self) -> Userdata:
        """What you passed as ``userdata`` (shared by agents and tools)."""
        if self._userdata is None:
            raise ValueError("this session has no userdata (pass userdata= to AgentSession)")
        return self._userdata

    @userdata.setter
    def userdata(self, value: Userdata) -> None:
        self._userdata = value

    @property
    def stt(self) -> STT | None:
        """The session's speech-to-text (an agent may bring its own)."""
        return self._runtime.stt

    @property
    def vad(self) -> VAD | None:
        """The session's voice activity detector."""
        return self._runtime.vad

    @property
    def llm(self) -> LLM | None:
        """The session's LLM."""
        return self._runtime.llm

    @property
    def tts(self) -> TTS | None:
        """The session's text-to-speech."""
        return self._runtime.tts

    @property
    def options(self) -> SessionOptions:
        """The conversation settings."""
        return self._runtime.options

    @property
    def history(self) -> ChatContext:
        """The whole conversation."""
        return self._runtime.history

    @property
    def agent_state(self) -> AgentState:
        """``"initializing" | "listening" | "thinking" | "speaking"``."""
        return self._runtime.agent_state

    @property
    def user_state(self) -> UserState:
        """``"listening" | "speaking" | "away"``."""
        return self._runtime.user_state

    @property
    def audio_input(self) -> AudioInput | None:
        """Where the user's audio comes from."""
        return self._runtime.audio_input

    @property
    def audio_output(self) -> AudioOutput | None:
        """Where the agent's audio goes."""
        return self._runtime.audio_output

    @property
    def text_output(self) -> TextOutput | None:
        """Where the agent's transcript goes (set it to None to drop it)."""
        return self._runtime.text_output

    @text_output.setter
    def text_output(self, value: TextOutput | None) -> None:
        self._runtime.text_output = value

    @property
    def current_agent(self) -> Agent:
        """The agent the user is talking to."""
        return self._runtime.activity.agent

    @property
    def current_speech(self) -> SpeechHandle | None:
        """The speech being played (or generated), if any."""
        return self._runtime.activity.current_speech if self._runtime.started else None

    def agent_by_id(self, agent_id: str) -> Agent | None:
        """An agent that ran in this session."""
        return self._runtime.agent_by_id(agent_id)

    # -- events -------------------------------------------------------------------------------

    def on(self, event: EventName, callback: Callable[..., Any] | None = None) -> Any:
        """Call ``callback(event)`` on each ``event`` (synchronously); a decorator without it."""
        return self._runtime.events.on(event, callback)

    def once(self, event: EventName, callback: Callable[..., Any]) -> None:
        """Call ``callback`` on the next ``event`` only."""
        self._runtime.events.once(event, callback)

    def off(self, event: EventName, callback: Callable[..., Any]) -> None:
        """Stop calling ``callback``."""
        self._runtime.events.off(event, callback)

    def emit(self, event: EventName, *args: Any) -> None:
        """Emit ``event`` to its callbacks (as the session does)."""
        self._runtime.events.emit(event, *args)

    # -- lifetime -----------------------------------------------------------------------------

    async def __aenter__(self) -> AgentSession[Userdata]:
        self._runtime.nursery = await self._tasks.__aenter__()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        runtime = self._runtime
        if exc is not None and not isinstance(exc, trio.Cancelled | KeyboardInterrupt):
            runtime.close_reason, runtime.close_error = "error", exc
        try:
            # The drain is bounded by a deadline on its own shielded scope: whatever the models
            # do, leaving the block takes at most close_timeout.
            with trio.CancelScope(shield=True) as scope:
                scope.deadline = trio.current_time() + runtime.options.close_timeout
                await runtime.close_gracefully()
            if scope.cancelled_caught:
                logger.warning(
                    "session close took over %s s: cancelled", runtime.options.close_timeout
                )
        finally:
            await self._tasks.__aexit__(exc_type, exc, tb)
            runtime.finish_close()

    def shutdown(self, reason: CloseReason = "user_initiated") -> None:
        """Ask the session to end: :meth:`wait_closed` returns, leaving the block closes it."""
        self._runtime.shutdown(reason)

    async def wait_closed(self) -> None:
        """Wait until the session is asked to end (``shutdown``, the participant left...)."""
        await self._runtime.wait_closed()

    async def start(
        self,
        agent: Agent,
        *,
        room: SessionRoom | None = None,
        audio_input: AudioInput | None = None,
        audio_output: AudioOutput | None = None,
        text_output: TextOutput | None = None,
    ) -> None:
        """Start listening and the first agent (its ``on_enter`` runs in the background).

        ``room`` (``ctx.room`` in an entrypoint) supplies the audio and text I/O; the
        ``audio_input``/``audio_output``/``text_output`` given here take precedence.
        """
        nursery = self._runtime.nursery
        if nursery is None:
            raise RuntimeError("use `async with AgentSession(...) as session:` first")
        if self._started:
            raise RuntimeError("the session is already started")
        self._started = True
        if room is not None:
            face: RoomSession = self  # the room sees the session through this boundary only
            io: RoomIO = await nursery.start(room.run_session_io, face)
            audio_input = audio_input or io.audio_input
            audio_output = audio_output or io.audio_output
            text_output = text_output or io.text_output
        await self._runtime.start(
            agent, audio_input=audio_input, audio_output=audio_output, text_output=text_output
        )

    # -- speaking -----------------------------------------------------------------------------

    def update_agent(self, agent: Agent) -> None:
        """Hand the conversation to ``agent`` (after the current speech)."""
        self._runtime.request_handoff(agent, from_activity=self._runtime.activity)

    def say(
        self,
        text: str | AsyncIterable[str],
        *,
        allow_interruptions: bool | None = None,
        add_to_chat_ctx: bool = True,
    ) -> SpeechHandle:
        """Speak ``text`` as is (queued after the current speech)."""
        return self._runtime.activity.say(
            text, allow_interruptions=allow_interruptions, add_to_chat_ctx=add_to_chat_ctx
        )

    def generate_reply(
        self,
        *,
        user_input: str | None = None,
        instructions: str | None = None,
        allow_interruptions: bool | None = None,
        tool_choice: ToolChoice | None = None,
    ) -> SpeechHandle:
        """Have the LLM reply now (to ``user_input``, or with extra ``instructions``)."""
        message = ChatMessage(role="user", content=[user_input]) if user_input else None
        return self._runtime.activity.generate_reply(
            user_message=message,
            instructions=instructions,
            allow_interruptions=allow_interruptions,
            tool_choice=tool_choice,
        )

    def interrupt(self, *, force: bool = False) -> None:
        """Stop the current speech and drop the queued ones."""
        self._runtime.activity.interrupt(force=force)

    def commit_user_turn(self) -> None:
        """End the user's turn now (for ``turn_detection="manual"``, push-to-talk)."""
        self._runtime.commit_user_turn()

    def clear_user_turn(self) -> None:
        """Forget what the user said in the current turn."""
        self._runtime.clear_user_turn()

    async def run(self, *, user_input: str) -> RunResult:
        """Send ``user_input`` as a user message and collect everything the agent does until
        it is idle again (for tests, in text mode)."""
        result = RunResult(self, user_input)
        async with result.recording():
            handle = self.generate_reply(user_input=user_input)
            await handle
            await self.wait_for_idle()
        return result

    # -- idle ---------------------------------------------------------------------------------

    @property
    def idle(self) -> bool:
        """Nothing queued, playing, generating, running or pending, and the user is silent."""
        return self._runtime.idle

    async def wait_for_idle(self) -> None:
        """Wait until the session is :attr:`idle` (or closed)."""
        await self._runtime.wait_for_idle()
