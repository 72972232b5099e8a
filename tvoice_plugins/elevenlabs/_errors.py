"""How ElevenLabs' failures become tvoice errors: the one place they are translated.

::

    handshake refused 401/403                     -> APIStatusError      (not retryable)
    handshake refused 408, 429, 5xx               -> APIStatusError      (retryable)
    close 1008 (policy: a bad key, no quota...)   -> APIError            (not retryable)
    refused, reset, any other close mid-reply     -> APIConnectionError  (retryable)
    no handshake in time                          -> APITimeoutError     (retryable)
    an error message in the stream                -> APIError            (retryable)
    a frame that is not the documented JSON       -> APIConnectionError  (retryable)

The reference does not say how a bad key is refused on this WebSocket; both a refused
handshake and a 1008 close (the WebSocket "policy violation" code) are understood. Text taken
from the server has the API key replaced by ``***`` before it is shown.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

from tvoice import APIConnectionError, APIError, APIStatusError

from .._websocket import Closed, Rejected

__all__ = ["closed_error", "malformed", "message_error", "missing_api_key", "rejected_error"]

_PROVIDER = "elevenlabs"


def _scrub(value: Any, api_key: str) -> Any:
    if isinstance(value, str):
        return value.replace(api_key, "***") if api_key else value
    if isinstance(value, dict):
        return {k: _scrub(v, api_key) for k, v in value.items()}
    if isinstance(value, list):
        return [_scrub(v, api_key) for v in value]
    return value


def missing_api_key() -> ValueError:
    """No key was given and ``ELEVEN_API_KEY`` is not set."""
    return ValueError(
        "elevenlabs: no API key: pass api_key= or set ELEVEN_API_KEY (or ELEVENLABS_API_KEY)"
    )


def rejected_error(error: Rejected, *, api_key: str) -> APIStatusError:
    """The server answered the handshake with an error status."""
    raw = error.body[:4096].decode("utf-8", "replace")
    try:
        body: Any = _scrub(json.loads(raw), api_key)
    except ValueError:
        body = None
    detail = body.get("detail") if isinstance(body, dict) else None
    message = ""
    if isinstance(detail, dict):
        message = str(detail.get("message") or "")
    elif isinstance(body, dict):
        message = str(body.get("message") or detail or "")
    message = message or _scrub(raw.strip(), api_key) or f"status {error.status}"
    return APIStatusError(
        f"{_PROVIDER}: {message}",
        status_code=error.status,
        request_id=error.headers.get("request-id") or error.headers.get("x-request-id"),
        body=body,
    )


def closed_error(error: Closed, *, api_key: str) -> APIError:
    """The connection ended while a reply was being spoken."""
    reason = _scrub(error.reason, api_key)
    what = f"{_PROVIDER}: the connection ended ({error.code} {reason})".replace(" )", ")")
    if error.code == 1008:
        return APIError(what, body={"code": error.code, "reason": reason}, retryable=False)
    return APIConnectionError(what)


def message_error(message: str, body: Mapping[str, Any], *, api_key: str) -> APIError:
    """An error the server reported in the stream."""
    return APIError(f"{_PROVIDER}: {_scrub(message, api_key)}", body=_scrub(dict(body), api_key))


def malformed(reason: str) -> APIConnectionError:
    """A frame that is not what the protocol documents."""
    return APIConnectionError(f"{_PROVIDER}: malformed message: {reason}")
