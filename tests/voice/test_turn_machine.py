"""The turn machine on its own: scripts of VAD and STT events on a grid of instants (so that
many share one), fed the way the driver feeds them (the machine ticked at each deadline), and
checked for the rules of ``_turn_machine.py`` - above all that events of one instant give the
same turns in whatever order they come in, where the rules say so."""

from __future__ import annotations

import itertools
from collections.abc import Callable

import attrs
import hypothesis.strategies as st
from hypothesis import given, settings

from tvoice.voice._turn_machine import (
    Decision,
    EndOfTurn,
    PendingChanged,
    Predict,
    Preempt,
    SpeechEnded,
    SpeechStarted,
    SttEvent,
    SttOverdue,
    Transcribed,
    TurnEnded,
    TurnMachine,
    endpointing_delay,
)

WORDS = ("one", "two", "three", "four", "five", "six")
MIN_DELAY = 0.5
MAX_DELAY = 2.0
STT_WAIT = 3.0


# -- scripts ----------------------------------------------------------------------------------


@attrs.frozen
class VadStart:
    uninterruptible: bool = False  # the activity marks the speech to discard as it starts


@attrs.frozen
class VadEnd:
    silence: float = 0.5


@attrs.frozen
class Stt:
    kind: SttEvent
    text: str = ""


Vad = VadStart | VadEnd


@attrs.frozen
class Instant:
    """What happens at one instant: the VAD's events and the STT's, each stream in its order."""

    dt: float
    vad: tuple[Vad, ...]
    stt: tuple[Stt, ...]


vad_events = st.one_of(
    st.builds(VadStart, st.booleans()), st.builds(VadEnd, st.sampled_from([0.0, 0.25]))
)
stt_events = st.one_of(
    st.builds(Stt, st.just(SttEvent.START_OF_SPEECH)),
    st.builds(Stt, st.just(SttEvent.END_OF_SPEECH)),
    st.builds(Stt, st.just(SttEvent.INTERIM_TRANSCRIPT), st.sampled_from(WORDS)),
    st.builds(Stt, st.just(SttEvent.PREFLIGHT_TRANSCRIPT), st.sampled_from(WORDS)),
    st.builds(Stt, st.just(SttEvent.FINAL_TRANSCRIPT), st.sampled_from((*WORDS, "", " "))),
)
instants = st.builds(
    Instant,
    st.sampled_from([0.25, 0.5, 1.0, 3.0]),  # one Instant per instant
    st.lists(vad_events, max_size=1).map(tuple),  # a VAD never starts and ends at once
    st.lists(stt_events, max_size=3).map(tuple),
)
scripts = st.lists(instants, min_size=1, max_size=14)
modes = st.sampled_from(["vad", "stt", "manual"])


def machine(mode: str, *, has_vad: bool = True, stt_enabled: bool = True) -> TurnMachine:
    return TurnMachine(
        mode=mode,  # type: ignore[arg-type]
        min_delay=MIN_DELAY,
        max_delay=MAX_DELAY,
        has_vad=has_vad,
        stt_enabled=stt_enabled,
        stt_wait=STT_WAIT,
    )


@attrs.define
class Run:
    """A machine fed like the driver feeds it, with every decision it took (and when)."""

    m: TurnMachine
    now: float = 0.0
    log: list[tuple[float, Decision]] = attrs.Factory(list)
    after_input: list[float | None] = attrs.Factory(list)  # the deadline after each input

    def take(self, decisions: list[Decision], *, react: bool = False) -> None:
        for d in decisions:
            self.log.append((self.now, d))
        self.after_input.append(self.m.deadline)
        if react and any(isinstance(d, SpeechStarted) for d in decisions):
            self.take(self.m.discard_speech(self.now))

    def advance(self, to: float, *, early_ticks: tuple[float, ...] = ()) -> None:
        """Let time pass until ``to`` (not included): tick at every deadline before it."""
        for t in sorted(early_ticks):
            self._until(self.now + t * (to - self.now))
            self.take(self.m.tick(self.now))  # a driver that wakes when nothing is due
        self._until(to)
        self.now = to

    def _until(self, to: float) -> None:
        while (deadline := self.m.deadline) is not None and deadline < to:
            self.now = max(self.now, deadline)
            self.take(self.m.tick(self.now))
        self.now = max(self.now, min(to, self.now if self.m.deadline is None else to))

    def feed(self, event: Vad | Stt) -> None:
        if isinstance(event, VadStart):
            self.take(self.m.vad_start(self.now), react=event.uninterruptible)
        elif isinstance(event, VadEnd):
            self.take(self.m.vad_end(self.now, ended_at=self.now - event.silence))
        else:
            self.take(self.m.stt(self.now, event.kind, event.text))

    def turns(self) -> list[EndOfTurn]:
        return [d.turn for _, d in self.log if isinstance(d, TurnEnded)]

    def outcome(self) -> tuple[object, ...]:
        """What must not depend on the order of one instant's events: the turns, the words and
        replies announced, and where the turn stands at the end."""
        said = [
            (t, d) for t, d in self.log if isinstance(d, (TurnEnded, Transcribed, Preempt, Predict))
        ]
        speech = [(t, d) for t, d in self.log if isinstance(d, (SpeechStarted, SpeechEnded))]
        m = self.m
        return said, speech, m.transcript, m.speaking, m.pending, m.deadline


Order = Callable[[Instant, int], list[Vad | Stt | None]]


def play(script: list[Instant], mode: str, order: Order, **kw: bool) -> Run:
    """Feed ``script``; ``order`` merges one instant's VAD and STT events and places the tick
    (None) of that instant among them."""
    run = Run(machine(mode, **kw))
    if not kw.get("stt_enabled", True):
        script = [attrs.evolve(instant, stt=()) for instant in script]  # no STT, no words
    for i, instant in enumerate(script):
        run.advance(run.now + instant.dt)
        for event in order(instant, i):
            if event is None:
                run.take(run.m.tick(run.now))
            else:
                run.feed(event)
    run.advance(run.now + 10.0)
    return run


def in_order(instant: Instant, i: int) -> list[Vad | Stt | None]:
    return [None, *instant.vad, *instant.stt]


@attrs.frozen
class Merge:
    """Each instant's order: which stream (0 VAD, 1 STT) gives the next event, and where the
    tick goes among them."""

    picks: tuple[tuple[int, ...], ...]
    ticks: tuple[int, ...]

    def __call__(self, instant: Instant, i: int) -> list[Vad | Stt | None]:
        streams = [iter(instant.vad), iter(instant.stt)]
        merged: list[Vad | Stt | None] = []
        for p in self.picks[i]:
            merged.extend(itertools.islice(streams[p], 1))  # a stream left out has none
        merged.insert(min(self.ticks[i], len(merged)), None)
        return merged


@st.composite
def scripts_in_two_orders(draw: st.DrawFn) -> tuple[list[Instant], Merge]:
    script = draw(scripts)
    picks, ticks = [], []
    for instant in script:
        picks.append(tuple(draw(st.permutations([0] * len(instant.vad) + [1] * len(instant.stt)))))
        ticks.append(draw(st.integers(0, len(instant.vad) + len(instant.stt))))
    return script, Merge(tuple(picks), tuple(ticks))


# -- one instant, any order -------------------------------------------------------------------


@given(scripts_in_two_orders(), modes, st.booleans())
def test_events_of_one_instant_give_the_same_turns_in_any_order(
    script_order: tuple[list[Instant], Merge], mode: str, stt_enabled: bool
) -> None:
    """due-first, due-now, next-speech, verdict-owed, stt-ahead, ahead-at-an-instant: the VAD's
    and the STT's events of one instant, and the timer due then, in any order, decide the same
    turns at the same times, announce the same words and replies and leave the same state."""
    script, order = script_order
    a = play(script, mode, in_order, stt_enabled=stt_enabled)
    b = play(script, mode, order, stt_enabled=stt_enabled)
    assert a.outcome() == b.outcome()


@given(scripts_in_two_orders(), st.sampled_from(["stt", "manual"]))
def test_without_a_vad_the_order_of_one_instant_does_not_matter_either(
    script_order: tuple[list[Instant], Merge], mode: str
) -> None:
    """The STT alone reports speech: its events keep their order, the timer's place among
    them does not matter (the VAD's events are ignored: it failed)."""
    script, order = script_order
    a = play(script, mode, in_order, has_vad=False)
    b = play(script, mode, order, has_vad=False)
    assert a.outcome() == b.outcome()


@given(scripts, modes, st.lists(st.floats(0.0, 1.0), max_size=3).map(tuple))
def test_waking_when_nothing_is_due_changes_nothing(
    script: list[Instant], mode: str, ticks: tuple[float, ...]
) -> None:
    """The driver may wake the machine early or often (a timer that slips, a scope reset):
    only a deadline that has come does anything."""
    a = play(script, mode, in_order)
    b = Run(machine(mode))
    for instant in script:
        b.advance(b.now + instant.dt, early_ticks=ticks)
        for event in in_order(instant, 0):
            if event is None:
                b.take(b.m.tick(b.now))
            else:
                b.feed(event)
    b.advance(b.now + 10.0)
    assert [(t, d) for t, d in a.log if not isinstance(d, PendingChanged)] == [
        (t, d) for t, d in b.log if not isinstance(d, PendingChanged)
    ]


# -- the rules, one at a time -----------------------------------------------------------------


@given(scripts, modes, st.booleans())
def test_nothing_is_left_due(script: list[Instant], mode: str, has_vad: bool) -> None:
    """due-first, due-now: after any input at ``now``, the next deadline is later than ``now``
    (what fell due was met in the same call)."""
    run = Run(machine(mode, has_vad=has_vad))
    for instant in script:
        run.advance(run.now + instant.dt)
        for event in in_order(instant, 0):
            if event is not None:
                run.feed(event)
                deadline = run.m.deadline
                assert deadline is None or deadline > run.now


@given(scripts, modes)
def test_words_are_neither_lost_nor_repeated(script: list[Instant], mode: str) -> None:
    """Every final transcript ends up in exactly one committed turn, in order, or in the turn
    still heard (nothing is committed by hand here, so no turn is made of interim words)."""
    run = play(script, mode, in_order)
    finals = [
        e.text.strip()
        for instant in script
        for e in instant.stt
        if e.kind is SttEvent.FINAL_TRANSCRIPT and e.text.strip()
    ]
    committed = [t.transcript for t in run.turns()]
    assert " ".join([*committed, run.m.transcript]).split() == finals


@given(scripts)
def test_manual_turns_end_only_when_committed(script: list[Instant]) -> None:
    run = play(script, "manual", in_order)
    assert run.turns() == []
    text = run.m.transcript or run.m._interim.strip()  # interim words when no final ones
    [decision] = [d for d in run.m.commit(run.now) if isinstance(d, TurnEnded)] or [None]
    assert (decision.turn.transcript if decision else "") == text
    assert not run.m.transcript


@given(scripts, st.booleans())
def test_a_vad_turn_waits_its_delay_and_every_verdict_owed(
    script: list[Instant], stt_enabled: bool
) -> None:
    """verdict-owed, due-now: a turn ends no sooner than ``min_delay`` after the speech ended,
    never while speech that began before that instant goes on, and (with an STT) not before
    the STT's verdict on every speech the VAD closed, or ``stt_wait`` without it."""
    run = play(script, "vad", in_order, stt_enabled=stt_enabled)
    for turn in run.turns():
        ended = turn.stopped_speaking_at or 0.0
        assert turn.committed_at >= ended + MIN_DELAY - 1e-9
    # Replay with a probe: at each commit, the machine was not hearing older speech.
    m = machine("vad", stt_enabled=stt_enabled)
    probe = Run(m)
    for instant in script:
        probe.advance(probe.now + instant.dt)
        for event in in_order(instant, 0):
            speaking_since = m._speaking_since if m.speaking else None
            owed = m._owed > 0 and (m._owed_until or 0.0) > probe.now
            before = len(probe.log)
            if event is None:
                probe.take(m.tick(probe.now))
            else:
                probe.feed(event)
            ended = [d for _, d in probe.log[before:] if isinstance(d, TurnEnded)]
            if ended and event is None:
                assert speaking_since is None or speaking_since == probe.now
                assert not owed


@given(st.booleans())
def test_each_vad_speech_closed_is_owed_one_verdict(ahead: bool) -> None:
    """verdict-owed, stt-ahead: the VAD's end owes a verdict unless the STT closed the
    utterance while the VAD still heard it and opened no other since."""
    m = machine("manual")
    m.vad_start(0.0)
    if ahead:
        m.stt(1.0, SttEvent.END_OF_SPEECH)
    m.vad_end(2.0, ended_at=1.5)
    assert (m._owed, m.pending) == (0 if ahead else 1, not ahead)
    m.clear(2.0)
    m.vad_start(3.0)
    m.stt(4.0, SttEvent.END_OF_SPEECH)  # the first burst's verdict
    m.stt(4.5, SttEvent.START_OF_SPEECH)  # a second burst, one speech for the VAD
    m.vad_end(5.0, ended_at=4.8)
    assert m._owed == 1


def test_a_verdict_at_the_instant_speech_begins_is_not_about_it() -> None:
    """ahead-at-an-instant: either order of the two events owes the verdict on the new speech
    when the VAD closes it."""
    for verdict_first in (True, False):
        m = machine("manual")
        if verdict_first:
            m.stt(1.0, SttEvent.END_OF_SPEECH)
            m.vad_start(1.0)
        else:
            m.vad_start(1.0)
            m.stt(1.0, SttEvent.END_OF_SPEECH)
        m.vad_end(2.0, ended_at=1.5)
        assert m._owed == 1, verdict_first


def test_an_utterance_the_stt_opens_as_the_vad_closes_its_speech_is_not_part_of_it() -> None:
    """ahead-at-an-instant: the STT's verdict came while the VAD heard speech; at the instant
    the VAD closes it, the STT opens another utterance: nothing is owed, in either order."""
    for vad_first in (True, False):
        m = machine("manual")
        m.vad_start(0.0)
        m.stt(1.0, SttEvent.END_OF_SPEECH)
        if vad_first:
            m.vad_end(2.0, ended_at=1.5)
            m.stt(2.0, SttEvent.START_OF_SPEECH)
        else:
            m.stt(2.0, SttEvent.START_OF_SPEECH)
            m.vad_end(2.0, ended_at=1.5)
        assert m._owed == 0, vad_first


def test_the_stt_wait_bounds_a_verdict_that_never_comes() -> None:
    m = machine("vad")
    m.vad_start(0.0)
    m.stt(0.5, SttEvent.FINAL_TRANSCRIPT, "hello")
    assert m.vad_end(1.5, ended_at=1.0) == [SpeechEnded()]
    assert m.deadline == 1.5 + STT_WAIT
    decisions = m.tick(1.5 + STT_WAIT)
    assert decisions[:2] == [SttOverdue(STT_WAIT), PendingChanged()]
    [turn] = [d.turn for d in decisions if isinstance(d, TurnEnded)]
    assert (turn.transcript, turn.committed_at) == ("hello", 1.5 + STT_WAIT)
    assert not m.pending


@given(st.booleans(), st.booleans())
def test_speech_at_the_instant_the_turn_ends_is_the_next_turns(
    speech_first: bool, uninterruptible: bool
) -> None:
    """due-first, next-speech: the timer due at 1.5 and a new speech at 1.5, in either order:
    the turn commits without it, and the speech's start and discard mark are the next turn's."""
    m = machine("vad")
    m.vad_start(0.0)
    m.stt(0.5, SttEvent.FINAL_TRANSCRIPT, "one")
    m.vad_end(1.0, ended_at=1.0)
    m.stt(1.0, SttEvent.END_OF_SPEECH)
    assert m.deadline == 1.5
    out: list[Decision] = []
    if not speech_first:
        out += m.tick(1.5)
    out += m.vad_start(1.5)
    if uninterruptible:
        out += m.discard_speech(1.5)
    out += m.tick(1.5)
    [turn] = [d.turn for d in out if isinstance(d, TurnEnded)]
    assert (turn.transcript, turn.committed_at, turn.discarded) == ("one", 1.5, False)
    assert (turn.started_speaking_at, turn.stopped_speaking_at) == (0.0, 1.0)
    m.stt(2.0, SttEvent.FINAL_TRANSCRIPT, "two")
    m.vad_end(3.0, ended_at=2.5)
    [turn] = [d.turn for d in m.stt(3.0, SttEvent.END_OF_SPEECH) if isinstance(d, TurnEnded)]
    assert (turn.transcript, turn.started_speaking_at, turn.discarded) == (
        "two",
        1.5,
        uninterruptible,
    )


@settings(max_examples=100)
@given(
    st.lists(st.tuples(st.floats(0.0, 1.0), st.floats(0.01, 3.0)), min_size=1, max_size=4),
    st.booleans(),
)
def test_a_turn_detector_stretches_the_delay_and_stale_answers_are_dropped(
    answers: list[tuple[float, float]], speak_again: bool
) -> None:
    """The machine asks for a prediction once the turn could end; its answer sets the delay
    (from ``min_delay`` to ``max_delay``); an answer to a prediction the turn no longer waits
    for (new speech came) is ignored."""
    m = machine("model")
    m.vad_start(0.0)
    m.stt(0.5, SttEvent.FINAL_TRANSCRIPT, "hello")
    now = 1.0
    [ask] = [
        d
        for d in m.vad_end(now, ended_at=0.8) + m.stt(now, SttEvent.END_OF_SPEECH)
        if isinstance(d, Predict)
    ]
    assert (ask.transcript, m.predicting, m.deadline) == ("hello", ask.epoch, None)
    if speak_again:
        m.vad_start(now + 0.01)
        assert m.predicting is None
        assert m.predicted(now + 0.02, epoch=ask.epoch, probability=1.0) == []
        m.vad_end(now + 0.5, ended_at=now + 0.3)
        [ask] = [d for d in m.stt(now + 0.5, SttEvent.END_OF_SPEECH) if isinstance(d, Predict)]
        now += 0.5
    probability, latency = answers[0]
    ended = 0.8 if not speak_again else 1.3
    decisions = m.predicted(now + latency, epoch=ask.epoch, probability=probability)
    at = ended + endpointing_delay(probability, min_delay=MIN_DELAY, max_delay=MAX_DELAY)
    if at <= now + latency:
        [turn] = [d.turn for d in decisions if isinstance(d, TurnEnded)]
        assert turn.committed_at == now + latency
    else:
        assert decisions == []
        assert m.deadline == at
        [turn] = [d.turn for d in m.tick(at) if isinstance(d, TurnEnded)]
        assert turn.committed_at == at
    assert turn.transcript == "hello"
    assert not m.pending


# -- preflight ---------------------------------------------------------------------------------


def test_preflight_words_prepare_a_reply_but_only_final_words_end_the_turn() -> None:
    m = machine("vad")
    assert m.vad_start(0.0) == [SpeechStarted()]
    # A pause: the words so far, which the user may still add to.
    assert m.stt(1.2, SttEvent.PREFLIGHT_TRANSCRIPT, " What is the weather ") == [
        Transcribed("What is the weather"),
        Preempt("What is the weather"),
    ]
    assert m.transcript == ""  # no final words yet
    # The VAD's end with nothing final: the turn waits for the STT's verdict.
    decisions = m.vad_end(1.6, ended_at=1.0)
    assert SpeechEnded() in decisions
    assert not any(isinstance(d, TurnEnded) for d in decisions)
    assert m.tick(2.0) == []
    # The final words are the preflight's: no second reply is prepared.
    assert m.stt(2.0, SttEvent.FINAL_TRANSCRIPT, "What is the weather") == [
        Transcribed("What is the weather")
    ]


def test_final_words_that_differ_from_the_preflight_prepare_a_new_reply() -> None:
    m = machine("vad")
    m.vad_start(0.0)
    m.stt(0.5, SttEvent.FINAL_TRANSCRIPT, "Hello.")
    assert m.stt(1.2, SttEvent.PREFLIGHT_TRANSCRIPT, "What is the weather") == [
        Transcribed("Hello. What is the weather"),
        Preempt("Hello. What is the weather"),
    ]
    # The same preflight again prepares nothing new; empty preflight words are no words.
    assert m.stt(1.3, SttEvent.PREFLIGHT_TRANSCRIPT, "What is the weather") == [
        Transcribed("Hello. What is the weather")
    ]
    assert m.stt(1.4, SttEvent.PREFLIGHT_TRANSCRIPT, "  ") == []
    # The user went on: the final words supersede the preflight's.
    assert m.stt(2.5, SttEvent.FINAL_TRANSCRIPT, "What is the weather in Paris?") == [
        Transcribed("Hello. What is the weather in Paris?"),
        Preempt("Hello. What is the weather in Paris?"),
    ]
