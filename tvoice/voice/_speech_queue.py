"""The speech queue: speeches run one at a time, by priority, each in its handle's cancel scope."""

from __future__ import annotations

import heapq
import itertools
import logging
from collections.abc import Awaitable, Callable
from typing import Protocol

import trio

from ._speech_handle import SpeechHandle

__all__ = ["SpeechQueue", "SpeechRun", "SpeechStage"]

logger = logging.getLogger("tvoice.voice")

SpeechRun = Callable[[SpeechHandle], Awaitable[None]]


class SpeechStage(Protocol):
    """What the queue tells the rest of the activity about the speech it runs."""

    def may_speak(self) -> bool:
        """Whether speeches may run now (the agent is the one the user talks to)."""
        ...

    def speech_starting(self, handle: SpeechHandle) -> None:
        """``handle`` is about to run (it is current already)."""
        ...

    def speech_stopped(self, handle: SpeechHandle) -> None:
        """``handle`` ran, or was cut (it is no longer current, not yet done)."""
        ...

    def queue_emptied(self) -> None:
        """The speech that ended was the last one queued."""
        ...

    def speech_failed(self, handle: SpeechHandle, error: Exception) -> None:
        """``handle``'s run raised ``error``."""
        ...


class SpeechQueue:
    """Queued speeches by priority (equal priorities in order), and the one that runs."""

    def __init__(self, stage: SpeechStage, on_change: Callable[[], None]) -> None:
        self._stage = stage
        self._on_change = on_change
        self._heap: list[tuple[int, int, SpeechHandle, SpeechRun]] = []
        self._seq = itertools.count()
        self._changed = trio.Event()
        self.current: SpeechHandle | None = None

    @property
    def busy(self) -> bool:
        """A speech is running or queued."""
        return self.current is not None or bool(self._heap)

    @property
    def queued(self) -> bool:
        """A speech is queued (not counting the one that runs)."""
        return bool(self._heap)

    def push(self, handle: SpeechHandle, run: SpeechRun) -> None:
        """Queue ``run`` for ``handle``: it runs when everything of higher (or equal, earlier)
        priority has."""
        heapq.heappush(self._heap, (-handle.priority, next(self._seq), handle, run))
        self.wake()

    def wake(self) -> None:
        """Something changed: the queue looks again, and the session learns of it."""
        self._changed.set()
        self._changed = trio.Event()
        self._on_change()

    def next(self) -> SpeechHandle | None:
        """The current speech or, when there is none, the one the queue runs next: which of
        the two a speech is at an instant depends on when trio runs the queue's task, what
        the user's turn or voice does to it must not."""
        if self.current is not None or not self._stage.may_speak():
            return self.current
        queued = [q for q in self._heap if not q[2].done()]
        return min(queued)[2] if queued else None

    def interrupt(self, *, force: bool) -> None:
        """Interrupt the current speech and drop the queued ones (those that allow it)."""
        for _, _, handle, _ in self._heap:
            if handle.allow_interruptions or force:
                handle.interrupt(force=force)
                handle.mark_done()
        self._heap = [q for q in self._heap if not q[2].done()]
        heapq.heapify(self._heap)
        speech = self.current
        if speech is not None and (speech.allow_interruptions or force):
            speech.interrupt(force=force)
        self.wake()

    async def run(self) -> None:
        """Run the queued speeches, one at a time, for ever."""
        stage = self._stage
        while True:
            while not self._heap or not stage.may_speak():
                await self._changed.wait()
            _, _, handle, run = heapq.heappop(self._heap)
            if handle.done():
                continue
            self.current = handle
            handle.mark_started()
            stage.speech_starting(handle)
            try:
                with handle.scope:
                    await run(handle)
            except Exception as e:
                logger.exception("speech %s failed", handle.id)
                stage.speech_failed(handle, e)
            finally:
                self.current = None
                stage.speech_stopped(handle)
                handle.mark_done()
                if not self._heap:
                    stage.queue_emptied()
                self.wake()
