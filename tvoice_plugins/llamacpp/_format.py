"""The chat as a ChatML prompt, tool instructions, and parsing tool calls out of the reply.

SmolLM2 speaks ChatML. Tools are described in the system message and called with
``<tool_call>{"name": ..., "arguments": {...}}</tool_call>``; when a call is required, a
JSON-schema grammar makes the model produce exactly that object.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any

from tvoice.llm import ChatContext, FunctionCall, Tool, ToolChoice, to_openai_messages

__all__ = ["TOOL_CLOSE", "TOOL_OPEN", "call_schema", "parse_calls", "render_prompt"]

TOOL_OPEN = "<tool_call>"
TOOL_CLOSE = "</tool_call>"


def _tools_text(tools: Sequence[Tool]) -> str:
    lines = [
        "You can call these tools. To call one, reply with only "
        f'{TOOL_OPEN}{{"name": "<tool name>", "arguments": {{...}}}}{TOOL_CLOSE}',
    ]
    for tool in tools:
        lines.append(json.dumps(tool.schema))
    return "\n".join(lines)


def render_prompt(chat_ctx: ChatContext, tools: Sequence[Tool], tool_choice: ToolChoice) -> str:
    """The whole prompt, ending where the assistant's reply starts."""
    messages = to_openai_messages(chat_ctx)
    system = [m["content"] for m in messages if m["role"] == "system" and m.get("content")]
    if tools and tool_choice != "none":
        system.append(_tools_text(tools))
    parts = []
    if system:
        parts.append(_turn("system", "\n\n".join(system)))
    for m in messages:
        role = m["role"]
        if role == "system":
            continue
        if role == "tool":
            parts.append(_turn("user", f"Tool {m.get('name', '')} returned: {m['content']}"))
        elif role == "assistant" and m.get("tool_calls"):
            calls = "".join(
                f'{TOOL_OPEN}{{"name": {json.dumps(c["function"]["name"])}, '
                f'"arguments": {c["function"]["arguments"] or "{}"}}}{TOOL_CLOSE}'
                for c in m["tool_calls"]
            )
            parts.append(_turn("assistant", (m.get("content") or "") + calls))
        else:
            parts.append(_turn(role, m.get("content") or ""))
    parts.append("<|im_start|>assistant\n")
    return "".join(parts)


def _turn(role: str, content: str) -> str:
    return f"<|im_start|>{role}\n{content}<|im_end|>\n"


def call_schema(tools: Sequence[Tool], tool_choice: ToolChoice) -> dict[str, Any]:
    """JSON schema of one call to any of ``tools`` (or to the one named by tool_choice)."""
    chosen = [t for t in tools if tool_choice in ("required", "auto") or t.name == tool_choice]
    options = [
        {
            "type": "object",
            "properties": {
                "name": {"const": t.name},
                "arguments": t.schema["parameters"],
            },
            "required": ["name", "arguments"],
        }
        for t in chosen
    ]
    return options[0] if len(options) == 1 else {"anyOf": options}


def parse_calls(text: str, *, call_id_prefix: str) -> tuple[str, list[FunctionCall]]:
    """Split a reply into its text and its ``<tool_call>`` calls (or a bare JSON call)."""
    calls: list[FunctionCall] = []
    rest: list[str] = []
    remaining = text
    while TOOL_OPEN in remaining:
        before, _, after = remaining.partition(TOOL_OPEN)
        rest.append(before)
        body, _, remaining = after.partition(TOOL_CLOSE)
        calls.append(_call(body, f"{call_id_prefix}_{len(calls)}"))
    rest.append(remaining)
    text_out = "".join(rest)
    if not calls and text_out.strip().startswith("{"):
        try:
            data = json.loads(text_out)
        except json.JSONDecodeError:
            return text_out, calls
        if isinstance(data, dict) and "name" in data:
            return "", [_call(text_out, f"{call_id_prefix}_0")]
    return text_out, calls


def _call(body: str, call_id: str) -> FunctionCall:
    try:
        data = json.loads(body)
    except json.JSONDecodeError:
        # The runtime answers an unusable call with an error output the model can read.
        return FunctionCall(call_id=call_id, name="invalid_tool_call", arguments=body.strip())
    if not isinstance(data, dict):
        return FunctionCall(call_id=call_id, name="invalid_tool_call", arguments=body.strip())
    name = str(data.get("name", ""))
    arguments = data.get("arguments", {})
    return FunctionCall(
        call_id=call_id,
        name=name,
        arguments=arguments if isinstance(arguments, str) else json.dumps(arguments),
    )
