"""How the Gemini API's failures become tvoice errors: the one place they are translated
(transport failures, a cut stream and a malformed chunk are mapped by ``tvoice_plugins._http``,
as for every HTTP plugin).

::

    status 401, 403 and any other 4xx        -> APIStatusError          (not retryable; a bad
                                                                         key is a 400
                                                                         INVALID_ARGUMENT)
    status 408, 429, 5xx                     -> APIStatusError          (retryable, retry-after
                                                                         or RetryInfo)
    ``{"error": ...}`` in the stream:
      RESOURCE_EXHAUSTED, UNAVAILABLE,
      INTERNAL, DEADLINE_EXCEEDED            -> APIError                (retryable)
      any other status                       -> APIError                (not retryable)
    a prompt blocked (promptFeedback)        -> APIError                (not retryable)

Error bodies are ``{"error": {"code", "message", "status", "details"}}``
(ai.google.dev/gemini-api/docs/troubleshooting; google.rpc.Status); a
``google.rpc.RetryInfo`` detail's ``retryDelay`` (``"12s"``) is read when no ``retry-after``
header says how long to wait.
"""

from __future__ import annotations

import json
import math
from typing import Any

import httpx

from tvoice import APIError

from .._http import MAX_ERROR_BODY, Secret, StatusError, retry_after

__all__ = ["RETRYABLE_STATUS", "RETRYABLE_STATUSES", "blocked", "status_error", "stream_error"]

RETRYABLE_STATUS = frozenset({408, 429})
"""4xx statuses worth retrying; every 5xx is too."""

RETRYABLE_STATUSES = frozenset(
    {"RESOURCE_EXHAUSTED", "UNAVAILABLE", "INTERNAL", "DEADLINE_EXCEEDED"}
)
"""Canonical error statuses that a later attempt may not meet."""


def _retry_delay(error: dict[str, Any]) -> float | None:
    for detail in error.get("details") or ():
        delay = detail.get("retryDelay") if isinstance(detail, dict) else None
        if isinstance(delay, str) and delay.endswith("s"):
            try:
                seconds = float(delay[:-1])
            except ValueError:
                continue
            if math.isfinite(seconds) and seconds >= 0:
                return seconds
    return None


def status_error(
    provider: str, status: int, headers: httpx.Headers, body: bytes, *, secret: Secret
) -> StatusError:
    """The error for a response with an error ``status``; ``body`` is its (bounded) content."""
    try:
        parsed = json.loads(body[:MAX_ERROR_BODY])
    except ValueError:
        parsed = None
    if isinstance(parsed, list) and parsed:
        parsed = parsed[0]  # the JSON-array framing of a stream, refused at its start
    error = parsed.get("error") if isinstance(parsed, dict) else None
    error_obj = secret.scrub_json(error) if isinstance(error, dict) else None
    message = str(error_obj.get("message") or "") if error_obj else ""
    if not message:
        message = secret.scrub(body[:500].decode("utf-8", "replace").strip())
    retryable = status >= 500 or status in RETRYABLE_STATUS
    wait = retry_after(headers) if retryable else None
    if retryable and wait is None and error_obj:
        wait = _retry_delay(error_obj)
    return StatusError(
        f"{provider}: {message or httpx.codes.get_reason_phrase(status) or 'error'}",
        status_code=status,
        request_id=headers.get("x-request-id"),
        body=error_obj,
        retryable=retryable,
        retry_after=wait,
    )


def stream_error(provider: str, error: Any, *, secret: Secret) -> APIError:
    """An ``{"error": {...}}`` chunk sent in place of the rest of the reply."""
    body = secret.scrub_json(error)
    status = body.get("status") if isinstance(body, dict) else None
    message = body.get("message") if isinstance(body, dict) else body
    return APIError(
        f"{provider}: {status or 'error'}: {message or 'error in the stream'}",
        body=body,
        retryable=status in RETRYABLE_STATUSES,
    )


def blocked(provider: str, reason: str) -> APIError:
    """The prompt was refused (``promptFeedback.blockReason``): asking again will not help."""
    return APIError(f"{provider}: the prompt was blocked ({reason})", retryable=False)
