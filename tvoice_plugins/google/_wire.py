"""The Gemini API on the wire: the request body and the streamed responses.

Pure functions and a small reader, no I/O: ``_llm`` feeds them what httpx reads. Sources:
ai.google.dev/api/generate-content (``streamGenerateContent``, ``GenerateContentResponse``,
``UsageMetadata``), ai.google.dev/api/caching#Content (``Content``, ``Part``,
``FunctionCall``, ``FunctionResponse``), ai.google.dev/gemini-api/docs/function-calling
(``tools``, ``toolConfig``, thought signatures), ai.google.dev/api/caching#Schema.

- ``POST {base}/models/{model}:streamGenerateContent?alt=sse`` (base
  ``https://generativelanguage.googleapis.com/v1beta``) with the key in ``x-goog-api-key``;
  body ``contents`` (``role`` ``user`` or ``model``, ``parts`` of ``text``,
  ``functionCall {name, args}``, ``functionResponse {name, response}``),
  ``systemInstruction {parts}``, ``tools: [{functionDeclarations: [{name, description,
  parameters}]}]`` (``parameters`` an OpenAPI-subset Schema: no ``additionalProperties``),
  ``toolConfig.functionCallingConfig`` (``mode`` AUTO / ANY / NONE, ``allowedFunctionNames``
  with ANY), ``generationConfig`` (``temperature``, ``maxOutputTokens``...).
- The reply: one SSE ``data:`` line per ``GenerateContentResponse`` JSON, no end marker:
  ``candidates[0].content.parts`` (text, or a complete ``functionCall`` with its
  ``thoughtSignature`` beside it; ``thought: true`` parts are thought summaries),
  ``candidates[0].finishReason`` on the last, ``usageMetadata`` (``promptTokenCount``,
  ``candidatesTokenCount``, ``thoughtsTokenCount``, ``totalTokenCount``), and
  ``promptFeedback.blockReason`` when the prompt is refused. An ``{"error": ...}`` object may
  come in place of a response.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from typing import Any

import attrs

from tvoice.llm import (
    ChatContext,
    CompletionUsage,
    FunctionCall,
    FunctionCallOutput,
    Tool,
    ToolChoice,
    to_openai_messages,
)

__all__ = [
    "EMPTY_TURN",
    "Response",
    "call_of",
    "function_declarations",
    "gemini_schema",
    "generate_request",
    "parse_response",
    "to_gemini_contents",
    "tool_config",
]

EMPTY_TURN = "..."
"""The text of a user turn put first when the history starts with the model's turn or holds no
message at all (a request's contents start with the user)."""

# The fields of Gemini's Schema object; anything else in a JSON schema is refused by the API.
_SCHEMA_FIELDS = frozenset(
    {
        "type", "format", "title", "description", "nullable", "enum", "maxItems", "minItems",
        "properties", "required", "minProperties", "maxProperties", "minLength", "maxLength",
        "pattern", "example", "anyOf", "propertyOrdering", "default", "items", "minimum",
        "maximum",
    }
)  # fmt: skip


def to_gemini_contents(
    chat_ctx: ChatContext, *, signatures: Mapping[str, str] | None = None
) -> tuple[str, list[dict[str, Any]]]:
    """``(system instruction, contents)``: the chat as Gemini takes it, valid for it.

    The order is :func:`tvoice.llm.to_openai_messages`'s (each tool call followed at once by
    its output, calls still running left out), then regrouped: instructions become the system
    instruction, an assistant turn's calls ``functionCall`` parts of a ``model`` turn (with the
    ``thoughtSignature`` Gemini gave each, from ``signatures`` by call id), their outputs
    ``functionResponse`` parts at the head of the next ``user`` turn (``{"output": ...}``, or
    ``{"error": ...}`` for a failed tool), consecutive turns of one role merged, empty texts
    left out.
    """
    outputs = {i.call_id: i for i in chat_ctx.items if isinstance(i, FunctionCallOutput)}
    # Gemini pairs a response with its call by name; an output recorded without one takes
    # its call's.
    names = {i.call_id: i.name for i in chat_ctx.items if isinstance(i, FunctionCall)}
    signatures = signatures or {}
    system: list[str] = []
    contents: list[dict[str, Any]] = []

    def add(role: str, parts: list[dict[str, Any]]) -> None:
        if not parts:
            return
        if contents and contents[-1]["role"] == role:
            contents[-1]["parts"] += parts
        else:
            contents.append({"role": role, "parts": parts})

    for message in to_openai_messages(chat_ctx):
        role = message["role"]
        if role == "system":
            if message["content"]:
                system.append(message["content"])
        elif role == "tool":
            output = outputs[message["tool_call_id"]]
            key = "error" if output.is_error else "output"
            name = output.name or names[output.call_id]
            response = {"name": name, "response": {key: output.output}}
            add("user", [{"functionResponse": response}])
        elif role == "assistant":
            text = message.get("content") or ""
            parts: list[dict[str, Any]] = [{"text": text}] if text.strip() else []
            for call in message.get("tool_calls", ()):
                parts.append(_function_call(call, signatures.get(call["id"])))
            add("model", parts)
        else:
            add("user", [{"text": message["content"]}] if message["content"].strip() else [])
    for content in contents:
        if content["role"] == "user":
            # The answers to the model's calls first in their turn, right after the calls.
            content["parts"].sort(key=lambda part: "functionResponse" not in part)
    if not contents or contents[0]["role"] != "user":
        contents.insert(0, {"role": "user", "parts": [{"text": EMPTY_TURN}]})
    return "\n\n".join(system), contents


def _function_call(call: Mapping[str, Any], signature: str | None) -> dict[str, Any]:
    try:
        args = json.loads(call["function"]["arguments"])
    except ValueError:
        args = None
    # ``args`` is an object; a call whose arguments were not one failed, and its error
    # output follows it.
    part: dict[str, Any] = {
        "functionCall": {
            "name": call["function"]["name"],
            "args": args if isinstance(args, dict) else {},
        }
    }
    if signature:
        part["thoughtSignature"] = signature
    return part


def gemini_schema(schema: Any) -> Any:
    """A JSON schema as Gemini's Schema: ``["x", "null"]`` types as ``nullable``, fields it does
    not know (``additionalProperties``, ``$schema``...) left out."""
    if isinstance(schema, list):
        return [gemini_schema(s) for s in schema]
    if not isinstance(schema, dict):
        return schema
    result: dict[str, Any] = {}
    for key, value in schema.items():
        if key not in _SCHEMA_FIELDS:
            continue
        if key == "type" and isinstance(value, list):
            types = [t for t in value if t != "null"]
            if len(types) != len(value):
                result["nullable"] = True
            value = types[0] if len(types) == 1 else "string"
        if key == "properties" and isinstance(value, dict):
            value = {name: gemini_schema(sub) for name, sub in value.items()}
        elif key in ("items", "anyOf"):
            value = gemini_schema(value)
        result[key] = value
    return result


def function_declarations(tools: Sequence[Tool]) -> list[dict[str, Any]]:
    """The tools as ``functionDeclarations``."""
    declarations = []
    for tool in tools:
        schema = tool.schema
        declaration: dict[str, Any] = {
            "name": schema["name"],
            "description": schema.get("description") or "",
        }
        parameters = schema.get("parameters")
        if parameters and parameters.get("properties"):
            # A function without parameters leaves them out (an empty object is refused).
            declaration["parameters"] = gemini_schema(parameters)
        declarations.append(declaration)
    return declarations


def tool_config(choice: ToolChoice) -> dict[str, Any]:
    """``toolConfig``: ``required`` is ANY, a tool's name ANY with only that function."""
    if choice in ("auto", "required", "none"):
        mode = {"auto": "AUTO", "required": "ANY", "none": "NONE"}[choice]
        return {"functionCallingConfig": {"mode": mode}}
    return {"functionCallingConfig": {"mode": "ANY", "allowedFunctionNames": [choice]}}


def generate_request(
    *,
    chat_ctx: ChatContext,
    tools: Sequence[Tool],
    tool_choice: ToolChoice,
    generation_config: Mapping[str, Any],
    signatures: Mapping[str, str] | None,
    extra: Mapping[str, Any] | None,
) -> dict[str, Any]:
    """The JSON body of a streamed generation; ``generation_config`` entries are sent when
    not None, ``extra`` fields as they are, last."""
    system, contents = to_gemini_contents(chat_ctx, signatures=signatures)
    body: dict[str, Any] = {"contents": contents}
    if system:
        body["systemInstruction"] = {"parts": [{"text": system}]}
    if tools:
        body["tools"] = [{"functionDeclarations": function_declarations(tools)}]
        body["toolConfig"] = tool_config(tool_choice)
    config = {k: v for k, v in generation_config.items() if v is not None}
    if config:
        body["generationConfig"] = config
    if extra:
        body.update(extra)
    return body


@attrs.frozen(kw_only=True)
class Response:
    """What one streamed response brought: text, complete calls (with their signatures), the
    end of the candidate, the usage so far, a refusal, an error."""

    text: str = ""
    calls: tuple[tuple[str, Any, str | None], ...] = ()  # (name, args, thoughtSignature)
    call_ids: tuple[str | None, ...] = ()
    finish_reason: str | None = None
    usage: CompletionUsage | None = None
    block_reason: str | None = None
    error: Any = None


def _count(raw: Mapping[str, Any], key: str) -> int:
    value = raw.get(key, 0)
    if not isinstance(value, int) or isinstance(value, bool):
        raise ValueError(f"usageMetadata.{key} is not a token count")
    return value


def _usage(raw: Any) -> CompletionUsage | None:
    if raw is None:
        return None
    if not isinstance(raw, dict):
        raise ValueError("'usageMetadata' is not an object")
    prompt = _count(raw, "promptTokenCount")
    # Thinking is output the model wrote, billed as such.
    completion = _count(raw, "candidatesTokenCount") + _count(raw, "thoughtsTokenCount")
    total = _count(raw, "totalTokenCount") or prompt + completion
    return CompletionUsage(prompt_tokens=prompt, completion_tokens=completion, total_tokens=total)


def parse_response(data: str) -> Response:
    """Parse the ``data`` of one event; raises ValueError if it is not a response."""
    try:
        chunk = json.loads(data)
    except ValueError as e:
        raise ValueError(f"not JSON ({e})") from None
    if not isinstance(chunk, dict):
        raise ValueError("not a JSON object")
    if "error" in chunk:
        return Response(error=chunk["error"])
    usage = _usage(chunk.get("usageMetadata"))
    feedback = chunk.get("promptFeedback")
    block_reason = feedback.get("blockReason") if isinstance(feedback, dict) else None
    candidates = chunk.get("candidates") or []
    if not isinstance(candidates, list):
        raise ValueError("'candidates' is not a list")
    if not candidates:
        return Response(usage=usage, block_reason=block_reason)
    candidate = candidates[0]
    if not isinstance(candidate, dict):
        raise ValueError("a candidate is not an object")
    content = candidate.get("content") or {}
    parts = (content.get("parts") or []) if isinstance(content, dict) else None
    if not isinstance(parts, list) or not all(isinstance(p, dict) for p in parts):
        raise ValueError("'content.parts' is not a list of objects")
    texts: list[str] = []
    calls: list[tuple[str, Any, str | None]] = []
    ids: list[str | None] = []
    for part in parts:
        if "functionCall" in part:
            call = part["functionCall"]
            if not isinstance(call, dict) or not isinstance(call.get("name"), str):
                raise ValueError("a functionCall without a 'name'")
            args = call.get("args", {})
            if not isinstance(args, dict):
                raise ValueError("a functionCall's 'args' is not an object")
            signature = part.get("thoughtSignature")
            calls.append((call["name"], args, signature if isinstance(signature, str) else None))
            ids.append(call["id"] if isinstance(call.get("id"), str) else None)
        elif "text" in part and not part.get("thought"):
            if not isinstance(part["text"], str):
                raise ValueError("a part's 'text' is not a string")
            texts.append(part["text"])
    reason = candidate.get("finishReason")
    if reason is not None and not isinstance(reason, str):
        raise ValueError("'finishReason' is not a string")
    return Response(
        text="".join(texts),
        calls=tuple(calls),
        call_ids=tuple(ids),
        finish_reason=reason,
        usage=usage,
        block_reason=block_reason,
    )


def call_of(name: str, args: Any, call_id: str) -> FunctionCall:
    """A tvoice call from a Gemini ``functionCall`` (``args`` written back as JSON text)."""
    return FunctionCall(call_id=call_id, name=name, arguments=json.dumps(args))
