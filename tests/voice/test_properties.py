"""Property test: random timelines through AgentSession keep the runtime's invariants.

Each example scripts a conversation (user speech bursts and noise, LLM replies with tool calls
to fast, slow, failing, unknown and handoff tools, TTS audio for every text the runtime may
speak), runs it on trio's MockClock with random session options, sometimes closes the session
early, and then checks what was heard, what was recorded and how the states moved.
"""

from __future__ import annotations

import itertools
import json

import attrs
import hypothesis.strategies as st
import pytest
import trio
import trio.testing
from hypothesis import currently_in_test_context, event, given

from tests.voice.conftest import Recorder
from tvoice import function_tool
from tvoice.llm import FunctionCall
from tvoice.testing import FakeAudioOutput, Timeline
from tvoice.voice import Agent

EPS = 1e-6
VAD_START_DELAY = 0.05  # FakeVAD's documented timing
VAD_END_DELAY = 0.5
WAIT_DONE_LIMIT = 300.0  # virtual seconds: a session that is not idle by then is stuck
MAX_HISTORY = 500  # items: a scenario has at most ~60
INTERNAL_ERROR = "An internal error occurred while running the tool."
SORRY = "Sorry, that failed."
GREETING = "Hello, I am the main agent."
SECOND_GREETING = "Second agent here."
FIXED_AUDIO = {SORRY: 1.0, GREETING: 1.5, SECOND_GREETING: 1.0}
VOCAB = ("alpha", "bravo", "charlie", "delta", "echo", "foxtrot", "golf", "hotel")
USER_VOCAB = ("stop", "wait", "hello", "please", "more", "ok")
TOOLS = ("fast", "slow", "broken", "unknown", "transfer")

# -- the scenario -----------------------------------------------------------------------------


@attrs.frozen
class Reply:
    """What the LLM answers to one input, and how the TTS speaks its content."""

    content: str
    calls: tuple[Call, ...] = ()
    ttft: float = 0.1
    duration: float = 0.3
    audio: float = 1.0
    tts_ttfb: float = 0.2
    tts_duration: float = 0.3


@attrs.frozen
class Call:
    """A tool call in a reply; ``reply`` answers its output (None: the shared SORRY reply)."""

    tool: str
    tag: str = ""
    seconds: float = 0.0
    reply: Reply | None = None

    @property
    def name(self) -> str:
        return f"nope_{self.tag}" if self.tool == "unknown" else self.tool

    @property
    def output(self) -> str:
        return {
            "fast": f"{self.tag} fast done",
            "slow": f"{self.tag} slow done",
            "broken": INTERNAL_ERROR,
            "unknown": f"Unknown function: {self.name!r}",
            "transfer": f"{self.tag} transferred",
        }[self.tool]

    def function_call(self) -> FunctionCall:
        arguments = {"tag": self.tag} | ({"seconds": self.seconds} if self.tool == "slow" else {})
        return FunctionCall(
            call_id=f"call_{self.tag}", name=self.name, arguments=json.dumps(arguments)
        )


@attrs.frozen
class Burst:
    """The user speaks (or makes noise, with an empty transcript) from ``start`` to ``end``."""

    start: float
    end: float
    transcript: str
    stt_delay: float = 0.2
    reply: Reply | None = None


@attrs.frozen
class Scenario:
    bursts: tuple[Burst, ...]
    # Replies to turns heard as several bursts: one per subset of 2+ transcripts, in order.
    merged: tuple[Reply, ...] = ()
    options: dict[str, object] = attrs.field(factory=dict)
    greeting: bool = False
    close_timeout: float = 10.0
    cut: float | None = None  # leave the session this long after the start, without wait_done


def merged_keys(bursts: tuple[Burst, ...]) -> list[str]:
    said = [b.transcript for b in bursts if b.transcript]
    return [
        " ".join(subset)
        for n in range(2, len(said) + 1)
        for subset in itertools.combinations(said, n)
    ]


def all_replies(sc: Scenario) -> list[tuple[str, Reply]]:
    """Every (LLM input, reply) pair of the scenario."""
    out: list[tuple[str, Reply]] = []

    def walk(key: str, reply: Reply) -> None:
        out.append((key, reply))
        for call in reply.calls:
            if call.reply is not None:
                walk(call.output, call.reply)

    for b in sc.bursts:
        if b.reply is not None:
            walk(b.transcript, b.reply)
    for key, reply in zip(merged_keys(sc.bursts), sc.merged, strict=False):
        walk(key, reply)
    return out


def contents(sc: Scenario) -> set[str]:
    """Every text the agent may say."""
    return {r.content for _, r in all_replies(sc) if r.content} | set(FIXED_AUDIO)


def audio_durations(sc: Scenario) -> set[float]:
    return {r.audio for _, r in all_replies(sc) if r.content} | set(FIXED_AUDIO.values())


def script(tl: Timeline, sc: Scenario) -> None:
    for b in sc.bursts:
        tl.user_speech(start=b.start, end=b.end, transcript=b.transcript, stt_delay=b.stt_delay)
    for key, r in all_replies(sc):
        calls = [c.function_call() for c in r.calls]
        tl.llm(input=key, content=r.content, tool_calls=calls, ttft=r.ttft, duration=r.duration)
        if r.content:
            tl.tts(
                input=r.content, audio_duration=r.audio, ttfb=r.tts_ttfb, duration=r.tts_duration
            )
    tl.llm(input=INTERNAL_ERROR, content=SORRY)
    for text, audio in FIXED_AUDIO.items():
        tl.tts(input=text, audio_duration=audio)


# -- strategies -------------------------------------------------------------------------------


def steps(lo: float, hi: float, step: float = 0.05) -> st.SearchStrategy[float]:
    """Multiples of ``step``: round times make simultaneous events (and races) likely."""
    return st.integers(round(lo / step), round(hi / step)).map(lambda n: round(n * step, 2))


def often(usual: object, *others: object) -> st.SearchStrategy[object]:
    """``usual`` half of the time (and what shrinking goes to), else one of ``others``."""
    return st.sampled_from([usual] * len(others) + list(others))


MAX_CALLS = (2, 1, 1, 0)  # per reply, by step: max_tool_steps <= 3 means at most 4 LLM steps


@st.composite
def replies(draw: st.DrawFn, level: int, *, with_calls: bool = True) -> Reply:
    calls = ()
    if with_calls and MAX_CALLS[level]:
        calls = tuple(draw(st.lists(tool_calls(level + 1), max_size=MAX_CALLS[level])))
    n_words = draw(st.integers(0 if calls else 1, 15))
    words = draw(st.lists(st.sampled_from(VOCAB), min_size=n_words, max_size=n_words))
    content = " ".join(words).capitalize() + "." if words else ""
    ttft = draw(steps(0, 1))
    tts_ttfb = draw(steps(0, 0.5))
    return Reply(
        content=content,
        calls=calls,
        ttft=ttft,
        duration=round(ttft + draw(steps(0, 2)), 2),
        audio=draw(steps(0.5, 8, 0.1)),
        tts_ttfb=tts_ttfb,
        tts_duration=round(tts_ttfb + draw(steps(0, 1)), 2),
    )


@st.composite
def tool_calls(draw: st.DrawFn, level: int) -> Call:
    tool = draw(st.sampled_from(TOOLS))
    seconds = draw(steps(0.5, 8)) if tool == "slow" else 0.0
    reply = None if tool == "broken" else draw(replies(min(level, len(MAX_CALLS) - 1)))
    return Call(tool=tool, seconds=seconds, reply=reply)


def numbered(sc: Scenario) -> Scenario:
    """Give every call a unique tag, so call ids and tool outputs (LLM keys) never collide."""
    counter = itertools.count(1)

    def reply(r: Reply | None) -> Reply | None:
        if r is None:
            return None
        calls = tuple(
            attrs.evolve(c, tag=f"t{next(counter)}", reply=reply(c.reply)) for c in r.calls
        )
        return attrs.evolve(r, calls=calls)

    bursts = tuple(attrs.evolve(b, reply=reply(b.reply)) for b in sc.bursts)
    return attrs.evolve(sc, bursts=bursts)


@st.composite
def scenarios(draw: st.DrawFn, *, min_gap: float = 0.5) -> Scenario:
    """Random conversations; bursts at least ``min_gap`` apart (below 0.5 s, FakeVAD hears
    some as one speech)."""
    bursts: list[Burst] = []
    t = draw(steps(0.5, 3))
    for index in range(draw(st.integers(1, 4))):
        end = round(t + draw(steps(0.2, 3)), 2)
        if end > 30:
            break
        noise = draw(often(False, True))
        n_words = draw(st.integers(1, 4))
        words = draw(st.lists(st.sampled_from(USER_VOCAB), min_size=n_words, max_size=n_words))
        transcript = "" if noise else " ".join(f"{w}{index}" for w in words)
        bursts.append(
            Burst(
                start=t,
                end=end,
                transcript=transcript,
                stt_delay=draw(steps(0.05, 1)),
                reply=None if noise else draw(replies(0)),
            )
        )
        # FakeVAD merges bursts closer than its 0.5 s end delay into one speech: by default
        # keep them apart, so that each burst is one VAD speech (check_states relies on it).
        t = round(end + draw(steps(min_gap, 6)), 2)
    merged = draw(
        st.lists(
            replies(0, with_calls=False),
            min_size=len(merged_keys(tuple(bursts))),
            max_size=len(merged_keys(tuple(bursts))),
        )
    )
    options = {
        "allow_interruptions": draw(often(True, False)),
        "min_interruption_duration": draw(steps(0, 1)),
        "min_interruption_words": draw(often(0, 1, 2, 3)),
        "false_interruption_timeout": draw(steps(0.5, 3)),
        "resume_false_interruption": draw(often(True, False)),
        "preemptive_generation": draw(st.booleans()),
        "max_tool_steps": draw(st.integers(1, 3)),
    }
    return numbered(
        Scenario(
            bursts=tuple(bursts),
            merged=tuple(merged),
            options=options,
            greeting=draw(st.booleans()),
            close_timeout=draw(steps(0.5, 5)),
            cut=draw(st.none() | steps(0, 1).map(lambda f: round(f * (bursts[-1].end + 6), 2))),
        )
    )


# -- the agents -------------------------------------------------------------------------------


class Main(Agent):
    def __init__(self, *, greeting: str | None = None) -> None:
        super().__init__(instructions="You are a test agent.")
        self.greeting = greeting

    async def on_enter(self) -> None:
        if self.greeting:
            self.session.say(self.greeting)

    @function_tool
    async def fast(self, tag: str) -> str:
        """Answers at once."""
        return f"{tag} fast done"

    @function_tool
    async def slow(self, tag: str, seconds: float) -> str:
        """Answers after a while."""
        await trio.sleep(seconds)
        return f"{tag} slow done"

    @function_tool
    async def broken(self, tag: str) -> str:
        """Always fails."""
        raise RuntimeError(f"{tag} broke")

    @function_tool
    async def transfer(self, tag: str):
        """Hands the user to another agent."""
        return Second(), f"{tag} transferred"


class Second(Main):
    def __init__(self) -> None:
        super().__init__(greeting=SECOND_GREETING)


# -- running it -------------------------------------------------------------------------------


@attrs.define
class Segment:
    """One playback as the output saw it."""

    started_at: float
    finished_at: float
    position: float
    interrupted: bool
    pushed: float
    speech: object


class RecordingOutput(FakeAudioOutput):
    """A FakeAudioOutput that also records, per segment, the audio pushed, when it finished,
    and which speech was playing it; and whether the output is paused right now."""

    def __init__(self) -> None:
        super().__init__()
        self.session: object = None
        self.segments: list[Segment] = []
        self.started_times: list[float] = []
        self.paused = False
        self._pushed: float | None = None
        self._speech: object = None

    async def capture_frame(self, frame) -> None:
        await super().capture_frame(frame)
        if self._pushed is None:
            self._pushed, self._speech = 0.0, getattr(self.session, "current_speech", None)
        self._pushed += frame.duration

    @property
    def segment_open(self) -> bool:
        """Frames were captured for a segment that has not finished."""
        return self._pushed is not None

    def on_playback_started(self, *, created_at: float) -> None:
        self.started_times.append(created_at)
        super().on_playback_started(created_at=created_at)

    def on_playback_finished(self, *, playback_position: float, interrupted: bool, **kw) -> None:
        last = self.playbacks[-1]
        self.segments.append(
            Segment(
                started_at=last.started_at,
                finished_at=trio.current_time(),
                position=playback_position,
                interrupted=interrupted,
                pushed=self._pushed or 0.0,
                speech=self._speech,
            )
        )
        self._pushed, self._speech = None, None
        super().on_playback_finished(
            playback_position=playback_position, interrupted=interrupted, **kw
        )

    def pause(self) -> None:
        self.paused = True
        super().pause()

    def resume(self) -> None:
        self.paused = False
        super().resume()


@attrs.define
class Outcome:
    tl: Timeline
    session: object
    rec: Recorder
    output: RecordingOutput
    interrupted_at: dict[str, float]
    done: bool  # wait_done returned (the timeline was not cut short)
    paused_when_idle: bool
    playing_when_idle: bool
    runaway: bool  # the history kept growing without time passing: stopped by the test
    exit_took: float


async def play(sc: Scenario) -> Outcome:
    tl = Timeline(frame_duration=0.1)  # the fakes follow the script: big frames only save CPU
    output = tl.audio_output = RecordingOutput()
    script(tl, sc)
    interrupted_at: dict[str, float] = {}

    def track(event) -> None:
        # Record when each speech is interrupted (by the user, or by the close).
        handle = event.speech_handle
        interrupt = handle.interrupt

        def recording_interrupt(*, force: bool = False):
            if not handle.done() and (handle.allow_interruptions or force):
                interrupted_at.setdefault(handle.id, trio.current_time())
            return interrupt(force=force)

        handle.interrupt = recording_interrupt

    done = paused_when_idle = playing_when_idle = runaway = False
    async with tl.session(close_timeout=sc.close_timeout, **sc.options) as session:
        with trio.CancelScope() as body:

            def guard(_event) -> None:
                # A loop that runs in zero virtual time would never end under autojump.
                nonlocal runaway
                if len(session.history.items) > MAX_HISTORY:
                    runaway = True
                    body.cancel()

            rec = Recorder(session)
            session.on("speech_created", track)
            session.on("conversation_item_added", guard)
            output.session = session
            await session.start(Main(greeting=GREETING if sc.greeting else None))
            if sc.cut is None:
                with trio.move_on_after(WAIT_DONE_LIMIT):
                    await tl.wait_done()
                    done = True
                paused_when_idle, playing_when_idle = output.paused, output.playing
            else:
                await trio.sleep(sc.cut)
        leaving = trio.current_time()
    exit_took = trio.current_time() - leaving
    return Outcome(
        tl=tl,
        session=session,
        rec=rec,
        output=output,
        interrupted_at=interrupted_at,
        done=done and not runaway,
        paused_when_idle=paused_when_idle,
        playing_when_idle=playing_when_idle,
        runaway=runaway,
        exit_took=exit_took,
    )


def run_scenario(sc: Scenario) -> Outcome:
    return trio.run(play, sc, clock=trio.testing.MockClock(autojump_threshold=0))


# -- the invariants ---------------------------------------------------------------------------


def paused_within(periods: list[tuple[float, float]], start: float, end: float) -> float:
    return sum(max(0.0, min(b, end) - max(a, start)) for a, b in periods)


def check_no_crash(sc: Scenario, o: Outcome) -> None:
    """Only the raising tool reports errors; each utterance is transcribed once; no loops."""
    finals = [e.transcript for e in o.rec.of("user_input_transcribed") if e.is_final]
    repeated = sorted({t for t in finals if finals.count(t) > 1})
    assert not repeated, f"final transcripts reported twice: {repeated}"
    said = contents(sc)
    own = [r for r in o.tl.llm_requests if any(c.startswith(r) for c in said)]
    assert not own, f"the LLM was asked to answer the agent's own words: {own}"
    assert not o.runaway, f"runaway: {MAX_HISTORY} history items with no time passing"
    unexpected = [
        e.error
        for e in o.rec.of("error")
        if not (isinstance(e.error, RuntimeError) and str(e.error).endswith(" broke"))
    ]
    assert not unexpected, f"unexpected errors: {unexpected!r}"
    if sc.cut is None:
        assert o.done, "the session never became idle"


def check_audio(sc: Scenario, o: Outcome) -> None:
    """1. Nothing is heard after an interruption or while paused; never more than was pushed."""
    periods = o.output.paused_periods
    durations = audio_durations(sc)
    assert len(o.output.segments) == len(o.output.playbacks), "a playback was not reported"
    for a, b in periods:
        assert a <= b + EPS, f"paused period ends before it starts: {periods}"
    for seg in o.output.segments:
        played = seg.finished_at - seg.started_at
        window = played - paused_within(periods, seg.started_at, seg.finished_at)
        assert seg.position <= window + EPS, f"heard more than played: {seg}"
        assert seg.position <= seg.pushed + EPS, f"heard more than pushed: {seg}"
        assert seg.position <= max(durations) + EPS, f"longer than any scripted audio: {seg}"
        if seg.interrupted:
            speech_id = getattr(seg.speech, "id", None)
            assert speech_id in o.interrupted_at, f"playback cut without an interruption: {seg}"
            cut = o.interrupted_at[speech_id]
            heard_by_cut = cut - seg.started_at - paused_within(periods, seg.started_at, cut)
            assert seg.position <= max(0.0, heard_by_cut) + EPS, f"heard after the cut: {seg}"
        else:
            assert seg.position == pytest.approx(seg.pushed, abs=EPS), seg
            assert any(abs(seg.pushed - d) < 1e-3 for d in durations), f"partial playback: {seg}"
    assert not o.paused_when_idle, "the output stayed paused once the session was idle"
    assert not o.playing_when_idle, "audio still playing once the session was idle"
    assert not o.output.segment_open, "a playback never finished, even after the close"


def check_tool_pairs(ctx, *, complete: bool, where: str) -> None:
    """2. One output per call, matching call ids, no call id twice; outputs after calls."""
    calls = [(i, item) for i, item in enumerate(ctx.items) if item.type == "function_call"]
    outputs = [(i, item) for i, item in enumerate(ctx.items) if item.type == "function_call_output"]
    call_ids = [c.call_id for _, c in calls]
    assert len(call_ids) == len(set(call_ids)), f"{where}: a call id appears twice: {call_ids}"
    position = {c.call_id: i for i, c in calls}
    seen: set[str] = set()
    for i, out in outputs:
        assert out.call_id in position, f"{where}: output without a call: {out}"
        assert out.call_id not in seen, f"{where}: two outputs for {out.call_id}"
        assert position[out.call_id] < i, f"{where}: output before its call: {out.call_id}"
        seen.add(out.call_id)
    if complete:
        missing = [c for c in call_ids if c not in seen]
        assert not missing, f"{where}: calls without an output: {missing}"


def check_history(sc: Scenario, o: Outcome) -> None:
    """2 and 3: tool calls pair up, created_at never goes back, messages match the script."""
    history = o.session.history
    check_tool_pairs(history, complete=o.done, where="session.history")
    for item in history.items:
        if item.type == "agent_handoff":
            agent = o.session.agent_by_id(item.new_agent_id)
            check_tool_pairs(agent.chat_ctx, complete=o.done, where=f"{agent!r}.chat_ctx")
    times = [item.created_at for item in history.items]
    assert times == sorted(times), f"history not in created_at order: {times}"
    replies = [m for m in history.messages() if m.role == "assistant"]
    played = [seg for seg in o.output.segments if not seg.interrupted and seg.position > 0]
    if o.done:
        assert len(replies) >= len(played), "a reply played to its end is not in the history"
    said = contents(sc)
    turns = {b.transcript for b in sc.bursts if b.transcript} | set(merged_keys(sc.bursts))
    for m in history.messages():
        if m.role == "user":
            assert m.text_content in turns, m
        elif m.interrupted:
            assert any(c.startswith(m.text_content) for c in said), m
        else:
            assert m.text_content in said, m


def check_close(sc: Scenario, o: Outcome) -> None:
    """4. Closing takes at most close_timeout and fires `close` once."""
    assert o.exit_took <= sc.close_timeout + EPS, f"closing took {o.exit_took}"
    assert len(o.rec.of("close")) == 1


def check_states(sc: Scenario, o: Outcome) -> None:
    """5. Agent and user states move only as allowed."""
    for events in (o.rec.of("agent_state_changed"), o.rec.of("user_state_changed")):
        for before, after in itertools.pairwise(events):
            assert after.old_state == before.new_state, (before, after)
        for e in events:
            assert e.old_state != e.new_state, e
    agent = o.rec.of("agent_state_changed")
    assert agent, "the agent never left initializing"
    assert (agent[0].old_state, agent[0].new_state) == ("initializing", "listening")
    assert all(e.new_state != "initializing" for e in agent)
    starts = o.output.started_times
    for e in agent:
        if e.new_state == "speaking":
            assert any(abs(e.created_at - t) < EPS for t in starts), f"speaking, no playback: {e}"
    # ... and it stays "speaking" while its audio is heard.
    for seg in o.output.segments:
        if seg.position <= EPS:
            continue
        state = [e.new_state for e in agent if e.created_at <= seg.started_at + EPS][-1]
        assert state == "speaking", f"{state} when a playback starts: {seg}"
        for e in agent:
            inside = seg.started_at + EPS < e.created_at < seg.finished_at - EPS
            paused = any(a - EPS <= e.created_at <= b + EPS for a, b in o.output.paused_periods)
            assert not inside or paused, f"{e.new_state} at {e.created_at} while playing: {seg}"
    vad = [(b.start + VAD_START_DELAY, b.end + VAD_END_DELAY) for b in sc.bursts]
    user = o.rec.of("user_state_changed")
    spoke = []
    for i, e in enumerate(user):
        if e.new_state != "speaking":
            continue
        match = [(s, end) for s, end in vad if abs(e.created_at - s) < EPS]
        assert match, f"user speaking outside VAD speech: {e}"
        spoke.append(match[0][0])
        if i + 1 < len(user):
            after = user[i + 1]
            assert after.new_state == "listening", after
            assert abs(after.created_at - match[0][1]) < EPS, f"speaking ended off VAD: {after}"
    if o.done:
        assert spoke == [s for s, _ in vad], f"user speaking at {spoke}, VAD speech at {vad}"


def trace(o: Outcome) -> str:
    """What happened, for failure messages (each line cut at 3000 characters)."""
    history = [
        (
            item.type,
            getattr(item, "role", None) or getattr(item, "name", None),
            getattr(item, "text_content", None) or getattr(item, "output", None),
            item.created_at,
        )
        for item in o.session.history.items
    ]
    lines = [
        f"llm requests: {o.tl.llm_requests}",
        f"agent states: {o.rec.agent_states}",
        f"user states: {o.rec.user_states}",
        f"segments: {o.output.segments}",
        f"paused: {o.output.paused_periods}",
        f"interrupted at: {o.interrupted_at}",
        f"history: {history}",
    ]
    return "\n".join(line[:3000] for line in lines)


def coverage_events(sc: Scenario, o: Outcome) -> None:
    """What the example exercised (see --hypothesis-show-statistics)."""
    segments = o.output.segments
    for name, hit in {
        f"{len(sc.bursts)} bursts": True,
        "cut short": sc.cut is not None,
        "playback interrupted": any(s.interrupted and s.position > 0 for s in segments),
        "output paused": bool(o.output.paused_periods),
        "false interruption": bool(o.rec.of("agent_false_interruption")),
        "handoff": sum(i.type == "agent_handoff" for i in o.session.history.items) > 1,
        "several LLM steps": len(o.tl.llm_requests) > sum(1 for b in sc.bursts if b.transcript),
        "turn of several bursts": any(
            m.text_content in merged_keys(sc.bursts) for m in o.session.history.messages()
        ),
        "tool error": bool(o.rec.of("error")),
    }.items():
        if hit:
            event(name)


def check(sc: Scenario, o: Outcome) -> None:
    if currently_in_test_context():
        coverage_events(sc, o)
    try:
        check_no_crash(sc, o)
        check_audio(sc, o)
        check_history(sc, o)
        check_close(sc, o)
        check_states(sc, o)
    except AssertionError as e:
        raise AssertionError(f"{e}\n{trace(o)}") from None


@given(scenarios())
def test_random_timelines_keep_the_invariants(sc: Scenario) -> None:
    check(sc, run_scenario(sc))


# -- regressions: runtime bugs the property test found, as minimal timelines ------------------


def test_regression_assistant_message_is_stamped_before_its_tool_calls() -> None:
    """Was: the message was stamped when recorded (end of its playout, 3.0) but listed before
    the call and output of its own LLM step (1.8): history out of created_at order."""
    # The user says "hello0" (0.5-1.0); the LLM says "Alpha." and calls `fast` (1.5-1.8);
    # "Alpha." plays 2.0-3.0, then the reply to the tool output, "Bravo.", 3.5-4.5.
    fast = Call(tool="fast", reply=Reply("Bravo."))
    sc = numbered(
        Scenario(
            bursts=(
                Burst(
                    start=0.5,
                    end=1.0,
                    transcript="hello0",
                    reply=Reply(content="Alpha.", calls=(fast,)),
                ),
            )
        )
    )
    o = run_scenario(sc)
    check(sc, o)
    times = [item.created_at for item in o.session.history.items]
    assert times == sorted(times)  # was [0.0, 1.5, 3.0 (Alpha.), 1.8, 1.8, 4.5 (Bravo.)]


def test_regression_handoff_at_the_instant_of_a_final_transcript() -> None:
    """Was: the STT stream restarted by the handoff, at the very instant the final transcript
    of the turn was due, reported it again; the new agent answered the same turn with another
    handoff at the same instant: an endless loop in zero virtual time."""
    # "hello0" (0.5-1.0, final at 1.5 = end of endpointing): the turn commits at 1.5 and an
    # instant LLM (ttft = duration = 0) calls `transfer`, so the handoff happens at 1.5 too.
    transfer = Call(tool="transfer", reply=Reply("Alpha."))
    reply = Reply(content="", calls=(transfer,), ttft=0.0, duration=0.0)
    sc = numbered(
        Scenario(
            bursts=(Burst(start=0.5, end=1.0, transcript="hello0", stt_delay=0.5, reply=reply),)
        )
    )
    o = run_scenario(sc)
    check(sc, o)
    finals = [e.transcript for e in o.rec.of("user_input_transcribed") if e.is_final]
    assert finals == ["hello0"]  # was "hello0" ~125 times, until the test stopped it
    assert not o.runaway


def test_regression_segment_cleared_before_its_flush_is_closed() -> None:
    """Was: a segment cleared by an interruption before its flush() left the output
    "capturing", so the next reply's frames opened no segment and its wait_for_playout()
    returned at once: the reply counted as played while its audio still played."""
    # "Alpha bravo charlie." (4 s of audio, synthesized over 3 s) plays from 1.5; the user's
    # "stop1" (2.0-2.5) cuts it at 2.6, before the TTS is done; "Delta." (1 s) starts at 3.0.
    first = Reply(
        content="Alpha bravo charlie.",
        ttft=0.0,
        duration=0.0,
        audio=4.0,
        tts_ttfb=0.0,
        tts_duration=3.0,
    )
    second = Reply(content="Delta.", ttft=0.0, duration=0.0, audio=1.0, tts_ttfb=0.0)
    sc = Scenario(
        bursts=(
            Burst(start=0.5, end=1.0, transcript="hello0", reply=first),
            Burst(start=2.0, end=2.5, transcript="stop1", reply=second),
        )
    )
    o = run_scenario(sc)
    check(sc, o)
    # Was: ("speaking", 3.0), ("listening", 3.0), and wait_done returned while "Delta." played.
    assert o.rec.agent_states[-2:] == [("speaking", 3.0), ("listening", 4.0)]
    last = o.output.playbacks[-1]
    assert (last.started_at, last.position, last.interrupted) == (3.0, 1.0, False)


def test_regression_handoff_keeps_a_running_tool_paired() -> None:
    """Was: a handoff cancelled a tool still running for an interrupted speech and left its
    function_call in the history with no output (an unpaired call, which providers reject);
    then, given a "cancelled" output, left that output out of the new agent's chat."""
    # "hello0": the LLM calls `slow` (5 s, 1.5-6.5); "stop1" (2.0-2.5) interrupts that reply
    # at 2.6 and its reply calls `transfer` at 3.0.
    slow = Call(tool="slow", seconds=5.0, reply=Reply("Alpha."))
    transfer = Call(tool="transfer", reply=Reply("Bravo."))
    sc = numbered(
        Scenario(
            bursts=(
                Burst(
                    start=0.5,
                    end=1.0,
                    transcript="hello0",
                    reply=Reply(content="", calls=(slow,), ttft=0.0, duration=0.0),
                ),
                Burst(
                    start=2.0,
                    end=2.5,
                    transcript="stop1",
                    reply=Reply(content="", calls=(transfer,), ttft=0.0, duration=0.0),
                ),
            )
        )
    )
    o = run_scenario(sc)
    outputs = {i.call_id for i in o.session.history.items if i.type == "function_call_output"}
    assert outputs == {"call_t1", "call_t2"}  # was {"call_t2"}
    second = o.session.current_agent
    outputs = {i.call_id for i in second.chat_ctx.items if i.type == "function_call_output"}
    assert outputs == {"call_t1", "call_t2"}  # was {"call_t2"}
    check(sc, o)


def test_regression_late_final_of_an_earlier_utterance_does_not_split_the_turn() -> None:
    """Was: the final transcript of "stop0", arriving while the user said "stop1", counted as
    the STT's answer for "stop1"; the turn was committed twice at one instant, in a random
    order: user words out of order, or a second reply asked to answer the first."""
    # "stop0" (0.5-1.0) is transcribed at 1.6, while "stop1" (1.5-2.0) is being spoken; the
    # VAD end and the final transcript of "stop1" both come at 2.5.
    sc = Scenario(
        bursts=(
            Burst(start=0.5, end=1.0, transcript="stop0", stt_delay=0.6, reply=Reply("Alpha.")),
            Burst(start=1.5, end=2.0, transcript="stop1", stt_delay=0.5, reply=Reply("Bravo.")),
        ),
        merged=(Reply("Charlie."),),
    )
    # trio runs the tasks woken at one instant in a random order: try several orders.
    for _ in range(20):
        o = run_scenario(sc)
        check(sc, o)
        said = [m.text_content for m in o.session.history.messages() if m.role == "user"]
        assert said == ["stop0 stop1"]
        assert o.tl.llm_requests == ["stop0 stop1"]


def test_regression_turn_heard_during_uninterruptible_speech_stays_discarded() -> None:
    """Was: the "discard this turn" flag lived in the old agent's activity: when the
    uninterruptible speech ended in a handoff before the turn committed, the new agent
    answered it (asking the LLM about its own greeting)."""
    # "Alpha." (uninterruptible) plays 1.5-2.5 and its step calls `transfer`; the user says
    # "stop1" (1.8-2.2) over it; the handoff happens at 2.5 and the turn commits at 2.7.
    transfer = Call(tool="transfer", reply=Reply("Bravo."))
    alpha = Reply(
        content="Alpha.", calls=(transfer,), ttft=0.0, duration=0.0, tts_ttfb=0.0, tts_duration=0.0
    )
    sc = numbered(
        Scenario(
            bursts=(
                Burst(start=0.5, end=1.0, transcript="hello0", reply=alpha),
                Burst(start=1.8, end=2.2, transcript="stop1", reply=Reply("Charlie.")),
            ),
            merged=(Reply("Delta."),),
            options={"allow_interruptions": False},
        )
    )
    o = run_scenario(sc)
    check(sc, o)
    assert o.tl.llm_requests == ["hello0"]  # was ["hello0", "Second agent here."]
    said = [m.text_content for m in o.session.history.messages() if m.role == "user"]
    assert said == ["hello0"]
