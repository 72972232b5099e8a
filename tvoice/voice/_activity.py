"""`AgentActivity`: one running agent - its speech scheduler, replies, tools and interruptions."""

from __future__ import annotations

import heapq
import itertools
import logging
from collections.abc import AsyncIterable, Awaitable, Callable, Sequence
from typing import TYPE_CHECKING, Any

import trio

from ..llm import (
    LLM,
    AgentHandoff,
    ChatContext,
    ChatItem,
    ChatMessage,
    FunctionCall,
    FunctionCallOutput,
    StopResponse,
    Tool,
    ToolChoice,
)
from ..metrics import EOUMetrics, TurnMetrics
from ..stt import STT, SpeechEvent, SpeechEventType
from ..tokenize import count_words
from ..tts import TTS
from ..vad import VAD, VADEvent
from ._agent import Agent, AgentTask, ModelSettings, NodeModels, current_host
from ._events import (
    AgentFalseInterruptionEvent,
    FunctionToolsExecutedEvent,
    SpeechCreatedEvent,
    SpeechSource,
)
from ._generation import Generation
from ._playout import Playout
from ._recognition import EndOfTurn
from ._speech_handle import SPEECH_PRIORITY_NORMAL, SpeechHandle
from ._tools import ToolExecution, run_tool

if TYPE_CHECKING:
    from ._runtime import SessionRuntime
    from ._session import AgentSession

__all__ = ["AgentActivity"]

logger = logging.getLogger("tvoice.voice")

SpeechRun = Callable[[SpeechHandle], Awaitable[None]]
TOOL_CANCELLED = "The tool was cancelled: the conversation moved on before it finished."


class _Preemptive:
    def __init__(self, generation: Generation, transcript: str, fingerprint: object) -> None:
        self.generation = generation
        self.transcript = transcript
        self.fingerprint = fingerprint


class _Timer:
    """A callback after a delay, cancellable; one pending at a time."""

    def __init__(self) -> None:
        self._scope: trio.CancelScope | None = None
        self._due = 0.0
        self._callback: Callable[[], None] | None = None

    @property
    def pending(self) -> bool:
        return self._scope is not None

    def start(self, nursery: trio.Nursery, delay: float, callback: Callable[[], None]) -> None:
        self.cancel()
        scope = self._scope = trio.CancelScope()
        due = self._due = trio.current_time() + delay
        self._callback = callback

        async def run() -> None:
            with scope:
                await trio.sleep_until(due)
                self._scope = None
                callback()

        nursery.start_soon(run)

    def cancel(self) -> None:
        if self._scope is not None:
            self._scope.cancel()
            self._scope = None

    def cancel_unless_due(self) -> None:
        """Cancel it, unless it is due at this very instant: then call it now (its task, woken
        at this instant too, may not have run yet; what it does must not depend on that)."""
        due_now = self._scope is not None and trio.current_time() >= self._due
        self.cancel()
        if due_now and self._callback is not None:
            self._callback()


class AgentActivity:
    """Everything that runs for the current agent: started by the session, replaced on handoff.

    Speeches run one at a time from a priority queue, each inside its handle's cancel scope;
    tools run in the activity's tool nursery, so they outlive an interrupted speech.
    """

    def __init__(self, agent: Agent, runtime: SessionRuntime) -> None:
        self.agent = agent
        self.runtime = runtime
        self._nursery: trio.Nursery | None = None
        self._tool_nursery: trio.Nursery | None = None
        self._queue: list[
            tuple[int, int, SpeechHandle, Callable[[SpeechHandle], Awaitable[None]]]
        ] = []
        self._seq = itertools.count()
        self._queue_changed = trio.Event()
        self.current_speech: SpeechHandle | None = None
        self._playout = Playout(runtime, agent)
        self._preemptive: _Preemptive | None = None
        self._running_tools: set[ToolExecution] = set()
        self._accepting = True
        self._paused_speech: SpeechHandle | None = None
        self._interruption_timer = _Timer()
        self._false_interruption_timer = _Timer()
        self._pending_turn: EndOfTurn | None = None
        self._user_speaking_since: float | None = None
        self._turn_tasks = 0
        self._entering = False
        self._finished = trio.Event()
        self._models = runtime.models_for(agent)

    # -- what the agent sees of its runtime (AgentHost) ---------------------------------------

    @property
    def session(self) -> AgentSession[Any]:
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

    def settings(self, tool_choice: ToolChoice = "auto") -> ModelSettings:
        """What the nodes of one generation are given."""
        return ModelSettings(tool_choice=tool_choice, models=self._models)

    @property
    def allow_interruptions(self) -> bool:
        """Whether speech is interruptible by default."""
        if self.agent.allow_interruptions is not None:
            return self.agent.allow_interruptions
        return self.runtime.options.allow_interruptions

    @property
    def idle(self) -> bool:
        """Nothing queued, playing, running or pending."""
        return (
            self.current_speech is None
            and not self._queue
            and not self._running_tools
            and self._preemptive is None
            and self._turn_tasks == 0
            and not self._entering
        )

    # -- lifetime -----------------------------------------------------------------------------

    async def run(
        self,
        scope: trio.CancelScope,
        *,
        task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED,
    ) -> None:
        """Run the activity until ``scope`` is cancelled: scheduler and tool nursery, then
        ``on_enter``."""
        current_host.set(self)
        self.agent.attach(self)
        self._finished = trio.Event()
        try:
            with scope:
                await self._run(task_status)
        finally:
            self.agent.attach(None)
            self._finished.set()

    async def _run(self, task_status: trio.TaskStatus[None]) -> None:
        async with trio.open_nursery() as nursery, trio.open_nursery() as tools:
            self._nursery, self._tool_nursery = nursery, tools
            nursery.start_soon(self._schedule)
            task_status.started()
            self._entering = True
            try:
                await self._call_hook(self.agent.on_enter(), "on_enter")
            finally:
                self._entering = False
                self._wake()
            await trio.sleep_forever()

    async def wait_finished(self) -> None:
        """Wait until the activity's tasks are over (after its scope was cancelled)."""
        await self._finished.wait()

    async def drain(self) -> None:
        """Stop taking new speech and wait for what is queued and playing to finish."""
        self._accepting = False
        while self.current_speech is not None or self._queue:
            await self.runtime.wait_changed()

    async def _call_hook(self, coro: Awaitable[None], name: str) -> None:
        try:
            await coro
        except Exception as e:
            logger.exception("%s.%s failed", self.agent.label, name)
            self.runtime.report_error(e, self.agent)

    # -- the speech queue ---------------------------------------------------------------------

    def schedule(
        self,
        handle: SpeechHandle,
        run: Callable[[SpeechHandle], Awaitable[None]],
        *,
        source: SpeechSource,
        user_initiated: bool,
    ) -> SpeechHandle:
        """Queue a speech; it runs when everything of higher (or equal, earlier) priority has."""
        if not self._accepting:
            raise RuntimeError(f"{self.agent!r} is being replaced: it takes no new speech")
        heapq.heappush(self._queue, (-handle.priority, next(self._seq), handle, run))
        self.runtime.events.emit(
            "speech_created",
            SpeechCreatedEvent(speech_handle=handle, source=source, user_initiated=user_initiated),
        )
        self._wake()
        return handle

    def wake(self) -> None:
        """Re-check the queue (the activity may have become current again)."""
        self._wake()

    def _wake(self) -> None:
        self._queue_changed.set()
        self._queue_changed = trio.Event()
        self.runtime.notify_changed()

    async def _schedule(self) -> None:
        while True:
            while not self._queue or not self.runtime.is_current(self):
                await self._queue_changed.wait()
            _, _, handle, run = heapq.heappop(self._queue)
            if handle.done():
                continue
            self.current_speech = handle
            handle.mark_started()
            if self._user_speaking_since == trio.current_time():
                # The user began speaking at the instant this speech starts: whichever trio
                # ran first, the speech is heard over as if it had started first.
                self._user_speaks_over(handle)
            try:
                with handle.scope:
                    await run(handle)
            except Exception as e:
                logger.exception("speech %s failed", handle.id)
                self.runtime.report_error(e, self.agent)
            finally:
                self.current_speech = None
                self._playout.reset()
                if self._paused_speech is handle:
                    self._release_pause()
                handle.mark_done()
                if not self._queue:
                    self.runtime.set_agent_state("listening")
                self._wake()

    # -- say / reply --------------------------------------------------------------------------

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

        async def run(handle: SpeechHandle) -> None:
            gen = self._new_generation(self.settings())
            try:
                async with trio.open_nursery() as nursery:
                    gen.start(nursery, text=text, playing=True)
                    await self._play(gen, handle)
            finally:
                gen.cancel()
                if add_to_chat_ctx:
                    self._record_message(handle, gen)

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
        settings = self.settings(tool_choice or "auto")

        async def run(handle: SpeechHandle) -> None:
            await self._reply(handle, settings, instructions, turn, preemptive)

        return self.schedule(handle, run, source="generate_reply", user_initiated=user_initiated)

    def _interruptible(self, allow: bool | None) -> bool:
        return self.allow_interruptions if allow is None else allow

    def _new_generation(self, settings: ModelSettings) -> Generation:
        audio = self.runtime.audio_output is not None and self.tts is not None
        return Generation(self.agent, settings, audio=audio, on_error=self.runtime.report_error)

    def _llm_context(self, instructions: str | None) -> ChatContext:
        # A new list over the same items: nodes read the chat, they don't edit its items, and
        # copying every item on every request costs a turn time that grows with the history.
        system = ChatMessage(role="system", content=[self.agent.instructions])
        ctx = ChatContext([system, *self.agent.chat_ctx_ref().items])
        if instructions:
            ctx.add_message(role="system", content=instructions)
        return ctx

    async def _reply(
        self,
        handle: SpeechHandle,
        settings: ModelSettings,
        instructions: str | None,
        turn: EndOfTurn | None,
        preemptive: Generation | None,
    ) -> None:
        max_steps = self.runtime.options.max_tool_steps
        while True:
            gen = preemptive or self._new_generation(settings)
            preemptive = None
            executions = await self._run_step(handle, gen, instructions, turn)
            if gen.first_frame_at is not None:
                # The turn's latency is reported once, at the reply's first audio: a step that
                # only called tools leaves it to the step that speaks their result.
                turn = None
            if not executions or gen.failed:
                return
            new_agents = [e.new_agent for e in executions if e.new_agent is not None]
            if new_agents:
                self.runtime.request_handoff(new_agents[-1], from_activity=self)
                return
            if any(e.stop_response for e in executions):
                return
            if not any(e.reply_required for e in executions):
                return
            if handle.num_steps > max_steps:
                logger.warning(
                    "%s: max_tool_steps (%d) reached, not calling the LLM again",
                    self.agent.label,
                    max_steps,
                )
                return
            handle.num_steps += 1
            settings = self.settings()
            instructions = None

    async def _run_step(
        self,
        handle: SpeechHandle,
        gen: Generation,
        instructions: str | None,
        turn: EndOfTurn | None,
    ) -> list[ToolExecution]:
        executions: list[ToolExecution] = []
        completed = False
        self.runtime.set_agent_state("thinking")
        try:
            async with trio.open_nursery() as nursery:
                if not gen.started:
                    ctx = self._llm_context(instructions)
                    tools = self.agent.tools
                    gen.start(nursery, chat_ctx=ctx, tools=tools, playing=True)
                gen.on_call(self._tool_starter(handle, executions))
                await self._play(gen, handle, turn=turn)
                await gen.text.wait_closed()
                if any(not e.done.is_set() for e in executions):
                    self.runtime.set_agent_state("thinking")
                for execution in executions:
                    await execution.done.wait()
            completed = True
        finally:
            # Synchronous: it happens even when the speech was cancelled.
            gen.on_call(None)
            gen.cancel()
            self._record_message(handle, gen)
            self._record_tools(executions, completed=completed)
        return executions

    def _tool_starter(
        self, handle: SpeechHandle, executions: list[ToolExecution]
    ) -> Callable[[FunctionCall], None]:
        """What starts each tool call of a step in the tool nursery, as the call arrives."""
        tools = {t.name: t for t in self.agent.tools}

        def start(call: FunctionCall) -> None:
            assert self._tool_nursery is not None
            execution = ToolExecution(call=call)
            executions.append(execution)
            self._running_tools.add(execution)
            self._tool_nursery.start_soon(
                self._execute, execution, executions, tools.get(call.name), handle
            )
            self._wake()

        return start

    async def _execute(
        self,
        execution: ToolExecution,
        step: Sequence[ToolExecution],
        tool: Tool | None,
        handle: SpeechHandle,
    ) -> None:
        try:
            await run_tool(
                execution,
                tool,
                session=self.session,
                on_error=self.runtime.report_error,
                speech_handle=handle,
            )
        finally:
            self._running_tools.discard(execution)
            if execution.output is None:
                # Cancelled with its agent (a handoff, the session closing): every call keeps
                # its output, which LLM providers require.
                execution.output = FunctionCallOutput(
                    call_id=execution.call.call_id,
                    name=execution.call.name,
                    output=TOOL_CANCELLED,
                    is_error=True,
                )
            if execution.orphaned:
                # Its speech was interrupted: the result is still kept, exactly once.
                self._record_orphan(execution, step)
            self._wake()

    def _record_orphan(self, execution: ToolExecution, step: Sequence[ToolExecution]) -> None:
        # Outputs of one step that end at one instant go in the order of its calls, not in the
        # order trio happens to run their tasks: each goes before those of later calls.
        output = execution.output
        assert output is not None
        later = {e.call.call_id for e in step[step.index(execution) + 1 :]}

        def of_a_later_call(item: ChatItem) -> bool:
            return (
                item.type == "function_call_output"
                and item.call_id in later
                and item.created_at == output.created_at
            )

        self.runtime.add_item(output, agent=self.agent, before=of_a_later_call)

    async def _play(
        self, gen: Generation, handle: SpeechHandle, *, turn: EndOfTurn | None = None
    ) -> None:
        def on_started() -> None:
            self.runtime.set_agent_state("speaking")
            if turn is not None and turn.stopped_speaking_at is not None:
                self._report_turn(handle, gen, turn)

        await self._playout.play(gen, on_started)

    def _record_message(self, handle: SpeechHandle, gen: Generation) -> None:
        text = (gen.heard or "").strip()
        if not text:
            return
        interrupted = handle.interrupted or gen.heard != gen.text.text
        message = ChatMessage(role="assistant", content=[text], interrupted=interrupted)
        # Stamped when its text began, before the tool calls that the same step produced.
        message.created_at = gen.first_token_at or gen.started_at
        handle.chat_items.append(message)
        self.runtime.add_item(message, agent=self.agent)

    def _record_tools(self, executions: Sequence[ToolExecution], *, completed: bool) -> None:
        for e in executions:
            self.runtime.add_item(e.call, agent=self.agent)
            if e.output is not None:
                self.runtime.add_item(e.output, agent=self.agent)
            else:
                e.orphaned = True
        if completed and executions:
            self.runtime.events.emit(
                "function_tools_executed",
                FunctionToolsExecutedEvent(
                    function_calls=[e.call for e in executions],
                    function_call_outputs=[e.output for e in executions if e.output is not None],
                ),
            )

    def _report_turn(self, handle: SpeechHandle, gen: Generation, turn: EndOfTurn) -> None:
        assert turn.stopped_speaking_at is not None
        now = trio.current_time()
        self.runtime.report_metrics(
            TurnMetrics(
                timestamp=now,
                speech_id=handle.id,
                e2e_latency=now - turn.stopped_speaking_at,
                end_of_utterance_delay=turn.end_of_utterance_delay,
                transcription_delay=turn.transcription_delay,
                llm_ttft=(gen.first_token_at - gen.started_at) if gen.first_token_at else None,
                tts_ttfb=(gen.first_frame_at - gen.first_token_at)
                if gen.first_frame_at and gen.first_token_at
                else None,
            )
        )

    # -- interruptions ------------------------------------------------------------------------

    def _speech_now(self) -> SpeechHandle | None:
        """The current speech or, when there is none, the one the scheduler takes next: which
        of the two a speech is at an instant depends on when trio runs the scheduler's task,
        what the user's turn or voice does to it must not."""
        if self.current_speech is not None or not self.runtime.is_current(self):
            return self.current_speech
        queued = [q for q in self._queue if not q[2].done()]
        return min(queued)[2] if queued else None

    def _interruptible_speech(self) -> SpeechHandle | None:
        speech = self._speech_now()
        if speech is None or speech.done() or not speech.allow_interruptions:
            return None
        return speech

    def _pause_mode(self) -> bool:
        output = self.runtime.audio_output
        return (
            self.runtime.options.resume_false_interruption
            and output is not None
            and output.can_pause
        )

    def on_start_of_speech(self, event: VADEvent | None) -> None:
        """The user started speaking: arm the interruption (or note the turn to discard).

        A preemptive reply goes on: speech that brings no new words leaves the turn as it was
        (and speech that begins at the instant the turn ends belongs to the next one)."""
        self._false_interruption_timer.cancel_unless_due()
        self._user_speaking_since = trio.current_time()
        self._user_speaks_over(self._speech_now())

    def _user_speaks_over(self, speech: SpeechHandle | None) -> None:
        if speech is None or speech.done():
            return
        if not speech.allow_interruptions:
            self.runtime.discard_user_turn()
            return
        if self.runtime.options.min_interruption_words > 0:
            return
        assert self._nursery is not None
        # Not the agent state: the speech may have started at this instant, the state not yet.
        playing = speech is self.current_speech and self._playout.playing
        if self._pause_mode() and not playing:
            self._pause(speech)  # nothing heard yet: hold it while the user speaks
        elif self._pause_mode():
            self._interruption_timer.start(
                self._nursery,
                self.runtime.options.min_interruption_duration,
                lambda: self._pause(speech),
            )
        else:
            self._interruption_timer.start(
                self._nursery,
                self.runtime.options.min_interruption_duration,
                lambda: self._interrupt(speech),
            )

    def on_end_of_speech(self, event: VADEvent | None) -> None:
        """The user stopped: if the speech was paused and no words came, resume it later."""
        self._user_speaking_since = None
        self._interruption_timer.cancel_unless_due()
        if self._paused_speech is not None and self._nursery is not None:
            self._false_interruption_timer.start(
                self._nursery,
                self.runtime.options.false_interruption_timeout,
                self._false_interruption,
            )

    def on_transcript(self, event: SpeechEvent, *, turn_text: str) -> None:
        """Words arrived: they interrupt a speech (``min_interruption_words`` of them)."""
        speech = self._interruptible_speech()
        if speech is None or event.type not in (
            SpeechEventType.INTERIM_TRANSCRIPT,
            SpeechEventType.FINAL_TRANSCRIPT,
        ):
            return
        needed = max(1, self.runtime.options.min_interruption_words)
        if count_words(turn_text) >= needed:
            self._interrupt(speech)

    def _pause(self, speech: SpeechHandle) -> None:
        output = self.runtime.audio_output
        if speech.done() or output is None:
            return
        self._paused_speech = speech
        output.pause()

    def _release_pause(self) -> None:
        self._paused_speech = None
        self._false_interruption_timer.cancel()
        output = self.runtime.audio_output
        if output is not None:
            output.resume()

    def _false_interruption(self) -> None:
        speech = self._paused_speech
        if speech is None:
            return
        self._release_pause()
        self.runtime.events.emit(
            "agent_false_interruption", AgentFalseInterruptionEvent(resumed=True)
        )

    def _interrupt(self, speech: SpeechHandle) -> None:
        self._interruption_timer.cancel()
        self._false_interruption_timer.cancel()
        if not speech.done():
            speech.interrupt()

    def interrupt(self, *, force: bool = False) -> None:
        """Interrupt the current speech and drop the queued ones."""
        for _, _, handle, _ in self._queue:
            if handle.allow_interruptions or force:
                handle.interrupt(force=force)
                handle.mark_done()
        self._queue = [q for q in self._queue if not q[2].done()]
        heapq.heapify(self._queue)
        speech = self.current_speech
        if speech is not None and (speech.allow_interruptions or force):
            speech.interrupt(force=force)
        self._wake()

    # -- user turns ---------------------------------------------------------------------------

    def on_preemptive_generation(self, transcript: str) -> None:
        """A final transcript exists: start the reply now, to adopt if the turn ends as is."""
        self.cancel_preemptive()
        if not self.runtime.options.preemptive_generation or self._nursery is None:
            return
        speech = self._speech_now()
        if speech is not None and not speech.allow_interruptions:
            return
        ctx = self._llm_context(None)
        ctx.add_message(role="user", content=transcript)
        gen = self._new_generation(self.settings())
        self._preemptive = _Preemptive(gen, transcript, self._fingerprint())
        tools = self.agent.tools
        gen.start(self._nursery, chat_ctx=ctx, tools=tools)

    def _fingerprint(self) -> object:
        # The chat only grows by appending, so its length and last item identify it: O(1)
        # per turn instead of a tuple of the whole history.
        items = self.agent.chat_ctx_ref().items
        return (
            self.agent.instructions,
            tuple(t.name for t in self.agent.tools),
            len(items),
            items[-1].id if items else None,
        )

    def cancel_preemptive(self) -> None:
        """Drop the reply prepared for a turn that will not end as it stood."""
        if self._preemptive is not None:
            self._preemptive.generation.cancel()
            self._preemptive = None
            self._wake()

    def on_end_of_turn(self, turn: EndOfTurn) -> None:
        """The user's turn is committed: reply (after ``on_user_turn_completed``, in a task
        when the agent has its own: the hook may take time)."""
        assert self._nursery is not None
        if turn.discarded:
            logger.info("discarding %r, heard during uninterruptible speech", turn.transcript)
            self.cancel_preemptive()
            return
        needed = self.runtime.options.min_interruption_words
        if self._interruptible_speech() is not None and count_words(turn.transcript) < needed:
            # Too few words to interrupt ("uh-huh", "ok"): the agent goes on, as people do.
            logger.info("ignoring %r: fewer than %d words while speaking", turn.transcript, needed)
            self.cancel_preemptive()
            return
        self._turn_tasks += 1
        self._nursery.start_soon(self._user_turn_completed, turn)

    async def _user_turn_completed(self, turn: EndOfTurn) -> None:
        try:
            self._interrupt_for_turn()
            message = ChatMessage(role="user", content=[turn.transcript])
            # The hook's own list over the agent's items (as LiveKit's copy is): what it adds
            # is found below; copying every item would make each turn cost the history.
            turn_ctx = ChatContext(list(self.agent.chat_ctx_ref().items))
            fingerprint = self._fingerprint()
            hook_start = trio.current_time()
            try:
                await self.agent.on_user_turn_completed(turn_ctx, message)
            except StopResponse:
                self.cancel_preemptive()
                self.runtime.add_item(message, agent=self.agent)
                return
            except Exception as e:
                logger.exception("%s.on_user_turn_completed failed", self.agent.label)
                self.runtime.report_error(e, self.agent)
            self._reply_to_turn(
                turn,
                message,
                fingerprint,
                hook_delay=trio.current_time() - hook_start,
                added=self._added_by_hook(turn_ctx.items),
            )
        finally:
            self._turn_tasks -= 1
            self._wake()

    def _interrupt_for_turn(self) -> None:
        speech = self._interruptible_speech()
        if speech is not None:
            self._interrupt(speech)

    def _reply_to_turn(
        self,
        turn: EndOfTurn,
        message: ChatMessage,
        fingerprint: object,
        *,
        hook_delay: float,
        added: list[ChatItem],
    ) -> None:
        self.runtime.report_metrics(
            EOUMetrics(
                timestamp=trio.current_time(),
                end_of_utterance_delay=turn.end_of_utterance_delay,
                transcription_delay=turn.transcription_delay,
                on_user_turn_completed_delay=hook_delay,
            )
        )
        for item in added:
            self.runtime.add_item(item, agent=self.agent)
        preemptive = self._adopt_preemptive(message, fingerprint, unchanged=not added)
        self.generate_reply(
            user_message=message, user_initiated=False, turn=turn, preemptive=preemptive
        )

    def _added_by_hook(self, seen: list[ChatItem]) -> list[ChatItem]:
        """The items of the hook's context that the agent's chat lacks (by id)."""
        items = self.agent.chat_ctx_ref().items
        # Usually the hook adds nothing: its list is then still a prefix of the chat, which a
        # list comparison (identity first, in C) tells without hashing every id of the history.
        if len(seen) <= len(items) and seen == items[: len(seen)]:
            return []
        known = {item.id for item in items}
        return [i for i in seen if i.id not in known]

    def _adopt_preemptive(
        self, message: ChatMessage, fingerprint: object, *, unchanged: bool
    ) -> Generation | None:
        pre, self._preemptive = self._preemptive, None
        if pre is None:
            return None
        if unchanged and pre.transcript == message.text_content and pre.fingerprint == fingerprint:
            return pre.generation
        pre.generation.cancel()
        return None

    def commit_handoff(self, old: Agent | None) -> None:
        """Record the handoff into this agent and carry the chat over."""
        item = AgentHandoff(old_agent_id=old.id if old else None, new_agent_id=self.agent.id)
        self.runtime.add_item(item, agent=self.agent)
