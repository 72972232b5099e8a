"""How Deepgram's failures become tvoice errors: the one place they are translated.

::

    handshake refused 401/403 (bad key)          -> APIStatusError      (not retryable)
    handshake refused 408, 429, 5xx              -> APIStatusError      (retryable)
    handshake refused, other 4xx (bad option)    -> APIStatusError      (not retryable)
    refused, reset, TLS failure, no handshake    -> APIConnectionError  (retryable)
    connecting past the timeout                  -> APITimeoutError     (retryable)
    close 1008 / 1002 DATA-xxxx (bad audio)      -> APIError            (not retryable)
    close 1011 NET-xxxx, or any other cut        -> APIConnectionError  (retryable)
    an ``Error`` message                         -> APIError            (retryable)
    a frame that is not the documented JSON      -> APIConnectionError  (retryable)

The API key is never in a message or a body: any text taken from the server has it replaced
by ``***`` first.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

import trio_websocket

from tvoice import APIConnectionError, APIError, APIStatusError

__all__ = [
    "close_code_error",
    "closed_error",
    "handshake_error",
    "malformed",
    "message_error",
    "missing_api_key",
    "rejected_error",
]

_PROVIDER = "deepgram"


def _scrub(text: str, api_key: str) -> str:
    return text.replace(api_key, "***") if api_key else text


def missing_api_key() -> ValueError:
    """No key was given and ``DEEPGRAM_API_KEY`` is not set."""
    return ValueError("deepgram: no API key: pass api_key= or set DEEPGRAM_API_KEY")


def rejected_error(error: trio_websocket.ConnectionRejected, *, api_key: str) -> APIStatusError:
    """The server answered trio-websocket's handshake with an error status."""
    headers = {k.decode("latin-1").lower(): v.decode("latin-1") for k, v in error.headers}
    return handshake_error(error.status_code, headers, error.body or b"", api_key=api_key)


def handshake_error(
    status: int, headers: Mapping[str, str], raw_body: bytes, *, api_key: str
) -> APIStatusError:
    """The server answered the handshake with ``status`` (``headers`` with lower-case names)."""
    body: Any = None
    message = headers.get("dg-error", "")
    raw = raw_body[:4096].decode("utf-8", "replace")
    try:
        body = json.loads(raw)
    except ValueError:
        body = None
    if isinstance(body, dict):
        body = {k: _scrub(v, api_key) if isinstance(v, str) else v for k, v in body.items()}
        message = str(body.get("err_msg") or body.get("message") or message)
    message = _scrub(message or raw.strip() or f"status {status}", api_key)
    request_id = headers.get("dg-request-id") or (
        str(body["request_id"]) if isinstance(body, dict) and "request_id" in body else None
    )
    return APIStatusError(
        f"{_PROVIDER}: {message}", status_code=status, request_id=request_id, body=body
    )


def closed_error(reason: trio_websocket.CloseReason | None, *, api_key: str) -> APIError:
    """The server closed the stream before it was asked to (or with an error code)."""
    if reason is None:
        return APIConnectionError(f"{_PROVIDER}: the connection broke")
    return close_code_error(reason.code, reason.reason or "", api_key=api_key)


def close_code_error(code: int, reason: str, *, api_key: str) -> APIError:
    """The connection ended with close ``code`` (1006: it just broke) and ``reason``."""
    text = _scrub(reason, api_key)
    what = f"{_PROVIDER}: the stream closed ({code}{' ' + text if text else ''})"
    if code in (1002, 1008) or text.startswith("DATA-"):
        # The audio or the request itself was refused: sending it again would be too.
        return APIError(what, body={"code": code, "reason": text}, retryable=False)
    return APIConnectionError(what)


def message_error(body: Any, *, api_key: str) -> APIError:
    """An ``Error`` message sent in the stream."""
    clean = (
        {k: _scrub(v, api_key) if isinstance(v, str) else v for k, v in body.items()}
        if isinstance(body, dict)
        else {}
    )
    message = clean.get("description") or clean.get("message") or "error in the stream"
    return APIError(f"{_PROVIDER}: {message}", body=clean, retryable=True)


def malformed(reason: str) -> APIConnectionError:
    """A frame that is not what the protocol documents."""
    return APIConnectionError(f"{_PROVIDER}: malformed message: {reason}")
