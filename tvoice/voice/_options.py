"""`SessionOptions`: the conversation settings that every part of a session reads."""

from __future__ import annotations

import attrs

from ._turn import TurnDetection

__all__ = ["SessionOptions"]


@attrs.frozen(kw_only=True)
class SessionOptions:
    """The conversation settings of a session (see ``AgentSession`` for their meaning)."""

    turn_detection: TurnDetection | None = None
    min_endpointing_delay: float = 0.5
    max_endpointing_delay: float = 3.0
    allow_interruptions: bool = True
    min_interruption_duration: float = 0.5
    min_interruption_words: int = 0
    false_interruption_timeout: float = 2.0
    resume_false_interruption: bool = True
    preemptive_generation: bool = False
    max_tool_steps: int = 3
    user_away_timeout: float | None = 15.0
    close_timeout: float = 10.0
