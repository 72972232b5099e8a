"""Running one tool call: validation, the call, and what its result means for the reply."""

from __future__ import annotations

import json
import logging
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import attrs
import trio

from ..llm import FunctionCall, FunctionCallOutput, StopResponse, Tool, ToolError
from ._agent import Agent
from ._run_context import RunContext

if TYPE_CHECKING:
    from ._session import AgentSession
    from ._speech_handle import SpeechHandle

__all__ = ["INTERNAL_ERROR", "ToolExecution", "run_tool"]

logger = logging.getLogger("tvoice.voice")

INTERNAL_ERROR = "An internal error occurred while running the tool."


@attrs.define(eq=False)
class ToolExecution:
    """One call and, once it ran, its output. ``orphaned``: its speech ended first, so the
    tool records its own output when it finishes (results are kept exactly once)."""

    call: FunctionCall
    output: FunctionCallOutput | None = None
    new_agent: Agent | None = None
    reply_required: bool = False
    stop_response: bool = False
    orphaned: bool = False
    done: trio.Event = attrs.field(factory=trio.Event)


def _format(value: Any) -> str:
    if isinstance(value, str):
        return value
    try:
        return json.dumps(value, default=str)
    except (TypeError, ValueError):
        return str(value)


async def run_tool(
    execution: ToolExecution,
    tool: Tool | None,
    *,
    session: AgentSession[Any],
    on_error: Callable[[BaseException, Any], None],
    speech_handle: SpeechHandle,
) -> None:
    """Run the call; never raises: every failure becomes an error output for the LLM."""
    call = execution.call

    def output(text: str, *, is_error: bool) -> None:
        execution.output = FunctionCallOutput(
            call_id=call.call_id, name=call.name, output=text, is_error=is_error
        )
        execution.reply_required = True

    try:
        if tool is None:
            output(f"Unknown function: {call.name!r}", is_error=True)
            return
        context = RunContext(session=session, speech_handle=speech_handle, function_call=call)
        try:
            result = await tool.call(call.arguments, context=context)
        except StopResponse:
            execution.stop_response = True
            output("", is_error=False)
            execution.reply_required = False
            return
        except ToolError as e:
            output(e.message, is_error=True)
            return
        except Exception as e:
            # The LLM sees a generic message: exception details may hold secrets.
            logger.exception("tool %s failed", call.name)
            on_error(e, tool)
            output(INTERNAL_ERROR, is_error=True)
            return
        if isinstance(result, tuple) and len(result) == 2 and isinstance(result[0], Agent):
            execution.new_agent = result[0]
            output(_format(result[1]), is_error=False)
        elif isinstance(result, Agent):
            execution.new_agent = result
            output("", is_error=False)
        elif result is None:
            output("", is_error=False)
            execution.reply_required = False
        else:
            output(_format(result), is_error=False)
    finally:
        execution.done.set()
