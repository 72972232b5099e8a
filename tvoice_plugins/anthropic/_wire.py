"""The Anthropic Messages API on the wire: the request body and the streamed events.

Pure functions and a small state machine, no I/O: ``_llm`` feeds them what httpx reads.
Sources: docs.anthropic.com/en/api/messages (request), /en/api/messages-streaming and
platform.claude.com/docs/build-with-claude/streaming (events), /en/docs/build-with-claude/tool-use
(tool_use / tool_result blocks), /en/api/errors (error bodies, 529).

- ``POST {base}/v1/messages`` with ``x-api-key``, ``anthropic-version: 2023-06-01`` and
  ``content-type: application/json``; body ``model``, ``max_tokens`` (required), ``messages``,
  ``system``, ``stream: true``, ``temperature``, ``tools`` (``{"name", "description",
  "input_schema"}``), ``tool_choice`` (``{"type": "auto" | "any" | "none"}`` or
  ``{"type": "tool", "name"}``).
- ``messages`` alternate ``user`` and ``assistant``, each with a list of content blocks:
  ``text``, ``tool_use`` (``id``, ``name``, ``input`` object) in the assistant's turn, and
  ``tool_result`` (``tool_use_id``, ``content``, ``is_error``) in the user turn right after it,
  before any text of that turn. Instructions go in the top-level ``system``.
- The stream: ``message_start`` (``message.usage``: ``input_tokens``,
  ``cache_creation_input_tokens``, ``cache_read_input_tokens``), for each content block
  ``content_block_start`` (``index``, ``content_block``: ``text`` or ``tool_use`` with ``id``,
  ``name``), ``content_block_delta`` (``text_delta`` ``text``, ``input_json_delta``
  ``partial_json``), ``content_block_stop``; ``message_delta`` (``delta.stop_reason``,
  cumulative ``usage.output_tokens``); ``message_stop``. ``ping`` any time; ``error``
  (``error.type``, ``error.message``) in place of the rest. Event types the API adds later are
  ignored, as its versioning policy asks.
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
    "API_VERSION",
    "EMPTY_TURN",
    "MessageStream",
    "StreamUpdate",
    "messages_request",
    "to_anthropic_messages",
    "to_anthropic_tools",
    "tool_choice_json",
]

API_VERSION = "2023-06-01"
"""The ``anthropic-version`` header this plugin speaks."""

EMPTY_TURN = "..."
"""The text of a user turn put first when the history starts with the assistant (the API wants
a user turn first) or holds no message at all (it wants at least one)."""


def to_anthropic_messages(
    chat_ctx: ChatContext, *, with_tools: bool = True
) -> tuple[str, list[dict[str, Any]]]:
    """``(system, messages)``: the chat as the Messages API takes it, valid for it.

    The order is :func:`tvoice.llm.to_openai_messages`'s (each tool call followed at once by
    its output, calls still running left out), then regrouped: instructions become ``system``,
    the calls of an assistant turn ``tool_use`` blocks, their outputs ``tool_result`` blocks
    at the head of the next user turn, consecutive turns of one role merged, empty texts left
    out. ``with_tools=False`` (a request offering no tools, which the API refuses with tool
    blocks in it) writes calls and outputs as text instead.
    """
    outputs = {i.call_id: i for i in chat_ctx.items if isinstance(i, FunctionCallOutput)}
    names = {i.call_id: i.name for i in chat_ctx.items if isinstance(i, FunctionCall)}
    system: list[str] = []
    turns: list[dict[str, Any]] = []

    def add(role: str, blocks: list[dict[str, Any]]) -> None:
        if not blocks:
            return
        if turns and turns[-1]["role"] == role:
            turns[-1]["content"] += blocks
        else:
            turns.append({"role": role, "content": blocks})

    for message in to_openai_messages(chat_ctx):
        role = message["role"]
        if role == "system":
            if message["content"]:
                system.append(message["content"])
        elif role == "tool":
            output = outputs[message["tool_call_id"]]
            add("user", [_tool_result(output, names.get(output.call_id, ""), with_tools)])
        elif role == "assistant":
            text = (message.get("content") or "").rstrip()
            blocks = [_text(text)] if text else []
            blocks += [_tool_use(call, with_tools) for call in message.get("tool_calls", ())]
            add("assistant", blocks)
        else:
            text = message["content"]
            add("user", [_text(text)] if text.strip() else [])
    for turn in turns:
        if turn["role"] == "user":
            # Tool results first in their turn: the API refuses text before them.
            turn["content"].sort(key=lambda block: block["type"] != "tool_result")
    if not turns or turns[0]["role"] != "user":
        turns.insert(0, {"role": "user", "content": [_text(EMPTY_TURN)]})
    return "\n\n".join(system), turns


def _text(text: str) -> dict[str, Any]:
    return {"type": "text", "text": text}


def _tool_use(call: Mapping[str, Any], with_tools: bool) -> dict[str, Any]:
    name, arguments = call["function"]["name"], call["function"]["arguments"]
    if not with_tools:
        return _text(f"[called {name} with {arguments}]")
    try:
        args = json.loads(arguments)
    except ValueError:
        args = None
    # ``input`` must be an object; a call whose arguments were not one failed anyway, and its
    # error output follows it.
    return {
        "type": "tool_use",
        "id": call["id"],
        "name": name,
        "input": args if isinstance(args, dict) else {},
    }


def _tool_result(output: FunctionCallOutput, name: str, with_tools: bool) -> dict[str, Any]:
    if not with_tools:
        verb = "failed" if output.is_error else "returned"
        return _text(f"[{output.name or name or 'the tool'} {verb}: {output.output}]")
    block: dict[str, Any] = {
        "type": "tool_result",
        "tool_use_id": output.call_id,
        "content": output.output,
    }
    if output.is_error:
        block["is_error"] = True
    return block


def to_anthropic_tools(tools: Sequence[Tool]) -> list[dict[str, Any]]:
    """The tools as ``{"name", "description", "input_schema"}``."""
    result = []
    for tool in tools:
        schema = tool.schema
        result.append(
            {
                "name": schema["name"],
                "description": schema.get("description") or "",
                "input_schema": schema.get("parameters") or {"type": "object", "properties": {}},
            }
        )
    return result


def tool_choice_json(choice: ToolChoice) -> dict[str, Any]:
    """``tool_choice`` as the API takes it: ``required`` is ``any``, a name is ``tool``."""
    if choice == "auto":
        return {"type": "auto"}
    if choice == "required":
        return {"type": "any"}
    if choice == "none":
        return {"type": "none"}
    return {"type": "tool", "name": choice}


def messages_request(
    *,
    model: str,
    chat_ctx: ChatContext,
    tools: Sequence[Tool],
    tool_choice: ToolChoice,
    max_tokens: int,
    options: Mapping[str, Any],
    parallel_tool_calls: bool | None = None,
    caching: bool = False,
    extra: Mapping[str, Any] | None,
) -> dict[str, Any]:
    """The JSON body of a streamed message; ``options`` are sent when not None, ``extra``
    fields as they are, last.

    ``parallel_tool_calls=False``: at most one tool call per reply
    (``disable_parallel_tool_use``). ``caching``: the system prompt, the tools and the
    conversation so far are marked ``cache_control: ephemeral``, so that the next request
    reads them from the prompt cache (three of the four breakpoints a request may have).
    """
    system, messages = to_anthropic_messages(chat_ctx, with_tools=bool(tools))
    body: dict[str, Any] = {"model": model, "max_tokens": max_tokens, "messages": messages}
    if system:
        body["system"] = [{"type": "text", "text": system, **_CACHED}] if caching else system
    body["stream"] = True
    for name, value in options.items():
        if value is not None:
            body[name] = value
    if tools:
        body["tools"] = to_anthropic_tools(tools)
        choice = tool_choice_json(tool_choice)
        if parallel_tool_calls is False and choice["type"] != "none":
            choice["disable_parallel_tool_use"] = True
        body["tool_choice"] = choice
        if caching:
            body["tools"][-1].update(_CACHED)
    if caching:
        messages[-1]["content"][-1].update(_CACHED)
    if extra:
        body.update(extra)
    return body


_CACHED = {"cache_control": {"type": "ephemeral"}}


@attrs.frozen(kw_only=True)
class StreamUpdate:
    """What one event brought: text, a complete tool call, the final usage, an error."""

    text: str = ""
    tool_call: FunctionCall | None = None
    usage: CompletionUsage | None = None
    error: Any = None


@attrs.define
class _Block:
    kind: str
    call_id: str = ""
    name: str = ""
    input: Any = None
    json: list[str] = attrs.field(factory=list)


_INPUT_COUNTS = ("input_tokens", "cache_creation_input_tokens", "cache_read_input_tokens")
"""The prompt's tokens: those read anew, those written to the cache, those read from it."""


def _int(value: Any, what: str) -> int:
    if not isinstance(value, int) or isinstance(value, bool):
        raise ValueError(f"{what} is not a token count")
    return value


class MessageStream:
    """Reads one streamed message, event by event; ``push`` raises ValueError for an event that
    is not what the API documents. ``stopped``: ``message_stop`` was read."""

    def __init__(self) -> None:
        self._blocks: dict[int, _Block] = {}
        self._counts: dict[str, int] = {}
        self.started = False
        self.stopped = False
        self.stop_reason: str | None = None

    def push(self, data: str) -> StreamUpdate | None:
        """Parse the ``data`` of one event; what it brought, if anything."""
        try:
            event = json.loads(data)
        except ValueError as e:
            raise ValueError(f"not JSON ({e})") from None
        if not isinstance(event, dict) or not isinstance(event.get("type"), str):
            raise ValueError("not an event object with a 'type'")
        kind = event["type"]
        if self.stopped or kind == "ping":
            return None  # the message is whole: nothing after message_stop changes it
        if kind == "error":
            return StreamUpdate(error=event.get("error") or {})
        if kind == "message_start":
            self._start(event)
            return None
        if not self.started:
            raise ValueError(f"{kind} before message_start")
        if kind == "content_block_start":
            return self._block_start(event)
        if kind == "content_block_delta":
            return self._block_delta(event)
        if kind == "content_block_stop":
            return self._block_stop(event)
        if kind == "message_delta":
            self._message_delta(event)
        elif kind == "message_stop":
            self.stopped = True
            return StreamUpdate(usage=self.usage)
        return None

    @property
    def usage(self) -> CompletionUsage:
        """The tokens so far: the prompt's (cache writes and reads included) and the reply's."""
        prompt = sum(self._counts.get(name, 0) for name in _INPUT_COUNTS)
        completion = self._counts.get("output_tokens", 0)
        return CompletionUsage(
            prompt_tokens=prompt, completion_tokens=completion, total_tokens=prompt + completion
        )

    def _start(self, event: dict[str, Any]) -> None:
        message = event.get("message")
        if not isinstance(message, dict):
            raise ValueError("message_start without a 'message' object")
        self.started = True
        self._read_usage(message.get("usage"))

    def _read_usage(self, usage: Any) -> None:
        if usage is None:
            return
        if not isinstance(usage, dict):
            raise ValueError("'usage' is not an object")
        # Counts are cumulative; a later event may repeat some of them (message_delta does).
        for name in (*_INPUT_COUNTS, "output_tokens"):
            if usage.get(name) is not None:
                self._counts[name] = _int(usage[name], name)

    def _index(self, event: dict[str, Any], *, known: bool) -> int:
        index = event.get("index")
        if not isinstance(index, int) or isinstance(index, bool):
            raise ValueError(f"{event['type']} without an integer 'index'")
        if known and index not in self._blocks:
            raise ValueError(f"{event['type']} for block {index}, which never started")
        return index

    def _block_start(self, event: dict[str, Any]) -> StreamUpdate | None:
        index = self._index(event, known=False)
        block = event.get("content_block")
        if not isinstance(block, dict) or not isinstance(block.get("type"), str):
            raise ValueError("content_block_start without a 'content_block'")
        kind = block["type"]
        if kind == "tool_use":
            call_id, name = block.get("id"), block.get("name")
            if not isinstance(call_id, str) or not call_id:
                raise ValueError("a tool_use block without an 'id'")
            if not isinstance(name, str) or not name:
                raise ValueError("a tool_use block without a 'name'")
            self._blocks[index] = _Block(kind, call_id, name, block.get("input"))
            return None
        self._blocks[index] = _Block(kind)
        text = block.get("text") if kind == "text" else None
        return StreamUpdate(text=text) if isinstance(text, str) and text else None

    def _block_delta(self, event: dict[str, Any]) -> StreamUpdate | None:
        block = self._blocks[self._index(event, known=True)]
        delta = event.get("delta")
        if not isinstance(delta, dict):
            raise ValueError("content_block_delta without a 'delta' object")
        kind = delta.get("type")
        if kind == "text_delta":
            text = delta.get("text")
            if not isinstance(text, str) or block.kind != "text":
                raise ValueError("a text_delta that is not text in a text block")
            return StreamUpdate(text=text) if text else None
        if kind == "input_json_delta":
            piece = delta.get("partial_json")
            if not isinstance(piece, str) or block.kind != "tool_use":
                raise ValueError("an input_json_delta that is not text in a tool_use block")
            block.json.append(piece)
        # Thinking, signature and citation deltas: nothing to say or call.
        return None

    def _block_stop(self, event: dict[str, Any]) -> StreamUpdate | None:
        block = self._blocks[self._index(event, known=True)]
        if block.kind != "tool_use":
            return None
        arguments = "".join(block.json)
        if not arguments.strip():
            # No deltas (a tool without parameters): the input given at the start, or none.
            arguments = json.dumps(block.input) if isinstance(block.input, dict) else "{}"
        call = FunctionCall(call_id=block.call_id, name=block.name, arguments=arguments)
        return StreamUpdate(tool_call=call)

    def _message_delta(self, event: dict[str, Any]) -> None:
        delta = event.get("delta")
        if not isinstance(delta, dict):
            raise ValueError("message_delta without a 'delta' object")
        reason = delta.get("stop_reason")
        if reason is not None:
            if not isinstance(reason, str):
                raise ValueError("'stop_reason' is not a string")
            self.stop_reason = reason
        self._read_usage(event.get("usage"))
