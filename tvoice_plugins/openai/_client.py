"""The HTTP side shared by the OpenAI models: one httpx client, the key, the provider's wishes.

Each model object owns one :class:`Client`, which owns one ``httpx.AsyncClient`` (made on first
use, or injected): its connections are reused across requests and closed with the model.
"""

from __future__ import annotations

import os
from collections.abc import AsyncIterator, Mapping
from contextlib import asynccontextmanager
from typing import Any, ClassVar

import httpx
import trio

from tvoice import APIError

from ._errors import missing_api_key, status_error, stream_error, transport_errors
from ._presets import OPENAI, Preset

__all__ = ["DEFAULT_TIMEOUT", "Client", "client_for", "resolve_api_key"]

DEFAULT_TIMEOUT = httpx.Timeout(60.0, connect=10.0)
"""httpx's limits for one request: 10 s to connect, 60 s for each read or write. The model
streams bound the wait for each piece of output more tightly (``conn_options.timeout``)."""

_MAX_ERROR_BODY = 8192


def resolve_api_key(
    api_key: str | None, env_var: str | None, *, provider: str, required: bool
) -> str | None:
    """``api_key``, else the environment variable ``env_var``; raises ValueError if neither
    is set and the provider needs a key."""
    key = api_key if api_key is not None else (os.environ.get(env_var) if env_var else None)
    if not key and required:
        raise missing_api_key(provider, env_var or "an API key")
    return key or None


class Client:
    """POSTs to ``base_url`` with the key as ``Authorization: Bearer``; maps every failure.

    ``retry-after`` is honoured across requests: after an error status that asked for a wait,
    the next request of this client waits until then (rate limits are per key, not per call).
    """

    def __init__(
        self,
        *,
        provider: str,
        base_url: str,
        api_key: str | None,
        timeout: float | httpx.Timeout,
        headers: Mapping[str, str] | None,
        http_client: httpx.AsyncClient | None,
    ) -> None:
        self._provider = provider
        self._base_url = base_url.rstrip("/")
        self._api_key = api_key
        self._timeout = timeout if isinstance(timeout, httpx.Timeout) else httpx.Timeout(timeout)
        self._headers = dict(headers or {})
        self._http = http_client
        self._not_before = -float("inf")

    def __repr__(self) -> str:
        return f"<openai.Client {self._provider} {self._base_url}>"

    @property
    def provider(self) -> str:
        """Who is asked, for messages: "openai", "groq", ..."""
        return self._provider

    @property
    def base_url(self) -> str:
        """The API's root URL, e.g. ``https://api.openai.com/v1``."""
        return self._base_url

    @property
    def has_api_key(self) -> bool:
        """Whether requests carry a key (local servers usually need none)."""
        return self._api_key is not None

    @property
    def http_client(self) -> httpx.AsyncClient:
        """The httpx client (made now if none was given); closed by :meth:`aclose`."""
        if self._http is None:
            self._http = httpx.AsyncClient(timeout=self._timeout)
        return self._http

    async def aclose(self) -> None:
        """Close the httpx client and its connections. Safe to call more than once."""
        if self._http is not None:
            await self._http.aclose()

    def stream_error(self, error: Any) -> APIError:
        """The error for an ``{"error": ...}`` event in a stream (the key scrubbed from it)."""
        return stream_error(self._provider, error, api_key=self._api_key)

    def _request_headers(self, accept: str | None) -> dict[str, str]:
        headers = dict(self._headers)
        if self._api_key is not None:
            headers["Authorization"] = f"Bearer {self._api_key}"
        if accept is not None:
            headers["Accept"] = accept
        return headers

    @asynccontextmanager
    async def post(
        self,
        path: str,
        *,
        max_wait: float,
        json: Any = None,
        data: Mapping[str, str] | None = None,
        files: Mapping[str, tuple[str, bytes, str]] | None = None,
        accept: str | None = None,
    ) -> AsyncIterator[httpx.Response]:
        """POST ``path`` and hand over the streaming response once its status is a success.

        The body is read inside the block; transport failures there are translated too. An
        error status raises ``APIStatusError``. ``max_wait``: the longest wait for
        ``retry-after`` this call accepts; a provider asking for more gets a non-retryable
        error, since retrying sooner than it allows is pointless.
        """
        delay = self._not_before - trio.current_time()
        if delay > 0:
            await trio.sleep(min(delay, max_wait))
        client = self.http_client
        request = client.build_request(
            "POST",
            self._base_url + path,
            json=json,
            data=data,
            files=files,
            headers=self._request_headers(accept),
            timeout=self._timeout,
        )
        with transport_errors(self._provider):
            response = await client.send(request, stream=True)
        try:
            with transport_errors(self._provider):
                if response.status_code >= 400:
                    body = await _read_bounded(response, _MAX_ERROR_BODY)
                    error = status_error(
                        self._provider,
                        response.status_code,
                        response.headers,
                        body,
                        api_key=self._api_key,
                    )
                    if error.retry_after is not None:
                        if error.retry_after > max_wait:
                            error.retryable = False
                        else:
                            self._not_before = trio.current_time() + error.retry_after
                    raise error
                yield response
        finally:
            # Closing a response read half-way drops its connection at once, without reading
            # the rest: a cancelled reply costs the provider nothing more.
            await response.aclose()


async def _read_bounded(response: httpx.Response, limit: int) -> bytes:
    body = bytearray()
    async for piece in response.aiter_bytes():
        body += piece
        if len(body) >= limit:
            break
    return bytes(body[:limit])


def client_for(
    preset: Preset,
    *,
    api_key: str | None,
    base_url: str | None,
    timeout: float | httpx.Timeout,
    headers: Mapping[str, str] | None,
    http_client: httpx.AsyncClient | None,
) -> Client:
    """The client of a model: the preset's URL and key variable unless given."""
    if base_url is None and preset is OPENAI:
        base_url = os.environ.get("OPENAI_BASE_URL")
    url = base_url or preset.base_url
    # A key is required by the hosted APIs, not by a local server at another URL.
    required = preset.key_required and url.rstrip("/") == preset.base_url
    key = resolve_api_key(api_key, preset.api_key_env, provider=preset.name, required=required)
    return Client(
        provider=preset.name,
        base_url=url,
        api_key=key,
        timeout=timeout,
        headers=headers,
        http_client=http_client,
    )


class OwnsClient:
    """What every OpenAI model shares: its model name, the :class:`Client` it owns and closes,
    and how it shows itself (the URL, never the key)."""

    _kind: ClassVar[str]  # "LLM", "STT", "TTS"
    _model: str
    _client: Client

    def __repr__(self) -> str:
        return f"openai.{self._kind}(model={self._model!r}, base_url={self._client.base_url!r})"

    @property
    def label(self) -> str:
        return f"openai.{self._kind}({self._client.provider})"

    @property
    def model(self) -> str:
        """The provider's model name."""
        return self._model

    @property
    def client(self) -> Client:
        """The HTTP client this model owns."""
        return self._client

    async def aclose(self) -> None:
        """Close the HTTP client and its connections."""
        await self._client.aclose()
