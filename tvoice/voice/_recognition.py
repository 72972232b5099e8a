"""Listening: audio -> VAD and STT in parallel -> user state, transcripts, end of turn."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterable, AsyncIterator
from contextlib import aclosing
from typing import TYPE_CHECKING, Protocol

import trio

from .._utils import BackgroundTasks
from ..audio import AudioFrame
from ..llm import ChatContext
from ..stt import SpeechEvent, SpeechEventType
from ..vad import VAD, VADDetector, VADEvent, VADEventType, VADStream
from ._agent import Agent
from ._clock import Clock
from ._turn import TurnDetection, TurnDetector
from ._turn_machine import (
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
)

if TYPE_CHECKING:
    from ._agent import ModelSettings

__all__ = ["AudioRecognition", "EndOfTurn", "RecognitionHooks"]

logger = logging.getLogger("tvoice.voice")
# Frames the STT may fall behind before the pushing task waits (5 s of 20 ms frames).
_STT_BUFFER = 256
# A speech-to-text stream that fails is opened again, after 0.5, 1, 2, 4, 8 s; once it has
# failed this many times in a row with nothing heard in between, the session ends with the
# error (a deaf agent is worse than a closed call, which the caller can make again).
STT_RESTARTS = 5
_STT_BACKOFF = 0.5


class RecognitionHooks(Protocol):
    """What recognition tells the session (synchronous: start tasks for async work)."""

    def on_start_of_speech(self, event: VADEvent | None) -> None: ...
    def on_end_of_speech(self, event: VADEvent | None) -> None: ...
    def on_transcript(self, event: SpeechEvent, *, turn_text: str) -> None: ...
    def on_preemptive_generation(self, transcript: str) -> None: ...
    def on_end_of_turn(self, turn: EndOfTurn) -> None: ...
    def chat_ctx_for_turn_detection(self) -> ChatContext: ...
    def on_error(self, error: BaseException, source: object) -> None: ...
    def on_stt_lost(self, error: BaseException) -> None: ...
    def on_pending_changed(self) -> None: ...


class AudioRecognition:
    """Owns the VAD (its detector or its stream), the STT node and the clock of the user's turn.

    Frames come in through :meth:`push_frame`. What the VAD and the STT report, and the time it
    came at, goes into a :class:`TurnMachine`, which decides the turn (the rules, among them
    those for events of one instant, are its); this driver tells the hooks what it decided,
    has the session's clock wake it at its deadline and runs the turn detector's predictions
    it asks for.
    """

    def __init__(
        self,
        hooks: RecognitionHooks,
        *,
        vad: VAD | None,
        turn_detection: TurnDetection,
        min_endpointing_delay: float,
        max_endpointing_delay: float,
        stt_enabled: bool,
        clock: Clock,
        stt_wait: float = 10.0,
    ) -> None:
        self._hooks = hooks
        self._clock = clock
        self._vad = vad
        self.turn_detection = turn_detection
        self._stt_enabled = stt_enabled
        self._vad_source = vad
        self._machine = TurnMachine(
            mode="model" if isinstance(turn_detection, TurnDetector) else turn_detection,
            min_delay=min_endpointing_delay,
            max_delay=max_endpointing_delay,
            has_vad=vad is not None,
            stt_enabled=stt_enabled,
            stt_wait=stt_wait,
        )
        # The VAD runs in the pumping task (its detector) or in its stream's task.
        self._detector: VADDetector | None = None
        self._vad_stream: VADStream | None = None
        # The agent whose STT node runs (or will, once run() begins).
        self._stt_node: tuple[Agent, ModelSettings] | None = None
        # The channel to the STT node, and whether a node reads it now.
        self._stt_send: trio.MemorySendChannel[AudioFrame] | None = None
        self._stt_reading = False
        self._stt_scope: trio.CancelScope | None = None
        self._stt_events = 0  # events the STT has delivered: a restart that hears resets failures
        self._stt_dropping = False  # said once per wait that it drops frames
        self._nursery: trio.Nursery | None = None
        # The prediction the machine waits for (its epoch, its scope).
        self._prediction: tuple[int, trio.CancelScope] | None = None

    # -- state --------------------------------------------------------------------------------

    @property
    def speaking(self) -> bool:
        """The user is speaking."""
        return self._machine.speaking

    @property
    def transcript(self) -> str:
        """Final transcripts of the turn so far."""
        return self._machine.transcript

    @property
    def turn_pending(self) -> bool:
        """Something was heard that is not committed yet (speech, transcript, endpointing)."""
        return self._machine.pending

    @property
    def deadline(self) -> float | None:
        """When the turn machine must be told the time next (the session's clock does)."""
        return self._machine.deadline

    def tick(self, now: float) -> None:
        """The session's clock: the machine's deadline has come."""
        self._carry_out(self._machine.tick(now))

    # -- running ------------------------------------------------------------------------------

    async def open_vad(self) -> None:
        """Open the VAD's detector, if it has one (before :meth:`run`). A VAD that cannot be
        opened is reported, and the STT listens alone."""
        vad = self._vad
        if vad is None:
            return
        try:
            self._detector = await vad.detector()
        except Exception as e:
            self._vad_failed(e)

    async def run(self, audio: AsyncIterable[AudioFrame]) -> None:
        """Listen to ``audio`` until cancelled (its end stops only the listening).

        This task reads the audio, runs the VAD's detector on each frame when the VAD has one
        (else pushes it into the VAD's stream, whose events a task reads) and pushes the frame
        into the STT node's channel; another task runs the STT node (see :meth:`restart_stt`).
        The session's clock keeps the turn's time.
        """
        self._clock.add(self)
        try:
            async with BackgroundTasks() as nursery:
                self._nursery = nursery
                if self._stt_node is not None:
                    self.restart_stt(*self._stt_node)
                if self._vad is not None and self._detector is None:
                    # Started before the audio flows, so the first frame finds the stream open.
                    await nursery.start(self._run_vad, self._vad)
                await self._pump(audio)
        finally:
            self._clock.remove(self)

    async def _pump(self, audio: AsyncIterable[AudioFrame]) -> None:
        async for frame in audio:
            await self.push_frame(frame)
        await trio.sleep_forever()  # the user's audio ended: what was heard still goes on

    async def _run_vad(
        self, vad: VAD, *, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED
    ) -> None:
        try:
            stream = vad.stream()
        except Exception as e:
            self._vad_failed(e)
            task_status.started()
            return
        async with stream:
            self._vad_stream = stream
            task_status.started()
            try:
                async for event in stream:
                    self._on_vad_event(event)
            except Exception as e:
                self._vad_failed(e)
            finally:
                if self._vad_stream is stream:
                    self._vad_stream = None

    def restart_stt(self, agent: Agent, settings: ModelSettings) -> None:
        """Start (or restart, for a new agent) the STT node with ``agent``: now if
        :meth:`run` runs, else as it begins."""
        if self._stt_scope is not None:
            self._stt_scope.cancel()
        self._stt_send = None
        self._stt_node = (agent, settings)
        if not self._stt_enabled or self._nursery is None:
            return
        scope = self._stt_scope = trio.CancelScope()
        # Frames wait here while the node is not reading (opening, or between attempts).
        send, frames = trio.open_memory_channel[AudioFrame](_STT_BUFFER)
        self._stt_send, self._stt_dropping = send, False
        self._nursery.start_soon(self._keep_stt, agent, settings, send, frames, scope)

    async def push_frame(self, frame: AudioFrame) -> None:
        """Feed one frame of the user's audio to the VAD and the STT."""
        detector = self._detector
        if detector is not None:
            try:
                events = detector.push_frame(frame)
            except Exception as e:
                # A frame it refuses, or a detection that fails: listening goes on without it.
                self._detector = None
                self._vad_failed(e)
            else:
                for event in events:
                    self._on_vad_event(event)
        vad = self._vad_stream
        if vad is not None:
            try:
                await vad.push_frame(frame)
            except Exception as e:
                self._vad_rejected(vad, e)
        send = self._stt_send
        if send is None:
            return
        if self._stt_reading:
            await send.send(frame)  # the STT node keeps up, or slows the audio down
            return
        # No node reads (the STT is being opened again): keep what the channel holds, and
        # say so when the user's audio no longer fits.
        try:
            send.send_nowait(frame)
        except trio.WouldBlock:
            if not self._stt_dropping:
                self._stt_dropping = True
                logger.warning(
                    "speech-to-text is not ready: dropping the user's audio past %d frames",
                    _STT_BUFFER,
                )
        await trio.lowlevel.checkpoint()

    def _vad_rejected(self, stream: VADStream, error: Exception) -> None:
        # The VAD refused a frame (another audio format, say): listening goes on without it,
        # as when it fails; what it still says while it ends its input is ignored.
        if self._vad_stream is not stream:
            return
        self._vad_stream = None
        stream.end_input()
        self._vad_failed(error)

    def _vad_failed(self, error: Exception) -> None:
        if self._vad is not None:
            # Listening goes on with speech-to-text alone.
            self._vad = None
            self._machine.vad_lost()
            self._hooks.on_error(error, self._vad_source)

    async def _keep_stt(
        self,
        agent: Agent,
        settings: ModelSettings,
        send: trio.MemorySendChannel[AudioFrame],
        frames: trio.MemoryReceiveChannel[AudioFrame],
        scope: trio.CancelScope,
    ) -> None:
        # Speech-to-text for as long as the agent listens: an attempt that fails is made again
        # with backoff (the session goes on meanwhile: VAD, text input), reading the frames
        # that waited in the channel.
        with scope, frames:
            source = settings.models.stt
            failures = 0
            while True:
                heard = self._stt_events
                error = await self._stt_attempt(agent, settings, frames)
                if error is None:
                    if self._stt_send is send:
                        self._stt_send = None  # no STT, or its node ended: nothing to feed
                    return
                failures = 1 if self._stt_events > heard else failures + 1
                self._hooks.on_error(error, source)
                if failures > STT_RESTARTS:
                    logger.error(
                        "speech-to-text failed %d times in a row, ending the session: %s",
                        failures,
                        error,
                    )
                    self._hooks.on_stt_lost(error)
                    return
                await trio.sleep(_STT_BACKOFF * 2 ** (failures - 1))
                logger.info("speech-to-text: opening its stream again (failure %d)", failures)

    async def _stt_attempt(
        self,
        agent: Agent,
        settings: ModelSettings,
        frames: trio.MemoryReceiveChannel[AudioFrame],
    ) -> Exception | None:
        """Run the agent's ``stt_node`` until it ends; the error it ended with, if any."""
        self._stt_reading, self._stt_dropping = True, False
        try:
            async with aclosing(agent.stt_node(_iterate(frames), settings)) as events:
                async for event in events:
                    self._on_stt_event(event)
        except Exception as e:
            return e
        finally:
            self._stt_reading = False
        return None

    # -- events -------------------------------------------------------------------------------

    def _on_vad_event(self, event: VADEvent) -> None:
        if self._vad is None:
            return  # it failed or refused a frame: we listen without it
        now = trio.current_time()
        if event.type == VADEventType.START_OF_SPEECH:
            self._carry_out(self._machine.vad_start(now), vad_event=event)
        elif event.type == VADEventType.END_OF_SPEECH:
            ended_at = event.timestamp - event.silence_duration
            self._carry_out(self._machine.vad_end(now, ended_at=ended_at), vad_event=event)

    def _on_stt_event(self, event: SpeechEvent) -> None:
        self._stt_events += 1
        kind = _STT_KINDS.get(event.type)
        if kind is None:
            return
        decisions = self._machine.stt(trio.current_time(), kind, event.text)
        self._carry_out(decisions, stt_event=event)

    def discard_speech(self) -> None:
        """The speech being heard was heard while the agent spoke without allowing
        interruptions: its turn is discarded when it commits."""
        self._carry_out(self._machine.discard_speech(trio.current_time()))

    def commit(self) -> EndOfTurn | None:
        """End the user's turn now with what was transcribed (interim text if no final)."""
        return self._carry_out(self._machine.commit(trio.current_time()))

    def clear(self) -> None:
        """Forget the turn being heard."""
        self._carry_out(self._machine.clear(trio.current_time()))

    # -- carrying out the machine's decisions -------------------------------------------------

    def _carry_out(
        self,
        decisions: list[Decision],
        *,
        vad_event: VADEvent | None = None,
        stt_event: SpeechEvent | None = None,
    ) -> EndOfTurn | None:
        """Tell the hooks what the machine decided, in its order; then run (or drop) the
        prediction it waits for and tell the clock of its deadline. The last turn committed."""
        hooks, committed, machine = self._hooks, None, self._machine
        turns = machine.turns
        for decision in decisions:
            if machine.turns != turns and isinstance(decision, (Transcribed, Preempt, TurnEnded)):
                # A hook committed or cleared the turn (a user's callback, say): what was
                # decided for it before is stale.
                continue
            if isinstance(decision, Transcribed):
                assert stt_event is not None
                hooks.on_transcript(stt_event, turn_text=decision.turn_text)
            elif isinstance(decision, TurnEnded):
                committed = decision.turn
                hooks.on_end_of_turn(decision.turn)
            elif isinstance(decision, SpeechStarted):
                hooks.on_start_of_speech(vad_event)
            elif isinstance(decision, SpeechEnded):
                hooks.on_end_of_speech(vad_event)
            elif isinstance(decision, Preempt):
                hooks.on_preemptive_generation(decision.transcript)
            elif isinstance(decision, PendingChanged):
                hooks.on_pending_changed()
            elif isinstance(decision, SttOverdue):
                logger.warning("no transcript %s s after the end of speech", decision.wait)
            elif isinstance(decision, Predict):
                self._predict(decision)
        if self._prediction is not None and self._prediction[0] != machine.predicting:
            self._prediction[1].cancel()
            self._prediction = None
        self._clock.changed()
        return committed

    def _predict(self, decision: Predict) -> None:
        if self._prediction is not None:
            self._prediction[1].cancel()
        detector = self.turn_detection
        assert isinstance(detector, TurnDetector)
        assert self._nursery is not None
        scope = trio.CancelScope()
        self._prediction = (decision.epoch, scope)

        async def predict() -> None:
            with scope:
                ctx = self._hooks.chat_ctx_for_turn_detection()
                ctx.add_message(role="user", content=decision.transcript)
                probability = await detector.predict_end_of_turn(ctx)
                if self._prediction is not None and self._prediction[1] is scope:
                    self._prediction = None
                now = trio.current_time()
                self._carry_out(
                    self._machine.predicted(now, epoch=decision.epoch, probability=probability)
                )

        self._nursery.start_soon(predict)


_STT_KINDS = {
    SpeechEventType.START_OF_SPEECH: SttEvent.START_OF_SPEECH,
    SpeechEventType.INTERIM_TRANSCRIPT: SttEvent.INTERIM_TRANSCRIPT,
    SpeechEventType.PREFLIGHT_TRANSCRIPT: SttEvent.PREFLIGHT_TRANSCRIPT,
    SpeechEventType.FINAL_TRANSCRIPT: SttEvent.FINAL_TRANSCRIPT,
    SpeechEventType.END_OF_SPEECH: SttEvent.END_OF_SPEECH,
}


class _iterate:
    """Frames of a channel as an async iterator that leaves the channel open (the next attempt
    reads on); a class, so nothing needs finalizing."""

    def __init__(self, receive: trio.MemoryReceiveChannel[AudioFrame]) -> None:
        self._receive = receive

    def __aiter__(self) -> AsyncIterator[AudioFrame]:
        return self

    async def __anext__(self) -> AudioFrame:
        try:
            return await self._receive.receive()
        except (trio.EndOfChannel, trio.ClosedResourceError):
            raise StopAsyncIteration from None
