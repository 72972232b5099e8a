"""``anthropic.LLM``: Claude on the Messages API, streamed."""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from typing import Any, ClassVar, Literal

import httpx

from tvoice import APIConnectOptions, APIError
from tvoice import llm as llm_
from tvoice.llm import ChatChunk, ChatContext, ChoiceDelta, Tool, ToolChoice

from .._http import (
    DEFAULT_TIMEOUT,
    HttpClient,
    OwnsClient,
    SseDecoder,
    StatusError,
    bad_event,
    cut_stream,
    resolve_api_key,
)
from ._errors import status_error, stream_error
from ._wire import API_VERSION, MessageStream, messages_request

__all__ = ["DEFAULT_BASE_URL", "LLM", "Client", "LLMStream"]

DEFAULT_BASE_URL = "https://api.anthropic.com"
_API_KEY_ENV = "ANTHROPIC_API_KEY"
_DEFAULT_OPTIONS = APIConnectOptions()


class Client(HttpClient):
    """POSTs to the Messages API with ``x-api-key`` and ``anthropic-version``; maps every
    failure (see ``_errors``)."""

    def auth_headers(self, api_key: str) -> dict[str, str]:
        return {"x-api-key": api_key}

    def status_error(self, status: int, headers: httpx.Headers, body: bytes) -> StatusError:
        return status_error(self.provider, status, headers, body, secret=self.secret)

    def stream_error(self, error: Any) -> APIError:
        """The error for an ``error`` event in a stream (the key scrubbed from it)."""
        return stream_error(self.provider, error, secret=self.secret)


class LLM(OwnsClient, llm_.LLM):
    """Claude through the Anthropic Messages API, streamed token by token.

    ``model``: the model's name. ``api_key``: by default ``ANTHROPIC_API_KEY`` (never logged,
    never in a repr or an error). ``base_url``: by default ``ANTHROPIC_BASE_URL`` or
    ``https://api.anthropic.com`` (a proxy, a gateway, a local server). ``timeout``: httpx's
    limits per request; ``headers``: sent with every request (``anthropic-beta``...);
    ``http_client``: an ``httpx.AsyncClient`` to use (this LLM owns it and closes it in
    :meth:`aclose`).

    ``max_tokens`` (the API requires one), ``temperature`` (0 to 1), ``top_p``, ``top_k``:
    sent when set. ``parallel_tool_calls=False``: one tool call per reply at most.
    ``caching="ephemeral"``: the system prompt, the tools and the conversation are marked for
    Anthropic's prompt cache (a voice agent resends them every turn). ``extra_body``: more
    fields sent with every request as they are; ``chat(extra=...)`` adds fields to one
    request.

    Text is emitted as it arrives; each tool call is emitted complete when its block ends
    (its input streams in pieces); the usage (cache writes and reads counted in the prompt)
    comes last. Leaving the stream closes the HTTP response at once.
    """

    _plugin: ClassVar[str] = "anthropic"
    _kind: ClassVar[str] = "LLM"
    _client: Client

    def __init__(
        self,
        *,
        model: str = "claude-haiku-4-5",
        api_key: str | None = None,
        base_url: str | None = None,
        timeout: float | httpx.Timeout = DEFAULT_TIMEOUT,
        headers: Mapping[str, str] | None = None,
        http_client: httpx.AsyncClient | None = None,
        max_tokens: int = 1024,
        temperature: float | None = None,
        top_p: float | None = None,
        top_k: int | None = None,
        parallel_tool_calls: bool | None = None,
        caching: Literal["ephemeral"] | None = None,
        extra_body: Mapping[str, Any] | None = None,
    ) -> None:
        if temperature is not None and not 0 <= temperature <= 1:
            raise ValueError(f"temperature must be in [0, 1], got {temperature}")
        if max_tokens < 1:
            raise ValueError(f"max_tokens must be >= 1, got {max_tokens}")
        super().__init__()
        url = (base_url or os.environ.get("ANTHROPIC_BASE_URL") or DEFAULT_BASE_URL).rstrip("/")
        # The hosted API needs a key; a local server or a gateway at another URL may not.
        key = resolve_api_key(
            api_key, _API_KEY_ENV, provider="anthropic", required=url == DEFAULT_BASE_URL
        )
        self._model = model
        self._client = Client(
            provider="anthropic",
            base_url=url,
            api_key=key,
            timeout=timeout,
            headers={"anthropic-version": API_VERSION, **(headers or {})},
            http_client=http_client,
        )
        self._max_tokens = max_tokens
        self._options: dict[str, Any] = {"temperature": temperature, "top_p": top_p, "top_k": top_k}
        self._parallel_tool_calls = parallel_tool_calls
        self._caching = caching == "ephemeral"
        self._extra_body = dict(extra_body or {})

    @property
    def client(self) -> Client:
        """The HTTP client this model owns."""
        return self._client

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
        body = messages_request(
            model=self._model,
            chat_ctx=chat_ctx,
            tools=tools,
            tool_choice=tool_choice,
            max_tokens=self._max_tokens,
            options=self._options,
            parallel_tool_calls=self._parallel_tool_calls,
            caching=self._caching,
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
    """One streamed message."""

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
        self._message = MessageStream()

    @property
    def request_body(self) -> dict[str, Any]:
        """The JSON sent to ``/v1/messages``."""
        return self._body

    async def _run(self) -> None:
        # Each attempt reads a new message (a retry comes only when nothing was emitted).
        self._message = MessageStream()
        options = self.conn_options
        async with self._client.post(
            "/v1/messages",
            json=self._body,
            accept="text/event-stream",
            max_wait=min(options.max_retry_interval, options.timeout / 2),
        ) as response:
            # Read to the end of the body even after message_stop, so that the connection
            # goes back to the pool for the next request.
            sse = SseDecoder()
            async for line in response.aiter_lines():
                event = sse.push(line)
                if event is not None:
                    await self._on_event(event.data)
            event = sse.flush()
            if event is not None:
                await self._on_event(event.data)
        if not self._message.stopped:
            raise cut_stream(self._client.provider)

    async def _on_event(self, data: str) -> None:
        try:
            update = self._message.push(data)
        except ValueError as e:
            raise bad_event(self._client.provider, str(e)) from None
        if update is None:
            return
        if update.error is not None:
            raise self._client.stream_error(update.error)
        if update.text:
            delta = ChoiceDelta(content=update.text)
            await self._emit_chunk(ChatChunk(id=self.request_id, delta=delta))
        if update.tool_call is not None:
            delta = ChoiceDelta(tool_calls=[update.tool_call])
            await self._emit_chunk(ChatChunk(id=self.request_id, delta=delta))
        if update.usage is not None:
            await self._emit_chunk(ChatChunk(id=self.request_id, usage=update.usage))
