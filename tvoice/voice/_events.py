"""Session events: frozen records with ``created_at`` from trio's clock."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Literal

import attrs

from .._utils import now
from ..llm import ChatItem, FunctionCall, FunctionCallOutput
from ..metrics import AgentMetrics

if TYPE_CHECKING:
    from ._speech_handle import SpeechHandle

__all__ = [
    "AgentEvent",
    "AgentFalseInterruptionEvent",
    "AgentState",
    "AgentStateChangedEvent",
    "CloseEvent",
    "CloseReason",
    "ConversationItemAddedEvent",
    "ErrorEvent",
    "EventName",
    "FunctionToolsExecutedEvent",
    "MetricsCollectedEvent",
    "SpeechCreatedEvent",
    "SpeechSource",
    "UserInputTranscribedEvent",
    "UserState",
    "UserStateChangedEvent",
]

AgentState = Literal["initializing", "listening", "thinking", "speaking"]
UserState = Literal["listening", "speaking", "away"]
CloseReason = Literal["user_initiated", "participant_disconnected", "error", "job_shutdown"]
SpeechSource = Literal["say", "generate_reply", "tool_response"]
EventName = Literal[
    "user_state_changed",
    "agent_state_changed",
    "user_input_transcribed",
    "conversation_item_added",
    "function_tools_executed",
    "speech_created",
    "agent_false_interruption",
    "metrics_collected",
    "error",
    "close",
]


@attrs.frozen(kw_only=True)
class UserStateChangedEvent:
    """The user started or stopped speaking, or went away."""

    type: Literal["user_state_changed"] = "user_state_changed"
    old_state: UserState
    new_state: UserState
    created_at: float = attrs.field(factory=now)


@attrs.frozen(kw_only=True)
class AgentStateChangedEvent:
    """The agent started listening, thinking or speaking."""

    type: Literal["agent_state_changed"] = "agent_state_changed"
    old_state: AgentState
    new_state: AgentState
    created_at: float = attrs.field(factory=now)


@attrs.frozen(kw_only=True)
class UserInputTranscribedEvent:
    """An interim or final transcript of what the user is saying."""

    type: Literal["user_input_transcribed"] = "user_input_transcribed"
    transcript: str
    is_final: bool
    language: str | None = None
    created_at: float = attrs.field(factory=now)


@attrs.frozen(kw_only=True)
class ConversationItemAddedEvent:
    """A message, tool call, tool output or handoff entered the conversation history."""

    type: Literal["conversation_item_added"] = "conversation_item_added"
    item: ChatItem
    created_at: float = attrs.field(factory=now)


@attrs.frozen(kw_only=True)
class FunctionToolsExecutedEvent:
    """The tool calls of one LLM step ran; outputs are in the same order as the calls."""

    type: Literal["function_tools_executed"] = "function_tools_executed"
    function_calls: list[FunctionCall]
    function_call_outputs: list[FunctionCallOutput]
    created_at: float = attrs.field(factory=now)


@attrs.frozen(kw_only=True)
class SpeechCreatedEvent:
    """A new speech was queued: by ``say``, ``generate_reply``, or as a reply to the user."""

    type: Literal["speech_created"] = "speech_created"
    speech_handle: SpeechHandle
    source: SpeechSource
    user_initiated: bool
    created_at: float = attrs.field(factory=now)


@attrs.frozen(kw_only=True)
class AgentFalseInterruptionEvent:
    """The user made noise but said no words: the paused speech ``resumed`` (or not)."""

    type: Literal["agent_false_interruption"] = "agent_false_interruption"
    resumed: bool
    created_at: float = attrs.field(factory=now)


@attrs.frozen(kw_only=True)
class MetricsCollectedEvent:
    """A metrics record from a model or from the turn logic."""

    type: Literal["metrics_collected"] = "metrics_collected"
    metrics: AgentMetrics
    created_at: float = attrs.field(factory=now)


@attrs.frozen(kw_only=True)
class ErrorEvent:
    """A model or tool failed; ``source`` is the model (or object) that failed.

    The session goes on: the speech that hit the error ends, the conversation continues.
    """

    type: Literal["error"] = "error"
    error: BaseException
    source: Any
    created_at: float = attrs.field(factory=now)


@attrs.frozen(kw_only=True)
class CloseEvent:
    """The session closed (emitted exactly once)."""

    type: Literal["close"] = "close"
    reason: CloseReason
    error: BaseException | None = None
    created_at: float = attrs.field(factory=now)


AgentEvent = (
    UserStateChangedEvent
    | AgentStateChangedEvent
    | UserInputTranscribedEvent
    | ConversationItemAddedEvent
    | FunctionToolsExecutedEvent
    | SpeechCreatedEvent
    | AgentFalseInterruptionEvent
    | MetricsCollectedEvent
    | ErrorEvent
    | CloseEvent
)
