"""What a listener heard of a spoken text: followed from the TTS's word timings when it gave
them (``AudioFrame.timed_text``), estimated from the share of the audio played when it did not.

An interrupted reply is recorded truncated to what was heard, and a room's transcription shows
the words as they are heard: both ask a :class:`SpokenSegment` fed with the frames that went
to the output.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import trio

from ..audio import AudioFrame, TimedText
from ..tokenize import Word, split_words

__all__ = ["SpokenSegment", "heard_text"]

# Playout positions are sums of frame durations: a word that ends where the audio played up
# to is heard, whatever the rounding.
_EPSILON = 1e-9


def heard_text(
    text: str,
    *,
    played: float,
    pushed: float,
    timings: Sequence[TimedText] | None = None,
) -> str:
    """The part of ``text`` a listener heard after ``played`` of the ``pushed`` seconds of its
    audio (``math.inf`` while the audio is still coming), cut after a whole word.

    With ``timings`` (the words the audio says, in seconds from its start): the words whose end
    was played, matched to ``text`` letter by letter, so that a provider's own splitting,
    spacing and punctuation do not matter. Without: the same share of the words as of the
    audio (none while ``pushed`` is not known).
    """
    if played <= 0 or not text:
        return ""
    if played >= pushed - _EPSILON:
        return text
    words = split_words(text)
    if timings is not None:
        said = sum(_letters(t.text) for t in timings if t.end <= played + _EPSILON)
        n = _words_in_letters(text, words, said)
    elif math.isinf(pushed):
        n = 0
    else:
        n = math.floor(len(words) * played / pushed)
    return text[: words[n - 1].end] if n > 0 else ""


def _letters(text: str) -> int:
    return sum(1 for c in text if c.isalnum())


def _words_in_letters(text: str, words: Sequence[Word], letters: int) -> int:
    """How many of ``words`` (of ``text``) end within its first ``letters`` letters."""
    count = end = 0
    for n, word in enumerate(words):
        count += _letters(text[end : word.end])
        end = word.end
        if count > letters:
            return n
    return len(words)


class SpokenSegment:
    """One segment of speech as its frames go to an output: how many seconds were pushed, and
    the word timings the frames carried, in seconds from the segment's start."""

    def __init__(self) -> None:
        self.pushed = 0.0
        self._timings: list[TimedText] = []
        self._timed = False
        # The instant of the latest push, and the seconds and timings pushed before it.
        self._instant: tuple[float, float, int] = (-math.inf, 0.0, 0)

    @property
    def timings(self) -> Sequence[TimedText] | None:
        """The word timings so far; None when no frame carried any (the TTS does not tell)."""
        return tuple(self._timings) if self._timed else None

    def push(self, frame: AudioFrame) -> None:
        """``frame`` went to the output after those pushed before."""
        now = trio.current_time()
        if self._instant[0] != now:
            self._instant = (now, self.pushed, len(self._timings))
        at = self.pushed
        if frame.timed_text:
            self._timed = True
            self._timings += [TimedText(t.text, at + t.start, at + t.end) for t in frame.timed_text]
        self.pushed += frame.duration

    def before_now(self) -> SpokenSegment:
        """This segment without what was pushed at the current instant: at the instant of a cut,
        whether a frame went out before it is up to the order trio runs its tasks in, so what
        was heard must not count it."""
        at, pushed, count = self._instant
        if at != trio.current_time():
            pushed, count = self.pushed, len(self._timings)
        copy = SpokenSegment()
        copy.pushed, copy._timings, copy._timed = pushed, self._timings[:count], self._timed
        return copy

    def heard(self, text: str, *, played: float) -> str:
        """What a listener heard of ``text`` (what this segment says) after ``played`` seconds
        of it: see :func:`heard_text`."""
        return heard_text(
            text, played=min(played, self.pushed), pushed=self.pushed, timings=self.timings
        )
