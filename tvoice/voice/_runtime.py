"""`SessionRuntime`: the state and the rules of one conversation, behind `AgentSession`.

The session (``_session.py``) is the public face: it owns the nursery and shows the API of a
conversation. This object owns what the runtime works on: the models and options, the history,
the user's and agent's states, the events, the I/O, the agents' activities and the listening;
activities and recognition report to it, never to the public face.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any

import trio

from .._utils import EventEmitter
from ..io import AudioInput, AudioOutput, TextOutput
from ..llm import LLM, ChatContext, ChatItem, ChatMessage
from ..metrics import AgentMetrics
from ..stt import STT, SpeechEvent
from ..tts import TTS
from ..vad import VAD, VADEvent
from ._activity import AgentActivity
from ._agent import Agent, AgentTask, ModelSettings, NodeModels, SessionView
from ._clock import Clock
from ._events import (
    AgentState,
    AgentStateChangedEvent,
    CloseEvent,
    CloseReason,
    ConversationItemAddedEvent,
    ErrorEvent,
    EventName,
    MetricsCollectedEvent,
    UserInputTranscribedEvent,
    UserState,
    UserStateChangedEvent,
)
from ._options import SessionOptions
from ._recognition import AudioRecognition, EndOfTurn

__all__ = ["SessionRuntime"]

_AN_INSTANT = 1e-9  # seconds: after everything due now, before anything due later

logger = logging.getLogger("tvoice.voice")


class SessionRuntime:
    """Owns the conversation's state; runs in the nursery its public face owns."""

    def __init__(
        self,
        face: SessionView[Any],
        *,
        stt: STT | None,
        vad: VAD | None,
        llm: LLM | None,
        tts: TTS | None,
        options: SessionOptions,
    ) -> None:
        self.face = face
        self.stt, self.vad, self.llm, self.tts = stt, vad, llm, tts
        self.options = options
        self.events: EventEmitter[EventName] = EventEmitter()
        self.history = ChatContext()
        self.agent_state: AgentState = "initializing"
        self.user_state: UserState = "listening"
        self.audio_input: AudioInput | None = None
        self.audio_output: AudioOutput | None = None
        self.text_output: TextOutput | None = None
        self.nursery: trio.Nursery | None = None
        self._activities: list[AgentActivity] = []
        self._recognition: AudioRecognition | None = None
        # Made when someone waits for a change: an idle session holds none, and a change that
        # nobody waits for makes none.
        self._changed: trio.Event | None = None
        self.closed = False
        # Made when someone waits (most sessions end by leaving their block): an idle session
        # holds less.
        self._close_waiter: trio.Event | None = None
        self._close_requested = False
        self.close_reason: CloseReason = "user_initiated"
        self.close_error: BaseException | None = None
        self._handoffs = 0
        self._watched: list[int] = []  # ids of models whose metrics we forward (a handful)
        self._state_since = 0.0
        # One task keeps the time of the user's turn and of the user-away timer.
        self.clock = Clock()
        self._away: _UserAway | None = None
        self._agents: dict[str, Agent] = {}

    # -- state --------------------------------------------------------------------------------

    @property
    def activity(self) -> AgentActivity:
        """The activity of the current agent (its speech queue, tools and interruptions)."""
        if not self._activities:
            raise RuntimeError("the session has not started: await session.start(agent)")
        return self._activities[-1]

    @property
    def started(self) -> bool:
        """An agent has been started."""
        return bool(self._activities)

    def agent_by_id(self, agent_id: str) -> Agent | None:
        """An agent that ran in this session."""
        return self._agents.get(agent_id)

    def is_current(self, activity: AgentActivity) -> bool:
        """Whether ``activity`` is the one the user is talking to."""
        return bool(self._activities) and self._activities[-1] is activity

    def models_for(self, agent: Agent) -> NodeModels:
        """The models ``agent``'s nodes run on: its own, else the session's."""
        return NodeModels(
            stt=agent.stt or self.stt,
            vad=agent.vad or self.vad,
            llm=agent.llm or self.llm,
            tts=agent.tts or self.tts,
        )

    # -- lifetime -----------------------------------------------------------------------------

    async def start(
        self,
        agent: Agent,
        *,
        audio_input: AudioInput | None,
        audio_output: AudioOutput | None,
        text_output: TextOutput | None,
    ) -> None:
        """Start listening and the first agent (its ``on_enter`` runs in the background)."""
        assert self.nursery is not None
        self.audio_input, self.audio_output, self.text_output = (
            audio_input,
            audio_output,
            text_output,
        )
        for model in (self.stt, self.vad, self.llm, self.tts):
            self._watch(model)
        if self.tts is not None and audio_output is not None:
            # No reply should wait for the TTS to connect: it stays warm until the close
            # cancels the nursery.
            self.nursery.start_soon(self._keep_tts_warm, self.tts)
        self.set_agent_state("listening")
        activity = await self._start_activity(agent)
        activity.commit_handoff(None)
        self.nursery.start_soon(self.clock.run)
        if audio_input is not None:
            recognition = self._recognition = self._make_recognition(agent)
            recognition.restart_stt(agent, ModelSettings(models=self.models_for(agent)))
            await recognition.open_vad()
            self.nursery.start_soon(recognition.run, audio_input)
        if self.options.user_away_timeout is not None:
            self._away = _UserAway(self, self.options.user_away_timeout)
            self.clock.add(self._away)

    async def _keep_tts_warm(self, tts: TTS) -> None:
        try:
            await tts.keep_warm()
        except Exception as e:  # the first reply connects instead, and says if it cannot
            self.report_error(e, tts)

    def _make_recognition(self, agent: Agent) -> AudioRecognition:
        vad = agent.vad or self.vad
        stt = agent.stt or self.stt
        mode = agent.turn_detection or self.options.turn_detection
        if mode is None:
            mode = "vad" if vad is not None else ("stt" if stt is not None else "manual")
        if mode == "vad" and vad is None:
            raise ValueError("turn_detection='vad' needs a VAD")
        if mode == "stt" and stt is None:
            raise ValueError("turn_detection='stt' needs an STT")
        return AudioRecognition(
            _Hooks(self),
            vad=vad,
            turn_detection=mode,
            min_endpointing_delay=agent.min_endpointing_delay or self.options.min_endpointing_delay,
            max_endpointing_delay=agent.max_endpointing_delay or self.options.max_endpointing_delay,
            stt_enabled=stt is not None,
            clock=self.clock,
        )

    async def _start_activity(self, agent: Agent) -> AgentActivity:
        assert self.nursery is not None
        if agent.host_or_none() is not None:
            raise RuntimeError(f"{agent!r} is already running")
        activity = AgentActivity(agent, self)
        self._agents[agent.id] = agent
        for model in (agent.stt, agent.vad, agent.llm, agent.tts):
            self._watch(model)
        self._activities.append(activity)
        await self.nursery.start(activity.run)
        self.notify_changed()
        return activity

    def _watch(self, model: STT | VAD | LLM | TTS | None) -> None:
        if model is None or id(model) in self._watched:
            return
        self._watched.append(id(model))
        model.on("metrics_collected", self.report_metrics)

    async def close_gracefully(self) -> None:
        """Commit the pending user turn, stop the speech, and let every agent exit."""
        # What is due at the instant of the close (a final transcript, a committed turn) happens
        # first: trio runs the tasks ready at one instant in a random order, and what the close
        # keeps must not depend on it. (Instants are shared on a virtual clock; on a real one
        # this is one checkpoint.)
        await trio.sleep(_AN_INSTANT)
        recognition = self._recognition
        if recognition is not None and recognition.transcript and self._activities:
            message = ChatMessage(role="user", content=[recognition.transcript])
            recognition.clear()
            self.add_item(message, agent=self.activity.agent)
        for activity in reversed(self._activities):
            activity.interrupt(force=True)
        for activity in reversed(self._activities):
            await activity.agent.on_exit()
            activity.cancel()

    def finish_close(self) -> None:
        """The session is closed: emit ``close`` once."""
        if self.closed:
            return
        self.closed = True
        self.notify_changed()
        self.events.emit("close", CloseEvent(reason=self.close_reason, error=self.close_error))

    def fail(self, error: BaseException) -> None:
        """End the session because of ``error`` (it closes with reason "error" and the error)."""
        self.close_error = error
        self.shutdown("error")

    def shutdown(self, reason: CloseReason) -> None:
        """Ask the session to end: :meth:`wait_closed` returns, leaving the block closes it."""
        self.close_reason = reason
        self._close_requested = True
        if self._close_waiter is not None:
            self._close_waiter.set()

    async def wait_closed(self) -> None:
        """Wait until the session is asked to end."""
        if self._close_waiter is None:
            self._close_waiter = trio.Event()
            if self._close_requested:
                self._close_waiter.set()
        await self._close_waiter.wait()

    # -- handoffs -----------------------------------------------------------------------------

    def request_handoff(self, agent: Agent, *, from_activity: AgentActivity) -> None:
        """Replace ``from_activity``'s agent with ``agent`` once its speech is done."""
        assert self.nursery is not None
        if agent.host_or_none() is not None:
            self.report_error(
                RuntimeError(f"cannot hand off to {agent!r}: it is already running"), agent
            )
            return
        self._handoffs += 1
        self.nursery.start_soon(self._handoff, agent, from_activity)

    def _remove(self, activity: AgentActivity) -> None:
        self._activities.remove(activity)
        activity.cancel()

    async def _handoff(self, agent: Agent, old: AgentActivity) -> None:
        try:
            await old.drain()
            await old.agent.on_exit()
            self._remove(old)
            # Its tools record their (cancelled) outputs as they end: carry those over too.
            await old.wait_finished()
            await agent.update_chat_ctx(
                agent.chat_ctx.merge(old.agent.chat_ctx_ref(), exclude_instructions=True)
            )
            new = await self._start_activity(agent)
            new.commit_handoff(old.agent)
            if self._recognition is not None and _hears_differently(old.agent, agent, self.stt):
                settings = ModelSettings(models=self.models_for(agent))
                self._recognition.restart_stt(agent, settings)
        finally:
            self._handoffs -= 1
            self.notify_changed()

    async def run_task(self, task: AgentTask[Any], *, parent: AgentActivity) -> None:
        """Make ``task`` the current agent until it completes, then give the turn back to
        ``parent`` (``await SomeTask()``)."""
        await task.update_chat_ctx(
            task.chat_ctx.merge(parent.agent.chat_ctx_ref(), exclude_instructions=True)
        )
        activity = await self._start_activity(task)
        activity.commit_handoff(parent.agent)
        try:
            await task.wait_completed()
        finally:
            with trio.CancelScope(shield=True):
                await activity.drain()
                await task.on_exit()
                self._remove(activity)
                await activity.wait_finished()
                await parent.agent.update_chat_ctx(
                    parent.agent.chat_ctx.merge(task.chat_ctx_ref(), exclude_instructions=True)
                )
                parent.commit_handoff(task)
                parent.wake()

    # -- the user's turn ----------------------------------------------------------------------

    def commit_user_turn(self) -> None:
        """End the user's turn now."""
        if self._recognition is not None:
            self._recognition.commit()

    def discard_user_turn(self) -> None:
        """Drop the user's current turn when it commits: it was heard while the agent spoke
        without allowing interruptions."""
        if self._recognition is not None:
            self._recognition.discard_speech()

    def clear_user_turn(self) -> None:
        """Forget what the user said in the current turn."""
        if self._recognition is not None:
            self._recognition.clear()
        if self._activities:
            self.activity.cancel_preemptive()

    # -- idle / change notification -----------------------------------------------------------

    def notify_changed(self) -> None:
        """Something the idle state depends on changed."""
        changed, self._changed = self._changed, None
        if changed is not None:
            changed.set()
        if self._away is not None:
            self._away.changed()

    async def wait_changed(self) -> None:
        """Wait for the next change of state."""
        if self._changed is None:
            self._changed = trio.Event()
        await self._changed.wait()

    @property
    def idle(self) -> bool:
        """Nothing queued, playing, generating, running or pending, and the user is silent."""
        recognition = self._recognition
        return (
            self._handoffs == 0
            and all(a.idle for a in self._activities)
            and (recognition is None or not recognition.turn_pending)
        )

    async def wait_for_idle(self) -> None:
        """Wait until the session is :attr:`idle` (or closed)."""
        while not self.idle and not self.closed:
            await self.wait_changed()

    # -- what the activities report -----------------------------------------------------------

    def set_agent_state(self, state: AgentState) -> None:
        """Change the agent state, emitting ``agent_state_changed``."""
        if state == self.agent_state:
            return
        old, self.agent_state = self.agent_state, state
        self._state_since = trio.current_time()
        self.events.emit(
            "agent_state_changed", AgentStateChangedEvent(old_state=old, new_state=state)
        )
        self._notify_state_changed()
        self.notify_changed()

    def set_user_state(self, state: UserState) -> None:
        """Change the user state, emitting ``user_state_changed``."""
        if state == self.user_state:
            return
        old, self.user_state = self.user_state, state
        self._state_since = trio.current_time()
        self.events.emit(
            "user_state_changed", UserStateChangedEvent(old_state=old, new_state=state)
        )
        self._notify_state_changed()
        self.notify_changed()

    def add_item(
        self,
        item: ChatItem,
        *,
        agent: Agent,
        before: Callable[[ChatItem], bool] | None = None,
    ) -> None:
        """Append an item to the history and to ``agent``'s chat; the last items that
        ``before`` matches stay after it."""
        # The history is causal: an item is never stamped before the one it follows (a reply
        # prepared preemptively began before the user's turn was committed, say).
        if self.history.items and item.created_at < self.history.items[-1].created_at:
            item.created_at = self.history.items[-1].created_at
        for items in (self.history.items, agent.chat_ctx_ref().items):
            index = len(items)
            while before is not None and index > 0 and before(items[index - 1]):
                index -= 1
            items.insert(index, item)
        self.events.emit("conversation_item_added", ConversationItemAddedEvent(item=item))
        self.notify_changed()

    def report_error(self, error: BaseException, source: Any) -> None:
        """Emit ``error``; the session goes on."""
        logger.warning("error from %r: %s", source, error)
        self.events.emit("error", ErrorEvent(error=error, source=source))

    def report_metrics(self, metrics: AgentMetrics) -> None:
        """Emit ``metrics_collected``."""
        self.events.emit("metrics_collected", MetricsCollectedEvent(metrics=metrics))

    def _notify_state_changed(self) -> None:
        if self._away is not None:
            self.clock.changed()

    @property
    def state_since(self) -> float:
        """When the user's or the agent's state last changed."""
        return self._state_since


class _UserAway:
    """The user is away once both sides have been listening for ``after`` seconds and the
    session is idle: a rule of the session's clock.

    While both listen its deadline is that instant, not moved by the turns in between: a
    later change of state only moves it on. Due while the session is not idle, it waits for
    the next change and looks again then.
    """

    __slots__ = ("_after", "_runtime", "_waiting")

    def __init__(self, runtime: SessionRuntime, after: float) -> None:
        self._runtime = runtime
        self._after = after
        self._waiting = False  # due, but the session was busy: look again at the next change

    @property
    def deadline(self) -> float | None:
        runtime = self._runtime
        if self._waiting or not runtime.user_state == runtime.agent_state == "listening":
            return None
        return runtime.state_since + self._after

    def tick(self, now: float) -> None:
        if self._runtime.idle:
            self._runtime.set_user_state("away")
        else:
            self._waiting = True

    def changed(self) -> None:
        """The idle state may have changed."""
        if self._waiting:
            self._waiting = False
            self._runtime.clock.changed()


def _hears_differently(old: Agent, new: Agent, default: STT | None) -> bool:
    # Restarting the STT loses the audio in flight: only when the new agent needs it.
    return (old.stt or default) is not (new.stt or default) or (
        type(old).stt_node is not type(new).stt_node
    )


class _Hooks:
    """Routes recognition events to the session and its current activity."""

    def __init__(self, session: SessionRuntime) -> None:
        self._session = session

    def on_start_of_speech(self, event: VADEvent | None) -> None:
        self._session.set_user_state("speaking")
        self._session.activity.on_start_of_speech(event)

    def on_end_of_speech(self, event: VADEvent | None) -> None:
        self._session.set_user_state("listening")
        self._session.activity.on_end_of_speech(event)

    def on_transcript(self, event: SpeechEvent, *, turn_text: str) -> None:
        from ..stt import SpeechEventType

        self._session.events.emit(
            "user_input_transcribed",
            UserInputTranscribedEvent(
                transcript=event.text,
                is_final=event.type == SpeechEventType.FINAL_TRANSCRIPT,
                language=event.alternatives[0].language or None if event.alternatives else None,
            ),
        )
        self._session.activity.on_transcript(event, turn_text=turn_text)

    def on_preemptive_generation(self, transcript: str) -> None:
        self._session.activity.on_preemptive_generation(transcript)

    def on_end_of_turn(self, turn: EndOfTurn) -> None:
        self._session.activity.on_end_of_turn(turn)
        self._session.notify_changed()

    def chat_ctx_for_turn_detection(self) -> ChatContext:
        return self._session.activity.agent.chat_ctx

    def on_error(self, error: BaseException, source: object) -> None:
        self._session.report_error(error, source)

    def on_stt_lost(self, error: BaseException) -> None:
        self._session.fail(error)

    def on_pending_changed(self) -> None:
        self._session.notify_changed()
