"""A LiveKit room's audio for a session: the linked participant's microphone in, the agent's
track out.

Input: an asyncio task per subscribed track reads ``rtc.AudioStream`` (resampled by the SDK to
the session's rate) and puts frames into a :class:`CrossingChannel`, which never blocks the
asyncio side and drops the oldest frames when trio falls behind. :class:`RoomAudioInput`
reads that channel.

Output: :class:`RoomAudioOutput` keeps playout time on trio's clock (it is a
:class:`tvoice.io.ClockedAudioOutput`) and hands frames to the ``rtc.AudioSource`` only
``lead`` seconds ahead of that clock. ``clear_buffer()`` and ``pause()`` therefore stop the
published audio within ``lead`` (the source's own queue is cleared too), and a paused segment
resumes exactly where the clock stopped.
"""

from __future__ import annotations

import asyncio
import collections
import logging
from collections.abc import Callable

import livekit.rtc as rtc
import numpy as np
import trio

from ..audio import AudioFrame, AudioResampler
from ..io import AudioInput, ClockedAudioOutput
from ..tts import SpokenSegment
from ._bridge import AsyncioBridge, CrossingChannel

__all__ = ["RoomAudioInput", "RoomAudioOutput", "read_track"]

logger = logging.getLogger("tvoice.livekit")

CHUNK_DURATION = 0.02  # seconds per frame handed to the source
SOURCE_QUEUE_MS = 400  # the source's own buffer; the output keeps only `lead` in it


class RoomAudioInput(AudioInput):
    """The linked participant's microphone, at the session's rate: frames from a crossing
    channel, after any pre-connect audio given to :meth:`prepend`."""

    label = "livekit_audio_input"

    def __init__(self, channel: CrossingChannel[AudioFrame]) -> None:
        self._channel = channel
        self._prefix: collections.deque[AudioFrame] = collections.deque()
        self._waiting: trio.CancelScope | None = None
        self.frames_received = 0

    def prepend(self, frames: list[AudioFrame]) -> None:
        """Play ``frames`` (pre-connect audio) before anything else still waiting."""
        self._prefix.extendleft(reversed(frames))
        if frames and self._waiting is not None:
            # The reader waits for live audio: these come first.
            self._waiting.cancel()

    async def __anext__(self) -> AudioFrame:
        while True:
            if self._prefix:
                await trio.lowlevel.checkpoint()
                return self._prefix.popleft()
            with trio.CancelScope() as self._waiting:
                try:
                    frame = await self._channel.receiver.receive()
                except (trio.EndOfChannel, trio.ClosedResourceError):
                    raise StopAsyncIteration from None
                finally:
                    self._waiting = None
                self.frames_received += 1
                return frame


def to_tvoice_frame(frame: rtc.AudioFrame) -> AudioFrame:
    """An ``rtc.AudioFrame`` as a tvoice frame (no copy of the samples)."""
    data = np.frombuffer(frame.data, dtype=np.int16).reshape(-1, frame.num_channels)
    return AudioFrame(data, frame.sample_rate, frame.num_channels)


async def read_track(
    stream: rtc.AudioStream, channel: CrossingChannel[AudioFrame], label: str
) -> None:
    """asyncio side: put every frame of ``stream`` into ``channel``; close the stream at the end."""
    try:
        async for event in stream:
            channel.put(to_tvoice_frame(event.frame))
    finally:
        await stream.aclose()
        logger.debug("%s: audio stream closed", label)


class _SourceFeeder:
    """asyncio side of the output: captures the frames trio hands over, in order, into the
    source. Trio calls :meth:`push` and :meth:`clear` directly (same thread, no await)."""

    def __init__(self, source: rtc.AudioSource) -> None:
        self.source = source
        self._frames: collections.deque[rtc.AudioFrame] = collections.deque()
        self._wake = asyncio.Event()

    def push(self, frame: AudioFrame) -> None:
        data = frame.data
        self._frames.append(
            rtc.AudioFrame(data.tobytes(), frame.sample_rate, frame.num_channels, len(data))
        )
        self._wake.set()

    def clear(self) -> None:
        self._frames.clear()
        self.source.clear_queue()

    async def run(self) -> None:
        while True:
            while not self._frames:
                self._wake.clear()
                await self._wake.wait()
            await self.source.capture_frame(self._frames.popleft())


class RoomAudioOutput(ClockedAudioOutput):
    """The agent's audio, published as a microphone track of the room (see the module's
    docstring). Run it with ``await nursery.start(output.run)``; ``track_sid`` is set once
    the track is published (``published`` is set then)."""

    def __init__(
        self,
        bridge: AsyncioBridge,
        room: rtc.Room,
        *,
        sample_rate: int = 24000,
        num_channels: int = 1,
        lead: float = 0.1,
        track_name: str = "agent audio",
    ) -> None:
        super().__init__(sample_rate=None, label="livekit_audio_output")
        if lead < CHUNK_DURATION:
            raise ValueError(f"lead must be at least {CHUNK_DURATION} s, got {lead}")
        self._bridge = bridge
        self.room = room
        """The room the track is published in (a rejoined room: see :meth:`republish`)."""
        self.source_rate = sample_rate
        self.source_channels = num_channels
        self.lead = lead
        self.track_name = track_name
        self.track_sid = ""
        self.published = trio.Event()
        self._feeder: _SourceFeeder | None = None
        self._source: rtc.AudioSource | None = None
        self._pending: collections.deque[AudioFrame] = collections.deque()
        self._sent: collections.deque[tuple[float, AudioFrame]] = collections.deque()
        self._sent_until = 0.0
        self._resampler: AudioResampler | None = None
        self._wake = trio.Event()
        self.frames_sent = 0
        # The current segment: seconds captured so far, whether it is flushed (complete), and
        # its frames' word timings (the transcription follows them).
        self.segment_captured = 0.0
        self.segment_complete = False
        self.segment_spoken = SpokenSegment()
        # Called after every clear_buffer() (the transcription drops text never heard).
        self.on_clear: Callable[[], None] | None = None

    # -- lifetime -----------------------------------------------------------------------------

    async def run(self, *, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED) -> None:
        """Create the source, publish the track (in the background), keep the clock and the
        forwarding going until cancelled; then close the source."""
        source = rtc.AudioSource(
            self.source_rate,
            self.source_channels,
            queue_size_ms=SOURCE_QUEUE_MS,
            loop=self._bridge.loop,
        )
        self._feeder = _SourceFeeder(source)
        self._source = source
        try:
            async with trio.open_nursery() as nursery:
                await nursery.start(super().run)
                nursery.start_soon(self._bridge.call, self._feeder.run)
                nursery.start_soon(self._publish, source)
                nursery.start_soon(self._forward)
                task_status.started()
        finally:
            self._feeder, self._source = None, None
            await source.aclose()

    async def _publish(self, source: rtc.AudioSource) -> None:
        track = rtc.LocalAudioTrack.create_audio_track(self.track_name, source)
        options = rtc.TrackPublishOptions(source=rtc.TrackSource.SOURCE_MICROPHONE)
        publication = await self._bridge.call(
            self.room.local_participant.publish_track, track, options
        )
        self.track_sid = publication.sid
        self.published.set()

    async def republish(self) -> None:
        """Publish the agent's track again, from the same source, in :attr:`room` (set to the
        room joined again after a lost connection): the playout goes on where it was."""
        if self._source is None:
            return  # not running
        self.track_sid = ""
        self.published = trio.Event()
        await self._publish(self._source)

    # -- forwarding to the source (the hot path) ----------------------------------------------

    async def _forward(self) -> None:
        while True:
            self._wake = trio.Event()
            delay = self._send_due()
            if delay is None:
                await self._wake.wait()
            else:
                with trio.move_on_after(delay):
                    await self._wake.wait()

    def _send_due(self) -> float | None:
        """Hand the source what the clock will play within ``lead``; seconds until the next
        frame is due (None: nothing to send until something changes)."""
        feeder = self._feeder
        if not self._pending or feeder is None:
            return None
        position = self.position()
        if not self.playing:
            return None
        horizon = position + self.lead
        while self._pending and self._sent_until < horizon:
            frame = self._pending.popleft()
            self._sent.append((self._sent_until, frame))
            self._sent_until += frame.duration
            feeder.push(frame)
            self.frames_sent += 1
        while self._sent and self._sent[0][0] + self._sent[0][1].duration <= position:
            self._sent.popleft()
        if not self._pending:
            return None
        return max(self._sent_until - horizon, 0.0) + 0.001

    def _queue(self, frame: AudioFrame) -> None:
        if frame.num_channels != self.source_channels:
            mono = frame.data.mean(axis=1, dtype=np.float32).astype(np.int16)
            frame = AudioFrame(
                np.repeat(mono[:, None], self.source_channels, axis=1),
                frame.sample_rate,
                self.source_channels,
            )
        size = round(CHUNK_DURATION * frame.sample_rate)
        data = frame.data
        for start in range(0, len(data), size):
            self._pending.append(
                AudioFrame(data[start : start + size], frame.sample_rate, frame.num_channels)
            )

    def _convert(self, frame: AudioFrame) -> list[AudioFrame]:
        if frame.sample_rate == self.source_rate:
            return [frame]
        if self._resampler is None or self._resampler.input_rate != frame.sample_rate:
            self._resampler = AudioResampler(
                frame.sample_rate, self.source_rate, num_channels=frame.num_channels
            )
        return self._resampler.push(frame)

    def _drop_unplayed(self) -> None:
        self._pending.clear()
        self._sent.clear()
        self._sent_until = 0.0
        self._resampler = None
        if self._feeder is not None:
            self._feeder.clear()

    # -- AudioOutput --------------------------------------------------------------------------

    async def capture_frame(self, frame: AudioFrame) -> None:
        await super().capture_frame(frame)
        self.segment_captured += frame.duration
        self.segment_spoken.push(frame)
        for converted in self._convert(frame):
            self._queue(converted)
        self._wake.set()

    def flush(self) -> None:
        if self._resampler is not None:
            for tail in self._resampler.flush():
                self._queue(tail)
            self._resampler = None
        self.segment_complete = True
        super().flush()
        self._wake.set()

    def clear_buffer(self) -> None:
        super().clear_buffer()
        self._drop_unplayed()
        self._wake.set()
        if self.on_clear is not None:
            self.on_clear()

    def pause(self) -> None:
        super().pause()
        # What the source holds beyond the clock's position goes back in front of the queue.
        position = self.position()
        back: list[AudioFrame] = []
        for start, frame in self._sent:
            end = start + frame.duration
            if end <= position:
                continue
            if start < position:
                skip = round((position - start) * frame.sample_rate)
                frame = AudioFrame(frame.data[skip:], frame.sample_rate, frame.num_channels)
            back.append(frame)
        self._pending.extendleft(reversed(back))
        self._sent.clear()
        self._sent_until = position
        if self._feeder is not None:
            self._feeder.clear()
        self._wake.set()

    def resume(self) -> None:
        super().resume()
        self._wake.set()

    def on_playback_finished(
        self,
        *,
        playback_position: float,
        interrupted: bool,
        synchronized_transcript: str | None = None,
    ) -> None:
        if not interrupted and self._feeder is not None:
            # The clock is done; whatever rounding left over still goes out.
            while self._pending:
                self._feeder.push(self._pending.popleft())
        self._pending.clear()
        self._sent.clear()
        self._sent_until = 0.0
        super().on_playback_finished(
            playback_position=playback_position,
            interrupted=interrupted,
            synchronized_transcript=synchronized_transcript,
        )
        self.segment_captured = 0.0
        self.segment_complete = False
        self.segment_spoken = SpokenSegment()
