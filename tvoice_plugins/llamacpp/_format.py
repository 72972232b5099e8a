"""The chat as a ChatML prompt, tool instructions, and the tool calls parsed out of a reply.

SmolLM2 speaks ChatML. Tools are described in the system message and called with
``<tool_call>{"name": ..., "arguments": {...}}</tool_call>``; when a call is required, a
JSON-schema grammar makes the model write exactly one such object, without the tags.

The prompt is a list of :data:`Segment`: ChatML markup, whose special tokens
(``<|im_start|>``) count as such, and text from the chat, which is tokenized as plain text, so a
user who types ``<|im_end|>`` cannot forge a turn.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from typing import Any, TypeAlias

import attrs

from tvoice.llm import (
    ChatContext,
    FunctionCall,
    FunctionCallOutput,
    Tool,
    ToolChoice,
    to_openai_messages,
)

__all__ = [
    "INVALID_CALL",
    "TOOL_CLOSE",
    "TOOL_OPEN",
    "Segment",
    "WrittenCall",
    "call_opening",
    "call_schema",
    "call_text",
    "chat_turn",
    "parse_call",
    "parse_calls",
    "prompt_segments",
    "render_prompt",
    "speakable",
]

TOOL_OPEN = "<tool_call>"
TOOL_CLOSE = "</tool_call>"
INVALID_CALL = "invalid_tool_call"
"""Name of the call made of a ``<tool_call>`` the model botched; the runtime answers it with an
"Unknown function" error output, which the model reads on its next step."""

Segment: TypeAlias = tuple[str, bool]
"""A piece of the prompt, and whether it is ChatML markup (else text from the chat)."""


def render_prompt(chat_ctx: ChatContext, tools: Sequence[Tool], tool_choice: ToolChoice) -> str:
    """The whole prompt as text, ending where the assistant's reply starts."""
    return "".join(text for text, _ in prompt_segments(chat_ctx, tools, tool_choice))


def prompt_segments(
    chat_ctx: ChatContext,
    tools: Sequence[Tool],
    tool_choice: ToolChoice,
    written: Mapping[str, WrittenCall] | None = None,
) -> list[Segment]:
    """The prompt as segments; ``tools`` are described unless ``tool_choice`` is "none".

    ``written``: calls this model wrote under a schema, by call id. An assistant turn made of
    one such call is shown as the model wrote it (bare JSON, its own spacing) rather than in
    ``<tool_call>`` tags: the server then finds the turn in the cache of the step that wrote
    it and evaluates only what follows (about 30 tokens fewer for a reply to a tool's output).

    The system messages that open the chat make the first turn, with the tool instructions;
    a system message further on (``generate_reply(instructions=...)``) stays where it is, next
    to the reply it is about. The outputs of a step's calls make one system turn that tells the
    model to answer with them: shown as a user turn, they made SmolLM2 call the same tool again
    in most replies, and as a system turn it answers in nearly all.
    """
    messages = to_openai_messages(chat_ctx)
    outputs = {i.call_id: i for i in chat_ctx.items if isinstance(i, FunctionCallOutput)}
    opening = 0
    while opening < len(messages) and messages[opening]["role"] == "system":
        opening += 1
    system = [m["content"] for m in messages[:opening] if m["content"]]
    if tools and tool_choice != "none":
        system.append(_tools_text(tools))
    segments: list[Segment] = []
    if system:
        segments += chat_turn("system", "\n\n".join(system))
    results: list[tuple[FunctionCallOutput | None, str]] = []
    for m in messages[opening:]:
        if m["role"] == "tool":
            results.append((outputs.get(m["tool_call_id"]), m["content"]))
            continue
        if results:
            segments += _results_turn(results)
            results = []
        if m["role"] == "assistant" and m.get("tool_calls"):
            as_written = _as_written(m, written or {})
            if as_written is not None:
                segments += chat_turn("assistant", *_written_pieces(as_written))
            else:
                calls = "".join(_call_text(c["function"]) for c in m["tool_calls"])
                segments += chat_turn("assistant", (m.get("content") or "") + calls)
        else:
            segments += chat_turn(m["role"], m.get("content") or "")
    if results:
        segments += _results_turn(results)
    segments.append(("<|im_start|>assistant\n", True))
    return segments


@attrs.frozen
class WrittenCall:
    """A call as the model wrote it under a schema: its name, its arguments, and the text."""

    name: str
    arguments: str
    text: str
    prompted: str = ""
    """The start of ``text`` that was in the prompt (a :func:`call_opening`), not generated."""


def _as_written(message: dict[str, Any], written: Mapping[str, WrittenCall]) -> WrittenCall | None:
    """The call this model wrote that an assistant turn is made of, if it is that call."""
    (call, *more) = message["tool_calls"]
    known = written.get(call["id"])
    function = call["function"]
    if more or message.get("content") or known is None:
        return None
    if (known.name, known.arguments) != (function["name"], function["arguments"]):
        return None  # the history was changed since
    return known


def _written_pieces(call: WrittenCall) -> list[str]:
    """The text of a call as the step that wrote it saw it: what was in its prompt apart from
    what the model generated, so each is tokenized as it was then and the tokens match the
    server's cache of that step."""
    cut = len(call.prompted)
    return [call.text[:cut], call.text[cut:]] if cut else [call.text]


def chat_turn(role: str, *content: str) -> list[Segment]:
    """One ChatML turn: its markers are special tokens, its content is plain text."""
    return [(f"<|im_start|>{role}\n", True), *((c, False) for c in content), ("<|im_end|>\n", True)]


def _tools_text(tools: Sequence[Tool]) -> str:
    lines = [
        "You can call these tools. To call one, reply with only "
        f'{TOOL_OPEN}{{"name": "<tool name>", "arguments": {{...}}}}{TOOL_CLOSE}',
    ]
    lines += [json.dumps(tool.schema) for tool in tools]
    return "\n".join(lines)


def _call_text(function: dict[str, Any]) -> str:
    arguments = function["arguments"] or "{}"
    try:
        json.loads(arguments)
    except json.JSONDecodeError:
        # A botched call stays in the history as the text it was, quoted, so the prompt never
        # shows the model a malformed call as an example to follow.
        arguments = json.dumps(arguments)
    return f"{TOOL_OPEN}{call_text(function['name'], arguments)}{TOOL_CLOSE}"


def _results_turn(results: Sequence[tuple[FunctionCallOutput | None, str]]) -> list[Segment]:
    lines: list[str] = []
    failed = 0
    for output, text in results:
        name = output.name if output is not None and output.name else "the tool"
        is_error = output is not None and output.is_error
        failed += is_error
        lines.append(f"{name} {'failed' if is_error else 'returned'}: {text}")
    # Results alone need no instruction: SmolLM2 said the same replies to 12 weather
    # questions without "Answer the user's question with this result." after them, and those
    # ten tokens took 60-70 ms to read on two cores before every reply to a tool. A failure
    # still needs one, or the model explains the error instead of telling the user.
    if failed == len(results):
        lines.append("Tell the user what went wrong.")
    elif failed:
        lines.append("Answer the user's question with these results, and say what went wrong.")
    return chat_turn("system", "\n".join(lines))


def call_opening(name: str) -> str:
    """A call to ``name`` up to its arguments. When the tool is known before the call is
    written, this goes at the end of the prompt and the model writes only the arguments: a
    grammar forces every token it allows one way, but the model still generates them one by
    one, about a dozen decode steps for these."""
    return f'{{"name": {json.dumps(name)}, "arguments": '


def call_text(name: str, arguments: str) -> str:
    """A call as JSON text, ``arguments`` being the arguments' JSON text."""
    return f"{call_opening(name)}{arguments}}}"


def call_schema(tools: Sequence[Tool], tool_choice: ToolChoice) -> dict[str, Any]:
    """JSON schema of one call to one of the tools that ``tool_choice`` allows.

    Raises ``ValueError`` when it allows none (a name that is not among ``tools``).
    """
    chosen = [t for t in tools if tool_choice in ("auto", "required") or t.name == tool_choice]
    if not chosen:
        raise ValueError(f"tool_choice={tool_choice!r} allows none of {[t.name for t in tools]}")
    options = [
        {
            "type": "object",
            "properties": {
                "name": {"const": t.name},
                "arguments": t.schema["parameters"],
            },
            "required": ["name", "arguments"],
            "additionalProperties": False,
        }
        for t in chosen
    ]
    return options[0] if len(options) == 1 else {"anyOf": options}


def parse_calls(text: str, *, call_id_prefix: str) -> tuple[str, list[FunctionCall]]:
    """Split a reply into its text and the calls it makes.

    Calls are ``<tool_call>`` blocks (a block may hold a list of calls, as SmolLM2 was trained
    to write; an unclosed block runs to the end of the reply), or, in a reply without blocks, a
    bare JSON call the reply starts with. Call ids are ``{call_id_prefix}_{n}``.
    """
    bodies: list[str] = []
    kept: list[str] = []
    remaining = text
    while TOOL_OPEN in remaining:
        before, _, after = remaining.partition(TOOL_OPEN)
        body, _, remaining = after.partition(TOOL_CLOSE)
        kept.append(before)
        bodies.append(body)
    kept.append(remaining)
    if not bodies:
        bare, rest = _leading_json_call(text)
        if bare is None:
            return text, []
        bodies, kept = [bare], [rest]
    calls: list[FunctionCall] = []
    for body in bodies:
        for one in _each_call(body):
            calls.append(parse_call(one, f"{call_id_prefix}_{len(calls)}"))
    return "".join(kept), calls


def _leading_json_call(text: str) -> tuple[str | None, str]:
    """A JSON call at the start of ``text`` (its text and what follows), or (None, text)."""
    start = len(text) - len(text.lstrip())
    if not text.startswith("{", start):
        return None, text
    try:
        data, end = json.JSONDecoder().raw_decode(text, start)
    except json.JSONDecodeError:
        return None, text
    if not (isinstance(data, dict) and isinstance(data.get("name"), str)):
        return None, text
    return text[start:end], text[end:]


def _each_call(body: str) -> list[str]:
    """The calls in one block: the block itself, or each item of a JSON list."""
    try:
        data = json.loads(body)
    except json.JSONDecodeError:
        return [body]
    if isinstance(data, list) and data:
        return [json.dumps(item) for item in data]
    return [body]


def parse_call(body: str, call_id: str) -> FunctionCall:
    """One call from its JSON text: ``{"name": ..., "arguments": {...}}``.

    ``parameters`` is taken for ``arguments``, as small models often write it. Anything else
    becomes a call to :data:`INVALID_CALL` whose arguments are the raw text.
    """
    try:
        data = json.loads(body)
    except json.JSONDecodeError:
        data = None
    if not (isinstance(data, dict) and isinstance(data.get("name"), str) and data["name"]):
        return FunctionCall(call_id=call_id, name=INVALID_CALL, arguments=body.strip())
    arguments = data.get("arguments", data.get("parameters", {}))
    return FunctionCall(
        call_id=call_id,
        name=data["name"],
        arguments=arguments if isinstance(arguments, str) else json.dumps(arguments),
    )


def speakable(text: str) -> int:
    """How much of a reply so far can be spoken while tools are offered.

    Text streams as it comes, up to a ``<tool_call>`` (or what may be the start of one); a
    reply that starts like JSON may be a bare call, and is held until it is complete.
    """
    stripped = text.lstrip()
    if not stripped or stripped.startswith("{"):
        return 0
    cut = text.find(TOOL_OPEN)
    if cut >= 0:
        return cut
    for k in range(min(len(TOOL_OPEN) - 1, len(text)), 0, -1):
        if TOOL_OPEN.startswith(text[-k:]):
            return len(text) - k
    return len(text)
