"""How Cartesia's failures become tvoice errors: the one place they are translated.

::

    handshake refused 401/403 (bad key)          -> APIStatusError      (not retryable)
    handshake refused 408, 429, 5xx              -> APIStatusError      (retryable)
    handshake refused, other 4xx                 -> APIStatusError      (not retryable)
    refused, reset, no handshake in time         -> APIConnectionError / APITimeoutError
    the connection breaks or closes mid-reply    -> APIConnectionError  (retryable)
    an ``error`` message                         -> APIStatusError      (by its status_code)
    a frame that is not the documented JSON      -> APIConnectionError  (retryable)

Text taken from the server has the API key replaced by ``***`` before it is shown.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

from tvoice import APIConnectionError, APIStatusError

from .._websocket import Closed, Rejected

__all__ = ["closed_error", "malformed", "message_error", "missing_api_key", "rejected_error"]

_PROVIDER = "cartesia"


def _scrub(value: Any, api_key: str) -> Any:
    if isinstance(value, str):
        return value.replace(api_key, "***") if api_key else value
    if isinstance(value, dict):
        return {k: _scrub(v, api_key) for k, v in value.items()}
    if isinstance(value, list):
        return [_scrub(v, api_key) for v in value]
    return value


def missing_api_key() -> ValueError:
    """No key was given and ``CARTESIA_API_KEY`` is not set."""
    return ValueError("cartesia: no API key: pass api_key= or set CARTESIA_API_KEY")


def rejected_error(error: Rejected, *, api_key: str) -> APIStatusError:
    """The server answered the handshake with an error status."""
    raw = error.body[:4096].decode("utf-8", "replace")
    try:
        body: Any = _scrub(json.loads(raw), api_key)
    except ValueError:
        body = None
    message = ""
    if isinstance(body, dict):
        message = str(body.get("message") or body.get("error") or body.get("title") or "")
    message = message or _scrub(raw.strip(), api_key) or f"status {error.status}"
    return APIStatusError(
        f"{_PROVIDER}: {message}",
        status_code=error.status,
        request_id=error.headers.get("x-request-id"),
        body=body,
    )


def closed_error(error: Closed, *, api_key: str) -> APIConnectionError:
    """The connection ended while a reply was being spoken."""
    reason = _scrub(error.reason, api_key)
    return APIConnectionError(f"{_PROVIDER}: the connection ended ({error.code} {reason})")


def message_error(
    status_code: int, message: str, body: Mapping[str, Any], *, api_key: str
) -> APIStatusError:
    """An ``error`` message for a context."""
    return APIStatusError(
        f"{_PROVIDER}: {_scrub(message, api_key) or 'error'}",
        status_code=status_code,
        body=_scrub(dict(body), api_key),
    )


def malformed(reason: str) -> APIConnectionError:
    """A frame that is not what the protocol documents."""
    return APIConnectionError(f"{_PROVIDER}: malformed message: {reason}")
