"""Running tool calls: each one's validation, the call, and what its result means for the
reply; and the runner that keeps the calls of one agent in its activity's nursery."""

from __future__ import annotations

import json
import logging
from collections.abc import Callable, Sequence
from typing import Any, Protocol

import attrs
import trio

from ..llm import ChatItem, FunctionCall, FunctionCallOutput, StopResponse, Tool, ToolError
from ._agent import Agent, SessionView
from ._run_context import RunContext
from ._speech_handle import SpeechHandle

__all__ = [
    "INTERNAL_ERROR",
    "TOOL_CANCELLED",
    "ToolExecution",
    "ToolHost",
    "ToolRunner",
    "run_tool",
]

logger = logging.getLogger("tvoice.voice")

INTERNAL_ERROR = "An internal error occurred while running the tool."
TOOL_CANCELLED = "The tool was cancelled: the conversation moved on before it finished."


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
    session: SessionView[Any],
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


class SessionRecord(Protocol):
    """Where the parts of a running agent record what happened (the session's runtime): the
    items of the history, and the errors."""

    def report_error(self, error: BaseException, source: Any) -> None: ...
    def add_item(
        self,
        item: ChatItem,
        *,
        agent: Agent,
        before: Callable[[ChatItem], bool] | None = None,
    ) -> None: ...


class ToolHost(SessionRecord, Protocol):
    """What running tools needs of the session (its runtime)."""

    @property
    def face(self) -> SessionView[Any]: ...


class ToolRunner:
    """Runs the tool calls of one agent in its activity's nursery, so that they outlive an
    interrupted speech; a call whose speech ended first records its own output."""

    def __init__(self, agent: Agent, host: ToolHost, on_change: Callable[[], None]) -> None:
        self._agent = agent
        self._host = host
        self._on_change = on_change
        self.nursery: trio.Nursery | None = None  # the activity's, once it runs
        self.running: set[ToolExecution] = set()

    def starter(
        self, handle: SpeechHandle, executions: list[ToolExecution]
    ) -> Callable[[FunctionCall], None]:
        """What starts each tool call of a step in the nursery, as the call arrives."""
        tools = {t.name: t for t in self._agent.tools}

        def start(call: FunctionCall) -> None:
            assert self.nursery is not None
            execution = ToolExecution(call=call)
            executions.append(execution)
            self.running.add(execution)
            self.nursery.start_soon(
                self._execute, execution, executions, tools.get(call.name), handle
            )
            self._on_change()

        return start

    async def _execute(
        self,
        execution: ToolExecution,
        step: Sequence[ToolExecution],
        tool: Tool | None,
        handle: SpeechHandle,
    ) -> None:
        try:
            await run_tool(
                execution,
                tool,
                session=self._host.face,
                on_error=self._host.report_error,
                speech_handle=handle,
            )
        finally:
            self.running.discard(execution)
            if execution.output is None:
                # Cancelled with its agent (a handoff, the session closing): every call keeps
                # its output, which LLM providers require.
                execution.output = FunctionCallOutput(
                    call_id=execution.call.call_id,
                    name=execution.call.name,
                    output=TOOL_CANCELLED,
                    is_error=True,
                )
            if execution.orphaned:
                # Its speech was interrupted: the result is still kept, exactly once.
                self._record_orphan(execution, step)
            self._on_change()

    def _record_orphan(self, execution: ToolExecution, step: Sequence[ToolExecution]) -> None:
        # Outputs of one step that end at one instant go in the order of its calls, not in the
        # order trio happens to run their tasks: each goes before those of later calls.
        output = execution.output
        assert output is not None
        later = {e.call.call_id for e in step[step.index(execution) + 1 :]}

        def of_a_later_call(item: ChatItem) -> bool:
            return (
                item.type == "function_call_output"
                and item.call_id in later
                and item.created_at == output.created_at
            )

        self._host.add_item(output, agent=self._agent, before=of_a_later_call)
