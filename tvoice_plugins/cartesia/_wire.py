"""Cartesia's TTS WebSocket protocol (``/tts/websocket``), without I/O.

Facts, from docs.cartesia.ai (api-reference/tts/websocket, use-the-api/api-conventions,
build-with-cartesia/capability-guides/stream-inputs-using-continuations, and
get-started/authenticate-your-client-applications):

- One WebSocket at ``wss://api.cartesia.ai/tts/websocket`` carries many generations, each
  a *context* named by the client's ``context_id``. Server-side code authenticates with the
  ``X-API-Key`` header (browsers use ``?api_key=`` or an access token) and names the API
  version with ``Cartesia-Version: YYYY-MM-DD`` (or ``?cartesia_version=``).
- A generation request: ``{"model_id", "transcript", "voice": {"mode": "id", "id"},
  "language", "context_id", "output_format": {"container": "raw", "encoding": "pcm_s16le",
  "sample_rate"}, "add_timestamps", "continue"}``. Text streamed in pieces goes as requests
  on the same context with ``continue: true``; the context ends with a request whose
  ``continue`` is false (an empty ``transcript`` is allowed for that).
  ``{"context_id", "cancel": true}`` stops a context: nothing more is generated for it.
- The server answers with JSON: ``{"type": "chunk", "data": <base64 audio>, "done": false,
  "status_code": 206, "step_time", "context_id"}``, ``{"type": "timestamps",
  "word_timestamps": {"words": [...], "start": [...], "end": [...]}, "context_id"}``,
  ``{"type": "done", "done": true, "context_id"}``, ``{"type": "flush_done", ...}``, and
  ``{"type": "error", "done": true, "status_code", "error" | "title" + "message",
  "error_code", "context_id"}``.
"""

from __future__ import annotations

import base64
import binascii
import json
from collections.abc import Mapping
from typing import Any

import attrs

__all__ = [
    "Chunk",
    "Done",
    "Error",
    "MalformedMessage",
    "Other",
    "Timestamps",
    "cancel_request",
    "generation_request",
    "parse_message",
    "websocket_url",
]


def websocket_url(base_url: str) -> str:
    """``base_url`` (``wss://``, ``ws://`` or ``https://``) + ``/tts/websocket``."""
    url = base_url.rstrip("/")
    for http, ws in (("https://", "wss://"), ("http://", "ws://")):
        if url.startswith(http):
            url = ws + url[len(http) :]
    if not url.startswith(("ws://", "wss://")):
        raise ValueError(f"base_url must be a ws(s):// or http(s):// URL, got {base_url!r}")
    return url if url.endswith("/tts/websocket") else url + "/tts/websocket"


def generation_request(
    *,
    context_id: str,
    transcript: str,
    more: bool,
    model: str,
    voice: str,
    language: str,
    sample_rate: int,
    extra: Mapping[str, Any],
) -> str:
    """One piece of a context's text; ``more``: whether more text follows (``continue``)."""
    return json.dumps(
        {
            "model_id": model,
            "transcript": transcript,
            "voice": {"mode": "id", "id": voice},
            "language": language,
            "context_id": context_id,
            "output_format": {
                "container": "raw",
                "encoding": "pcm_s16le",
                "sample_rate": sample_rate,
            },
            "add_timestamps": True,
            "continue": more,
            **extra,
        }
    )


def cancel_request(context_id: str) -> str:
    """Stop generating for ``context_id``."""
    return json.dumps({"context_id": context_id, "cancel": True})


class MalformedMessage(ValueError):
    """A server message that is not what the protocol documents."""


@attrs.frozen
class Chunk:
    """Audio of a context: 16-bit little-endian PCM."""

    context_id: str
    audio: bytes


@attrs.frozen
class Timestamps:
    """Word timings of a context: seconds from the start of its audio."""

    context_id: str
    words: tuple[tuple[str, float, float], ...]


@attrs.frozen
class Done:
    """The context's audio is complete."""

    context_id: str


@attrs.frozen
class Error:
    """The server's error for a context (or for the connection, ``context_id`` "")."""

    context_id: str
    status_code: int
    message: str
    body: Mapping[str, Any]


@attrs.frozen
class Other:
    """A message this client does not act on (``flush_done``, ``phoneme_timestamps``...)."""

    context_id: str
    type: str


Message = Chunk | Timestamps | Done | Error | Other


def parse_message(frame: str | bytes) -> Message:
    """Read one server frame. Raises :class:`MalformedMessage`."""
    if isinstance(frame, bytes):
        raise MalformedMessage("a binary frame from the server")
    try:
        body = json.loads(frame)
    except ValueError:
        raise MalformedMessage(f"not JSON: {frame[:80]!r}") from None
    if not isinstance(body, dict):
        raise MalformedMessage(f"not a JSON object: {frame[:80]!r}")
    kind = body.get("type")
    context_id = str(body.get("context_id") or "")
    try:
        if kind == "chunk":
            return Chunk(context_id, base64.b64decode(body["data"], validate=True))
        if kind == "timestamps":
            stamps = body["word_timestamps"]
            words = tuple(
                (str(w), float(s), float(e))
                for w, s, e in zip(stamps["words"], stamps["start"], stamps["end"], strict=True)
            )
            return Timestamps(context_id, words)
        if kind == "done":
            return Done(context_id)
        if kind == "error" or "error" in body:
            message = body.get("message") or body.get("error") or body.get("title") or ""
            return Error(context_id, int(body.get("status_code") or 500), str(message), body)
    except (KeyError, TypeError, ValueError, binascii.Error) as e:
        raise MalformedMessage(f"a {kind} message without a valid {e}") from None
    if not isinstance(kind, str):
        raise MalformedMessage(f"a message without a type: {frame[:80]!r}")
    return Other(context_id, kind)
