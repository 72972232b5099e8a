"""End-of-turn detection: the modes and the ``TurnDetector`` protocol."""

from __future__ import annotations

from typing import Literal, Protocol, TypeAlias, runtime_checkable

from ..llm import ChatContext

__all__ = ["TurnDetection", "TurnDetector", "endpointing_delay"]


@runtime_checkable
class TurnDetector(Protocol):
    """A model that tells how likely the user has finished their turn, from the chat so far
    (the last item is the user's transcript)."""

    async def predict_end_of_turn(self, chat_ctx: ChatContext) -> float:
        """Probability in [0, 1] that the user's turn is over."""
        ...


TurnDetection: TypeAlias = Literal["vad", "stt", "manual"] | TurnDetector


def endpointing_delay(probability: float, *, min_delay: float, max_delay: float) -> float:
    """Silence to wait before ending the turn: ``min_delay`` when the turn surely ended,
    stretching linearly to ``max_delay`` as the probability falls to 0."""
    p = min(max(probability, 0.0), 1.0)
    return min_delay + (max_delay - min_delay) * (1.0 - p)
