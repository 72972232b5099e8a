"""The console's simulated call: a room made of a WAV file (or the keyboard) and a recorder."""

from __future__ import annotations

import logging
import os
import sys
from collections.abc import Callable
from pathlib import Path

import attrs
import numpy as np
import trio

from ..audio import AudioFrame, read_wav, resample, write_wav
from ..io import (
    ClockedAudioOutput,
    FileAudioInput,
    Participant,
    RoomIO,
    RoomSession,
    SessionRoom,
    TextOutput,
    render_playbacks,
)
from ..metrics import EOUMetrics, STTMetrics, TurnMetrics
from ..voice import (
    ConversationItemAddedEvent,
    FunctionToolsExecutedEvent,
    MetricsCollectedEvent,
    UserInputTranscribedEvent,
)

__all__ = ["ConsoleRoom", "TurnRow"]

logger = logging.getLogger("tvoice.console")
Printer = Callable[[str], None]
RECORDING_INTERVAL = 5.0
"""How often, in seconds of the call, the recording so far is written to ``output_wav``."""


@attrs.define
class TurnRow:
    """One user turn and the delays that followed it (seconds; None: stage did not run)."""

    transcript: str = ""
    eou_delay: float | None = None
    stt: float | None = None
    llm_first_token: float | None = None
    tts_first_byte: float | None = None
    first_audio: float | None = None


class _PrintingTextOutput(TextOutput):
    label = "console_text_output"

    def __init__(self, write: Printer) -> None:
        self._write = write
        self._line: list[str] = []

    async def capture_text(self, text: str) -> None:
        self._line.append(text)

    def flush(self) -> None:
        if self._line:
            self._write(f"agent: {''.join(self._line).strip()}")
            self._line = []


class ConsoleRoom(SessionRoom):
    """A call made of ``input_wav`` (fed at real-time pace, then silence) or of typed lines
    (``text=True``), ended when the input is over and the agent is idle. The agent's audio
    plays on trio's clock; :meth:`write_recording` mixes it with the caller's audio.

    ``fast=True`` feeds the file as fast as the VAD takes it: no waiting for the caller's pace,
    while the agent's side (models, endpointing, playout) stays real time. ``output_wav``: the
    recording is written there every few seconds during the call (a crash keeps what came
    before it), and at the end by whoever ends the call (:meth:`write_recording`).
    """

    def __init__(
        self,
        *,
        input_wav: Path | None = None,
        text: bool = False,
        printer: Printer = print,
        idle_grace: float = 1.0,
        fast: bool = False,
        output_wav: Path | None = None,
    ) -> None:
        if (input_wav is None) == (not text):
            raise ValueError("a console call needs exactly one of input_wav= and text=True")
        self.input_audio: AudioFrame | None = read_wav(input_wav) if input_wav else None
        self.text = text
        self._print = printer
        self._idle_grace = idle_grace
        self.rows: list[TurnRow] = []
        self._last_stt: float | None = None
        self.output = ClockedAudioOutput(keep_audio=not text, label="console_audio_output")
        self.input: FileAudioInput | None = None
        self.fast = fast
        self.output_wav = output_wav
        self.ended_at: float | None = None
        self.name = "console"
        self.user = Participant(identity="console-user", name="You")

    async def wait_for_participant(self, *, identity: str | None = None) -> Participant:
        if identity is not None and identity != self.user.identity:
            raise RuntimeError(f"no participant {identity!r} in the console")
        return self.user

    async def run_session_io(
        self,
        session: RoomSession,
        *,
        task_status: trio.TaskStatus[RoomIO] = trio.TASK_STATUS_IGNORED,
    ) -> None:
        self._watch(session)
        text_output = _PrintingTextOutput(self._print)
        async with trio.open_nursery() as nursery:
            if self.text:
                task_status.started(RoomIO(text_output=text_output))
                nursery.start_soon(self._read_lines, session)
                return
            assert self.input_audio is not None
            await nursery.start(self.output.run)
            self.input = FileAudioInput(self.input_audio, paced=not self.fast)
            task_status.started(
                RoomIO(audio_input=self.input, audio_output=self.output, text_output=text_output)
            )
            nursery.start_soon(self._end_after_input, session, self.input)
            if self.output_wav is not None:
                nursery.start_soon(self._keep_recording, self.output_wav)

    async def _keep_recording(self, path: Path) -> None:
        while True:
            await trio.sleep(RECORDING_INTERVAL)
            self.write_recording(path)

    async def _end_after_input(self, session: RoomSession, audio: FileAudioInput) -> None:
        await audio.finished.wait()
        # Room for the VAD to hear the end of the last words, then for the reply.
        await trio.sleep(self._idle_grace)
        await session.wait_for_idle()
        self.ended_at = trio.current_time()
        session.shutdown("participant_disconnected")

    async def _read_lines(self, session: RoomSession) -> None:
        while True:
            self._print_prompt()
            line = await trio.to_thread.run_sync(sys.stdin.readline, abandon_on_cancel=True)
            if not line:
                break
            if line.strip():
                self._print(f"user: {line.strip()}")
                self.rows.append(TurnRow(transcript=line.strip()))
                await session.generate_reply(user_input=line.strip())
                await session.wait_for_idle()
        await session.wait_for_idle()
        session.shutdown("participant_disconnected")

    def _print_prompt(self) -> None:
        if sys.stdin.isatty():
            sys.stdout.write("> ")
            sys.stdout.flush()

    # -- what happens in the call -------------------------------------------------------------

    def _watch(self, session: RoomSession) -> None:
        session.on("user_input_transcribed", self._on_transcribed)
        session.on("function_tools_executed", self._on_tools)
        session.on("metrics_collected", self._on_metrics)
        session.on("conversation_item_added", self._on_item)

    def _on_transcribed(self, event: UserInputTranscribedEvent) -> None:
        if event.is_final:
            self._print(f"user: {event.transcript}")

    def _on_tools(self, event: FunctionToolsExecutedEvent) -> None:
        for call, output in zip(event.function_calls, event.function_call_outputs, strict=False):
            mark = " (error)" if output.is_error else ""
            self._print(f"  tool {call.name}({call.arguments}) -> {output.output!r}{mark}")

    def _on_item(self, event: ConversationItemAddedEvent) -> None:
        item = event.item
        if item.type == "message" and item.role == "assistant" and item.interrupted:
            self._print(f"  (interrupted; heard: {item.text_content!r})")
        elif item.type == "message" and item.role == "user" and not self.text:
            if not self.rows or self.rows[-1].transcript:
                self.rows.append(TurnRow())
            self.rows[-1].transcript = item.text_content or ""

    def _on_metrics(self, event: MetricsCollectedEvent) -> None:
        m = event.metrics
        if isinstance(m, STTMetrics):
            self._last_stt = m.duration
        elif isinstance(m, EOUMetrics):
            self.rows.append(TurnRow(eou_delay=m.end_of_utterance_delay, stt=self._last_stt))
            self._last_stt = None
        elif isinstance(m, TurnMetrics) and self.rows:
            row = self.rows[-1]
            row.llm_first_token, row.tts_first_byte = m.llm_ttft, m.tts_ttfb
            row.first_audio = m.e2e_latency

    # -- after the call -----------------------------------------------------------------------

    def latency_table(self) -> str:
        """The per-turn latency table, in markdown."""

        def ms(value: float | None) -> str:
            return "-" if value is None else f"{value * 1000:.0f} ms"

        lines = [
            "| turn | user said | EOU delay | STT | LLM first token | TTS first byte "
            "| end of speech -> first audio |",
            "|---|---|---|---|---|---|---|",
        ]
        for i, r in enumerate(self.rows, 1):
            said = r.transcript if len(r.transcript) <= 40 else r.transcript[:37] + "..."
            lines.append(
                f"| {i} | {said} | {ms(r.eou_delay)} | {ms(r.stt)} | {ms(r.llm_first_token)} "
                f"| {ms(r.tts_first_byte)} | {ms(r.first_audio)} |"
            )
        return "\n".join(lines)

    def write_recording(self, path: Path) -> float:
        """Write the call (caller and agent mixed on one timeline) to a WAV; returns how many
        seconds of agent audio were heard."""
        audio, fed = self.input_audio, self.input
        if audio is None or fed is None or fed.started_at is None:
            raise RuntimeError("nothing was recorded: the call did not run")
        rate = audio.sample_rate
        # The caller's track ends where its feed ended (with --fast, sooner than it lasts).
        origin = (fed.finished_at or fed.started_at + audio.duration) - audio.duration
        end = self.ended_at if self.ended_at is not None else trio.current_time()
        length = max(end - origin, audio.duration)
        mix = render_playbacks(
            self.output.playbacks, origin=origin, sample_rate=rate, length=length
        )
        caller = resample(audio, rate).data.mean(axis=1).astype(np.int32)
        mix[: len(caller)] += caller[: len(mix)]
        # Whole or not at all: a crash while writing keeps the last complete recording.
        partial = path.with_name(path.name + ".part")
        write_wav(partial, AudioFrame(np.clip(mix, -32768, 32767).astype(np.int16), rate))
        os.replace(partial, path)
        return sum(p.position for p in self.output.playbacks)
