"""End-of-turn detection: the modes and the ``TurnDetector`` protocol."""

from __future__ import annotations

from typing import Literal, Protocol, TypeAlias, runtime_checkable

from ..llm import ChatContext
from ._turn_machine import endpointing_delay

__all__ = ["TurnDetection", "TurnDetector", "endpointing_delay"]


@runtime_checkable
class TurnDetector(Protocol):
    """A model that tells how likely the user has finished their turn, from the chat so far
    (the last item is the user's transcript)."""

    async def predict_end_of_turn(self, chat_ctx: ChatContext) -> float:
        """Probability in [0, 1] that the user's turn is over."""
        ...


TurnDetection: TypeAlias = Literal["vad", "stt", "manual"] | TurnDetector
