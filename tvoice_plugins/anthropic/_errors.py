"""How the Anthropic Messages API's failures become tvoice errors: the one place they are
translated (transport failures, a cut stream and a malformed event are mapped by
``tvoice_plugins._http``, as for every HTTP plugin).

::

    status 401, 403                          -> APIStatusError          (not retryable)
    status 408, 409, 429, 5xx, 529           -> APIStatusError          (retryable, retry-after)
    any other 4xx                            -> APIStatusError          (not retryable)
    ``event: error`` mid-stream:
      overloaded_error, rate_limit_error,
      api_error, timeout_error               -> APIError                (retryable)
      any other type (invalid_request_error,
      authentication_error...)               -> APIError                (not retryable)

Error bodies are ``{"type": "error", "error": {"type", "message"}, "request_id"}``
(docs.anthropic.com/en/api/errors); 529 is ``overloaded_error``. The request's id is in the
``request-id`` header.
"""

from __future__ import annotations

import json
from typing import Any

import httpx

from tvoice import APIError

from .._http import MAX_ERROR_BODY, Secret, StatusError, retry_after

__all__ = ["RETRYABLE_ERROR_TYPES", "RETRYABLE_STATUS", "status_error", "stream_error"]

RETRYABLE_STATUS = frozenset({408, 409, 429})
"""4xx statuses worth retrying; every 5xx is too (500 api_error, 529 overloaded_error)."""

RETRYABLE_ERROR_TYPES = frozenset(
    {"overloaded_error", "rate_limit_error", "api_error", "timeout_error"}
)
"""Error types of a stream's ``error`` event that a later attempt may not meet."""


def _error_object(parsed: Any) -> dict[str, Any] | None:
    error = parsed.get("error") if isinstance(parsed, dict) else None
    return error if isinstance(error, dict) else None


def status_error(
    provider: str, status: int, headers: httpx.Headers, body: bytes, *, secret: Secret
) -> StatusError:
    """The error for a response with an error ``status``; ``body`` is its (bounded) content."""
    try:
        parsed = json.loads(body[:MAX_ERROR_BODY])
    except ValueError:
        parsed = None
    error = _error_object(parsed)
    error_obj = secret.scrub_json(error) if error is not None else None
    message = str(error_obj.get("message") or "") if error_obj else ""
    if not message:
        message = secret.scrub(body[:500].decode("utf-8", "replace").strip())
    retryable = status >= 500 or status in RETRYABLE_STATUS
    request_id = headers.get("request-id")
    if (
        request_id is None
        and isinstance(parsed, dict)
        and isinstance(parsed.get("request_id"), str)
    ):
        request_id = parsed["request_id"]
    return StatusError(
        f"{provider}: {message or httpx.codes.get_reason_phrase(status) or 'error'}",
        status_code=status,
        request_id=request_id,
        body=error_obj,
        retryable=retryable,
        retry_after=retry_after(headers) if retryable else None,
    )


def stream_error(provider: str, error: Any, *, secret: Secret) -> APIError:
    """An ``error`` event sent in place of the rest of the message."""
    body = secret.scrub_json(error)
    kind = body.get("type") if isinstance(body, dict) else None
    message = body.get("message") if isinstance(body, dict) else body
    return APIError(
        f"{provider}: {kind or 'error'}: {message or 'error in the stream'}",
        body=body,
        retryable=kind in RETRYABLE_ERROR_TYPES,
    )
