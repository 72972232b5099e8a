"""Chat contexts and tools in the OpenAI chat-completions wire format.

Most providers and local servers (llama.cpp, vLLM, Ollama) speak this format, so plugins share
one translation instead of each walking the chat items their own way.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from ._chat_context import AgentHandoff, ChatContext, FunctionCall, FunctionCallOutput
from ._tools import FunctionTool, RawFunctionTool

__all__ = ["to_openai_messages", "to_openai_tools"]


def _tool_call(call: FunctionCall) -> dict[str, Any]:
    return {
        "id": call.call_id,
        "type": "function",
        # Some servers (llama.cpp among them) reject an empty string as arguments JSON.
        "function": {"name": call.name, "arguments": call.arguments or "{}"},
    }


def to_openai_messages(chat_ctx: ChatContext) -> list[dict[str, Any]]:
    """The chat items as OpenAI chat-completions ``messages``.

    - A message keeps its role, except ``developer``, which is sent as ``system``: many
      OpenAI-compatible servers and older models reject the newer role. Its text parts are
      joined with newlines.
    - Consecutive function calls become one assistant message with ``tool_calls``; when an
      assistant text message comes directly before them, they join that message, as the model
      wrote them in one turn.
    - A function call output becomes a ``tool`` message answering its ``call_id``.
    - Agent handoffs are bookkeeping for the runtime and are left out.
    """
    messages: list[dict[str, Any]] = []
    # The assistant message that the next function call may join, if any.
    open_assistant: dict[str, Any] | None = None
    for item in chat_ctx.items:
        if isinstance(item, AgentHandoff):
            continue
        if isinstance(item, FunctionCall):
            if open_assistant is None:
                open_assistant = {"role": "assistant"}
                messages.append(open_assistant)
            open_assistant.setdefault("tool_calls", []).append(_tool_call(item))
            continue
        open_assistant = None
        if isinstance(item, FunctionCallOutput):
            messages.append({"role": "tool", "tool_call_id": item.call_id, "content": item.output})
        else:
            role = "system" if item.role == "developer" else item.role
            message = {"role": role, "content": item.text_content or ""}
            messages.append(message)
            if role == "assistant":
                open_assistant = message
    return messages


def to_openai_tools(tools: Iterable[FunctionTool | RawFunctionTool]) -> list[dict[str, Any]]:
    """The tools as OpenAI ``tools``: ``[{"type": "function", "function": tool.schema}]``."""
    return [{"type": "function", "function": tool.schema} for tool in tools]
