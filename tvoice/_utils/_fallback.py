from __future__ import annotations

import logging
from collections.abc import Sequence
from typing import Generic, TypeVar

import attrs
import trio

from .._errors import APIConnectionError, APIError

__all__ = ["FallbackPool"]

logger = logging.getLogger("tvoice")
M = TypeVar("M")


@attrs.define
class _Entry(Generic[M]):
    model: M
    unavailable_until: float = -float("inf")


class FallbackPool(Generic[M]):
    """The providers of a fallback adapter, in order of preference, with their availability.

    A provider that fails is skipped for ``recovery_interval`` seconds (trio's clock), then
    tried again on the next request: recovery needs no background task.
    """

    def __init__(self, models: Sequence[M], *, recovery_interval: float, kind: str) -> None:
        if not models:
            raise ValueError(f"a {kind} FallbackAdapter needs at least one {kind}")
        self._entries = [_Entry(m) for m in models]
        self._recovery_interval = recovery_interval
        self._kind = kind

    @property
    def models(self) -> list[M]:
        """All providers, in order of preference."""
        return [e.model for e in self._entries]

    def candidates(self) -> list[M]:
        """Providers to try now, in order; every one of them if none is available."""
        now = trio.current_time()
        available = [e.model for e in self._entries if e.unavailable_until <= now]
        return available or self.models

    def mark_failed(self, model: M, error: BaseException) -> None:
        """Skip ``model`` until the recovery interval has passed."""
        logger.warning("%s %r failed, falling back: %s", self._kind, model, error)
        for e in self._entries:
            if e.model is model:
                e.unavailable_until = trio.current_time() + self._recovery_interval

    def mark_ok(self, model: M) -> None:
        """``model`` answered: it is available again."""
        for e in self._entries:
            if e.model is model:
                e.unavailable_until = -float("inf")

    def all_failed(self, errors: Sequence[BaseException]) -> APIError:
        """The error raised when every provider failed."""
        detail = "; ".join(str(e) for e in errors)
        return APIConnectionError(f"all {self._kind}s failed: {detail}", retryable=False)
