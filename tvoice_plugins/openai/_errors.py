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
in a message or a body (see ``tvoice_plugins._http``, which translates the transport failures
and reads ``retry-after`` for every HTTP plugin).
"""

from __future__ import annotations

import json
from typing import Any

import httpx

from tvoice import APIError

from .._http import MAX_ERROR_BODY, Secret, StatusError, retry_after

__all__ = ["RETRYABLE_STATUS", "status_error", "stream_error"]

RETRYABLE_STATUS = frozenset({408, 409, 429})
"""4xx statuses worth retrying (a timeout, a conflict, a rate limit); every 5xx is too."""


def status_error(
    provider: str, status: int, headers: httpx.Headers, body: bytes, *, secret: Secret
) -> StatusError:
    """The error for a response with an error ``status``; ``body`` is its (bounded) content."""
    error_obj: Any = None
    message = ""
    try:
        parsed = json.loads(body[:MAX_ERROR_BODY])
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


def stream_error(provider: str, error: Any, *, secret: Secret) -> APIError:
    """An ``{"error": {...}}`` event sent in place of the next chunk."""
    body = secret.scrub_json(error)
    message = body.get("message") if isinstance(body, dict) else body
    return APIError(f"{provider}: {message or 'error in the stream'}", body=body, retryable=True)
