"""A caller for the end-to-end tests: a livekit SDK participant (asyncio) that speaks WAV audio
into a room in real time and records what the agent says back (audio levels, transcriptions).
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import time
from collections.abc import Callable
from typing import Any

import attrs
import numpy as np
from livekit import api, rtc

from tvoice.audio import AudioFrame, resample
from tvoice.testing import LiveKitServer

RATE = 48000
FRAME = RATE // 100  # 10 ms
LOUD = 300.0  # RMS of a 10 ms frame above which it is sound, not silence
# The microphone runs this far ahead of real time (the SDK's source paces it out): on a busy test
# machine the caller's loop can stall, and with nothing queued the track would carry a gap in the
# middle of a question (Whisper then hears other words; a stall past the VAD's 0.55 s of silence
# cuts the question in two).
LEAD = 1.0


def speech(frame: AudioFrame) -> np.ndarray:
    """Audio as 48 kHz mono int16 samples, for :meth:`Caller.say`."""
    return resample(frame, RATE).data[:, 0].copy()


def rms(samples: np.ndarray) -> float:
    return float(np.sqrt(np.mean(samples.astype(np.float64) ** 2))) if samples.size else 0.0


@attrs.define(eq=False)
class Caller:
    """A participant joined with :func:`connect` (listening only) or :func:`join` (with a
    microphone: :meth:`say` queues speech, silence fills the gaps)."""

    room: rtc.Room
    heard: list[tuple[float, float]] = attrs.field(factory=list)  # (monotonic, RMS) per frame
    texts: list[tuple[str, dict[str, str], str]] = attrs.field(factory=list)
    _pending: collections.deque[np.ndarray] = attrs.field(factory=collections.deque)
    _ahead: float = 0.0  # seconds of audio captured beyond real time
    _tasks: set[asyncio.Task[Any]] = attrs.field(factory=set)

    def spawn(self, coro: Any) -> asyncio.Task[Any]:
        """Run ``coro`` until it ends or the caller leaves."""
        task = asyncio.ensure_future(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
        return task

    def say(self, samples: np.ndarray) -> float:
        """Queue ``samples`` after what is queued; returns the monotonic time they start."""
        queued = sum(len(chunk) for chunk in self._pending) / RATE
        self._pending.extend(np.array_split(samples, max(1, len(samples) // FRAME)))
        return time.monotonic() + self._ahead + queued

    def agent_transcripts(self, agent_identity: str) -> list[tuple[dict[str, str], str]]:
        return [(a, text) for sender, a, text in self.texts if sender == agent_identity]

    def transcripts(self, track_sid: str) -> list[tuple[dict[str, str], str]]:
        """The transcripts of a track (the agent publishes the user's too, on its behalf)."""
        return [
            (attributes, text)
            for _, attributes, text in self.texts
            if attributes.get("lk.transcribed_track_id") == track_sid
        ]

    def loud_times(self, level: float = LOUD) -> list[float]:
        return [t for t, rms in self.heard if rms > level]

    def loud_seconds(self, since: float = 0.0) -> float:
        return sum(0.01 for t, level in self.heard if t >= since and level > LOUD)

    def went_quiet_at(self, since: float, *, quiet: float = 0.5) -> float | None:
        """The first moment after ``since`` that began ``quiet`` seconds without sound."""
        start = None
        for t, level in self.heard:
            if t < since:
                continue
            if level > LOUD:
                start = None
            elif start is None:
                start = t
            elif t - start >= quiet:
                return start
        return None

    async def _speak(self, source: rtc.AudioSource) -> None:
        silence = np.zeros(FRAME, np.int16)
        next_at = time.monotonic()
        while True:
            chunk = self._pending.popleft() if self._pending else silence
            frame = rtc.AudioFrame(chunk.astype(np.int16).tobytes(), RATE, 1, len(chunk))
            await source.capture_frame(frame)
            next_at += len(chunk) / RATE
            self._ahead = max(0.0, next_at - time.monotonic())
            await asyncio.sleep(max(0.0, self._ahead - LEAD))

    async def _listen(self, track: rtc.RemoteAudioTrack) -> None:
        stream = rtc.AudioStream(track, sample_rate=RATE, num_channels=1)
        try:
            async for event in stream:
                samples = np.frombuffer(event.frame.data, dtype=np.int16)
                self.heard.append((time.monotonic(), rms(samples)))
        finally:
            await stream.aclose()

    async def _read_text(self, reader: rtc.TextStreamReader, sender: str) -> None:
        try:
            text = await reader.read_all()
        except rtc.StreamError:
            return  # cut short by a lost connection: the caller never got it
        self.texts.append((sender, dict(reader.info.attributes or {}), text))


def token(server: LiveKitServer, room: str, identity: str) -> str:
    return (
        api.AccessToken(server.api_key, server.api_secret)
        .with_identity(identity)
        .with_grants(api.VideoGrants(room_join=True, room=room))
        .to_jwt()
    )


async def connect(server: LiveKitServer, room: str, identity: str) -> Caller:
    """Join ``room`` as ``identity``, listening to every remote audio track and to the
    "lk.transcription" text streams; :func:`leave` leaves."""
    caller = Caller(rtc.Room())

    def on_track(track: rtc.Track, *_: object) -> None:
        if isinstance(track, rtc.RemoteAudioTrack):
            caller.spawn(caller._listen(track))

    caller.room.on("track_subscribed", on_track)
    caller.room.register_text_stream_handler(
        "lk.transcription", lambda reader, sender: caller.spawn(caller._read_text(reader, sender))
    )
    async with asyncio.timeout(15):
        await caller.room.connect(server.url, token(server, room, identity))
    return caller


async def leave(caller: Caller) -> None:
    for task in list(caller._tasks):
        task.cancel()
    await asyncio.gather(*caller._tasks, return_exceptions=True)
    async with asyncio.timeout(10):
        await caller.room.disconnect()


@contextlib.asynccontextmanager
async def join(
    server: LiveKitServer, room: str, identity: str = "caller", *, pre_connect: bool = False
) -> Any:
    """:func:`connect`, then publish a microphone track (silence until :meth:`Caller.say`;
    ``pre_connect``: flagged as having a pre-connect buffer, which the agent then waits for);
    leave on exit."""
    caller = await connect(server, room, identity)
    source = rtc.AudioSource(RATE, 1, queue_size_ms=int(LEAD * 1000) + 100)
    try:
        track = rtc.LocalAudioTrack.create_audio_track("microphone", source)
        options = rtc.TrackPublishOptions(
            source=rtc.TrackSource.SOURCE_MICROPHONE, preconnect_buffer=pre_connect
        )
        async with asyncio.timeout(15):
            await caller.room.local_participant.publish_track(track, options)
        caller.spawn(caller._speak(source))
        yield caller
    finally:
        await leave(caller)
        await source.aclose()


async def dispatch_room(server: LiveKitServer, room: str, agent_name: str) -> None:
    """Create ``room`` with an explicit dispatch of ``agent_name``."""
    async with (
        asyncio.timeout(10),
        api.LiveKitAPI(server.http_url, server.api_key, server.api_secret) as lkapi,
    ):
        await lkapi.room.create_room(
            api.CreateRoomRequest(name=room, agents=[api.RoomAgentDispatch(agent_name=agent_name)])
        )


async def wait_for(predicate: Any, *, within: float, what: str | Callable[[], str]) -> None:
    """Poll ``predicate`` (the far side sets no event we can wait on); fail after ``within``;
    ``what`` (or what it returns) explains the failure."""
    deadline = time.monotonic() + within
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError(f"not within {within} s: {what() if callable(what) else what}")
        await asyncio.sleep(0.05)
