"""Word timings from a TTS: carried on its frames (``AudioFrame.timed_text``), through the
adapters, and followed to say what a listener heard of a spoken text."""

import numpy as np
import pytest
import trio

from tvoice import APIStatusError
from tvoice._utils import DEFAULT_API_CONNECT_OPTIONS
from tvoice.audio import AudioFrame, TimedText, resample
from tvoice.tts import (
    TTS,
    ChunkedStream,
    FallbackAdapter,
    SpokenSegment,
    StreamAdapter,
    SynthesizeStream,
    TTSCapabilities,
    heard_text,
)

TEXT = "Well, the weather in Paris is sunny today."


def silence(seconds: float, rate: int = 24000) -> AudioFrame:
    return AudioFrame(np.zeros(round(seconds * rate), np.int16), rate)


# -- what was heard -------------------------------------------------------------------------


def timed(*words: tuple[str, float, float]) -> list[TimedText]:
    return [TimedText(w, s, e) for w, s, e in words]


def test_the_words_whose_end_was_played_were_heard():
    timings = timed(("Well,", 0.0, 0.3), ("the", 0.3, 0.45), ("weather", 0.5, 1.2))
    assert heard_text(TEXT, played=0.29, pushed=3.0, timings=timings) == ""
    assert heard_text(TEXT, played=0.3, pushed=3.0, timings=timings) == "Well"
    assert heard_text(TEXT, played=1.19, pushed=3.0, timings=timings) == "Well, the"
    assert heard_text(TEXT, played=1.2, pushed=3.0, timings=timings) == "Well, the weather"
    # Audio still arriving (its length not known yet) changes nothing.
    assert heard_text(TEXT, played=1.2, pushed=float("inf"), timings=timings) == (
        "Well, the weather"
    )
    # All of the audio played: all of the text, whatever the timings say.
    assert heard_text(TEXT, played=3.0, pushed=3.0, timings=timings) == TEXT


def test_timings_are_matched_to_the_text_letter_by_letter():
    # A provider's own splitting, punctuation and spacing do not move the cut.
    pieces = timed(("Wel", 0.0, 0.1), ("l", 0.1, 0.2), ("the", 0.3, 0.4), ("wea-", 0.5, 0.9))
    assert heard_text(TEXT, played=0.4, pushed=3.0, timings=pieces) == "Well, the"
    assert heard_text(TEXT, played=0.9, pushed=3.0, timings=pieces) == "Well, the"
    bare = timed(("Well", 0.0, 0.3), ("the", 0.3, 0.45), ("weather", 0.5, 1.2))
    assert heard_text(TEXT, played=1.2, pushed=3.0, timings=bare) == "Well, the weather"


def test_without_timings_the_share_of_the_audio_is_the_share_of_the_words():
    # 8 words, half of the audio: 4 words.
    assert heard_text(TEXT, played=1.5, pushed=3.0) == "Well, the weather in"
    assert heard_text(TEXT, played=1.5, pushed=float("inf")) == ""
    assert heard_text(TEXT, played=0.0, pushed=3.0) == ""


async def test_a_segment_places_each_frames_timings_at_the_frames_start():
    spoken = SpokenSegment()
    assert spoken.timings is None
    spoken.push(silence(0.5))
    first = AudioFrame(np.zeros(2400, np.int16), 24000, timed_text=[TimedText("Well,", 0.0, 0.08)])
    spoken.push(first)
    # Told late: a word of the frame before, carried by the next one.
    late = AudioFrame(np.zeros(2400, np.int16), 24000, timed_text=[TimedText("the", -0.05, 0.05)])
    spoken.push(late)
    assert spoken.pushed == pytest.approx(0.7)
    assert [(t.text, t.start, t.end) for t in spoken.timings] == [
        ("Well,", 0.5, pytest.approx(0.58)),
        ("the", pytest.approx(0.55), pytest.approx(0.65)),
    ]
    assert spoken.heard(TEXT, played=0.6) == "Well"
    assert spoken.heard(TEXT, played=0.65) == "Well, the"
    assert spoken.heard(TEXT, played=5.0) == TEXT  # all of its audio played


async def test_what_was_pushed_at_the_instant_of_a_cut_does_not_count(autojump_clock):
    spoken = SpokenSegment()
    spoken.push(AudioFrame(np.zeros(2400, np.int16), 24000, timed_text=timed(("Well,", 0, 0.05))))
    await trio.sleep(1.0)
    late = AudioFrame(np.zeros(2400, np.int16), 24000, timed_text=timed(("the", -0.05, -0.01)))
    spoken.push(late)
    before = spoken.before_now()
    assert before.pushed == pytest.approx(0.1)
    assert before.heard(TEXT, played=0.1) == TEXT  # all it had was played
    assert spoken.heard(TEXT, played=0.1) == "Well, the"
    await trio.sleep(0.1)
    assert spoken.before_now().heard(TEXT, played=0.1) == "Well, the"


def test_a_timed_text_may_not_end_before_it_starts():
    with pytest.raises(ValueError, match="end before it starts"):
        TimedText("x", 1.0, 0.5)
    frame = AudioFrame(np.zeros(10, np.int16), 16000, timed_text=[TimedText("x", 0.0, 0.0)])
    assert frame.timed_text == (TimedText("x", 0.0, 0.0),)
    assert frame == AudioFrame(np.zeros(10, np.int16), 16000)  # equality is about audio


# -- through the adapters -------------------------------------------------------------------

WORD = 0.1  # each word is one frame of 0.1 s; it is said from 0.01 to 0.09 of it


class TimedTTS(TTS):
    """A streaming TTS that tells its timings: each word of a segment is a 0.1 s frame with
    the word as ``delta_text`` and its times. Fails before any audio when ``broken``."""

    def __init__(self, *, sample_rate: int = 24000, broken: bool = False) -> None:
        super().__init__(
            sample_rate=sample_rate, num_channels=1, capabilities=TTSCapabilities(streaming=True)
        )
        self.broken = broken

    def synthesize(self, text, *, conn_options=DEFAULT_API_CONNECT_OPTIONS) -> ChunkedStream:
        return _TimedChunked(self, text, conn_options=conn_options)

    def stream(self, *, conn_options=DEFAULT_API_CONNECT_OPTIONS) -> SynthesizeStream:
        return _TimedStream(self, conn_options=conn_options)

    def frames(self, text: str) -> list[tuple[AudioFrame, str]]:
        if self.broken:
            raise APIStatusError("no voice", status_code=404)
        n = round(WORD * self.sample_rate)
        return [
            (
                AudioFrame(
                    np.full(n, 1000, np.int16),
                    self.sample_rate,
                    timed_text=[TimedText(word, 0.01, 0.09)],
                ),
                word + " ",
            )
            for word in text.split()
        ]


class _TimedChunked(ChunkedStream):
    async def _run(self) -> None:
        for frame, text in self._tts.frames(self.input_text):
            await self._emit_frame(frame, delta_text=text)


class _TimedStream(SynthesizeStream):
    async def _run(self) -> None:
        text = ""
        async for item in self._input:
            if isinstance(item, str):
                text += item
                continue
            await self._speak(text)
            text = ""
        if text:
            await self._speak(text)

    async def _speak(self, text: str) -> None:
        for frame, said in self._tts.frames(text):
            await self._emit_frame(frame, segment_id="s", delta_text=said)
        await self._end_segment("s")


def word_times(items) -> list[tuple[str, float, float]]:
    """Each word's times from the start of the audio, as a listener would place them."""
    at, words = 0.0, []
    for item in items:
        words += [(t.text, at + t.start, at + t.end) for t in item.timed_text]
        at += item.frame.duration
    return words


EXPECTED = [(w, k * WORD + 0.01, k * WORD + 0.09) for k, w in enumerate(TEXT.split())]


async def test_a_fallback_stream_keeps_the_text_and_timings_of_each_frame():
    adapter = FallbackAdapter([TimedTTS(broken=True), TimedTTS()])
    async with adapter.stream() as stream:
        await stream.push_text(TEXT)
        stream.end_input()
        items = await stream.collect()
    assert "".join(i.delta_text for i in items) == TEXT + " "
    assert word_times(items) == [(w, pytest.approx(s), pytest.approx(e)) for w, s, e in EXPECTED]


@pytest.mark.parametrize("chunked", [False, True])
async def test_resampled_by_a_fallback_the_timings_stay_on_the_words(chunked):
    # The backup speaks at 16 kHz, the adapter at 24 kHz: the resampler holds audio back,
    # the words ride on later frames and their times move with them.
    adapter = FallbackAdapter([TimedTTS(broken=True), TimedTTS(sample_rate=16000)])
    if chunked:
        async with adapter.synthesize(TEXT) as chunks:
            items = await chunks.collect()
    else:
        async with adapter.stream() as stream:
            await stream.push_text(TEXT)
            stream.end_input()
            items = await stream.collect()
    assert {i.frame.sample_rate for i in items} == {24000}
    assert "".join(i.delta_text for i in items) == TEXT + " "
    assert word_times(items) == [
        (w, pytest.approx(s, abs=1e-4), pytest.approx(e, abs=1e-4)) for w, s, e in EXPECTED
    ]


async def test_the_stream_adapter_keeps_the_text_and_timings():
    async with StreamAdapter(tts=TimedTTS()).stream() as stream:
        await stream.push_text(TEXT)
        stream.end_input()
        items = await stream.collect()
    assert "".join(i.delta_text for i in items) == TEXT + " "
    assert word_times(items) == [(w, pytest.approx(s), pytest.approx(e)) for w, s, e in EXPECTED]


def test_resampling_a_frame_leaves_its_timings_behind():
    frame = AudioFrame(np.zeros(160, np.int16), 16000, timed_text=timed(("x", 0.0, 0.01)))
    assert resample(frame, 24000).timed_text == ()
