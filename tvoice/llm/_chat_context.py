"""The conversation as an ordered list of chat items: messages, tool calls, their outputs, handoffs.

Items are mutable attrs classes because ``on_user_turn_completed`` and other hooks edit messages
in place. Every item has a unique ``id`` and a ``created_at`` read from trio's clock, so a test on
``MockClock`` sees exact timestamps and a context can keep its items in time order.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any, Literal, TypeAlias

import attrs
import trio

from .._utils import short_id

__all__ = [
    "AgentHandoff",
    "ChatContext",
    "ChatItem",
    "ChatMessage",
    "ChatRole",
    "FunctionCall",
    "FunctionCallOutput",
]

ChatRole: TypeAlias = Literal["system", "developer", "user", "assistant"]
"""Who said a message; ``system`` and ``developer`` messages carry instructions."""

_INSTRUCTION_ROLES = ("system", "developer")


def _new_id() -> str:
    return short_id("item")


def _now() -> float:
    # Only trio's clock: outside trio.run (building a context at import time, in a sync test)
    # there is no clock, and 0.0 keeps such items ahead of everything created later.
    try:
        return trio.current_time()
    except RuntimeError:
        return 0.0


def _as_content(value: str | Iterable[str]) -> list[str]:
    parts = [value] if isinstance(value, str) else list(value)
    for part in parts:
        if not isinstance(part, str):
            raise TypeError(f"message content parts must be str, got {type(part).__name__}")
    return parts


@attrs.define(kw_only=True)
class ChatMessage:
    """A message from the user, the assistant, or the instructions (system/developer).

    ``content`` is a list of text parts; a plain string is wrapped in a list. ``interrupted``
    marks an assistant reply that was cut off, its text truncated to what the user heard.
    """

    role: ChatRole
    content: list[str] = attrs.field(converter=_as_content)
    interrupted: bool = False
    id: str = attrs.field(factory=_new_id)
    created_at: float = attrs.field(factory=_now)
    type: Literal["message"] = attrs.field(default="message", init=False)

    @property
    def text_content(self) -> str | None:
        """The text parts joined with newlines, or None when the message has no parts."""
        return "\n".join(self.content) if self.content else None


@attrs.define(kw_only=True)
class FunctionCall:
    """The LLM asked to call the tool ``name``; ``arguments`` is the JSON text it wrote."""

    call_id: str
    name: str
    arguments: str
    id: str = attrs.field(factory=_new_id)
    created_at: float = attrs.field(factory=_now)
    type: Literal["function_call"] = attrs.field(default="function_call", init=False)


@attrs.define(kw_only=True)
class FunctionCallOutput:
    """What the tool call ``call_id`` returned, as the text shown to the LLM.

    ``is_error`` is true when the tool failed; ``output`` then holds the error text.
    """

    call_id: str
    name: str = ""
    output: str
    is_error: bool
    id: str = attrs.field(factory=_new_id)
    created_at: float = attrs.field(factory=_now)
    type: Literal["function_call_output"] = attrs.field(default="function_call_output", init=False)


@attrs.define(kw_only=True)
class AgentHandoff:
    """The session moved from one agent to another (``old_agent_id`` is None for the first)."""

    old_agent_id: str | None = None
    new_agent_id: str
    id: str = attrs.field(factory=_new_id)
    created_at: float = attrs.field(factory=_now)
    type: Literal["agent_handoff"] = attrs.field(default="agent_handoff", init=False)


ChatItem: TypeAlias = ChatMessage | FunctionCall | FunctionCallOutput | AgentHandoff
"""Anything a `ChatContext` holds; tell them apart by ``item.type``."""

_ITEM_TYPES = (ChatMessage, FunctionCall, FunctionCallOutput, AgentHandoff)
_ITEM_CLASSES: dict[str, type[ChatItem]] = {
    "message": ChatMessage,
    "function_call": FunctionCall,
    "function_call_output": FunctionCallOutput,
    "agent_handoff": AgentHandoff,
}


def _is_instructions(item: ChatItem) -> bool:
    return isinstance(item, ChatMessage) and item.role in _INSTRUCTION_ROLES


def _is_tool_item(item: ChatItem) -> bool:
    return isinstance(item, FunctionCall | FunctionCallOutput)


def _copy_item(item: ChatItem) -> ChatItem:
    # evolve() runs the converters, so a copied message gets its own content list.
    return attrs.evolve(item)


def _as_items(items: Iterable[ChatItem] | None) -> list[ChatItem]:
    return [] if items is None else list(items)


@attrs.define
class ChatContext:
    """The conversation so far: ``items`` is the ordered list of chat items, oldest first.

    ``items`` is a plain list and may be edited directly; the methods here keep it in
    ``created_at`` order when they insert.
    """

    items: list[ChatItem] = attrs.field(factory=list, converter=_as_items)

    @classmethod
    def empty(cls) -> ChatContext:
        """A context with no items."""
        return cls()

    def __len__(self) -> int:
        return len(self.items)

    def copy(
        self,
        *,
        exclude_function_calls: bool = False,
        exclude_instructions: bool = False,
        exclude_handoffs: bool = False,
    ) -> ChatContext:
        """A new context holding copies of the items, so editing one never changes the other.

        The flags leave out function calls and their outputs, system/developer messages, and
        agent handoffs.
        """
        kept = [
            _copy_item(item)
            for item in self.items
            if not (exclude_function_calls and _is_tool_item(item))
            and not (exclude_instructions and _is_instructions(item))
            and not (exclude_handoffs and isinstance(item, AgentHandoff))
        ]
        return ChatContext(kept)

    def add_message(
        self,
        *,
        role: ChatRole,
        content: str | Iterable[str],
        interrupted: bool = False,
        id: str | None = None,
        created_at: float | None = None,
    ) -> ChatMessage:
        """Create a message and add it at the end, or by ``created_at`` when that is given."""
        message = ChatMessage(
            role=role,
            content=content,
            interrupted=interrupted,
            id=id if id is not None else _new_id(),
            created_at=created_at if created_at is not None else _now(),
        )
        if created_at is None:
            self.items.append(message)
        else:
            self.insert(message)
        return message

    def find_insertion_index(self, *, created_at: float) -> int:
        """Where an item created at ``created_at`` belongs: after every item not newer than it."""
        # Scanning from the end makes the common case (a new item) O(1) and keeps
        # insertion stable: equal timestamps stay in the order they were added.
        for index in range(len(self.items) - 1, -1, -1):
            if self.items[index].created_at <= created_at:
                return index + 1
        return 0

    def insert(self, item_or_items: ChatItem | Iterable[ChatItem]) -> None:
        """Insert one item or several, each placed in ``created_at`` order."""
        items = [item_or_items] if isinstance(item_or_items, _ITEM_TYPES) else item_or_items
        for item in items:
            self.items.insert(self.find_insertion_index(created_at=item.created_at), item)

    def messages(self) -> list[ChatMessage]:
        """The messages only, in order, leaving out tool calls and handoffs."""
        return [item for item in self.items if isinstance(item, ChatMessage)]

    def get_by_id(self, item_id: str) -> ChatItem | None:
        """The item with this id, or None."""
        index = self.index_by_id(item_id)
        return None if index is None else self.items[index]

    def index_by_id(self, item_id: str) -> int | None:
        """The position of the item with this id, or None."""
        for index, item in enumerate(self.items):
            if item.id == item_id:
                return index
        return None

    def truncate(self, *, max_items: int) -> ChatContext:
        """Keep the last ``max_items`` items, plus the first system/developer message.

        The instructions survive because the model would forget who it is without them. Tool
        outputs whose call was cut off are dropped too: providers reject an output with no call.
        Returns this context, for chaining.
        """
        if max_items < 0:
            raise ValueError(f"max_items must be >= 0, got {max_items}")
        instructions = next((item for item in self.items if _is_instructions(item)), None)
        tail = self.items[len(self.items) - max_items :] if max_items else []
        call_ids = {item.call_id for item in tail if isinstance(item, FunctionCall)}
        tail = [
            item
            for item in tail
            if not (isinstance(item, FunctionCallOutput) and item.call_id not in call_ids)
        ]
        if instructions is not None and not any(item is instructions for item in tail):
            tail.insert(0, instructions)
        self.items[:] = tail
        return self

    def merge(
        self,
        other: ChatContext,
        *,
        exclude_function_calls: bool = False,
        exclude_instructions: bool = False,
    ) -> ChatContext:
        """Add copies of the items of ``other`` whose id is not here yet, in ``created_at`` order.

        This carries the conversation across an agent handoff. Returns this context.
        """
        known = {item.id for item in self.items}
        for item in other.items:
            if item.id in known:
                continue
            if exclude_function_calls and _is_tool_item(item):
                continue
            if exclude_instructions and _is_instructions(item):
                continue
            self.insert(_copy_item(item))
            known.add(item.id)
        return self

    def to_dict(self) -> dict[str, Any]:
        """A JSON-serialisable dict; `ChatContext.from_dict` reads it back."""
        return {"items": [attrs.asdict(item) for item in self.items]}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> ChatContext:
        """Rebuild a context from `to_dict` output. Unknown keys of an item are ignored."""
        items: list[ChatItem] = []
        for raw in data["items"]:
            item_cls = _ITEM_CLASSES.get(raw.get("type", ""))
            if item_cls is None:
                raise ValueError(f"unknown chat item type {raw.get('type')!r}")
            names = {a.alias for a in attrs.fields(item_cls) if a.init}
            items.append(item_cls(**{k: v for k, v in raw.items() if k in names}))
        return cls(items)
