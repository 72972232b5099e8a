"""The agent of the cluster and chaos tests: no model to load, every answer known in advance.

The caller speaks tones: turn ``k`` is a tone of ``tone_hz(k)``, and :class:`ToneSTT` (a
streaming recognizer that hears loudness and pitch) transcribes it as ``"turn k"``. The LLM
and TTS are tvoice.testing's scripted fakes on the real clock: ``"turn k"`` is answered
``"Reply k."``, spoken as a short tone. Two turns are faults a caller can ask for:

- ``STT_ERROR_TURN``: the recognizer fails (a retryable APIError), as a provider does; the
  session restarts it and the caller says its turn again.
- ``TTS_STALL_TURN``: the reply's audio never comes (the fake TTS waits an hour for its first
  frame); the caller's next turn interrupts it.

Every chat item the session adds is appended at once to ``<room>.history.jsonl`` in
``$TVOICE_TEST_MARKER_DIR``, so even a killed job process leaves what it had; the file
``<room>.<pid>`` says which process ran the room.
"""

from __future__ import annotations

import json
import os
import re

import numpy as np
import trio

from tvoice import (
    Agent,
    AgentSession,
    APIConnectOptions,
    APIStatusError,
    JobContext,
    JobProcess,
    WorkerOptions,
    run_app,
)
from tvoice.audio import AudioFrame
from tvoice.llm import ChatContext, ChatMessage
from tvoice.stt import (
    STT,
    RecognizeStream,
    SpeechData,
    SpeechEvent,
    SpeechEventType,
    STTCapabilities,
)
from tvoice.testing import FakeLLM, FakeTTS, LLMReply, Script, TTSReply
from tvoice.voice import ConversationItemAddedEvent

TURNS = 30  # turns 0..29 have a tone each
STT_ERROR_TURN = 30
TTS_STALL_TURN = 31
LOUD = 1000.0  # RMS above which a frame is the caller's tone
END_SILENCE = 0.25  # seconds of quiet that end an utterance
MIN_SPEECH = 0.15  # shorter sounds are clicks, not turns
_OPTIONS = APIConnectOptions()


def tone_hz(turn: int) -> float:
    """The pitch that says ``turn``: 100 Hz apart, well within what Opus carries."""
    return 400.0 + 100.0 * turn


def reply_text(turn: int) -> str:
    return f"Reply {turn}."


def heard_turn(samples: np.ndarray, rate: int) -> int:
    """The turn whose tone is loudest in ``samples`` (mono float)."""
    spectrum = np.abs(np.fft.rfft(samples * np.hanning(len(samples))))
    peak = float(np.fft.rfftfreq(len(samples), 1.0 / rate)[int(np.argmax(spectrum))])
    return round((peak - 400.0) / 100.0)


class ToneSTT(STT):
    """Hears the caller's tones: START_OF_SPEECH when one starts, ``"turn k"`` and
    END_OF_SPEECH once it ends; fails on the tone of :data:`STT_ERROR_TURN`."""

    def __init__(self) -> None:
        super().__init__(capabilities=STTCapabilities(streaming=True, interim_results=False))

    async def _recognize_impl(
        self, frame: AudioFrame, *, language: str | None, conn_options: APIConnectOptions
    ) -> SpeechEvent:
        data = frame.data[:, 0].astype(np.float64)
        text = f"turn {heard_turn(data, frame.sample_rate)}" if len(data) else ""
        return SpeechEvent(
            type=SpeechEventType.FINAL_TRANSCRIPT, alternatives=[SpeechData(text=text)]
        )

    def stream(
        self, *, language: str | None = None, conn_options: APIConnectOptions = _OPTIONS
    ) -> RecognizeStream:
        return _ToneStream(self, language=language, conn_options=conn_options)


class _ToneStream(RecognizeStream):
    async def _run(self) -> None:
        heard: list[np.ndarray] = []
        quiet = 0.0
        rate = 0
        async for frame in self._input:
            if not isinstance(frame, AudioFrame):
                continue
            samples = frame.data[:, 0].astype(np.float64)
            loud = samples.size > 0 and float(np.sqrt(np.mean(samples**2))) > LOUD
            if loud:
                if not heard:
                    await self._emit(SpeechEvent(type=SpeechEventType.START_OF_SPEECH))
                heard.append(samples)
                rate, quiet = frame.sample_rate, 0.0
            elif heard:
                quiet += frame.duration
                if quiet >= END_SILENCE:
                    audio, heard = np.concatenate(heard), []
                    await self._utterance_ended(audio, rate)

    async def _utterance_ended(self, audio: np.ndarray, rate: int) -> None:
        if len(audio) < MIN_SPEECH * rate:
            await self._emit(SpeechEvent(type=SpeechEventType.END_OF_SPEECH))
            return
        turn = heard_turn(audio, rate)
        if turn == STT_ERROR_TURN:
            raise APIStatusError("the recognizer failed (a scripted fault)", status_code=503)
        text = SpeechData(text=f"turn {turn}", confidence=1.0, language="en")
        await self._emit(SpeechEvent(type=SpeechEventType.FINAL_TRANSCRIPT, alternatives=[text]))
        await self._emit(SpeechEvent(type=SpeechEventType.END_OF_SPEECH))


def script() -> Script:
    """Every turn's reply: text at once, a 0.6 s tone soon after; the stall turn's never."""
    replies = Script()
    for turn in [*range(TURNS), TTS_STALL_TURN]:
        text = reply_text(turn)
        replies.llm[f"turn {turn}"] = [LLMReply(input=f"turn {turn}", content=text)]
        stall = 3600.0 if turn == TTS_STALL_TURN else 0.0
        replies.tts[text] = [
            TTSReply(input=text, audio_duration=0.6, ttfb=0.05 + stall, duration=0.1 + stall)
        ]
    return replies


class TonesAgent(Agent):
    async def on_user_turn_completed(self, turn_ctx: ChatContext, new_message: ChatMessage) -> None:
        # A turn said twice in a row (the caller repeating itself) is that turn once.
        said = re.findall(r"turn \d+", new_message.text_content or "")
        if said:
            new_message.content = [said[-1]]


def prewarm(proc: JobProcess) -> None:
    proc.userdata["script"] = script()


async def entrypoint(ctx: JobContext) -> None:
    folder = os.environ.get("TVOICE_TEST_MARKER_DIR")
    room = ctx.job.room_name
    if folder:
        await trio.Path(folder, f"{room}.{os.getpid()}").write_text(ctx.job.id)
    await ctx.connect()
    replies = ctx.proc.userdata["script"]
    async with AgentSession(
        stt=ToneSTT(),
        llm=FakeLLM(replies),
        tts=FakeTTS(replies),
        turn_detection="stt",
        min_endpointing_delay=0.1,
    ) as session:
        if folder:
            history = os.path.join(folder, f"{room}.history.jsonl")

            def record(event: ConversationItemAddedEvent) -> None:
                item = event.item
                line = {"type": item.type, "role": getattr(item, "role", "")}
                line["text"] = getattr(item, "text_content", "") or ""
                # Appended as it happens: a killed process keeps what it had.
                with open(history, "a") as f:
                    f.write(json.dumps(line) + "\n")

            session.on("conversation_item_added", record)
        await session.start(TonesAgent(instructions="Answer each turn."), room=ctx.room)
        await session.wait_closed()


def load(worker: object) -> float:
    """The share of 16 jobs (test machines run busy, and the server sends nothing to a worker
    at CPU load 1); 1, full, while a test has put a file named ``full`` in the marker folder."""
    folder = os.environ.get("TVOICE_TEST_MARKER_DIR")
    if folder and os.path.exists(os.path.join(folder, "full")):
        return 1.0
    return len(worker.active_jobs) / 16  # type: ignore[attr-defined]


options = WorkerOptions(
    entrypoint_fnc=entrypoint,
    prewarm_fnc=prewarm,
    agent_name="tones",
    load_fnc=load,
    # Many job processes start at once when a node's rooms move to the other one, and on a
    # small busy machine each takes seconds of CPU to import: more than the default 10 s.
    initialize_process_timeout=30.0,
    load_threshold=1.0,
    num_idle_processes=2,
    port=0,
)

if __name__ == "__main__":
    run_app(options)
