"""The connections a TTS keeps between replies, and the keeper that holds one open for as long
as a session runs: it reads the idle connection (so a drop is seen when it happens, not by the
next reply) and opens another after a backoff when it drops.

The keeper is a task of its caller (a session runs ``TTS.keep_warm()`` in its nursery and
cancels it when it closes); it starts a task per idle connection it watches, in a nursery of
its own, and none outlives it. The waits between tries are decided by :class:`Backoff`, which
takes no time and runs no task.
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Generic, Protocol, TypeVar

import attrs
import trio

from tvoice import APIError

__all__ = ["Backoff", "KeptConnections", "Reusable"]

logger = logging.getLogger("tvoice.plugins")


class Reusable(Protocol):
    """What :class:`KeptConnections` keeps: a connection, or a thing that wraps one."""

    @property
    def closed(self) -> bool: ...

    async def wait_closed(self) -> None: ...

    async def aclose(self) -> None: ...


_T = TypeVar("_T", bound=Reusable)


@attrs.define(kw_only=True)
class Backoff:
    """When to open a connection again, and when to stop trying.

    Each setback in a row (an open that failed, or a connection lost before it proved
    itself) doubles the wait before the next open, from ``initial`` up to ``maximum``; after
    ``limit`` setbacks in a row the keeper gives up. A connection proves itself by serving a
    reply, or by staying open ``maximum`` seconds: then the count starts again.
    """

    initial: float = 0.5
    maximum: float = 8.0
    limit: int = 8
    setbacks: int = 0

    @property
    def delay(self) -> float:
        """The wait before the next open: none before the first."""
        if not self.setbacks:
            return 0.0
        return min(self.initial * 2.0 ** min(self.setbacks - 1, 32), self.maximum)

    @property
    def gave_up(self) -> bool:
        """Too many setbacks in a row: stop trying until a connection proves itself."""
        return self.setbacks >= self.limit

    def setback(self) -> None:
        """An open failed, or a connection was lost before it proved itself."""
        self.setbacks += 1

    def lost(self, lived: float) -> None:
        """A connection that was open ``lived`` seconds was lost."""
        if lived >= self.maximum:
            self.reset()
        self.setback()

    def reset(self) -> None:
        """A connection proved itself."""
        self.setbacks = 0


@attrs.define(eq=False)
class _Watch:
    scope: trio.CancelScope = attrs.Factory(trio.CancelScope)
    done: trio.Event = attrs.Factory(trio.Event)


class KeptConnections(Generic[_T]):
    """The connections a TTS keeps between replies: each reply takes a kept one, or opens one
    (``open``) when all are in use, and gives it back afterwards unless it failed (any error
    but a cancellation discards it: an interrupted reply leaves its connection usable). At most
    ``max_idle`` are kept. :meth:`keep_warm` keeps one open for as long as it runs."""

    def __init__(
        self,
        open: Callable[[], Awaitable[_T]],
        *,
        max_idle: int = 2,
        backoff: Backoff | None = None,
    ) -> None:
        self._open = open
        self._max_idle = max_idle
        self._idle: list[_T] = []
        self._in_use = 0
        self._closed = False
        self._backoff = backoff if backoff is not None else Backoff()
        # When each connection the keeper opened did so, until it proves itself.
        self._born: dict[_T, float] = {}
        self._watches: dict[_T, _Watch] = {}
        self._changed = trio.Event()
        self._keeper = trio.Lock()
        self._keeping = trio.CancelScope()
        self._gave_up_told = False

    @property
    def idle(self) -> int:
        """How many connections are kept, open, for the next replies."""
        return len(self._idle)

    @property
    def in_use(self) -> int:
        """How many connections replies hold now."""
        return self._in_use

    async def prewarm(self) -> None:
        """Open one now, so that the first reply does not wait for it."""
        if not self._idle:
            connection = await self._open()
            self._born[connection] = trio.current_time()
            self._idle.append(connection)
            self._notify()

    async def keep_warm(self) -> None:
        """Keep a connection open for the next reply until cancelled (or :meth:`aclose`).

        Opens one now unless one is kept. Each kept connection is read while it is idle, so
        when the server closes it or the network drops it, it is closed and another opened in
        the background, after the waits of :class:`Backoff` (0.5 s doubling to 8 s); replies
        never wait for this and are never failed by it. After ``Backoff.limit`` setbacks in a
        row, or at once for an error that retrying cannot mend (a bad key), it logs once and
        stops trying until a reply connects again; until then replies connect when they need.
        While replies hold every connection it opens none: theirs come back. Raises nothing
        for a connection that fails. One keeper at a time: a second waits for the first.
        """
        async with self._keeper:
            with trio.CancelScope() as self._keeping:
                if self._closed:
                    return
                async with trio.open_nursery() as nursery:
                    await self._keep(nursery)
                    nursery.cancel_scope.cancel()

    async def _keep(self, nursery: trio.Nursery) -> None:
        while not self._closed:
            for connection in self._idle:
                if connection not in self._watches:
                    watch = self._watches[connection] = _Watch()
                    nursery.start_soon(self._watch, connection, watch)
            if self._idle or self._in_use or self._backoff.gave_up:
                await self._changed.wait()
                continue
            await trio.sleep(self._backoff.delay)
            if self._idle or self._in_use:
                continue  # a reply opened one meanwhile
            try:
                connection = await self._open()
            except Exception as e:  # a reply that connects reports it
                self._setback(e)
                continue
            self._born[connection] = trio.current_time()
            self._idle.append(connection)

    async def _watch(self, connection: _T, watch: _Watch) -> None:
        try:
            with watch.scope:
                await connection.wait_closed()
        finally:
            if self._watches.get(connection) is watch:
                del self._watches[connection]
            watch.done.set()
        if watch.scope.cancelled_caught or not any(c is connection for c in self._idle):
            return  # a reply took it
        self._idle.remove(connection)
        self._lost(connection)
        await connection.aclose()

    async def _unwatch(self, connection: _T) -> None:
        watch = self._watches.get(connection)
        if watch is not None:
            watch.scope.cancel()
            # Its reader stops at once, between two reads; until then the connection is not
            # the caller's to read, and it must not be lost to a cancellation meanwhile.
            with trio.CancelScope(shield=True):
                await watch.done.wait()

    def _lost(self, connection: _T) -> None:
        born = self._born.pop(connection, None)
        lived = trio.current_time() - born if born is not None else 0.0
        if not self._keeping_now():
            return
        self._backoff.lost(lived)
        self._note_setback("the connection was lost")
        self._notify()

    def _setback(self, error: Exception) -> None:
        self._backoff.setback()
        if isinstance(error, APIError) and not error.retryable:
            self._backoff.setbacks = max(self._backoff.setbacks, self._backoff.limit)
        self._note_setback(str(error) or type(error).__name__)

    def _note_setback(self, why: str) -> None:
        backoff = self._backoff
        if not backoff.gave_up:
            logger.debug("keeping a connection open: %s; again in %s s", why, backoff.delay)
        elif not self._gave_up_told:
            self._gave_up_told = True
            logger.warning(
                "stopped keeping a connection open after %d tries (%s); replies connect"
                " when they need one",
                backoff.setbacks,
                why,
            )

    def _keeping_now(self) -> bool:
        return self._keeper.locked() and not self._keeping.cancel_called

    def _notify(self) -> None:
        self._changed.set()
        self._changed = trio.Event()

    async def aclose(self) -> None:
        """Stop the keeper and close the kept ones; those in use close when their reply ends."""
        self._closed = True
        self._keeping.cancel()
        self._notify()
        idle, self._idle = self._idle, []
        self._born.clear()
        for connection in idle:
            await connection.aclose()

    @contextlib.asynccontextmanager
    async def take(self) -> AsyncIterator[_T]:
        """A connection for one reply."""
        self._in_use += 1
        connection: _T | None = None
        healthy = False
        try:
            while self._idle and connection is None:
                candidate = self._idle.pop()
                await self._unwatch(candidate)
                if candidate.closed:
                    self._lost(candidate)
                    await candidate.aclose()
                else:
                    connection = candidate
            if connection is None:
                connection = await self._open()
            try:
                yield connection
                healthy = True
            except BaseException as e:
                healthy = _only_cancelled(e)
                raise
        finally:
            self._in_use -= 1
            if connection is not None:
                await self._give_back(connection, healthy=healthy)
            else:
                self._notify()

    async def _give_back(self, connection: _T, *, healthy: bool) -> None:
        keep = healthy and not connection.closed and not self._closed
        if keep and len(self._idle) < self._max_idle:
            self._born.pop(connection, None)
            self._backoff.reset()  # it served a reply
            self._gave_up_told = False
            self._idle.append(connection)
            self._notify()
            return
        if not healthy or connection.closed:
            self._lost(connection)
        self._born.pop(connection, None)
        self._notify()
        await connection.aclose()


def _only_cancelled(error: BaseException) -> bool:
    if isinstance(error, BaseExceptionGroup):
        return all(_only_cancelled(e) for e in error.exceptions)
    return isinstance(error, trio.Cancelled)
