"""The OpenAI HTTP API, as the local inference server speaks it: requests in, answers out.

Only what the server needs, checked as untrusted input (a request that does not fit gets a
400 with OpenAI's error body, ``{"error": {"message", "type", "param", "code"}}``):

- ``POST /v1/chat/completions``: ``messages`` (system, developer, user, assistant with
  ``tool_calls``, tool), ``tools`` (functions), ``tool_choice``, ``stream`` (+
  ``stream_options.include_usage``), ``max_completion_tokens``/``max_tokens``,
  ``temperature``, ``top_p``, ``seed``; streamed as ``chat.completion.chunk`` events ending
  with ``data: [DONE]``, or one ``chat.completion``.
- ``POST /v1/audio/transcriptions``: multipart form with ``file`` (a 16-bit PCM WAV),
  ``model``, ``language``, ``prompt``, ``response_format`` (json, text), ``stream``
  (``transcript.text.delta`` / ``transcript.text.done`` events).
- ``POST /v1/audio/speech``: ``model``, ``input``, ``voice``, ``response_format`` (pcm: 24 kHz
  16-bit mono little-endian; wav), ``speed``, ``instructions``.
"""

from __future__ import annotations

import json
import math
import time
from collections.abc import AsyncIterable, Awaitable, Callable, Sequence
from typing import Any

import attrs

from tvoice.llm import (
    ChatChunk,
    ChatContext,
    ChatMessage,
    FunctionCall,
    FunctionCallOutput,
    Tool,
    ToolChoice,
    function_tool,
)

__all__ = [
    "ChatRequest",
    "SpeechRequest",
    "TranscriptionRequest",
    "chat_completion",
    "chat_events",
    "error_body",
    "parse_chat_request",
    "parse_multipart",
    "parse_speech_request",
    "parse_transcription_request",
    "sse",
]

MAX_MESSAGES = 1000
MAX_TOOLS = 128
MAX_SPEECH_INPUT = 4096  # characters, OpenAI's own limit


class BadRequest(Exception):
    """The request does not fit the API: answered 400 with ``message`` (and ``param``)."""

    def __init__(self, message: str, param: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.param = param


def error_body(
    message: str, *, kind: str = "invalid_request_error", param: str | None = None
) -> bytes:
    """An OpenAI error body."""
    return json.dumps(
        {"error": {"message": message, "type": kind, "param": param, "code": None}}
    ).encode()


def sse(data: object) -> bytes:
    """One server-sent event carrying ``data`` as JSON (or ``[DONE]`` as it is)."""
    text = data if isinstance(data, str) else json.dumps(data, separators=(",", ":"))
    return f"data: {text}\n\n".encode()


# --- chat completions --------------------------------------------------------------------


@attrs.frozen(kw_only=True)
class ChatRequest:
    """A chat completion request, as tvoice's LLM interface takes it."""

    model: str
    chat_ctx: ChatContext
    tools: list[Tool]
    tool_choice: ToolChoice
    stream: bool
    include_usage: bool
    max_tokens: int | None
    temperature: float | None
    top_p: float | None
    seed: int | None


def parse_chat_request(body: bytes) -> ChatRequest:
    """A chat completion request from its JSON body; raises :class:`BadRequest`."""
    data = _json_object(body)
    messages = data.get("messages")
    if not isinstance(messages, list) or not messages or len(messages) > MAX_MESSAGES:
        raise BadRequest(f"'messages' must be a list of 1 to {MAX_MESSAGES} messages", "messages")
    chat_ctx = ChatContext([item for m in messages for item in _chat_items(m)])
    tools = _tools(data.get("tools", []))
    stream_options = data.get("stream_options") or {}
    if not isinstance(stream_options, dict):
        raise BadRequest("'stream_options' must be an object", "stream_options")
    max_tokens = data.get("max_completion_tokens", data.get("max_tokens"))
    return ChatRequest(
        model=_optional(data, "model", str) or "",
        chat_ctx=chat_ctx,
        tools=tools,
        tool_choice=_tool_choice(data.get("tool_choice"), tools),
        stream=bool(_optional(data, "stream", bool)),
        include_usage=bool(stream_options.get("include_usage")),
        max_tokens=_bounded(max_tokens, "max_completion_tokens", int, 1, 1_000_000),
        temperature=_bounded(data.get("temperature"), "temperature", float, 0.0, 2.0),
        top_p=_bounded(data.get("top_p"), "top_p", float, 1e-9, 1.0),
        seed=_bounded(data.get("seed"), "seed", int, 0, 2**32 - 2),
    )


def _chat_items(message: object) -> list[Any]:
    if not isinstance(message, dict):
        raise BadRequest("each message must be an object", "messages")
    role = message.get("role")
    text = _text(message.get("content"))
    if role in ("system", "developer", "user"):
        return [ChatMessage(role=role, content=[text])]
    if role == "assistant":
        items: list[Any] = [ChatMessage(role="assistant", content=[text])] if text else []
        calls = message.get("tool_calls") or []
        if not isinstance(calls, list):
            raise BadRequest("'tool_calls' must be a list", "messages")
        for call in calls:
            function = call.get("function") if isinstance(call, dict) else None
            if not (isinstance(function, dict) and isinstance(call.get("id"), str)):
                raise BadRequest("a tool call needs an 'id' and a 'function'", "messages")
            name, arguments = function.get("name"), function.get("arguments", "")
            if not isinstance(name, str) or not isinstance(arguments, str):
                raise BadRequest("a tool call's name and arguments are strings", "messages")
            items.append(FunctionCall(call_id=call["id"], name=name, arguments=arguments))
        return items
    if role == "tool":
        call_id = message.get("tool_call_id")
        if not isinstance(call_id, str):
            raise BadRequest("a tool message needs its 'tool_call_id'", "messages")
        return [FunctionCallOutput(call_id=call_id, output=text, is_error=False)]
    raise BadRequest(f"unknown message role {role!r}", "messages")


def _text(content: object) -> str:
    """A message's text: a string, or the text of its content parts."""
    if content is None:
        return ""
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        parts = [p.get("text") for p in content if isinstance(p, dict) and p.get("type") == "text"]
        if all(isinstance(p, str) for p in parts):
            return "\n".join(p for p in parts if isinstance(p, str))
    raise BadRequest("a message's content must be a string or a list of text parts", "messages")


async def _never_called(raw_arguments: dict[str, Any]) -> None:
    """Tools are run by the client that asked, never by the server."""


def _tools(tools: object) -> list[Tool]:
    if not isinstance(tools, list) or len(tools) > MAX_TOOLS:
        raise BadRequest(f"'tools' must be a list of at most {MAX_TOOLS} tools", "tools")
    result: list[Tool] = []
    for tool in tools:
        function = tool.get("function") if isinstance(tool, dict) else None
        if not (isinstance(tool, dict) and tool.get("type") == "function"):
            raise BadRequest("only tools of type 'function' are supported", "tools")
        if not isinstance(function, dict):
            raise BadRequest("a tool needs its 'function'", "tools")
        try:
            result.append(function_tool(_never_called, raw_schema=function))
        except (TypeError, ValueError) as e:
            raise BadRequest(f"tool {function.get('name')!r}: {e}", "tools") from None
    return result


def _tool_choice(choice: object, tools: Sequence[Tool]) -> ToolChoice:
    if choice is None:
        return "auto"
    if choice == "auto" or choice == "none" or choice == "required":
        return choice
    function = choice.get("function") if isinstance(choice, dict) else None
    name = function.get("name") if isinstance(function, dict) else None
    if not isinstance(name, str) or name not in {t.name for t in tools}:
        raise BadRequest("'tool_choice' names no tool in 'tools'", "tool_choice")
    return name


def chat_completion(
    request: ChatRequest, chunks: Sequence[ChatChunk], request_id: str
) -> dict[str, Any]:
    """One ``chat.completion`` object for a whole reply."""
    text = "".join(c.delta.content or "" for c in chunks if c.delta)
    calls = [call for c in chunks if c.delta for call in c.delta.tool_calls]
    message: dict[str, Any] = {"role": "assistant", "content": text or None}
    if calls:
        message["tool_calls"] = [_call(call) for call in calls]
    usage = next((c.usage for c in reversed(chunks) if c.usage is not None), None)
    return {
        "id": request_id,
        "object": "chat.completion",
        "created": int(time.time()),
        "model": request.model,
        "choices": [
            {
                "index": 0,
                "message": message,
                "finish_reason": "tool_calls" if calls else "stop",
            }
        ],
        "usage": _usage(usage),
    }


async def chat_events(
    request: ChatRequest,
    chunks: AsyncIterable[ChatChunk],
    request_id: str,
    send: Callable[[bytes], Awaitable[None]],
) -> None:
    """Send the reply as ``chat.completion.chunk`` events: the role first, then text and calls
    as they come, the finish reason, the usage if asked for, and ``[DONE]``."""
    created = int(time.time())

    def chunk(delta: dict[str, Any] | None, finish: str | None = None, usage: Any = None) -> bytes:
        event: dict[str, Any] = {
            "id": request_id,
            "object": "chat.completion.chunk",
            "created": created,
            "model": request.model,
            "choices": []
            if delta is None
            else [{"index": 0, "delta": delta, "finish_reason": finish}],
        }
        if delta is None:
            event["usage"] = _usage(usage)
        return sse(event)

    await send(chunk({"role": "assistant", "content": ""}))
    calls = 0
    usage = None
    async for piece in chunks:
        if piece.usage is not None:
            usage = piece.usage
        if piece.delta is None:
            continue
        if piece.delta.content:
            await send(chunk({"content": piece.delta.content}))
        for call in piece.delta.tool_calls:
            await send(chunk({"tool_calls": [{"index": calls, **_call(call)}]}))
            calls += 1
    await send(chunk({}, "tool_calls" if calls else "stop"))
    if request.include_usage:
        await send(chunk(None, usage=usage))
    await send(sse("[DONE]"))


def _call(call: FunctionCall) -> dict[str, Any]:
    return {
        "id": call.call_id,
        "type": "function",
        "function": {"name": call.name, "arguments": call.arguments},
    }


def _usage(usage: Any) -> dict[str, int]:
    if usage is None:
        return {"prompt_tokens": 0, "completion_tokens": 0, "total_tokens": 0}
    return {
        "prompt_tokens": usage.prompt_tokens,
        "completion_tokens": usage.completion_tokens,
        "total_tokens": usage.total_tokens,
    }


# --- audio -------------------------------------------------------------------------------


@attrs.frozen(kw_only=True)
class TranscriptionRequest:
    """A transcription request: the audio file and how to answer."""

    audio: bytes
    model: str
    language: str | None
    prompt: str | None
    response_format: str
    stream: bool


def parse_transcription_request(content_type: str, body: bytes) -> TranscriptionRequest:
    """A transcription request from its multipart form; raises :class:`BadRequest`."""
    fields = parse_multipart(content_type, body)
    audio = fields.get("file")
    if audio is None:
        raise BadRequest("the form has no 'file'", "file")
    response_format = fields.get("response_format", b"json").decode()
    if response_format not in ("json", "text"):
        raise BadRequest(f"response_format {response_format!r} is not supported", "response_format")
    language = fields.get("language", b"").decode() or None
    prompt = fields.get("prompt", b"").decode() or None
    return TranscriptionRequest(
        audio=audio,
        model=fields.get("model", b"").decode(),
        language=language,
        prompt=prompt,
        response_format=response_format,
        stream=fields.get("stream", b"false").decode().lower() == "true",
    )


def parse_multipart(content_type: str, body: bytes) -> dict[str, bytes]:
    """The fields of a ``multipart/form-data`` body by name (a file's field holds its bytes)."""
    kind, _, params = content_type.partition(";")
    if kind.strip().lower() != "multipart/form-data":
        raise BadRequest("expected a multipart/form-data body")
    boundary = ""
    for param in params.split(";"):
        key, _, value = param.strip().partition("=")
        if key.lower() == "boundary":
            boundary = value.strip('"')
    if not boundary or len(boundary) > 200:
        raise BadRequest("the multipart body has no boundary")
    delimiter = b"--" + boundary.encode("latin-1")
    fields: dict[str, bytes] = {}
    parts = body.split(delimiter)
    if len(parts) < 3 or not parts[-1].startswith(b"--"):
        raise BadRequest("the multipart body is not closed")
    for part in parts[1:-1]:
        if not part.startswith(b"\r\n") or not part.endswith(b"\r\n"):
            raise BadRequest("a multipart part is malformed")
        head, separator, content = part[2:-2].partition(b"\r\n\r\n")
        if not separator:
            raise BadRequest("a multipart part has no header")
        name = _field_name(head.decode("latin-1"))
        if name in fields:
            raise BadRequest(f"the field {name!r} is repeated", name)
        fields[name] = content
    return fields


def _field_name(head: str) -> str:
    for line in head.split("\r\n"):
        key, _, value = line.partition(":")
        if key.strip().lower() != "content-disposition":
            continue
        for param in value.split(";")[1:]:
            pkey, _, pvalue = param.strip().partition("=")
            if pkey.lower() == "name":
                return pvalue.strip('"')
    raise BadRequest("a multipart part has no field name")


@attrs.frozen(kw_only=True)
class SpeechRequest:
    """A speech request: the text, the voice and the audio format."""

    model: str
    input: str
    voice: str
    response_format: str
    speed: float


def parse_speech_request(body: bytes) -> SpeechRequest:
    """A speech request from its JSON body; raises :class:`BadRequest`."""
    data = _json_object(body)
    text = data.get("input")
    if not isinstance(text, str) or not text.strip() or len(text) > MAX_SPEECH_INPUT:
        raise BadRequest(f"'input' must be text of 1 to {MAX_SPEECH_INPUT} characters", "input")
    response_format = _optional(data, "response_format", str) or "mp3"
    if response_format not in ("pcm", "wav"):
        raise BadRequest(
            f"response_format {response_format!r} is not supported here (pcm, wav)",
            "response_format",
        )
    speed = _bounded(data.get("speed"), "speed", float, 0.25, 4.0)
    _optional(data, "instructions", str)
    return SpeechRequest(
        model=_optional(data, "model", str) or "",
        input=text,
        voice=_optional(data, "voice", str) or "",
        response_format=response_format,
        speed=1.0 if speed is None else speed,
    )


# --- checks ------------------------------------------------------------------------------


def _json_object(body: bytes) -> dict[str, Any]:
    try:
        data = json.loads(body)
    except ValueError:
        raise BadRequest("the body is not JSON") from None
    if not isinstance(data, dict):
        raise BadRequest("the body must be a JSON object")
    return data


def _optional(data: dict[str, Any], key: str, kind: type) -> Any:
    value = data.get(key)
    if value is not None and not isinstance(value, kind):
        raise BadRequest(f"'{key}' must be of type {kind.__name__}", key)
    return value


def _bounded(value: object, key: str, kind: type, low: float, high: float) -> Any:
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise BadRequest(f"'{key}' must be a number", key)
    if kind is int and not isinstance(value, int):
        raise BadRequest(f"'{key}' must be an integer", key)
    if not math.isfinite(value) or not low <= value <= high:
        raise BadRequest(f"'{key}' must be between {low} and {high}", key)
    return kind(value)
