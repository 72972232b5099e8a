"""Interruptions: the user's voice and words against the agent's speech - interrupt it, or
pause it and resume it when the interruption proves false."""

from __future__ import annotations

from collections.abc import Callable
from typing import Protocol

import trio

from .._utils import EventEmitter
from ..io import AudioOutput
from ..stt import SpeechEvent, SpeechEventType
from ..tokenize import count_words
from ..vad import VADEvent
from ._events import AgentFalseInterruptionEvent, EventName
from ._options import SessionOptions
from ._playout import Playout
from ._speech_handle import SpeechHandle
from ._speech_queue import SpeechQueue

__all__ = ["InterruptionHost", "Interruptions"]


class InterruptionHost(Protocol):
    """What interruptions read and tell of the session (its runtime)."""

    @property
    def options(self) -> SessionOptions: ...
    @property
    def audio_output(self) -> AudioOutput | None: ...
    @property
    def events(self) -> EventEmitter[EventName]: ...
    def discard_user_turn(self) -> None: ...


class _Timer:
    """A callback after a delay, cancellable; one pending at a time."""

    def __init__(self) -> None:
        self._scope: trio.CancelScope | None = None
        self._due = 0.0
        self._callback: Callable[[], None] | None = None

    @property
    def pending(self) -> bool:
        return self._scope is not None

    def start(self, nursery: trio.Nursery, delay: float, callback: Callable[[], None]) -> None:
        self.cancel()
        scope = self._scope = trio.CancelScope()
        due = self._due = trio.current_time() + delay
        self._callback = callback

        async def run() -> None:
            with scope:
                await trio.sleep_until(due)
                self._scope = None
                callback()

        nursery.start_soon(run)

    def cancel(self) -> None:
        if self._scope is not None:
            self._scope.cancel()
            self._scope = None

    def cancel_unless_due(self) -> None:
        """Cancel it, unless it is due at this very instant: then call it now (its task, woken
        at this instant too, may not have run yet; what it does must not depend on that)."""
        due_now = self._scope is not None and trio.current_time() >= self._due
        self.cancel()
        if due_now and self._callback is not None:
            self._callback()


class Interruptions:
    """The interruption policy of one agent's speech: timers in the activity's nursery, and the
    speech paused while the user may be interrupting it."""

    def __init__(self, host: InterruptionHost, queue: SpeechQueue, playout: Playout) -> None:
        self._host = host
        self._queue = queue
        self._playout = playout
        self.nursery: trio.Nursery | None = None  # the activity's, once it runs
        self._paused_speech: SpeechHandle | None = None
        self._interruption_timer = _Timer()
        self._false_interruption_timer = _Timer()
        self._user_speaking_since: float | None = None

    def interruptible_speech(self) -> SpeechHandle | None:
        """The speech the user would interrupt now, if it allows that."""
        speech = self._queue.next()
        if speech is None or speech.done() or not speech.allow_interruptions:
            return None
        return speech

    def interrupt(self, speech: SpeechHandle) -> None:
        """Interrupt ``speech`` now: no timer will pause or resume it any more."""
        self._interruption_timer.cancel()
        self._false_interruption_timer.cancel()
        if not speech.done():
            speech.interrupt()

    # -- the speech queue's side ----------------------------------------------------------------

    def speech_starting(self, speech: SpeechHandle) -> None:
        """``speech`` starts: a user who began at this very instant speaks over it."""
        if self._user_speaking_since == trio.current_time():
            # Whichever trio ran first, the speech is heard over as if it had started first.
            self._user_speaks_over(speech)

    def speech_stopped(self, speech: SpeechHandle) -> None:
        """``speech`` ended: if it was paused, the output plays again."""
        if self._paused_speech is speech:
            self._release_pause()

    # -- the user's side ------------------------------------------------------------------------

    def on_start_of_speech(self, event: VADEvent | None) -> None:
        """The user started speaking: arm the interruption (or note the turn to discard)."""
        self._false_interruption_timer.cancel_unless_due()
        self._user_speaking_since = trio.current_time()
        self._user_speaks_over(self._queue.next())

    def on_end_of_speech(self, event: VADEvent | None) -> None:
        """The user stopped: if the speech was paused and no words came, resume it later."""
        self._user_speaking_since = None
        self._interruption_timer.cancel_unless_due()
        if self._paused_speech is not None and self.nursery is not None:
            self._false_interruption_timer.start(
                self.nursery,
                self._host.options.false_interruption_timeout,
                self._false_interruption,
            )

    def on_transcript(self, event: SpeechEvent, *, turn_text: str) -> None:
        """Words arrived: they interrupt a speech (``min_interruption_words`` of them)."""
        speech = self.interruptible_speech()
        if speech is None or event.type not in (
            SpeechEventType.INTERIM_TRANSCRIPT,
            SpeechEventType.FINAL_TRANSCRIPT,
        ):
            return
        needed = max(1, self._host.options.min_interruption_words)
        if count_words(turn_text) >= needed:
            self.interrupt(speech)

    def _pause_mode(self) -> bool:
        output = self._host.audio_output
        return (
            self._host.options.resume_false_interruption and output is not None and output.can_pause
        )

    def _user_speaks_over(self, speech: SpeechHandle | None) -> None:
        if speech is None or speech.done():
            return
        options = self._host.options
        if not speech.allow_interruptions:
            self._host.discard_user_turn()
            return
        if options.min_interruption_words > 0:
            return
        assert self.nursery is not None
        # Not the agent state: the speech may have started at this instant, the state not yet.
        playing = speech is self._queue.current and self._playout.playing
        if self._pause_mode() and not playing:
            self._pause(speech)  # nothing heard yet: hold it while the user speaks
        elif self._pause_mode():
            self._interruption_timer.start(
                self.nursery, options.min_interruption_duration, lambda: self._pause(speech)
            )
        else:
            self._interruption_timer.start(
                self.nursery, options.min_interruption_duration, lambda: self.interrupt(speech)
            )

    def _pause(self, speech: SpeechHandle) -> None:
        output = self._host.audio_output
        if speech.done() or output is None:
            return
        self._paused_speech = speech
        output.pause()

    def _release_pause(self) -> None:
        self._paused_speech = None
        self._false_interruption_timer.cancel()
        output = self._host.audio_output
        if output is not None:
            output.resume()

    def _false_interruption(self) -> None:
        if self._paused_speech is None:
            return
        self._release_pause()
        self._host.events.emit(
            "agent_false_interruption", AgentFalseInterruptionEvent(resumed=True)
        )
