"""Deepgram's live transcription protocol (``/v1/listen`` over a WebSocket), without I/O.

Facts, from developers.deepgram.com (reference/streaming, docs/audio-keep-alive,
docs/close-stream, docs/finalize, and the "DATA & NET errors" troubleshooting guide):

- The client connects to ``wss://api.deepgram.com/v1/listen?<options>`` with the header
  ``Authorization: Token <key>``; options are query parameters (``model``, ``encoding``,
  ``sample_rate``, ``channels``, ``interim_results``, ``endpointing``, ``utterance_end_ms``,
  ``vad_events``, ``language``, ``punctuate``, ``smart_format``, ``keyterm`` (Nova-3) or
  ``keywords`` (earlier models), one parameter per term).
- Audio goes in binary frames; control messages are JSON text frames: ``{"type": "KeepAlive"}``
  (every 3-5 s while no audio is sent: 10 s of nothing closes the stream with NET-0001),
  ``{"type": "Finalize"}`` (flush what was heard; the results it forces carry
  ``from_finalize: true``), ``{"type": "CloseStream"}`` (finish, send ``Metadata``, close).
- The server sends JSON text frames: ``Results`` (``is_final``, ``speech_final``, ``start``,
  ``duration``, ``channel.alternatives[]`` with ``transcript``, ``confidence``, ``words[]``
  of ``word``, ``start``, ``end``, ``confidence``, ``punctuated_word``), ``SpeechStarted``
  (``timestamp``, with ``vad_events=true``), ``UtteranceEnd`` (``last_word_end``, with
  ``utterance_end_ms``), ``Metadata`` (``request_id``, ``duration``...) and ``Error``
  (``description``, ``message``, ``variant``).
- A failure mid-stream closes with a close frame: 1008 ``DATA-0000`` (audio that can't be
  decoded), 1011 ``NET-0000`` / ``NET-0001`` (nothing sent or received in time). A refused
  handshake is an HTTP status (401 for a bad key) with a ``dg-error`` header and a JSON body
  ``{"err_code", "err_msg", "request_id"}``.

Text to speech (``/v1/speak``; developers.deepgram.com docs/streaming-text-to-speech,
docs/tts-ws-flush, docs/tts-ws-clear, reference/text-to-speech/speak-streaming):

- ``wss://api.deepgram.com/v1/speak?model=aura-2-...&encoding=linear16&sample_rate=24000``,
  the same ``Authorization: Token`` header. One audio stream per connection, no context ids.
- The client sends JSON text frames: ``{"type": "Speak", "text"}``, ``{"type": "Flush"}``
  (generate what is buffered; answered by ``{"type": "Flushed", "sequence_id"}`` after that
  audio), ``{"type": "Clear"}`` (drop buffered text and audio; answered by
  ``{"type": "Cleared", "sequence_id"}``), ``{"type": "Close"}``.
- The server sends the audio as binary frames (raw linear16 here), ``{"type": "Metadata",
  "request_id", "model_name", ...}`` first, ``{"type": "Warning", "description", "code"}``
  and ``{"type": "Error", "description", ...}``.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from typing import Any
from urllib.parse import urlencode, urlsplit, urlunsplit

import attrs

from tvoice.stt import SpeechData

__all__ = [
    "CLEAR",
    "CLOSE_STREAM",
    "FINALIZE",
    "FLUSH",
    "KEEP_ALIVE",
    "Message",
    "Results",
    "listen_url",
    "parse_message",
    "speak",
    "speak_url",
]

KEEP_ALIVE = json.dumps({"type": "KeepAlive"})
FINALIZE = json.dumps({"type": "Finalize"})
CLOSE_STREAM = json.dumps({"type": "CloseStream"})
FLUSH = json.dumps({"type": "Flush"})
CLEAR = json.dumps({"type": "Clear"})


def speak(text: str) -> str:
    """A ``Speak`` message: text for the speech stream's buffer."""
    return json.dumps({"type": "Speak", "text": text})


def _flag(value: bool) -> str:
    return "true" if value else "false"


def listen_url(base_url: str, options: Mapping[str, Any]) -> str:
    """The ``/listen`` URL under ``base_url`` with ``options`` as query parameters.

    ``base_url`` may be ``https://`` or ``wss://`` (``http`` maps to ``ws``). Booleans are
    written ``true``/``false``; a sequence repeats its parameter; None leaves it out.
    """
    return _url(base_url, "/listen", options)


def speak_url(base_url: str, options: Mapping[str, Any]) -> str:
    """The ``/speak`` URL under ``base_url``, as :func:`listen_url` makes ``/listen``'s."""
    return _url(base_url, "/speak", options)


def _url(base_url: str, endpoint: str, options: Mapping[str, Any]) -> str:
    parts = urlsplit(base_url.rstrip("/"))
    scheme = {"https": "wss", "http": "ws"}.get(parts.scheme, parts.scheme)
    if scheme not in ("ws", "wss"):
        raise ValueError(f"base_url must be a ws(s):// or http(s):// URL, got {base_url!r}")
    path = parts.path if parts.path.endswith(endpoint) else parts.path + endpoint
    query: list[tuple[str, str]] = []
    for name, value in options.items():
        if value is None:
            continue
        values = value if isinstance(value, list | tuple) else [value]
        for v in values:
            query.append((name, _flag(v) if isinstance(v, bool) else str(v)))
    return urlunsplit((scheme, parts.netloc, path, urlencode(query), ""))


class MalformedMessage(ValueError):
    """A server message that is not what the protocol documents."""


@attrs.frozen(kw_only=True)
class Results:
    """A ``Results`` message: the alternatives (times in the stream's audio seconds)."""

    alternatives: tuple[SpeechData, ...]
    is_final: bool
    speech_final: bool
    from_finalize: bool
    request_id: str


@attrs.frozen(kw_only=True)
class Message:
    """Any other server message: its ``type`` and JSON object."""

    type: str
    body: Mapping[str, Any]


def parse_message(text: str | bytes, *, language: str, offset: float = 0.0) -> Results | Message:
    """Read one server frame; ``offset`` is added to its times (the audio sent before the
    connection it came on). Raises :class:`MalformedMessage`."""
    if isinstance(text, bytes):
        raise MalformedMessage("a binary frame from the server")
    try:
        body = json.loads(text)
    except ValueError:
        raise MalformedMessage(f"not JSON: {text[:80]!r}") from None
    if not isinstance(body, dict) or not isinstance(body.get("type"), str):
        raise MalformedMessage(f"not a typed JSON object: {text[:80]!r}")
    if body["type"] != "Results":
        return Message(type=body["type"], body=body)
    try:
        alternatives = body["channel"]["alternatives"]
        metadata = body.get("metadata") or {}
        return Results(
            alternatives=tuple(_speech_data(a, language, offset) for a in alternatives),
            is_final=bool(body.get("is_final", False)),
            speech_final=bool(body.get("speech_final", False)),
            from_finalize=bool(body.get("from_finalize", False)),
            request_id=str(metadata.get("request_id", "")),
        )
    except (KeyError, TypeError, ValueError) as e:
        raise MalformedMessage(f"a Results message without {e}") from None


def _speech_data(alternative: Mapping[str, Any], language: str, offset: float) -> SpeechData:
    words: Sequence[Mapping[str, Any]] = alternative.get("words") or ()
    start = float(words[0]["start"]) if words else 0.0
    end = float(words[-1]["end"]) if words else 0.0
    languages = alternative.get("languages")
    return SpeechData(
        text=str(alternative["transcript"]),
        confidence=float(alternative.get("confidence", 0.0)),
        language=str(languages[0]) if languages else language,
        start_time=start + offset if words else 0.0,
        end_time=end + offset if words else 0.0,
    )
