"""``openai.LLM``: Chat Completions, streamed, on OpenAI or any OpenAI-compatible server."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import httpx

from tvoice import APIConnectOptions
from tvoice import llm as llm_
from tvoice.llm import ChatChunk, ChatContext, ChoiceDelta, Tool, ToolChoice

from .._http import SseDecoder, bad_event, cut_stream
from ._client import DEFAULT_TIMEOUT, OwnsClient, client_for
from ._presets import OPENAI, Preset, preset_named
from ._wire import DONE, ToolCallAssembler, chat_request, parse_chat_chunk

__all__ = ["LLM"]

_DEFAULT_OPTIONS = APIConnectOptions()


class LLM(OwnsClient, llm_.LLM):
    """A chat model behind the OpenAI Chat Completions API, streamed token by token.

    ``model``: the provider's model name. ``api_key``: by default ``OPENAI_API_KEY`` (never
    logged, never in a repr or an error). ``base_url``: by default ``OPENAI_BASE_URL`` or
    ``https://api.openai.com/v1``; any OpenAI-compatible server works (see the ``with_*``
    presets). ``timeout``: httpx's limits per request; ``headers``: sent with every request;
    ``http_client``: an ``httpx.AsyncClient`` to use (this LLM owns it and closes it in
    :meth:`aclose`).

    ``temperature``, ``max_completion_tokens``, ``seed``, ``response_format``,
    ``parallel_tool_calls``, ``top_p``, ``user``: sent when set. ``extra_body``: more fields
    sent with every request as they are (a server's own extensions); ``chat(extra=...)`` adds
    fields to one request.

    Text is emitted as it arrives; tool calls are emitted complete, when the choice finishes
    (their arguments stream in pieces); the usage chunk comes last. Leaving the stream closes
    the HTTP response at once.
    """

    _kind = "LLM"

    def __init__(
        self,
        *,
        model: str = "gpt-4.1-mini",
        api_key: str | None = None,
        base_url: str | None = None,
        timeout: float | httpx.Timeout = DEFAULT_TIMEOUT,
        headers: Mapping[str, str] | None = None,
        http_client: httpx.AsyncClient | None = None,
        temperature: float | None = None,
        max_completion_tokens: int | None = None,
        seed: int | None = None,
        response_format: Mapping[str, Any] | None = None,
        parallel_tool_calls: bool | None = None,
        top_p: float | None = None,
        user: str | None = None,
        extra_body: Mapping[str, Any] | None = None,
        _preset: Preset = OPENAI,
    ) -> None:
        if temperature is not None and not 0 <= temperature <= 2:
            raise ValueError(f"temperature must be in [0, 2], got {temperature}")
        if max_completion_tokens is not None and max_completion_tokens < 1:
            raise ValueError(f"max_completion_tokens must be >= 1, got {max_completion_tokens}")
        super().__init__()
        self._model = model
        self._client = client_for(
            _preset,
            api_key=api_key,
            base_url=base_url,
            timeout=timeout,
            headers=headers,
            http_client=http_client,
        )
        self._options: dict[str, Any] = {
            "temperature": temperature,
            "max_completion_tokens": max_completion_tokens,
            "seed": seed,
            "response_format": dict(response_format) if response_format else None,
            "parallel_tool_calls": parallel_tool_calls,
            "top_p": top_p,
            "user": user,
        }
        self._extra_body = dict(extra_body or {})

    @classmethod
    def with_preset(cls, name: str, *, model: str, **options: Any) -> LLM:
        """An LLM on the provider ``name`` of :data:`PRESETS` (its URL, its key variable)."""
        return cls(model=model, _preset=preset_named(name), **options)

    @classmethod
    def with_groq(cls, *, model: str = "llama-3.3-70b-versatile", **options: Any) -> LLM:
        """Groq (``GROQ_API_KEY``)."""
        return cls.with_preset("groq", model=model, **options)

    @classmethod
    def with_together(
        cls, *, model: str = "meta-llama/Llama-3.3-70B-Instruct-Turbo", **options: Any
    ) -> LLM:
        """Together AI (``TOGETHER_API_KEY``)."""
        return cls.with_preset("together", model=model, **options)

    @classmethod
    def with_fireworks(
        cls, *, model: str = "accounts/fireworks/models/llama-v3p3-70b-instruct", **options: Any
    ) -> LLM:
        """Fireworks AI (``FIREWORKS_API_KEY``)."""
        return cls.with_preset("fireworks", model=model, **options)

    @classmethod
    def with_openrouter(cls, *, model: str = "openai/gpt-4.1-mini", **options: Any) -> LLM:
        """OpenRouter (``OPENROUTER_API_KEY``)."""
        return cls.with_preset("openrouter", model=model, **options)

    @classmethod
    def with_deepseek(cls, *, model: str = "deepseek-chat", **options: Any) -> LLM:
        """DeepSeek (``DEEPSEEK_API_KEY``)."""
        return cls.with_preset("deepseek", model=model, **options)

    @classmethod
    def with_cerebras(cls, *, model: str = "llama3.1-8b", **options: Any) -> LLM:
        """Cerebras (``CEREBRAS_API_KEY``)."""
        return cls.with_preset("cerebras", model=model, **options)

    @classmethod
    def with_x_ai(cls, *, model: str = "grok-3-mini", **options: Any) -> LLM:
        """xAI (``XAI_API_KEY``)."""
        return cls.with_preset("xai", model=model, **options)

    @classmethod
    def with_perplexity(cls, *, model: str = "sonar", **options: Any) -> LLM:
        """Perplexity (``PERPLEXITY_API_KEY``)."""
        return cls.with_preset("perplexity", model=model, **options)

    @classmethod
    def with_ollama(cls, *, model: str = "llama3.2", **options: Any) -> LLM:
        """A local Ollama server (``http://localhost:11434/v1``, no key)."""
        return cls.with_preset("ollama", model=model, **options)

    @classmethod
    def with_vllm(cls, *, model: str, **options: Any) -> LLM:
        """A vLLM server (``http://localhost:8000/v1``; ``VLLM_API_KEY`` if it wants one)."""
        return cls.with_preset("vllm", model=model, **options)

    @classmethod
    def with_llamacpp(cls, *, model: str = "default", **options: Any) -> LLM:
        """A llama.cpp server (``http://localhost:8080/v1``; ``LLAMA_API_KEY`` if set)."""
        return cls.with_preset("llamacpp", model=model, **options)

    def chat(
        self,
        *,
        chat_ctx: ChatContext,
        tools: Sequence[Tool] = (),
        tool_choice: ToolChoice = "auto",
        conn_options: APIConnectOptions = _DEFAULT_OPTIONS,
        extra: dict[str, Any] | None = None,
    ) -> llm_.LLMStream:
        """Stream a reply; ``extra``: more request fields for this request only."""
        body = chat_request(
            model=self._model,
            chat_ctx=chat_ctx,
            tools=tools,
            tool_choice=tool_choice,
            options=self._options,
            extra={**self._extra_body, **(extra or {})},
        )
        return LLMStream(
            self,
            body,
            chat_ctx=chat_ctx,
            tools=tools,
            tool_choice=tool_choice,
            conn_options=conn_options,
        )


class LLMStream(llm_.LLMStream):
    """One streamed chat completion."""

    def __init__(
        self,
        llm: LLM,
        body: dict[str, Any],
        *,
        chat_ctx: ChatContext,
        tools: Sequence[Tool],
        tool_choice: ToolChoice,
        conn_options: APIConnectOptions,
    ) -> None:
        super().__init__(
            llm, chat_ctx=chat_ctx, tools=tools, tool_choice=tool_choice, conn_options=conn_options
        )
        self._client = llm.client
        self._body = body
        self._calls = ToolCallAssembler(call_id_prefix=self.request_id)
        self._finished = self._done = False

    @property
    def request_body(self) -> dict[str, Any]:
        """The JSON sent to ``/chat/completions``."""
        return self._body

    async def _run(self) -> None:
        # Each attempt reads a new reply (a retry comes only when nothing was emitted).
        self._calls = ToolCallAssembler(call_id_prefix=self.request_id)
        self._finished = self._done = False
        options = self.conn_options
        async with self._client.post(
            "/chat/completions",
            json=self._body,
            accept="text/event-stream",
            max_wait=min(options.max_retry_interval, options.timeout / 2),
        ) as response:
            # The body is read to its end even after [DONE] (nothing more should come), so
            # that the connection goes back to the pool for the next request.
            sse = SseDecoder()
            async for line in response.aiter_lines():
                event = sse.push(line)
                if event is not None:
                    await self._on_event(event.data)
            event = sse.flush()  # a last event with no blank line after it
            if event is not None:
                await self._on_event(event.data)
        if not self._done and not self._finished:
            # The body ended early: without [DONE], complete only if the reply finished.
            raise cut_stream(self._client.provider)
        if self._calls:
            # A server that never sent a finish_reason: the calls are complete at the end.
            await self._emit_calls()

    async def _on_event(self, data: str) -> None:
        if self._done:
            return
        if data == DONE:
            self._done = True
            return
        try:
            delta = parse_chat_chunk(data)
            for piece in delta.tool_calls:
                self._calls.push(piece)
        except ValueError as e:
            raise bad_event(self._client.provider, str(e)) from None
        if delta.error is not None:
            raise self._client.stream_error(delta.error)
        if delta.content:
            await self._say(delta.content)
        if delta.finished:
            self._finished = True
            if self._calls:
                await self._emit_calls()
        if delta.usage is not None:
            await self._emit_chunk(ChatChunk(id=self.request_id, usage=delta.usage))

    async def _emit_calls(self) -> None:
        try:
            calls = self._calls.finish()
        except ValueError as e:
            raise bad_event(self._client.provider, str(e)) from None
        await self._emit_chunk(ChatChunk(id=self.request_id, delta=ChoiceDelta(tool_calls=calls)))

    async def _say(self, text: str) -> None:
        await self._emit_chunk(ChatChunk(id=self.request_id, delta=ChoiceDelta(content=text)))
