"""`RunResult`: what an agent did for one input, with assertions for tests."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any, Literal

import attrs

from ..llm import (
    LLM,
    AgentHandoff,
    ChatContext,
    ChatItem,
    ChatMessage,
    FunctionCall,
    FunctionCallOutput,
    function_tool,
)
from ._agent import Agent, SessionView
from ._events import ConversationItemAddedEvent

__all__ = [
    "AgentHandoffEvent",
    "ChatMessageEvent",
    "EventAssert",
    "FunctionCallEvent",
    "FunctionCallOutputEvent",
    "RunAssert",
    "RunEvent",
    "RunResult",
]


@attrs.frozen
class ChatMessageEvent:
    """The agent said something (or a message was added)."""

    item: ChatMessage
    type: Literal["message"] = "message"


@attrs.frozen
class FunctionCallEvent:
    """The LLM called a tool."""

    item: FunctionCall
    type: Literal["function_call"] = "function_call"


@attrs.frozen
class FunctionCallOutputEvent:
    """A tool returned."""

    item: FunctionCallOutput
    type: Literal["function_call_output"] = "function_call_output"


@attrs.frozen
class AgentHandoffEvent:
    """The conversation moved to another agent."""

    item: AgentHandoff
    new_agent: Agent | None
    type: Literal["agent_handoff"] = "agent_handoff"


RunEvent = ChatMessageEvent | FunctionCallEvent | FunctionCallOutputEvent | AgentHandoffEvent


class RunResult:
    """Everything the agent did in answer to one ``session.run(user_input=...)``."""

    def __init__(self, session: SessionView[Any], user_input: str) -> None:
        self._session = session
        self._user_input = user_input
        self.events: list[RunEvent] = []
        self._expect: RunAssert | None = None

    @asynccontextmanager
    async def recording(self) -> AsyncIterator[None]:
        """Record conversation items while the block runs."""
        skipped_input = False

        def on_item(event: ConversationItemAddedEvent) -> None:
            nonlocal skipped_input
            item = event.item
            if (
                not skipped_input
                and item.type == "message"
                and item.role == "user"
                and item.text_content == self._user_input
            ):
                skipped_input = True
                return
            self.events.append(_event(item, self._session))

        self._session.on("conversation_item_added", on_item)
        try:
            yield
        finally:
            self._session.off("conversation_item_added", on_item)

    @property
    def expect(self) -> RunAssert:
        """Assertions over :attr:`events`, in order: one cursor, so successive
        ``result.expect.next_event()`` calls walk through the events."""
        if self._expect is None:
            self._expect = RunAssert(self.events)
        return self._expect

    @property
    def final_output(self) -> str | None:
        """Text of the last assistant message."""
        for event in reversed(self.events):
            if isinstance(event, ChatMessageEvent) and event.item.role == "assistant":
                return event.item.text_content
        return None


def _event(item: ChatItem, session: SessionView[Any]) -> RunEvent:
    if item.type == "message":
        return ChatMessageEvent(item)
    if item.type == "function_call":
        return FunctionCallEvent(item)
    if item.type == "function_call_output":
        return FunctionCallOutputEvent(item)
    return AgentHandoffEvent(item, session.agent_by_id(item.new_agent_id))


def _describe(events: list[RunEvent]) -> str:
    lines = []
    for i, e in enumerate(events):
        item: Any = e.item
        if isinstance(e, ChatMessageEvent):
            detail = f"{item.role}: {item.text_content!r}"
        elif isinstance(e, FunctionCallEvent):
            detail = f"{item.name}({item.arguments})"
        elif isinstance(e, FunctionCallOutputEvent):
            detail = f"{item.name} -> {item.output!r} (error={item.is_error})"
        else:
            detail = f"-> {type(e.new_agent).__name__}"
        lines.append(f"  [{i}] {e.type} {detail}")
    return "\n".join(lines) or "  (no events)"


class RunAssert:
    """A cursor over the events of a run: each ``next_event()`` moves past one."""

    def __init__(self, events: list[RunEvent]) -> None:
        self._events = events
        self._index = 0

    def _fail(self, message: str) -> AssertionError:
        return AssertionError(f"{message}\nevents:\n{_describe(self._events)}")

    def next_event(self, *, type: str | None = None) -> EventAssert:
        """The next event (of ``type``, if given)."""
        if self._index >= len(self._events):
            raise self._fail(f"expected an event at index {self._index}, there are no more")
        event = EventAssert(self._events[self._index], self._index, self)
        self._index += 1
        if type is not None and event.event().type != type:
            raise self._fail(f"event {event.index} is {event.event().type}, expected {type}")
        return event

    def skip_next_event_if(
        self, *, type: str, role: str | None = None, name: str | None = None
    ) -> EventAssert | None:
        """Move past the next event if it matches (e.g. an optional greeting)."""
        if self._index >= len(self._events):
            return None
        e = self._events[self._index]
        item: Any = e.item
        if e.type != type or (role is not None and getattr(item, "role", None) != role):
            return None
        if name is not None and getattr(item, "name", None) != name:
            return None
        return self.next_event()

    def no_more_events(self) -> None:
        """Assert every event was looked at."""
        if self._index < len(self._events):
            raise self._fail(f"expected no more events, found more from index {self._index}")

    def __getitem__(self, index: int) -> EventAssert:
        return EventAssert(self._events[index], index, self)

    def fail(self, message: str) -> AssertionError:
        """An AssertionError listing the events (for custom checks)."""
        return self._fail(message)


class EventAssert:
    """Checks on one event; each ``is_*`` returns the same object to chain ``judge``."""

    def __init__(self, event: RunEvent, index: int, run: RunAssert) -> None:
        self._event = event
        self.index = index
        self._run = run

    def event(self) -> RunEvent:
        """The event itself."""
        return self._event

    def _expect(self, check: bool, what: str) -> None:
        if not check:
            raise self._run.fail(f"event {self.index}: {what}")

    def is_message(self, *, role: str | None = None) -> EventAssert:
        """A chat message (from ``role``)."""
        e = self._event
        self._expect(isinstance(e, ChatMessageEvent), f"expected a message, got {e.type}")
        item: Any = e.item
        self._expect(role is None or item.role == role, f"expected role {role}, got {item.role}")
        return self

    def is_function_call(
        self, *, name: str | None = None, arguments: dict[str, Any] | None = None
    ) -> EventAssert:
        """A tool call (to ``name``, whose JSON arguments include ``arguments``)."""
        e = self._event
        self._expect(isinstance(e, FunctionCallEvent), f"expected a function call, got {e.type}")
        item: Any = e.item
        self._expect(name is None or item.name == name, f"expected {name}, got {item.name}")
        if arguments is not None:
            try:
                actual = json.loads(item.arguments or "{}")
            except json.JSONDecodeError:
                actual = None
            ok = isinstance(actual, dict) and all(
                k in actual and actual[k] == v for k, v in arguments.items()
            )
            self._expect(ok, f"expected arguments {arguments}, got {item.arguments}")
        return self

    def is_function_call_output(
        self, *, output: str | None = None, is_error: bool | None = None
    ) -> EventAssert:
        """A tool output (equal to ``output``, with ``is_error``)."""
        e = self._event
        self._expect(
            isinstance(e, FunctionCallOutputEvent), f"expected a function output, got {e.type}"
        )
        item: Any = e.item
        self._expect(output is None or item.output == output, f"output was {item.output!r}")
        self._expect(is_error is None or item.is_error == is_error, f"is_error={item.is_error}")
        return self

    def is_agent_handoff(self, *, new_agent_type: type | None = None) -> EventAssert:
        """A handoff (to an agent of ``new_agent_type``)."""
        e = self._event
        self._expect(isinstance(e, AgentHandoffEvent), f"expected a handoff, got {e.type}")
        if new_agent_type is not None:
            new = e.new_agent if isinstance(e, AgentHandoffEvent) else None
            self._expect(
                isinstance(new, new_agent_type),
                f"expected a handoff to {new_agent_type.__name__}, got {type(new).__name__}",
            )
        return self

    async def judge(self, llm: LLM, *, intent: str) -> EventAssert:
        """Ask ``llm`` whether this message fulfils ``intent``; fails with its reason if not."""
        self.is_message()
        text = self._event.item.text_content or ""  # type: ignore[union-attr]
        verdict: dict[str, Any] = {}

        @function_tool
        async def check_intent(success: bool, reason: str) -> None:
            """Report whether the message fulfils the intent, and why."""

        ctx = ChatContext()
        ctx.add_message(role="system", content=_JUDGE_INSTRUCTIONS)
        ctx.add_message(role="user", content=f"Intent: {intent}\n\nMessage: {text}")
        async with llm.chat(chat_ctx=ctx, tools=[check_intent], tool_choice="required") as stream:
            reply = ""
            async for chunk in stream:
                if chunk.delta is None:
                    continue
                reply += chunk.delta.content or ""
                for call in chunk.delta.tool_calls:
                    if call.name == check_intent.name:
                        verdict = check_intent.parse_arguments(call.arguments)
        if not verdict:
            verdict = _verdict_from_text(reply)
        if not verdict.get("success"):
            raise self._run.fail(
                f"event {self.index}: {text!r} does not fulfil the intent {intent!r}: "
                f"{verdict.get('reason', reply)!r}"
            )
        return self


_JUDGE_INSTRUCTIONS = (
    "You check whether an assistant's message fulfils an intent. Call check_intent with "
    "success=true if it does, success=false if it does not, and a short reason."
)


def _verdict_from_text(reply: str) -> dict[str, Any]:
    lowered = reply.strip().lower()
    success = lowered.startswith(("yes", "pass", "true", "success"))
    return {"success": success, "reason": reply.strip()}
