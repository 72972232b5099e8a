"""The script a :class:`Timeline` is made of: what the user says and how the models answer."""

from __future__ import annotations

from collections.abc import Sequence
from typing import TypeVar

import attrs

from ..llm import FunctionCall
from ..llm._llm import function_calls

__all__ = ["LLMReply", "Script", "ScriptError", "TTSReply", "UserSpeech"]

T = TypeVar("T")


@attrs.frozen(kw_only=True)
class UserSpeech:
    """The user speaks from ``start`` to ``end`` (seconds on the timeline).

    An empty ``transcript`` is noise: the VAD hears it, speech-to-text finds no words.
    The STT sends the words as an interim transcript halfway through ``stt_delay``, or, with
    ``preflight``, as a preflight transcript that many seconds after ``end``; then as the
    final transcript ``stt_delay`` after ``end``.
    """

    start: float
    end: float
    transcript: str
    stt_delay: float = 0.2
    preflight: float | None = None

    def __attrs_post_init__(self) -> None:
        if not 0 <= self.start < self.end:
            raise ValueError(f"user speech needs 0 <= start < end, got {self.start}-{self.end}")
        if self.stt_delay < 0:
            raise ValueError("stt_delay must be >= 0")
        if self.preflight is not None and not 0 <= self.preflight <= self.stt_delay:
            raise ValueError("preflight must be between 0 and stt_delay")


@attrs.frozen(kw_only=True)
class LLMReply:
    """How the fake LLM answers when the last chat item's text is ``input``.

    The first text arrives ``ttft`` seconds after the request, the rest is spread evenly until
    ``duration``; tool calls and the usage report come at ``duration``.
    """

    input: str
    content: str = ""
    tool_calls: tuple[FunctionCall, ...] = attrs.field(default=(), converter=function_calls)
    ttft: float = 0.1
    duration: float = 0.3

    def __attrs_post_init__(self) -> None:
        if not 0 <= self.ttft <= self.duration:
            raise ValueError(
                f"LLM reply needs 0 <= ttft <= duration, got {self.ttft}, {self.duration}"
            )


@attrs.frozen(kw_only=True)
class TTSReply:
    """How the fake TTS speaks ``input``: ``audio_duration`` seconds of audio, the first frame
    ``ttfb`` seconds after the text is complete, all of it by ``duration``."""

    input: str
    audio_duration: float
    ttfb: float = 0.2
    duration: float = 0.3

    def __attrs_post_init__(self) -> None:
        if not 0 <= self.ttfb <= self.duration:
            raise ValueError(
                f"TTS reply needs 0 <= ttfb <= duration, got {self.ttfb}, {self.duration}"
            )
        if self.audio_duration <= 0:
            raise ValueError("audio_duration must be > 0")


class ScriptError(LookupError):
    """A fake was asked for something the script does not contain."""


@attrs.define
class Script:
    """All the entries of a timeline, shared by its fakes."""

    speech: list[UserSpeech] = attrs.field(factory=list)
    llm: dict[str, list[LLMReply]] = attrs.field(factory=dict)
    tts: dict[str, list[TTSReply]] = attrs.field(factory=dict)
    origin: float = 0.0

    def llm_reply(self, text: str) -> LLMReply:
        """The reply scripted for ``text``; replies for the same text are used in order, the
        last one again once they run out."""
        return _take(self.llm, text.strip(), "LLM reply")

    def tts_reply(self, text: str) -> TTSReply:
        """The audio scripted for ``text``, used like :meth:`llm_reply`."""
        return _take(self.tts, text.strip(), "TTS audio")

    def speech_sorted(self) -> Sequence[UserSpeech]:
        """User speech in time order."""
        return sorted(self.speech, key=lambda s: s.start)

    def vad_segments(self, *, start_delay: float, end_delay: float) -> list[tuple[float, float]]:
        """(start, end) of what a VAD hears as one speech: bursts closer than its silence
        window (``end_delay``) merge, as they do for a real VAD."""
        segments: list[tuple[float, float]] = []
        for s in self.speech_sorted():
            if segments and s.start + start_delay <= segments[-1][1] + end_delay:
                segments[-1] = (segments[-1][0], max(segments[-1][1], s.end))
            else:
                segments.append((s.start, s.end))
        return segments


def _take(table: dict[str, list[T]], key: str, what: str) -> T:
    entries = table.get(key)
    if not entries:
        known = ", ".join(repr(k) for k in table) or "none"
        raise ScriptError(f"no {what} scripted for {key!r} (scripted: {known})")
    return entries.pop(0) if len(entries) > 1 else entries[0]
