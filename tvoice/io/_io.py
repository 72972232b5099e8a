"""Where a session's audio comes from and where its audio and text go."""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Awaitable, Callable
from typing import Any, Literal, Protocol

import attrs
import trio

from .._utils import EventEmitter, now
from ..audio import AudioFrame

__all__ = [
    "AudioInput",
    "AudioOutput",
    "ChannelAudioInput",
    "Participant",
    "PlaybackFinished",
    "PlaybackStarted",
    "RoomIO",
    "RoomSession",
    "SessionRoom",
    "TextOutput",
]


@attrs.frozen(kw_only=True)
class PlaybackStarted:
    """The first frame of a segment reached the listener."""

    created_at: float


@attrs.frozen(kw_only=True)
class PlaybackFinished:
    """A segment ended: played to the end, or cut by ``clear_buffer()``.

    ``playback_position`` is how many seconds of it the listener heard.
    """

    playback_position: float
    interrupted: bool
    synchronized_transcript: str | None = None
    created_at: float = attrs.field(factory=now)


class AudioInput(ABC):
    """A source of audio frames: ``async for frame in audio_input``. Ends when the source ends.

    Implementations write ``__anext__`` (not an async generator, so that breaking out of the
    loop leaves nothing to finalize).
    """

    label: str = "audio_input"

    def __aiter__(self) -> AudioInput:
        return self

    @abstractmethod
    async def __anext__(self) -> AudioFrame:
        """The next frame; raises ``StopAsyncIteration`` at the end of the audio."""


class ChannelAudioInput(AudioInput):
    """An :class:`AudioInput` fed by ``await push(frame)`` through a bounded channel."""

    def __init__(self, *, capacity: int = 64, label: str = "channel_audio_input") -> None:
        self._send, self._receive = trio.open_memory_channel[AudioFrame](capacity)
        self.label = label

    async def push(self, frame: AudioFrame) -> None:
        """Add a frame; waits while the consumer is ``capacity`` frames behind."""
        await self._send.send(frame)

    def close(self) -> None:
        """End of the audio: iteration stops after the frames already pushed."""
        self._send.close()

    async def __anext__(self) -> AudioFrame:
        try:
            return await self._receive.receive()
        except trio.EndOfChannel:
            raise StopAsyncIteration from None


class AudioOutput(ABC, EventEmitter[Literal["playback_started", "playback_finished"]]):
    """Plays a session's audio, segment by segment.

    A segment starts with the first ``capture_frame`` and ends with ``flush()``. Implementations
    play frames and call :meth:`on_playback_started` and :meth:`on_playback_finished` (exactly
    once per flushed or cleared segment); :meth:`wait_for_playout` returns when every segment
    flushed so far has finished. ``clear_buffer()`` drops what is not yet played (an
    interruption); ``pause()``/``resume()`` hold playback without losing it (a possible false
    interruption).
    """

    def __init__(self, *, sample_rate: int | None = None, label: str = "audio_output") -> None:
        super().__init__()
        self._sample_rate = sample_rate
        self.label = label
        self._capturing = False
        self._segments = 0
        self._finished = 0
        self._last_finished: PlaybackFinished | None = None
        self._finished_event: trio.Event | None = None  # made by the first wait

    @property
    def sample_rate(self) -> int | None:
        """The rate frames must have (None: any rate)."""
        return self._sample_rate

    @property
    def can_pause(self) -> bool:
        """Whether ``pause``/``resume`` are supported."""
        return True

    async def capture_frame(self, frame: AudioFrame) -> None:
        """Queue one frame of the current segment (starting one if needed)."""
        if not self._capturing:
            self._capturing = True
            self._segments += 1

    def flush(self) -> None:
        """End the current segment: play what is queued, then report it finished."""
        self._capturing = False

    @abstractmethod
    def clear_buffer(self) -> None:
        """Drop everything not yet played; the current segment finishes as interrupted."""

    def pause(self) -> None:
        """Hold playback where it is."""

    def resume(self) -> None:
        """Continue a paused playback."""

    def on_playback_started(self, *, created_at: float) -> None:
        """Implementations call this when a segment's first frame is heard."""
        self.emit("playback_started", PlaybackStarted(created_at=created_at))

    def on_playback_finished(
        self,
        *,
        playback_position: float,
        interrupted: bool,
        synchronized_transcript: str | None = None,
    ) -> None:
        """Implementations call this once per segment when it ends."""
        if self._finished >= self._segments:
            # A clear with nothing playing: nothing to report.
            return
        # A segment cleared before its flush is over too: the next frame starts a new one.
        self._capturing = False
        self._finished += 1
        event = PlaybackFinished(
            playback_position=playback_position,
            interrupted=interrupted,
            synchronized_transcript=synchronized_transcript,
        )
        self._last_finished = event
        self.emit("playback_finished", event)
        if self._finished_event is not None:
            self._finished_event.set()
            self._finished_event = None

    async def wait_for_playout(self) -> PlaybackFinished:
        """Wait until every segment captured so far has finished; returns the last one's event.

        A segment still open (not flushed) is waited for too, so flush before waiting.
        """
        while self._finished < self._segments:
            if self._finished_event is None:
                self._finished_event = trio.Event()
            await self._finished_event.wait()
        return self._last_finished or PlaybackFinished(playback_position=0.0, interrupted=False)


class TextOutput(ABC):
    """Receives the text of the agent's speech (transcription), in pieces."""

    label: str = "text_output"

    @abstractmethod
    async def capture_text(self, text: str) -> None:
        """Add a piece of the current segment's text."""

    @abstractmethod
    def flush(self) -> None:
        """End of the current segment's text."""


@attrs.frozen(kw_only=True)
class RoomIO:
    """The inputs and outputs a room gives a session."""

    audio_input: AudioInput | None = None
    audio_output: AudioOutput | None = None
    text_output: TextOutput | None = None


@attrs.frozen(kw_only=True)
class Participant:
    """A participant of a room (the user the agent talks to)."""

    identity: str
    name: str = ""
    kind: str = "standard"
    metadata: str = ""
    attributes: dict[str, str] = attrs.field(factory=dict, eq=False)


RoomEvent = Literal[
    "agent_state_changed",
    "user_input_transcribed",
    "function_tools_executed",
    "metrics_collected",
    "conversation_item_added",
]


class SpeakingAgent(Protocol):
    """What a room needs to know of the agent the user talks to."""

    @property
    def tts(self) -> object | None:
        """The agent's own text-to-speech, if any."""
        ...


class RoomSession(Protocol):
    """The session as a room sees it: the few typed calls a room (or the console) makes on the
    session it serves. An ``AgentSession`` is one; a room never needs more, or ``tvoice.voice``.
    """

    @property
    def agent_state(self) -> str:
        """``"initializing" | "listening" | "thinking" | "speaking"``."""
        ...

    @property
    def tts(self) -> object | None:
        """The session's text-to-speech (with an agent's own, the session speaks too)."""
        ...

    @property
    def current_agent(self) -> SpeakingAgent:
        """The agent the user talks to (raises RuntimeError before the session starts)."""
        ...

    def on(self, event: RoomEvent, callback: Callable[..., Any]) -> Any:
        """Call ``callback(event)`` on each ``event``."""
        ...

    def off(self, event: RoomEvent, callback: Callable[..., Any]) -> None:
        """Stop calling ``callback``."""
        ...

    def interrupt(self, *, force: bool = False) -> None:
        """Stop the agent's speech (text typed by the user cuts it)."""
        ...

    def generate_reply(self, *, user_input: str | None = None) -> Awaitable[object]:
        """Reply to ``user_input``; await the result to wait for its playout."""
        ...

    async def wait_for_idle(self) -> None:
        """Until nothing is queued, playing or pending."""
        ...

    def shutdown(self, reason: Literal["participant_disconnected"]) -> None:
        """End the session: the other side left."""
        ...


class SessionRoom(ABC):
    """Something a session can be started in (``session.start(agent, room=room)``): a LiveKit
    room, the console's simulated call.

    :meth:`run_session_io` runs in the session's nursery for the session's lifetime: it
    reports the session's I/O through ``task_status.started(RoomIO(...))``, then keeps its
    tasks going (playout, text input, ending the session when the other side leaves).

    A job's context joins the room with :meth:`connect` and finds the user with
    :meth:`wait_for_participant`; a room that is always joined (the console) keeps the defaults.
    """

    name: str = ""

    async def connect(self) -> None:
        """Join the room (once; later calls return at once)."""
        return None

    async def disconnect(self) -> None:
        """Leave the room (the job runner calls this when the job ends)."""
        return None

    async def wait_closed(self) -> None:
        """Return when the room is gone for the agent (the server closed or deleted it, the
        connection was lost for good): the job runner then ends the job. Never, by default."""
        await trio.sleep_forever()

    async def wait_for_participant(self, *, identity: str | None = None) -> Participant:
        """The participant the agent serves: ``identity``, or the first suitable one to join.

        A simulated room has one user, ``Participant(identity="user")``, unless it says otherwise.
        """
        user = Participant(identity="user")
        if identity is not None and identity != user.identity:
            raise RuntimeError(f"no participant {identity!r} in this room")
        return user

    @abstractmethod
    async def run_session_io(
        self,
        session: RoomSession,
        *,
        task_status: trio.TaskStatus[RoomIO] = trio.TASK_STATUS_IGNORED,
    ) -> None:
        """Provide the session's I/O until cancelled."""
