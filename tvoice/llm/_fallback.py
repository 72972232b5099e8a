"""Several LLMs in order of preference: when one fails, the next answers."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from .._errors import APIError
from .._utils import (
    DEFAULT_API_CONNECT_OPTIONS,
    FALLBACK_CONNECT_OPTIONS,
    APIConnectOptions,
    FallbackPool,
)
from ._chat_context import ChatContext
from ._llm import LLM, LLMStream, Tool, ToolChoice

__all__ = ["FallbackAdapter"]


class FallbackAdapter(LLM):
    """``FallbackAdapter([primary, backup])``.

    Each LLM gets its own retries (``conn_options``); when they are used up it is skipped for
    ``recovery_interval`` seconds and the next one answers the same request. A failure after
    text was streamed is raised: a reply already spoken cannot be started over.
    """

    def __init__(
        self,
        llms: Sequence[LLM],
        *,
        recovery_interval: float = 30.0,
        conn_options: APIConnectOptions = FALLBACK_CONNECT_OPTIONS,
    ) -> None:
        super().__init__()
        self._pool = FallbackPool(list(llms), recovery_interval=recovery_interval, kind="LLM")
        self._llm_options = conn_options
        for llm in self._pool.models:
            llm.on("metrics_collected", lambda m: self.emit("metrics_collected", m))

    @property
    def pool(self) -> FallbackPool[LLM]:
        """The LLMs and their availability."""
        return self._pool

    @property
    def llm_conn_options(self) -> APIConnectOptions:
        """Retries and timeout applied to each LLM before falling back."""
        return self._llm_options

    def chat(
        self,
        *,
        chat_ctx: ChatContext,
        tools: Sequence[Tool] = (),
        tool_choice: ToolChoice = "auto",
        conn_options: APIConnectOptions = DEFAULT_API_CONNECT_OPTIONS,
        extra: dict[str, Any] | None = None,
    ) -> LLMStream:
        return _FallbackLLMStream(self, chat_ctx=chat_ctx, tools=tools, tool_choice=tool_choice)


class _FallbackLLMStream(LLMStream):
    _idle_timeout = False  # each inner stream has its own

    def __init__(
        self,
        adapter: FallbackAdapter,
        *,
        chat_ctx: ChatContext,
        tools: Sequence[Tool],
        tool_choice: ToolChoice,
    ) -> None:
        super().__init__(
            adapter,
            chat_ctx=chat_ctx,
            tools=tools,
            tool_choice=tool_choice,
            conn_options=APIConnectOptions(max_retry=0),
        )
        self._adapter = adapter

    def _report(self, *, cancelled: bool) -> None:
        pass

    async def _run(self) -> None:
        pool = self._adapter.pool
        errors: list[APIError] = []
        for llm in pool.candidates():
            try:
                async with llm.chat(
                    chat_ctx=self.chat_ctx,
                    tools=self.tools,
                    tool_choice=self.tool_choice,
                    conn_options=self._adapter.llm_conn_options,
                ) as inner:
                    async for chunk in inner:
                        await self._emit_chunk(chunk)
            except APIError as e:
                if self._emitted:
                    raise
                errors.append(e)
                pool.mark_failed(llm, e)
            else:
                pool.mark_ok(llm)
                return
        raise pool.all_failed(errors)
