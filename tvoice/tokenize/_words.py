"""Word splitting with exact character offsets.

When the user interrupts, the runtime keeps only the words of the reply that were actually heard
by cutting the text at ``words[n - 1].end``, so every :class:`Word` carries the offsets of its
text in the source, and ``text[word.start:word.end] == word.text`` always holds.
"""

from __future__ import annotations

import unicodedata
from collections.abc import Iterator

import attrs

__all__ = ["Word", "WordStream", "WordTokenizer", "count_words", "split_words"]

# Ideographs and kana, written without spaces, are one word each. Hangul is not here: Korean puts
# spaces between words.
_CJK_RANGES = (
    (0x3040, 0x30FF),  # Hiragana, Katakana
    (0x31F0, 0x31FF),  # Katakana phonetic extensions
    (0x3400, 0x4DBF),  # CJK Unified Ideographs Extension A
    (0x4E00, 0x9FFF),  # CJK Unified Ideographs
    (0xF900, 0xFAFF),  # CJK Compatibility Ideographs
    (0xFF66, 0xFF9F),  # Halfwidth Katakana
    (0x20000, 0x323AF),  # CJK Unified Ideographs Extensions B to H, and compatibility
)


def _is_cjk(char: str) -> bool:
    code = ord(char)
    # Everything before Hiragana (Latin, Cyrillic, punctuation...) is the common case: one test.
    return code >= 0x3040 and any(lo <= code <= hi for lo, hi in _CJK_RANGES)


def _is_punctuation(char: str) -> bool:
    # Unicode categories Pc Pd Pe Pf Pi Po Ps: quotes, brackets, dashes, full stops in any script.
    return unicodedata.category(char).startswith("P")


@attrs.frozen
class Word:
    """A word and where it is: ``text == source[start:end]``."""

    text: str
    start: int
    end: int


def _spans(text: str) -> Iterator[tuple[int, int]]:
    """Offsets of the raw tokens: runs of non-space characters, and each CJK character alone."""
    start = -1
    for i, char in enumerate(text):
        if char.isspace() or _is_cjk(char):
            if start >= 0:
                yield start, i
                start = -1
            if not char.isspace():
                yield i, i + 1
        elif start < 0:
            start = i
    if start >= 0:
        yield start, len(text)


def _word(text: str, start: int, end: int, *, ignore_punctuation: bool) -> Word | None:
    if ignore_punctuation:
        # Only the edges: "don't" and "well-known" keep their inner apostrophe and hyphen.
        while start < end and _is_punctuation(text[start]):
            start += 1
        while end > start and _is_punctuation(text[end - 1]):
            end -= 1
        if start == end:
            return None
    return Word(text[start:end], start, end)


def _words(text: str, spans: Iterator[tuple[int, int]], ignore_punctuation: bool) -> list[Word]:
    words = (_word(text, s, e, ignore_punctuation=ignore_punctuation) for s, e in spans)
    return [word for word in words if word is not None]


def split_words(text: str, *, ignore_punctuation: bool = True) -> list[Word]:
    """The words of ``text`` with their offsets.

    Words are separated by whitespace, and each CJK ideograph or kana is a word of its own. With
    ``ignore_punctuation`` (the default) punctuation is stripped from both ends of each word, the
    offsets moved to match, and words made only of punctuation are dropped.
    """
    return _words(text, _spans(text), ignore_punctuation)


def count_words(text: str) -> int:
    """How many words :func:`split_words` finds in ``text``, punctuation ignored."""
    return len(split_words(text))


@attrs.frozen(kw_only=True)
class WordTokenizer:
    """Splits text into words, in one call or incrementally through :meth:`stream`.

    Same rules as :func:`split_words`, returning the words' text only.
    """

    ignore_punctuation: bool = True

    def tokenize(self, text: str) -> list[str]:
        """The words of ``text``, in order."""
        return [w.text for w in split_words(text, ignore_punctuation=self.ignore_punctuation)]

    def stream(self) -> WordStream:
        """A new :class:`WordStream` with this tokenizer's settings."""
        return WordStream(tokenizer=self)


@attrs.define(eq=False, kw_only=True)
class WordStream:
    """Incremental word splitter: push text as it arrives, get words as they end.

    A word is returned once whitespace (or a CJK character) follows it; a CJK character is
    returned as soon as it arrives. :meth:`flush` returns the last word and resets the stream.
    """

    tokenizer: WordTokenizer
    # The start of a word that the next push may still extend.
    _buf: str = attrs.field(init=False, default="")

    def push_text(self, text: str) -> list[str]:
        """Add ``text``; return the words it completed."""
        buf = self._buf + text
        spans = list(_spans(buf))
        keep = len(buf)
        if buf and not buf[-1].isspace() and not _is_cjk(buf[-1]):
            keep = spans.pop()[0]
        self._buf = buf[keep:]
        return [w.text for w in _words(buf, iter(spans), self.tokenizer.ignore_punctuation)]

    def flush(self) -> list[str]:
        """Return the last word, if any, and reset, ready for the next text."""
        buf, self._buf = self._buf, ""
        return [w.text for w in _words(buf, _spans(buf), self.tokenizer.ignore_punctuation)]
