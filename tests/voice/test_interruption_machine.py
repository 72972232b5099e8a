"""The interruption machine on its own: scripts of the user's voice and words and of speeches
starting and stopping, on a grid of instants (so that many share one), fed the way the driver
feeds them (the machine ticked at each deadline), and checked for the rules of
``_interruption_machine.py``."""

from __future__ import annotations

import itertools

import attrs
import hypothesis.strategies as st
from hypothesis import given

from tvoice.voice._interruption_machine import (
    DiscardTurn,
    Interrupt,
    InterruptionDecision,
    InterruptionMachine,
    InterruptionPolicy,
    Pause,
    Resume,
    Target,
)


@attrs.define(eq=False)
class Speech:
    """A speech handle: compared by identity, as the driver's are."""

    name: str
    allows_interruptions: bool = True


Decision = InterruptionDecision[Speech]

# -- scripts ----------------------------------------------------------------------------------

USER_START, USER_STOP, SPEECH_START, SPEECH_STOP, WORDS, TICK = (
    "user_start",
    "user_stop",
    "speech_start",
    "speech_stop",
    "words",
    "tick",
)


@attrs.frozen
class Instant:
    """What happens at one instant (each at most once): the user's voice, a speech of the
    queue starting or stopping, the turn's words so far."""

    dt: float
    user: str | None  # USER_START, USER_STOP or None (ignored when it would not change)
    speech: str | None  # SPEECH_START, SPEECH_STOP or None (ignored likewise)
    words: int | None


@attrs.frozen
class World:
    policy: InterruptionPolicy
    speeches: tuple[Speech, ...]  # queued in this order


instants = st.builds(
    Instant,
    st.sampled_from([0.25, 0.5, 1.0, 2.0, 3.0]),
    st.sampled_from([None, None, USER_START, USER_STOP]),
    st.sampled_from([None, None, SPEECH_START, SPEECH_STOP]),
    st.sampled_from([None, None, 0, 1, 2, 4]),
)
scripts = st.lists(instants, min_size=1, max_size=16)
policies = st.builds(
    InterruptionPolicy,
    min_duration=st.sampled_from([0.0, 0.5, 1.0]),
    min_words=st.sampled_from([0, 0, 1, 3]),
    false_timeout=st.sampled_from([0.5, 2.0]),
    can_pause=st.booleans(),
)
worlds = st.builds(
    World,
    policies,
    st.lists(st.booleans(), min_size=1, max_size=4).map(
        lambda allows: tuple(Speech(f"s{i}", a) for i, a in enumerate(allows))
    ),
)


@attrs.define
class Run:
    """A machine fed like the driver feeds it, in a world of queued speeches: every input and
    decision it took, and when."""

    world: World
    m: InterruptionMachine[Speech] = attrs.Factory(InterruptionMachine)
    now: float = 0.0
    log: list[tuple[float, Decision]] = attrs.Factory(list)
    inputs: list[tuple[float, str]] = attrs.Factory(list)
    states: list[tuple[float, object]] = attrs.Factory(list)  # after each instant
    user: bool = False
    queued: int = 0  # the index of the speech that runs (or runs next)
    running: bool = False
    running_since: float = 0.0

    def take(self, decisions: list[Decision]) -> None:
        for d in decisions:
            self.log.append((self.now, d))
        deadline = self.m.deadline
        assert deadline is None or deadline > self.now, "left due after an input"

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
        self.now = max(self.now, to if self.m.deadline is None else self.now)

    # -- the world, as the driver reads it ----------------------------------------------------

    def next_speech(self) -> Speech | None:
        speeches = self.world.speeches
        return speeches[self.queued] if self.queued < len(speeches) else None

    def target(self, speech: Speech | None, *, starting: bool = False) -> Target[Speech] | None:
        if speech is None:
            return None
        playing = self.running and not starting and self.running_since < self.now
        return Target(
            speech=speech, allows_interruptions=speech.allows_interruptions, playing=playing
        )

    def feed(self, kind: str, words: int = 0) -> None:
        m, now, policy = self.m, self.now, self.world.policy
        self.inputs.append((now, kind))
        if kind == TICK:
            self.take(m.tick(now))
        elif kind == USER_START:
            self.user = True
            self.take(m.user_started(now, self.target(self.next_speech()), policy))
        elif kind == USER_STOP:
            self.user = False
            self.take(m.user_stopped(now, policy))
        elif kind == SPEECH_START:
            self.running, self.running_since = True, now
            self.take(
                m.speech_starting(now, self.target(self.next_speech(), starting=True), policy)
            )
        elif kind == SPEECH_STOP:
            speech = self.next_speech()
            assert speech is not None
            self.running, self.queued = False, self.queued + 1
            self.take(m.speech_stopped(now, speech))
        else:
            speech = self.next_speech()
            interruptible = speech if speech is not None and speech.allows_interruptions else None
            self.take(m.words(now, interruptible, words, policy))

    def events_of(self, instant: Instant) -> list[str]:
        """The inputs of ``instant`` that change something, in the script's order (a stop
        before a start at one instant: the queue runs the next speech after the last)."""
        events = []
        if instant.speech == SPEECH_STOP and self.running:
            events.append(SPEECH_STOP)
        if instant.speech == SPEECH_START and not self.running and self.next_speech():
            events.append(SPEECH_START)
        if instant.user == USER_START and not self.user:
            events.append(USER_START)
        if instant.user == USER_STOP and self.user:
            events.append(USER_STOP)
        if instant.words is not None:
            events.append(WORDS)
        return events

    def end(self) -> None:
        """The user stops, the speech stops, time passes: everything settles."""
        self.advance(self.now + 1.0)
        if self.user:
            self.feed(USER_STOP)
        self.advance(self.now + 10.0)
        if self.running:
            self.feed(SPEECH_STOP)
        if self.m.paused is not None:
            # An interrupted speech still queued runs (at once cut) and stops.
            assert self.m.paused is self.next_speech()
            self.feed(SPEECH_START)
            self.feed(SPEECH_STOP)
        self.advance(self.now + 10.0)

    def state(self) -> object:
        m = self.m
        return (m.paused, m.deadline, m.user_speaking)


def play(world: World, script: list[Instant], orders: list[list[int] | None] | None = None) -> Run:
    """Feed ``script``; ``orders[i]`` permutes the inputs of instant i (and places the tick)."""
    run = Run(world)
    for i, instant in enumerate(script):
        run.advance(run.now + instant.dt)
        events = [*run.events_of(instant), TICK]
        order = orders[i] if orders is not None else None
        for k in order if order is not None else range(len(events)):
            run.feed(events[k], instant.words or 0)
        run.states.append((run.now, run.state()))
    run.end()
    return run


def allowed(events: list[str], order: tuple[int, ...]) -> bool:
    """speaks-over, due-first: the orders the rules make equal. The words come last, and a
    speech that stops before a user who starts at its instant (what the user speaks over
    depends on which)."""
    seq = [events[k] for k in order]
    if WORDS in seq and seq[-1] != WORDS and seq[-2:] != [WORDS, TICK]:
        return False
    if SPEECH_STOP in seq and USER_START in seq:
        return seq.index(SPEECH_STOP) < seq.index(USER_START)
    return True


@st.composite
def script_in_two_orders(draw: st.DrawFn) -> tuple[World, list[Instant], list[list[int] | None]]:
    world = draw(worlds)
    script = draw(scripts)
    # Which inputs each instant has depends on the world so far: play it once to know.
    run = Run(world)
    orders: list[list[int] | None] = []
    for instant in script:
        run.advance(run.now + instant.dt)
        events = [*run.events_of(instant), TICK]
        perms = [p for p in itertools.permutations(range(len(events))) if allowed(events, p)]
        orders.append(list(draw(st.sampled_from(perms))))
        for k in range(len(events)):
            run.feed(events[k], instant.words or 0)
    return world, script, orders


def by_instant(run: Run) -> list[tuple[float, frozenset[object]]]:
    """The decisions of each instant, as a set (a pause or discard decided twice at an instant
    is one, as the output and the turn take it)."""
    times = sorted({t for t, _ in run.log})
    return [(t, frozenset(d for u, d in run.log if u == t)) for t in times]


# -- one instant, any order -------------------------------------------------------------------


@given(script_in_two_orders())
def test_inputs_of_one_instant_give_the_same_decisions_in_any_order_the_rules_allow(
    case: tuple[World, list[Instant], list[list[int] | None]],
) -> None:
    """due-first, speaks-over: the user's voice, a speech starting or stopping and the timer
    due at that instant, in any order (the words last), decide the same pauses, resumptions,
    interruptions and discards at the same times, and leave the same state."""
    world, script, orders = case
    a = play(world, script)
    b = play(world, script, orders)
    assert by_instant(a) == by_instant(b)
    assert a.states == b.states


@given(worlds, scripts, st.lists(st.floats(0.0, 1.0), max_size=3).map(tuple))
def test_waking_when_nothing_is_due_changes_nothing(
    world: World, script: list[Instant], ticks: tuple[float, ...]
) -> None:
    """The driver may wake the machine early or often: only a deadline that has come does
    anything."""
    a = play(world, script)
    b = Run(world)
    for instant in script:
        b.advance(b.now + instant.dt, early_ticks=ticks)
        for kind in [*b.events_of(instant), TICK]:
            b.feed(kind, instant.words or 0)
    b.end()
    assert a.log == b.log


# -- the rules, one at a time -----------------------------------------------------------------


@given(worlds, scripts)
def test_nothing_is_left_due(world: World, script: list[Instant]) -> None:
    """due-first: after any input at ``now`` the next deadline is later than ``now`` (``take``
    checks it after every input and tick)."""
    play(world, script)


@given(worlds, scripts)
def test_a_pause_is_always_followed_by_a_resumption_or_an_interruption(
    world: World, script: list[Instant]
) -> None:
    """Once the user is silent and the speech stops, nothing stays paused: each pause is
    followed by a resumption or by the interruption of the paused speech."""
    run = play(world, script)
    assert run.m.paused is None
    for i, (_, d) in enumerate(run.log):
        if isinstance(d, Pause):
            later = [e for _, e in run.log[i + 1 :]]
            assert any(
                isinstance(e, Resume) or (isinstance(e, Interrupt) and e.speech is d.speech)
                for e in later
            ), run.log


@given(worlds, scripts)
def test_a_false_interruption_resumes_after_its_timeout(
    world: World, script: list[Instant]
) -> None:
    """A resumption for a false interruption comes ``false_timeout`` after the user stopped,
    with no voice or words since; and only while something is paused."""
    run = play(world, script)
    for t, d in run.log:
        if isinstance(d, Resume) and d.false_interruption:
            before = [(u, k) for u, k in run.inputs if u < t and k in (USER_START, USER_STOP)]
            last_time, last_kind = before[-1]
            assert last_kind == USER_STOP
            assert t == last_time + world.policy.false_timeout
    paused = False
    for _, d in run.log:
        if isinstance(d, Pause):
            paused = True
        elif isinstance(d, Resume):
            assert paused, "resumed what was not paused"
            paused = False


@given(worlds, scripts)
def test_an_uninterruptible_speech_is_never_paused_or_interrupted(
    world: World, script: list[Instant]
) -> None:
    """allow_interruptions=False: the user's voice over it discards the turn, nothing more."""
    run = play(world, script)
    for _, d in run.log:
        if isinstance(d, (Pause, Interrupt)):
            assert d.speech.allows_interruptions


# -- examples ---------------------------------------------------------------------------------

POLICY = InterruptionPolicy(min_duration=0.5, min_words=0, false_timeout=2.0, can_pause=True)


def heard(speech: Speech, *, playing: bool = True) -> Target[Speech]:
    return Target(speech=speech, allows_interruptions=speech.allows_interruptions, playing=playing)


def test_voice_pauses_a_heard_speech_after_the_min_duration_and_words_interrupt_it() -> None:
    m: InterruptionMachine[Speech] = InterruptionMachine()
    a = Speech("a")
    assert m.user_started(5.0, heard(a), POLICY) == []
    assert m.deadline == 5.5
    assert m.tick(5.4) == []
    assert m.tick(5.5) == [Pause(a)]
    assert m.paused is a
    assert m.words(6.0, a, 1, POLICY) == [Interrupt(a)]
    assert m.deadline is None
    assert m.user_stopped(6.1, POLICY) == []
    assert m.deadline == 8.1  # still paused until it stops (at once, being cut)
    assert m.speech_stopped(6.2, a) == [Resume(false_interruption=False)]
    assert (m.paused, m.deadline) == (None, None)


def test_a_false_interruption_resumes_after_its_timeout_and_voice_first_meets_it() -> None:
    """due-first: voice at the instant the resumption is due comes after it."""
    m: InterruptionMachine[Speech] = InterruptionMachine()
    a = Speech("a")
    m.user_started(2.0, heard(a), POLICY)
    assert m.user_stopped(2.5, POLICY) == [Pause(a)]  # due at 2.5, met first
    assert m.deadline == 4.5
    assert m.user_started(4.5, heard(a), POLICY) == [Resume(false_interruption=True)]
    assert m.deadline == 5.0
    assert m.tick(5.0) == [Pause(a)]


def test_without_pausing_the_voice_interrupts_after_the_min_duration() -> None:
    m: InterruptionMachine[Speech] = InterruptionMachine()
    a = Speech("a")
    policy = attrs.evolve(POLICY, can_pause=False)
    m.user_started(1.0, heard(a), policy)
    assert m.user_stopped(1.5, policy) == [Interrupt(a)]
    assert m.deadline is None


def test_a_speech_not_heard_yet_is_paused_at_once_and_min_words_leave_it_to_the_words() -> None:
    m: InterruptionMachine[Speech] = InterruptionMachine()
    a = Speech("a")
    assert m.user_started(1.0, heard(a, playing=False), POLICY) == [Pause(a)]
    words = attrs.evolve(POLICY, min_words=3)
    m2: InterruptionMachine[Speech] = InterruptionMachine()
    assert m2.user_started(1.0, heard(a), words) == []
    assert m2.deadline is None
    assert m2.words(1.5, a, 2, words) == []
    assert m2.words(1.6, a, 3, words) == [Interrupt(a)]


def test_a_user_who_starts_as_a_speech_starts_speaks_over_it_in_either_order() -> None:
    a = Speech("a")
    m: InterruptionMachine[Speech] = InterruptionMachine()
    m.speech_starting(1.0, heard(a, playing=False), POLICY)
    first = m.user_started(1.0, heard(a, playing=False), POLICY)
    m2: InterruptionMachine[Speech] = InterruptionMachine()
    m2.user_started(1.0, heard(a, playing=False), POLICY)
    second = m2.speech_starting(1.0, heard(a, playing=False), POLICY)
    assert first == second == [Pause(a)]
    assert m2.speech_starting(1.5, heard(a, playing=False), POLICY) == []  # not at its instant


def test_voice_over_an_uninterruptible_speech_discards_the_turn() -> None:
    m: InterruptionMachine[Speech] = InterruptionMachine()
    a = Speech("a", allows_interruptions=False)
    assert m.user_started(1.0, heard(a), POLICY) == [DiscardTurn()]
    assert m.deadline is None


def test_a_refused_pause_leaves_what_was_paused() -> None:
    m: InterruptionMachine[Speech] = InterruptionMachine()
    a, b = Speech("a"), Speech("b")
    m.user_started(1.0, heard(a, playing=False), POLICY)
    assert m.paused is a
    m.user_stopped(1.2, POLICY)
    m.user_started(1.4, heard(b), POLICY)
    assert m.tick(1.9) == [Pause(b)]
    m.pause_refused(b)
    assert m.paused is a
