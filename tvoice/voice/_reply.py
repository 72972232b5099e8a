"""Replies: what a speech runs - text said as is, or LLM steps with their tool calls - and
what each step leaves in the chat."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterable, Callable, Sequence
from typing import Protocol

import trio

from .._utils import EventEmitter
from ..io import AudioOutput
from ..llm import ChatContext, ChatMessage, ToolChoice
from ..metrics import AgentMetrics, TurnMetrics
from ._agent import Agent, ModelSettings, NodeModels
from ._events import AgentState, EventName, FunctionToolsExecutedEvent
from ._generation import Generation
from ._options import SessionOptions
from ._playout import Playout
from ._recognition import EndOfTurn
from ._speech_handle import SpeechHandle
from ._speech_queue import SpeechRun
from ._tools import SessionRecord, ToolExecution, ToolRunner

__all__ = ["Replies", "ReplyHost"]

logger = logging.getLogger("tvoice.voice")


class ReplyHost(SessionRecord, Protocol):
    """What replies read and tell of the session (its runtime)."""

    @property
    def options(self) -> SessionOptions: ...
    @property
    def audio_output(self) -> AudioOutput | None: ...
    @property
    def events(self) -> EventEmitter[EventName]: ...
    def set_agent_state(self, state: AgentState) -> None: ...
    def report_metrics(self, metrics: AgentMetrics) -> None: ...


class Replies:
    """Makes the runs of one agent's speeches: each plays its generations through the agent's
    playout, starts their tool calls in the tool runner and records what was heard."""

    def __init__(
        self,
        agent: Agent,
        host: ReplyHost,
        *,
        models: NodeModels,
        playout: Playout,
        tools: ToolRunner,
        hand_off: Callable[[Agent], None],
    ) -> None:
        self._agent = agent
        self._host = host
        self._models = models
        self._playout = playout
        self._tools = tools
        self._hand_off = hand_off

    def settings(self, tool_choice: ToolChoice = "auto") -> ModelSettings:
        """What the nodes of one generation are given."""
        return ModelSettings(tool_choice=tool_choice, models=self._models)

    def new_generation(self, settings: ModelSettings) -> Generation:
        """A generation of this agent's nodes, not started."""
        audio = self._host.audio_output is not None and self._models.tts is not None
        return Generation(self._agent, settings, audio=audio, on_error=self._host.report_error)

    def llm_context(self, instructions: str | None) -> ChatContext:
        """What the LLM is given: the agent's instructions, its chat, ``instructions``."""
        # A new list over the same items: nodes read the chat, they don't edit its items, and
        # copying every item on every request costs a turn time that grows with the history.
        system = ChatMessage(role="system", content=[self._agent.instructions])
        ctx = ChatContext([system, *self._agent.chat_ctx_ref().items])
        if instructions:
            ctx.add_message(role="system", content=instructions)
        return ctx

    # -- the runs -------------------------------------------------------------------------------

    def saying(self, text: str | AsyncIterable[str], *, add_to_chat_ctx: bool) -> SpeechRun:
        """The run of a speech that says ``text`` as is."""

        async def run(handle: SpeechHandle) -> None:
            gen = self.new_generation(self.settings())
            try:
                async with trio.open_nursery() as nursery:
                    gen.start(nursery, text=text, playing=True)
                    await self._play(gen, handle)
            finally:
                gen.cancel()
                if add_to_chat_ctx:
                    self._record_message(handle, gen)

        return run

    def replying(
        self,
        settings: ModelSettings,
        instructions: str | None,
        turn: EndOfTurn | None,
        preemptive: Generation | None,
    ) -> SpeechRun:
        """The run of a reply from the LLM: steps until no tool asks for another."""

        async def run(handle: SpeechHandle) -> None:
            await self._reply(handle, settings, instructions, turn, preemptive)

        return run

    async def _reply(
        self,
        handle: SpeechHandle,
        settings: ModelSettings,
        instructions: str | None,
        turn: EndOfTurn | None,
        preemptive: Generation | None,
    ) -> None:
        max_steps = self._host.options.max_tool_steps
        while True:
            gen = preemptive or self.new_generation(settings)
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
                self._hand_off(new_agents[-1])
                return
            if any(e.stop_response for e in executions):
                return
            if not any(e.reply_required for e in executions):
                return
            if handle.num_steps > max_steps:
                logger.warning(
                    "%s: max_tool_steps (%d) reached, not calling the LLM again",
                    self._agent.label,
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
        self._host.set_agent_state("thinking")
        try:
            async with trio.open_nursery() as nursery:
                if not gen.started:
                    ctx = self.llm_context(instructions)
                    tools = self._agent.tools
                    gen.start(nursery, chat_ctx=ctx, tools=tools, playing=True)
                gen.on_call(self._tools.starter(handle, executions))
                await self._play(gen, handle, turn=turn)
                await gen.text.wait_closed()
                if any(not e.done.is_set() for e in executions):
                    self._host.set_agent_state("thinking")
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

    async def _play(
        self, gen: Generation, handle: SpeechHandle, *, turn: EndOfTurn | None = None
    ) -> None:
        def on_started() -> None:
            self._host.set_agent_state("speaking")
            if turn is not None and turn.stopped_speaking_at is not None:
                self._report_turn(handle, gen, turn)

        await self._playout.play(gen, on_started)

    # -- what a step leaves ---------------------------------------------------------------------

    def _record_message(self, handle: SpeechHandle, gen: Generation) -> None:
        text = (gen.heard or "").strip()
        if not text:
            return
        interrupted = handle.interrupted or gen.heard != gen.text.text
        message = ChatMessage(role="assistant", content=[text], interrupted=interrupted)
        # Stamped when its text began, before the tool calls that the same step produced.
        message.created_at = gen.first_token_at or gen.started_at
        handle.chat_items.append(message)
        self._host.add_item(message, agent=self._agent)

    def _record_tools(self, executions: Sequence[ToolExecution], *, completed: bool) -> None:
        for e in executions:
            self._host.add_item(e.call, agent=self._agent)
            if e.output is not None:
                self._host.add_item(e.output, agent=self._agent)
            else:
                e.orphaned = True
        if completed and executions:
            self._host.events.emit(
                "function_tools_executed",
                FunctionToolsExecutedEvent(
                    function_calls=[e.call for e in executions],
                    function_call_outputs=[e.output for e in executions if e.output is not None],
                ),
            )

    def _report_turn(self, handle: SpeechHandle, gen: Generation, turn: EndOfTurn) -> None:
        assert turn.stopped_speaking_at is not None
        now = trio.current_time()
        self._host.report_metrics(
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
