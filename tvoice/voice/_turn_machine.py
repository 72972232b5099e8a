"""The user's turn as a pure state machine: events and the time they came at go in, decisions
come out (announce speech, transcripts, a preemptive reply, a committed turn, a prediction to
make); the next instant something falls due is :attr:`TurnMachine.deadline`.

No tasks, no clock, no trio: the driver (``_recognition.py``) reads the clock, passes ``now``
with every input, carries out the decisions in order and calls :meth:`TurnMachine.tick` when
the deadline comes. The machine is then tested on its own, instant by instant.

Events of one instant (on a virtual clock they share it; trio runs their tasks in a random
order) are decided by rules, not by the order they are fed in. Each rule is named where it
acts:

- **due-first**: a deadline that falls due at an instant is met before any input of that
  instant is taken in (the timer's task may run last; the turn it ends is the one it was set
  for). Speech or words at the instant the turn is due begin the next turn.
- **due-now**: endpointing already due when it starts commits at once, not at a later wake-up
  that would race whatever else happens at that instant.
- **next-speech**: speech that began at this very instant neither holds back a turn that ends
  now nor belongs to it (nor does its discard mark).
- **verdict-owed**: each speech the VAD closes is owed the STT's verdict (its END_OF_SPEECH)
  before the turn may commit, bounded by ``stt_wait``; the verdict commits the turn even when
  new speech begins at that instant (next-speech).
- **stt-ahead**: a verdict the STT gives while the VAD still hears speech covers the utterance
  the VAD will close, so that closing owes nothing more - unless the STT opened another one
  since (its START_OF_SPEECH; two bursts the VAD hears as one speech), whose verdict is still
  to come.
- **stt-end-stands**: in "stt" mode a turn is timed from the STT's end of speech; the VAD's
  end at that instant does not move it.
- **ahead-at-an-instant**: a verdict at the instant speech begins is not about that speech
  (next-speech); an utterance the STT opens at the instant the VAD closes its speech began
  after that speech ended (the VAD reports its end a silence later), so it does not undo
  stt-ahead.
- **preflight**: words the STT may still change (a preflight transcript) are shown and may have
  a reply prepared on them, but never end a turn: only final words do.
"""

from __future__ import annotations

import enum
from typing import Literal, TypeAlias

import attrs

__all__ = [
    "Decision",
    "EndOfTurn",
    "EndpointMode",
    "PendingChanged",
    "Predict",
    "Preempt",
    "SpeechEnded",
    "SpeechStarted",
    "SttEvent",
    "SttOverdue",
    "Transcribed",
    "TurnEnded",
    "TurnMachine",
    "endpointing_delay",
]


def endpointing_delay(probability: float, *, min_delay: float, max_delay: float) -> float:
    """Silence to wait before ending the turn: ``min_delay`` when the turn surely ended,
    stretching linearly to ``max_delay`` as the probability falls to 0."""
    p = min(max(probability, 0.0), 1.0)
    return min_delay + (max_delay - min_delay) * (1.0 - p)


EndpointMode: TypeAlias = Literal["vad", "stt", "manual", "model"]


class SttEvent(enum.Enum):
    """What the STT reports (the kinds of ``stt.SpeechEventType``, without importing it)."""

    START_OF_SPEECH = "start_of_speech"
    INTERIM_TRANSCRIPT = "interim_transcript"
    PREFLIGHT_TRANSCRIPT = "preflight_transcript"
    FINAL_TRANSCRIPT = "final_transcript"
    END_OF_SPEECH = "end_of_speech"


@attrs.frozen(kw_only=True)
class EndOfTurn:
    """A committed user turn and how long deciding it took."""

    transcript: str
    started_speaking_at: float | None
    stopped_speaking_at: float | None
    transcription_delay: float
    end_of_utterance_delay: float
    committed_at: float
    discarded: bool = False


# -- decisions, in the order the driver carries them out ---------------------------------------


@attrs.frozen
class SpeechStarted:
    """The user started speaking: say so (the input's VAD event, if any, goes with it)."""


@attrs.frozen
class SpeechEnded:
    """The user stopped speaking."""


@attrs.frozen
class Transcribed:
    """The STT event being fed in is a transcript; ``turn_text`` is the turn's text with it."""

    turn_text: str


@attrs.frozen
class Preempt:
    """The turn has new final words: a reply may be prepared for it as it stands."""

    transcript: str


@attrs.frozen
class TurnEnded:
    """The turn is committed."""

    turn: EndOfTurn


@attrs.frozen
class PendingChanged:
    """The turn stopped waiting for the STT: what is idle may have changed."""


@attrs.frozen
class Predict:
    """Ask the turn detector about ``transcript``; feed its answer back with ``epoch``."""

    epoch: int
    transcript: str


@attrs.frozen
class SttOverdue:
    """The STT gave no verdict ``wait`` seconds after the end of speech: the turn goes on."""

    wait: float


Decision: TypeAlias = (
    SpeechStarted
    | SpeechEnded
    | Transcribed
    | Preempt
    | TurnEnded
    | PendingChanged
    | Predict
    | SttOverdue
)

_STARTED = SpeechStarted()
_ENDED = SpeechEnded()
_PENDING = PendingChanged()


class TurnMachine:
    """The state of the user's turn and the rules that end it.

    ``mode`` is how the turn ends: "vad" (``min_delay`` after the speech ended, once there
    are final words), "model" (as "vad", the delay from a turn detector's prediction,
    between ``min_delay`` and ``max_delay``), "stt" (``min_delay`` after the STT's own end of
    speech) or "manual" (only :meth:`commit`). ``has_vad``: a VAD reports speech (else the
    STT's own start and end of speech do); ``stt_enabled``: an STT gives verdicts.

    Each input returns the decisions it leads to, in order; between inputs, call
    :meth:`tick` at :attr:`deadline`.
    """

    def __init__(
        self,
        *,
        mode: EndpointMode,
        min_delay: float,
        max_delay: float,
        has_vad: bool,
        stt_enabled: bool,
        stt_wait: float = 10.0,
    ) -> None:
        self.mode: EndpointMode = mode
        self.min_delay = min_delay
        self.max_delay = max_delay
        self.has_vad = has_vad
        self.stt_enabled = stt_enabled
        self.stt_wait = stt_wait
        # The speech being heard.
        self.speaking = False
        self._speaking_since = 0.0
        # The turn being heard.
        self._finals: list[str] = []
        self._interim = ""
        self._started_at: float | None = None
        self._ended_at: float | None = None
        self._final_at: float | None = None
        self._last_preemptive: str | None = None
        # Speech heard while the agent spoke without allowing interruptions (the speech being
        # heard, or an earlier one of the turn): the turn is discarded when it commits.
        self._speech_discarded = False
        self._turn_discarded = False
        # verdict-owed: speeches the VAD closed minus verdicts the STT gave on them, and when
        # the turn stops waiting for them.
        self._owed = 0
        self._owed_until: float | None = None
        # stt-ahead: the STT closed the utterance the VAD still hears; and the instant an STT
        # start of speech last undid that (ahead-at-an-instant).
        self._ahead = False
        self._ahead_undone_at: float | None = None
        self._stt_ended_at: float | None = None  # the STT's last end of speech ("stt" mode)
        # Endpointing: when the turn commits, or the prediction it waits for (its epoch).
        self._endpoint_at: float | None = None
        self._predicting: int | None = None
        self._epoch = 0
        self._turns = 0
        self._out: list[Decision] = []

    # -- what the driver reads ----------------------------------------------------------------

    @property
    def transcript(self) -> str:
        """Final transcripts of the turn so far."""
        return " ".join(self._finals)

    @property
    def pending(self) -> bool:
        """Something was heard that is not committed yet (speech, words, endpointing, a verdict
        owed)."""
        return (
            self.speaking
            or bool(self._finals)
            or self._endpoint_at is not None
            or self._predicting is not None
            or self._owed_until is not None
        )

    @property
    def deadline(self) -> float | None:
        """When :meth:`tick` must be called next (None: nothing falls due)."""
        at, until = self._endpoint_at, self._owed_until
        if at is None:
            return until
        return at if until is None else min(at, until)

    @property
    def turns(self) -> int:
        """How many turns were committed or cleared so far."""
        return self._turns

    @property
    def predicting(self) -> int | None:
        """The epoch of the prediction the turn waits for, if any (older ones are stale)."""
        return self._predicting

    # -- inputs -------------------------------------------------------------------------------

    def tick(self, now: float) -> list[Decision]:
        """Time has come to ``now``: meet what fell due."""
        self._due(now)
        return self._flush()

    def vad_start(self, now: float) -> list[Decision]:
        """The VAD heard the user start speaking."""
        self._due(now)
        if self.has_vad:  # else the VAD failed: what it still says is ignored
            self._start_of_speech(now)
        return self._flush()

    def vad_end(self, now: float, *, ended_at: float) -> list[Decision]:
        """The VAD heard the user stop speaking at ``ended_at`` (a silence before ``now``)."""
        self._due(now)
        if self.has_vad:
            self._end_of_speech(now, ended_at=ended_at, by_vad=True)
        return self._flush()

    def vad_lost(self) -> None:
        """The VAD failed: speech is the STT's to report from now on."""
        self.has_vad = False

    def stt(self, now: float, kind: SttEvent, text: str = "") -> list[Decision]:
        """The STT reported ``kind`` (with ``text`` for transcripts)."""
        self._due(now)
        if kind is SttEvent.END_OF_SPEECH:
            if self._owed > 0:
                self._owed -= 1
                if self._owed == 0:
                    self._settled(now)  # verdict-owed: paid
            elif self.has_vad and self._speaking_on(now):
                # stt-ahead; ahead-at-an-instant: not about speech that began at this instant.
                self._ahead = True
            if not self.has_vad:
                # Without a VAD the STT's own end of speech ends the speech, and owes nothing.
                self._end_of_speech(now, ended_at=now, by_vad=False)
            if self.mode == "stt":
                self._ended_at = self._stt_ended_at = now
                self._start_endpointing(now)
        elif kind is SttEvent.START_OF_SPEECH:
            # stt-ahead: a new utterance, whose verdict is still to come.
            if self._ahead:
                self._ahead, self._ahead_undone_at = False, now
            if not self.has_vad:
                self._start_of_speech(now)
        elif kind is SttEvent.INTERIM_TRANSCRIPT:
            self._interim = text
            self._out.append(Transcribed(" ".join([*self._finals, text]).strip()))
        elif kind is SttEvent.PREFLIGHT_TRANSCRIPT:
            self._preflight(text)
        else:
            self._final(now, text)
        return self._flush()

    def predicted(self, now: float, *, epoch: int, probability: float) -> list[Decision]:
        """The turn detector answered the prediction of ``epoch``."""
        self._due(now)
        if epoch == self._predicting:
            self._predicting = None
            delay = endpointing_delay(
                probability, min_delay=self.min_delay, max_delay=self.max_delay
            )
            self._endpoint_at = self._ended() + delay
            self._due(now)
        return self._flush()

    def discard_speech(self, now: float) -> list[Decision]:
        """The speech being heard came while the agent spoke without allowing interruptions:
        its turn is discarded when it commits."""
        self._due(now)
        self._speech_discarded = True
        return self._flush()

    def commit(self, now: float) -> list[Decision]:
        """End the turn now with what was transcribed (interim words if no final ones)."""
        self._due(now)
        self._commit(now)
        return self._flush()

    def clear(self, now: float) -> list[Decision]:
        """Forget the turn being heard."""
        self._due(now)
        self._clear(now)
        return self._flush()

    # -- rules --------------------------------------------------------------------------------

    def _flush(self) -> list[Decision]:
        out, self._out = self._out, []
        return out

    def _due(self, now: float) -> None:
        # due-first: whatever fell due by this instant happens before this instant's input.
        if self._owed_until is not None and now >= self._owed_until:
            self._out.append(SttOverdue(self.stt_wait))
            self._owed = 0
            self._settled(now)
        if self._endpoint_at is not None and now >= self._endpoint_at:
            self._commit(now)

    def _speaking_on(self, now: float) -> bool:
        # next-speech: speech that began at this very instant does not hold back a turn that
        # ends now.
        return self.speaking and self._speaking_since < now

    def _ended(self) -> float:
        return self._ended_at if self._ended_at is not None else 0.0

    def _start_of_speech(self, now: float) -> None:
        if self.speaking:
            return
        self.speaking = True
        self._speaking_since = now
        if self._started_at is None:
            self._started_at = now
        self._turn_discarded = self._turn_discarded or self._speech_discarded
        self._speech_discarded = False
        self._cancel_endpointing()
        self._out.append(_STARTED)

    def _end_of_speech(self, now: float, *, ended_at: float, by_vad: bool) -> None:
        if not self.speaking:
            return
        self.speaking = False
        if not (self.mode == "stt" and self._stt_ended_at == now):
            # stt-end-stands: in "stt" mode the STT's end of speech at this instant is the
            # one its turn is timed from.
            self._ended_at = ended_at
        if self._ahead or self._ahead_undone_at == now:
            # stt-ahead (and ahead-at-an-instant): the verdict came first.
            self._ahead = False
        elif self.stt_enabled and by_vad:
            # verdict-owed: the VAD closed it (without a VAD, the STT's own end of speech is
            # what ended it).
            self._owed += 1
            if self._owed_until is None:
                self._owed_until = now + self.stt_wait
        self._out.append(_ENDED)
        if self.mode not in ("manual", "stt"):
            self._start_endpointing(now)

    def _settled(self, now: float) -> None:
        if self._owed_until is not None:
            self._owed_until = None
            self._out.append(_PENDING)
        if not self._speaking_on(now) and self.mode not in ("manual", "stt"):
            self._start_endpointing(now)

    def _final(self, now: float, text: str) -> None:
        text = text.strip()
        self._interim = ""
        if not text:
            return
        self._finals.append(text)
        self._final_at = now
        self._words_ready(self.transcript)
        if not self._speaking_on(now) and self.mode not in ("manual", "stt"):
            self._start_endpointing(now)

    def _preflight(self, text: str) -> None:
        # preflight: words that may still change are shown like interim ones, and a reply may
        # be prepared on them; the turn still waits for its final words to end.
        text = text.strip()
        if not text:
            return
        self._interim = text
        self._words_ready(" ".join([*self._finals, text]))

    def _words_ready(self, transcript: str) -> None:
        """Words a reply may be made of: show them, and prepare a reply unless one was
        prepared on these very words."""
        self._out.append(Transcribed(transcript))
        if transcript != self._last_preemptive:
            self._last_preemptive = transcript
            self._out.append(Preempt(transcript))

    def _cancel_endpointing(self) -> None:
        self._endpoint_at = None
        self._predicting = None

    def _start_endpointing(self, now: float) -> None:
        self._cancel_endpointing()
        if not self._finals or self._owed > 0:
            return  # verdict-owed
        if self.mode != "model" and now >= self._ended() + self.min_delay:
            self._commit(now)  # due-now
            return
        if self.speaking and (self.mode != "stt" or self._speaking_since == now):
            # next-speech: speech that began at this instant holds a turn not yet due (in
            # "stt" mode, speech that goes on does not: the STT said it ended).
            return
        if self.mode == "model":
            self._epoch += 1
            self._predicting = self._epoch
            self._out.append(Predict(self._epoch, self.transcript))
        else:
            self._endpoint_at = self._ended() + self.min_delay

    def _commit(self, now: float) -> None:
        self._cancel_endpointing()
        text = self.transcript or self._interim.strip()
        ended = self._ended_at
        # next-speech: speech that began at this very instant is the next turn's, and so are
        # its start and its discard mark.
        speech_is_next = self.speaking and self._speaking_since == now
        started = self._started_at
        turn = EndOfTurn(
            transcript=text,
            started_speaking_at=None if speech_is_next and started == now else started,
            stopped_speaking_at=ended,
            transcription_delay=max(0.0, (self._final_at or now) - ended) if ended else 0.0,
            end_of_utterance_delay=(now - ended) if ended is not None else 0.0,
            committed_at=now,
            discarded=self._turn_discarded or (self._speech_discarded and not speech_is_next),
        )
        self._clear(now)
        if text:
            self._out.append(TurnEnded(turn))

    def _clear(self, now: float) -> None:
        self._turns += 1
        self._cancel_endpointing()
        self._finals = []
        self._interim = ""
        self._final_at = None
        self._last_preemptive = None
        # next-speech: a discard mark of speech that began at this instant stays with it.
        self._speech_discarded = self._speech_discarded and (
            self.speaking and self._speaking_since == now
        )
        self._turn_discarded = False
        self._owed = 0
        self._owed_until = None
        self._started_at = now if self.speaking else None
        self._ended_at = None
