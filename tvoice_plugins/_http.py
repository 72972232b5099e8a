"""What the plugins on HTTP APIs share: one httpx client per model, a key kept secret, server-sent
events, and the translation of HTTP failures into tvoice's error tree.

::

    httpx.TimeoutException                   -> APITimeoutError         (retryable)
    httpx.RequestError (refused, reset...)   -> APIConnectionError      (retryable)
    a stream cut before its documented end   -> APIConnectionError      (retryable)
    an event that is not the documented JSON -> APIConnectionError      (retryable)
    an error status                          -> StatusError             (the provider's rules)

Each provider's ``_errors`` module says which statuses are worth retrying and where its error
bodies keep their message; :class:`HttpClient` does the rest, the same way for all of them. The
API key is never in a message or a body: a provider that echoes it back has every occurrence
replaced by ``***`` before the error is made.
"""

from __future__ import annotations

import email.utils
import functools
import math
import os
import ssl
import time
from collections.abc import AsyncIterator, Iterator, Mapping
from contextlib import asynccontextmanager, contextmanager
from typing import Any, ClassVar

import attrs
import httpx
import trio

from tvoice import APIConnectionError, APIStatusError, APITimeoutError

__all__ = [
    "DEFAULT_TIMEOUT",
    "MAX_ERROR_BODY",
    "HttpClient",
    "OwnsClient",
    "Secret",
    "ServerSentEvent",
    "SseDecoder",
    "StatusError",
    "bad_event",
    "cut_stream",
    "missing_api_key",
    "read_bounded",
    "resolve_api_key",
    "retry_after",
    "transport_errors",
]

DEFAULT_TIMEOUT = httpx.Timeout(60.0, connect=10.0)
"""httpx's limits for one request: 10 s to connect, 60 s for each read or write. The model
streams bound the wait for each piece of output more tightly (``conn_options.timeout``)."""

MAX_ERROR_BODY = 8192
"""The most of an error response's body that is read."""


class StatusError(APIStatusError):
    """An error status from the provider; ``retry_after``: the seconds it asked to wait before
    the next request (``retry-after``), None when it did not say."""

    def __init__(
        self,
        message: str,
        *,
        status_code: int,
        request_id: str | None,
        body: object,
        retryable: bool,
        retry_after: float | None,
    ) -> None:
        super().__init__(
            message,
            status_code=status_code,
            request_id=request_id,
            body=body,
            retryable=retryable,
        )
        self.retry_after = retry_after


class Secret:
    """Replaces the API key in text taken from the provider."""

    def __init__(self, key: str | None) -> None:
        self._key = key or None

    def __repr__(self) -> str:
        return "<Secret>"

    def scrub(self, text: str) -> str:
        """``text`` with every occurrence of the key replaced by ``***``."""
        return text.replace(self._key, "***") if self._key else text

    def scrub_json(self, value: Any) -> Any:
        """Parsed JSON with the key scrubbed from every string in it."""
        if isinstance(value, str):
            return self.scrub(value)
        if isinstance(value, dict):
            return {k: self.scrub_json(v) for k, v in value.items()}
        if isinstance(value, list):
            return [self.scrub_json(v) for v in value]
        return value


def missing_api_key(provider: str, env_var: str) -> ValueError:
    """No key was given and ``env_var`` is not set."""
    return ValueError(f"{provider}: no API key: pass api_key= or set {env_var}")


def resolve_api_key(
    api_key: str | None, env_var: str | None, *, provider: str, required: bool
) -> str | None:
    """``api_key``, else the environment variable ``env_var``; raises ValueError if neither
    is set and the provider needs a key."""
    key = api_key if api_key is not None else (os.environ.get(env_var) if env_var else None)
    if not key and required:
        raise missing_api_key(provider, env_var or "an API key")
    return key or None


@contextmanager
def transport_errors(provider: str) -> Iterator[None]:
    """Translate httpx's network failures (around a request and its body) into the tree."""
    try:
        yield
    except httpx.TimeoutException as e:
        raise APITimeoutError(f"{provider}: timed out ({type(e).__name__})") from e
    except httpx.RequestError as e:
        # Refused, reset, cut mid-body, undecodable: httpx's messages name the failure, never
        # the request's headers.
        raise APIConnectionError(f"{provider}: {type(e).__name__}: {e}") from e


def retry_after(headers: httpx.Headers, *, now: float | None = None) -> float | None:
    """Seconds the provider asks to wait: ``retry-after-ms``, else ``retry-after`` (seconds or
    an HTTP date); None when absent or unreadable."""
    raw_ms = headers.get("retry-after-ms")
    if raw_ms is not None:
        try:
            value = float(raw_ms) / 1000
        except ValueError:
            value = math.nan
        if math.isfinite(value) and value >= 0:
            return value
    raw = headers.get("retry-after")
    if raw is None:
        return None
    try:
        seconds = float(raw)
    except ValueError:
        try:
            when = email.utils.parsedate_to_datetime(raw)
        except (TypeError, ValueError):
            return None
        # An HTTP date is wall-clock time by nature: the only place the plugins read it.
        seconds = when.timestamp() - (time.time() if now is None else now)
    return max(seconds, 0.0) if math.isfinite(seconds) else None


def cut_stream(provider: str) -> APIConnectionError:
    """The response ended before the stream said it was complete."""
    return APIConnectionError(f"{provider}: the stream ended before it was complete")


def bad_event(provider: str, reason: str) -> APIConnectionError:
    """A streamed event that is not what the API documents."""
    return APIConnectionError(f"{provider}: malformed stream event: {reason}")


@attrs.frozen
class ServerSentEvent:
    """One server-sent event: its ``event`` name ("message" when unnamed) and ``data``."""

    event: str
    data: str


class SseDecoder:
    """Server-sent events from lines of text (``text/event-stream``), as the HTML standard
    parses them: ``field: value`` lines, ``data`` lines joined by newlines, a blank line ends
    an event, ``:`` lines are comments (keep-alives)."""

    def __init__(self) -> None:
        self._event = ""
        self._data: list[str] = []

    def push(self, line: str) -> ServerSentEvent | None:
        """Feed one line (without its line break); returns the event it completes, if any."""
        if not line:
            return self.flush()
        if line.startswith(":"):
            return None
        name, _, value = line.partition(":")
        value = value.removeprefix(" ")
        if name == "data":
            self._data.append(value)
        elif name == "event":
            self._event = value
        return None

    def flush(self) -> ServerSentEvent | None:
        """The event in progress (at a blank line, or at the end of the body)."""
        if not self._data:
            self._event = ""
            return None
        event = ServerSentEvent(self._event or "message", "\n".join(self._data))
        self._event, self._data = "", []
        return event


async def read_bounded(response: httpx.Response, limit: int = MAX_ERROR_BODY) -> bytes:
    """At most ``limit`` bytes of the body (an error page may be large)."""
    body = bytearray()
    async for piece in response.aiter_bytes():
        body += piece
        if len(body) >= limit:
            break
    return bytes(body[:limit])


@functools.cache
def _tls_context() -> ssl.SSLContext:
    """The TLS settings every HTTPS client of the process shares. httpx makes a new context for
    each client by default, loading the certificate store each time: 35-60 ms on a small
    machine, which the first request of each model of each call paid, on the way to the
    reply's first audio."""
    return httpx.create_ssl_context()


class HttpClient:
    """POSTs to ``base_url`` with the provider's auth headers; maps every failure.

    Subclasses say how the key is sent (:meth:`auth_headers`) and how an error status reads
    (:meth:`status_error`). ``retry-after`` is honoured across requests: after an error status
    that asked for a wait, the next request of this client waits until then (rate limits are
    per key, not per call).
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
        self._secret = Secret(api_key)
        self._timeout = timeout if isinstance(timeout, httpx.Timeout) else httpx.Timeout(timeout)
        self._headers = dict(headers or {})
        self._http = http_client
        self._not_before = -float("inf")
        # Plain HTTP (a local server) needs no certificates; HTTPS loads them now, once per
        # process, so that no call pays for it (see _tls_context).
        self._verify: ssl.SSLContext | bool = (
            _tls_context() if self._base_url.startswith("https:") else False
        )

    def __repr__(self) -> str:
        return f"<{type(self).__module__}.{type(self).__name__} {self._provider} {self._base_url}>"

    @property
    def provider(self) -> str:
        """Who is asked, for messages: "openai", "anthropic", ..."""
        return self._provider

    @property
    def base_url(self) -> str:
        """The API's root URL."""
        return self._base_url

    @property
    def has_api_key(self) -> bool:
        """Whether requests carry a key (local servers usually need none)."""
        return self._api_key is not None

    @property
    def secret(self) -> Secret:
        """Scrubs this client's key from the provider's text."""
        return self._secret

    @property
    def http_client(self) -> httpx.AsyncClient:
        """The httpx client (made now if none was given); closed by :meth:`aclose`."""
        if self._http is None:
            self._http = httpx.AsyncClient(timeout=self._timeout, verify=self._verify)
        return self._http

    async def aclose(self) -> None:
        """Close the httpx client and its connections. Safe to call more than once."""
        if self._http is not None:
            await self._http.aclose()

    def auth_headers(self, api_key: str) -> dict[str, str]:
        """The headers that carry the key; ``Authorization: Bearer`` unless overridden."""
        return {"Authorization": f"Bearer {api_key}"}

    def status_error(self, status: int, headers: httpx.Headers, body: bytes) -> StatusError:
        """The error for a response with an error ``status``; ``body`` is its (bounded)
        content. Subclasses read their provider's error body."""
        message = self._secret.scrub(body[:500].decode("utf-8", "replace").strip())
        retryable = status >= 500 or status in (408, 409, 429)
        return StatusError(
            f"{self._provider}: {message or httpx.codes.get_reason_phrase(status) or 'error'}",
            status_code=status,
            request_id=headers.get("x-request-id"),
            body=None,
            retryable=retryable,
            retry_after=retry_after(headers) if retryable else None,
        )

    def _request_headers(self, accept: str | None) -> dict[str, str]:
        headers = dict(self._headers)
        if self._api_key is not None:
            headers.update(self.auth_headers(self._api_key))
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
        error status raises :class:`StatusError`. ``max_wait``: the longest wait for
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
                    body = await read_bounded(response)
                    error = self.status_error(response.status_code, response.headers, body)
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


class OwnsClient:
    """What a model on an :class:`HttpClient` shares: its model name, the client it owns and
    closes, and how it shows itself (the URL, never the key). ``_plugin`` and ``_kind`` name
    it: ``openai.LLM``, ``anthropic.LLM``..."""

    _plugin: ClassVar[str]
    _kind: ClassVar[str]
    _model: str
    _client: HttpClient

    def __repr__(self) -> str:
        return (
            f"{self._plugin}.{self._kind}(model={self._model!r}, "
            f"base_url={self._client.base_url!r})"
        )

    @property
    def label(self) -> str:
        return f"{self._plugin}.{self._kind}({self._client.provider})"

    @property
    def model(self) -> str:
        """The provider's model name."""
        return self._model

    async def aclose(self) -> None:
        """Close the HTTP client and its connections."""
        await self._client.aclose()
