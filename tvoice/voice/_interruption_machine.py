"""Interruptions as a pure state machine: the user's voice and words, the agent's speeches
starting and stopping, and the time they came at go in; decisions come out (pause a speech,
resume it, interrupt it, discard the user's turn); the next instant something falls due is
:attr:`InterruptionMachine.deadline`.

No tasks, no clock, no trio: the driver (``_interruptions.py``) reads the clock and the facts of
the speech the user speaks over (does it allow interruptions, is it heard yet, can the output
pause), passes them with every input, carries out the decisions in order and calls
:meth:`InterruptionMachine.tick` when the deadline comes.

The rules, each named where it acts:

- **due-first** (as in the turn machine): what falls due at an instant - the interruption after
  ``min_interruption_duration`` of voice, the resumption ``false_interruption_timeout`` after
  it - is met before any input of that instant is taken in.
- **due-now**: an interruption due as it is armed (no ``min_interruption_duration``) happens at
  once, not at a later wake-up that would race whatever else happens at that instant.
- **speaks-over**: a user who began speaking at the very instant a speech starts speaks over
  it, whichever of the two was fed in first.
- **one-timer**: the interruption is armed only while the user speaks, the resumption only
  while the user is silent and a speech is paused; never both.
"""

from __future__ import annotations

from typing import Generic, TypeAlias, TypeVar

import attrs

__all__ = [
    "DiscardTurn",
    "Interrupt",
    "InterruptionDecision",
    "InterruptionMachine",
    "InterruptionPolicy",
    "Pause",
    "Resume",
    "Target",
]

S = TypeVar("S")


@attrs.frozen(kw_only=True)
class InterruptionPolicy:
    """The settings the rules read, as they are at an input (they may change between)."""

    min_duration: float = 0.5  # of voice before it interrupts
    min_words: int = 0  # words before they interrupt (0: the voice does, not the words)
    false_timeout: float = 2.0  # of silence before a paused speech resumes
    can_pause: bool = True  # resume_false_interruption, and an output that can pause


@attrs.frozen(kw_only=True)
class Target(Generic[S]):
    """A speech the user would speak over (one not done), as it stands at an input."""

    speech: S
    allows_interruptions: bool
    playing: bool  # heard already (its playout started)


# -- decisions, in the order the driver carries them out ---------------------------------------


@attrs.frozen
class Pause(Generic[S]):
    """Pause the output: ``speech`` may be interrupted (if it is done, or there is no output
    any more, tell :meth:`InterruptionMachine.pause_refused`)."""

    speech: S


@attrs.frozen
class Resume:
    """Resume the output; ``false_interruption``: the pause timed out (say so), else the paused
    speech stopped."""

    false_interruption: bool


@attrs.frozen
class Interrupt(Generic[S]):
    """Interrupt ``speech`` (unless it is done)."""

    speech: S


@attrs.frozen
class DiscardTurn:
    """The user speaks over a speech that does not allow interruptions: the turn is dropped."""


InterruptionDecision: TypeAlias = Pause[S] | Resume | Interrupt[S] | DiscardTurn

_DISCARD = DiscardTurn()


class InterruptionMachine(Generic[S]):
    """The interruption policy of one agent's speeches; speeches are the driver's handles,
    compared by identity.

    Each input returns the decisions it leads to, in order; between inputs, call
    :meth:`tick` at :attr:`deadline`.
    """

    def __init__(self) -> None:
        self._user_since: float | None = None  # the user speaks, since then
        self._paused: S | None = None
        self._before_pause: S | None = None  # what was paused before the last Pause decided
        # one-timer: the interruption armed (when, of which speech, pause or interrupt it)...
        self._interrupt_at: float | None = None
        self._interrupt_speech: S | None = None
        self._interrupt_pauses = False
        # ... or the resumption of the paused speech.
        self._resume_at: float | None = None
        self._out: list[InterruptionDecision[S]] = []

    # -- what the driver reads ----------------------------------------------------------------

    @property
    def paused(self) -> S | None:
        """The speech the output is paused for, if any."""
        return self._paused

    @property
    def deadline(self) -> float | None:
        """When :meth:`tick` must be called next (None: nothing falls due)."""
        return self._interrupt_at if self._interrupt_at is not None else self._resume_at

    @property
    def user_speaking(self) -> bool:
        """The user speaks (between their start and end of speech)."""
        return self._user_since is not None

    # -- inputs -------------------------------------------------------------------------------

    def tick(self, now: float) -> list[InterruptionDecision[S]]:
        """Time has come to ``now``: meet what fell due."""
        self._due(now)
        return self._flush()

    def user_started(
        self, now: float, target: Target[S] | None, policy: InterruptionPolicy
    ) -> list[InterruptionDecision[S]]:
        """The user started speaking over ``target`` (the speech running, or the next to)."""
        self._due(now)
        self._resume_at = None  # one-timer: the user speaks, the pause holds
        self._user_since = now
        self._speaks_over(now, target, policy)
        return self._flush()

    def user_stopped(self, now: float, policy: InterruptionPolicy) -> list[InterruptionDecision[S]]:
        """The user stopped speaking: a paused speech resumes if no words interrupt it in
        ``false_timeout``."""
        self._due(now)
        self._user_since = None
        self._cancel_interruption()
        if self._paused is not None:
            self._resume_at = now + policy.false_timeout
        return self._flush()

    def speech_starting(
        self, now: float, target: Target[S] | None, policy: InterruptionPolicy
    ) -> list[InterruptionDecision[S]]:
        """A speech starts running (``target``; None if it is done already)."""
        self._due(now)
        if self._user_since == now:
            self._speaks_over(now, target, policy)  # speaks-over
        return self._flush()

    def speech_stopped(self, now: float, speech: S) -> list[InterruptionDecision[S]]:
        """``speech`` ran, or was cut: if it was paused, the output plays again."""
        self._due(now)
        if self._paused is speech:
            self._release(false_interruption=False)
        return self._flush()

    def words(
        self, now: float, speech: S | None, count: int, policy: InterruptionPolicy
    ) -> list[InterruptionDecision[S]]:
        """The user's turn has ``count`` words, heard over ``speech`` (None: over no speech
        that allows interruptions)."""
        self._due(now)
        if speech is not None and count >= max(1, policy.min_words):
            self._interrupt(speech)
        return self._flush()

    def interrupt(self, now: float, speech: S) -> list[InterruptionDecision[S]]:
        """Interrupt ``speech`` now (the user's turn ended over it)."""
        self._due(now)
        self._interrupt(speech)
        return self._flush()

    def pause_refused(self, speech: S) -> None:
        """The driver could not pause ``speech`` (it was done, or the output gone): it is not
        paused. The driver ticks before every input, so this comes before any other."""
        if self._paused is speech:
            self._paused = self._before_pause

    # -- rules --------------------------------------------------------------------------------

    def _flush(self) -> list[InterruptionDecision[S]]:
        out, self._out = self._out, []
        return out

    def _due(self, now: float) -> None:
        # due-first: whatever fell due by this instant happens before this instant's input.
        if self._interrupt_at is not None and now >= self._interrupt_at:
            speech, pauses = self._interrupt_speech, self._interrupt_pauses
            self._cancel_interruption()
            assert speech is not None
            if pauses:
                self._pause(speech)
            else:
                self._interrupt(speech)
        if self._resume_at is not None and now >= self._resume_at:
            self._resume_at = None
            if self._paused is not None:
                self._release(false_interruption=True)

    def _speaks_over(
        self, now: float, target: Target[S] | None, policy: InterruptionPolicy
    ) -> None:
        if target is None:
            return
        if not target.allows_interruptions:
            self._out.append(_DISCARD)
            return
        if policy.min_words > 0:
            return  # the words decide
        if policy.can_pause and not target.playing:
            self._pause(target.speech)  # nothing heard yet: hold it while the user speaks
            return
        self._interrupt_at = now + policy.min_duration
        self._interrupt_speech = target.speech
        self._interrupt_pauses = policy.can_pause
        self._due(now)  # due-now: with no min_duration, at once

    def _cancel_interruption(self) -> None:
        self._interrupt_at = None
        self._interrupt_speech = None

    def _pause(self, speech: S) -> None:
        self._before_pause, self._paused = self._paused, speech
        self._out.append(Pause(speech))

    def _interrupt(self, speech: S) -> None:
        # Interrupted: no timer will pause or resume it any more.
        self._cancel_interruption()
        self._resume_at = None
        self._out.append(Interrupt(speech))

    def _release(self, *, false_interruption: bool) -> None:
        self._paused = None
        self._resume_at = None
        self._out.append(Resume(false_interruption))
