"""`Agent`: instructions, tools, models and the hooks and nodes a user overrides."""

from __future__ import annotations

import contextvars
from collections.abc import AsyncGenerator, AsyncIterable, Callable, Generator, Sequence
from typing import Any, Generic, Protocol, TypeVar

import attrs
import trio

from .._utils import BackgroundTasks, short_id
from ..audio import AudioFrame
from ..llm import (
    LLM,
    ChatChunk,
    ChatContext,
    ChatMessage,
    FunctionTool,
    RawFunctionTool,
    Tool,
    ToolChoice,
    find_function_tools,
)
from ..stt import STT, SpeechEvent, StreamAdapter
from ..tts import TTS
from ..vad import VAD
from ._events import AgentState, CloseReason, EventName, UserState
from ._options import SessionOptions
from ._speech_handle import SpeechHandle
from ._turn import TurnDetection

__all__ = ["Agent", "AgentHost", "AgentTask", "ModelSettings", "NodeModels", "SessionView"]

T = TypeVar("T")
Userdata = TypeVar("Userdata")


@attrs.frozen(kw_only=True)
class NodeModels:
    """The models a node runs on: the agent's own, else the session's. A default node given
    none of a kind (settings an override made itself) runs on the one its agent runs on."""

    stt: STT | None = None
    vad: VAD | None = None
    llm: LLM | None = None
    tts: TTS | None = None


@attrs.frozen(kw_only=True)
class ModelSettings:
    """Settings passed to the nodes for one generation, with the models the default nodes
    use (``model_settings.models.llm``...): a node is given what it runs on."""

    tool_choice: ToolChoice = "auto"
    models: NodeModels = NodeModels()


class SessionView(Protocol[Userdata]):
    """The session as its agents and tools see it (``Agent.session``, ``RunContext.session``):
    the ``AgentSession`` that runs them, typed by what they may do with it (all but its
    lifetime: starting, running and leaving it is its owner's). Each member is the
    ``AgentSession`` one of that name; the session knows its agents, an agent knows this."""

    @property
    def userdata(self) -> Userdata: ...
    @userdata.setter
    def userdata(self, value: Userdata) -> None: ...
    @property
    def stt(self) -> STT | None: ...
    @property
    def vad(self) -> VAD | None: ...
    @property
    def llm(self) -> LLM | None: ...
    @property
    def tts(self) -> TTS | None: ...
    @property
    def options(self) -> SessionOptions: ...
    @property
    def history(self) -> ChatContext: ...
    @property
    def agent_state(self) -> AgentState: ...
    @property
    def user_state(self) -> UserState: ...
    @property
    def current_agent(self) -> Agent: ...
    @property
    def current_speech(self) -> SpeechHandle | None: ...
    def agent_by_id(self, agent_id: str) -> Agent | None: ...
    def on(self, event: EventName, callback: Callable[..., Any] | None = None) -> Any: ...
    def once(self, event: EventName, callback: Callable[..., Any]) -> None: ...
    def off(self, event: EventName, callback: Callable[..., Any]) -> None: ...
    def emit(self, event: EventName, *args: Any) -> None: ...
    def say(
        self,
        text: str | AsyncIterable[str],
        *,
        allow_interruptions: bool | None = None,
        add_to_chat_ctx: bool = True,
    ) -> SpeechHandle: ...
    def generate_reply(
        self,
        *,
        user_input: str | None = None,
        instructions: str | None = None,
        allow_interruptions: bool | None = None,
        tool_choice: ToolChoice | None = None,
    ) -> SpeechHandle: ...
    def interrupt(self, *, force: bool = False) -> None: ...
    def update_agent(self, agent: Agent) -> None: ...
    def commit_user_turn(self) -> None: ...
    def clear_user_turn(self) -> None: ...
    def shutdown(self, reason: CloseReason = "user_initiated") -> None: ...
    @property
    def idle(self) -> bool: ...
    async def wait_for_idle(self) -> None: ...


class AgentHost(Protocol):
    """What an agent sees of the runtime that runs it (``Agent.activity``)."""

    @property
    def session(self) -> SessionView[Any]: ...
    @property
    def models(self) -> NodeModels: ...
    @property
    def stt(self) -> STT | None: ...
    @property
    def vad(self) -> VAD | None: ...
    @property
    def llm(self) -> LLM | None: ...
    @property
    def tts(self) -> TTS | None: ...
    async def run_task(self, task: AgentTask[Any]) -> None: ...


# The host whose task is running: tools and hooks run inside one (``await SomeTask()``).
current_host: contextvars.ContextVar[AgentHost] = contextvars.ContextVar("tvoice_agent_host")


class Agent:
    """What the agent is: its instructions, tools and (optionally) its own models.

    Subclass it to add tools (``@function_tool`` methods), hooks (``on_enter``, ``on_exit``,
    ``on_user_turn_completed``) or to replace a stage of the pipeline (the ``*_node`` methods,
    async generators whose defaults call the models).
    """

    def __init__(
        self,
        *,
        instructions: str,
        tools: Sequence[Tool] = (),
        chat_ctx: ChatContext | None = None,
        stt: STT | None = None,
        vad: VAD | None = None,
        llm: LLM | None = None,
        tts: TTS | None = None,
        turn_detection: TurnDetection | None = None,
        allow_interruptions: bool | None = None,
        min_endpointing_delay: float | None = None,
        max_endpointing_delay: float | None = None,
    ) -> None:
        self.id = short_id(type(self).__name__.lower())
        self._instructions = instructions
        self._tools: list[Tool] = [*tools, *find_function_tools(self)]
        self._chat_ctx = chat_ctx.copy() if chat_ctx is not None else ChatContext()
        self.stt, self.vad, self.llm, self.tts = stt, vad, llm, tts
        self.turn_detection = turn_detection
        self.allow_interruptions = allow_interruptions
        self.min_endpointing_delay = min_endpointing_delay
        self.max_endpointing_delay = max_endpointing_delay
        self._host: AgentHost | None = None

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.id})"

    # -- state ------------------------------------------------------------------------------

    @property
    def label(self) -> str:
        """The agent's class name, as shown in logs and handoffs."""
        return type(self).__name__

    @property
    def instructions(self) -> str:
        """The system instructions given to the LLM."""
        return self._instructions

    @property
    def tools(self) -> list[Tool]:
        """Tools offered to the LLM: those passed in and the ``@function_tool`` methods."""
        return list(self._tools)

    @property
    def chat_ctx(self) -> ChatContext:
        """The agent's conversation (a copy: change it with :meth:`update_chat_ctx`)."""
        return self._chat_ctx.copy()

    @property
    def activity(self) -> AgentHost:
        """The runtime running this agent: its models and session (only while it is active)."""
        if self._host is None:
            raise RuntimeError(f"{self!r} is not running in a session")
        return self._host

    @property
    def session(self) -> SessionView[Any]:
        """The session this agent runs in."""
        return self.activity.session

    def host_or_none(self) -> AgentHost | None:
        """The runtime running this agent, or None when it is not active (runtime use)."""
        return self._host

    def attach(self, host: AgentHost | None) -> None:
        """Bind the agent to the runtime that runs it (runtime use)."""
        self._host = host

    def chat_ctx_ref(self) -> ChatContext:
        """The live chat context, for the runtime to append to (runtime use)."""
        return self._chat_ctx

    async def update_instructions(self, instructions: str) -> None:
        """Replace the instructions from the next LLM request on."""
        self._instructions = instructions

    async def update_tools(self, tools: Sequence[Tool]) -> None:
        """Replace the tools from the next LLM request on."""
        for tool in tools:
            if not isinstance(tool, FunctionTool | RawFunctionTool):
                raise TypeError(f"not a tool: {tool!r} (decorate it with @function_tool)")
        self._tools = list(tools)

    async def update_chat_ctx(self, chat_ctx: ChatContext) -> None:
        """Replace the agent's conversation."""
        self._chat_ctx = chat_ctx.copy()

    # -- hooks ------------------------------------------------------------------------------

    async def on_enter(self) -> None:
        """Called when the agent becomes active (``self.session.say`` works here)."""

    async def on_exit(self) -> None:
        """Called when the agent stops being active (handoff or session close)."""

    async def on_user_turn_completed(self, turn_ctx: ChatContext, new_message: ChatMessage) -> None:
        """The user finished a turn. Edit ``new_message``, add context to ``turn_ctx``, or raise
        ``StopResponse`` to not reply.

        ``turn_ctx`` is a new list over the agent's chat items: items added to it join the
        conversation before the user's message; the items themselves are the agent's.
        """

    # -- nodes ------------------------------------------------------------------------------

    def _node_models(self, model_settings: ModelSettings) -> NodeModels:
        # An override may hand a default node settings of its own (``ModelSettings(
        # tool_choice="none")``): the models they leave out are those the agent runs on.
        models, host = model_settings.models, self._host
        if host is None or models is host.models:
            return models
        running = host.models
        return NodeModels(
            stt=running.stt if models.stt is None else models.stt,
            vad=running.vad if models.vad is None else models.vad,
            llm=running.llm if models.llm is None else models.llm,
            tts=running.tts if models.tts is None else models.tts,
        )

    async def stt_node(
        self, audio: AsyncIterable[AudioFrame], model_settings: ModelSettings
    ) -> AsyncGenerator[SpeechEvent, None]:
        """Audio -> speech events. The default streams the audio through the STT (a batch
        STT through ``stt.StreamAdapter`` with the VAD, which cuts the audio into utterances)."""
        stt = streaming_stt(self._node_models(model_settings))
        if stt is None:
            return
        # Runs in a task of its own (the runtime drives every node that way), so yielding
        # while the pushing task runs is safe.
        async with stt.stream() as stream, BackgroundTasks() as nursery:

            async def push() -> None:
                async for frame in audio:
                    await stream.push_frame(frame)
                stream.end_input()

            nursery.start_soon(push)
            async for event in stream:
                yield event

    async def llm_node(
        self, chat_ctx: ChatContext, tools: Sequence[Tool], model_settings: ModelSettings
    ) -> AsyncGenerator[ChatChunk | str, None]:
        """Chat -> reply chunks (or plain strings). The default asks the LLM."""
        llm = self._node_models(model_settings).llm
        if llm is None:
            raise RuntimeError(f"{self!r} has no LLM: pass llm= to the Agent or the session")
        async with llm.chat(
            chat_ctx=chat_ctx, tools=tools, tool_choice=model_settings.tool_choice
        ) as stream:
            async for chunk in stream:
                yield chunk

    async def tts_node(
        self, text: AsyncIterable[str], model_settings: ModelSettings
    ) -> AsyncGenerator[AudioFrame, None]:
        """Text -> audio. The default streams the text through the TTS."""
        tts = self._node_models(model_settings).tts
        if tts is None:
            return
        async with tts.stream() as stream, BackgroundTasks() as nursery:

            async def push() -> None:
                async for piece in text:
                    await stream.push_text(piece)
                stream.end_input()

            nursery.start_soon(push)
            async for audio in stream:
                if not audio.is_final:
                    yield audio.frame

    async def transcription_node(
        self, text: AsyncIterable[str], model_settings: ModelSettings
    ) -> AsyncGenerator[str, None]:
        """Text -> the transcript shown to the user. The default passes it through."""
        async for piece in text:
            yield piece


def streaming_stt(models: NodeModels) -> STT | None:
    """The STT the default ``stt_node`` streams through: the node's, wrapped in a
    ``StreamAdapter`` (cutting utterances with the VAD) when it does not stream itself."""
    stt = models.stt
    if stt is None or stt.capabilities.streaming:
        return stt
    vad = models.vad
    if vad is None:
        raise RuntimeError(f"{stt.label} does not stream: give the session a VAD")
    return StreamAdapter(stt=stt, vad=vad)


class AgentTask(Agent, Generic[T]):
    """An agent that runs until it has a result: ``value = await CollectEmail()`` in a tool or
    hook makes it the active agent, and returns what it passes to :meth:`complete`; the
    previous agent then takes over again."""

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self._result: T | None = None
        self._error: BaseException | None = None
        self._completed = trio.Event()

    def complete(self, result: T | BaseException) -> None:
        """Finish the task with a value (or an exception, raised at the ``await``)."""
        if self._completed.is_set():
            raise RuntimeError(f"{self!r} is already complete")
        if isinstance(result, BaseException):
            self._error = result
        else:
            self._result = result
        self._completed.set()

    @property
    def done(self) -> bool:
        """:meth:`complete` was called."""
        return self._completed.is_set()

    async def wait_completed(self) -> None:
        """Wait until :meth:`complete` is called (runtime use)."""
        await self._completed.wait()

    def __await__(self) -> Generator[Any, None, T]:
        return self._run().__await__()

    async def _run(self) -> T:
        try:
            host = current_host.get()
        except LookupError:
            raise RuntimeError(
                "no agent is running here: await an AgentTask from a tool or a hook"
            ) from None
        await host.run_task(self)
        if self._error is not None:
            raise self._error
        return self._result  # type: ignore[return-value]
