"""The OpenAI HTTP API on the wire: request bodies, streamed chunks, PCM (server-sent events
are read by ``tvoice_plugins._http.SseDecoder``).

Pure functions and small decoders, no I/O: the model modules feed them what httpx reads.

- Chat Completions (``POST {base}/chat/completions``, ``stream: true``): one SSE ``data:`` line
  per ``chat.completion.chunk`` JSON object, ``choices[0].delta`` carrying ``content`` and
  ``tool_calls`` pieces (``index``; ``id`` and ``function.name`` in the first piece of a call,
  ``function.arguments`` in pieces), ``finish_reason`` on the last; with
  ``stream_options.include_usage`` one more chunk with ``choices: []`` and ``usage``; then
  ``data: [DONE]``.
- Transcriptions (``POST {base}/audio/transcriptions``, multipart ``file``, ``model``,
  ``language``, ``prompt``, ``response_format``, ``stream``): JSON ``{"text": ...}``, or with
  ``stream=true`` SSE events ``transcript.text.delta`` (``delta``) then ``transcript.text.done``
  (``text``).
- Speech (``POST {base}/audio/speech``, JSON ``model``, ``input``, ``voice``, ``instructions``,
  ``speed``, ``response_format``): with ``"pcm"``, raw 24 kHz 16-bit little-endian mono samples.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from typing import Any

import attrs

from tvoice.audio import AudioFrame
from tvoice.llm import (
    ChatContext,
    CompletionUsage,
    FunctionCall,
    Tool,
    ToolChoice,
    to_openai_messages,
    to_openai_tools,
)

__all__ = [
    "DONE",
    "PCM_SAMPLE_RATE",
    "ChatDelta",
    "PcmDecoder",
    "ToolCallAssembler",
    "chat_request",
    "parse_chat_chunk",
    "parse_transcription",
    "parse_transcription_event",
    "speech_request",
    "tool_choice_json",
    "transcription_form",
]

DONE = "[DONE]"
"""The ``data`` of the last event of a chat completion stream."""

PCM_SAMPLE_RATE = 24000
"""``response_format="pcm"`` speech: 24 kHz, 16-bit signed little-endian, mono, no header."""


def tool_choice_json(choice: ToolChoice) -> str | dict[str, Any]:
    """``tool_choice`` as the API takes it: a mode, or the one function to call."""
    if choice in ("auto", "required", "none"):
        return choice
    return {"type": "function", "function": {"name": choice}}


def chat_request(
    *,
    model: str,
    chat_ctx: ChatContext,
    tools: Sequence[Tool],
    tool_choice: ToolChoice,
    options: Mapping[str, Any],
    extra: Mapping[str, Any] | None,
) -> dict[str, Any]:
    """The JSON body of a streamed chat completion.

    ``options``: the model's settings (``temperature``, ``max_completion_tokens``, ``seed``,
    ``response_format``, ``parallel_tool_calls``...), sent when not None; ``extra``: fields sent
    as they are, last (a provider's own extensions).
    """
    body: dict[str, Any] = {
        "model": model,
        "messages": to_openai_messages(chat_ctx),
        "stream": True,
        "stream_options": {"include_usage": True},
    }
    for name, value in options.items():
        if value is not None:
            body[name] = value
    if tools:
        body["tools"] = to_openai_tools(tools)
        body["tool_choice"] = tool_choice_json(tool_choice)
    else:
        # Without tools the API refuses these.
        body.pop("parallel_tool_calls", None)
    if extra:
        body.update(extra)
    return body


@attrs.frozen(kw_only=True)
class ChatDelta:
    """What one chunk brought: text, tool-call pieces, the end of the choice, the usage."""

    content: str = ""
    tool_calls: tuple[Mapping[str, Any], ...] = ()
    finished: bool = False
    usage: CompletionUsage | None = None
    error: Any = None


def parse_chat_chunk(data: str) -> ChatDelta:
    """Parse the ``data`` of one chunk event; raises ValueError if it is not a chunk."""
    try:
        chunk = json.loads(data)
    except ValueError as e:
        raise ValueError(f"not JSON ({e})") from None
    if not isinstance(chunk, dict):
        raise ValueError("not a JSON object")
    if chunk.get("error"):
        return ChatDelta(error=chunk["error"])
    usage = _usage(chunk.get("usage"))
    choices = chunk.get("choices")
    if choices is None:
        choices = []  # a usage-only chunk from a server that leaves ``choices`` out
    if not isinstance(choices, list):
        raise ValueError("'choices' is not a list")
    if not choices:
        return ChatDelta(usage=usage)
    # One completion is asked for (no ``n``): the first choice is the reply.
    choice = choices[0]
    if not isinstance(choice, dict):
        raise ValueError("a choice is not an object")
    delta = choice.get("delta") or {}
    if not isinstance(delta, dict):
        raise ValueError("'delta' is not an object")
    content = delta.get("content") or ""
    if not isinstance(content, str):
        raise ValueError("'content' is not a string")
    calls = delta.get("tool_calls") or []
    if not isinstance(calls, list) or not all(isinstance(c, dict) for c in calls):
        raise ValueError("'tool_calls' is not a list of objects")
    return ChatDelta(
        content=content,
        tool_calls=tuple(calls),
        finished=choice.get("finish_reason") is not None,
        usage=usage,
    )


def _usage(raw: Any) -> CompletionUsage | None:
    if raw is None:
        return None
    if not isinstance(raw, dict):
        raise ValueError("'usage' is not an object")
    try:
        prompt = int(raw.get("prompt_tokens") or 0)
        completion = int(raw.get("completion_tokens") or 0)
        total = int(raw.get("total_tokens") or prompt + completion)
    except (TypeError, ValueError):
        raise ValueError("'usage' holds something other than token counts") from None
    return CompletionUsage(prompt_tokens=prompt, completion_tokens=completion, total_tokens=total)


@attrs.define
class _PartialCall:
    call_id: str = ""
    name: str = ""
    arguments: list[str] = attrs.field(factory=list)


class ToolCallAssembler:
    """Puts tool calls together from their streamed pieces, keyed by ``index``."""

    def __init__(self, *, call_id_prefix: str) -> None:
        self._calls: dict[int, _PartialCall] = {}
        self._prefix = call_id_prefix

    def push(self, piece: Mapping[str, Any]) -> None:
        """Add one ``tool_calls`` element of a delta; raises ValueError if it is malformed."""
        index = piece.get("index")
        if index is None:
            # A server that leaves ``index`` out: a piece with an id starts a call, the
            # others continue the last one.
            index = len(self._calls) if piece.get("id") else max(self._calls, default=0)
        if not isinstance(index, int) or isinstance(index, bool):
            raise ValueError("a tool call's 'index' is not an integer")
        function = piece.get("function") or {}
        if not isinstance(function, dict):
            raise ValueError("a tool call's 'function' is not an object")
        call = self._calls.setdefault(index, _PartialCall())
        if piece.get("id"):
            call.call_id = str(piece["id"])
        name, arguments = function.get("name"), function.get("arguments")
        if name:
            if not isinstance(name, str):
                raise ValueError("a tool call's name is not a string")
            # Some servers repeat the name in every piece; OpenAI sends it once.
            call.name = name if not call.name or call.name == name else call.name + name
        if arguments:
            if not isinstance(arguments, str):
                # A few servers send the arguments as an object instead of JSON text.
                arguments = json.dumps(arguments)
            call.arguments.append(arguments)

    def __bool__(self) -> bool:
        return bool(self._calls)

    def finish(self) -> list[FunctionCall]:
        """The complete calls in ``index`` order; raises ValueError for a call with no name."""
        calls = []
        for index in sorted(self._calls):
            call = self._calls[index]
            if not call.name:
                raise ValueError(f"tool call {index} has no function name")
            calls.append(
                FunctionCall(
                    call_id=call.call_id or f"{self._prefix}_{index}",
                    name=call.name,
                    arguments="".join(call.arguments),
                )
            )
        self._calls.clear()
        return calls


def transcription_form(
    *,
    model: str,
    language: str | None,
    prompt: str | None,
    stream: bool,
    options: Mapping[str, Any],
) -> dict[str, str]:
    """The text fields of a transcription's multipart form (the audio goes in ``file``)."""
    form = {"model": model, "response_format": "json"}
    if language:
        form["language"] = language
    if prompt:
        form["prompt"] = prompt
    if stream:
        form["stream"] = "true"
    for name, value in options.items():
        if value is not None:
            form[name] = str(value)
    return form


def parse_transcription(body: bytes) -> str:
    """The text of a (non-streamed) JSON transcription; raises ValueError otherwise."""
    try:
        parsed = json.loads(body)
    except ValueError as e:
        raise ValueError(f"not JSON ({e})") from None
    if not isinstance(parsed, dict) or not isinstance(parsed.get("text"), str):
        raise ValueError("no 'text' in the transcription")
    return str(parsed["text"])


def parse_transcription_event(data: str) -> tuple[str, str]:
    """``("delta", text)``, ``("done", text)``, or ``("other", "")`` for a streamed transcription
    event; ``("error", message)`` for an error event. Raises ValueError if it is malformed."""
    try:
        event = json.loads(data)
    except ValueError as e:
        raise ValueError(f"not JSON ({e})") from None
    if not isinstance(event, dict):
        raise ValueError("not a JSON object")
    kind = event.get("type")
    if kind == "transcript.text.delta":
        delta = event.get("delta")
        if not isinstance(delta, str):
            raise ValueError("a transcript.text.delta event without a 'delta' string")
        return "delta", delta
    if kind == "transcript.text.done":
        text = event.get("text")
        if not isinstance(text, str):
            raise ValueError("a transcript.text.done event without a 'text' string")
        return "done", text
    if "error" in event:
        error = event["error"]
        message = error.get("message") if isinstance(error, dict) else error
        return "error", str(message)
    return "other", ""


def speech_request(
    *,
    model: str,
    text: str,
    voice: str,
    instructions: str | None,
    speed: float | None,
) -> dict[str, Any]:
    """The JSON body of a speech request for raw PCM."""
    body: dict[str, Any] = {
        "model": model,
        "input": text,
        "voice": voice,
        "response_format": "pcm",
    }
    if instructions:
        body["instructions"] = instructions
    if speed is not None:
        body["speed"] = speed
    return body


class PcmDecoder:
    """Raw 16-bit little-endian mono PCM, in pieces of any size, to frames of whole samples."""

    def __init__(self, sample_rate: int = PCM_SAMPLE_RATE) -> None:
        self._rate = sample_rate
        self._odd = b""

    def push(self, data: bytes) -> AudioFrame | None:
        """The whole samples received so far (a byte of a sample split across pieces waits)."""
        data = self._odd + data
        whole = len(data) - len(data) % 2
        self._odd = data[whole:]
        if not whole:
            return None
        return AudioFrame.from_bytes(data[:whole], self._rate)

    @property
    def pending(self) -> int:
        """Bytes held back: 1 when the audio ended mid-sample."""
        return len(self._odd)
