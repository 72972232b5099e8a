"""`Clock`: the one task that wakes a session's timed rules (the user's turn, the user-away
timer) at their deadlines."""

from __future__ import annotations

import math
from typing import Protocol

import trio

__all__ = ["Clock", "Timed"]


class Timed(Protocol):
    """A rule that decides at instants it names: :attr:`deadline`, then :meth:`tick`."""

    @property
    def deadline(self) -> float | None:
        """When :meth:`tick` must be called next (None: nothing falls due)."""
        ...

    def tick(self, now: float) -> None:
        """Time has come to ``now``: do what fell due."""
        ...


class Clock:
    """Wakes each of its rules at its deadline, from one task for the whole session.

    A rule whose deadline moves calls :meth:`changed`, which moves the deadline of the scope
    the task sleeps in (that wakes nothing: the task sleeps until the earliest deadline of all,
    however often it moves). Rules due at one instant are ticked in the order they were added;
    each rule meets its own due-first rule, so no order of tasks matters to it.
    """

    __slots__ = ("_rules", "_scope")

    def __init__(self) -> None:
        self._rules: list[Timed] = []
        self._scope: trio.CancelScope | None = None  # the one the task sleeps in

    def add(self, rule: Timed) -> None:
        """Wake ``rule`` at its deadlines from now on."""
        self._rules.append(rule)
        self.changed()

    def remove(self, rule: Timed) -> None:
        """Wake ``rule`` no more."""
        if rule in self._rules:
            self._rules.remove(rule)
            self.changed()

    def changed(self) -> None:
        """A rule's deadline moved."""
        scope = self._scope
        if scope is not None:
            deadline = self._earliest()
            if scope.deadline != deadline:
                scope.deadline = deadline

    def _earliest(self) -> float:
        deadlines = [d for rule in self._rules if (d := rule.deadline) is not None]
        return min(deadlines, default=math.inf)

    async def run(self) -> None:
        """Keep the rules' time until cancelled."""
        while True:
            with trio.CancelScope(deadline=self._earliest()) as scope:
                self._scope = scope
                try:
                    await trio.sleep_forever()
                finally:
                    self._scope = None
            now = trio.current_time()
            for rule in list(self._rules):
                deadline = rule.deadline
                if deadline is not None and deadline <= now:
                    rule.tick(now)
