"""The room's transcription releases the agent's words as they are heard: by the TTS's word
timings when it gives them, else by an estimate (``released_text``, the rule
``TranscriptionSync`` applies to the playing segment)."""

from tvoice.audio import TimedText
from tvoice.livekit._room_text import SPEAKING_RATE, released_text

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
