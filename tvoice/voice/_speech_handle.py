"""`SpeechHandle`: one thing the agent says, owned by a cancel scope."""

from __future__ import annotations

from collections.abc import Callable, Generator
from typing import Any

import trio

from .._utils import short_id
from ..llm import ChatItem

__all__ = [
    "SPEECH_PRIORITY_HIGH",
    "SPEECH_PRIORITY_LOW",
    "SPEECH_PRIORITY_NORMAL",
    "SpeechHandle",
]

SPEECH_PRIORITY_LOW = 0
SPEECH_PRIORITY_NORMAL = 5
SPEECH_PRIORITY_HIGH = 10


class SpeechHandle:
    """A queued or playing speech. ``await handle`` waits until it has been played out.

    Speech runs one at a time, highest priority first. Interrupting it cancels its scope: the
    LLM, TTS and playout stop at once, and the part that was heard is recorded. An
    uninterruptible speech ignores ``interrupt()`` unless ``force=True``.
    """

    def __init__(
        self, *, allow_interruptions: bool, priority: int = SPEECH_PRIORITY_NORMAL
    ) -> None:
        self.id = short_id("speech")
        self._allow_interruptions = allow_interruptions
        self.priority = priority
        self.scope = trio.CancelScope()
        self._interrupted = False
        self._started = False
        self._done = trio.Event()
        self._callbacks: list[Callable[[SpeechHandle], Any]] = []
        self.chat_items: list[ChatItem] = []
        self.num_steps = 1
        self.created_at = trio.current_time()

    def __repr__(self) -> str:
        return f"SpeechHandle({self.id}, interrupted={self._interrupted}, done={self.done()})"

    @property
    def allow_interruptions(self) -> bool:
        """Whether the user (or ``interrupt()``) may cut this speech."""
        return self._allow_interruptions

    @allow_interruptions.setter
    def allow_interruptions(self, value: bool) -> None:
        self._allow_interruptions = value

    @property
    def interrupted(self) -> bool:
        """The speech was cut (or dropped before it started)."""
        return self._interrupted

    @property
    def started(self) -> bool:
        """The speech left the queue and began."""
        return self._started

    def done(self) -> bool:
        """The speech finished, was interrupted, or was dropped."""
        return self._done.is_set()

    def interrupt(self, *, force: bool = False) -> SpeechHandle:
        """Cut the speech now; raises RuntimeError for an uninterruptible one unless forced."""
        if not (self._allow_interruptions or force):
            raise RuntimeError("this speech does not allow interruptions (use force=True)")
        if not self.done():
            self._interrupted = True
            self.scope.cancel()
        return self

    async def wait_for_playout(self) -> None:
        """Wait until the speech has been played out, interrupted or dropped."""
        await self._done.wait()

    def __await__(self) -> Generator[Any, None, SpeechHandle]:
        async def wait() -> SpeechHandle:
            await self._done.wait()
            return self

        return wait().__await__()

    def add_done_callback(self, callback: Callable[[SpeechHandle], Any]) -> None:
        """Call ``callback(handle)`` when the speech is done (at once if it already is)."""
        if self.done():
            callback(self)
        else:
            self._callbacks.append(callback)

    def mark_started(self) -> None:
        """The scheduler took the speech out of the queue (runtime use)."""
        self._started = True

    def mark_done(self) -> None:
        """The speech is over (runtime use); runs the done callbacks once."""
        if self._done.is_set():
            return
        self._done.set()
        callbacks, self._callbacks = self._callbacks, []
        for callback in callbacks:
            callback(self)
