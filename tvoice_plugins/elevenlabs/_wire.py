"""ElevenLabs' multi-context TTS WebSocket (``multi-stream-input``), without I/O.

Facts, from elevenlabs.io/docs (api-reference/text-to-speech/v-1-text-to-speech-voice-id-
multi-stream-input, its AsyncAPI specification, and the multi-context WebSocket guide):

- ``wss://api.elevenlabs.io/v1/text-to-speech/{voice_id}/multi-stream-input`` with query
  parameters ``model_id``, ``output_format`` (``pcm_16000``, ``pcm_22050``, ``pcm_24000``,
  ``pcm_44100``...: raw 16-bit little-endian mono), ``language_code``, ``sync_alignment``,
  ``inactivity_timeout``, ``auto_mode``...; the key in the ``xi-api-key`` header.
- Client messages (JSON text): a context starts with ``{"text": " ", "context_id",
  "voice_settings"?, "generation_config"?}``; text is ``{"text", "context_id"}``;
  ``{"context_id", "flush": true}`` generates what is buffered; ``{"context_id",
  "close_context": true}`` closes a context (one being flushed finishes flushing);
  ``{"text": "", "context_id"}`` keeps it alive; ``{"close_socket": true}`` ends them all.
- Server messages: ``{"audio": <base64>, "alignment": {"chars", "charStartTimesMs",
  "charDurationsMs"} | null, "normalizedAlignment": ..., "contextId"}`` (times relative to
  the chunk; ``alignment`` is of the text sent, ``normalizedAlignment`` of the text as the
  model read it) and ``{"isFinal": true, "contextId"}``, the last message of a context.
"""

from __future__ import annotations

import base64
import binascii
import json
from collections.abc import Mapping
from typing import Any
from urllib.parse import quote, urlencode

import attrs

from tvoice.audio import TimedText

__all__ = [
    "PCM_RATES",
    "Audio",
    "Error",
    "Final",
    "MalformedMessage",
    "Other",
    "alignment_words",
    "close_context",
    "flush",
    "init_context",
    "parse_message",
    "send_text",
    "stream_url",
]

PCM_RATES = (8000, 16000, 22050, 24000, 44100)
"""Sample rates of the raw PCM ``output_format`` values."""


def stream_url(base_url: str, voice: str, query: Mapping[str, Any]) -> str:
    """The ``multi-stream-input`` URL of ``voice`` under ``base_url`` (``wss://``,
    ``ws://`` or ``https://``), with ``query`` (booleans as ``true``/``false``, None left out)."""
    url = base_url.rstrip("/")
    for http, ws in (("https://", "wss://"), ("http://", "ws://")):
        if url.startswith(http):
            url = ws + url[len(http) :]
    if not url.startswith(("ws://", "wss://")):
        raise ValueError(f"base_url must be a ws(s):// or http(s):// URL, got {base_url!r}")
    params = {
        k: ("true" if v else "false") if isinstance(v, bool) else str(v)
        for k, v in query.items()
        if v is not None
    }
    path = f"/v1/text-to-speech/{quote(voice, safe='')}/multi-stream-input"
    return f"{url}{path}?{urlencode(params)}"


def init_context(context_id: str, settings: Mapping[str, Any]) -> str:
    """Open ``context_id`` (``settings``: ``voice_settings``, ``generation_config``...)."""
    return json.dumps({"text": " ", "context_id": context_id, **settings})


def send_text(context_id: str, text: str) -> str:
    """Add ``text`` to the context's buffer."""
    return json.dumps({"text": text, "context_id": context_id})


def flush(context_id: str) -> str:
    """Generate all the context's buffered text now."""
    return json.dumps({"context_id": context_id, "flush": True})


def close_context(context_id: str) -> str:
    """Close the context (after its flush, if one was asked)."""
    return json.dumps({"context_id": context_id, "close_context": True})


class MalformedMessage(ValueError):
    """A server message that is not what the protocol documents."""


@attrs.frozen
class Audio:
    """A chunk of a context's audio, the characters it speaks (empty if not told), and its
    words with their times from the chunk's start (runs of characters between spaces)."""

    context_id: str
    pcm: bytes
    text: str
    words: tuple[TimedText, ...] = ()


def alignment_words(alignment: Mapping[str, Any]) -> tuple[TimedText, ...]:
    """The words of an ``alignment`` (``chars``, ``charStartTimesMs``, ``charDurationsMs``):
    each run of characters between spaces, from its first character's start to its last
    one's end, in seconds. A chunk may end inside a word: its runs are pieces of words."""
    chars = alignment.get("chars") or []
    starts = alignment.get("charStartTimesMs") or []
    durations = alignment.get("charDurationsMs") or []
    if not (len(chars) == len(starts) == len(durations)):
        raise ValueError("chars, charStartTimesMs and charDurationsMs differ in length")
    words: list[TimedText] = []
    run: list[tuple[str, float, float]] = []
    for char, start, duration in [*zip(chars, starts, durations, strict=True), (" ", 0, 0)]:
        if not str(char).isspace():
            begin = float(start) / 1000
            run.append((str(char), begin, begin + float(duration) / 1000))
        elif run:
            words.append(TimedText("".join(c for c, _, _ in run), run[0][1], run[-1][2]))
            run = []
    return tuple(words)


@attrs.frozen
class Final:
    """The context's last message."""

    context_id: str


@attrs.frozen
class Error:
    """An error the server reports in the stream."""

    context_id: str
    message: str
    body: Mapping[str, Any]


@attrs.frozen
class Other:
    """Any other message."""

    context_id: str


Message = Audio | Final | Error | Other


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
    context_id = str(body.get("contextId") or body.get("context_id") or "")
    try:
        if body.get("audio"):
            alignment = body.get("alignment") or {}
            chars = alignment.get("chars") or []
            return Audio(
                context_id,
                base64.b64decode(body["audio"], validate=True),
                "".join(str(c) for c in chars),
                alignment_words(alignment),
            )
    except (TypeError, ValueError, binascii.Error, AttributeError) as e:
        raise MalformedMessage(f"an audio message with bad content: {e}") from None
    if body.get("isFinal"):
        return Final(context_id)
    if body.get("error") or body.get("message"):
        message = body.get("message") or body.get("error")
        return Error(context_id, str(message), body)
    return Other(context_id)
