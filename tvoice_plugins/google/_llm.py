"""``google.LLM``: Gemini on the Gemini API's ``streamGenerateContent``, streamed."""

from __future__ import annotations

import os
from collections import OrderedDict
from collections.abc import Mapping, Sequence
from typing import Any, ClassVar

import httpx

from tvoice import APIConnectOptions, APIError
from tvoice import llm as llm_
from tvoice.llm import ChatChunk, ChatContext, ChoiceDelta, CompletionUsage, Tool, ToolChoice

from .._http import (
    DEFAULT_TIMEOUT,
    HttpClient,
    OwnsClient,
    SseDecoder,
    StatusError,
    bad_event,
    cut_stream,
    missing_api_key,
)
from ._errors import blocked, status_error, stream_error
from ._wire import call_of, generate_request, parse_response

__all__ = ["DEFAULT_BASE_URL", "LLM", "Client", "LLMStream"]

DEFAULT_BASE_URL = "https://generativelanguage.googleapis.com/v1beta"
_API_KEY_ENVS = ("GOOGLE_API_KEY", "GEMINI_API_KEY")
_DEFAULT_OPTIONS = APIConnectOptions()
# Thought signatures kept for the calls of recent replies (Gemini wants them back with the
# calls they came with); older ones fall out.
_MAX_SIGNATURES = 256


class Client(HttpClient):
    """POSTs to the Gemini API with ``x-goog-api-key``; maps every failure (see ``_errors``)."""

    def auth_headers(self, api_key: str) -> dict[str, str]:
        return {"x-goog-api-key": api_key}

    def status_error(self, status: int, headers: httpx.Headers, body: bytes) -> StatusError:
        return status_error(self.provider, status, headers, body, secret=self.secret)

    def stream_error(self, error: Any) -> APIError:
        """The error for an ``{"error": ...}`` chunk (the key scrubbed from it)."""
        return stream_error(self.provider, error, secret=self.secret)


class LLM(OwnsClient, llm_.LLM):
    """Gemini through the Gemini API (Google AI Studio), streamed.

    ``model``: the model's name. ``api_key``: by default ``GOOGLE_API_KEY`` (or
    ``GEMINI_API_KEY``; never logged, never in a repr or an error). ``base_url``: by default
    ``https://generativelanguage.googleapis.com/v1beta`` (a proxy, a gateway, a local server).
    ``timeout``: httpx's limits per request; ``headers``: sent with every request;
    ``http_client``: an ``httpx.AsyncClient`` to use (this LLM owns it and closes it in
    :meth:`aclose`).

    ``temperature`` (0 to 2), ``max_output_tokens``, ``top_p``, ``top_k``: sent in
    ``generationConfig`` when set. ``extra_body``: more fields sent with every request as they
    are (``safetySettings``...); ``chat(extra=...)`` adds fields to one request.

    Text is emitted as it arrives; function calls come complete; the usage comes last. The
    thought signature Gemini gives a call is kept and sent back with that call in later
    requests, as Gemini asks. Leaving the stream closes the HTTP response at once.
    """

    _plugin: ClassVar[str] = "google"
    _kind: ClassVar[str] = "LLM"
    _client: Client

    def __init__(
        self,
        *,
        model: str = "gemini-2.5-flash",
        api_key: str | None = None,
        base_url: str | None = None,
        timeout: float | httpx.Timeout = DEFAULT_TIMEOUT,
        headers: Mapping[str, str] | None = None,
        http_client: httpx.AsyncClient | None = None,
        temperature: float | None = None,
        max_output_tokens: int | None = None,
        top_p: float | None = None,
        top_k: int | None = None,
        extra_body: Mapping[str, Any] | None = None,
    ) -> None:
        if temperature is not None and not 0 <= temperature <= 2:
            raise ValueError(f"temperature must be in [0, 2], got {temperature}")
        if max_output_tokens is not None and max_output_tokens < 1:
            raise ValueError(f"max_output_tokens must be >= 1, got {max_output_tokens}")
        super().__init__()
        url = (base_url or DEFAULT_BASE_URL).rstrip("/")
        if api_key is None:
            api_key = next((os.environ[e] for e in _API_KEY_ENVS if os.environ.get(e)), None)
        if not api_key and url == DEFAULT_BASE_URL:
            # The hosted API needs a key; a local server or a gateway at another URL may not.
            raise missing_api_key("google", _API_KEY_ENVS[0])
        self._model = model.removeprefix("models/")
        self._client = Client(
            provider="google",
            base_url=url,
            api_key=api_key or None,
            timeout=timeout,
            headers=headers,
            http_client=http_client,
        )
        self._generation_config: dict[str, Any] = {
            "temperature": temperature,
            "maxOutputTokens": max_output_tokens,
            "topP": top_p,
            "topK": top_k,
        }
        self._extra_body = dict(extra_body or {})
        self._signatures: OrderedDict[str, str] = OrderedDict()

    @property
    def client(self) -> Client:
        """The HTTP client this model owns."""
        return self._client

    def remember_signature(self, call_id: str, signature: str) -> None:
        """Keep the thought signature Gemini gave the call ``call_id``, to send it back."""
        self._signatures[call_id] = signature
        while len(self._signatures) > _MAX_SIGNATURES:
            self._signatures.popitem(last=False)

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
        body = generate_request(
            chat_ctx=chat_ctx,
            tools=tools,
            tool_choice=tool_choice,
            generation_config=self._generation_config,
            signatures=self._signatures,
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
    """One streamed generation."""

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
        self._owner = llm
        self._client = llm.client
        self._body = body
        self._finished = False
        self._calls = 0
        self._usage_seen: CompletionUsage | None = None

    def _reset(self) -> None:
        self._finished, self._calls, self._usage_seen = False, 0, None

    @property
    def request_body(self) -> dict[str, Any]:
        """The JSON sent to ``:streamGenerateContent``."""
        return self._body

    async def _run(self) -> None:
        # Each attempt reads a new reply (a retry comes only when nothing was emitted).
        self._reset()
        options = self.conn_options
        async with self._client.post(
            f"/models/{self._owner.model}:streamGenerateContent?alt=sse",
            json=self._body,
            accept="text/event-stream",
            max_wait=min(options.max_retry_interval, options.timeout / 2),
        ) as response:
            sse = SseDecoder()
            async for line in response.aiter_lines():
                event = sse.push(line)
                if event is not None:
                    await self._on_event(event.data)
            event = sse.flush()
            if event is not None:
                await self._on_event(event.data)
        # No end marker: the reply is whole only if its candidate said why it finished.
        if not self._finished:
            raise cut_stream(self._client.provider)
        if self._usage_seen is not None:
            await self._emit_chunk(ChatChunk(id=self.request_id, usage=self._usage_seen))

    async def _on_event(self, data: str) -> None:
        try:
            update = parse_response(data)
        except ValueError as e:
            raise bad_event(self._client.provider, str(e)) from None
        if update.error is not None:
            raise self._client.stream_error(update.error)
        if update.block_reason:
            raise blocked(self._client.provider, update.block_reason)
        if update.usage is not None:
            self._usage_seen = update.usage  # cumulative: the last one counts
        if update.text:
            delta = ChoiceDelta(content=update.text)
            await self._emit_chunk(ChatChunk(id=self.request_id, delta=delta))
        calls = []
        for (name, args, signature), given_id in zip(update.calls, update.call_ids, strict=True):
            call_id = given_id or f"{self.request_id}_{self._calls}"
            self._calls += 1
            if signature:
                self._owner.remember_signature(call_id, signature)
            calls.append(call_of(name, args, call_id))
        if calls:
            delta = ChoiceDelta(tool_calls=calls)
            await self._emit_chunk(ChatChunk(id=self.request_id, delta=delta))
        if update.finish_reason is not None:
            self._finished = True
