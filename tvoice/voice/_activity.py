"""`AgentActivity`: one running agent. It owns the agent's nursery and wires its parts: the
speech queue, replies and tools, interruptions and the user's turn."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterable, Awaitable
from typing import Any, Protocol

import trio

from ..llm import LLM, AgentHandoff, ChatMessage, ToolChoice
from ..stt import STT, SpeechEvent
from ..tts import TTS
from ..vad import VAD, VADEvent
from ._agent import Agent, AgentTask, NodeModels, SessionView, current_host
from ._events import SpeechCreatedEvent, SpeechSource
from ._generation import Generation
from ._interruptions import InterruptionHost, Interruptions
from ._playout import Playout, PlayoutHost
from ._recognition import EndOfTurn
from ._reply import Replies, ReplyHost
from ._speech_handle import SPEECH_PRIORITY_NORMAL, SpeechHandle
from ._speech_queue import SpeechQueue, SpeechRun
from ._tools import ToolHost, ToolRunner
from ._user_turn import UserTurnHost, UserTurns

__all__ = ["ActivityHost", "AgentActivity"]

logger = logging.getLogger("tvoice.voice")


class ActivityHost(ReplyHost, ToolHost, InterruptionHost, UserTurnHost, PlayoutHost, Protocol):
    """What an activity needs of the session's runtime, which runs it: what its parts need,
    and what it asks itself (its models, its turn, handoffs and tasks)."""

    def models_for(self, agent: Agent) -> NodeModels: ...
    def is_current(self, activity: AgentActivity) -> bool: ...
    def notify_changed(self) -> None: ...
    async def wait_changed(self) -> None: ...
    def request_handoff(self, agent: Agent, *, from_activity: AgentActivity) -> None: ...
    async def run_task(self, task: AgentTask[Any], *, parent: AgentActivity) -> None: ...


class AgentActivity:
    """Everything that runs for the current agent: started by the session, replaced on handoff.

    Speeches run one at a time from its speech queue, each inside its handle's cancel scope;
    tools run in the activity's nursery, so they outlive an interrupted speech. The
    recognition of the user's speech reports here, and each report goes to the part it is for.
    """

    def __init__(self, agent: Agent, runtime: ActivityHost) -> None:
        self.agent = agent
        self.runtime = runtime
        self._models = runtime.models_for(agent)
        self._accepting = True
        self._entering = False
        # Made when someone waits for the end (a handoff does): most activities end with the
        # session, unwaited.
        self._finished: trio.Event | None = None
        self._done = False
        self._nursery: trio.Nursery | None = None  # while it runs
        self._cancelled = False
        self._playout = Playout(runtime, agent)
        self._queue = SpeechQueue(self, runtime.notify_changed)
        wake = self._queue.wake
        self._tools = ToolRunner(agent, runtime, wake)
        self._replies = Replies(
            agent,
            runtime,
            models=self._models,
            playout=self._playout,
            tools=self._tools,
            hand_off=self._hand_off,
        )
        self._interruptions = Interruptions(runtime, self._queue, self._playout)
        self._turns = UserTurns(
            agent,
            runtime,
            queue=self._queue,
            interruptions=self._interruptions,
            replies=self._replies,
            reply=self._reply_to_turn,
            on_change=wake,
        )

    # -- what the agent sees of its runtime (AgentHost) ---------------------------------------

    @property
    def session(self) -> SessionView[Any]:
        """The session, as its user sees it."""
        return self.runtime.face

    @property
    def models(self) -> NodeModels:
        """The models in use: the agent's own, else the session's."""
        return self._models

    @property
    def llm(self) -> LLM | None:
        """The LLM in use."""
        return self._models.llm

    @property
    def stt(self) -> STT | None:
        """The STT in use."""
        return self._models.stt

    @property
    def tts(self) -> TTS | None:
        """The TTS in use."""
        return self._models.tts

    @property
    def vad(self) -> VAD | None:
        """The VAD in use."""
        return self._models.vad

    async def run_task(self, task: AgentTask[Any]) -> None:
        """Run ``task`` as the current agent until it completes, then take the turn back."""
        await self.runtime.run_task(task, parent=self)

    @property
    def allow_interruptions(self) -> bool:
        """Whether speech is interruptible by default."""
        if self.agent.allow_interruptions is not None:
            return self.agent.allow_interruptions
        return self.runtime.options.allow_interruptions

    @property
    def current_speech(self) -> SpeechHandle | None:
        """The speech that runs now."""
        return self._queue.current

    @property
    def idle(self) -> bool:
        """Nothing queued, playing, running or pending."""
        return (
            not self._queue.busy
            and not self._tools.running
            and self._turns.idle
            and not self._entering
        )

    # -- lifetime -----------------------------------------------------------------------------

    async def run(self, *, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED) -> None:
        """Run the activity until :meth:`cancel`: this task runs the speech queue, and the
        activity's nursery ``on_enter``, the tools and the timers of the user's turn."""
        current_host.set(self)
        self.agent.attach(self)
        try:
            async with trio.open_nursery() as nursery:
                # Its scope is the activity's: cancel() cancels it.
                self._nursery = nursery
                if self._cancelled:
                    nursery.cancel_scope.cancel()
                self._interruptions.nursery = self._turns.nursery = nursery
                self._tools.nursery = nursery
                self._entering = True
                nursery.start_soon(self._enter)
                task_status.started()
                await self._queue.run()
        finally:
            self._nursery = None
            self.agent.attach(None)
            self._done = True
            if self._finished is not None:
                self._finished.set()

    def cancel(self) -> None:
        """End the activity: its tasks are cancelled (:meth:`wait_finished` waits for them)."""
        self._cancelled = True
        if self._nursery is not None:
            self._nursery.cancel_scope.cancel()

    async def _enter(self) -> None:
        try:
            await self._call_hook(self.agent.on_enter(), "on_enter")
        finally:
            self._entering = False
            self._queue.wake()

    async def wait_finished(self) -> None:
        """Wait until the activity's tasks are over (after :meth:`cancel`)."""
        if self._finished is None:
            self._finished = trio.Event()
            if self._done:
                self._finished.set()
        await self._finished.wait()

    async def drain(self) -> None:
        """Stop taking new speech and wait for what is queued and playing to finish."""
        self._accepting = False
        while self._queue.busy:
            await self.runtime.wait_changed()

    async def _call_hook(self, coro: Awaitable[None], name: str) -> None:
        try:
            await coro
        except Exception as e:
            logger.exception("%s.%s failed", self.agent.label, name)
            self.runtime.report_error(e, self.agent)

    # -- speeches -----------------------------------------------------------------------------

    def schedule(
        self,
        handle: SpeechHandle,
        run: SpeechRun,
        *,
        source: SpeechSource,
        user_initiated: bool,
    ) -> SpeechHandle:
        """Queue a speech; it runs when everything of higher (or equal, earlier) priority has."""
        if not self._accepting:
            raise RuntimeError(f"{self.agent!r} is being replaced: it takes no new speech")
        self._queue.push(handle, run)
        self.runtime.events.emit(
            "speech_created",
            SpeechCreatedEvent(speech_handle=handle, source=source, user_initiated=user_initiated),
        )
        self._queue.wake()
        return handle

    def wake(self) -> None:
        """Re-check the queue (the activity may have become current again)."""
        self._queue.wake()

    def say(
        self,
        text: str | AsyncIterable[str],
        *,
        allow_interruptions: bool | None,
        add_to_chat_ctx: bool,
        priority: int = SPEECH_PRIORITY_NORMAL,
    ) -> SpeechHandle:
        """Queue ``text`` to be spoken as is."""
        handle = SpeechHandle(
            allow_interruptions=self._interruptible(allow_interruptions), priority=priority
        )
        run = self._replies.saying(text, add_to_chat_ctx=add_to_chat_ctx)
        return self.schedule(handle, run, source="say", user_initiated=True)

    def generate_reply(
        self,
        *,
        user_message: ChatMessage | None = None,
        instructions: str | None = None,
        allow_interruptions: bool | None = None,
        tool_choice: ToolChoice | None = None,
        user_initiated: bool = True,
        turn: EndOfTurn | None = None,
        preemptive: Generation | None = None,
    ) -> SpeechHandle:
        """Queue a reply from the LLM (adding ``user_message`` to the chat first)."""
        if user_message is not None:
            self.runtime.add_item(user_message, agent=self.agent)
        handle = SpeechHandle(allow_interruptions=self._interruptible(allow_interruptions))
        settings = self._replies.settings(tool_choice or "auto")
        run = self._replies.replying(settings, instructions, turn, preemptive)
        return self.schedule(handle, run, source="generate_reply", user_initiated=user_initiated)

    def interrupt(self, *, force: bool = False) -> None:
        """Interrupt the current speech and drop the queued ones."""
        self._queue.interrupt(force=force)

    def _interruptible(self, allow: bool | None) -> bool:
        return self.allow_interruptions if allow is None else allow

    def _reply_to_turn(
        self, message: ChatMessage, turn: EndOfTurn, preemptive: Generation | None
    ) -> SpeechHandle:
        return self.generate_reply(
            user_message=message, user_initiated=False, turn=turn, preemptive=preemptive
        )

    def _hand_off(self, agent: Agent) -> None:
        self.runtime.request_handoff(agent, from_activity=self)

    def commit_handoff(self, old: Agent | None) -> None:
        """Record the handoff into this agent and carry the chat over."""
        item = AgentHandoff(old_agent_id=old.id if old else None, new_agent_id=self.agent.id)
        self.runtime.add_item(item, agent=self.agent)

    # -- what the speech queue tells (SpeechStage) ----------------------------------------------

    def may_speak(self) -> bool:
        """Whether this agent is the one the user talks to."""
        return self.runtime.is_current(self)

    def speech_starting(self, handle: SpeechHandle) -> None:
        """``handle`` starts: the user may be speaking over it already."""
        self._interruptions.speech_starting(handle)

    def speech_stopped(self, handle: SpeechHandle) -> None:
        """``handle`` ended: nothing plays, nothing stays paused."""
        self._playout.reset()
        self._interruptions.speech_stopped(handle)

    def queue_emptied(self) -> None:
        """The last speech ended: the agent listens."""
        self.runtime.set_agent_state("listening")

    def speech_failed(self, handle: SpeechHandle, error: Exception) -> None:
        """A speech's run raised: reported, and the session goes on."""
        self.runtime.report_error(error, self.agent)

    # -- what recognition tells, through the runtime (RecognitionHooks) -------------------------

    def on_start_of_speech(self, event: VADEvent | None) -> None:
        """The user started speaking: arm the interruption (or note the turn to discard).

        A preemptive reply goes on: speech that brings no new words leaves the turn as it was
        (and speech that begins at the instant the turn ends belongs to the next one)."""
        self._interruptions.on_start_of_speech(event)

    def on_end_of_speech(self, event: VADEvent | None) -> None:
        """The user stopped: if the speech was paused and no words came, resume it later."""
        self._interruptions.on_end_of_speech(event)

    def on_transcript(self, event: SpeechEvent, *, turn_text: str) -> None:
        """Words arrived: they interrupt a speech (``min_interruption_words`` of them)."""
        self._interruptions.on_transcript(event, turn_text=turn_text)

    def on_preemptive_generation(self, transcript: str) -> None:
        """A final transcript exists: start the reply now, to adopt if the turn ends as is."""
        self._turns.on_preemptive_generation(transcript)

    def cancel_preemptive(self) -> None:
        """Drop the reply prepared for a turn that will not end as it stood."""
        self._turns.cancel_preemptive()

    def on_end_of_turn(self, turn: EndOfTurn) -> None:
        """The user's turn is committed: reply (after ``on_user_turn_completed``)."""
        self._turns.on_end_of_turn(turn)
