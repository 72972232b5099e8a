"""Transcriptions on LiveKit text streams, the way LiveKit Agents publishes them.

Topic ``lk.transcription``; each segment is one stream whose attributes carry
``lk.segment_id``, ``lk.transcribed_track_id`` (the audio track the words belong to) and
``lk.transcription_final`` ("false" in the header; the closing attributes say "true").

- The agent's words (:class:`TranscriptionSync`) go out as a delta stream (one writer per
  segment, pieces appended) released in step with the audio the listener actually heard: each
  word once its audio has played, by the TTS's word timings when it gives them; otherwise an
  estimated speaking rate while the segment's audio is still arriving, then the heard share of
  its words. All of it when the audio plays to the end, only what was heard when it is cut.
- The user's words (:class:`UserTranscripts`) go out as whole streams, one per interim or final
  transcript, sent on behalf of the user (``sender_identity``), as LiveKit Agents does.
"""

from __future__ import annotations

import functools
import logging
import math
from collections.abc import Callable, Sequence
from typing import Any

import attrs
import livekit.rtc as rtc
import trio

from .._utils import short_id
from ..audio import TimedText
from ..io import PlaybackFinished, TextOutput
from ..tokenize import split_words
from ..tts import heard_text
from ._bridge import AsyncioBridge
from ._room_audio import RoomAudioOutput

__all__ = [
    "ATTRIBUTE_FINAL",
    "ATTRIBUTE_SEGMENT_ID",
    "ATTRIBUTE_TRACK_ID",
    "TOPIC_TRANSCRIPTION",
    "TranscriptionSync",
    "UserTranscripts",
    "released_text",
]

logger = logging.getLogger("tvoice.livekit")

TOPIC_TRANSCRIPTION = "lk.transcription"
ATTRIBUTE_TRACK_ID = "lk.transcribed_track_id"
ATTRIBUTE_SEGMENT_ID = "lk.segment_id"
ATTRIBUTE_FINAL = "lk.transcription_final"

SPEAKING_RATE = 15.0  # characters per second, while a segment's length in audio is unknown
TICK = 0.05  # how often a playing segment's text is brought up to date
UNBOUND_TIMEOUT = 5.0  # text whose audio never started is released whole after this
SEND_TIMEOUT = 5.0  # bound on each text-stream operation


def released_text(
    text: str,
    *,
    played: float,
    pushed: float | None,
    timings: Sequence[TimedText] | None = None,
) -> str:
    """The words of ``text`` a listener has heard after ``played`` seconds: with ``timings``
    (the TTS's, in seconds from the segment's start) the words whose end was played; without,
    the same share of its words as of ``pushed`` seconds of audio, or (``pushed`` unknown) what
    ``SPEAKING_RATE`` covers; cut at a word boundary."""
    if timings is not None:
        total = pushed if pushed is not None else math.inf
        return heard_text(text, played=played, pushed=total, timings=timings)
    if played <= 0 or not text:
        return ""
    if pushed is not None and played >= pushed - 1e-9:
        return text
    words = split_words(text)
    if pushed is not None:
        n = math.floor(len(words) * played / pushed)
    else:
        chars = played * SPEAKING_RATE
        n = sum(1 for w in words if w.end <= chars)
    return text[: words[n - 1].end] if n > 0 else ""


@attrs.define(eq=False)
class _Segment:
    id: str = attrs.field(factory=lambda: short_id("SG"))
    text: str = ""
    text_done: bool = False
    bound: bool = False  # its audio started playing
    final: str | None = None  # decided once the segment is over
    changed: trio.Event = attrs.field(factory=trio.Event)
    created_at: float = attrs.field(factory=trio.current_time)

    def poke(self) -> None:
        self.changed.set()
        self.changed = trio.Event()


async def _send_stream(
    participant: rtc.LocalParticipant, text: str, attributes: dict[str, str], sender: str
) -> None:
    """asyncio side: one whole text stream (header, text, close)."""
    writer = await participant.stream_text(
        topic=TOPIC_TRANSCRIPTION, attributes=attributes, sender_identity=sender
    )
    await writer.write(text)
    await writer.aclose(attributes={**attributes, ATTRIBUTE_FINAL: attributes[ATTRIBUTE_FINAL]})


class TranscriptionSync(TextOutput):
    """The agent's text, published in step with :class:`RoomAudioOutput`'s playout (see the
    module's docstring). Run it with ``await nursery.start(sync.run)``.

    ``audio_expected()`` says whether the session speaks its text (it has a TTS); when it does
    not, each segment is released whole as soon as its text is complete.
    """

    label = "livekit_transcription"

    def __init__(
        self,
        bridge: AsyncioBridge,
        room: rtc.Room,
        output: RoomAudioOutput | None,
        *,
        audio_expected: Callable[[], bool] = lambda: True,
    ) -> None:
        self._bridge = bridge
        self.room = room
        """The room the text goes to (set anew when the room is joined again)."""
        self._output = output
        self._audio_expected = audio_expected
        self._nursery: trio.Nursery | None = None
        self._text_segment: _Segment | None = None
        self._unbound: list[_Segment] = []
        self._playing: _Segment | None = None
        self.published: list[tuple[str, str]] = []  # (segment id, final text), for tests and logs

    async def run(self, *, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED) -> None:
        """Own the segments' publishing tasks until cancelled."""
        output = self._output
        if output is not None:
            output.on("playback_started", self._on_playback_started)
            output.on("playback_finished", self._on_playback_finished)
            output.on_clear = self._on_clear
        try:
            async with trio.open_nursery() as nursery:
                self._nursery = nursery
                task_status.started()
                await trio.sleep_forever()
        finally:
            self._nursery = None
            if output is not None:
                output.off("playback_started", self._on_playback_started)
                output.off("playback_finished", self._on_playback_finished)
                output.on_clear = None

    # -- TextOutput ---------------------------------------------------------------------------

    async def capture_text(self, text: str) -> None:
        segment = self._text_segment
        if segment is None:
            segment = self._text_segment = self._new_segment()
            self._unbound.append(segment)
        segment.text += text
        segment.poke()

    def flush(self) -> None:
        segment, self._text_segment = self._text_segment, None
        if segment is None:
            return
        segment.text_done = True
        if not segment.bound and not (self._output is not None and self._audio_expected()):
            self._finalize(segment, segment.text)
        elif segment.bound and segment is not self._playing and segment.final is None:
            # Its audio already ended (played to the end): all of the text was heard.
            self._finalize(segment, segment.text)
        segment.poke()

    # -- audio events -------------------------------------------------------------------------

    def _on_playback_started(self, _: object) -> None:
        if self._unbound:
            segment = self._unbound.pop(0)
        else:
            # Audio before any text: the text that follows belongs to it.
            segment = self._new_segment()
            if self._text_segment is None:
                self._text_segment = segment
        segment.bound = True
        self._playing = segment
        segment.poke()

    def _on_playback_finished(self, event: PlaybackFinished) -> None:
        segment, self._playing = self._playing, None
        if segment is None:
            return
        if event.interrupted:
            pushed = self._output.segment_captured if self._output is not None else 0.0
            timings = self._output.segment_spoken.timings if self._output is not None else None
            heard = released_text(
                segment.text,
                played=event.playback_position,
                pushed=max(pushed, 1e-9),
                timings=timings,
            )
            self._finalize(segment, heard)
        elif segment.text_done:
            self._finalize(segment, segment.text)
        segment.poke()

    def _on_clear(self) -> None:
        # An interruption before a segment's audio started: none of its words were heard.
        for segment in [s for s in self._unbound if s.text_done]:
            self._unbound.remove(segment)
            self._finalize(segment, "")
            segment.poke()

    # -- publishing ---------------------------------------------------------------------------

    def _new_segment(self) -> _Segment:
        segment = _Segment()
        if self._nursery is None:
            logger.warning("transcription output used before it runs: text not published")
        else:
            self._nursery.start_soon(self._publish, segment)
        return segment

    def _finalize(self, segment: _Segment, text: str) -> None:
        if segment.final is None:
            segment.final = text
            if segment in self._unbound:
                self._unbound.remove(segment)

    def _target(self, segment: _Segment) -> str:
        output = self._output
        # The clock first: reading it ends the playing segment then and there when its audio
        # has run out and this tick woke before the clock's own task; that playback_finished
        # decides the final text. Read after the checks below, the position would be the next
        # segment's (0: nothing released), and the segment's stream would close on the words
        # released before the end.
        played = output.position() if output is not None and segment is self._playing else 0.0
        if segment.final is not None:
            return segment.final
        if not segment.bound or output is None or segment is not self._playing:
            if (
                segment.text_done
                and not segment.bound
                and trio.current_time() - segment.created_at > UNBOUND_TIMEOUT
            ):
                logger.debug("segment %s: no audio came; text released whole", segment.id)
                self._finalize(segment, segment.text)
                return segment.text
            return ""
        pushed = output.segment_captured if output.segment_complete else None
        return released_text(
            segment.text,
            played=played,
            pushed=pushed,
            timings=output.segment_spoken.timings,
        )

    async def _wait_published(self) -> None:
        # The header names the agent's track: wait (bounded) for it to be published.
        if self._output is not None and not self._output.published.is_set():
            with trio.move_on_after(SEND_TIMEOUT):
                await self._output.published.wait()

    def _track_id(self) -> str:
        return self._output.track_sid if self._output is not None else ""

    async def _publish(self, segment: _Segment) -> None:
        participant = self.room.local_participant
        writer: rtc.TextStreamWriter | None = None
        sent = ""
        try:
            while True:
                target = self._target(segment)
                if len(target) > len(sent) and target.startswith(sent):
                    if writer is None:
                        await self._wait_published()
                        attributes = {ATTRIBUTE_FINAL: "false", ATTRIBUTE_SEGMENT_ID: segment.id}
                        if track_id := self._track_id():
                            attributes[ATTRIBUTE_TRACK_ID] = track_id
                        with trio.fail_after(SEND_TIMEOUT):
                            writer = await self._bridge.call(
                                functools.partial(
                                    participant.stream_text,
                                    topic=TOPIC_TRANSCRIPTION,
                                    attributes=attributes,
                                )
                            )
                    with trio.fail_after(SEND_TIMEOUT):
                        await self._bridge.call(writer.write, target[len(sent) :])
                    sent = target
                if segment.final is not None:
                    break
                with trio.move_on_after(TICK):
                    await segment.changed.wait()
        except (trio.TooSlowError, rtc.StreamError, RuntimeError) as e:
            logger.warning("segment %s: transcription not published: %s", segment.id, e)
        finally:
            if writer is not None:
                await self._close(writer, segment)
            self.published.append((segment.id, sent))

    async def _close(self, writer: rtc.TextStreamWriter, segment: _Segment) -> None:
        attributes = {ATTRIBUTE_FINAL: "true", ATTRIBUTE_SEGMENT_ID: segment.id}
        if track_id := self._track_id():
            attributes[ATTRIBUTE_TRACK_ID] = track_id
        with trio.move_on_after(SEND_TIMEOUT) as scope:
            scope.shield = True
            try:
                await self._bridge.call(functools.partial(writer.aclose, attributes=attributes))
            except (rtc.StreamError, RuntimeError) as e:
                logger.warning("segment %s: could not close its stream: %s", segment.id, e)


class UserTranscripts:
    """The user's transcripts (``user_input_transcribed``) on ``lk.transcription``, sent on
    behalf of ``identity()`` for the track ``track_id()``. Run it with
    ``await nursery.start(user.run)``; call :meth:`on_transcribed` from session events."""

    def __init__(
        self,
        bridge: AsyncioBridge,
        room: rtc.Room,
        *,
        identity: Callable[[], str | None],
        track_id: Callable[[], str | None],
        capacity: int = 32,
    ) -> None:
        self._bridge = bridge
        self.room = room
        """The room the transcripts go to (set anew when the room is joined again)."""
        self._identity = identity
        self._track_id = track_id
        self._send, self._receive = trio.open_memory_channel[tuple[str, dict[str, str], str]](
            capacity
        )
        self._segment_id = short_id("SG")

    def on_transcribed(self, event: Any) -> None:
        """A ``user_input_transcribed`` event (sync callback, trio side)."""
        identity = self._identity()
        text = getattr(event, "transcript", "")
        is_final = bool(getattr(event, "is_final", False))
        if identity is None or not isinstance(text, str):
            return
        attributes = {
            ATTRIBUTE_FINAL: "true" if is_final else "false",
            ATTRIBUTE_SEGMENT_ID: self._segment_id,
        }
        if track_id := self._track_id():
            attributes[ATTRIBUTE_TRACK_ID] = track_id
        if is_final:
            self._segment_id = short_id("SG")
        try:
            self._send.send_nowait((text, attributes, identity))
        except trio.WouldBlock:
            logger.warning("user transcripts are not going out fast enough: one dropped")

    async def run(self, *, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED) -> None:
        """Send the transcripts, in order, until cancelled."""
        task_status.started()
        async for text, attributes, identity in self._receive:
            participant = self.room.local_participant
            try:
                with trio.fail_after(SEND_TIMEOUT):
                    await self._bridge.call(_send_stream, participant, text, attributes, identity)
            except (trio.TooSlowError, rtc.StreamError, RuntimeError) as e:
                logger.warning("user transcript not published: %s", e)
