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
    """The chat items as OpenAI chat-completions ``messages``, valid for strict providers.

    - A message keeps its role, except ``developer``, which is sent as ``system``: many
      OpenAI-compatible servers and older models reject the newer role. Its text parts are
      joined with newlines.
    - Consecutive function calls become one assistant message with ``tool_calls``; when an
      assistant text message comes directly before them, they join that message, as the model
      wrote them in one turn.
    - Every assistant message with ``tool_calls`` is followed at once by a ``tool`` message
      for each of its calls, in the calls' order, whatever the order the items were recorded
      in: a tool that outlived its interrupted speech has its output recorded after later
      messages, and strict providers (OpenAI among them) refuse anything between a call and
      its output.
    - A call whose output does not exist yet (its tool is still running) is left out, and so
      is its assistant message when nothing else is in it: the model sees the call and its
      result together once the tool has finished. An output whose call is not in the chat
      (trimmed away) is left out too; so is a second output for the same call.
    - Agent handoffs are bookkeeping for the runtime and are left out.
    """
    outputs: dict[str, FunctionCallOutput] = {}
    for item in chat_ctx.items:
        if isinstance(item, FunctionCallOutput):
            outputs.setdefault(item.call_id, item)
    messages: list[dict[str, Any]] = []
    # The assistant message that the next function call may join, if any, and the outputs
    # of the calls it holds: they follow it as soon as it is complete.
    open_assistant: dict[str, Any] | None = None
    answers: list[FunctionCallOutput] = []
    sent: set[str] = set()
    for item in chat_ctx.items:
        if isinstance(item, AgentHandoff):
            continue
        if isinstance(item, FunctionCall):
            output = outputs.get(item.call_id)
            if output is None or item.call_id in sent:
                continue
            sent.add(item.call_id)
            if open_assistant is None:
                open_assistant = {"role": "assistant"}
                messages.append(open_assistant)
            open_assistant.setdefault("tool_calls", []).append(_tool_call(item))
            answers.append(output)
            continue
        # Anything else ends the group of calls: their outputs follow it now.
        messages += [_tool_message(output) for output in answers]
        answers = []
        if isinstance(item, FunctionCallOutput):
            open_assistant = None  # already sent, right after its call
            continue
        role = "system" if item.role == "developer" else item.role
        message = {"role": role, "content": item.text_content or ""}
        messages.append(message)
        open_assistant = message if role == "assistant" else None
    messages += [_tool_message(output) for output in answers]
    return messages


def _tool_message(output: FunctionCallOutput) -> dict[str, Any]:
    return {"role": "tool", "tool_call_id": output.call_id, "content": output.output}


def to_openai_tools(tools: Iterable[FunctionTool | RawFunctionTool]) -> list[dict[str, Any]]:
    """The tools as OpenAI ``tools``: ``[{"type": "function", "function": tool.schema}]``."""
    return [{"type": "function", "function": tool.schema} for tool in tools]
