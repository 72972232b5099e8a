"""One WebSocket connection, many *contexts*: the multi-context TTS protocols (Cartesia,
ElevenLabs) tag each server message with the ``context_id`` of the reply it belongs to.

A reply reads its own contexts in order through a :class:`ContextInbox`: messages of its later
contexts are held until their turn, and those of contexts no longer its own (a cancelled reply's
late audio) are dropped. Once a context's text is all sent, each wait for it is bounded.
"""

from __future__ import annotations

import math
from collections import deque
from collections.abc import Callable
from typing import Generic, Protocol, TypeVar

import trio

from ._websocket import Connection

__all__ = ["ContextInbox", "NoAnswer"]


class NoAnswer(Exception):
    """The server did not answer in time after a context's text ended."""


class _Tagged(Protocol):
    @property
    def context_id(self) -> str: ...


M = TypeVar("M", bound=_Tagged)


class ContextInbox(Generic[M]):
    """The messages of one connection, routed by context. ``parse`` reads a frame (raising
    the plugin's malformed-message error); ``about_connection`` tells a message for no
    context that the current reader must see (an error about the connection itself)."""

    def __init__(
        self,
        connection: Connection,
        timeout: float,
        *,
        parse: Callable[[str | bytes], M],
        about_connection: Callable[[M], bool],
    ) -> None:
        self._connection = connection
        self._timeout = timeout
        self._parse = parse
        self._about_connection = about_connection
        self.mine: set[str] = set()
        # Contexts whose text is all sent: the server must then answer within the timeout.
        self._ended: set[str] = set()
        self._waiting = trio.CancelScope()
        self._waiting_for = ""
        self._held: dict[str, deque[M]] = {}

    async def next(self, context_id: str) -> M:
        """The context's next message (raises :class:`NoAnswer`, or what ``parse`` raises)."""
        held = self._held.get(context_id)
        if held:
            return held.popleft()
        while True:
            ended = context_id in self._ended
            deadline = trio.current_time() + self._timeout if ended else math.inf
            with trio.CancelScope(deadline=deadline) as self._waiting:
                self._waiting_for = context_id
                frame = await self._connection.receive()
            if self._waiting.cancelled_caught:
                raise NoAnswer(f"no answer for {self._timeout} s after the text ended")
            message = self._parse(frame)
            if message.context_id == context_id:
                return message
            if not message.context_id and self._about_connection(message):
                return message
            if message.context_id in self.mine:
                self._held.setdefault(message.context_id, deque()).append(message)

    def end(self, context_id: str) -> None:
        """All of the context's text is sent: from now on each wait for it is bounded."""
        self._ended.add(context_id)
        if self._waiting_for == context_id:
            self._waiting.deadline = trio.current_time() + self._timeout

    def finished(self, context_id: str) -> None:
        """The context is over for this reply: what else comes for it is dropped."""
        self.mine.discard(context_id)
        self._ended.discard(context_id)
        self._held.pop(context_id, None)
