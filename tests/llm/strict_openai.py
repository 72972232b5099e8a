"""What a strict OpenAI-style provider checks in ``messages`` before it answers (it answers 400
otherwise): the rules tvoice's provider format must always satisfy."""

import json
from typing import Any

ROLES = {"system", "developer", "user", "assistant", "tool"}


def message_errors(messages: Any) -> list[str]:
    """Every rule ``messages`` breaks, in OpenAI's words where they are known; [] if valid."""
    if not isinstance(messages, list) or not messages:
        return ["'messages' must be a non-empty array"]
    errors: list[str] = []
    # The tool calls still waiting for their outputs, from the last assistant message.
    pending: list[str] = []
    for i, message in enumerate(messages):
        role = message.get("role") if isinstance(message, dict) else None
        if role not in ROLES:
            errors.append(f"messages[{i}]: unknown role {role!r}")
            continue
        if role == "tool":
            call_id = message.get("tool_call_id")
            if call_id not in pending:
                errors.append(
                    f"messages[{i}]: messages with role 'tool' must be a response to a "
                    f"preceding message with 'tool_calls' (tool_call_id {call_id!r})"
                )
            else:
                pending.remove(call_id)
            if not isinstance(message.get("content"), str):
                errors.append(f"messages[{i}]: a tool message needs string content")
            continue
        if pending:
            errors.append(
                f"messages[{i}]: an assistant message with 'tool_calls' must be followed by tool "
                "messages responding to each 'tool_call_id'. The following tool_call_ids did "
                f"not have response messages: {', '.join(pending)}"
            )
            pending = []
        if role != "assistant":
            if not isinstance(message.get("content"), str):
                errors.append(f"messages[{i}]: {role} content must be a string")
            continue
        calls = message.get("tool_calls")
        if calls is None:
            if not isinstance(message.get("content"), str):
                errors.append(f"messages[{i}]: an assistant message needs content or tool_calls")
            continue
        if not isinstance(calls, list) or not calls:
            errors.append(f"messages[{i}]: 'tool_calls' must be a non-empty array")
            continue
        for call in calls:
            errors += _call_errors(i, call)
            if isinstance(call, dict) and isinstance(call.get("id"), str):
                if call["id"] in pending:
                    errors.append(f"messages[{i}]: duplicate tool call id {call['id']!r}")
                pending.append(call["id"])
    if pending:
        errors.append(
            "the last assistant message with 'tool_calls' has no tool messages for: "
            + ", ".join(pending)
        )
    return errors


def _call_errors(i: int, call: Any) -> list[str]:
    if not isinstance(call, dict) or call.get("type") != "function":
        return [f"messages[{i}]: a tool call must be {{'type': 'function', ...}}"]
    errors = []
    if not isinstance(call.get("id"), str) or not call["id"]:
        errors.append(f"messages[{i}]: a tool call needs an 'id'")
    function = call.get("function")
    if not isinstance(function, dict) or not isinstance(function.get("name"), str):
        return [*errors, f"messages[{i}]: a tool call needs function.name"]
    arguments = function.get("arguments")
    try:
        json.loads(arguments)
    except (TypeError, ValueError):
        errors.append(f"messages[{i}]: function.arguments must be JSON text, got {arguments!r}")
    return errors
