"""An append-only log of text pieces that several readers iterate at their own pace."""

from __future__ import annotations

import trio

__all__ = ["TextLog"]


class TextLog:
    """The text of one generation: the LLM appends, the TTS and the transcript read.

    Readers each keep their own position, so a slow reader never holds up another; the log is
    bounded by the length of one reply.
    """

    def __init__(self) -> None:
        self.pieces: list[str] = []
        self.closed = False
        self._changed = trio.Event()

    def append(self, piece: str) -> None:
        """Add a piece of text."""
        if piece:
            self.pieces.append(piece)
            self._wake()

    def close(self) -> None:
        """No more text."""
        self.closed = True
        self._wake()

    def _wake(self) -> None:
        self._changed.set()
        self._changed = trio.Event()

    @property
    def text(self) -> str:
        """Everything so far."""
        return "".join(self.pieces)

    def reader(self) -> _Reader:
        """A new reader from the start: ``async for piece in log.reader()``."""
        return _Reader(self)

    async def wait_closed(self) -> None:
        """Wait until the generation has no more text."""
        while not self.closed:
            await self._changed.wait()

    async def wait_changed(self) -> None:
        """Wait for the next piece or for the end."""
        await self._changed.wait()


class _Reader:
    def __init__(self, log: TextLog) -> None:
        self._log = log
        self._index = 0

    def __aiter__(self) -> _Reader:
        return self

    async def __anext__(self) -> str:
        log = self._log
        while self._index >= len(log.pieces):
            if log.closed:
                raise StopAsyncIteration
            await log.wait_changed()
        self._index += 1
        return log.pieces[self._index - 1]
