"""The room's transcription releases the agent's words as they are heard: by the TTS's word
timings when it gives them, else by an estimate (``released_text``, the rule
``TranscriptionSync`` applies to the playing segment); the final text of a segment played to
its end is all of its words."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest
import trio

from tvoice.audio import AudioFrame, TimedText
from tvoice.livekit._room_audio import RoomAudioOutput
from tvoice.livekit._room_text import (
    ATTRIBUTE_FINAL,
    SPEAKING_RATE,
    TranscriptionSync,
    released_text,
)

TEXT = "Hello there, how are you doing today?"
TIMINGS = [
    TimedText("Hello", 0.0, 0.5),
    TimedText("there,", 0.6, 1.4),  # a slow word: the estimates cannot know
    TimedText("how", 1.5, 1.7),
]


def test_with_timings_a_word_is_released_once_its_end_has_played():
    assert released_text(TEXT, played=0.49, pushed=None, timings=TIMINGS) == ""
    assert released_text(TEXT, played=0.5, pushed=None, timings=TIMINGS) == "Hello"
    assert released_text(TEXT, played=1.39, pushed=None, timings=TIMINGS) == "Hello"
    assert released_text(TEXT, played=1.4, pushed=None, timings=TIMINGS) == "Hello there"
    # Words not timed yet wait for their timings, whatever the speaking rate would say.
    assert released_text(TEXT, played=2.5, pushed=None, timings=TIMINGS) == "Hello there, how"
    # The segment's audio is complete and all of it played: all of the text.
    assert released_text(TEXT, played=3.0, pushed=3.0, timings=TIMINGS) == TEXT


def test_without_timings_the_estimates_stay():
    # While the audio is arriving: the speaking rate (15 characters a second).
    assert SPEAKING_RATE == 15.0
    assert released_text(TEXT, played=1.0, pushed=None) == "Hello there"
    # Once its length is known: the share of its words.
    assert released_text(TEXT, played=1.0, pushed=2.0) == "Hello there, how"


# -- TranscriptionSync on the output's clock, with a room that records the streams ----------


class _Stream:
    def __init__(self, attributes: dict[str, str]) -> None:
        self.attributes = attributes
        self.text = ""
        self.closing: dict[str, str] | None = None  # the attributes it was closed with

    async def write(self, text: str) -> None:
        self.text += text

    async def aclose(self, *, attributes: dict[str, str]) -> None:
        self.closing = attributes


class _Participant:
    def __init__(self) -> None:
        self.streams: list[_Stream] = []

    async def stream_text(self, *, topic: str, attributes: dict[str, str]) -> _Stream:
        self.streams.append(_Stream(attributes))
        return self.streams[-1]


class _Room:
    def __init__(self) -> None:
        self.local_participant = _Participant()


class _Bridge:
    """No asyncio here: the room's calls are trio code, awaited as they are."""

    async def call(self, fn: Any, *args: Any) -> Any:
        return await fn(*args)


@pytest.mark.parametrize("order", ["text first", "audio first", "flush after the audio"])
async def test_a_reply_played_to_its_end_is_final_with_all_of_its_words(
    autojump_clock: trio.abc.Clock, order: str
) -> None:
    # "Reply 1." comes in two pieces, as FakeLLM streams it; "Reply" is released once half of
    # its 0.6 s of audio has played. The output's clock task is not run, so the
    # transcription's tick is the first to read the clock once the audio has run out, and the
    # playback ends inside that read: the order that trio picks about half the time when both
    # wake at once (a busy machine makes that likely). The final text then stopped at "Reply".
    bridge, room = _Bridge(), _Room()
    output = RoomAudioOutput(bridge, room)  # type: ignore[arg-type]
    output.published.set()
    sync = TranscriptionSync(bridge, room, output)  # type: ignore[arg-type]
    audio = AudioFrame(np.zeros(round(0.6 * 24000), np.int16), 24000)

    async def play() -> None:
        await output.capture_frame(audio)
        output.flush()

    async with trio.open_nursery() as nursery:
        await nursery.start(sync.run)
        if order == "text first":  # as FakeTTS speaks: once the text is complete
            await sync.capture_text("Reply ")
            await sync.capture_text("1.")
            sync.flush()
            await play()
        elif order == "audio first":  # the text that follows belongs to it
            await play()
            await trio.sleep(0.1)
            await sync.capture_text("Reply ")
            await trio.sleep(0.1)
            await sync.capture_text("1.")
            sync.flush()
        else:
            await sync.capture_text("Reply ")
            await play()
            await sync.capture_text("1.")
            await trio.sleep(0.8)  # the audio has ended; the text's end has not come yet
            sync.flush()
        await trio.sleep(2.0)
        nursery.cancel_scope.cancel()

    [stream] = room.local_participant.streams
    assert stream.attributes[ATTRIBUTE_FINAL] == "false"
    assert stream.closing is not None
    assert stream.closing[ATTRIBUTE_FINAL] == "true"
    assert stream.text == "Reply 1."
    assert [text for _, text in sync.published] == ["Reply 1."]
