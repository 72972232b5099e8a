"""Interruptions: the user's voice and words against the agent's speech - interrupt it, or
pause it and resume it when the interruption proves false."""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Protocol

import trio

from .._utils import EventEmitter
from ..io import AudioOutput
from ..stt import SpeechEvent, SpeechEventType
from ..tokenize import count_words
from ..vad import VADEvent
from ._events import AgentFalseInterruptionEvent, EventName
from ._interruption_machine import (
    Interrupt,
    InterruptionDecision,
    InterruptionMachine,
    InterruptionPolicy,
    Pause,
    Resume,
    Target,
)
from ._options import SessionOptions
from ._playout import Playout
from ._speech_handle import SpeechHandle
from ._speech_queue import SpeechQueue

__all__ = ["InterruptionHost", "Interruptions"]

# The STT events that carry the user's words.
_WORDS = (
    SpeechEventType.INTERIM_TRANSCRIPT,
    SpeechEventType.PREFLIGHT_TRANSCRIPT,
    SpeechEventType.FINAL_TRANSCRIPT,
)


class InterruptionHost(Protocol):
    """What interruptions read and tell of the session (its runtime)."""

    @property
    def options(self) -> SessionOptions: ...
    @property
    def audio_output(self) -> AudioOutput | None: ...
    @property
    def events(self) -> EventEmitter[EventName]: ...
    def discard_user_turn(self) -> None: ...


class Interruptions:
    """The interruption policy of one agent's speech, as :class:`InterruptionMachine` decides
    it: this driver feeds it the clock and the facts of the speech, carries out its decisions
    and keeps one timer, in the activity's nursery, at its deadline."""

    def __init__(self, host: InterruptionHost, queue: SpeechQueue, playout: Playout) -> None:
        self._host = host
        self._queue = queue
        self._playout = playout
        self.nursery: trio.Nursery | None = None  # the activity's, once it runs
        self._machine: InterruptionMachine[SpeechHandle] = InterruptionMachine()
        # The machine's clock: the scope whose deadline is the machine's (see _keep_time),
        # while that task runs.
        self._timer: trio.CancelScope | None = None
        self._keeping_time = False

    def interruptible_speech(self) -> SpeechHandle | None:
        """The speech the user would interrupt now, if it allows that."""
        speech = self._queue.next()
        if speech is None or speech.done() or not speech.allow_interruptions:
            return None
        return speech

    def interrupt(self, speech: SpeechHandle) -> None:
        """Interrupt ``speech`` now: no timer will pause or resume it any more."""
        self._feed(lambda now: self._machine.interrupt(now, speech))

    # -- the speech queue's side ----------------------------------------------------------------

    def speech_starting(self, speech: SpeechHandle) -> None:
        """``speech`` starts: a user who began at this very instant speaks over it."""
        self._feed(
            lambda now: self._machine.speech_starting(now, self._target(speech), self._policy())
        )

    def speech_stopped(self, speech: SpeechHandle) -> None:
        """``speech`` ended: if it was paused, the output plays again."""
        self._feed(lambda now: self._machine.speech_stopped(now, speech))

    # -- the user's side ------------------------------------------------------------------------

    def on_start_of_speech(self, event: VADEvent | None) -> None:
        """The user started speaking: arm the interruption (or note the turn to discard)."""
        self._feed(
            lambda now: self._machine.user_started(
                now, self._target(self._queue.next()), self._policy()
            )
        )

    def on_end_of_speech(self, event: VADEvent | None) -> None:
        """The user stopped: if the speech was paused and no words came, resume it later."""
        self._feed(lambda now: self._machine.user_stopped(now, self._policy()))

    def on_transcript(self, event: SpeechEvent, *, turn_text: str) -> None:
        """Words arrived: they interrupt a speech (``min_interruption_words`` of them)."""
        if event.type not in _WORDS:
            return
        self._feed(
            lambda now: self._machine.words(
                now, self.interruptible_speech(), count_words(turn_text), self._policy()
            )
        )

    # -- feeding the machine --------------------------------------------------------------------

    def _policy(self) -> InterruptionPolicy:
        options, output = self._host.options, self._host.audio_output
        return InterruptionPolicy(
            min_duration=options.min_interruption_duration,
            min_words=options.min_interruption_words,
            false_timeout=options.false_interruption_timeout,
            can_pause=options.resume_false_interruption and output is not None and output.can_pause,
        )

    def _target(self, speech: SpeechHandle | None) -> Target[SpeechHandle] | None:
        if speech is None or speech.done():
            return None
        return Target(
            speech=speech,
            allows_interruptions=speech.allow_interruptions,
            # Not the agent state: the speech may have started at this instant, the state not
            # yet.
            playing=speech is self._queue.current and self._playout.playing,
        )

    def _feed(self, step: Callable[[float], list[InterruptionDecision[SpeechHandle]]]) -> None:
        now = trio.current_time()
        # due-first, and what fell due carried out (a pause refused known) before the input.
        self._carry_out(self._machine.tick(now))
        self._carry_out(step(now))

    def _carry_out(self, decisions: list[InterruptionDecision[SpeechHandle]]) -> None:
        for decision in decisions:
            if isinstance(decision, Pause):
                output = self._host.audio_output
                if decision.speech.done() or output is None:
                    self._machine.pause_refused(decision.speech)
                else:
                    output.pause()
            elif isinstance(decision, Resume):
                output = self._host.audio_output
                if output is not None:
                    output.resume()
                if decision.false_interruption:
                    self._host.events.emit(
                        "agent_false_interruption", AgentFalseInterruptionEvent(resumed=True)
                    )
            elif isinstance(decision, Interrupt):
                if not decision.speech.done():
                    decision.speech.interrupt()
            else:
                self._host.discard_user_turn()
        self._set_timer()

    def _set_timer(self) -> None:
        deadline = self._machine.deadline
        if self._keeping_time:
            if self._timer is not None:
                # The task follows the machine's deadline; with none, it wakes now and ends.
                self._timer.deadline = -math.inf if deadline is None else deadline
        elif deadline is not None and self.nursery is not None:
            self._keeping_time = True
            self.nursery.start_soon(self._keep_time)

    async def _keep_time(self) -> None:
        """Call the machine's ``tick`` at each deadline it sets, while it sets one."""
        try:
            while (deadline := self._machine.deadline) is not None:
                with trio.CancelScope(deadline=deadline) as timer:
                    self._timer = timer
                    await trio.sleep_forever()
                self._timer = None
                self._carry_out(self._machine.tick(trio.current_time()))
        finally:
            self._timer = None
            self._keeping_time = False
