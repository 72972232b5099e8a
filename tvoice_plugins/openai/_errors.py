"""How the OpenAI HTTP API's failures become tvoice errors: the one place they are translated.

::

    httpx.TimeoutException                   -> APITimeoutError         (retryable)
    httpx.RequestError (refused, reset...)   -> APIConnectionError      (retryable)
    stream cut before ``data: [DONE]``       -> APIConnectionError      (retryable)
    a chunk that is not the documented JSON  -> APIConnectionError      (retryable)
    ``{"error": ...}`` sent mid-stream        -> APIError                (retryable)
    status 401, 403                          -> APIStatusError          (not retryable)
    status 408, 409, 429, 5xx                -> APIStatusError          (retryable, retry-after)
    any other 4xx                            -> APIStatusError          (not retryable)

Error bodies are ``{"error": {"message", "type", "param", "code"}}``; the provider's ``message``
becomes the error's message, and the parsed ``error`` object its ``body``. The API key is never
in a message or a body: a provider that echoes it back (some do, partly masked) has every
occurrence replaced by ``***`` before the error is made.
"""

from __future__ import annotations

import email.utils
import json
import math
import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import httpx

from tvoice import APIConnectionError, APIError, APIStatusError, APITimeoutError

__all__ = [
    "RETRYABLE_STATUS",
    "StatusError",
    "bad_chunk",
    "cut_stream",
    "missing_api_key",
    "retry_after",
    "status_error",
    "stream_error",
    "transport_errors",
]

RETRYABLE_STATUS = frozenset({408, 409, 429})
"""4xx statuses worth retrying (a timeout, a conflict, a rate limit); every 5xx is too."""

_MAX_ERROR_BODY = 8192


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


class _Secret:
    """Replaces the API key in text taken from the provider."""

    def __init__(self, key: str | None) -> None:
        self._key = key or None

    def scrub(self, text: str) -> str:
        return text.replace(self._key, "***") if self._key else text

    def scrub_json(self, value: Any) -> Any:
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
        # An HTTP date is wall-clock time by nature: the only place this plugin reads it.
        seconds = when.timestamp() - (time.time() if now is None else now)
    return max(seconds, 0.0) if math.isfinite(seconds) else None


def status_error(
    provider: str, status: int, headers: httpx.Headers, body: bytes, *, api_key: str | None
) -> StatusError:
    """The error for a response with an error ``status``; ``body`` is its (bounded) content."""
    secret = _Secret(api_key)
    error_obj: Any = None
    message = ""
    try:
        parsed = json.loads(body[:_MAX_ERROR_BODY])
    except ValueError:
        parsed = None
    if isinstance(parsed, dict) and isinstance(parsed.get("error"), dict):
        error_obj = secret.scrub_json(parsed["error"])
        message = str(error_obj.get("message") or "")
    elif isinstance(parsed, dict) and isinstance(parsed.get("error"), str):
        # Some compatible servers send {"error": "text"}.
        error_obj = secret.scrub(parsed["error"])
        message = error_obj
    if not message:
        message = secret.scrub(body[:500].decode("utf-8", "replace").strip())
    retryable = status >= 500 or status in RETRYABLE_STATUS
    return StatusError(
        f"{provider}: {message or httpx.codes.get_reason_phrase(status) or 'error'}",
        status_code=status,
        request_id=headers.get("x-request-id"),
        body=error_obj,
        retryable=retryable,
        retry_after=retry_after(headers) if retryable else None,
    )


def cut_stream(provider: str) -> APIConnectionError:
    """The response ended before the stream said it was complete."""
    return APIConnectionError(f"{provider}: the stream ended before it was complete")


def bad_chunk(provider: str, reason: str) -> APIConnectionError:
    """A streamed event that is not what the API documents."""
    return APIConnectionError(f"{provider}: malformed stream event: {reason}")


def stream_error(provider: str, error: Any, *, api_key: str | None) -> APIError:
    """An ``{"error": {...}}`` event sent in place of the next chunk."""
    secret = _Secret(api_key)
    body = secret.scrub_json(error)
    message = body.get("message") if isinstance(body, dict) else body
    return APIError(f"{provider}: {message or 'error in the stream'}", body=body, retryable=True)
