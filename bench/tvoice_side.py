"""The tvoice side of the comparison: one scenario per process, result as JSON on stdout.

Runs in tvoice's environment, started by ``bench/run.py``. The fakes are written against
tvoice's public model interfaces (``stt.STT``/``RecognizeStream``, ``llm.LLM``/``LLMStream``,
``tts.TTS``/``SynthesizeStream``, ``vad.VAD``/``VADStream``) and the session gets its audio
through ``io.AudioInput`` / ``io.AudioOutput`` (``session.start(audio_input=, audio_output=)``).
``livekit_side.py`` is the same program for LiveKit Agents; keep the two in step.

    python bench/tvoice_side.py turns --params '{"turns": 250}'
"""

from __future__ import annotations

import contextlib
import logging
import os
import random
import sys
import time
from collections import deque
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import numpy as np
import trio

sys.path.insert(0, str(Path(__file__).parent))
import _common as C

from tvoice import Agent, AgentSession
from tvoice.audio import AudioFrame
from tvoice.io import AudioInput, AudioOutput
from tvoice.llm import LLM, ChatChunk, ChatContext, ChoiceDelta, LLMStream
from tvoice.stt import (
    STT,
    RecognizeStream,
    SpeechData,
    SpeechEvent,
    SpeechEventType,
    STTCapabilities,
)
from tvoice.tts import TTS, ChunkedStream, SynthesizeStream, TTSCapabilities
from tvoice.vad import VAD, VADCapabilities, VADEvent, VADEventType, VADStream

try:
    from importlib.metadata import version as _dist_version

    TVOICE_VERSION = _dist_version("tvoice")
except Exception:  # pragma: no cover - running from a bare checkout
    TVOICE_VERSION = "unknown"

# -- scripted models --------------------------------------------------------------------------


class ScriptedSTT(STT):
    """A streaming STT that says what it is told (``say``) or what the user audio holds
    (``follow``: events at fixed audio positions, see ``_common.TranscriptFollower``)."""

    def __init__(self, follow: C.TranscriptFollower | None = None) -> None:
        super().__init__(capabilities=STTCapabilities(streaming=True, interim_results=False))
        self.follow = follow
        self.streams: list[_STTStream] = []

    async def _recognize_impl(
        self, frame: AudioFrame, *, language: Any, conn_options: Any
    ) -> SpeechEvent:
        return SpeechEvent(
            type=SpeechEventType.FINAL_TRANSCRIPT, alternatives=[SpeechData(text="")]
        )

    def stream(self, *, language: str | None = None, conn_options: Any = None) -> RecognizeStream:
        stream = _STTStream(self)
        self.streams.append(stream)
        return stream


class _STTStream(RecognizeStream):
    def __init__(self, owner: ScriptedSTT) -> None:
        super().__init__(owner)
        self._owner = owner
        self._command_send, self._commands = trio.open_memory_channel[str](1000)
        self.end_of_speech_at: list[float] = []

    def say(self, text: str) -> None:
        self._command_send.send_nowait(text)

    async def _script_event(self, kind: str, text: str = "") -> None:
        if kind == "start":
            await self._emit(SpeechEvent(type=SpeechEventType.START_OF_SPEECH))
            return
        alternatives = [SpeechData(text=text, confidence=1.0, language="en")]
        await self._emit(
            SpeechEvent(type=SpeechEventType.FINAL_TRANSCRIPT, alternatives=alternatives)
        )
        self.end_of_speech_at.append(C.perf())
        await self._emit(SpeechEvent(type=SpeechEventType.END_OF_SPEECH))

    async def _run(self) -> None:
        async def commands() -> None:
            async for text in self._commands:
                await self._script_event("start")
                await self._script_event("final", text)

        async with trio.open_nursery() as nursery:
            nursery.start_soon(commands)
            follow = self._owner.follow
            async for frame in self._input:
                if follow is not None and isinstance(frame, AudioFrame):
                    for kind, text in follow.advance(frame.samples_per_channel):
                        await self._script_event(kind, text)
            nursery.cancel_scope.cancel()


class ScriptedVAD(VAD):
    """Reports speech when told (``start``/``end``): START_OF_SPEECH then INFERENCE_DONE at
    the same instant (the pair a real VAD gives on the window where speech begins)."""

    def __init__(self) -> None:
        super().__init__(capabilities=VADCapabilities(update_interval=0.032))
        self.streams: list[_VADStream] = []

    def stream(self) -> VADStream:
        stream = _VADStream(self)
        self.streams.append(stream)
        return stream


class _VADStream(VADStream):
    def __init__(self, owner: ScriptedVAD) -> None:
        super().__init__(owner)
        self._command_send, self._commands = trio.open_memory_channel[str](1000)
        self.started_at: list[float] = []

    def command(self, what: str) -> None:
        self._command_send.send_nowait(what)

    async def _run(self) -> None:
        async def drain() -> None:
            async for _ in self._input:
                pass

        async with trio.open_nursery() as nursery:
            nursery.start_soon(drain)
            async for what in self._commands:
                now = trio.current_time()
                if what == "start":
                    self.started_at.append(C.perf())
                    await self._emit(
                        VADEvent(
                            type=VADEventType.START_OF_SPEECH,
                            timestamp=now,
                            speech_duration=0.05,
                            speaking=True,
                        )
                    )
                    await self._emit(
                        VADEvent(
                            type=VADEventType.INFERENCE_DONE,
                            timestamp=now,
                            speech_duration=0.05,
                            speaking=True,
                            probability=0.95,
                        )
                    )
                else:
                    await self._emit(
                        VADEvent(
                            type=VADEventType.END_OF_SPEECH, timestamp=now, speech_duration=0.2
                        )
                    )


class InstantLLM(LLM):
    """Answers at once, one chunk: "Reply number N."."""

    def __init__(self) -> None:
        super().__init__()
        self.requests = 0

    def chat(
        self,
        *,
        chat_ctx: ChatContext,
        tools: Any = (),
        tool_choice: Any = "auto",
        conn_options: Any = None,
        extra: Any = None,
    ) -> LLMStream:
        self.requests += 1
        return _LLMStream(self, chat_ctx=chat_ctx, tools=tools, tool_choice=tool_choice)


class _LLMStream(LLMStream):
    async def _run(self) -> None:
        owner = self._llm
        assert isinstance(owner, InstantLLM)
        await self._emit_chunk(
            ChatChunk(
                id=self.request_id, delta=ChoiceDelta(content=f"Reply number {owner.requests}.")
            )
        )


class InstantTTS(TTS):
    """A streaming TTS that answers the first text of a segment at once with ``seconds`` of a
    24 kHz tone, in 20 ms frames."""

    def __init__(self, seconds: float) -> None:
        super().__init__(
            sample_rate=C.OUT_RATE, num_channels=1, capabilities=TTSCapabilities(streaming=True)
        )
        self.blocks = C.tone(seconds)

    def synthesize(self, text: str, *, conn_options: Any = None) -> ChunkedStream:
        return _TTSChunked(self, text)

    def stream(self, *, conn_options: Any = None) -> SynthesizeStream:
        return _TTSStream(self)


class _TTSChunked(ChunkedStream):
    async def _run(self) -> None:
        owner = self._tts
        assert isinstance(owner, InstantTTS)
        for block in owner.blocks:
            await self._emit_frame(AudioFrame(block, C.OUT_RATE))


class _TTSStream(SynthesizeStream):
    async def _run(self) -> None:
        owner = self._tts
        assert isinstance(owner, InstantTTS)
        in_segment, segment = False, 0
        async for data in self._input:
            if not isinstance(data, str):  # a flush: end of the segment
                if in_segment:
                    await self._end_segment(f"seg_{segment}")
                    in_segment, segment = False, segment + 1
                continue
            if not in_segment:
                in_segment = True
                for block in owner.blocks:
                    await self._emit_frame(
                        AudioFrame(block, C.OUT_RATE), segment_id=f"seg_{segment}"
                    )
        if in_segment:
            await self._end_segment(f"seg_{segment}")


# -- audio in and out -------------------------------------------------------------------------


async def sleep_until_perf(due: float) -> None:
    delay = due - C.perf()
    if delay > 0:
        await trio.sleep(delay)


class FeedInput(AudioInput):
    """The user's microphone: a 16 kHz frame every 20 ms of real time (silence, or the user
    audio loop); records how late each frame is handed to the session."""

    label = "bench_input"

    def __init__(
        self,
        *,
        start: float,
        blocks: C.IterFrames | None,
        onsets: set[int] | None = None,
        limit: int | None = None,
    ) -> None:
        self._start = start
        self._k = 0
        self._blocks = blocks
        self._silence = np.zeros(C.IN_SAMPLES, np.int16)
        self.lateness = C.LatenessLog()
        self.onset_due: list[float] = []
        self._onsets = onsets or set()
        self._limit = limit

    async def __anext__(self) -> AudioFrame:
        if self._limit is not None and self._k >= self._limit:
            await trio.sleep_forever()  # then no more audio: an idle line
        due = self._start + self._k * C.FRAME
        self._k += 1
        await sleep_until_perf(due)
        self.lateness.add(due, C.perf())
        if self._blocks is None:
            return AudioFrame(self._silence, C.IN_RATE)
        if self._k - 1 in self._onsets:
            self.onset_due.append(due)
        return AudioFrame(self._blocks.next_block(), C.IN_RATE)


class Sink(AudioOutput):
    """Where the agent's audio goes. ``realtime=False``: a segment is "played" the moment it is
    flushed. ``realtime=True``: a device task takes 20 ms of audio every 20 ms of real time from
    a 200 ms buffer (``capture_frame`` waits while it is full) and records how late each frame
    is taken. Records when each segment's first frame arrives and when ``clear_buffer`` runs."""

    def __init__(self, *, realtime: bool) -> None:
        super().__init__(sample_rate=None, label="bench_sink")
        self.realtime = realtime
        self.first_frames: list[float] = []
        self.clears: list[float] = []
        self.lateness = C.LatenessLog()
        self._active = False
        self._flushed = False
        self._gen = 0
        self._buf: deque[np.ndarray] = deque()
        self._buffered = 0
        self._played = 0
        self._pushed = 0
        self._changed = trio.Event()
        self.first_frame_event = trio.Event()
        self.clear_event = trio.Event()

    async def capture_frame(self, frame: AudioFrame) -> None:
        await super().capture_frame(frame)
        if not self._active:
            self._active, self._flushed = True, False
            self._gen += 1
            self._played = self._pushed = 0
            self.first_frames.append(C.perf())
            self.first_frame_event.set()
            if not self.realtime:
                self.on_playback_started(created_at=trio.current_time())
        n = frame.samples_per_channel
        self._pushed += n
        if not self.realtime:
            return
        self._buf.append(frame.data[:, 0])
        self._buffered += n
        self._poke()
        gen = self._gen
        while self._buffered > C.OUTPUT_BUFFER * C.OUT_RATE and self._gen == gen and self._active:
            await self._changed.wait()

    def flush(self) -> None:
        super().flush()
        if not self._active:
            return
        if not self.realtime:
            self._played = self._pushed
            self._finish(interrupted=False)
            return
        self._flushed = True
        self._poke()

    def clear_buffer(self) -> None:
        self.clears.append(C.perf())
        self.clear_event.set()
        if not self._active:
            return
        self._buf.clear()
        self._buffered = 0
        self._finish(interrupted=True)

    def _finish(self, *, interrupted: bool) -> None:
        self._active = False
        self._gen += 1
        self._poke()
        self.on_playback_finished(
            playback_position=self._played / C.OUT_RATE, interrupted=interrupted
        )

    def _poke(self) -> None:
        self._changed.set()
        self._changed = trio.Event()

    async def device(self) -> None:
        while True:
            while not (self._active and self._buffered):
                await self._changed.wait()
            gen, start, k = self._gen, C.perf(), 0
            self.on_playback_started(created_at=trio.current_time())
            while self._gen == gen:
                due = start + k * C.FRAME
                await sleep_until_perf(due)
                while self._gen == gen and self._buffered < C.OUT_SAMPLES and not self._flushed:
                    await self._changed.wait()
                if self._gen != gen:
                    break
                self.lateness.add(due, C.perf())
                self._take(C.OUT_SAMPLES)
                k += 1
                self._poke()
                if self._flushed and not self._buffered:
                    self._finish(interrupted=False)

    def _take(self, n: int) -> None:
        while n and self._buf:
            head = self._buf[0]
            if len(head) <= n:
                self._buf.popleft()
                used = len(head)
            else:
                self._buf[0] = head[n:]
                used = n
            n -= used
            self._buffered -= used
            self._played += used


# -- sessions ---------------------------------------------------------------------------------


def make_session(
    *,
    stt: STT | None,
    vad: VAD | None,
    tts_seconds: float,
    turn_detection: str,
    min_endpointing_delay: float,
    **options: Any,
) -> AgentSession[Any]:
    """A session configured like the LiveKit one (see run.py's notes on equivalence)."""
    return AgentSession(
        stt=stt,
        vad=vad,
        llm=InstantLLM(),
        tts=InstantTTS(tts_seconds),
        turn_detection=turn_detection,  # type: ignore[arg-type]
        min_endpointing_delay=min_endpointing_delay,
        max_endpointing_delay=3.0,
        preemptive_generation=False,
        **options,
    )


async def start_session(
    stack: contextlib.AsyncExitStack,
    nursery: trio.Nursery,
    session: AgentSession[Any],
    audio_in: AudioInput,
    sink: Sink,
) -> None:
    await stack.enter_async_context(session)
    if sink.realtime:
        nursery.start_soon(sink.device)
    await session.start(
        Agent(instructions="You are a benchmark."), audio_input=audio_in, audio_output=sink
    )


class StateWatch:
    """The agent's state, and an event for each change."""

    def __init__(self, session: AgentSession[Any]) -> None:
        self.state = session.agent_state
        self.changed = trio.Event()
        session.on("agent_state_changed", self._on)

    def _on(self, ev: Any) -> None:
        self.state = ev.new_state
        self.changed.set()

    async def wait_for(self, state: str) -> None:
        while self.state != state:
            self.changed = trio.Event()
            await self.changed.wait()


def wrap_commits(session: AgentSession[Any]) -> list[float]:
    """Timestamps of the framework committing user turns: AudioRecognition tells the session's
    hooks, which call the current activity's ``on_end_of_turn``, when it decides a turn is over.
    """
    commits: list[float] = []
    activity = session._runtime.activity
    original = activity.on_end_of_turn

    def on_end_of_turn(turn: Any) -> None:
        commits.append(C.perf())
        original(turn)

    activity.on_end_of_turn = on_end_of_turn  # type: ignore[method-assign]
    return commits


async def wait_flag(
    get_event: Callable[[], trio.Event],
    reset: Callable[[], None],
    done: Callable[[], bool],
    limit: float = 5.0,
) -> None:
    with trio.fail_after(limit):
        while not done():
            await get_event().wait()
            reset()


# -- scenarios --------------------------------------------------------------------------------

Finish = Callable[[dict[str, Any]], None]


async def turns(params: dict[str, Any], finish: Finish) -> None:
    """Per-turn overhead: STT FINAL + END_OF_SPEECH (turn_detection="stt", no endpointing delay)
    -> turn committed -> first frame of the reply captured by the output."""
    n_turns, warmup = params.get("turns", 250), params.get("warmup", 10)
    rng = random.Random(params.get("seed", 1))
    scripted = ScriptedSTT()
    session = make_session(
        stt=scripted,
        vad=None,
        tts_seconds=params.get("reply_seconds", 0.1),
        turn_detection="stt",
        min_endpointing_delay=0.0,
    )
    sink = Sink(realtime=False)
    async with trio.open_nursery() as nursery, contextlib.AsyncExitStack() as stack:
        await start_session(
            stack, nursery, session, FeedInput(start=C.perf() + 0.05, blocks=None), sink
        )
        watch = StateWatch(session)
        commits = wrap_commits(session)
        await trio.sleep(0.2)
        stream = scripted.streams[-1]
        commit_ms, eos_ms, windows = [], [], []
        for i in range(warmup + n_turns):
            await watch.wait_for("listening")
            await trio.sleep(rng.uniform(0.01, 0.03))
            n_first, n_commit, n_eos = (
                len(sink.first_frames),
                len(commits),
                len(stream.end_of_speech_at),
            )
            sink.first_frame_event = trio.Event()
            stream.say(f"Hello, this is turn {i}.")
            await wait_flag(
                lambda: sink.first_frame_event,
                lambda: setattr(sink, "first_frame_event", trio.Event()),
                lambda n=n_first: len(sink.first_frames) > n,
            )
            first = sink.first_frames[n_first]
            if i >= warmup:
                commit_ms.append((first - commits[n_commit]) * 1000)
                eos_ms.append((first - stream.end_of_speech_at[n_eos]) * 1000)
                windows.append((commits[n_commit], first))
        finish(
            {
                "commit_to_first_frame_ms": commit_ms,
                "eos_to_first_frame_ms": eos_ms,
                "_windows": windows,
            }
        )


async def interrupt(params: dict[str, Any], finish: Finish) -> None:
    """Interruption: scripted VAD START_OF_SPEECH while the agent speaks -> clear_buffer on the
    output (min interruption duration 0, resume_false_interruption off so it is a clear)."""
    trials, warmup = params.get("trials", 50), params.get("warmup", 3)
    rng = random.Random(params.get("seed", 2))
    scripted, scripted_vad = ScriptedSTT(), ScriptedVAD()
    session = make_session(
        stt=scripted,
        vad=scripted_vad,
        tts_seconds=params.get("reply_seconds", 3.0),
        turn_detection="stt",
        min_endpointing_delay=0.0,
        min_interruption_duration=0.0,
        resume_false_interruption=False,
    )
    sink = Sink(realtime=True)
    async with trio.open_nursery() as nursery, contextlib.AsyncExitStack() as stack:
        await start_session(
            stack, nursery, session, FeedInput(start=C.perf() + 0.05, blocks=None), sink
        )
        await trio.sleep(0.2)
        stt_stream, vad_stream = scripted.streams[-1], scripted_vad.streams[-1]
        latencies, windows = [], []
        seen = 0
        stt_stream.say("Tell me a long story.")
        for i in range(warmup + trials):
            await wait_flag(  # the next reply reached the output
                lambda: sink.first_frame_event,
                lambda: setattr(sink, "first_frame_event", trio.Event()),
                lambda n=seen: len(sink.first_frames) > n,
            )
            seen = len(sink.first_frames)
            await trio.sleep(rng.uniform(0.05, 0.15))
            n_clear, n_start = len(sink.clears), len(vad_stream.started_at)
            sink.clear_event = trio.Event()
            vad_stream.command("start")
            await wait_flag(
                lambda: sink.clear_event,
                lambda: setattr(sink, "clear_event", trio.Event()),
                lambda n=n_clear: len(sink.clears) > n,
            )
            if i >= warmup:
                latencies.append((sink.clears[n_clear] - vad_stream.started_at[n_start]) * 1000)
                windows.append((vad_stream.started_at[n_start], sink.clears[n_clear]))
            await trio.sleep(0.03)
            vad_stream.command("end")
            stt_stream.say(f"Stop, and tell me another one, number {i}.")
        finish({"start_of_speech_to_clear_ms": latencies, "_windows": windows})


async def density(params: dict[str, Any], finish: Finish) -> None:
    """N sessions on this core, real Silero VAD on real-time user audio, scripted replies."""
    from tvoice_plugins import silero

    n, warm, window = params["n"], params.get("warmup", 3.0), params.get("seconds", 10.0)
    audio = C.UserAudio.load(params["audio"])
    silero_vad = silero.VAD.load()
    vad_windows = [0]
    silero_vad.on(
        "metrics_collected",
        lambda m: vad_windows.__setitem__(0, vad_windows[0] + m.inference_count),
    )
    offsets = C.session_offsets(n, len(audio.samples))
    inputs: list[FeedInput] = []
    sinks: list[Sink] = []
    speaking_at: list[list[float]] = [[] for _ in range(n)]
    async with trio.open_nursery() as nursery, contextlib.AsyncExitStack() as stack:
        t0 = C.perf() + 0.1
        for i in range(n):
            session = make_session(
                stt=ScriptedSTT(C.TranscriptFollower(audio, offsets[i])),
                vad=silero_vad,
                tts_seconds=params.get("reply_seconds", 2.0),
                turn_detection="vad",
                min_endpointing_delay=0.5,
            )
            feed = FeedInput(
                start=t0 + i * C.FRAME / n,
                blocks=audio.frames(offsets[i]),
                onsets=audio.onset_frames(offsets[i]),
            )
            sink = Sink(realtime=True)
            session.on(
                "user_state_changed",
                lambda ev, i=i: ev.new_state == "speaking" and speaking_at[i].append(C.perf()),
            )
            await start_session(stack, nursery, session, feed, sink)
            inputs.append(feed)
            sinks.append(sink)
        await trio.sleep(warm)
        begin = C.perf()
        for log in [*(f.lateness for f in inputs), *(s.lateness for s in sinks)]:
            log.since = begin
        foreign = C.ForeignLoad(params.get("cpu"))
        cpu0, windows0 = time.process_time(), vad_windows[0]
        replies0 = sum(len(s.first_frames) for s in sinks)
        await trio.sleep(window)
        cpu, elapsed = time.process_time() - cpu0, C.perf() - begin
        windows = vad_windows[0] - windows0
        replies = sum(len(s.first_frames) for s in sinks) - replies0
        fed = sum(f._k for f in inputs) * C.FRAME
        processed = vad_windows[0] * 0.032
        detect = []
        for i, f in enumerate(inputs):
            for t in speaking_at[i]:
                prior = [d for d in f.onset_due if d <= t]
                if prior and t >= begin and t - prior[-1] < 2.0:
                    detect.append((t - prior[-1]) * 1000)
        finish(
            {
                "n": n,
                "seconds": elapsed,
                "input_lateness_ms": C.summarize(
                    [v * 1000 for f in inputs for v in f.lateness.values]
                ),
                "output_lateness_ms": C.summarize(
                    [v * 1000 for s in sinks for v in s.lateness.values]
                ),
                "cpu_s": cpu,
                "cpu_ms_per_session_second": cpu / (n * elapsed) * 1000,
                "vad_seconds_processed_in_window": windows * 0.032,
                "vad_backlog_s_per_session": (fed - processed) / n,
                "replies": replies,
                "speech_detect_ms": C.summarize(detect),
                "foreign_share": foreign.share(),
            }
        )


async def memory(params: dict[str, Any], finish: Finish) -> None:
    """RSS with one idle session, then with N: each session heard one second of silence in
    real time (so every per-stream buffer exists), then nothing more arrives."""
    from tvoice_plugins import silero

    n = params.get("n", 50)
    frames = round(params.get("heard", 1.0) / C.FRAME)
    trace = params.get("tracemalloc", False)
    if trace:
        import tracemalloc

        tracemalloc.start()
    silero_vad = silero.VAD.load()
    C.settle_memory()
    base = C.rss_kib()
    async with trio.open_nursery() as nursery, contextlib.AsyncExitStack() as stack:

        async def add(count: int) -> None:
            t0 = C.perf() + 0.05
            for i in range(count):
                session = make_session(
                    stt=ScriptedSTT(),
                    vad=silero_vad,
                    tts_seconds=2.0,
                    turn_detection="vad",
                    min_endpointing_delay=0.5,
                )
                feed = FeedInput(start=t0 + i * C.FRAME / count, blocks=None, limit=frames)
                await start_session(stack, nursery, session, feed, Sink(realtime=True))

        await add(1)
        await trio.sleep(params.get("settle", 3.0))
        C.settle_memory()
        one = C.rss_kib()
        snap_one = tracemalloc.take_snapshot() if trace else None
        await add(n - 1)
        await trio.sleep(params.get("settle", 3.0))
        C.settle_memory()
        many = C.rss_kib()
        alloc = C.allocation_diff(snap_one, tracemalloc.take_snapshot(), n - 1) if trace else None
        finish(
            {
                "alloc": alloc,
                "n": n,
                "rss_base_kib": base,
                "rss_one_kib": one,
                "rss_n_kib": many,
                "per_session_kib": (many - one) / (n - 1),
            }
        )


SCENARIOS: dict[str, Callable[[dict[str, Any], Finish], Awaitable[None]]] = {
    "turns": turns,
    "interrupt": interrupt,
    "density": density,
    "memory": memory,
}


def main() -> None:
    scenario, params = C.parse_args(__doc__)
    logging.basicConfig(level=logging.ERROR)
    cpu = C.pin_to_cpu(params.get("cpu"))
    C.freeze_like_a_job_process("tvoice_plugins.silero")
    started = C.perf()
    foreign = C.ForeignLoad(cpu)
    profiler = None
    if params.get("profile"):
        from pyinstrument import Profiler

        profiler = Profiler(interval=params.get("profile_interval", 0.0005), async_mode="disabled")
        profiler.start()
    profile_origin = C.perf()

    def finish(result: dict[str, Any]) -> None:
        windows = result.pop("_windows", None)
        if profiler is not None:
            profiler.stop()
            session = profiler.last_session
            Path(params["profile"]).write_text(
                profiler.output_text(unicode=False, color=False, show_all=False)
            )
            if session is not None:
                result["profile"] = C.profile_summary(session.frame_records)
                result["profile"]["tree_file"] = params["profile"]
                if windows:
                    result["profile"]["measured"] = C.profile_summary(
                        session.frame_records, windows=windows, origin=profile_origin
                    )
        result.update(
            framework="tvoice",
            version=TVOICE_VERSION,
            scenario=scenario,
            cpu=cpu,
            wall_s=C.perf() - started,
            rss_end_kib=C.rss_kib(),
            foreign_share_run=foreign.share(),
            versions=C.dist_versions("tvoice", "trio", "onnxruntime", "numpy", "silero-vad"),
        )
        C.emit_result(result)
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(0)  # don't wait for N sessions to close: the figures are taken

    trio.run(SCENARIOS[scenario], params, finish)


if __name__ == "__main__":
    main()
