"""The LiveKit Agents side of the comparison: one scenario per process, result as JSON on stdout.

Runs in LiveKit Agents' own environment (``livekit-agents==1.8.9``, ``livekit-plugins-silero``),
started by ``bench/run.py``. The fakes are written against LiveKit's public model interfaces
(``stt.STT``/``RecognizeStream``, ``llm.LLM``/``LLMStream``, ``tts.TTS``/``SynthesizeStream``,
``vad.VAD``/``VADStream``) and the session gets its audio through ``io.AudioInput`` /
``io.AudioOutput`` (``session.input.audio`` / ``session.output.audio``), no room.
``tvoice_side.py`` is the same program for tvoice; keep the two in step.

    python bench/livekit_side.py turns --params '{"turns": 250}'
"""

from __future__ import annotations

import asyncio
import functools
import logging
import os
import random
import sys
import time
from collections import deque
from pathlib import Path
from typing import Any

import numpy as np

sys.path.insert(0, str(Path(__file__).parent))
import _common as C
from livekit import rtc
from livekit.agents import (
    DEFAULT_API_CONNECT_OPTIONS,
    NOT_GIVEN,
    Agent,
    AgentSession,
    APIConnectOptions,
    llm,
    stt,
    tts,
    utils,
    vad,
)
from livekit.agents import __version__ as LK_VERSION
from livekit.agents.voice import io

# -- scripted models --------------------------------------------------------------------------


class ScriptedSTT(stt.STT):
    """A streaming STT that says what it is told (``say``) or what the user audio holds
    (``follow``: events at fixed audio positions, see ``_common.TranscriptFollower``)."""

    def __init__(self, follow: C.TranscriptFollower | None = None) -> None:
        super().__init__(capabilities=stt.STTCapabilities(streaming=True, interim_results=False))
        self.follow = follow
        self.streams: list[_STTStream] = []

    async def _recognize_impl(
        self, buffer: Any, *, language: Any = NOT_GIVEN, conn_options: Any = None
    ) -> stt.SpeechEvent:
        return stt.SpeechEvent(
            type=stt.SpeechEventType.FINAL_TRANSCRIPT,
            alternatives=[stt.SpeechData(language="en", text="")],
        )

    def stream(
        self,
        *,
        language: Any = NOT_GIVEN,
        conn_options: APIConnectOptions = DEFAULT_API_CONNECT_OPTIONS,
    ) -> stt.RecognizeStream:
        stream = _STTStream(self, conn_options)
        self.streams.append(stream)
        return stream


class _STTStream(stt.RecognizeStream):
    def __init__(self, owner: ScriptedSTT, conn_options: APIConnectOptions) -> None:
        super().__init__(stt=owner, conn_options=conn_options)
        self._owner = owner
        self._commands: asyncio.Queue[str] = asyncio.Queue()
        self.end_of_speech_at: list[float] = []

    def say(self, text: str) -> None:
        self._commands.put_nowait(text)

    def _script_event(self, kind: str, text: str = "") -> None:
        if kind == "start":
            self._event_ch.send_nowait(stt.SpeechEvent(type=stt.SpeechEventType.START_OF_SPEECH))
            return
        alternatives = [stt.SpeechData(language="en", text=text, confidence=1.0)]
        self._event_ch.send_nowait(
            stt.SpeechEvent(type=stt.SpeechEventType.FINAL_TRANSCRIPT, alternatives=alternatives)
        )
        self.end_of_speech_at.append(C.perf())
        self._event_ch.send_nowait(stt.SpeechEvent(type=stt.SpeechEventType.END_OF_SPEECH))

    async def _run(self) -> None:
        async def commands() -> None:
            while True:
                text = await self._commands.get()
                self._script_event("start")
                self._script_event("final", text)

        command_task = asyncio.create_task(commands())
        try:
            follow = self._owner.follow
            async for frame in self._input_ch:
                if follow is not None and isinstance(frame, rtc.AudioFrame):
                    for kind, text in follow.advance(frame.samples_per_channel):
                        self._script_event(kind, text)
        finally:
            await utils.aio.cancel_and_wait(command_task)


class ScriptedVAD(vad.VAD):
    """Reports speech when told (``start``/``end``): START_OF_SPEECH then INFERENCE_DONE at
    the same instant (the pair a real VAD gives on the window where speech begins)."""

    def __init__(self) -> None:
        super().__init__(capabilities=vad.VADCapabilities(update_interval=0.032))
        self.streams: list[_VADStream] = []

    def stream(self) -> vad.VADStream:
        stream = _VADStream(self)
        self.streams.append(stream)
        return stream


class _VADStream(vad.VADStream):
    def __init__(self, owner: ScriptedVAD) -> None:
        self._commands: asyncio.Queue[str] = asyncio.Queue()
        self.started_at: list[float] = []
        super().__init__(owner)

    def command(self, what: str) -> None:
        self._commands.put_nowait(what)

    def _event(self, type_: vad.VADEventType, **kw: Any) -> vad.VADEvent:
        base: dict[str, Any] = dict(
            samples_index=0, timestamp=time.time(), speech_duration=0.0, silence_duration=0.0
        )
        base.update(kw)
        return vad.VADEvent(type=type_, **base)

    async def _main_task(self) -> None:
        async def drain() -> None:
            async for _ in self._input_ch:
                pass

        drain_task = asyncio.create_task(drain())
        try:
            while True:
                what = await self._commands.get()
                if what == "start":
                    self.started_at.append(C.perf())
                    self._event_ch.send_nowait(
                        self._event(
                            vad.VADEventType.START_OF_SPEECH, speech_duration=0.05, speaking=True
                        )
                    )
                    self._event_ch.send_nowait(
                        self._event(
                            vad.VADEventType.INFERENCE_DONE,
                            speech_duration=0.05,
                            speaking=True,
                            probability=0.95,
                            raw_accumulated_speech=0.05,
                        )
                    )
                else:
                    self._event_ch.send_nowait(
                        self._event(vad.VADEventType.END_OF_SPEECH, speech_duration=0.2)
                    )
        finally:
            await utils.aio.cancel_and_wait(drain_task)


class InstantLLM(llm.LLM):
    """Answers at once, one chunk: "Reply number N."."""

    def __init__(self) -> None:
        super().__init__()
        self.requests = 0

    def chat(
        self,
        *,
        chat_ctx: llm.ChatContext,
        tools: list[Any] | None = None,
        conn_options: APIConnectOptions = DEFAULT_API_CONNECT_OPTIONS,
        parallel_tool_calls: Any = NOT_GIVEN,
        tool_choice: Any = NOT_GIVEN,
        extra_kwargs: Any = NOT_GIVEN,
    ) -> llm.LLMStream:
        self.requests += 1
        return _LLMStream(self, chat_ctx=chat_ctx, tools=tools or [], conn_options=conn_options)


class _LLMStream(llm.LLMStream):
    async def _run(self) -> None:
        owner = self._llm
        assert isinstance(owner, InstantLLM)
        self._event_ch.send_nowait(
            llm.ChatChunk(
                id=utils.shortuuid("llm_"),
                delta=llm.ChoiceDelta(role="assistant", content=f"Reply number {owner.requests}."),
            )
        )


@functools.cache
def _tone_bytes(seconds: float) -> list[bytes]:
    return [b.tobytes() for b in C.tone(seconds)]


class InstantTTS(tts.TTS):
    """A streaming TTS that answers the first text of a segment at once with ``seconds`` of a
    24 kHz tone, in 20 ms frames."""

    def __init__(self, seconds: float) -> None:
        super().__init__(
            capabilities=tts.TTSCapabilities(streaming=True),
            sample_rate=C.OUT_RATE,
            num_channels=1,
        )
        self.blocks = _tone_bytes(seconds)

    def synthesize(
        self, text: str, *, conn_options: APIConnectOptions = DEFAULT_API_CONNECT_OPTIONS
    ) -> tts.ChunkedStream:
        return self._synthesize_with_stream(text, conn_options=conn_options)

    def stream(
        self, *, conn_options: APIConnectOptions = DEFAULT_API_CONNECT_OPTIONS
    ) -> tts.SynthesizeStream:
        return _TTSStream(tts=self, conn_options=conn_options)


class _TTSStream(tts.SynthesizeStream):
    async def _run(self, output_emitter: tts.AudioEmitter) -> None:
        owner = self._tts
        assert isinstance(owner, InstantTTS)
        output_emitter.initialize(
            request_id=utils.shortuuid("tts_"),
            sample_rate=C.OUT_RATE,
            num_channels=1,
            mime_type="audio/pcm",
            stream=True,
        )
        in_segment, segment = False, 0
        async for data in self._input_ch:
            if isinstance(data, self._FlushSentinel):
                if in_segment:
                    output_emitter.end_segment()
                    in_segment, segment = False, segment + 1
                continue
            if not in_segment:
                in_segment = True
                output_emitter.start_segment(segment_id=f"seg_{segment}")
                for block in owner.blocks:
                    output_emitter.push_frame(rtc.AudioFrame(block, C.OUT_RATE, 1, len(block) // 2))
        if in_segment:
            output_emitter.end_segment()


# -- audio in and out -------------------------------------------------------------------------


class FeedInput(io.AudioInput):
    """The user's microphone: a 16 kHz frame every 20 ms of real time (silence, or the user
    audio loop); records how late each frame is handed to the session."""

    def __init__(
        self,
        *,
        start: float,
        blocks: C.IterFrames | None,
        onsets: set[int] | None = None,
        limit: int | None = None,
    ) -> None:
        super().__init__(label="bench_input")
        self._start = start
        self._k = 0
        self._blocks = blocks
        self._silence = np.zeros(C.IN_SAMPLES, np.int16).tobytes()
        self.lateness = C.LatenessLog()
        self.onset_due: list[float] = []
        self._onsets = onsets or set()
        self._limit = limit

    async def __anext__(self) -> rtc.AudioFrame:
        if self._limit is not None and self._k >= self._limit:
            await asyncio.Event().wait()  # then no more audio: an idle line
        due = self._start + self._k * C.FRAME
        self._k += 1
        delay = due - C.perf()
        if delay > 0:
            await asyncio.sleep(delay)
        self.lateness.add(due, C.perf())
        if self._blocks is None:
            data = self._silence
        else:
            if self._k - 1 in self._onsets:
                self.onset_due.append(due)
            data = self._blocks.next_block().tobytes()
        return rtc.AudioFrame(data, C.IN_RATE, 1, C.IN_SAMPLES)


class Sink(io.AudioOutput):
    """Where the agent's audio goes. ``realtime=False``: a segment is "played" the moment it is
    flushed. ``realtime=True``: a device task takes 20 ms of audio every 20 ms of real time from
    a 200 ms buffer (``capture_frame`` waits while it is full) and records how late each frame
    is taken. Records when each segment's first frame arrives and when ``clear_buffer`` runs."""

    def __init__(self, *, realtime: bool) -> None:
        super().__init__(
            label="bench_sink",
            capabilities=io.AudioOutputCapabilities(pause=True),
            sample_rate=None,
        )
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
        self._changed = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self.first_frame_event = asyncio.Event()
        self.clear_event = asyncio.Event()

    def start(self) -> None:
        if self.realtime:
            self._task = asyncio.create_task(self._device())

    async def capture_frame(self, frame: rtc.AudioFrame) -> None:
        await super().capture_frame(frame)
        if not self._active:
            self._active, self._flushed = True, False
            self._gen += 1
            self._played = self._pushed = 0
            self.first_frames.append(C.perf())
            self.first_frame_event.set()
            if not self.realtime:
                self.on_playback_started(created_at=time.time())
        n = frame.samples_per_channel
        self._pushed += n
        if not self.realtime:
            return
        self._buf.append(np.frombuffer(frame.data, np.int16))
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
        self._changed = asyncio.Event()

    async def _device(self) -> None:
        while True:
            while not (self._active and self._buffered):
                await self._changed.wait()
            gen, start, k = self._gen, C.perf(), 0
            self.on_playback_started(created_at=time.time())
            while self._gen == gen:
                due = start + k * C.FRAME
                delay = due - C.perf()
                if delay > 0:
                    await asyncio.sleep(delay)
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
    stt_: stt.STT | None,
    vad_: vad.VAD | None,
    tts_seconds: float,
    turn_detection: str,
    min_endpointing_delay: float,
    interruption: dict[str, Any] | None = None,
) -> AgentSession:
    """A session configured like the tvoice one (see run.py's notes on equivalence)."""
    return AgentSession(
        stt=stt_,
        vad=vad_,
        llm=InstantLLM(),
        tts=InstantTTS(tts_seconds),
        turn_handling={
            "turn_detection": turn_detection,  # type: ignore[typeddict-item]
            "endpointing": {"min_delay": min_endpointing_delay, "max_delay": 3.0},
            "interruption": {"mode": "vad", **(interruption or {})},
            "preemptive_generation": {"enabled": False},
        },
        aec_warmup_duration=None,
    )


async def start_session(session: AgentSession, audio_in: io.AudioInput, sink: Sink) -> None:
    session.input.audio = audio_in
    session.output.audio = sink
    await session.start(Agent(instructions="You are a benchmark."), record=False)
    sink.start()


class StateWatch:
    """The agent's state, and an event for each change."""

    def __init__(self, session: AgentSession) -> None:
        self.state = session.agent_state
        self.changed = asyncio.Event()
        session.on("agent_state_changed", self._on)

    def _on(self, ev: Any) -> None:
        self.state = ev.new_state
        self.changed.set()

    async def wait_for(self, state: str) -> None:
        while self.state != state:
            self.changed.clear()
            await self.changed.wait()


def wrap_commits(session: AgentSession) -> list[float]:
    """Timestamps of the framework committing user turns: AudioRecognition calls its hooks'
    ``on_end_of_turn`` (the AgentActivity) when it decides the turn is over."""
    commits: list[float] = []
    activity = session._activity
    assert activity is not None
    original = activity.on_end_of_turn

    def on_end_of_turn(info: Any) -> bool:
        commits.append(C.perf())
        return original(info)

    activity.on_end_of_turn = on_end_of_turn  # type: ignore[method-assign]
    return commits


async def wait_event(event: asyncio.Event, limit: float = 5.0) -> None:
    await asyncio.wait_for(event.wait(), limit)


# -- scenarios --------------------------------------------------------------------------------


async def turns(params: dict[str, Any]) -> dict[str, Any]:
    """Per-turn overhead: STT FINAL + END_OF_SPEECH (turn_detection="stt", no endpointing delay)
    -> turn committed -> first frame of the reply captured by the output."""
    n_turns, warmup = params.get("turns", 250), params.get("warmup", 10)
    rng = random.Random(params.get("seed", 1))
    scripted = ScriptedSTT()
    session = make_session(
        stt_=scripted,
        vad_=None,
        tts_seconds=params.get("reply_seconds", 0.1),
        turn_detection="stt",
        min_endpointing_delay=0.0,
    )
    sink = Sink(realtime=False)
    await start_session(session, FeedInput(start=C.perf() + 0.05, blocks=None), sink)
    watch = StateWatch(session)
    commits = wrap_commits(session)
    await asyncio.sleep(0.2)
    stream = scripted.streams[-1]
    commit_ms, eos_ms, windows = [], [], []
    for i in range(warmup + n_turns):
        await watch.wait_for("listening")
        await asyncio.sleep(rng.uniform(0.01, 0.03))
        n_first, n_commit, n_eos = (
            len(sink.first_frames),
            len(commits),
            len(stream.end_of_speech_at),
        )
        sink.first_frame_event.clear()
        stream.say(f"Hello, this is turn {i}.")
        while len(sink.first_frames) == n_first:
            await wait_event(sink.first_frame_event)
            sink.first_frame_event.clear()
        first = sink.first_frames[n_first]
        if i >= warmup:
            commit_ms.append((first - commits[n_commit]) * 1000)
            eos_ms.append((first - stream.end_of_speech_at[n_eos]) * 1000)
            windows.append((commits[n_commit], first))
    return {
        "commit_to_first_frame_ms": commit_ms,
        "eos_to_first_frame_ms": eos_ms,
        "_windows": windows,
    }


async def interrupt(params: dict[str, Any]) -> dict[str, Any]:
    """Interruption: scripted VAD START_OF_SPEECH while the agent speaks -> clear_buffer on the
    output (min interruption duration 0, resume_false_interruption off so it is a clear)."""
    trials, warmup = params.get("trials", 50), params.get("warmup", 3)
    rng = random.Random(params.get("seed", 2))
    scripted, scripted_vad = ScriptedSTT(), ScriptedVAD()
    session = make_session(
        stt_=scripted,
        vad_=scripted_vad,
        tts_seconds=params.get("reply_seconds", 3.0),
        turn_detection="stt",
        min_endpointing_delay=0.0,
        interruption={"min_duration": 0.0, "resume_false_interruption": False},
    )
    sink = Sink(realtime=True)
    await start_session(session, FeedInput(start=C.perf() + 0.05, blocks=None), sink)
    await asyncio.sleep(0.2)
    stt_stream, vad_stream = scripted.streams[-1], scripted_vad.streams[-1]
    latencies, windows = [], []
    seen = 0
    stt_stream.say("Tell me a long story.")
    for i in range(warmup + trials):
        while len(sink.first_frames) == seen:  # the next reply reached the output
            sink.first_frame_event.clear()
            await wait_event(sink.first_frame_event)
        seen = len(sink.first_frames)
        await asyncio.sleep(rng.uniform(0.05, 0.15))
        n_clear, n_start = len(sink.clears), len(vad_stream.started_at)
        sink.clear_event.clear()
        vad_stream.command("start")
        while len(sink.clears) == n_clear:
            await wait_event(sink.clear_event)
            sink.clear_event.clear()
        if i >= warmup:
            latencies.append((sink.clears[n_clear] - vad_stream.started_at[n_start]) * 1000)
            windows.append((vad_stream.started_at[n_start], sink.clears[n_clear]))
        await asyncio.sleep(0.03)
        vad_stream.command("end")
        stt_stream.say(f"Stop, and tell me another one, number {i}.")
    return {"start_of_speech_to_clear_ms": latencies, "_windows": windows}


async def run_density_sessions(
    n: int, audio: C.UserAudio | None, *, reply_seconds: float
) -> tuple[list[AgentSession], list[FeedInput], list[Sink], Any, list[int]]:
    from livekit.plugins import silero

    silero_vad = silero.VAD.load()
    vad_windows = [0]
    silero_vad.on(
        "metrics_collected",
        lambda m: vad_windows.__setitem__(0, vad_windows[0] + m.inference_count),
    )
    sessions, inputs, sinks = [], [], []
    offsets = C.session_offsets(n, len(audio.samples) if audio else C.IN_SAMPLES * 50)
    t0 = C.perf() + 0.1
    for i in range(n):
        follow = C.TranscriptFollower(audio, offsets[i]) if audio else None
        session = make_session(
            stt_=ScriptedSTT(follow),
            vad_=silero_vad,
            tts_seconds=reply_seconds,
            turn_detection="vad",
            min_endpointing_delay=0.5,
        )
        onsets = audio.onset_frames(offsets[i]) if audio else None
        feed = FeedInput(
            start=t0 + i * C.FRAME / max(n, 1),
            blocks=audio.frames(offsets[i]) if audio else None,
            onsets=onsets,
        )
        sink = Sink(realtime=True)
        await start_session(session, feed, sink)
        sessions.append(session)
        inputs.append(feed)
        sinks.append(sink)
    return sessions, inputs, sinks, silero_vad, vad_windows


async def density(params: dict[str, Any]) -> dict[str, Any]:
    """N sessions on this core, real Silero VAD on real-time user audio, scripted replies."""
    n, warm, window = params["n"], params.get("warmup", 3.0), params.get("seconds", 10.0)
    audio = C.UserAudio.load(params["audio"])
    sessions, inputs, sinks, _, vad_windows = await run_density_sessions(
        n, audio, reply_seconds=params.get("reply_seconds", 2.0)
    )
    speaking_at: list[list[float]] = [[] for _ in range(n)]
    for i, s in enumerate(sessions):
        s.on(
            "user_state_changed",
            lambda ev, i=i: ev.new_state == "speaking" and speaking_at[i].append(C.perf()),
        )
    await asyncio.sleep(warm)
    begin = C.perf()
    for log in [*(f.lateness for f in inputs), *(s.lateness for s in sinks)]:
        log.since = begin
    foreign = C.ForeignLoad(params.get("cpu"))
    cpu0, windows0, replies0 = (
        time.process_time(),
        vad_windows[0],
        sum(len(s.first_frames) for s in sinks),
    )
    await asyncio.sleep(window)
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
    return {
        "n": n,
        "seconds": elapsed,
        "input_lateness_ms": C.summarize([v * 1000 for f in inputs for v in f.lateness.values]),
        "output_lateness_ms": C.summarize([v * 1000 for s in sinks for v in s.lateness.values]),
        "cpu_s": cpu,
        "cpu_ms_per_session_second": cpu / (n * elapsed) * 1000,
        "vad_seconds_processed_in_window": windows * 0.032,
        "vad_backlog_s_per_session": (fed - processed) / n,
        "replies": replies,
        "speech_detect_ms": C.summarize(detect),
        "foreign_share": foreign.share(),
    }


async def memory(params: dict[str, Any]) -> dict[str, Any]:
    """RSS with one idle session, then with N: each session heard one second of silence in
    real time (so every per-stream buffer exists), then nothing more arrives."""
    from livekit.plugins import silero

    n = params.get("n", 50)
    frames = round(params.get("heard", 1.0) / C.FRAME)
    trace = params.get("tracemalloc", False)
    if trace:
        import tracemalloc

        tracemalloc.start()
    silero_vad = silero.VAD.load()
    C.settle_memory()
    base = C.rss_kib()
    kept: list[Any] = []

    async def add(count: int) -> None:
        t0 = C.perf() + 0.05
        for i in range(count):
            session = make_session(
                stt_=ScriptedSTT(),
                vad_=silero_vad,
                tts_seconds=2.0,
                turn_detection="vad",
                min_endpointing_delay=0.5,
            )
            feed = FeedInput(start=t0 + i * C.FRAME / count, blocks=None, limit=frames)
            sink = Sink(realtime=True)
            await start_session(session, feed, sink)
            kept.append((session, feed, sink))

    await add(1)
    await asyncio.sleep(params.get("settle", 3.0))
    C.settle_memory()
    one = C.rss_kib()
    snap_one = tracemalloc.take_snapshot() if trace else None
    await add(n - 1)
    await asyncio.sleep(params.get("settle", 3.0))
    C.settle_memory()
    many = C.rss_kib()
    alloc = C.allocation_diff(snap_one, tracemalloc.take_snapshot(), n - 1) if trace else None
    return {
        "alloc": alloc,
        "n": n,
        "rss_base_kib": base,
        "rss_one_kib": one,
        "rss_n_kib": many,
        "per_session_kib": (many - one) / (n - 1),
    }


SCENARIOS = {"turns": turns, "interrupt": interrupt, "density": density, "memory": memory}


def main() -> None:
    scenario, params = C.parse_args(__doc__)
    logging.basicConfig(level=logging.ERROR)
    cpu = C.pin_to_cpu(params.get("cpu"))
    C.freeze_like_a_job_process("livekit.plugins.silero")
    started = C.perf()
    foreign = C.ForeignLoad(cpu)

    profiler = None
    if params.get("profile"):
        from pyinstrument import Profiler

        profiler = Profiler(interval=params.get("profile_interval", 0.0005), async_mode="disabled")
        profiler.start()
    profile_origin = C.perf()

    async def run() -> None:
        result = await SCENARIOS[scenario](params)
        windows = result.pop("_windows", None)
        if profiler is not None:
            profiler.stop()
            tree = profiler.output_text(unicode=False, color=False, show_all=False)
            Path(params["profile"]).write_text(tree)  # noqa: ASYNC240 - once, after measuring
            session = profiler.last_session
            if session is not None:
                result["profile"] = C.profile_summary(session.frame_records, inclusive_in="livekit")
                result["profile"]["tree_file"] = params["profile"]
                if windows:
                    result["profile"]["measured"] = C.profile_summary(
                        session.frame_records,
                        inclusive_in="livekit",
                        windows=windows,
                        origin=profile_origin,
                    )
        result.update(
            framework="livekit-agents",
            version=LK_VERSION,
            scenario=scenario,
            cpu=cpu,
            wall_s=C.perf() - started,
            rss_end_kib=C.rss_kib(),
            foreign_share_run=foreign.share(),
            versions=C.dist_versions(
                "livekit-agents", "livekit", "livekit-plugins-silero", "onnxruntime", "numpy"
            ),
        )
        C.emit_result(result)
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(0)  # don't wait for N sessions to close: the figures are taken

    asyncio.run(run())


if __name__ == "__main__":
    main()
