"""Sentence splitting for text that arrives a few characters at a time.

The speech pipeline sends each sentence of an LLM reply to text-to-speech as soon as it is
certain the sentence has ended, so the scanner here commits to a boundary at the first non-space
character after the end mark (after a first clause's mark, at the space) - the earliest moment it
can be sure - and never later. Every decision depends only on text already seen, which is why
splitting a text in one call and feeding it one character at a time give the same sentences.
"""

from __future__ import annotations

import re

import attrs

__all__ = ["SentenceStream", "SentenceTokenizer", "split_sentences"]

# Abbreviations that end in a period without ending the sentence. Matched case-sensitively:
# "No. 5" is a number but "I said no. Then" is two sentences.
_EN_ABBREVIATIONS = frozenset(
    {
        # titles and name suffixes
        "Mr.", "Mrs.", "Ms.", "Dr.", "Prof.", "Sr.", "Jr.", "St.", "Mt.", "Rev.", "Hon.",
        "Gen.", "Col.", "Capt.", "Lt.", "Sgt.", "Gov.", "Sen.", "Rep.", "Pres.", "Messrs.",
        # Latin and other running-text abbreviations
        "vs.", "Vs.", "etc.", "e.g.", "E.g.", "i.e.", "I.e.", "cf.", "al.", "approx.", "ca.",
        "a.m.", "p.m.", "A.M.", "P.M.",
        # places, organisations and references
        "U.S.", "U.K.", "U.S.A.", "Inc.", "Ltd.", "Co.", "Corp.", "Bros.", "Dept.", "Ave.",
        "Blvd.", "Rd.", "No.", "Nos.", "Vol.", "Fig.", "fig.", "Ph.D.",
    }
)  # fmt: skip

# Only English ships; other languages use it too, because the titles it holds are shared by most
# languages in Latin script and a missed boundary costs latency, not correctness.
_ABBREVIATIONS_BY_LANGUAGE = {"en": _EN_ABBREVIATIONS}

_LATIN_TERMINALS = frozenset(".!?…")
# CJK scripts put no space after a full stop, so these end a sentence even when text follows.
_CJK_TERMINALS = frozenset("。！？；")
_TERMINALS = _LATIN_TERMINALS | _CJK_TERMINALS
_CLAUSE_MARKS = frozenset(",;:—")
_CLOSERS = frozenset("\"'”’»›)]}」』）】》〉〕*")
_OPENERS = "\"'“‘«‹([{「『（【《〈〔*"
# The characters str.splitlines() breaks on.
_LINE_BREAKS = frozenset("\n\r\v\f\x1c\x1d\x1e\x85\u2028\u2029")
# Dotted letter sequences ("U.S.", "z.B.", "e.g.") are abbreviations whether listed or not.
_DOTTED_LETTERS = re.compile(r"(?:[^\W\d_]\.){2,}")


def _abbreviations_for(language: str) -> frozenset[str]:
    primary = language.replace("_", "-").split("-", 1)[0].lower()
    return _ABBREVIATIONS_BY_LANGUAGE.get(primary, _EN_ABBREVIATIONS)


@attrs.frozen(kw_only=True)
class SentenceTokenizer:
    """Splits text into sentences, in one call or incrementally through :meth:`stream`.

    A sentence ends at ``.``, ``!``, ``?``, ``…`` or ``...`` followed by whitespace (closing
    quotes and brackets right after the mark stay with the sentence), at the CJK marks
    ``。！？；`` even with no space after them, and at every line break. A period followed by a
    non-space character (``3.14``, ``example.com``), a known abbreviation (``Dr.``, ``e.g.``)
    and a single capital initial (``J. R. R. Tolkien``) do not end a sentence.

    Sentences shorter than ``min_sentence_len`` characters are joined to the next one, so that
    text-to-speech is not asked to say "Hi." on its own; the last sentence is kept whatever its
    length. ``language`` is a BCP-47 tag that selects the abbreviation list.

    ``first_clause``: the first piece of each text may end sooner, at the end of its first
    clause (``,``, ``;``, ``:`` or ``—`` followed by a space) once it holds at least
    ``min_sentence_len`` characters, so that text-to-speech can start on "The weather in Paris
    is sunny," while the model still writes the rest of the sentence. The rest is cut into
    sentences as usual.
    """

    language: str = "en"
    min_sentence_len: int = attrs.field(
        default=20, validator=[attrs.validators.instance_of(int), attrs.validators.ge(0)]
    )
    first_clause: bool = False

    def tokenize(self, text: str) -> list[str]:
        """All the sentences of ``text``, stripped, in order."""
        stream = self.stream()
        return stream.push_text(text) + stream.flush()

    def stream(self) -> SentenceStream:
        """A new :class:`SentenceStream` with this tokenizer's settings."""
        return SentenceStream(tokenizer=self)


@attrs.define(eq=False, kw_only=True)
class SentenceStream:
    """Incremental sentence splitter: push text as it arrives, get sentences as they end.

    Synchronous and cheap, for the hot path between an LLM stream and a TTS stream: each push
    scans only the text it has not yet decided about. A sentence is returned by the push that
    brings the first non-space character after its end mark (a line break returns it at once).
    Nothing is lost or repeated: the returned sentences, then :meth:`flush`, hold all the text.
    """

    tokenizer: SentenceTokenizer
    _abbreviations: frozenset[str] = attrs.field(init=False)
    # Text not yet returned, starting at the current sentence.
    _buf: str = attrs.field(init=False, default="")
    # Where scanning resumes in _buf: everything before it holds no boundary.
    _pos: int = attrs.field(init=False, default=0)
    # Finished sentences too short to send alone, waiting for the next one.
    _pending: str = attrs.field(init=False, default="")
    # Whether nothing was returned yet since the start or the last flush.
    _first: bool = attrs.field(init=False, default=True)

    @_abbreviations.default
    def _default_abbreviations(self) -> frozenset[str]:
        return _abbreviations_for(self.tokenizer.language)

    def push_text(self, text: str) -> list[str]:
        """Add ``text``; return the sentences it completed (often none)."""
        self._buf += text
        out: list[str] = []
        while (boundary := self._next_boundary()) is not None:
            end, resume = boundary
            self._take(self._buf[:end], out)
            self._buf = self._buf[end:]
            self._pos = resume - end
        return out

    def flush(self) -> list[str]:
        """Return the rest as a last sentence (if any) and reset, ready for the next text."""
        rest = self._buf.strip()
        sentence = self._join(self._pending, self._buf, rest) if rest else self._pending
        self._buf, self._pos, self._pending, self._first = "", 0, "", True
        return [sentence] if sentence else []

    def _take(self, raw: str, out: list[str]) -> None:
        sentence = raw.strip()
        if not sentence:
            return
        sentence = self._join(self._pending, raw, sentence)
        if len(sentence) < self.tokenizer.min_sentence_len:
            self._pending = sentence
        else:
            self._pending, self._first = "", False
            out.append(sentence)

    @staticmethod
    def _join(pending: str, raw: str, sentence: str) -> str:
        if not pending:
            return sentence
        # A space where the source had whitespace; none between CJK sentences, which have none.
        return f"{pending} {sentence}" if raw[:1].isspace() else pending + sentence

    def _next_boundary(self) -> tuple[int, int] | None:
        """Find the first certain boundary: (end of the sentence, where scanning resumes)."""
        buf = self._buf
        n = len(buf)
        i = self._pos
        clauses = self._first and self.tokenizer.first_clause
        while i < n:
            c = buf[i]
            if c in _LINE_BREAKS:
                return i, i + 1
            if clauses and c in _CLAUSE_MARKS:
                if i + 1 >= n:
                    break  # "21,000" or "sunny, ": decide when the next character comes
                if self._ends_first_clause(buf, i):
                    # The space settles it: whatever follows starts the next piece (a model
                    # writing "sunny, 21" sends the space alone, a token before the digit).
                    return i + 1, i + 1
            if c not in _TERMINALS:
                i += 1
                continue
            j = i
            while j < n and buf[j] in _TERMINALS:
                j += 1
            k = j
            while k < n and buf[k] in _CLOSERS:
                k += 1
            if k == n:
                break  # the closers may go on: decide when more text comes
            if not buf[k].isspace():
                if any(t in _CJK_TERMINALS for t in buf[i:j]):
                    return k, k
                i = k  # "3.14", "example.com", "?q=1": never a boundary
                continue
            m = k
            while m < n and buf[m].isspace() and buf[m] not in _LINE_BREAKS:
                m += 1
            if m == n:
                break  # nothing after the space yet
            if buf[m] not in _LINE_BREAKS and self._ends_sentence(buf, i, j):
                return k, k
            i = m  # a line break there ends the sentence on the next turn of the loop
        self._pos = i
        return None

    def _ends_first_clause(self, buf: str, i: int) -> bool:
        """Whether the clause mark buf[i], followed by a space, ends a long enough clause."""
        if i + 1 < len(buf) and not buf[i + 1].isspace():
            return False  # "21,000", "10:30"
        clause = len(self._pending) + len(buf[: i + 1].strip()) + (1 if self._pending else 0)
        return clause >= self.tokenizer.min_sentence_len

    def _ends_sentence(self, buf: str, i: int, j: int) -> bool:
        """Whether the end marks buf[i:j], followed by whitespace, end a sentence."""
        if buf[i:j] != ".":
            return True
        start = i
        while start > 0 and not buf[start - 1].isspace():
            start -= 1
        token = buf[start : i + 1].lstrip(_OPENERS)
        if token in self._abbreviations or _DOTTED_LETTERS.fullmatch(token):
            return False
        # A lone capital is an initial ("J. R. R. Tolkien"), almost never a sentence's last word.
        return not (len(token) == 2 and token[0].isupper())


def split_sentences(text: str, *, min_sentence_len: int = 20, language: str = "en") -> list[str]:
    """Split ``text`` into sentences; shorthand for ``SentenceTokenizer(...).tokenize(text)``."""
    tokenizer = SentenceTokenizer(language=language, min_sentence_len=min_sentence_len)
    return tokenizer.tokenize(text)
