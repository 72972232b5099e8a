"""Language models: the ABC, its stream and chunks."""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Iterable, Sequence
from typing import Any, Literal, TypeAlias

import attrs
import trio

from .._utils import (
    DEFAULT_API_CONNECT_OPTIONS,
    APIConnectOptions,
    EventEmitter,
    OutputStream,
    short_id,
)
from ..metrics import LLMMetrics
from ._chat_context import ChatContext, FunctionCall
from ._tools import FunctionTool, RawFunctionTool

__all__ = [
    "LLM",
    "ChatChunk",
    "ChoiceDelta",
    "CompletionUsage",
    "LLMStream",
    "Tool",
    "ToolChoice",
]

Tool: TypeAlias = FunctionTool | RawFunctionTool
ToolChoice: TypeAlias = Literal["auto", "required", "none"] | str
"""``"auto"``, ``"required"``, ``"none"``, or the name of the one tool to call."""


def function_calls(calls: Iterable[FunctionCall]) -> tuple[FunctionCall, ...]:
    """Converter: any iterable of calls to a tuple."""
    return tuple(calls)


@attrs.frozen(kw_only=True)
class ChoiceDelta:
    """New text and/or complete tool calls from the model."""

    role: Literal["assistant"] = "assistant"
    content: str | None = None
    tool_calls: tuple[FunctionCall, ...] = attrs.field(default=(), converter=function_calls)


@attrs.frozen(kw_only=True)
class CompletionUsage:
    """Tokens used by one request."""

    completion_tokens: int
    prompt_tokens: int
    total_tokens: int


@attrs.frozen(kw_only=True)
class ChatChunk:
    """One piece of a streamed reply: a ``delta``, a ``usage`` report, or both."""

    id: str
    delta: ChoiceDelta | None = None
    usage: CompletionUsage | None = None


class LLM(ABC, EventEmitter[Literal["metrics_collected"]]):
    """A chat model: ``async with llm.chat(chat_ctx=ctx, tools=tools) as stream``."""

    @property
    def label(self) -> str:
        """Name used in metrics and logs."""
        return f"{type(self).__module__}.{type(self).__name__}"

    @property
    def model(self) -> str:
        """The provider's model name."""
        return "unknown"

    @abstractmethod
    def chat(
        self,
        *,
        chat_ctx: ChatContext,
        tools: Sequence[Tool] = (),
        tool_choice: ToolChoice = "auto",
        conn_options: APIConnectOptions = DEFAULT_API_CONNECT_OPTIONS,
        extra: dict[str, Any] | None = None,
    ) -> LLMStream:
        """Stream a reply to ``chat_ctx``, possibly calling ``tools``."""

    async def aclose(self) -> None:
        """Release connections and models held by this LLM."""


class LLMStream(OutputStream[ChatChunk]):
    """The streamed reply of one ``chat`` call; ``_run`` emits chunks with ``_emit_chunk``.

    Iterating gives :class:`ChatChunk`. ``conn_options.timeout`` bounds the wait for the first
    token and between tokens; a provider that goes silent raises ``APITimeoutError``.
    """

    _idle_timeout = True
    _output_capacity = 64

    def __init__(
        self,
        llm: LLM,
        *,
        chat_ctx: ChatContext,
        tools: Sequence[Tool] = (),
        tool_choice: ToolChoice = "auto",
        conn_options: APIConnectOptions = DEFAULT_API_CONNECT_OPTIONS,
    ) -> None:
        super().__init__(conn_options=conn_options)
        self._llm = llm
        self._chat_ctx = chat_ctx
        self._tools = list(tools)
        self._tool_choice = tool_choice
        self._request_id = short_id("llm")
        self._usage: CompletionUsage | None = None

    @property
    def chat_ctx(self) -> ChatContext:
        """The conversation this reply answers."""
        return self._chat_ctx

    @property
    def tools(self) -> list[Tool]:
        """The tools offered to the model."""
        return self._tools

    @property
    def tool_choice(self) -> ToolChoice:
        """Whether (and which) tool the model must call."""
        return self._tool_choice

    @property
    def request_id(self) -> str:
        """Id of this request, in chunks and metrics."""
        return self._request_id

    async def _emit_chunk(self, chunk: ChatChunk) -> None:
        if chunk.usage is not None:
            self._usage = chunk.usage
        await self._emit(chunk)

    async def to_str_iterable(self) -> list[str]:
        """The text pieces of the reply (tool calls are left out)."""
        return [c.delta.content async for c in self if c.delta and c.delta.content]

    def _report(self, *, cancelled: bool) -> None:
        now = trio.current_time()
        first = self._first_output_at
        usage = self._usage
        duration = now - self._started_at
        completion = usage.completion_tokens if usage else 0
        self._llm.emit(
            "metrics_collected",
            LLMMetrics(
                label=self._llm.label,
                request_id=self._request_id,
                timestamp=now,
                ttft=(first - self._started_at) if first is not None else -1.0,
                duration=duration,
                cancelled=cancelled,
                prompt_tokens=usage.prompt_tokens if usage else 0,
                completion_tokens=completion,
                total_tokens=usage.total_tokens if usage else 0,
                tokens_per_second=completion / duration if duration > 0 else 0.0,
            ),
        )
