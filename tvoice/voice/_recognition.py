"""Listening: audio -> VAD and STT in parallel -> user state, transcripts, end of turn."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterable, AsyncIterator
from contextlib import aclosing
from typing import TYPE_CHECKING, Protocol

import attrs
import trio

from .._utils import BackgroundTasks
from ..audio import AudioFrame
from ..llm import ChatContext
from ..stt import SpeechEvent, SpeechEventType
from ..vad import VAD, VADEvent, VADEventType, VADStream
from ._agent import Agent
from ._turn import TurnDetection, TurnDetector, endpointing_delay

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
    """Owns the VAD stream, the STT node and the endpointing timer of a session.

    Frames come in through :meth:`push_frame`. A turn is committed ``endpointing delay``
    seconds after the user stopped speaking (counted from the end of speech, not from when the
    VAD noticed), once a final transcript exists; speech that resumes in the meantime cancels
    the commit and the turn goes on.

    Events of one instant (on a virtual clock they share it) are decided by rules, not by the
    order trio runs their tasks in: speech or words that come at the instant the turn is due
    begin the next turn, and the STT's verdict on a speech the VAD closed commits the turn even
    when new speech begins at that instant.
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
        stt_wait: float = 10.0,
    ) -> None:
        self._hooks = hooks
        self._vad = vad
        self.turn_detection = turn_detection
        self.min_endpointing_delay = min_endpointing_delay
        self.max_endpointing_delay = max_endpointing_delay
        self._stt_enabled = stt_enabled
        self._vad_source = vad
        self._vad_stream: VADStream | None = None
        # The channel to the STT node, and whether a node reads it now.
        self._stt_send: trio.MemorySendChannel[AudioFrame] | None = None
        self._stt_reading = False
        self._stt_scope: trio.CancelScope | None = None
        self._nursery: trio.Nursery | None = None
        self._endpointing: trio.CancelScope | None = None
        self._endpointing_at: float | None = None  # when the pending endpointing commits
        # The turn being heard.
        self.speaking = False
        self._speaking_since = 0.0  # when the speech being heard began
        self._finals: list[str] = []
        self._interim = ""
        self._speech_started_at: float | None = None
        self._speech_ended_at: float | None = None
        self._final_at: float | None = None
        self._last_preemptive: str | None = None
        # Speech heard while the agent spoke without allowing interruptions (the speech being
        # heard, or an earlier one of the turn): the turn is discarded when it commits.
        self._speech_discarded = False
        self._turn_discarded = False
        # Utterances the VAD closed minus those the STT closed (END_OF_SPEECH): above zero,
        # the STT still owes a verdict and the turn may not commit yet (bounded by stt_wait).
        # Between the end of speech and the STT's verdict on it (bounded by stt_wait).
        self._stt_wait = stt_wait
        self._stt_owed = 0
        # The STT closed the utterance the VAD still hears (the STT can be ahead): when the VAD
        # closes it, the STT owes nothing for it - unless the STT opened another one since
        # (two bursts the VAD hears as one speech), whose verdict is still to come.
        self._stt_ahead = False
        self._stt_events = 0  # events the STT has delivered: a restart that hears resets failures
        self._stt_dropping = False  # said once per wait that it drops frames
        self._stt_pending: trio.CancelScope | None = None

    # -- state --------------------------------------------------------------------------------

    @property
    def transcript(self) -> str:
        """Final transcripts of the turn so far."""
        return " ".join(self._finals)

    @property
    def turn_pending(self) -> bool:
        """Something was heard that is not committed yet (speech, transcript, endpointing)."""
        return (
            self.speaking
            or bool(self._finals)
            or self._endpointing is not None
            or self._stt_pending is not None
        )

    # -- running ------------------------------------------------------------------------------

    async def run(
        self,
        agent: Agent,
        settings: ModelSettings,
        audio: AsyncIterable[AudioFrame],
        *,
        task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED,
    ) -> None:
        """Listen to ``audio`` until cancelled (its end stops only the listening).

        This task reads the audio and pushes each frame into the VAD stream and the STT node's
        channel; a task reads the VAD's events, another runs the STT node.
        """
        async with BackgroundTasks() as nursery:
            self._nursery = nursery
            self.restart_stt(agent, settings)
            if self._vad is not None:
                # Started before the audio flows, so the first frame finds the stream open.
                await nursery.start(self._run_vad, self._vad)
            task_status.started()
            await self._pump(audio)

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
        """Start (or restart, for a new agent) the STT node with the current agent."""
        if self._stt_scope is not None:
            self._stt_scope.cancel()
        self._stt_send = None
        if not self._stt_enabled or self._nursery is None:
            return
        scope = self._stt_scope = trio.CancelScope()
        # Frames wait here while the node is not reading (opening, or between attempts).
        send, frames = trio.open_memory_channel[AudioFrame](_STT_BUFFER)
        self._stt_send, self._stt_dropping = send, False
        self._nursery.start_soon(self._keep_stt, agent, settings, send, frames, scope)

    async def push_frame(self, frame: AudioFrame) -> None:
        """Feed one frame of the user's audio to the VAD and the STT."""
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
        if event.type == VADEventType.START_OF_SPEECH:
            self.start_of_speech(event)
        elif event.type == VADEventType.END_OF_SPEECH:
            self.end_of_speech(event, ended_at=event.timestamp - event.silence_duration)

    def start_of_speech(self, event: VADEvent | None) -> None:
        """The user started speaking (from the VAD, or the STT when there is no VAD)."""
        if self.speaking:
            return
        now = trio.current_time()
        if self._endpointing_due():
            # The turn ends at this very instant: this speech begins the next turn, as it does
            # when the timer's task runs first.
            self.commit()
        self.speaking = True
        self._speaking_since = now
        if self._speech_started_at is None:
            self._speech_started_at = now
        self._turn_discarded = self._turn_discarded or self._speech_discarded
        self._speech_discarded = False
        self._cancel_endpointing()
        self._hooks.on_start_of_speech(event)

    def _endpointing_due(self) -> bool:
        # The endpointing timer is due (its task, woken at this instant, has not run yet).
        at = self._endpointing_at
        return at is not None and trio.current_time() >= at

    def discard_speech(self) -> None:
        """The speech being heard was heard while the agent spoke without allowing
        interruptions: its turn is discarded when it commits."""
        self._speech_discarded = True

    def _speaking_on(self) -> bool:
        # Speech that began at this very instant does not hold back a turn that ends now: the
        # order of two events of one instant is trio's, the outcome must not be.
        return self.speaking and self._speaking_since < trio.current_time()

    def end_of_speech(self, event: VADEvent | None, *, ended_at: float) -> None:
        """The user stopped speaking at ``ended_at``."""
        if not self.speaking:
            return
        self.speaking = False
        self._speech_ended_at = ended_at
        if self._stt_ahead:
            self._stt_ahead = False
        elif self._stt_enabled and event is not None:
            # The VAD closed it: the STT owes its verdict (without a VAD, the STT's own
            # END_OF_SPEECH is what ended the speech).
            self._stt_owed += 1
            self._await_stt()
        self._hooks.on_end_of_speech(event)
        if self.turn_detection != "manual" and self.turn_detection != "stt":
            self._start_endpointing()

    def _await_stt(self) -> None:
        if self._nursery is None or self._stt_pending is not None:
            return
        scope = self._stt_pending = trio.CancelScope()

        async def bound() -> None:
            with scope:
                await trio.sleep(self._stt_wait)
                logger.warning("no transcript %s s after the end of speech", self._stt_wait)
                self._stt_owed = 0
                self._stt_settled()

        self._nursery.start_soon(bound)

    def _stt_settled(self) -> None:
        if self._stt_pending is not None:
            self._stt_pending.cancel()
            self._stt_pending = None
            self._hooks.on_pending_changed()
        if not self._speaking_on() and self.turn_detection not in ("manual", "stt"):
            self._start_endpointing()

    def _on_stt_event(self, event: SpeechEvent) -> None:
        self._stt_events += 1
        if event.type == SpeechEventType.END_OF_SPEECH:
            if self._stt_owed > 0:
                self._stt_owed -= 1
                if self._stt_owed == 0:
                    self._stt_settled()
            elif self.speaking and self._vad is not None:
                # Ahead of the VAD: this verdict covers the utterance it has not closed yet.
                self._stt_ahead = True
        elif event.type == SpeechEventType.START_OF_SPEECH:
            # A new utterance (the VAD may hear it as part of the same speech): whatever the
            # STT closed before, its verdict on this one is still to come.
            self._stt_ahead = False
        if event.type == SpeechEventType.START_OF_SPEECH and self._vad is None:
            self.start_of_speech(None)
        elif event.type == SpeechEventType.INTERIM_TRANSCRIPT:
            self._interim = event.text
            turn = " ".join([*self._finals, event.text]).strip()
            self._hooks.on_transcript(event, turn_text=turn)
        elif event.type == SpeechEventType.FINAL_TRANSCRIPT:
            self._on_final(event)
        elif event.type == SpeechEventType.END_OF_SPEECH:
            if self._vad is None:
                self.end_of_speech(None, ended_at=trio.current_time())
            if self.turn_detection == "stt":
                self._speech_ended_at = trio.current_time()
                self._start_endpointing()

    def _on_final(self, event: SpeechEvent) -> None:
        text = event.text.strip()
        self._interim = ""
        if not text:
            return
        if self._endpointing_due():
            # The turn ends at this very instant: these words are the next turn's, as they are
            # when the timer's task runs first.
            self.commit()
        self._finals.append(text)
        self._final_at = trio.current_time()
        self._hooks.on_transcript(event, turn_text=self.transcript)
        if self.transcript != self._last_preemptive:
            self._last_preemptive = self.transcript
            self._hooks.on_preemptive_generation(self.transcript)
        if not self._speaking_on() and self.turn_detection not in ("manual", "stt"):
            self._start_endpointing()

    # -- end of turn --------------------------------------------------------------------------

    def _cancel_endpointing(self) -> None:
        self._endpointing_at = None
        if self._endpointing is not None:
            self._endpointing.cancel()
            self._endpointing = None

    def _start_endpointing(self) -> None:
        self._cancel_endpointing()
        if self._nursery is None or not self._finals or self._stt_owed > 0:
            return
        ended = self._speech_ended_at if self._speech_ended_at is not None else 0.0
        if not isinstance(self.turn_detection, TurnDetector) and (
            trio.current_time() >= ended + self.min_endpointing_delay
        ):
            # Already due: commit now rather than in a task that would race whatever else
            # happens at this instant (a new start of speech, say).
            self.commit()
            return
        if self.speaking and self.turn_detection != "stt":
            return  # speech that began at this instant holds a turn that is not due yet
        scope = self._endpointing = trio.CancelScope()
        self._nursery.start_soon(self._endpoint, scope)

    async def _endpoint(self, scope: trio.CancelScope) -> None:
        with scope:
            delay = self.min_endpointing_delay
            if isinstance(self.turn_detection, TurnDetector):
                ctx = self._hooks.chat_ctx_for_turn_detection()
                ctx.add_message(role="user", content=self.transcript)
                probability = await self.turn_detection.predict_end_of_turn(ctx)
                delay = endpointing_delay(
                    probability,
                    min_delay=self.min_endpointing_delay,
                    max_delay=self.max_endpointing_delay,
                )
            ended = self._speech_ended_at if self._speech_ended_at is not None else 0.0
            self._endpointing_at = ended + delay
            await trio.sleep_until(ended + delay)
            self._endpointing = self._endpointing_at = None
            self.commit()

    def commit(self) -> EndOfTurn | None:
        """End the user's turn now with what was transcribed (interim text if no final)."""
        self._cancel_endpointing()
        text = self.transcript or self._interim.strip()
        now = trio.current_time()
        ended = self._speech_ended_at
        # Speech that began at this very instant is the next turn's, and so is its discard mark.
        speech_is_next = self.speaking and self._speaking_since == now
        turn = EndOfTurn(
            transcript=text,
            started_speaking_at=self._speech_started_at,
            stopped_speaking_at=ended,
            transcription_delay=max(0.0, (self._final_at or now) - ended) if ended else 0.0,
            end_of_utterance_delay=(now - ended) if ended is not None else 0.0,
            committed_at=now,
            discarded=self._turn_discarded or (self._speech_discarded and not speech_is_next),
        )
        self.clear()
        if text:
            self._hooks.on_end_of_turn(turn)
            return turn
        return None

    def clear(self) -> None:
        """Forget the turn being heard."""
        self._cancel_endpointing()
        self._finals = []
        self._interim = ""
        self._final_at = None
        self._last_preemptive = None
        self._speech_discarded = self._speech_discarded and (
            self.speaking and self._speaking_since == trio.current_time()
        )
        self._turn_discarded = False
        self._stt_owed = 0
        if self._stt_pending is not None:
            self._stt_pending.cancel()
            self._stt_pending = None
        self._speech_started_at = trio.current_time() if self.speaking else None
        self._speech_ended_at = None


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
